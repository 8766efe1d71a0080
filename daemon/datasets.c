/* datasets.c - dataset registry: validate, store canonically, look up,
 * remove.  Validation is dataset.c's; this file owns storage and rows. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "datasets.h"
#include "fsutil.h"
#include "ft_enum.h"
#include "ft_wire.h"
#include "jobs.h"
#include "log.h"
#include "quota.h"
#include "registry.h"
#include "screen.h"
#include "tokcache.h"

int
datasets_init(struct ftuned *d, char *err, size_t err_len)
{
	char root[PATH_MAX];

	snprintf(root, sizeof(root), "%s/datasets", d->cfg.state_dir);
	if (fs_mkdirs(root, 0750) != 0) {
		snprintf(err, err_len, "%s: %s", root, strerror(errno));
		return -1;
	}
	return store_dir_prune(d->store, root, "datasets", err, err_len);
}

/* write_part streams the canonical form into a new file of the private
 * directory the caller just made (renamed into place as a whole), so a
 * large dataset is never held a second time as one buffer. */
static int
write_part(const struct dataset *ds, const char *path, char *err, size_t err_len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640), synced;
	FILE *f;

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (dataset_write_jsonl(ds, f, err, err_len) != 0) {
		fclose(f);
		return -1;
	}
	/* both run: the stream is closed even when fsync fails */
	synced = fsync(fd) == 0;
	if (fclose(f) != 0 || !synced) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static char *
stats_to_json(const struct dataset *ds)
{
	struct dataset_stats st;
	json_t *hist = json_array(), *j;
	char *s;

	dataset_stats_compute(ds, &st);
	for (size_t i = 0; i < st.n_buckets; i++)
		json_array_append_new(hist, json_pack("{s:I,s:I,s:I}", "lo", (json_int_t)st.bucket_lo[i],
		    "hi", (json_int_t)st.bucket_hi[i], "count", (json_int_t)st.bucket_count[i]));
	j = json_pack("{s:I,s:I,s:I,s:I,s:f,s:o}", "records", (json_int_t)st.records,
	    "bytes", (json_int_t)st.bytes, "min_bytes", (json_int_t)st.min_bytes,
	    "max_bytes", (json_int_t)st.max_bytes, "mean_bytes", st.mean_bytes, "histogram", hist);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* Parses one file; on failure the report text explains it. */
static int
parse_one(const char *file_name, const void *content, size_t len,
    const struct dataset_options *opt, struct dataset **ds, char **report,
    uint64_t *errors, uint64_t *warnings, char *err, size_t err_len)
{
	struct dataset_report *rep = NULL;
	int rc = dataset_parse(file_name, content, len, opt, ds, &rep, err, err_len);

	if (rep != NULL) {
		char *text = NULL;

		*errors += rep->errors;
		*warnings += rep->warnings;
		if (dataset_report_format(rep, &text) == 0) {
			if (*report == NULL) {
				*report = text;
			} else {
				char *both = NULL;

				if (asprintf(&both, "%s%s", *report, text) >= 0) {
					free(*report);
					*report = both;
				}
				free(text);
			}
		}
		dataset_report_free(rep);
	}
	return rc;
}

/* screen_parts screens the training and validation parts by d's rule set:
 * redacted and without dropped records, or refused.  Each hit is a warning. */
static int
screen_parts(struct ftuned *d, const struct datasets_add *a, struct dataset **train,
    struct dataset **valid, char **report, uint64_t *warnings, char *err, size_t err_len)
{
	struct screen_result res = { 0 };
	const char *vname = a->validation_len > 0 ? a->validation_file_name : a->file_name;
	char *line = NULL;

	if (d->screen == NULL)
		return FT__CODE__OK;
	if (screen_dataset(d->screen, a->file_name, train, &res, report) != 0 ||
	    (*valid != NULL && screen_dataset(d->screen, vname, valid, &res, report) != 0)) {
		snprintf(err, err_len, "out of memory");
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	*warnings += res.hits;
	if (res.hits > 0 && asprintf(&line, "%s: screening (rules %.12s): %zu hits, %zu redacted, "
	    "%zu records dropped\n", a->file_name, screen_rules_hash(d->screen), res.hits,
	    res.redacted, res.dropped) >= 0) {
		char *both = NULL;

		if (asprintf(&both, "%s%s", *report ? *report : "", line) >= 0) {
			free(*report);
			*report = both;
		}
		free(line);
	}
	if (res.refused) {
		snprintf(err, err_len, "screening refused the dataset: a refuse rule matched "
		    "(see the lines above)");
		return FT__CODE__FAILED_PRECONDITION;
	}
	if (dataset_count(*train) == 0 || (*valid != NULL && dataset_count(*valid) == 0)) {
		snprintf(err, err_len, "screening dropped every record of a part");
		return FT__CODE__FAILED_PRECONDITION;
	}
	return FT__CODE__OK;
}

int
datasets_add(struct ftuned *d, uint32_t uid, const struct datasets_add *a,
    int validate_only, int64_t *id_out, char **report, uint64_t *errors,
    uint64_t *warnings, char *err, size_t err_len)
{
	struct dataset_options opt = { .skip_invalid = a->skip_invalid,
		.text_column = a->text_column };
	struct dataset *all = NULL, *train = NULL, *valid = NULL;
	char name[101], dir[PATH_MAX], tmpdir[PATH_MAX], path[PATH_MAX], hash[65];
	char *stats = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	int64_t id;
	int code = FT__CODE__INVALID_ARGUMENT;

	*report = NULL;
	*errors = *warnings = 0;
	if (a->kind != FT__DATASET_KIND__DATASET_KIND_INSTRUCT &&
	    a->kind != FT__DATASET_KIND__DATASET_KIND_TEXT) {
		char words[64];

		snprintf(err, err_len, "--kind must be one of %s", ft_enum_words(
		    &ft__dataset_kind__descriptor, ", ", words, sizeof(words)));
		return FT__CODE__INVALID_ARGUMENT;
	}
	opt.kind = (enum dataset_kind)a->kind;
	if (a->text_column != NULL && a->text_column[0] != '\0' && opt.kind != DATASET_KIND_TEXT) {
		snprintf(err, err_len, "--text-column is for --kind text");
		return FT__CODE__INVALID_ARGUMENT;
	}
	if (a->validation_split < 0 || a->validation_split > 0.5 ||
	    (a->validation_split > 0 && a->validation_len > 0)) {
		snprintf(err, err_len, "validation split must be in [0, 0.5], and not given "
		    "together with a validation file");
		return FT__CODE__INVALID_ARGUMENT;
	}
	if (parse_one(a->file_name, a->content, a->len, &opt, &all, report, errors, warnings,
	    err, err_len) != 0)
		return FT__CODE__INVALID_ARGUMENT;
	if (a->validation_len > 0) {
		if (parse_one(a->validation_file_name, a->validation_content, a->validation_len, &opt,
		    &valid, report, errors, warnings, err, err_len) != 0)
			goto out;
		train = all;
		all = NULL;
	} else if (a->validation_split > 0) {
		if (dataset_split(all, a->validation_split, a->seed ? a->seed : 1, &train, &valid,
		    err, err_len) != 0)
			goto out;
	} else {
		train = all;
		all = NULL;
	}
	if ((code = screen_parts(d, a, &train, &valid, report, warnings, err, err_len)) != FT__CODE__OK)
		goto out;
	code = FT__CODE__INVALID_ARGUMENT;
	if (validate_only) {
		code = FT__CODE__OK;
		goto out;
	}
	if (a->name != NULL && a->name[0] != '\0') {
		/* checked before the copy, which would cut it to a valid name */
		if (registry_name_check(a->name, err, err_len) != 0)
			goto out;
		snprintf(name, sizeof(name), "%s", a->name);
	} else {
		const char *base = strrchr(a->file_name, '/');
		char *dot;

		snprintf(name, sizeof(name), "%s", base ? base + 1 : a->file_name);
		if ((dot = strrchr(name, '.')) != NULL && dot != name)
			*dot = '\0';
	}
	if (registry_name_check(name, err, err_len) != 0)
		goto out;
	dataset_hash(train, hash);
	stats = stats_to_json(train);

	db = store_lock(d->store);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO datasets (name, owner_uid, created_at, kind, hash, "
	    "records, validation_records, bytes, stats, report, screen_rules) "
	    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
	    -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "datasets: %s", sqlite3_errmsg(db));
		code = FT__CODE__INTERNAL;
		goto rollback;
	}
	if ((code = quota_check_db(db, &d->cfg, uid, QUOTA_DATASET, a->len + a->validation_len,
	    err, err_len)) != FT__CODE__OK)
		goto rollback;
	{
		struct dataset_stats s;

		dataset_stats_compute(train, &s);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, uid);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		store_bind_enum(st, 4, &ft__dataset_kind__descriptor, opt.kind);
		sqlite3_bind_text(st, 5, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)dataset_count(train));
		sqlite3_bind_int64(st, 7, valid ? (sqlite3_int64)dataset_count(valid) : 0);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)s.bytes);
		sqlite3_bind_text(st, 9, stats ? stats : "{}", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, *report ? *report : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, d->screen ? screen_rules_hash(d->screen) : "", -1,
		    SQLITE_STATIC);
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
			snprintf(err, err_len, "a dataset named '%s' exists", name);
			code = FT__CODE__ALREADY_EXISTS;
		} else {
			snprintf(err, err_len, "datasets: %s", sqlite3_errmsg(db));
			code = FT__CODE__INTERNAL;
		}
		goto rollback;
	}
	id = sqlite3_last_insert_rowid(db);
	snprintf(dir, sizeof(dir), "%s/datasets/%lld", d->cfg.state_dir, (long long)id);
	snprintf(tmpdir, sizeof(tmpdir), "%s/datasets/.%lld.tmp", d->cfg.state_dir, (long long)id);
	fs_rm_rf(tmpdir);
	code = FT__CODE__INTERNAL;
	if (fs_mkdirs(tmpdir, 0750) != 0) {
		snprintf(err, err_len, "%s: %s", tmpdir, strerror(errno));
		goto rollback;
	}
	snprintf(path, sizeof(path), "%s/train.jsonl", tmpdir);
	if (write_part(train, path, err, err_len) != 0)
		goto rollback_dir;
	if (valid != NULL) {
		snprintf(path, sizeof(path), "%s/validation.jsonl", tmpdir);
		if (write_part(valid, path, err, err_len) != 0)
			goto rollback_dir;
	}
	if (rename(tmpdir, dir) != 0 || fs_fsync_dir(dir, 0) != 0) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		goto rollback_dir;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "datasets: %s", sqlite3_errmsg(db));
		fs_rm_rf(dir);
		goto rollback;
	}
	sqlite3_finalize(st);
	store_unlock(d->store);
	log_info("datasets: uid %u added dataset %lld '%s' (%zu records, %zu held out)", uid,
	    (long long)id, name, dataset_count(train), valid ? dataset_count(valid) : 0);
	*id_out = id;
	code = FT__CODE__OK;
	goto out;
rollback_dir:
	fs_rm_rf(tmpdir);
rollback:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	store_unlock(d->store);
out:
	free(stats);
	dataset_free(all);
	dataset_free(train);
	dataset_free(valid);
	return code;
}

#define DATASET_COLUMNS "id, name, kind, hash, records, validation_records, bytes, " \
	"owner_uid, created_at, stats, report, screen_rules"

static void
row_to_info(struct ftuned *d, sqlite3_stmt *st, struct dataset_info *di)
{
	memset(di, 0, sizeof(*di));
	di->id = sqlite3_column_int64(st, 0);
	snprintf(di->name, sizeof(di->name), "%s", sqlite3_column_text(st, 1));
	/* SQLite's CHECK admits only the two words */
	di->kind = (enum dataset_kind)store_column_enum(st, 2, &ft__dataset_kind__descriptor);
	snprintf(di->hash, sizeof(di->hash), "%s", sqlite3_column_text(st, 3));
	di->records = (uint64_t)sqlite3_column_int64(st, 4);
	di->validation_records = (uint64_t)sqlite3_column_int64(st, 5);
	di->bytes = (uint64_t)sqlite3_column_int64(st, 6);
	di->owner_uid = (uint32_t)sqlite3_column_int64(st, 7);
	di->created_at = sqlite3_column_int64(st, 8);
	di->stats_json = strdup((const char *)sqlite3_column_text(st, 9));
	di->report = strdup((const char *)sqlite3_column_text(st, 10));
	snprintf(di->screen_rules, sizeof(di->screen_rules), "%s", sqlite3_column_text(st, 11));
	snprintf(di->train_path, sizeof(di->train_path), "%s/datasets/%lld/train.jsonl",
	    d->cfg.state_dir, (long long)di->id);
	if (di->validation_records > 0)
		snprintf(di->validation_path, sizeof(di->validation_path),
		    "%s/datasets/%lld/validation.jsonl", d->cfg.state_dir, (long long)di->id);
}

int
datasets_find(struct ftuned *d, const char *name_or_id, struct dataset_info *out)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	char *end;
	long long id = strtoll(name_or_id, &end, 10);
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT " DATASET_COLUMNS " FROM datasets WHERE name = ? OR id = ?",
	    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name_or_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, *name_or_id && *end == '\0' ? id : -1);
		if (sqlite3_step(st) == SQLITE_ROW) {
			row_to_info(d, st, out);
			rc = 0;
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return rc;
}

int
datasets_list(struct ftuned *d, struct dataset_info **out, size_t *n)
{
	sqlite3 *db = store_lock(d->store);
	struct dataset_info *list = NULL;
	sqlite3_stmt *st;
	size_t count = 0;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT " DATASET_COLUMNS " FROM datasets ORDER BY id", -1, &st,
	    NULL) == SQLITE_OK) {
		rc = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct dataset_info *nl = realloc(list, (count + 1) * sizeof(*nl));

			if (nl == NULL) {
				rc = -1;
				break;
			}
			list = nl;
			row_to_info(d, st, &list[count++]);
		}
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	*out = list;
	*n = count;
	return rc;
}

/* Whether a dataset with this content is still registered: the cached
 * tokens are filed by content, and the other one keeps using them. */
static int
hash_registered(struct ftuned *d, const char *hash)
{
	sqlite3 *db = store_lock(d->store);
	sqlite3_stmt *st;
	int found = 0;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM datasets WHERE hash = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	store_unlock(d->store);
	return found;
}

int
datasets_remove(struct ftuned *d, uint32_t uid, int admin, const char *name, char *err,
    size_t err_len)
{
	struct dataset_info di;
	sqlite3_stmt *st;
	sqlite3 *db;
	int code = FT__CODE__OK;
	long long jobs = 0;
	char dir[PATH_MAX];

	if (datasets_find(d, name, &di) != 0) {
		snprintf(err, err_len, "no dataset '%s'", name);
		return FT__CODE__NOT_FOUND;
	}
	if (di.owner_uid != uid && !admin) {
		snprintf(err, err_len, "dataset '%s' belongs to uid %u", di.name, di.owner_uid);
		dataset_info_free(&di);
		return FT__CODE__PERMISSION_DENIED;
	}
	db = store_lock(d->store);
	jobs = jobs_active_with_dataset(db, di.id);
	if (jobs > 0) {
		snprintf(err, err_len, "dataset '%s' is used by %lld queued or running job%s", di.name,
		    jobs, jobs == 1 ? "" : "s");
		code = FT__CODE__FAILED_PRECONDITION;
	} else {
		/* Finished jobs keep the dataset's name and hash in their spec. */
		int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
		    jobs_unlink_dataset(db, di.id) == 0;

		if (ok && sqlite3_prepare_v2(db, "DELETE FROM datasets WHERE id = ?", -1, &st, NULL) ==
		    SQLITE_OK) {
			sqlite3_bind_int64(st, 1, di.id);
			ok = sqlite3_step(st) == SQLITE_DONE;
			sqlite3_finalize(st);
		} else
			ok = 0;
		if (!ok || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, err_len, "datasets: %s", sqlite3_errmsg(db));
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			code = FT__CODE__INTERNAL;
		}
	}
	store_unlock(d->store);
	if (code == FT__CODE__OK) {
		snprintf(dir, sizeof(dir), "%s/datasets/%lld", d->cfg.state_dir, (long long)di.id);
		fs_rm_rf(dir);
		if (!hash_registered(d, di.hash))
			tokcache_remove_dataset(d, di.hash);
		log_info("datasets: uid %u removed dataset %lld '%s'", uid, (long long)di.id, di.name);
	}
	dataset_info_free(&di);
	return code;
}

void
dataset_info_free(struct dataset_info *di)
{
	free(di->stats_json);
	free(di->report);
	di->stats_json = di->report = NULL;
}

/* ---- reply objects ---- */

int
datasets_info_proto(struct arena *a, const struct dataset_info *di, size_t samples,
    Ft__DatasetInfo **out)
{
	Ft__DatasetInfo *p = arena_alloc(a, sizeof(*p));

	if (p == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	ft__dataset_info__init(p);
	p->id = di->id;
	p->name = arena_strdup(a, di->name);
	p->kind = (Ft__DatasetKind)di->kind;
	p->blake2b = arena_strdup(a, di->hash);
	p->records = di->records;
	p->validation_records = di->validation_records;
	p->bytes = di->bytes;
	p->owner_uid = di->owner_uid;
	p->created_at = di->created_at;
	p->stats_json = arena_strdup(a, di->stats_json);
	p->screen_rules = arena_strdup(a, di->screen_rules);
	if (p->name == NULL || p->blake2b == NULL || p->stats_json == NULL ||
	    p->screen_rules == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (samples > 0) {
		FILE *f = fopen(di->train_path, "r");
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;

		p->samples = arena_alloc(a, samples * sizeof(char *));
		while (f != NULL && p->samples != NULL && p->n_samples < samples &&
		    (n = getline(&line, &cap, f)) > 0) {
			if (line[n - 1] == '\n')
				line[n - 1] = '\0';
			if ((p->samples[p->n_samples] = arena_strdup(a, line)) != NULL)
				p->n_samples++;
		}
		free(line);
		if (f != NULL)
			fclose(f);
	}
	*out = p;
	return FT__CODE__OK;
}

int
datasets_list_reply(struct ftuned *d, struct arena *a, Ft__DataListReply **out)
{
	Ft__DataListReply *r = arena_alloc(a, sizeof(*r));
	struct dataset_info *list;
	size_t n;
	int code = FT__CODE__OK;

	if (r == NULL)
		return FT__CODE__RESOURCE_EXHAUSTED;
	if (datasets_list(d, &list, &n) != 0)
		return FT__CODE__INTERNAL;
	ft__data_list_reply__init(r);
	if ((r->datasets = arena_alloc(a, (n + 1) * sizeof(*r->datasets))) == NULL)
		code = FT__CODE__RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < n; i++) {
		if (code == FT__CODE__OK && (code = datasets_info_proto(a, &list[i], 0,
		    &r->datasets[r->n_datasets])) == FT__CODE__OK)
			r->n_datasets++;
		dataset_info_free(&list[i]);
	}
	free(list);
	if (code == FT__CODE__OK)
		*out = r;
	return code;
}
