/*
 * datasets.h - the dataset registry: validated datasets stored in their
 * canonical form (dataset.h) under state_dir/datasets/<id>/ as train.jsonl
 * and, when held out, validation.jsonl.
 */
#ifndef FT_DATASETS_H
#define FT_DATASETS_H

#include <limits.h>
#include <stdint.h>

#include "arena.h"
#include "dataset.h"
#include "ft_wire.h"
#include "ftuned.h"

struct dataset_info {
	int64_t id;
	char name[101];
	enum dataset_kind kind;
	char hash[65];
	uint64_t records, validation_records, bytes;
	uint32_t owner_uid;
	int64_t created_at;
	char *stats_json;           /* malloc'd */
	char *report;               /* malloc'd: the validation report at upload */
	char screen_rules[65];      /* BLAKE2b of the screening rule set, "" = none */
	char train_path[PATH_MAX];
	char validation_path[PATH_MAX]; /* "" when none */
};

/* What a client sends for data add / data validate (DataUploadCommit). */
struct datasets_add {
	const char *file_name;
	const void *content;
	size_t len;
	Ft__DatasetKind kind;       /* UNSPECIFIED is refused */
	const char *name;
	double validation_split;
	const void *validation_content;
	size_t validation_len;
	const char *validation_file_name;
	int skip_invalid;
	uint64_t seed;
	const char *text_column;    /* text kind: CSV/TSV, this column the text */
};

/* datasets_init creates state_dir/datasets and removes directories that no
 * committed row names. */
int datasets_init(struct ftuned *d, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* datasets_add validates and (unless validate_only) stores a dataset owned
 * by uid.  *report receives the malloc'd validation report text (even on
 * failure, when there is one) and *errors and *warnings its counts.  Returns an
 * FT__CODE__*, with a message in err on failure. */
int datasets_add(struct ftuned *d, uint32_t uid, const struct datasets_add *a,
    int validate_only, int64_t *id, char **report, uint64_t *errors,
    uint64_t *warnings, char *err, size_t err_len);

/* datasets_find looks a dataset up by name or id (0), or -1. */
int datasets_find(struct ftuned *d, const char *name_or_id, struct dataset_info *out);

/* datasets_list returns every dataset, oldest first. */
int datasets_list(struct ftuned *d, struct dataset_info **out, size_t *n);

/* datasets_remove deletes a dataset (owner or admin), refused while a
 * queued or running job uses it. FT__CODE__*. */
int datasets_remove(struct ftuned *d, uint32_t uid, int admin, const char *name,
    char *err, size_t err_len);

void dataset_info_free(struct dataset_info *di);

/* Reply objects from arena a (a reply's), which the RPC handlers
 * (rpc_data.c) and the JSON API (web_api.c) both serialise:
 * datasets_info_proto copies one row with the first `samples` training
 * records as text, datasets_list_reply every dataset.  FT__CODE__OK with
 * *out, or RESOURCE_EXHAUSTED / INTERNAL. */
int datasets_info_proto(struct arena *a, const struct dataset_info *di, size_t samples,
    Ft__DatasetInfo **out);
int datasets_list_reply(struct ftuned *d, struct arena *a, Ft__DataListReply **out);

#endif
