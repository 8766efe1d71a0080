/*
 * test_deploy_pool.c - the serving pool below the HTTP layer, on a real
 * state directory with stories260K: streamed text equals the engine's own
 * greedy generation, a stop string is never sent (not even a prefix of
 * it), the queue bound refuses at once, serving yields memory to a job
 * (least recently used idle model unloaded first, a model in use when its
 * request ends, requests that do not fit wait and then get DEPLOY_BUSY),
 * and a stop cancels a running job and refuses new ones (the API's 503).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploy.h"
#include "ft_test.h"
#include "ft_wire.h"
#include "fte_model.h"
#include "fte_train.h"
#include "registry.h"
#include "store.h"

/* Reads a job to its end; returns the concatenated chunks (malloc'd). */
static char *
job_read(struct deploy_job *j, int *chunks)
{
	size_t off = 0, len;
	char *all = calloc(1, 1), *chunk;
	int started, running;

	*chunks = 0;
	do {
		running = deploy_job_wait(j, off, &started, &chunk, &len);
		if (chunk != NULL) {
			all = realloc(all, off + len + 1);
			memcpy(all + off, chunk, len + 1);
			off += len;
			(*chunks)++;
			free(chunk);
		}
	} while (running);
	return all;
}

/* The engine's own greedy continuation of prompt, decoded.  Not inlined:
 * GCC then takes the returned text for a pointer to the local. */
static __attribute__((noinline)) char *
engine_text(const struct model_info *mi, const char *prompt, int max_new)
{
	fte_model *m = NULL;
	fte_tokenizer *tok = NULL;
	fte_sampler sm;
	int *ids = NULL, out[512], n_out = 0;
	size_t n_ids, len;
	char *text = NULL;

	if (fte_model_load(mi->entry, &m) == FTE_OK && fte_tokenizer_load(mi->tokenizer, &tok) == FTE_OK &&
	    fte_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &n_ids) == FTE_OK) {
		fte_sampler_default(&sm);
		sm.temperature = 0;
		sm.max_new_tokens = max_new;
		if (fte_generate(m, ids, (int)n_ids, &sm, NULL, NULL, out, &n_out) == FTE_OK)
			fte_tokenizer_decode_flags(tok, out, (size_t)n_out, FTE_TOK_SKIP_SPECIAL, &text, &len);
	}
	free(ids);
	fte_tokenizer_free(tok);
	fte_model_free(m);
	return text;
}

/* Runs a short request for deployment model to its end; its status. */
static enum deploy_status
request(struct deploy *s, const char *model, char *msg, size_t len)
{
	struct deploy_params p;
	struct deploy_job *j;
	enum deploy_status st;
	int chunks;

	memset(&p, 0, sizeof(p));
	p.model = model;
	p.prompt = "Once upon a time";
	p.max_tokens = 4;
	p.top_p = 1;
	if ((st = deploy_submit(s, &p, &j, msg, len)) != DEPLOY_OK)
		return st;
	free(job_read(j, &chunks));
	st = deploy_job_result(j)->status;
	snprintf(msg, len, "%s", deploy_job_result(j)->message);
	deploy_job_release(j);
	return st;
}

static int
loaded(struct ftuned *d, const char *name)
{
	struct deploy_info info;

	return deploy_find(d, name, &info) == 0 && info.loaded;
}

/* Waits until j has generated some text; returns it (malloc'd). */
static char *
chunk_first(struct deploy_job *j)
{
	char *chunk = NULL;
	size_t len;
	int started;

	while (deploy_job_wait(j, 0, &started, &chunk, &len) && chunk == NULL)
		;
	return chunk;
}

/* Offset of sub in s, or -1. */
static long
offset_of(const char *s, const char *sub)
{
	const char *p = strstr(s, sub);

	return p != NULL ? (long)(p - s) : -1;
}

int
main(void)
{
	char model[PATH_MAX], tok[PATH_MAX], dir[] = "/tmp/ft-deploy-pool-XXXXXX", err[256], assets[PATH_MAX], cmd[PATH_MAX + 16];
	struct ftuned d;
	struct deploy_info info;
	struct model_info mi;
	struct deploy_params p;
	struct deploy_job *j, *j2;
	struct deploy_reservation r1 = { 7, "training", 64 << 20, NULL };
	struct deploy_reservation r2 = { 8, "evaluation", 64 << 20, NULL };
	fte_config mc;
	uint64_t w, t0;
	const char *stop[1];
	char *want, *got, word[64] = "";
	long cut;
	int64_t id;
	int chunks;

	/* ft_test_asset's answer lasts until its next call. */
	snprintf(model, sizeof(model), "%s", ft_test_asset("llama2c/stories260K.bin"));
	snprintf(tok, sizeof(tok), "%s", ft_test_asset("llama2c/tok512.bin"));
	memset(&d, 0, sizeof(d));
	config_defaults(&d.cfg);
	snprintf(assets, sizeof(assets), "%s", model);
	*strrchr(assets, '/') = '\0';
	CHECK(mkdtemp(dir) != NULL);
	snprintf(d.cfg.state_dir, sizeof(d.cfg.state_dir), "%s", dir);
	snprintf(d.cfg.import_roots, sizeof(d.cfg.import_roots), "%s", assets);
	d.cfg.serve_threads = 1;
	d.cfg.serve_queue_max = 0;
	CHECK(store_open(dir, &d.store, err, sizeof(err)) == 0);
	CHECK(registry_init(&d, err, sizeof(err)) == 0);
	if (registry_model_import(&d, 0, model, "stories260K", tok, &id, err, sizeof(err)) !=
	    FT__CODE__OK) {
		fprintf(stderr, "import: %s\n", err);
		CHECK(0);
	}
	CHECK(deploy_start(&d, &d.deploy, err, sizeof(err)) == 0);
	CHECK(deploy_create(&d, 0, "stories260K", "s", &info, err, sizeof(err)) == FT__CODE__OK);
	CHECK(registry_model_find(&d, "stories260K", &mi) == 0);

	/* Streamed chunks add up to the engine's greedy text. */
	want = engine_text(&mi, "Once upon a time", 60);
	CHECK(want != NULL);
	memset(&p, 0, sizeof(p));
	p.model = "s";
	p.prompt = "Once upon a time";
	p.max_tokens = 60;
	p.top_p = 1;
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_OK);
	got = job_read(j, &chunks);
	CHECK_STR(got, want);
	CHECK(chunks >= 1);
	CHECK(deploy_job_result(j)->status == DEPLOY_OK);
	CHECK(deploy_job_result(j)->completion_tokens == 60);
	CHECK_STR(deploy_job_result(j)->finish_reason, "length");
	deploy_job_release(j);
	free(got);

	/* A stop string (a word and its space): the text ends before it, and
	 * the word, a prefix of the stop, was held back rather than sent. */
	sscanf(want, "%*s %*s %*s %*s %62s", word);
	CHECK(word[0] != '\0');
	strcat(word, " ");
	cut = offset_of(want, word);
	stop[0] = word;
	p.stop = stop;
	p.n_stop = 1;
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_OK);
	got = job_read(j, &chunks);
	CHECK(cut > 0 && strlen(got) == (size_t)cut &&
	    strncmp(got, want, strlen(got)) == 0);
	CHECK_STR(deploy_job_result(j)->finish_reason, "stop");
	deploy_job_release(j);
	free(got);
	p.stop = NULL;
	p.n_stop = 0;

	/* One thread and no queue: a second request while one is queued or
	 * running is refused at once. */
	p.max_tokens = 400;
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_OK);
	CHECK(deploy_submit(d.deploy, &p, &j2, err, sizeof(err)) == DEPLOY_FULL);
	CHECK(strstr(err, "serve_queue_max") != NULL);
	free(job_read(j, &chunks));
	deploy_job_release(j);

	/* Memory.  Two registered copies of the model, each weights w when
	 * loaded; s is used last, so b is the least recently used. */
	CHECK(registry_model_import(&d, 0, model, "stories260K-b", tok, &id, err, sizeof(err)) ==
	    FT__CODE__OK);
	CHECK(deploy_create(&d, 0, "stories260K-b", "b", &info, err, sizeof(err)) == FT__CODE__OK);
	CHECK(registry_model_config(&mi, &mc, NULL, 0) == 0);
	w = mi.params * sizeof(float);
	CHECK(fte_generate_memory(&mc) > 2ull * mc.n_layers * mc.max_seq_len * mc.n_kv_heads *
	    mc.head_dim * sizeof(float));
	d.cfg.serve_memory_wait = 1;
	CHECK(request(d.deploy, "s", err, sizeof(err)) == DEPLOY_OK);
	CHECK(request(d.deploy, "b", err, sizeof(err)) == DEPLOY_OK);
	CHECK(request(d.deploy, "s", err, sizeof(err)) == DEPLOY_OK);
	CHECK(deploy_memory_used(d.deploy) == 2 * w);
	/* Room for the job and one model: b goes, s stays. */
	d.cfg.memory_budget = (int64_t)(r1.bytes + w + w / 2);
	CHECK(deploy_memory_reserve(d.deploy, &r1) == 1);
	CHECK(!loaded(&d, "b") && loaded(&d, "s"));
	CHECK(deploy_memory_used(d.deploy) == w);
	/* b does not fit beside the job: it waits serve_memory_wait, then is
	 * refused; one that waits while the job ends is served. */
	t0 = ftuned_now_ms();
	CHECK(request(d.deploy, "b", err, sizeof(err)) == DEPLOY_BUSY);
	CHECK(ftuned_now_ms() - t0 >= 900);
	CHECK(strstr(err, "in use by training job 7; retry later") != NULL);
	CHECK(!loaded(&d, "b"));
	p.model = "b";
	p.max_tokens = 4;
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_OK);
	usleep(300 * 1000);
	deploy_memory_release(d.deploy, &r1);
	free(job_read(j, &chunks));
	CHECK(deploy_job_result(j)->status == DEPLOY_OK);
	deploy_job_release(j);
	CHECK(loaded(&d, "b") && deploy_memory_used(d.deploy) == 2 * w);
	/* Room for the job alone: idle b goes at once, s (generating) when
	 * its request ends, which still runs to its end. */
	d.cfg.memory_budget = (int64_t)(r2.bytes + w / 2);
	p.model = "s";
	p.max_tokens = 300;
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_OK);
	free(chunk_first(j));
	CHECK(deploy_memory_reserve(d.deploy, &r2) == 1);
	CHECK(!loaded(&d, "b") && loaded(&d, "s"));
	free(job_read(j, &chunks));
	CHECK(deploy_job_result(j)->status == DEPLOY_OK && deploy_job_result(j)->completion_tokens > 0);
	deploy_job_release(j);
	CHECK(!loaded(&d, "s") && deploy_memory_used(d.deploy) == 0);
	deploy_memory_release(d.deploy, &r2);
	/* serve_yield_to_training = 0: a job unloads nothing. */
	d.cfg.serve_yield_to_training = 0;
	CHECK(request(d.deploy, "s", err, sizeof(err)) == DEPLOY_OK);
	CHECK(deploy_memory_reserve(d.deploy, &r1) == 0);
	CHECK(loaded(&d, "s"));
	deploy_memory_release(d.deploy, &r1);
	d.cfg.serve_yield_to_training = 1;
	d.cfg.memory_budget = 0;

	/* Unknown deployments; then a stop ends the running job and refuses
	 * new ones. */
	p.model = "nope";
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_NOT_FOUND);
	p.model = "s";
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_OK);
	deploy_stop(d.deploy);
	free(job_read(j, &chunks));
	CHECK(deploy_job_result(j)->status == DEPLOY_OK ||
	    deploy_job_result(j)->status == DEPLOY_STOPPING);
	deploy_job_release(j);
	CHECK(deploy_submit(d.deploy, &p, &j, err, sizeof(err)) == DEPLOY_STOPPING);

	/* Undeploy works on a stopped pool too. */
	CHECK(deploy_remove(&d, 0, 0, "s", err, sizeof(err)) == FT__CODE__OK);
	CHECK(deploy_find(&d, "s", &info) != 0);
	deploy_free(d.deploy);
	model_info_free(&mi);
	free(want);
	store_close(d.store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return ft_test_done();
}
