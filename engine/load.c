/* load.c - fte_model_load: pick the reader by what is at the path. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"

int
fte_model_load(const char *path, fte_model **out)
{
	char cfg[PATH_MAX], magic[4] = {0};
	struct stat st;
	size_t len = strlen(path);
	FILE *fp;
	int rc;

	if (stat(path, &st) != 0)
		return fte_error_set(errno == ENOENT ? FTE_ENOENT : FTE_EIO,
		    "%s: cannot open model: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		snprintf(cfg, sizeof(cfg), "%s/config.json", path);
		if (lstat(cfg, &st) != 0)
			return fte_error_set(FTE_ENOENT, "%s: directory has no config.json (not a Hugging Face model)",
			    path);
		return fte_hf_load(path, out);
	}
	/* the checkpoint is opened as every file is: no symbolic link */
	if ((rc = fte__fopen(path, &fp)) != FTE_OK)
		return rc;
	/* files that are models elsewhere but not checkpoints we import */
	if (fread(magic, 1, 4, fp) != 4)
		magic[0] = '\0';
	fclose(fp);
	if (memcmp(magic, "GGUF", 4) == 0)
		return fte_gguf_load(path, out);
	if (len > 12 && strcmp(path + len - 12, ".safetensors") == 0)
		return fte_error_set(FTE_ENOTSUP, "%s: a weights file alone has no configuration; give the directory holding it and config.json",
		    path);
	return fte_llama2c_load(path, out);
}
