/*
 * ftengine_tok.c - `ftengine tokenize` and `ftengine detokenize`.
 *
 *   ftengine tokenize --tokenizer PATH [--json] [--no-special]
 *       text on stdin; ids on stdout, space-separated on one line, or with
 *       --json {"ids": [...], "tokens": [...]}.  By default the tokenizer's
 *       post-processing runs (BOS for Llama) and special tokens spelled in
 *       the text become their ids; --no-special does neither.
 *   ftengine detokenize --tokenizer PATH [--skip-special]
 *       ids on stdin (separated by spaces, commas, newlines or inside a JSON
 *       array); the decoded text on stdout, as is.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "ftengine.h"

struct tok_args {
	const char *tokenizer;
	int json, no_special, skip_special;
};

/* parse_args accepts --name VALUE, --name=VALUE and the flags allowed. */
static int
parse_args(int argc, char **argv, int detok, struct tok_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strncmp(s, "--tokenizer", 11) == 0 && (s[11] == '=' || s[11] == '\0')) {
			if (s[11] == '=')
				a->tokenizer = s + 12;
			else if (i + 1 < argc)
				a->tokenizer = argv[++i];
			else
				return -1;
		} else if (!detok && strcmp(s, "--json") == 0) {
			a->json = 1;
		} else if (!detok && strcmp(s, "--no-special") == 0) {
			a->no_special = 1;
		} else if (detok && strcmp(s, "--skip-special") == 0) {
			a->skip_special = 1;
		} else {
			fprintf(stderr, "ftengine %s: unknown argument '%s'\n", argv[0], s);
			return -1;
		}
	}
	return a->tokenizer != NULL ? 0 : -1;
}

static char *
read_stdin(size_t *len)
{
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap + 1);

	while (buf != NULL && (r = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += r;
		if (n == cap) {
			char *b = realloc(buf, 2 * cap + 1);
			if (b == NULL)
				free(buf);
			buf = b;
			cap *= 2;
		}
	}
	if (buf == NULL || ferror(stdin)) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static fte_tokenizer *
load(const char *cmd, const char *path)
{
	fte_tokenizer *t;

	if (fte_tokenizer_load(path, &t) != FTE_OK) {
		fprintf(stderr, "ftengine %s: %s\n", cmd, fte_last_error());
		return NULL;
	}
	return t;
}

static int
print_json(const fte_tokenizer *t, const int *ids, size_t n)
{
	json_t *root = json_object(), *jids = json_array(), *jtoks = json_array();
	int rc = 1;

	if (root == NULL || jids == NULL || jtoks == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *s = fte_tokenizer_token(t, ids[i], &len);
		if (json_array_append_new(jids, json_integer(ids[i])) != 0 ||
		    json_array_append_new(jtoks, json_stringn(s ? s : "", s ? len : 0)) != 0)
			goto out;
	}
	json_object_set(root, "ids", jids);
	json_object_set(root, "tokens", jtoks);
	if (json_dumpf(root, stdout, JSON_COMPACT) == 0 && fputc('\n', stdout) != EOF)
		rc = 0;
out:
	json_decref(jids);
	json_decref(jtoks);
	json_decref(root);
	return rc;
}

int
ftengine_tokenize(int argc, char **argv)
{
	struct tok_args a;
	fte_tokenizer *t;
	char *text;
	size_t len, n;
	int *ids, rc;

	if (parse_args(argc, argv, 0, &a) != 0) {
		fprintf(stderr, "usage: ftengine tokenize --tokenizer PATH [--json] [--no-special] < text\n");
		return 2;
	}
	if ((t = load(argv[0], a.tokenizer)) == NULL)
		return 1;
	if ((text = read_stdin(&len)) == NULL) {
		fprintf(stderr, "ftengine tokenize: cannot read stdin: %s\n", strerror(errno));
		fte_tokenizer_free(t);
		return 1;
	}
	unsigned flags = a.no_special ? 0 : FTE_TOK_ADD_SPECIAL | FTE_TOK_PARSE_SPECIAL;
	rc = fte_tokenizer_encode_flags(t, text, len, flags, &ids, &n);
	free(text);
	if (rc != FTE_OK) {
		fprintf(stderr, "ftengine tokenize: %s\n", fte_last_error());
		fte_tokenizer_free(t);
		return 1;
	}
	if (a.json) {
		rc = print_json(t, ids, n);
	} else {
		for (size_t i = 0; i < n; i++)
			printf(i ? " %d" : "%d", ids[i]);
		rc = printf("\n") < 0;
	}
	rc |= fflush(stdout) != 0;
	if (rc)
		fprintf(stderr, "ftengine tokenize: cannot write output\n");
	free(ids);
	fte_tokenizer_free(t);
	return rc ? 1 : 0;
}

int
ftengine_detokenize(int argc, char **argv)
{
	struct tok_args a;
	fte_tokenizer *t;
	char *in, *out = NULL;
	size_t len, n = 0, out_len;
	int *ids = NULL, rc = 1;

	if (parse_args(argc, argv, 1, &a) != 0) {
		fprintf(stderr, "usage: ftengine detokenize --tokenizer PATH [--skip-special] < ids\n");
		return 2;
	}
	if ((t = load(argv[0], a.tokenizer)) == NULL)
		return 1;
	if ((in = read_stdin(&len)) == NULL || (ids = malloc((len / 2 + 1) * sizeof(int))) == NULL) {
		fprintf(stderr, "ftengine detokenize: cannot read stdin\n");
		goto out;
	}
	for (char *p = in; *p != '\0';) {
		if (strchr(" \t\r\n,[]", *p) != NULL) {
			p++;
			continue;
		}
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno != 0 || v < 0 || v > 0x7fffffff) {
			fprintf(stderr, "ftengine detokenize: bad token id at byte %zu of the input\n", (size_t)(p - in));
			goto out;
		}
		ids[n++] = (int)v;
		p = end;
	}
	if (fte_tokenizer_decode_flags(t, ids, n, a.skip_special ? FTE_TOK_SKIP_SPECIAL : 0, &out, &out_len) != FTE_OK) {
		fprintf(stderr, "ftengine detokenize: %s\n", fte_last_error());
		goto out;
	}
	if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0)
		fprintf(stderr, "ftengine detokenize: cannot write output\n");
	else
		rc = 0;
out:
	free(in);
	free(ids);
	free(out);
	fte_tokenizer_free(t);
	return rc;
}
