/*
 * auth.c - signed requests for the TCP transport.
 *
 * The replay cache holds every nonce accepted within the skew window, in
 * an open-addressed hash table that is rebuilt without expired entries when
 * it fills; a request older than the window is refused by its timestamp, so
 * forgetting older nonces is safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sodium.h>

#include "auth.h"
#include "ft_wire.h"
#include "log.h"

#define KEYS_MAX 1024
#define NAME_MAX_LEN 64
#define CACHE_SLOTS 65536 /* nonces held at once; at most half filled */

struct key {
	char name[NAME_MAX_LEN];
	uint64_t uid;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

struct slot {
	uint8_t nonce[FT_NONCE_BYTES];
	int64_t timestamp; /* 0: empty */
};

/* An immutable set of keys; SIGHUP swaps in a new one (auth_reload). */
struct keyset {
	int n;
	struct key keys[];
};

struct auth {
	int max_skew;
	pthread_mutex_t lock;         /* guards keys, cache and used */
	struct keyset *keys;
	struct slot *cache;
	size_t used;
};

/* A key names the uid its requests act as, so whoever may write the file
 * may act as any user: only root and the daemon's own user may own it, and
 * nobody else (group or others) may write it. */
static int
keys_file_trusted(int fd, const char *keys_path, char *err, size_t err_len)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		snprintf(err, err_len, "%s: %s", keys_path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "%s: not a regular file", keys_path);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, err_len, "%s: owned by uid %lu; it must belong to root or to the "
		    "daemon's user (uid %lu)", keys_path, (unsigned long)st.st_uid,
		    (unsigned long)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, err_len, "%s: mode %03o lets other users add keys; refused "
		    "(chmod go-w %s)", keys_path, (unsigned)(st.st_mode & 0777), keys_path);
		return -1;
	}
	return 0;
}

/* Reads keys_path into a new set (absent: an empty one).  0 and *out, or
 * -1 with "path:line: problem" in err. */
static int
keys_load(const char *keys_path, struct keyset **out, char *err, size_t err_len)
{
	struct keyset *set;
	char line[512];
	FILE *f;
	int fd, lineno = 0;

	if ((set = calloc(1, sizeof(*set) + KEYS_MAX * sizeof(set->keys[0]))) == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if ((fd = open(keys_path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT) {
			snprintf(err, err_len, "%s: %s", keys_path, strerror(errno));
			free(set);
			return -1;
		}
		*out = set;
		return 0;
	}
	if (keys_file_trusted(fd, keys_path, err, err_len) != 0 ||
	    ((f = fdopen(fd, "r")) == NULL &&
	    snprintf(err, err_len, "%s: %s", keys_path, strerror(errno)) >= 0)) {
		close(fd);
		free(set);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char name[NAME_MAX_LEN + 1], hex[130];
		unsigned long long uid;
		struct key *k;
		size_t pk_len;

		lineno++;
		if (line[strspn(line, " \t")] == '#' || line[strspn(line, " \t\r\n")] == '\0')
			continue;
		k = &set->keys[set->n < KEYS_MAX ? set->n : 0];
		if (set->n == KEYS_MAX || sscanf(line, "%64s %llu %129s", name, &uid, hex) != 3 ||
		    sodium_hex2bin(k->pk, sizeof(k->pk), hex, strlen(hex), NULL, &pk_len, NULL) != 0 ||
		    pk_len != sizeof(k->pk)) {
			snprintf(err, err_len, "%s:%d: expected 'NAME UID PUBLIC_KEY_HEX' (%d keys at most)",
			    keys_path, lineno, KEYS_MAX);
			fclose(f);
			free(set);
			return -1;
		}
		snprintf(k->name, sizeof(k->name), "%s", name);
		k->uid = uid;
		set->n++;
	}
	fclose(f);
	*out = set;
	return 0;
}

int
auth_open(const char *keys_path, int max_skew_s, struct auth **out, char *err, size_t err_len)
{
	struct auth *a;

	if (sodium_init() < 0) {
		snprintf(err, err_len, "libsodium failed to initialise");
		return -1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->cache = calloc(CACHE_SLOTS, sizeof(*a->cache))) == NULL) {
		free(a);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	a->max_skew = max_skew_s;
	pthread_mutex_init(&a->lock, NULL);
	if (keys_load(keys_path, &a->keys, err, err_len) != 0) {
		auth_close(a);
		return -1;
	}
	log_info("remote access: %d key%s from %s", a->keys->n, a->keys->n == 1 ? "" : "s",
	    keys_path);
	*out = a;
	return 0;
}

int
auth_reload(struct auth *a, const char *keys_path, int *n_keys, char *err, size_t err_len)
{
	struct keyset *fresh, *old;

	if (keys_load(keys_path, &fresh, err, err_len) != 0)
		return -1;
	pthread_mutex_lock(&a->lock);
	old = a->keys;
	a->keys = fresh;
	pthread_mutex_unlock(&a->lock);
	free(old);
	*n_keys = fresh->n;
	return 0;
}

void
auth_close(struct auth *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a->keys);
	free(a->cache);
	free(a);
}

static size_t
slot_of(const uint8_t *nonce)
{
	uint64_t h;

	memcpy(&h, nonce, sizeof(h)); /* nonces are random: their bytes are a hash */
	return (size_t)(h % CACHE_SLOTS);
}

/* Drops entries older than the window by reinserting the live ones. */
static void
cache_expire(struct auth *a, int64_t now)
{
	struct slot *old = a->cache, *fresh = calloc(CACHE_SLOTS, sizeof(*fresh));

	if (fresh == NULL)
		return;
	a->used = 0;
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		size_t j;

		if (old[i].timestamp == 0 || old[i].timestamp < now - a->max_skew)
			continue;
		for (j = slot_of(old[i].nonce); fresh[j].timestamp != 0; j = (j + 1) % CACHE_SLOTS)
			;
		fresh[j] = old[i];
		a->used++;
	}
	free(old);
	a->cache = fresh;
}

/* Records the nonce; 0 if new, -1 if seen (a replay) or the cache is full. */
static int
cache_insert(struct auth *a, const uint8_t *nonce, int64_t ts, int64_t now)
{
	size_t j;

	if (a->used >= CACHE_SLOTS / 2)
		cache_expire(a, now);
	if (a->used >= CACHE_SLOTS / 2)
		return -1; /* more fresh requests than the window holds: refuse, don't forget */
	for (j = slot_of(nonce); a->cache[j].timestamp != 0; j = (j + 1) % CACHE_SLOTS)
		if (memcmp(a->cache[j].nonce, nonce, FT_NONCE_BYTES) == 0)
			return -1;
	memcpy(a->cache[j].nonce, nonce, FT_NONCE_BYTES);
	a->cache[j].timestamp = ts;
	a->used++;
	return 0;
}

int
auth_verify(struct auth *a, const void *buf, size_t len, uint64_t *uid, uint8_t **req,
    size_t *req_len, char *why, size_t why_len)
{
	Ft__SignedRequest *s = ft__signed_request__unpack(NULL, len, buf);
	int64_t now = (int64_t)time(NULL);
	struct key k;
	int found = 0;
	uint8_t *msg = NULL;
	size_t msg_len;
	int code = FT__CODE__UNAUTHENTICATED;

	if (s == NULL) {
		snprintf(why, why_len, "requests over TCP must be signed (ft.SignedRequest)");
		return FT__CODE__UNAUTHENTICATED;
	}
	/* A copy of the key: a reload may free the set while this request is
	 * checked against the key it found. */
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->keys->n && !found; i++)
		if (strcmp(a->keys->keys[i].name, s->key_id) == 0) {
			k = a->keys->keys[i];
			found = 1;
		}
	pthread_mutex_unlock(&a->lock);
	if (!found) {
		snprintf(why, why_len, "unknown key '%.64s'", s->key_id);
	} else if (s->nonce.len != FT_NONCE_BYTES || s->signature.len != crypto_sign_BYTES) {
		snprintf(why, why_len, "malformed signature or nonce");
	} else if (s->timestamp < now - a->max_skew || s->timestamp > now + a->max_skew) {
		snprintf(why, why_len, "request signed at %lld, more than %d s from the daemon's clock",
		    (long long)s->timestamp, a->max_skew);
	} else if (ft_signed_message(s->request.data, s->request.len, s->timestamp, s->nonce.data,
	    s->nonce.len, &msg, &msg_len) != 0) {
		snprintf(why, why_len, "out of memory");
		code = FT__CODE__RESOURCE_EXHAUSTED;
	} else if (crypto_sign_verify_detached(s->signature.data, msg, msg_len, k.pk) != 0) {
		snprintf(why, why_len, "bad signature for key '%s'", k.name);
	} else {
		/* Only a verified request may take a place in the replay cache. */
		pthread_mutex_lock(&a->lock);
		if (cache_insert(a, s->nonce.data, s->timestamp, now) != 0)
			snprintf(why, why_len, "replayed request (nonce already used) or too many at once");
		else
			code = FT__CODE__OK;
		pthread_mutex_unlock(&a->lock);
	}
	if (code == FT__CODE__OK) {
		if ((*req = malloc(s->request.len ? s->request.len : 1)) == NULL) {
			snprintf(why, why_len, "out of memory");
			code = FT__CODE__RESOURCE_EXHAUSTED;
		} else {
			memcpy(*req, s->request.data, s->request.len);
			*req_len = s->request.len;
			*uid = k.uid;
		}
	}
	free(msg);
	ft__signed_request__free_unpacked(s, NULL);
	return code;
}
