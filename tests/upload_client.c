/*
 * upload_client.c - the upload RPCs one at a time, for test_upload.sh,
 * which needs what ftctl never does (stop half way, send out of order,
 * claim a wrong hash, use another user's upload id):
 *
 *   upload_client URL begin FILE [HASH]           prints "ID RECEIVED CHUNK_MAX"
 *   upload_client URL send ID FILE OFFSET N        N chunks from OFFSET;
 *                                                  prints the bytes received
 *   upload_client URL chunk ID OFFSET BYTES        one chunk of BYTES zero bytes
 *   upload_client URL status ID                    prints "RECEIVED SIZE"
 *   upload_client URL commit ID KIND NAME          stores it as a dataset
 *
 * HASH defaults to the file's BLAKE2b.  Prints the reply's code and
 * message on stderr; exits 0 for OK, 1 for another code, 2 when the daemon
 * cannot be reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "call.h"
#include "ft_enum.h"

static char *
file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		exit(2);
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static Ft__Reply *
call(const char *url, Ft__Request *req)
{
	Ft__Reply *rep;
	char err[512];

	if (ft_call(url, req, 10000, NULL, &rep, err, sizeof(err)) != 0) {
		fprintf(stderr, "upload_client: %s\n", err);
		exit(2);
	}
	fprintf(stderr, "%s%s%s\n", ft_code_name(rep->code), rep->message[0] ? ": " : "",
	    rep->message);
	if (rep->code != FT__CODE__OK)
		exit(1);
	return rep;
}

int
main(int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DataUploadBeginRequest b = FT__DATA_UPLOAD_BEGIN_REQUEST__INIT;
	Ft__DataUploadChunkRequest c = FT__DATA_UPLOAD_CHUNK_REQUEST__INIT;
	Ft__DataUploadStatusRequest s = FT__DATA_UPLOAD_STATUS_REQUEST__INIT;
	Ft__DataUploadCommitRequest m = FT__DATA_UPLOAD_COMMIT_REQUEST__INIT;
	Ft__Reply *rep;
	const char *cmd = argc > 2 ? argv[2] : "";
	int kind;
	size_t len;
	char *data = NULL;

	if (argc < 4) {
		fprintf(stderr, "usage: upload_client URL begin|send|chunk|status|commit ...\n");
		return 2;
	}
	if (strcmp(cmd, "begin") == 0) {
		unsigned char h[32];
		char hex[65];

		data = file_read(argv[3], &len);
		crypto_generichash(h, sizeof(h), (unsigned char *)data, len, NULL, 0);
		sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
		b.size = len;
		b.blake2b = argc > 4 ? argv[4] : hex;
		req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_BEGIN;
		req.data_upload_begin = &b;
		rep = call(argv[1], &req);
		printf("%s %llu %u\n", rep->data_upload_begin->id,
		    (unsigned long long)rep->data_upload_begin->received,
		    rep->data_upload_begin->chunk_max);
	} else if (strcmp(cmd, "send") == 0 && argc == 7) {
		uint64_t off = strtoull(argv[5], NULL, 10), chunk;
		int n = atoi(argv[6]);

		data = file_read(argv[4], &len);
		s.id = argv[3];
		req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_STATUS;
		req.data_upload_status = &s;
		rep = call(argv[1], &req);
		/* Every upload reply says how large a chunk the daemon takes. */
		chunk = rep->data_upload_status->chunk_max;
		ft_reply_free(rep);
		c.id = argv[3];
		for (int i = 0; i < n && off < len; i++) {
			c.offset = off;
			c.data.data = (uint8_t *)data + off;
			c.data.len = len - off < chunk ? len - off : chunk;
			req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_CHUNK;
			req.data_upload_chunk = &c;
			rep = call(argv[1], &req);
			off = rep->data_upload_chunk->received;
			ft_reply_free(rep);
		}
		printf("%llu\n", (unsigned long long)off);
		free(data);
		return 0;
	} else if (strcmp(cmd, "chunk") == 0 && argc == 6) {
		len = strtoul(argv[5], NULL, 10);
		c.id = argv[3];
		c.offset = strtoull(argv[4], NULL, 10);
		c.data.data = (uint8_t *)(data = calloc(1, len + 1));
		c.data.len = len;
		req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_CHUNK;
		req.data_upload_chunk = &c;
		rep = call(argv[1], &req);
		printf("%llu\n", (unsigned long long)rep->data_upload_chunk->received);
	} else if (strcmp(cmd, "status") == 0) {
		s.id = argv[3];
		req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_STATUS;
		req.data_upload_status = &s;
		rep = call(argv[1], &req);
		printf("%llu %llu\n", (unsigned long long)rep->data_upload_status->received,
		    (unsigned long long)rep->data_upload_status->size);
	} else if (strcmp(cmd, "commit") == 0 && argc == 6) {
		m.id = argv[3];
		if (ft_enum_parse(&ft__dataset_kind__descriptor, argv[4], &kind) != 0)
			return 2;
		m.kind = (Ft__DatasetKind)kind;
		m.name = argv[5];
		m.file_name = argv[5];
		req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_COMMIT;
		req.data_upload_commit = &m;
		rep = call(argv[1], &req);
		printf("%s\n", rep->data_upload_commit->dataset ?
		    rep->data_upload_commit->dataset->blake2b : "");
	} else {
		fprintf(stderr, "upload_client: bad arguments for %s\n", cmd);
		return 2;
	}
	ft_reply_free(rep);
	free(data);
	return 0;
}
