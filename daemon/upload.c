/* upload.c - chunked dataset uploads; upload.h describes them.
 *
 * One table under a mutex.  A chunk is written outside the lock: the
 * upload is marked busy, so a second writer, a commit or the reaper leaves
 * it alone meanwhile.  The BLAKE2b of the bytes received is kept running,
 * so the commit's hash check costs no second read. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fsutil.h"
#include "ft_wire.h"
#include "log.h"
#include "upload.h"

struct upload {
	char id[UPLOAD_ID_LEN + 1];     /* "" = free slot */
	uint32_t uid;
	uint64_t size, received;
	unsigned char hash[32];         /* expected, from begin */
	crypto_generichash_state st;    /* over the bytes received */
	int fd;
	int busy;                       /* a chunk is being written */
	uint64_t touched_ms;
};

struct uploads {
	struct ftuned *d;
	int dirfd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t reaper;
	int stopping;
	struct upload slot[UPLOADS_MAX];
};

/* slot_drop closes and deletes an upload's file; the lock is held. */
static void
slot_drop(struct uploads *u, struct upload *s)
{
	close(s->fd);
	if (unlinkat(u->dirfd, s->id, 0) != 0 && errno != ENOENT)
		log_warn("uploads: %s: %s", s->id, strerror(errno));
	s->id[0] = '\0';
}

static void *
reaper_main(void *arg)
{
	struct uploads *u = arg;

	pthread_mutex_lock(&u->mu);
	while (!u->stopping) {
		struct timespec ts;
		uint64_t now = ftuned_now_ms(), idle = (uint64_t)u->d->cfg.data_upload_timeout * 1000;

		for (size_t i = 0; i < UPLOADS_MAX; i++) {
			struct upload *s = &u->slot[i];

			if (s->id[0] && !s->busy && now - s->touched_ms >= idle) {
				log_info("uploads: uid %u's upload %s expired at %llu of %llu bytes",
				    s->uid, s->id, (unsigned long long)s->received,
				    (unsigned long long)s->size);
				slot_drop(u, s);
			}
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&u->cv, &u->mu, &ts);
	}
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

int
uploads_start(struct ftuned *d, struct uploads **out, char *err, size_t err_len)
{
	struct uploads *u;
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/uploads", d->cfg.state_dir);
	/* Whatever is there was abandoned by an earlier run. */
	fs_rm_rf(dir);
	if (mkdir(dir, 0700) != 0) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (sodium_init() < 0 || (u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(err, err_len, "uploads: out of memory");
		return -1;
	}
	u->d = d;
	if ((u->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		free(u);
		return -1;
	}
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	if (pthread_create(&u->reaper, NULL, reaper_main, u) != 0) {
		snprintf(err, err_len, "uploads: cannot start the reaper thread");
		close(u->dirfd);
		free(u);
		return -1;
	}
	*out = u;
	return 0;
}

void
uploads_stop(struct uploads *u)
{
	if (u == NULL)
		return;
	pthread_mutex_lock(&u->mu);
	u->stopping = 1;
	pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
	pthread_join(u->reaper, NULL);
	for (size_t i = 0; i < UPLOADS_MAX; i++)
		if (u->slot[i].id[0])
			slot_drop(u, &u->slot[i]);
	close(u->dirfd);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u);
}

uint32_t
uploads_chunk_max(const struct uploads *u)
{
	uint64_t lim = (uint64_t)u->d->cfg.rpc_max_message;

	lim = lim < UPLOAD_CHUNK_MAX ? lim : UPLOAD_CHUNK_MAX;
	return (uint32_t)(lim / 16 * 15);       /* the rest for the envelope */
}

/* slot_find returns uid's upload id; the lock is held. */
static int
slot_find(struct uploads *u, uint32_t uid, const char *id, struct upload **out, char *err,
    size_t err_len)
{
	for (size_t i = 0; i < UPLOADS_MAX; i++) {
		struct upload *s = &u->slot[i];

		if (s->id[0] == '\0' || strcmp(s->id, id) != 0)
			continue;
		if (s->uid != uid) {
			snprintf(err, err_len, "upload %s belongs to uid %u", id, s->uid);
			return FT__CODE__PERMISSION_DENIED;
		}
		*out = s;
		return FT__CODE__OK;
	}
	snprintf(err, err_len, "no upload '%.40s' (finished, or expired after %d s untouched)", id,
	    u->d->cfg.data_upload_timeout);
	return FT__CODE__NOT_FOUND;
}

int
uploads_begin(struct uploads *u, uint32_t uid, uint64_t size, const char *hash,
    char id[UPLOAD_ID_LEN + 1], uint64_t *received, char *err, size_t err_len)
{
	unsigned char want[32], raw[UPLOAD_ID_LEN / 2];
	struct upload *free_slot = NULL;
	size_t n, mine = 0;
	int code = FT__CODE__OK;

	if (sodium_hex2bin(want, sizeof(want), hash, strlen(hash), NULL, &n, NULL) != 0 ||
	    n != sizeof(want) || strlen(hash) != 2 * sizeof(want)) {
		snprintf(err, err_len, "the upload's blake2b must be 64 hex digits");
		return FT__CODE__INVALID_ARGUMENT;
	}
	if (size > (uint64_t)u->d->cfg.data_max_bytes) {
		snprintf(err, err_len, "a file of %llu bytes is over data_max_bytes (%llu)",
		    (unsigned long long)size, (unsigned long long)u->d->cfg.data_max_bytes);
		return FT__CODE__RESOURCE_EXHAUSTED;
	}
	pthread_mutex_lock(&u->mu);
	for (size_t i = 0; i < UPLOADS_MAX; i++) {
		struct upload *s = &u->slot[i];

		if (s->id[0] == '\0') {
			free_slot = free_slot ? free_slot : s;
			continue;
		}
		if (s->uid != uid)
			continue;
		if (s->size == size && memcmp(s->hash, want, sizeof(want)) == 0) {
			/* The same file again: resume it. */
			memcpy(id, s->id, UPLOAD_ID_LEN + 1);
			*received = s->received;
			s->touched_ms = ftuned_now_ms();
			goto out;
		}
		mine++;
	}
	if (mine >= (size_t)u->d->cfg.data_uploads_per_user) {
		snprintf(err, err_len, "uid %u has %zu uploads open (data_uploads_per_user); finish "
		    "them or wait %d s for them to expire", uid, mine, u->d->cfg.data_upload_timeout);
		code = FT__CODE__RESOURCE_EXHAUSTED;
		goto out;
	}
	if (free_slot == NULL) {
		snprintf(err, err_len, "the daemon has %d uploads open; try again later", UPLOADS_MAX);
		code = FT__CODE__RESOURCE_EXHAUSTED;
		goto out;
	}
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(free_slot->id, sizeof(free_slot->id), raw, sizeof(raw));
	free_slot->fd = openat(u->dirfd, free_slot->id,
	    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (free_slot->fd < 0) {
		snprintf(err, err_len, "uploads: %s", strerror(errno));
		free_slot->id[0] = '\0';
		code = FT__CODE__INTERNAL;
		goto out;
	}
	free_slot->uid = uid;
	free_slot->size = size;
	free_slot->received = 0;
	free_slot->busy = 0;
	memcpy(free_slot->hash, want, sizeof(want));
	crypto_generichash_init(&free_slot->st, NULL, 0, sizeof(free_slot->hash));
	free_slot->touched_ms = ftuned_now_ms();
	memcpy(id, free_slot->id, UPLOAD_ID_LEN + 1);
	*received = 0;
	log_info("uploads: uid %u began upload %s of %llu bytes", uid, id,
	    (unsigned long long)size);
out:
	pthread_mutex_unlock(&u->mu);
	return code;
}

int
uploads_append(struct uploads *u, uint32_t uid, const char *id, uint64_t offset,
    const void *data, size_t len, uint64_t *size, uint64_t *received, char *err,
    size_t err_len)
{
	struct upload *s;
	size_t done = 0;
	int code;

	pthread_mutex_lock(&u->mu);
	if ((code = slot_find(u, uid, id, &s, err, err_len)) != FT__CODE__OK)
		goto out;
	code = FT__CODE__INVALID_ARGUMENT;
	if (s->busy) {
		snprintf(err, err_len, "upload %s: another chunk is being written", id);
		code = FT__CODE__UNAVAILABLE;
	} else if (len > uploads_chunk_max(u)) {
		snprintf(err, err_len, "a chunk of %zu bytes is over the %u this daemon takes", len,
		    uploads_chunk_max(u));
	} else if (offset != s->received) {
		snprintf(err, err_len, "chunk at offset %llu, but upload %s has %llu bytes: send on "
		    "from there", (unsigned long long)offset, id, (unsigned long long)s->received);
	} else if (len > s->size - s->received) {
		snprintf(err, err_len, "chunk of %zu bytes at offset %llu runs past the upload's "
		    "size of %llu bytes", len, (unsigned long long)offset,
		    (unsigned long long)s->size);
	} else {
		code = FT__CODE__OK;
		s->busy = 1;
	}
	if (code != FT__CODE__OK)
		goto out;
	pthread_mutex_unlock(&u->mu);

	while (done < len) {
		ssize_t w = pwrite(s->fd, (const char *)data + done, len - done,
		    (off_t)(offset + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	if (done < len) {
		code = errno == ENOSPC || errno == EDQUOT ? FT__CODE__RESOURCE_EXHAUSTED :
		    FT__CODE__INTERNAL;
		snprintf(err, err_len, "upload %s: writing: %s", id, strerror(errno));
		if (ftruncate(s->fd, (off_t)offset) != 0)
			log_warn("uploads: %s: %s", id, strerror(errno));
	} else {
		crypto_generichash_update(&s->st, data, len);
	}

	pthread_mutex_lock(&u->mu);
	s->busy = 0;
	if (code == FT__CODE__OK)
		s->received += len;
	s->touched_ms = ftuned_now_ms();
out:
	if (code == FT__CODE__OK) {
		*size = s->size;
		*received = s->received;
	}
	pthread_mutex_unlock(&u->mu);
	return code;
}

int
uploads_status(struct uploads *u, uint32_t uid, const char *id, uint64_t *size,
    uint64_t *received, char *err, size_t err_len)
{
	struct upload *s;
	int code;

	pthread_mutex_lock(&u->mu);
	if ((code = slot_find(u, uid, id, &s, err, err_len)) == FT__CODE__OK) {
		*size = s->size;
		*received = s->received;
		s->touched_ms = ftuned_now_ms();
	}
	pthread_mutex_unlock(&u->mu);
	return code;
}

int
uploads_take(struct uploads *u, uint32_t uid, const char *id, int *fd, uint64_t *size,
    char *err, size_t err_len)
{
	crypto_generichash_state st;
	unsigned char got[32];
	char hex[65];
	struct upload *s;
	int code;

	pthread_mutex_lock(&u->mu);
	if ((code = slot_find(u, uid, id, &s, err, err_len)) != FT__CODE__OK)
		goto out;
	if (s->busy) {
		snprintf(err, err_len, "upload %s: a chunk is being written", id);
		code = FT__CODE__UNAVAILABLE;
		goto out;
	}
	if (s->received != s->size) {
		snprintf(err, err_len, "upload %s has %llu of %llu bytes: send the rest first", id,
		    (unsigned long long)s->received, (unsigned long long)s->size);
		code = FT__CODE__FAILED_PRECONDITION;
		goto out;
	}
	st = s->st;
	crypto_generichash_final(&st, got, sizeof(got));
	if (memcmp(got, s->hash, sizeof(got)) != 0) {
		sodium_bin2hex(hex, sizeof(hex), got, sizeof(got));
		snprintf(err, err_len, "upload %s: the %llu bytes received have BLAKE2b %s, not the "
		    "hash given at its start; it is deleted", id, (unsigned long long)s->size, hex);
		log_warn("uploads: uid %u: %s", uid, err);
		slot_drop(u, s);
		code = FT__CODE__INVALID_ARGUMENT;
		goto out;
	}
	/* The descriptor keeps the bytes until the commit closes it. */
	if (unlinkat(u->dirfd, s->id, 0) != 0)
		log_warn("uploads: %s: %s", s->id, strerror(errno));
	*fd = s->fd;
	*size = s->size;
	s->id[0] = '\0';
out:
	pthread_mutex_unlock(&u->mu);
	return code;
}
