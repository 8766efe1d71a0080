/*
 * store.h - the daemon's durable state in SQLite (state_dir/ftuned.db).
 *
 * WAL mode, foreign keys on, every change in a transaction.  The schema is
 * versioned with PRAGMA user_version and migrated forward at open, one
 * transaction per step, so a crash mid-migration leaves the old version.
 */
#ifndef FT_STORE_H
#define FT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct store;
struct sqlite3_stmt;

/* store_open opens (creating if needed) the database under state_dir and
 * migrates it to the current schema.  Returns 0 and sets *out, or -1 with a
 * message in err. */
int store_open(const char *state_dir, struct store **out, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* store_close closes the database. NULL is allowed. */
void store_close(struct store *s);

/* store_lock returns the connection for the caller's exclusive use until
 * store_unlock; modules (registry.c, datasets.c, queue.c) run their own
 * statements and transactions on it. */
struct sqlite3 *store_lock(struct store *s);
void store_unlock(struct store *s);

/* store_dir_prune removes the entries of dir (a folder of per-row
 * directories named by id, such as state_dir/models) that no committed row
 * of table names: what a crash left half-built.  0, or -1 with err. */
int store_dir_prune(struct store *s, const char *dir, const char *table, char *err,
    size_t err_len) __attribute__((warn_unused_result));

/* Enum-valued columns hold their words (ft_enum.h: "RUNNING", "lora"), so
 * the database reads the same as before they were enums; these are the
 * one place a column and a value convert.  store_column_enum reads column
 * i as a value of d (UNSPECIFIED for a NULL or unknown word);
 * store_bind_enum binds parameter i to v's word (SQLITE_OK, or an error
 * for a value d does not have). */
int store_column_enum(struct sqlite3_stmt *st, int i, const ProtobufCEnumDescriptor *d);
int store_bind_enum(struct sqlite3_stmt *st, int i, const ProtobufCEnumDescriptor *d, int v);

/* store_spec_upgrade rewrites a spec packed by schema 12 or earlier, a
 * JobSpec whose type, method and schedule or an EvalSpec whose split were
 * strings, as this build packs it (enums; other fields byte for byte) into
 * out, which has room for n bytes (the result is never longer).  0, or -1
 * for bytes that are not protobuf.  The 12 -> 13 migration runs it on
 * every job and evaluation row. */
enum store_spec { STORE_JOB_SPEC, STORE_EVAL_SPEC };
int store_spec_upgrade(enum store_spec spec, const uint8_t *in, size_t n, uint8_t *out,
    size_t *out_len);

/* store_schema_version returns the schema version in use. */
int store_schema_version(struct store *s);

/* store_queue_length counts jobs that are queued or running. Returns 0, or
 * -1 on a database error (logged). */
int store_queue_length(struct store *s, uint32_t *out)
    __attribute__((warn_unused_result));

#endif
