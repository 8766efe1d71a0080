/*
 * fuzz_config.c - libFuzzer target for the config file parser: any bytes
 * give either a configuration or an error naming a line, never a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/ft_fuzz_config_XXXXXX", err[512];
	struct ft_config cfg;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	config_defaults(&cfg);
	if (config_load(&cfg, path, err, sizeof(err)) != 0 && strstr(err, path) != err)
		abort(); /* every error names the file */
	unlink(path);
	return 0;
}
