/*
 * tokcache.c - tokenized datasets cached on disk.  See tokcache.h.
 *
 * File layout (native byte order: the cache never leaves this machine):
 *
 *   struct tc_header   magic "FTTOKENS", version, record and token counts,
 *                      the key as hex, BLAKE2b-256 of the payload
 *   uint32 len[n]      tokens per record
 *   uint32 prompt[n]   of which come before the first target
 *   int32  ids[n_ids]  the records' tokens, one after another
 *   uint8  mask[n_ids] 1 for a target (an assistant turn and its end)
 *
 * Writers (jobs, data show, the dashboard) hold one mutex while they write
 * and evict, so a *.tmp file seen under it is a crash's leftover.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chat_template.h"
#include "fsutil.h"
#include "ft_wire.h"
#include "log.h"
#include "tokcache.h"

/* Bump when the engine's tokenizers or templates change what they make. */
#define TOKCACHE_VERSION 2

struct tc_header {
	char magic[8];
	uint32_t version;
	uint32_t reserved;
	uint64_t n, n_ids;
	char key[64];
	unsigned char checksum[32];
};

static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER;

static void
cache_dir(struct ftuned *d, char *out, size_t len)
{
	snprintf(out, len, "%s/cache/tokens", d->cfg.state_dir);
}

static void
entry_path(struct ftuned *d, const struct tokcache_key *k, char *out, size_t len)
{
	snprintf(out, len, "%s/cache/tokens/%s-%s.bin", d->cfg.state_dir, k->dataset_hash, k->hex);
}

static const struct model_file *
model_file(const struct model_info *m, const char *name)
{
	for (size_t i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].name, name) == 0)
			return &m->files[i];
	return NULL;
}

int
tokcache_tokenizer_hash(const struct model_info *m, char hex[65])
{
	const char *base = strrchr(m->tokenizer, '/'), *name = base ? base + 1 : m->tokenizer;
	const struct model_file *tok = model_file(m, name), *cfg = NULL;
	size_t len = strlen(name);
	unsigned char digest[32];
	char material[160];
	int n;

	if (tok == NULL)
		return -1;
	/* Only a tokenizer.json reads the config beside it (fte_tok.h). */
	if (len > 5 && strcmp(name + len - 5, ".json") == 0)
		cfg = model_file(m, "tokenizer_config.json");
	n = snprintf(material, sizeof(material), "%s\n%s", tok->hash, cfg ? cfg->hash : "");
	crypto_generichash(digest, sizeof(digest), (const unsigned char *)material, (size_t)n,
	    NULL, 0);
	sodium_bin2hex(hex, 65, digest, sizeof(digest));
	return 0;
}

int
tokcache_key_init(struct tokcache_key *k, const char *dataset_hash, const char *part_path,
    const struct model_info *m, const char *tmpl, int train_on_last, char *err, size_t err_len)
{
	char part[FS_HASH_HEX], tok[65];
	crypto_generichash_state st;
	unsigned char digest[32];
	uint64_t size;
	char head[256];
	int n;

	if (tokcache_tokenizer_hash(m, tok) != 0) {
		snprintf(err, err_len, "model %s: the registry lists no tokenizer file", m->name);
		return -1;
	}
	if (fs_hash_file(part_path, part, &size, err, err_len) != 0)
		return -1;
	/* The template comes last, so its text needs no escaping. */
	n = snprintf(head, sizeof(head), "ftuned tokcache %d\n%s\n%s\n%s\n", TOKCACHE_VERSION, part,
	    tok, tmpl == NULL ? "text" : train_on_last ? "instruct last" : "instruct");
	crypto_generichash_init(&st, NULL, 0, sizeof(digest));
	crypto_generichash_update(&st, (const unsigned char *)head, (size_t)n);
	if (tmpl != NULL)
		crypto_generichash_update(&st, (const unsigned char *)tmpl, strlen(tmpl));
	crypto_generichash_final(&st, digest, sizeof(digest));
	sodium_bin2hex(k->hex, sizeof(k->hex), digest, sizeof(digest));
	snprintf(k->dataset_hash, sizeof(k->dataset_hash), "%s", dataset_hash);
	return 0;
}

/* Points the form's arrays into buf, laid out as the file is. */
static void
form_view(struct tokcache_form *f, void *buf, size_t len)
{
	const struct tc_header *h = buf;
	const char *p = (const char *)buf + sizeof(*h);

	f->buf = buf;
	f->buf_len = len;
	f->n = (size_t)h->n;
	f->n_ids = (size_t)h->n_ids;
	f->len = (const uint32_t *)p;
	f->n_prompt = f->len + f->n;
	f->ids = (const int32_t *)(f->n_prompt + f->n);
	f->mask = (const uint8_t *)(f->ids + f->n_ids);
}

/* Every check a file must pass before its tokens are used. */
static int
form_check(const void *buf, size_t len, const struct tokcache_key *k, char *why, size_t why_len)
{
	const struct tc_header *h = buf;
	const unsigned char *payload = (const unsigned char *)buf + sizeof(*h);
	unsigned char sum[32];
	struct tokcache_form f;
	uint64_t total = 0;
	size_t avail;

	if (len < sizeof(*h) || memcmp(h->magic, "FTTOKENS", 8) != 0) {
		snprintf(why, why_len, "no header");
		return -1;
	}
	avail = len - sizeof(*h);
	if (h->version != TOKCACHE_VERSION || memcmp(h->key, k->hex, 64) != 0) {
		snprintf(why, why_len, "version %u or key differs", h->version);
		return -1;
	}
	if (h->n > avail / 8 || h->n_ids != (avail - h->n * 8) / 5 || (avail - h->n * 8) % 5 != 0) {
		snprintf(why, why_len, "%zu payload bytes for %llu records and %llu tokens", avail,
		    (unsigned long long)h->n, (unsigned long long)h->n_ids);
		return -1;
	}
	crypto_generichash(sum, sizeof(sum), payload, avail, NULL, 0);
	if (memcmp(sum, h->checksum, sizeof(sum)) != 0) {
		snprintf(why, why_len, "checksum mismatch");
		return -1;
	}
	form_view(&f, (void *)buf, len);
	for (size_t i = 0; i < f.n; i++) {
		if (f.n_prompt[i] > f.len[i]) {
			snprintf(why, why_len, "record %zu: prompt longer than the record", i + 1);
			return -1;
		}
		total += f.len[i];
	}
	if (total != f.n_ids) {
		snprintf(why, why_len, "record lengths sum to %llu, not %zu", (unsigned long long)total,
		    f.n_ids);
		return -1;
	}
	return 0;
}

int
tokcache_get(struct ftuned *d, const struct tokcache_key *k, struct tokcache_form *out,
    char *why, size_t why_len)
{
	char path[PATH_MAX];
	struct stat st;
	void *buf = NULL;
	size_t got = 0;
	ssize_t r = 0;
	int fd;

	why[0] = '\0';
	if (d->cfg.token_cache_max == 0)
		return -1;
	entry_path(d, k, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) != 0 || (buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
		log_warn("tokcache: %s: %s", path, strerror(errno)); /* ENOMEM too */
		close(fd);
		return -1; /* not the file's fault: kept */
	}
	while (got < (size_t)st.st_size && (r = read(fd, (char *)buf + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)r;
	if (got != (size_t)st.st_size) {
		snprintf(why, why_len, "read: %s", r < 0 ? strerror(errno) : "file shrank");
	} else if (form_check(buf, got, k, why, why_len) == 0) {
		futimens(fd, NULL); /* recently used: evicted last */
		close(fd);
		form_view(out, buf, got);
		return 0;
	}
	close(fd);
	free(buf);
	log_warn("tokcache: %s unusable (%s); deleted", path, why);
	unlink(path);
	return -1;
}

struct tc_entry {
	char name[160];
	off_t size;
	struct timespec mtime;
};

static int
entry_older(const void *a, const void *b)
{
	const struct timespec *x = &((const struct tc_entry *)a)->mtime;
	const struct timespec *y = &((const struct tc_entry *)b)->mtime;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* Deletes crash leftovers, then the least recently used entries until the
 * rest fit max bytes.  Called with tc_lock held. */
static void
evict(const char *dir, int64_t max)
{
	struct tc_entry *list = NULL;
	size_t n = 0, cap = 0;
	int64_t total = 0;
	struct dirent *e;
	DIR *dd = opendir(dir);
	char path[PATH_MAX];

	if (dd == NULL)
		return;
	while ((e = readdir(dd)) != NULL) {
		size_t len = strlen(e->d_name);
		struct stat st;

		if (len >= sizeof(list->name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) {
			unlink(path);
			continue;
		}
		if (len < 4 || strcmp(e->d_name + len - 4, ".bin") != 0 || stat(path, &st) != 0)
			continue;
		if (n == cap) {
			struct tc_entry *nl = realloc(list, (cap ? cap * 2 : 16) * sizeof(*nl));

			if (nl == NULL)
				break;
			list = nl;
			cap = cap ? cap * 2 : 16;
		}
		snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
		list[n].size = st.st_size;
		list[n++].mtime = st.st_mtim;
		total += st.st_size;
	}
	closedir(dd);
	if (n > 0)
		qsort(list, n, sizeof(*list), entry_older);
	for (size_t i = 0; i < n && total > max; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, list[i].name);
		if (unlink(path) == 0) {
			total -= list[i].size;
			log_info("tokcache: evicted %s (%lld bytes) to stay under token_cache_max",
			    list[i].name, (long long)list[i].size);
		}
	}
	free(list);
}

void
tokcache_put(struct ftuned *d, const struct tokcache_key *k, const struct tokcache_form *f)
{
	char dir[PATH_MAX], path[PATH_MAX], err[PATH_MAX + 64];
	int64_t max = d->cfg.token_cache_max;

	if (max == 0 || (int64_t)f->buf_len > max)
		return;
	cache_dir(d, dir, sizeof(dir));
	entry_path(d, k, path, sizeof(path));
	pthread_mutex_lock(&tc_lock);
	if (fs_mkdirs(dir, 0750) != 0)
		log_warn("tokcache: %s: %s", dir, strerror(errno));
	else if (fs_write_atomic(path, f->buf, f->buf_len, err, sizeof(err)) != 0)
		log_warn("tokcache: not cached: %s", err);
	else
		log_debug("tokcache: stored %s (%zu records, %zu tokens)", path, f->n, f->n_ids);
	evict(dir, max);
	pthread_mutex_unlock(&tc_lock);
}

int
tokcache_tokenize(const struct tokcache_key *k, const struct dataset *ds,
    const fte_tokenizer *tok, const struct chat_format *fmt, int train_on_last,
    size_t max_records, struct tokcache_form *out, char *err, size_t err_len)
{
	size_t n = dataset_count(ds), n_ids = 0, cap = 0, head;
	uint32_t *len, *prompt;
	int32_t *all = NULL;
	uint8_t *targets = NULL;
	struct tc_header *h;
	char *buf = NULL;

	if (max_records > 0 && max_records < n)
		n = max_records;
	len = malloc((n ? n : 1) * sizeof(*len));
	prompt = malloc((n ? n : 1) * sizeof(*prompt));
	if (len == NULL || prompt == NULL) {
		snprintf(err, err_len, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const struct dataset_record *r = dataset_sample(ds, i);
		size_t n_tok, n_prompt = 0;
		unsigned char *mask = NULL;
		int *ids;

		if ((fmt ? chat_format_encode(fmt, tok, r, train_on_last, &ids, &mask, &n_tok) :
		    fte_tokenizer_encode(tok, r->text, strlen(r->text), 1, &ids, &n_tok)) != FTE_OK) {
			snprintf(err, err_len, "%s %zu: %s", fmt ? "record" : "document", i + 1,
			    fte_last_error());
			goto fail;
		}
		if (n_ids + n_tok > cap) {
			size_t nc = (n_ids + n_tok) * 2;
			int32_t *na = realloc(all, nc * sizeof(*all));
			uint8_t *nm = na ? realloc(targets, nc) : NULL;

			if (na != NULL)
				all = na;
			if (nm == NULL) {
				free(ids);
				free(mask);
				snprintf(err, err_len, "out of memory");
				goto fail;
			}
			targets = nm;
			cap = nc;
		}
		for (size_t t = 0; t < n_tok; t++) {
			all[n_ids + t] = ids[t];
			targets[n_ids + t] = mask ? mask[t] : 1;
		}
		while (mask != NULL && n_prompt < n_tok && !mask[n_prompt])
			n_prompt++;
		free(ids);
		free(mask);
		n_ids += n_tok;
		len[i] = (uint32_t)n_tok;
		prompt[i] = (uint32_t)n_prompt;
	}
	head = sizeof(*h) + 2 * n * sizeof(uint32_t);
	if ((buf = malloc(head + n_ids * (sizeof(int32_t) + 1))) == NULL) {
		snprintf(err, err_len, "out of memory");
		goto fail;
	}
	h = (struct tc_header *)buf;
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, "FTTOKENS", 8);
	h->version = TOKCACHE_VERSION;
	h->n = n;
	h->n_ids = n_ids;
	memcpy(h->key, k->hex, 64);
	memcpy(buf + sizeof(*h), len, n * sizeof(uint32_t));
	memcpy(buf + sizeof(*h) + n * sizeof(uint32_t), prompt, n * sizeof(uint32_t));
	if (n_ids > 0) {
		memcpy(buf + head, all, n_ids * sizeof(int32_t));
		memcpy(buf + head + n_ids * sizeof(int32_t), targets, n_ids);
	}
	crypto_generichash(h->checksum, sizeof(h->checksum), (unsigned char *)buf + sizeof(*h),
	    head - sizeof(*h) + n_ids * (sizeof(int32_t) + 1), NULL, 0);
	form_view(out, buf, head + n_ids * (sizeof(int32_t) + 1));
	free(len);
	free(prompt);
	free(all);
	free(targets);
	return 0;
fail:
	free(len);
	free(prompt);
	free(all);
	free(targets);
	return -1;
}

int
tokcache_dataset_form(struct ftuned *d, const struct dataset_info *di,
    const struct model_info *m, const char *tmpl, struct tokcache_form *out, int *hit,
    char *err, size_t err_len)
{
	int text = di->kind == DATASET_KIND_TEXT, code = FT__CODE__INVALID_ARGUMENT;
	struct tokcache_key k;
	struct dataset *ds = NULL;
	fte_tokenizer *tok = NULL;
	struct chat_format fmt = { 0 };
	char why[256];

	if (tokcache_key_init(&k, di->hash, di->train_path, m, text ? NULL : tmpl, 0, err,
	    err_len) != 0)
		return FT__CODE__INTERNAL;
	if (tokcache_get(d, &k, out, why, sizeof(why)) == 0) {
		*hit = 1;
		return FT__CODE__OK;
	}
	if (fte_tokenizer_load(m->tokenizer, &tok) != FTE_OK) {
		snprintf(err, err_len, "%s", fte_last_error());
		goto out;
	}
	if (!text && chat_format_open(&d->cfg, tmpl, m->dir, NULL, tok, &fmt, err, err_len) != 0)
		goto out;
	code = FT__CODE__INTERNAL;
	if (dataset_load_jsonl(di->train_path, text ? DATASET_KIND_TEXT : DATASET_KIND_INSTRUCT,
	    &ds, err, err_len) != 0 ||
	    tokcache_tokenize(&k, ds, tok, text ? NULL : &fmt, 0, TOKCACHE_COUNT_MAX, out, err,
	    err_len) != 0)
		goto out;
	if (out->n == dataset_count(ds))
		tokcache_put(d, &k, out);
	*hit = 0;
	code = FT__CODE__OK;
out:
	dataset_free(ds);
	chat_format_free(&fmt);
	fte_tokenizer_free(tok);
	return code;
}

void
tokcache_form_stats(const struct tokcache_form *f, uint64_t seq_len, struct tokcache_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->counted = f->n;
	st->min = f->n ? UINT64_MAX : 0;
	for (size_t i = 0; i < f->n; i++) {
		st->tokens += f->len[i];
		st->prompt_tokens += f->n_prompt[i];
		st->min = f->len[i] < st->min ? f->len[i] : st->min;
		st->max = f->len[i] > st->max ? f->len[i] : st->max;
		st->longer += seq_len > 0 && f->len[i] > seq_len + 1; /* as training cuts rows */
	}
}

void
tokcache_remove_dataset(struct ftuned *d, const char *dataset_hash)
{
	char dir[PATH_MAX], path[PATH_MAX];
	size_t len = strlen(dataset_hash), n = 0;
	struct dirent *e;
	DIR *dd;

	cache_dir(d, dir, sizeof(dir));
	pthread_mutex_lock(&tc_lock);
	if ((dd = opendir(dir)) != NULL) {
		while ((e = readdir(dd)) != NULL) {
			if (strncmp(e->d_name, dataset_hash, len) != 0 || e->d_name[len] != '-')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			n += unlink(path) == 0;
		}
		closedir(dd);
	}
	pthread_mutex_unlock(&tc_lock);
	if (n > 0)
		log_info("tokcache: deleted %zu entr%s of dataset %.12s", n, n == 1 ? "y" : "ies",
		    dataset_hash);
}

void
tokcache_form_free(struct tokcache_form *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}
