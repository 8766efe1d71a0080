/* store.c - SQLite state: open, migrate, and the queries of the daemon. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fsutil.h"
#include "ft.pb-c.h"
#include "ft_enum.h"
#include "log.h"
#include "store.h"

struct store {
	sqlite3 *db;
	pthread_mutex_t lock; /* one connection, used by RPC and HTTP threads */
};

/* migrations[i] takes the schema from version i to i + 1. Append only. */
static const char *migrations[] = {
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);"
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  owner_uid INTEGER NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN"
	"    ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),"
	"  priority INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  spec BLOB NOT NULL);"
	"CREATE INDEX jobs_state ON jobs(state, priority, id);",

	/* 1 -> 2: model and dataset registries, job details, metrics, logs. */
	"CREATE TABLE models ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  owner_uid INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('base', 'tuned')),"
	"  format TEXT NOT NULL CHECK (format IN ('hf', 'llama2c')),"
	"  arch TEXT NOT NULL,"
	"  params INTEGER NOT NULL,"
	"  config TEXT NOT NULL,"
	"  entry TEXT NOT NULL,"
	"  tokenizer TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  base_id INTEGER REFERENCES models(id),"
	"  job_id INTEGER,"
	"  lineage TEXT NOT NULL DEFAULT '{}');"
	"CREATE TABLE model_files ("
	"  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  PRIMARY KEY (model_id, name));"
	"CREATE INDEX model_files_hash ON model_files(hash);"
	"CREATE TABLE datasets ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  owner_uid INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('instruct', 'text')),"
	"  hash TEXT NOT NULL,"
	"  records INTEGER NOT NULL,"
	"  validation_records INTEGER NOT NULL,"
	"  bytes INTEGER NOT NULL,"
	"  stats TEXT NOT NULL,"
	"  report TEXT NOT NULL);"
	"ALTER TABLE jobs ADD COLUMN name TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE jobs ADD COLUMN base_id INTEGER REFERENCES models(id);"
	"ALTER TABLE jobs ADD COLUMN dataset_id INTEGER REFERENCES datasets(id);"
	"ALTER TABLE jobs ADD COLUMN stage TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE jobs ADD COLUMN step INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN total_steps INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN started_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN finished_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN error TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE jobs ADD COLUMN result_model_id INTEGER REFERENCES models(id);"
	"ALTER TABLE jobs ADD COLUMN memory_bytes INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN checkpoint_step INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN loss REAL;"
	"ALTER TABLE jobs ADD COLUMN val_loss REAL;"
	"ALTER TABLE jobs ADD COLUMN base_val_loss REAL;"
	"ALTER TABLE jobs ADD COLUMN tokens_per_s REAL;"
	"CREATE TABLE metrics ("
	"  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  step INTEGER NOT NULL,"
	"  loss REAL, lr REAL, grad_norm REAL, tokens_per_s REAL, val_loss REAL,"
	"  PRIMARY KEY (job_id, step));"
	"CREATE TABLE job_logs ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
	"  time INTEGER NOT NULL,"
	"  level TEXT NOT NULL,"
	"  message TEXT NOT NULL);"
	"CREATE INDEX job_logs_job ON job_logs(job_id, seq);",

	/* 2 -> 3: jobs of other kinds (evaluations) share the queue. */
	"ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'train';",

	/* 3 -> 4: evaluations (eval_job.c): the full specification, every
	 * example with each model's output and metric values, and summaries. */
	"CREATE TABLE evals ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  job_id INTEGER NOT NULL UNIQUE REFERENCES jobs(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  owner_uid INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  spec BLOB NOT NULL,"
	"  dataset_id INTEGER NOT NULL,"
	"  dataset_name TEXT NOT NULL,"
	"  dataset_hash TEXT NOT NULL,"
	"  metrics TEXT NOT NULL DEFAULT '',"
	"  examples INTEGER NOT NULL DEFAULT 0,"
	"  done INTEGER NOT NULL DEFAULT 0,"
	"  examples_per_s REAL);"
	"CREATE TABLE eval_models ("
	"  eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  model_id INTEGER NOT NULL,"
	"  name TEXT NOT NULL,"
	"  hashes TEXT NOT NULL,"
	"  PRIMARY KEY (eval_id, idx));"
	"CREATE TABLE eval_examples ("
	"  eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  prompt TEXT NOT NULL,"
	"  reference TEXT NOT NULL,"
	"  PRIMARY KEY (eval_id, idx));"
	"CREATE TABLE eval_outputs ("
	"  eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  model_idx INTEGER NOT NULL,"
	"  output TEXT NOT NULL,"
	"  PRIMARY KEY (eval_id, idx, model_idx));"
	"CREATE TABLE eval_values ("
	"  eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  model_idx INTEGER NOT NULL,"
	"  metric TEXT NOT NULL,"
	"  value REAL NOT NULL,"
	"  PRIMARY KEY (eval_id, metric, model_idx, idx));"
	"CREATE TABLE eval_stats ("
	"  eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,"
	"  metric TEXT NOT NULL,"
	"  model_idx INTEGER NOT NULL,"
	"  versus INTEGER NOT NULL,"
	"  mean REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,"
	"  wins INTEGER NOT NULL DEFAULT 0, ties INTEGER NOT NULL DEFAULT 0,"
	"  losses INTEGER NOT NULL DEFAULT 0, n INTEGER NOT NULL,"
	"  higher_is_better INTEGER NOT NULL,"
	"  PRIMARY KEY (eval_id, metric, model_idx, versus));",

	/* 4 -> 5: a client's request id makes a resent JobSubmit (nng resends
	 * a request whose connection broke) return the job it already made. */
	"ALTER TABLE jobs ADD COLUMN request_id INTEGER NOT NULL DEFAULT 0;"
	"CREATE UNIQUE INDEX jobs_request ON jobs(owner_uid, request_id) WHERE request_id != 0;",

	/* 5 -> 6: deployments served over the OpenAI-compatible API and its
	 * keys, kept as hashes with their usage (deploy.c). */
	"CREATE TABLE deployments ("
	"  name TEXT PRIMARY KEY,"
	"  model_id INTEGER NOT NULL,"
	"  model_name TEXT NOT NULL,"
	"  owner_uid INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL,"
	"  hash TEXT NOT NULL UNIQUE,"
	"  owner_uid INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  last_used_at INTEGER NOT NULL DEFAULT 0,"
	"  requests INTEGER NOT NULL DEFAULT 0,"
	"  tokens INTEGER NOT NULL DEFAULT 0,"
	"  revoked_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX api_keys_name ON api_keys(name) WHERE revoked_at = 0;",

	/* 6 -> 7: LoRA-tuned models stored as adapters (format 'lora').  Only
	 * the CHECK widens, so the stored table text is edited in place (SQLite's
	 * documented way for constraint changes that leave existing rows valid)
	 * rather than copying the table under its foreign keys. */
	"PRAGMA writable_schema = ON;"
	"UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (format IN (''hf'', ''llama2c''))', "
	"  'CHECK (format IN (''hf'', ''llama2c'', ''lora''))') WHERE type = 'table' AND name = 'models';"
	"PRAGMA writable_schema = RESET;",

	/* 7 -> 8: the text dataset a training job is also evaluated on
	 * (--general-data), so that it is not removed while the job waits or
	 * runs.  Not a foreign key: a finished job keeps the id of a dataset
	 * removed since (ids are never reused). */
	"ALTER TABLE jobs ADD COLUMN general_id INTEGER;",

	/* 8 -> 9: the training job that queued an evaluation after it
	 * succeeded, so the job can point at its evaluations. */
	"ALTER TABLE evals ADD COLUMN train_job_id INTEGER;",

	/* 9 -> 10: API key names are each user's own, so that creating a key
	 * never tells one user the names of another's. */
	"DROP INDEX api_keys_name;"
	"CREATE UNIQUE INDEX api_keys_name ON api_keys(owner_uid, name) WHERE revoked_at = 0;",
	/* 10 -> 11: what registry_model_load checks before it uses a model
	 * file: the inode, mtime and ctime it had when it was stored (0:
	 * unknown, the file is rehashed instead). */
	"ALTER TABLE model_files ADD COLUMN ino INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE model_files ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE model_files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;",
	/* 11 -> 12: the BLAKE2b of the rule set a dataset was screened with
	 * (screen.h); '' for datasets added before screening. */
	"ALTER TABLE datasets ADD COLUMN screen_rules TEXT NOT NULL DEFAULT '';",
	/* 12 -> 13: a job spec's type, method and schedule and an evaluation
	 * spec's split are enums, no longer strings (store_spec_upgrade). */
	"UPDATE jobs SET spec = ft_spec_upgrade(0, spec);"
	"UPDATE evals SET spec = ft_spec_upgrade(1, spec);",
	/* 13 -> 14: base models imported from a GGUF file (format 'gguf'); the
	 * CHECK widens in place as in 6 -> 7. */
	"PRAGMA writable_schema = ON;"
	"UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (format IN (''hf'', ''llama2c'', ''lora''))', "
	"  'CHECK (format IN (''hf'', ''llama2c'', ''lora'', ''gguf''))') WHERE type = 'table' AND name = 'models';"
	"PRAGMA writable_schema = RESET;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int
exec(sqlite3 *db, const char *sql, char *err, size_t err_len)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, err_len, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The spec fields that were strings up to schema 12, and their enums. */
static const struct {
	enum store_spec spec;
	uint32_t field;
	const ProtobufCEnumDescriptor *d;
} spec_enums[] = {
	{ STORE_JOB_SPEC, 3, &ft__job_type__descriptor },
	{ STORE_JOB_SPEC, 4, &ft__train_method__descriptor },
	{ STORE_JOB_SPEC, 15, &ft__lr_schedule__descriptor },
	{ STORE_EVAL_SPEC, 3, &ft__eval_split__descriptor },
};

static int
varint_get(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64 && *i < n; shift += 7) {
		uint8_t b = p[(*i)++];

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

static size_t
varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
	return n;
}

int
store_spec_upgrade(enum store_spec spec, const uint8_t *in, size_t n, uint8_t *out,
    size_t *out_len)
{
	size_t i = 0, o = 0;

	while (i < n) {
		size_t start = i, k;
		uint64_t key, len = 0;

		if (varint_get(in, n, &i, &key) != 0)
			return -1;
		switch (key & 7) {
		case 0: if (varint_get(in, n, &i, &len) != 0) return -1; break;
		case 1: i += 8; break;
		case 2: if (varint_get(in, n, &i, &len) != 0 || len > n - i) return -1; break;
		case 5: i += 4; break;
		default: return -1;
		}
		if ((key & 7) == 2)
			i += len;
		if (i > n)
			return -1;
		for (k = 0; k < sizeof(spec_enums) / sizeof(spec_enums[0]); k++)
			if ((key & 7) == 2 && spec_enums[k].spec == spec && key >> 3 == spec_enums[k].field)
				break;
		if (k == sizeof(spec_enums) / sizeof(spec_enums[0])) {
			memcpy(out + o, in + start, i - start);
			o += i - start;
			continue;
		}
		/* The word as an enum value; "" or a word no value has is left
		 * out (UNSPECIFIED).  A varint pair is never longer than the
		 * tag, length and word it replaces. */
		char word[FT_ENUM_WORD_MAX];
		int v;

		if (len == 0 || len >= sizeof(word))
			continue;
		memcpy(word, in + i - len, len);
		word[len] = '\0';
		if (ft_enum_parse(spec_enums[k].d, word, &v) != 0 || v == 0)
			continue;
		o += varint_put(out + o, (uint64_t)spec_enums[k].field << 3);
		o += varint_put(out + o, (uint64_t)v);
	}
	*out_len = o;
	return 0;
}

/* ft_spec_upgrade(which, spec) in SQL, for the 12 -> 13 migration. */
static void
sql_spec_upgrade(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int which = sqlite3_value_int(argv[0]);
	const uint8_t *in = sqlite3_value_blob(argv[1]);
	size_t n = (size_t)sqlite3_value_bytes(argv[1]), len;
	uint8_t *out = sqlite3_malloc64(n + 1);

	(void)argc;
	if (out == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	if ((which != STORE_JOB_SPEC && which != STORE_EVAL_SPEC) ||
	    store_spec_upgrade((enum store_spec)which, in, n, out, &len) != 0) {
		sqlite3_free(out);
		sqlite3_result_error(ctx, "a stored spec is not protobuf", -1);
		return;
	}
	sqlite3_result_blob64(ctx, out, len, sqlite3_free);
}

static int
migrate(sqlite3 *db, char *err, size_t err_len)
{
	int v = user_version(db);
	char why[512], sql[64];

	if (v < 0) {
		snprintf(err, err_len, "cannot read schema version: %s", sqlite3_errmsg(db));
		return -1;
	}
	if (sqlite3_create_function(db, "ft_spec_upgrade", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
	    NULL, sql_spec_upgrade, NULL, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "cannot register the migration's function: %s",
		    sqlite3_errmsg(db));
		return -1;
	}
	if (v > SCHEMA_VERSION) {
		snprintf(err, err_len, "database schema %d is newer than this ftuned (%d)", v, SCHEMA_VERSION);
		return -1;
	}
	for (; v < SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (exec(db, "BEGIN IMMEDIATE", why, sizeof(why)) != 0 ||
		    exec(db, migrations[v], why, sizeof(why)) != 0 ||
		    exec(db, sql, why, sizeof(why)) != 0) {
			snprintf(err, err_len, "migrating schema %d to %d: %s", v, v + 1, why);
			exec(db, "ROLLBACK", why, sizeof(why));
			return -1;
		}
		if (exec(db, "COMMIT", why, sizeof(why)) != 0) {
			snprintf(err, err_len, "migrating schema %d to %d: %s", v, v + 1, why);
			return -1;
		}
		log_info("state schema migrated to version %d", v + 1);
	}
	return 0;
}

int
store_open(const char *state_dir, struct store **out, char *err, size_t err_len)
{
	char path[4096], why[512];
	struct store *s;
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/ftuned.db", state_dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	if (exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
	    "PRAGMA foreign_keys = ON;", why, sizeof(why)) != 0) {
		snprintf(err, err_len, "%s: %s", path, why);
		sqlite3_close(db);
		return -1;
	}
	if (migrate(db, why, sizeof(why)) != 0) {
		snprintf(err, err_len, "%s: %s", path, why);
		sqlite3_close(db);
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, err_len, "out of memory");
		sqlite3_close(db);
		return -1;
	}
	s->db = db;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

sqlite3 *
store_lock(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	return s->db;
}

void
store_unlock(struct store *s)
{
	pthread_mutex_unlock(&s->lock);
}

int
store_schema_version(struct store *s)
{
	(void)s;
	return SCHEMA_VERSION;
}

int
store_dir_prune(struct store *s, const char *dir, const char *table, char *err, size_t err_len)
{
	char sql[96], path[4096];
	struct dirent *e;
	sqlite3_stmt *st;
	DIR *dd;

	if ((dd = opendir(dir)) == NULL) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE id = ?", table);
	pthread_mutex_lock(&s->lock);
	while ((e = readdir(dd)) != NULL) {
		int known = 0;
		char *end;
		long long id;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		id = strtoll(e->d_name, &end, 10);
		if (*end == '\0' && sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, id);
			known = sqlite3_step(st) == SQLITE_ROW;
			sqlite3_finalize(st);
		}
		if (!known) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			log_warn("state: removing %s, left by an interrupted write", path);
			fs_rm_rf(path);
		}
	}
	pthread_mutex_unlock(&s->lock);
	closedir(dd);
	return 0;
}

int
store_queue_length(struct store *s, uint32_t *out)
{
	sqlite3_stmt *st;
	int rc = -1;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM jobs WHERE state IN "
	    "('QUEUED', 'RUNNING')", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*out = (uint32_t)sqlite3_column_int64(st, 0);
			rc = 0;
		}
		sqlite3_finalize(st);
	}
	if (rc != 0)
		log_error("store: counting jobs: %s", sqlite3_errmsg(s->db));
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int
store_column_enum(sqlite3_stmt *st, int i, const ProtobufCEnumDescriptor *d)
{
	const unsigned char *w = sqlite3_column_text(st, i);
	int v;

	return w != NULL && ft_enum_parse(d, (const char *)w, &v) == 0 ? v : 0;
}

int
store_bind_enum(sqlite3_stmt *st, int i, const ProtobufCEnumDescriptor *d, int v)
{
	char w[FT_ENUM_WORD_MAX];

	if (ft_enum_word(d, v, w) == NULL)
		return SQLITE_MISUSE;
	return sqlite3_bind_text(st, i, w, -1, SQLITE_TRANSIENT);
}
