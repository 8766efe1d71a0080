/*
 * quota.h - per-user quotas: bytes stored (models and datasets together) and
 * numbers of models and of datasets, each a config key (0: unlimited).
 * Every place that stores an object asks before it writes a byte; usage is
 * summed from the models and datasets tables, so nothing can drift.  A
 * model's bytes are its files' sizes (counted in full even where the store
 * shares a blob with another model); a dataset's are its text.  Admins are
 * not exempt.
 */
#ifndef FT_QUOTA_H
#define FT_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "ftuned.h"

enum quota_kind { QUOTA_MODEL, QUOTA_DATASET };

struct quota_usage {
	uint64_t bytes, models, datasets;
};

/* quota_usage_db sums uid's usage on db, which the caller holds locked. */
int quota_usage_db(sqlite3 *db, uint32_t uid, struct quota_usage *u);

/* quota_check_db: may uid store one more object of kind taking bytes?
 * FT__CODE__OK, or FT__CODE__RESOURCE_EXHAUSTED with what is used and the
 * limit in err (FT__CODE__INTERNAL if the sums fail).  db is held locked;
 * inside the transaction that inserts the object, the check and the insert
 * are one step. */
int quota_check_db(sqlite3 *db, const struct ft_config *cfg, uint32_t uid,
    enum quota_kind kind, uint64_t bytes, char *err, size_t err_len);

/* quota_check and quota_usage lock the store themselves. */
int quota_check(struct ftuned *d, uint32_t uid, enum quota_kind kind, uint64_t bytes,
    char *err, size_t err_len);
int quota_usage(struct ftuned *d, uint32_t uid, struct quota_usage *u);

#endif
