/*
 * tokcache.h - tokenized datasets, cached on disk so that a dataset is
 * tokenized once per tokenizer and template, not once per job.
 *
 * A form is what the engine's encoders return for each record of one
 * dataset part (train.jsonl or validation.jsonl): instruct records through
 * a prompt template (prompt, response, EOS; the prompt's length kept so
 * the loss can skip it), text records with the tokenizer's specials.  It is
 * cached before rows are cut to a seq_len, so jobs that differ only in
 * seq_len, batch or learning rate share it.
 *
 * Entries live in state_dir/cache/tokens/<dataset hash>-<key>.bin, where
 * the key is the BLAKE2b of everything that changes the tokens: the part's
 * content hash, the tokenizer (tokcache_tokenizer_hash), the kind
 * (template or plain text), the template and TOKCACHE_VERSION.  A file
 * holds a header (magic, version, key, counts, BLAKE2b of the payload) and
 * the payload; one that fails any check is logged, deleted and rebuilt,
 * never used.  Files are written atomically (fsutil.h); the directory is
 * kept under token_cache_max bytes by deleting the least recently used
 * (oldest mtime; a hit refreshes it); token_cache_max 0 disables caching.
 */
#ifndef FT_TOKCACHE_H
#define FT_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "dataset.h"
#include "datasets.h"
#include "fte.h"
#include "ftuned.h"
#include "registry.h"

#define TOKCACHE_COUNT_MAX 20000   /* records data show tokenizes when not cached */

/* One dataset part's tokens: record i is len[i] tokens, stored one record
 * after another in ids; mask[t] is 1 when ids[t] is a target (an assistant
 * turn and its end of turn; every token of text), and the first n_prompt[i]
 * of a record come before its first target.  The arrays point into buf
 * (the file's bytes). */
struct tokcache_form {
	size_t n;                   /* records */
	size_t n_ids;               /* tokens of all records */
	const uint32_t *len;
	const uint32_t *n_prompt;
	const int32_t *ids;
	const uint8_t *mask;
	void *buf;                  /* malloc'd: header and payload */
	size_t buf_len;
};

/* What identifies a form: where it is filed and its key. */
struct tokcache_key {
	char dataset_hash[65];      /* the registry's hash, to find a dataset's entries */
	char hex[65];               /* BLAKE2b-256 of the key material */
};

/* Token totals of a form, as data show and the dashboard print them. */
struct tokcache_stats {
	size_t counted;             /* records in the form */
	uint64_t tokens, prompt_tokens, min, max;
	size_t longer;              /* records training at seq_len would shorten or skip */
};

/* tokcache_tokenizer_hash writes the BLAKE2b identity of a registered
 * model's tokenizer: its file and, for a tokenizer.json, the model's
 * tokenizer_config.json that decides BOS and EOS, from the registry's file
 * hashes.  0, or -1 when the registry lists no tokenizer file. */
int tokcache_tokenizer_hash(const struct model_info *m, char hex[65])
    __attribute__((warn_unused_result));

/* tokcache_key_init makes the key of the form of the dataset part in
 * part_path (a canonical file of the dataset with registry hash
 * dataset_hash, rehashed here so a changed file never matches) for model
 * m's tokenizer (whose tokenizer_config.json holds a "chat" template); tmpl
 * is the format spec of instruct data (chat_template.h), NULL for text,
 * and train_on_last whether only last turns are targets.  0, or -1 with a
 * message in err. */
int tokcache_key_init(struct tokcache_key *k, const char *dataset_hash,
    const char *part_path, const struct model_info *m, const char *tmpl,
    int train_on_last, char *err, size_t err_len) __attribute__((warn_unused_result));

/* tokcache_get reads the entry for k into *out (free with
 * tokcache_form_free) and refreshes its mtime.  0 on a hit; -1 on a miss,
 * with why "" when there is no entry (or caching is off), or the reason
 * an entry failed its checks, in which case it was deleted. */
int tokcache_get(struct ftuned *d, const struct tokcache_key *k,
    struct tokcache_form *out, char *why, size_t why_len);

/* tokcache_put stores a complete form under k and evicts the least
 * recently used entries beyond token_cache_max.  Best effort: a failure is
 * logged and the caller goes on with its form.  Does nothing when caching
 * is off or the form alone is larger than the limit. */
void tokcache_put(struct ftuned *d, const struct tokcache_key *k,
    const struct tokcache_form *f);

/* tokcache_tokenize encodes the first max_records records of ds (all when
 * 0) into *out, filed under k: through format fmt when it is not NULL
 * (instruct data; train_on_last as chat_format_encode), else as text with
 * BOS.  0, or -1 with "record N: ..." in err (nothing kept). */
int tokcache_tokenize(const struct tokcache_key *k, const struct dataset *ds,
    const fte_tokenizer *tok, const struct chat_format *fmt, int train_on_last,
    size_t max_records, struct tokcache_form *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* tokcache_dataset_form returns the form of a registered dataset's
 * training part for model m's tokenizer (and template tmpl for instruct
 * data; ignored for text): the cached one, else the first
 * TOKCACHE_COUNT_MAX records tokenized, cached when that is all of them.
 * *hit tells which.  FT__CODE__OK, INVALID_ARGUMENT (the template or the
 * tokenizer cannot be used) or INTERNAL, with a message in err. */
int tokcache_dataset_form(struct ftuned *d, const struct dataset_info *di,
    const struct model_info *m, const char *tmpl, struct tokcache_form *out,
    int *hit, char *err, size_t err_len);

/* tokcache_form_stats sums a form's tokens; longer counts the records that
 * rows of seq_len tokens (seq_len + 1 with the last target) cannot hold,
 * 0 when seq_len is 0. */
void tokcache_form_stats(const struct tokcache_form *f, uint64_t seq_len,
    struct tokcache_stats *st);

/* tokcache_remove_dataset deletes every entry filed under dataset_hash. */
void tokcache_remove_dataset(struct ftuned *d, const char *dataset_hash);

/* tokcache_form_free frees a form's buffer.  A zeroed form is allowed. */
void tokcache_form_free(struct tokcache_form *f);

#endif
