/* cmd_data.c - ftctl data add, validate, ls, show, rm.
 *
 * The client reads the dataset files and sends their bytes in chunks, so
 * the daemon never opens a path on a user's behalf and no file has to fit
 * in one message; the daemon validates and answers with a report of
 * "file:line: field: problem" lines. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ftctl.h"

struct add_args {
	const char *kind;
	const char *text_column;
	const char *name;
	double validation_split;
	const char *validation;
	int skip_invalid;
	uint64_t seed;
};

struct quiet_args {
	int quiet;
};

struct force_args {
	int force;
};

#define UPLOAD_RETRIES 5         /* reconnections after a dropped chunk */

/* upload_call sends one upload request; a refusal is printed and is
 * EXIT_REFUSED, an unreachable daemon EXIT_UNREACHABLE (printed too). */
static int
upload_call(const struct opts *o, Ft__Request *req, Ft__Reply **rep)
{
	int rc = call_raw(o, req, rep);

	if (rc != EXIT_OK)
		return rc;
	if ((*rep)->code != FT__CODE__OK) {
		refusal_print(o, *rep);
		ft_reply_free(*rep);
		return EXIT_REFUSED;
	}
	return EXIT_OK;
}

#define PROGRESS_MIN (4 << 20)   /* smaller files go too fast to watch */

/* progress draws "sending FILE: 45% (450 MiB of 1.0 GiB)" on a terminal,
 * and then that the daemon is validating it, which takes a while too. */
static void
progress(const char *cmd, const char *path, uint64_t done, uint64_t size, int *shown)
{
	char a[32], b[32];
	int pct;

	if (size < PROGRESS_MIN || !isatty(STDERR_FILENO) || (pct = (int)(done * 100 / size)) == *shown)
		return;
	*shown = pct;
	size_format(done, a, sizeof(a));
	size_format(size, b, sizeof(b));
	if (done < size)
		fprintf(stderr, "\r\033[Kftctl: %s: sending %s: %d%% (%s of %s)", cmd, path, pct, a, b);
	else
		fprintf(stderr, "\r\033[Kftctl: %s: sent %s (%s); the daemon validates it\n", cmd,
		    path, b);
}

/* upload_file sends the file at path to the daemon in chunks and writes the
 * upload's id.  The file is read from disk twice, for its BLAKE2b and to
 * send it, so memory stays one chunk whatever its size.  An upload the
 * daemon already has part of (an earlier ftctl was interrupted) goes on from
 * there, and so does one whose connection drops. */
static int
upload_file(const struct opts *o, const char *cmd, const char *path, char *id, size_t id_len,
    uint64_t *bytes)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DataUploadBeginRequest begin = FT__DATA_UPLOAD_BEGIN_REQUEST__INIT;
	Ft__DataUploadChunkRequest chunk = FT__DATA_UPLOAD_CHUNK_REQUEST__INIT;
	Ft__DataUploadStatusRequest status = FT__DATA_UPLOAD_STATUS_REQUEST__INIT;
	crypto_generichash_state st;
	unsigned char h[32];
	char hex[65];
	uint8_t *buf = NULL;
	uint64_t size, received;
	size_t chunk_max;
	Ft__Reply *rep;
	struct stat sb;
	ssize_t n;
	int fd, rc = EXIT_USAGE, shown = -1, retries = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) != 0) {
		fprintf(stderr, "ftctl: %s: %s: %s\n", cmd, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "ftctl: %s: %s: not a regular file\n", cmd, path);
		goto out;
	}
	size = (uint64_t)sb.st_size;
	if ((buf = malloc(1 << 20)) == NULL) {
		fprintf(stderr, "ftctl: %s: out of memory\n", cmd);
		goto out;
	}
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	while ((n = read(fd, buf, 1 << 20)) > 0)
		crypto_generichash_update(&st, buf, (size_t)n);
	if (n < 0) {
		fprintf(stderr, "ftctl: %s: %s: %s\n", cmd, path, strerror(errno));
		goto out;
	}
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));

	begin.size = size;
	begin.blake2b = hex;
	req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_BEGIN;
	req.data_upload_begin = &begin;
	if ((rc = upload_call(o, &req, &rep)) != EXIT_OK)
		goto out;
	snprintf(id, id_len, "%s", rep->data_upload_begin->id);
	received = rep->data_upload_begin->received;
	chunk_max = rep->data_upload_begin->chunk_max;
	ft_reply_free(rep);
	if (chunk_max == 0 || chunk_max > (1 << 20)) {
		fprintf(stderr, "ftctl: %s: the daemon asks for chunks of %zu bytes\n", cmd, chunk_max);
		rc = EXIT_UNREACHABLE;
		goto out;
	}
	if (received > 0 && received < size) {
		char at[32];

		size_format(received, at, sizeof(at));
		fprintf(stderr, "ftctl: %s: resuming the upload of %s at %s\n", cmd, path, at);
	}
	chunk.id = id;
	status.id = id;
	while (received < size) {
		size_t want = size - received < chunk_max ? (size_t)(size - received) : chunk_max;

		progress(cmd, path, received, size, &shown);
		if ((n = pread(fd, buf, want, (off_t)received)) != (ssize_t)want) {
			fprintf(stderr, "ftctl: %s: %s: %s\n", cmd, path,
			    n < 0 ? strerror(errno) : "the file shrank while it was sent");
			rc = EXIT_USAGE;
			goto out;
		}
		chunk.offset = received;
		chunk.data.data = buf;
		chunk.data.len = want;
		req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_CHUNK;
		req.data_upload_chunk = &chunk;
		rc = upload_call(o, &req, &rep);
		while (rc == EXIT_UNREACHABLE && retries++ < UPLOAD_RETRIES) {
			/* Where did the daemon get to?  The chunk may have landed. */
			sleep(1);
			req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_STATUS;
			req.data_upload_status = &status;
			rc = upload_call(o, &req, &rep);
		}
		if (rc != EXIT_OK)
			goto out;
		received = req.body_case == FT__REQUEST__BODY_DATA_UPLOAD_CHUNK ?
		    rep->data_upload_chunk->received : rep->data_upload_status->received;
		ft_reply_free(rep);
	}
	progress(cmd, path, size, size, &shown);
	*bytes += size;
	rc = EXIT_OK;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* base_name returns path's last component, in storage owned by buf. */
static char *
base_name(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s", path);
	return basename(buf);
}

static void
dataset_summary(const char *verb, const Ft__DatasetInfo *d)
{
	char size[32];

	size_format(d->bytes, size, sizeof(size));
	printf("%s dataset %s (id %lld): %llu records", verb, d->name, (long long)d->id,
	    (unsigned long long)d->records);
	if (d->validation_records > 0)
		printf(" + %llu for validation", (unsigned long long)d->validation_records);
	printf(", %s, %s\n", size, d->kind);
}

/* data_send uploads the files and commits them as a dataset (or, for data
 * validate, only validates them): prints the daemon's report on stderr and
 * a summary on stdout. */
static int
data_send(const struct opts *o, const struct add_args *a, const char *file, int validate)
{
	const char *cmd = validate ? "data validate" : "data add";
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DataUploadCommitRequest creq = FT__DATA_UPLOAD_COMMIT_REQUEST__INIT;
	char name[4096], vname[4096], id[80], vid[80] = "";
	struct opts co = *o;
	uint64_t bytes = 0;
	Ft__DataReply *d;
	Ft__Reply *rep;
	int rc;

	if (a->validation[0] != '\0' && a->validation_split != 0) {
		fprintf(stderr, "ftctl: %s: give --validation-split or --validation, not both\n", cmd);
		return FTCTL_USAGE;
	}
	if ((rc = upload_file(o, cmd, file, id, sizeof(id), &bytes)) != EXIT_OK ||
	    (a->validation[0] != '\0' &&
	    (rc = upload_file(o, cmd, a->validation, vid, sizeof(vid), &bytes)) != EXIT_OK))
		return rc;
	if (strcmp(id, vid) == 0) {
		fprintf(stderr, "ftctl: %s: %s and %s have the same content\n", cmd, file, a->validation);
		return FTCTL_USAGE;
	}
	creq.id = id;
	creq.file_name = base_name(file, name, sizeof(name));
	creq.kind = (char *)a->kind;
	creq.name = (char *)a->name;
	creq.validation_split = a->validation_split;
	if (vid[0] != '\0') {
		creq.validation_id = vid;
		creq.validation_file_name = base_name(a->validation, vname, sizeof(vname));
	}
	creq.skip_invalid = a->skip_invalid;
	creq.seed = a->seed;
	creq.text_column = (char *)a->text_column;
	creq.validate_only = validate;
	req.body_case = FT__REQUEST__BODY_DATA_UPLOAD_COMMIT;
	req.data_upload_commit = &creq;
	/* Validating takes time in proportion to the data: allow 5 MB/s. */
	co.timeout_ms += (int)(bytes / (5 << 20) * 1000 < INT32_MAX / 2 ? bytes / (5 << 20) * 1000 :
	    INT32_MAX / 2);
	if ((rc = call_raw(&co, &req, &rep)) != EXIT_OK)
		return rc;
	/* A refusal may still carry the report that explains it. */
	d = rep->data_upload_commit;
	if (d != NULL && d->report[0] != '\0' && (d->errors > 0 || d->warnings > 0 ||
	    rep->code != FT__CODE__OK)) {
		size_t n = strlen(d->report);

		fprintf(stderr, "%s%s", d->report, d->report[n - 1] == '\n' ? "" : "\n");
	}
	if (rep->code != FT__CODE__OK) {
		if (o->json && d != NULL) {
			json_t *j = ft_json_message(&d->base);

			json_object_set_new(j, "error", json_pack("{s:s,s:s}", "code",
			    ft_code_name(rep->code), "message", rep->message));
			json_print(j);
			fprintf(stderr, "ftctl: %s: %s\n", ft_code_name(rep->code), rep->message);
		} else {
			refusal_print(o, rep);
		}
		ft_reply_free(rep);
		return EXIT_REFUSED;
	}
	if (d == NULL) {
		fprintf(stderr, "ftctl: the daemon's reply has no body for this request "
		    "(is ftuned older than ftctl?)\n");
		ft_reply_free(rep);
		return EXIT_UNREACHABLE;
	}
	rc = validate && d->errors > 0 && !a->skip_invalid ? EXIT_REFUSED : EXIT_OK;
	if (o->json)
		json_print(ft_json_message(&d->base));
	else if (d->dataset != NULL)
		dataset_summary(validate ? "valid:" : "added", d->dataset);
	else
		printf("%s: %llu error%s, %llu warning%s\n", file, (unsigned long long)d->errors,
		    d->errors == 1 ? "" : "s", (unsigned long long)d->warnings,
		    d->warnings == 1 ? "" : "s");
	ft_reply_free(rep);
	return rc;
}

static int
cmd_data_add(const struct opts *o, void *args, int argc, char **argv)
{
	(void)argc;
	return data_send(o, args, argv[0], 0);
}

static int
cmd_data_validate(const struct opts *o, void *args, int argc, char **argv)
{
	(void)argc;
	return data_send(o, args, argv[0], 1);
}

static int
cmd_data_ls(const struct opts *o, void *args, int argc, char **argv)
{
	struct quiet_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DataListRequest dreq = FT__DATA_LIST_REQUEST__INIT;
	static const char *const heads[] = {
		"ID", "NAME", "KIND", "RECORDS", "VALIDATION", "SIZE", "OWNER", "CREATED",
	};
	Ft__DataListReply *l;
	struct table *t;
	Ft__Reply *rep;
	int rc;

	(void)argc, (void)argv;
	req.body_case = FT__REQUEST__BODY_DATA_LIST;
	req.data_list = &dreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	l = rep->data_list;
	if (o->json) {
		json_print(ft_json_message(&l->base));
	} else if (a->quiet) {
		for (size_t i = 0; i < l->n_datasets; i++)
			printf("%s\n", l->datasets[i]->name);
	} else if ((t = table_new(8, heads, "rslrRrLL")) != NULL) {
		for (size_t i = 0; i < l->n_datasets; i++) {
			const Ft__DatasetInfo *d = l->datasets[i];
			char id[24], recs[24], vrecs[24], size[32], owner[64], when[64];

			snprintf(id, sizeof(id), "%lld", (long long)d->id);
			snprintf(recs, sizeof(recs), "%llu", (unsigned long long)d->records);
			snprintf(vrecs, sizeof(vrecs), "%llu", (unsigned long long)d->validation_records);
			size_format(d->bytes, size, sizeof(size));
			user_format(d->owner_uid, owner, sizeof(owner));
			time_format(d->created_at, when, sizeof(when));
			when[16] = '\0';
			table_add(t, id, d->name, d->kind, recs, vrecs, size, owner, when);
		}
		table_print(t, stdout, term_width());
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

/* histogram_print draws the record-length buckets of stats_json, an array
 * "histogram" of {"lo", "hi", "count"}, as bars scaled to the largest. */
static void
histogram_print(const json_t *hist, int width)
{
	json_int_t most = 1;
	size_t i;
	json_t *b;
	int bar = width - 40;

	if (bar < 10)
		bar = 10;
	json_array_foreach(hist, i, b) {
		json_int_t n = json_integer_value(json_object_get(b, "count"));

		if (n > most)
			most = n;
	}
	json_array_foreach(hist, i, b) {
		char lo[32], hi[32], range[80];
		json_int_t n = json_integer_value(json_object_get(b, "count"));
		int w = (int)((double)n * bar / (double)most + 0.5);

		size_format((uint64_t)json_integer_value(json_object_get(b, "lo")), lo, sizeof(lo));
		size_format((uint64_t)json_integer_value(json_object_get(b, "hi")), hi, sizeof(hi));
		snprintf(range, sizeof(range), "%s - %s", lo, hi);
		printf("    %-21s %8lld %.*s\n", range, (long long)n, w,
		    "##################################################"
		    "##################################################"
		    "##################################################");
	}
}

/* conversation_format writes a conversation's turns as "role: content"
 * joined by " | ", a tool call as "role: -> name(arguments)", then how
 * many turns and which tools it has. */
static void
conversation_format(const json_t *j, char *buf, size_t len)
{
	const json_t *msgs = json_object_get(j, "messages"), *m, *c, *tools = json_object_get(j, "tools");
	size_t i, k, n = 0, turns = 0;

	buf[0] = '\0';
#define PUT(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		const char *content = json_string_value(json_object_get(m, "content"));

		turns += role != NULL && strcmp(role, "assistant") == 0;
		PUT("%s%s: %s", i ? " | " : "", role ? role : "?", content ? content : "");
		json_array_foreach(json_object_get(m, "tool_calls"), k, c) {
			const json_t *fn = json_object_get(c, "function"), *args = json_object_get(fn, "arguments");
			char *a = json_is_string(args) ? NULL : json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);

			PUT(" -> %s(%s)", json_string_value(json_object_get(fn, "name")) ?: "?",
			    json_is_string(args) ? json_string_value(args) : a ? a : "");
			free(a);
		}
		if (json_integer_value(json_object_get(m, "weight")) == 0 &&
		    json_object_get(m, "weight") != NULL)
			PUT(" (not trained)");
	}
	PUT("  [%zu assistant turn%s", turns, turns == 1 ? "" : "s");
	json_array_foreach(tools, i, c)
		PUT("%s%s", i ? ", " : "; tools: ", json_string_value(json_object_get(json_object_get(c,
		    "function"), "name")) ?: "?");
	PUT("]");
#undef PUT
}

/* sample_format renders a stored record (a canonical JSONL line): text
 * records as their text, instruction records as instruction, input and
 * output joined by arrows (a system message first in brackets),
 * conversations as their turns; anything else as it is. */
static void
sample_format(const char *record, char *buf, size_t len)
{
	json_t *j = json_loads(record, 0, NULL);
	const char *text = json_string_value(json_object_get(j, "text"));
	const char *ins = json_string_value(json_object_get(j, "instruction"));
	const char *in = json_string_value(json_object_get(j, "input"));
	const char *out = json_string_value(json_object_get(j, "output"));
	const char *sys = json_string_value(json_object_get(j, "system"));

	if (text != NULL)
		snprintf(buf, len, "%s", text);
	else if (ins != NULL && out != NULL)
		snprintf(buf, len, "%s%s%s%s%s%s -> %s", sys && sys[0] ? "[" : "", sys && sys[0] ? sys : "",
		    sys && sys[0] ? "] " : "", ins, in != NULL && in[0] ? " | " : "",
		    in != NULL ? in : "", out);
	else if (json_is_array(json_object_get(j, "messages")))
		conversation_format(j, buf, len);
	else
		snprintf(buf, len, "%s", record);
	json_decref(j);
}

/* tokens_print tabulates the training part's tokens for each tokenizer of
 * the registered models, one row per model that uses it. */
static void
tokens_print(const Ft__DatasetInfo *d)
{
	static const char *const heads[] = {
		"TOKENIZER", "MODEL", "CONTEXT", "RECORDS", "TOKENS", "MEAN", "MAX", "OVER CONTEXT",
	};
	uint64_t least = d->records;
	struct table *t;

	for (size_t i = 0; i < d->n_token_counts; i++)
		if (d->token_counts[i]->counted < least)
			least = d->token_counts[i]->counted;
	printf("  tokens      %s%s", d->token_counts[0]->template_[0] ? "through the template " :
	    "as text with the tokenizer's specials", strstr(d->token_counts[0]->template_, "{%") ?
	    "(Jinja)" : d->token_counts[0]->template_);
	if (least < d->records)
		printf(", over the first %llu records", (unsigned long long)least);
	printf("\n");
	if ((t = table_new(8, heads, "llrrrrrr")) == NULL)
		return;
	for (size_t i = 0; i < d->n_token_counts; i++) {
		const Ft__TokenCount *c = d->token_counts[i];
		char tok[13], recs[24], total[24], mean[24], max[24];

		snprintf(tok, sizeof(tok), "%s", c->tokenizer);
		snprintf(recs, sizeof(recs), "%llu", (unsigned long long)c->counted);
		snprintf(total, sizeof(total), "%llu", (unsigned long long)c->tokens);
		snprintf(mean, sizeof(mean), "%.1f", c->mean_tokens);
		snprintf(max, sizeof(max), "%llu", (unsigned long long)c->max_tokens);
		for (size_t k = 0; k < c->n_models; k++) {
			const Ft__TokenModel *m = c->models[k];
			char ctx[24], over[24];

			snprintf(ctx, sizeof(ctx), "%u", m->context);
			snprintf(over, sizeof(over), "%llu", (unsigned long long)m->over_context);
			/* The tokenizer's own columns only on its first row. */
			table_add(t, k ? "" : tok, m->model, ctx, k ? "" : recs, k ? "" : total,
			    k ? "" : mean, k ? "" : max, over);
		}
	}
	table_print_indent(t, stdout, term_width(), 4);
}

static void
dataset_print(const Ft__DatasetInfo *d)
{
	char size[32], when[64], owner[64];
	int width = term_width();
	json_t *stats;

	size_format(d->bytes, size, sizeof(size));
	time_format(d->created_at, when, sizeof(when));
	user_format(d->owner_uid, owner, sizeof(owner));
	printf("dataset %s (id %lld)\n", d->name, (long long)d->id);
	printf("  kind        %s\n", d->kind);
	printf("  records     %llu training, %llu validation\n",
	    (unsigned long long)d->records, (unsigned long long)d->validation_records);
	printf("  size        %s (%llu bytes)\n", size, (unsigned long long)d->bytes);
	printf("  blake2b     %s\n", d->blake2b);
	printf("  screened    %s\n", d->screen_rules[0] ? d->screen_rules : "no");
	printf("  owner       %s\n", owner);
	printf("  created     %s\n", when);
	if (d->stats_json[0] != '\0' && (stats = json_loads(d->stats_json, 0, NULL)) != NULL) {
		json_t *hist = json_object_get(stats, "histogram");
		char lo[32], mean[32], hi[32];

		size_format((uint64_t)json_integer_value(json_object_get(stats, "min_bytes")),
		    lo, sizeof(lo));
		size_format((uint64_t)json_number_value(json_object_get(stats, "mean_bytes")),
		    mean, sizeof(mean));
		size_format((uint64_t)json_integer_value(json_object_get(stats, "max_bytes")),
		    hi, sizeof(hi));
		printf("  lengths     min %s, mean %s, max %s per record\n", lo, mean, hi);
		if (json_is_array(hist) && json_array_size(hist) > 0) {
			printf("  record length          records\n");
			histogram_print(hist, width);
		}
		json_decref(stats);
	}
	if (d->n_token_counts > 0)
		tokens_print(d);
	if (d->n_samples > 0)
		printf("  samples\n");
	for (size_t i = 0; i < d->n_samples; i++) {
		/* One line each, cut to the terminal. */
		char text[512], line[512];
		size_t n = 0;

		sample_format(d->samples[i], text, sizeof(text));
		for (const char *p = text; *p && n < sizeof(line) - 1; p++)
			line[n++] = *p == '\n' || *p == '\t' || *p == '\r' ? ' ' : *p;
		line[n] = '\0';
		if ((int)n > width - 8) {
			n = (size_t)(width - 11);
			while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80)
				n--;
			snprintf(line + n, sizeof(line) - n, "...");
		}
		printf("    %zu. %s\n", i + 1, line);
	}
}

static int
cmd_data_show(const struct opts *o, void *args, int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DataShowRequest dreq = FT__DATA_SHOW_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)args, (void)argc;
	dreq.name = argv[0];
	req.body_case = FT__REQUEST__BODY_DATA_SHOW;
	req.data_show = &dreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json) {
		json_t *j = ft_json_message((const ProtobufCMessage *)rep->data_show->dataset);

		if (json_is_object(j))
			json_object_set_new(j, "report", json_string(rep->data_show->report));
		json_print(j);
	} else if (rep->data_show->dataset != NULL) {
		dataset_print(rep->data_show->dataset);
		/* The report of data add: problems and screening hits, file:line. */
		if (rep->data_show->report[0] != '\0') {
			printf("  report\n");
			for (const char *s = rep->data_show->report; *s;) {
				size_t n = strcspn(s, "\n");

				printf("    %.*s\n", (int)n, s);
				s += n + (s[n] == '\n');
			}
		}
	}
	ft_reply_free(rep);
	return EXIT_OK;
}

static int
cmd_data_rm(const struct opts *o, void *args, int argc, char **argv)
{
	struct force_args *a = args;
	Ft__Request req = FT__REQUEST__INIT;
	Ft__DataRemoveRequest dreq = FT__DATA_REMOVE_REQUEST__INIT;
	Ft__Reply *rep;
	int rc;

	(void)argc;
	dreq.name = argv[0];
	dreq.force = a->force;
	req.body_case = FT__REQUEST__BODY_DATA_REMOVE;
	req.data_remove = &dreq;
	if ((rc = call(o, &req, &rep)) != EXIT_OK)
		return rc;
	if (o->json)
		json_print(json_pack("{s:s,s:b}", "removed", argv[0], "forced", a->force));
	else
		printf("removed dataset %s\n", argv[0]);
	ft_reply_free(rep);
	return EXIT_OK;
}

static const struct ftctl_option add_options[] = {
	{ "kind", OPT_STR, offsetof(struct add_args, kind), NULL, "instruct|text", OPT_REQUIRED,
	  "instruction records (JSONL or JSON array) or raw text" },
	{ "text-column", OPT_STR, offsetof(struct add_args, text_column), "NAME", NULL, 0,
	  "text: the file is CSV or TSV with a header; this column is the text" },
	{ "name", OPT_STR, offsetof(struct add_args, name), "NAME", NULL, 0,
	  "name in the registry (default: the file name)" },
	{ "validation-split", OPT_DOUBLE, offsetof(struct add_args, validation_split), "F", NULL, 0,
	  "hold out this fraction of the records for validation, e.g. 0.1" },
	{ "validation", OPT_STR, offsetof(struct add_args, validation), "FILE", NULL, OPT_FILE,
	  "or take the validation records from this file" },
	{ "skip-invalid", OPT_FLAG, offsetof(struct add_args, skip_invalid), NULL, NULL, 0,
	  "keep the valid records of a file with errors" },
	{ "seed", OPT_U64, offsetof(struct add_args, seed), "S", NULL, 0,
	  "seed of the validation split's shuffle" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

/* data validate takes the same options, less the name it would not store. */
static const struct ftctl_option validate_options[] = {
	{ "kind", OPT_STR, offsetof(struct add_args, kind), NULL, "instruct|text", OPT_REQUIRED,
	  "instruction records (JSONL or JSON array) or raw text" },
	{ "text-column", OPT_STR, offsetof(struct add_args, text_column), "NAME", NULL, 0,
	  "text: the file is CSV or TSV with a header; this column is the text" },
	{ "validation-split", OPT_DOUBLE, offsetof(struct add_args, validation_split), "F", NULL, 0,
	  "hold out this fraction of the records for validation, e.g. 0.1" },
	{ "validation", OPT_STR, offsetof(struct add_args, validation), "FILE", NULL, OPT_FILE,
	  "or check a validation file too" },
	{ "skip-invalid", OPT_FLAG, offsetof(struct add_args, skip_invalid), NULL, NULL, 0,
	  "succeed when some records are valid, as data add would keep them" },
	{ "seed", OPT_U64, offsetof(struct add_args, seed), "S", NULL, 0,
	  "seed of the validation split's shuffle" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option ls_options[] = {
	{ "quiet", OPT_FLAG, offsetof(struct quiet_args, quiet), NULL, NULL, 0,
	  "print only the names" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

static const struct ftctl_option rm_options[] = {
	{ "force", OPT_FLAG, offsetof(struct force_args, force), NULL, NULL, 0,
	  "remove even while queued or running jobs use it" },
	{ NULL, 0, 0, NULL, NULL, 0, NULL },
};

const struct command data_commands[] = {
	{ "add", "FILE", 1, 1, ARG_FILE,
	  "Validate a dataset file and register it.\n"
	  "instruct: JSONL or a JSON array of {\"instruction\", \"input\", \"output\"} or chat\n"
	  "{\"messages\": [...]} records; text: plain text (documents split at blank lines)\n"
	  "or JSONL {\"text\"}, or CSV/TSV with --text-column.  ftctl sends the file in\n"
	  "chunks (resuming an interrupted upload of the same file).  Every bad record\n"
	  "is reported as file:line: field: problem on stderr; a file with errors is not\n"
	  "stored unless --skip-invalid.",
	  add_options, sizeof(struct add_args), cmd_data_add, NULL },
	{ "validate", "FILE", 1, 1, ARG_FILE,
	  "Check a dataset file as data add would, storing nothing.\n"
	  "Exits 1 when the file has errors.",
	  validate_options, sizeof(struct add_args), cmd_data_validate, NULL },
	{ "ls", "", 0, 0, ARG_NONE, "List the registered datasets.",
	  ls_options, sizeof(struct quiet_args), cmd_data_ls, NULL },
	{ "show", "NAME", 1, 1, ARG_DATA,
	  "Show a dataset: records, size, hash, lengths, tokens for each tokenizer of\n"
	  "the registered models (with their context lengths), samples.\n"
	  "NAME may also be the dataset's id.",
	  NULL, 0, cmd_data_show, NULL },
	{ "rm", "NAME", 1, 1, ARG_DATA,
	  "Remove a dataset, unless jobs use it.\n"
	  "--force removes it even while a queued or running job uses it.",
	  rm_options, sizeof(struct force_args), cmd_data_rm, NULL },
	{ NULL, NULL, 0, 0, ARG_NONE, NULL, NULL, 0, NULL, NULL },
};
