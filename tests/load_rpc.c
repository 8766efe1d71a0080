/*
 * load_rpc.c - a load generator for the control socket: N concurrent
 * clients, each with its own connection, send a mix of Status, ModelList,
 * JobList and JobShow requests and time every reply.
 *
 *     load_rpc URL CLIENTS REQUESTS_PER_CLIENT JOB_ID
 *
 * JOB_ID 0 sends Status requests only.  Prints throughput and latency
 * percentiles; exits 1 if any request failed (no reply, or a code other
 * than OK).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ft_wire.h"

static const char *url;
static int per_client;
static int64_t job_id;
static double *latency_ms;
static atomic_int failures;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *
client(void *arg)
{
	int idx = (int)(intptr_t)arg;
	Ft__StatusRequest status = FT__STATUS_REQUEST__INIT;
	Ft__ModelListRequest mlist = FT__MODEL_LIST_REQUEST__INIT;
	Ft__JobListRequest jlist = FT__JOB_LIST_REQUEST__INIT;
	Ft__JobShowRequest jshow = FT__JOB_SHOW_REQUEST__INIT;
	nng_socket s;

	jshow.id = job_id;
	jlist.all_users = 1;
	if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0) {
		atomic_fetch_add(&failures, per_client);
		return NULL;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	for (int i = 0; i < per_client; i++) {
		Ft__Request req = FT__REQUEST__INIT;
		Ft__Reply *rep = NULL;
		nng_msg *m = NULL;
		uint8_t *buf;
		size_t len;
		char why[128];
		double t0;

		req.protocol_version = FT_PROTOCOL_VERSION;
		req.request_id = (uint64_t)idx << 32 | (uint64_t)i;
		switch (job_id == 0 ? 0 : i % 4) {
		case 0: req.body_case = FT__REQUEST__BODY_STATUS; req.status = &status; break;
		case 1: req.body_case = FT__REQUEST__BODY_MODEL_LIST; req.model_list = &mlist; break;
		case 2: req.body_case = FT__REQUEST__BODY_JOB_LIST; req.job_list = &jlist; break;
		default: req.body_case = FT__REQUEST__BODY_JOB_SHOW; req.job_show = &jshow; break;
		}
		if (ft_request_encode(&req, &buf, &len) != 0) {
			atomic_fetch_add(&failures, 1);
			continue;
		}
		t0 = now_ms();
		if (nng_send(s, buf, len, 0) != 0 || nng_recvmsg(s, &m, 0) != 0 ||
		    ft_reply_decode(nng_msg_body(m), nng_msg_len(m), &rep, why, sizeof(why)) != 0 ||
		    rep->code != FT__CODE__OK)
			atomic_fetch_add(&failures, 1);
		latency_ms[(size_t)idx * per_client + i] = now_ms() - t0;
		ft_reply_free(rep);
		if (m != NULL)
			nng_msg_free(m);
		free(buf);
	}
	nng_close(s);
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	int clients;
	size_t n;
	pthread_t *th;
	double t0, elapsed;

	if (argc != 5) {
		fprintf(stderr, "usage: load_rpc URL CLIENTS REQUESTS_PER_CLIENT JOB_ID\n");
		return 2;
	}
	url = argv[1];
	clients = atoi(argv[2]);
	per_client = atoi(argv[3]);
	job_id = atoll(argv[4]);
	n = (size_t)clients * per_client;
	latency_ms = calloc(n, sizeof(double));
	th = calloc((size_t)clients, sizeof(*th));
	if (clients < 1 || per_client < 1 || latency_ms == NULL || th == NULL)
		return 2;
	t0 = now_ms();
	for (int i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, client, (void *)(intptr_t)i);
	for (int i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	elapsed = now_ms() - t0;
	qsort(latency_ms, n, sizeof(double), cmp);
	printf("%d clients x %d requests: %zu in %.2f s, %.0f req/s, latency p50 %.2f ms, "
	    "p99 %.2f ms, max %.2f ms, %d failed\n", clients, per_client, n, elapsed / 1e3,
	    n / (elapsed / 1e3), latency_ms[n / 2], latency_ms[n * 99 / 100], latency_ms[n - 1],
	    atomic_load(&failures));
	free(th);
	free(latency_ms);
	return atomic_load(&failures) == 0 ? 0 : 1;
}
