/* quota.c - per-user quotas on stored bytes, models and datasets (quota.h). */
#include <stdio.h>

#include "ft_wire.h"
#include "quota.h"

int
quota_usage_db(sqlite3 *db, uint32_t uid, struct quota_usage *u)
{
	static const char sql[] =
	    "SELECT (SELECT COALESCE(SUM(size), 0) FROM models WHERE owner_uid = ?1) + "
	    "(SELECT COALESCE(SUM(bytes), 0) FROM datasets WHERE owner_uid = ?1), "
	    "(SELECT COUNT(*) FROM models WHERE owner_uid = ?1), "
	    "(SELECT COUNT(*) FROM datasets WHERE owner_uid = ?1)";
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, uid);
	if (sqlite3_step(st) == SQLITE_ROW) {
		u->bytes = (uint64_t)sqlite3_column_int64(st, 0);
		u->models = (uint64_t)sqlite3_column_int64(st, 1);
		u->datasets = (uint64_t)sqlite3_column_int64(st, 2);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static void
mib(uint64_t b, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f MiB", (double)b / (1 << 20));
}

int
quota_check_db(sqlite3 *db, const struct ft_config *cfg, uint32_t uid,
    enum quota_kind kind, uint64_t bytes, char *err, size_t err_len)
{
	const char *what = kind == QUOTA_MODEL ? "model" : "dataset";
	int64_t max = kind == QUOTA_MODEL ? cfg->quota_models_per_user : cfg->quota_datasets_per_user;
	struct quota_usage u;
	uint64_t have;

	if (quota_usage_db(db, uid, &u) != 0) {
		snprintf(err, err_len, "quota: %s", sqlite3_errmsg(db));
		return FT__CODE__INTERNAL;
	}
	have = kind == QUOTA_MODEL ? u.models : u.datasets;
	if (max > 0 && have >= (uint64_t)max) {
		snprintf(err, err_len, "quota: uid %u has %llu %ss, the most allowed "
		    "(quota_%ss_per_user = %lld)", uid, (unsigned long long)have, what, what,
		    (long long)max);
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	if (cfg->quota_bytes_per_user > 0 && (u.bytes > (uint64_t)cfg->quota_bytes_per_user ||
	    bytes > (uint64_t)cfg->quota_bytes_per_user - u.bytes)) {
		char used[32], need[32], limit[32];

		mib(u.bytes, used, sizeof(used));
		mib(bytes, need, sizeof(need));
		mib((uint64_t)cfg->quota_bytes_per_user, limit, sizeof(limit));
		snprintf(err, err_len, "quota: uid %u stores %s; this %s needs %s more, over the "
		    "limit of %s (quota_bytes_per_user)", uid, used, what, need, limit);
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	return FT__CODE__OK;
}

int
quota_check(struct ftuned *d, uint32_t uid, enum quota_kind kind, uint64_t bytes,
    char *err, size_t err_len)
{
	int code = quota_check_db(store_lock(d->store), &d->cfg, uid, kind, bytes, err, err_len);

	store_unlock(d->store);
	return code;
}

int
quota_usage(struct ftuned *d, uint32_t uid, struct quota_usage *u)
{
	int rc = quota_usage_db(store_lock(d->store), uid, u);

	store_unlock(d->store);
	return rc;
}
