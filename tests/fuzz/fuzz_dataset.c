/*
 * fuzz_dataset.c - libFuzzer target for the dataset parser: every input is
 * parsed as instruction data, as text and as CSV with a text column, with and
 * without skip_invalid and with a small record limit; a dataset that parses is written, hashed,
 * reloaded from its canonical form, split and summarized, and the canonical
 * form must parse back to the same bytes.
 *
 * With clang and -DFT_FUZZ=ON this is a libFuzzer binary:
 *   ./fuzz_dataset ../tests/fuzz/corpus/dataset
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

/* write_buffer returns the canonical form in a malloc'd string. */
static int
write_buffer(const struct dataset *ds, char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);
	char err[256];
	int rc;

	if (f == NULL)
		return -1;
	rc = dataset_write_jsonl(ds, f, err, sizeof(err));
	if (fclose(f) != 0)
		return -1;
	if (rc != 0)
		free(*buf);
	return rc;
}

static void
check(const struct dataset *ds)
{
	struct dataset_options opt = { .kind = dataset_kind(ds) };
	struct dataset_report *rep;
	struct dataset_stats st;
	struct dataset *back = NULL, *t, *v;
	char err[256], h1[65], h2[65], *buf, *buf2;
	size_t len, len2;

	if (write_buffer(ds, &buf, &len) != 0)
		return;
	/* The canonical form is valid input that reproduces itself. */
	if (dataset_parse("canonical", buf, len, &opt, &back, &rep, err, sizeof(err)) != 0)
		abort();
	dataset_report_free(rep);
	if (dataset_count(back) != dataset_count(ds))
		abort();
	if (write_buffer(back, &buf2, &len2) == 0) {
		if (len2 != len || memcmp(buf, buf2, len) != 0)
			abort();
		free(buf2);
	}
	dataset_hash(ds, h1);
	dataset_hash(back, h2);
	if (strcmp(h1, h2) != 0)
		abort();
	dataset_free(back);
	free(buf);

	dataset_stats_compute(ds, &st);
	if (st.records != dataset_count(ds))
		abort();
	if (dataset_split(ds, 0.3, len, &t, &v, err, sizeof(err)) == 0) {
		if (dataset_count(t) + dataset_count(v) != dataset_count(ds) || dataset_count(v) == 0)
			abort();
		dataset_free(t);
		dataset_free(v);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int kind = 0; kind < 3; kind++)
		for (int skip = 0; skip < 2; skip++) {
			struct dataset_options opt = {
				.kind = kind ? DATASET_KIND_TEXT : DATASET_KIND_INSTRUCT,
				.text_column = kind == 2 ? "text" : NULL,
				.skip_invalid = skip,
				.max_bytes = skip ? 64 : 0,
				.max_issues = 4,
			};
			struct dataset_report *rep;
			struct dataset *ds = NULL;
			char err[256], *text;

			if (dataset_parse("fuzz", data, size, &opt, &ds, &rep, err, sizeof(err)) == 0) {
				check(ds);
				dataset_free(ds);
			}
			if (rep != NULL && dataset_report_format(rep, &text) == 0)
				free(text);
			dataset_report_free(rep);
		}
	return 0;
}
