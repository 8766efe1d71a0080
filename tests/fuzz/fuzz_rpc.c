/*
 * fuzz_rpc.c - libFuzzer target for the control protocol: arbitrary bytes
 * go through rpc_dispatch exactly as a message from the socket would, against
 * a real daemon state (SQLite, registries, queue) in a temporary directory.
 * Every input must produce a decodable reply; nothing may crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets.h"
#include "fsutil.h"
#include "log.h"
#include "queue.h"
#include "registry.h"
#include "rpc.h"
#include "upload.h"

static struct ftuned d;

static void
cleanup(void)
{
	queue_stop(d.queue);
	uploads_stop(d.uploads);
	store_close(d.store);
	fs_rm_rf(d.cfg.state_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/ft_fuzz_rpc_XXXXXX";
	char err[1024];

	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL)
		abort();
	config_defaults(&d.cfg);
	snprintf(d.cfg.state_dir, sizeof(d.cfg.state_dir), "%s", dir);
	snprintf(d.cfg.import_roots, sizeof(d.cfg.import_roots), "%s", dir);
	d.cfg.log_level = LOG_LEVEL_ERROR;
	log_init(LOG_LEVEL_ERROR);
	d.training_threads = 1;
	if (store_open(dir, &d.store, err, sizeof(err)) != 0 || registry_init(&d, err, sizeof(err)) != 0 ||
	    datasets_init(&d, err, sizeof(err)) != 0 || uploads_start(&d, &d.uploads, err, sizeof(err)) != 0 ||
	    queue_start(&d, &d.queue, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_rpc: %s\n", err);
		abort();
	}
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Ft__Reply *rep = NULL;
	uint8_t *out;
	size_t out_len;
	char why[256];

	if (rpc_dispatch(&d, 1000, 1000, 1, data, size, &out, &out_len) != 0)
		return 0;
	if (ft_reply_decode(out, out_len, &rep, why, sizeof(why)) != FT__CODE__OK)
		abort(); /* the daemon must always answer with a valid reply */
	ft_reply_free(rep);
	free(out);
	return 0;
}
