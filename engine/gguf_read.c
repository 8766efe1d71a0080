/*
 * gguf_read.c - the GGUF v2/v3 reader: header, metadata and tensor infos of
 * a file in memory or memory-mapped, every count, string and array checked
 * against the file's length (layout: gguf.c).  It knows no block formats,
 * so that tokenizers read the metadata without the model code; gguf.c's
 * fte_gguf_parse / fte_gguf_open add the check of every tensor's extent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"

#define GGUF_ALIGN 32                   /* general.alignment when absent */

typedef struct cursor {
	const uint8_t *p;
	size_t n, off;
} cursor;

static int
cur_take(cursor *c, void *dst, size_t n)
{
	if (c->n - c->off < n)
		return -1;
	memcpy(dst, c->p + c->off, n);
	c->off += n;
	return 0;
}

/* cur_str reads a GGUF string; *s points into the file. */
static int
cur_str(cursor *c, const char **s, uint64_t *len)
{
	if (cur_take(c, len, 8) != 0 || c->n - c->off < *len)
		return -1;
	*s = (const char *)c->p + c->off;
	c->off += (size_t)*len;
	return 0;
}

static size_t
type_size(int t)
{
	static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

	return t >= 0 && t <= FTE_GGUF_FLOAT64 ? sz[t] : 0;
}

void
fte_gguf_close(fte_gguf_file *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->n_kv; i++)
		free(f->kv[i].key);
	for (int i = 0; i < f->n_tensors; i++)
		free(f->tensors[i].name);
	free(f->kv);
	free(f->tensors);
	if (f->map != NULL)
		munmap(f->map, f->map_len);
	free(f->path);
	free(f);
}

/* gguf_kv_parse reads one KV's value at the cursor, checking its extent. */
static int
gguf_kv_parse(cursor *c, fte_gguf_kv *kv)
{
	uint32_t type, at;
	uint64_t n = 1;

	if (cur_take(c, &type, 4) != 0)
		return -1;
	kv->type = (int)type;
	kv->arr_type = -1;
	if (type == FTE_GGUF_ARRAY) {
		if (cur_take(c, &at, 4) != 0 || cur_take(c, &n, 8) != 0 ||
		    at == FTE_GGUF_ARRAY || at > FTE_GGUF_FLOAT64)
			return -1;
		kv->arr_type = (int)at;
		type = at;
	} else if (type > FTE_GGUF_FLOAT64) {
		return -1;
	}
	kv->n = n;
	kv->val = c->p + c->off;
	if (type == FTE_GGUF_STRING) {
		for (uint64_t i = 0; i < n; i++) {
			const char *s;
			uint64_t len;
			if (cur_str(c, &s, &len) != 0)
				return -1;
		}
		return 0;
	}
	if (n > (c->n - c->off) / type_size((int)type))
		return -1;
	c->off += (size_t)n * type_size((int)type);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* names_unique refuses a tensor named twice: a loader filling tensors by
 * name would otherwise fill one twice and another never. */
static int
names_unique(const fte_gguf_file *f)
{
	char **names = malloc(((size_t)f->n_tensors + 1) * sizeof(*names));
	int rc = FTE_OK;

	if (names == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	for (int i = 0; i < f->n_tensors; i++)
		names[i] = f->tensors[i].name;
	qsort(names, (size_t)f->n_tensors, sizeof(*names), name_cmp);
	for (int i = 1; i < f->n_tensors && rc == FTE_OK; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			rc = fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\" appears twice", f->path,
			    names[i]);
	free(names);
	return rc;
}

static int
gguf_parse(fte_gguf_file *f, const uint8_t *p, size_t len)
{
	cursor c = {p, len, 0};
	uint64_t nt, nkv;
	char magic[4];

	f->alignment = GGUF_ALIGN;
	if (cur_take(&c, magic, 4) != 0 || memcmp(magic, "GGUF", 4) != 0)
		return fte_error_set(FTE_EFORMAT, "%s: not a GGUF file (bad magic)", f->path);
	if (cur_take(&c, &f->version, 4) != 0 || cur_take(&c, &nt, 8) != 0 ||
	    cur_take(&c, &nkv, 8) != 0)
		return fte_error_set(FTE_EFORMAT, "%s: truncated header", f->path);
	if (f->version < 2 || f->version > 3)
		return fte_error_set(FTE_ENOTSUP, "%s: GGUF version %u not supported", f->path, f->version);
	/* each KV and tensor info takes at least 12 bytes: bound the counts */
	if (nkv > len / 12 || nt > len / 12)
		return fte_error_set(FTE_EFORMAT, "%s: counts exceed the file", f->path);
	f->kv = calloc((size_t)nkv + 1, sizeof(*f->kv));
	f->tensors = calloc((size_t)nt + 1, sizeof(*f->tensors));
	if (f->kv == NULL || f->tensors == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	for (uint64_t i = 0; i < nkv; i++) {
		const char *key;
		uint64_t klen;
		fte_gguf_kv *kv = &f->kv[f->n_kv];
		if (cur_str(&c, &key, &klen) != 0 || (kv->key = strndup(key, (size_t)klen)) == NULL)
			return fte_error_set(FTE_EFORMAT, "%s: metadata %llu: bad key", f->path,
			    (unsigned long long)i);
		f->n_kv++;
		if (gguf_kv_parse(&c, kv) != 0)
			return fte_error_set(FTE_EFORMAT, "%s: metadata \"%s\": bad or truncated value",
			    f->path, kv->key);
		if (strcmp(kv->key, "general.alignment") == 0) {
			int64_t a = fte_gguf_kv_int(kv);
			if (a <= 0 || a > 65536 || (a & (a - 1)) != 0)
				return fte_error_set(FTE_EFORMAT, "%s: general.alignment %lld is not a power of two",
				    f->path, (long long)a);
			f->alignment = (uint32_t)a;
		}
	}
	for (uint64_t i = 0; i < nt; i++) {
		fte_gguf_tensor *t = &f->tensors[f->n_tensors];
		const char *name;
		uint64_t nlen, ne;
		uint32_t nd, type;
		if (cur_str(&c, &name, &nlen) != 0 || (t->name = strndup(name, (size_t)nlen)) == NULL)
			return fte_error_set(FTE_EFORMAT, "%s: tensor %llu: bad name", f->path,
			    (unsigned long long)i);
		f->n_tensors++;
		if (cur_take(&c, &nd, 4) != 0 || nd < 1 || nd > 4)
			return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": bad dimension count",
			    f->path, t->name);
		t->ndim = (int)nd;
		t->numel = 1;
		for (uint32_t d = 0; d < nd; d++) {
			if (cur_take(&c, &ne, 8) != 0 || ne > (uint64_t)len || (ne && t->numel > len / ne))
				return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": bad shape",
				    f->path, t->name);
			t->ne[d] = (int64_t)ne;
			t->numel *= (size_t)ne;
		}
		if (cur_take(&c, &type, 4) != 0 || cur_take(&c, &t->offset, 8) != 0)
			return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": truncated info",
			    f->path, t->name);
		t->type = (int)type;
	}
	c.off = (c.off + f->alignment - 1) / f->alignment * f->alignment;
	if (c.off > len)
		return fte_error_set(FTE_EFORMAT, "%s: no data section", f->path);
	f->data = p + c.off;
	f->data_len = len - c.off;
	return names_unique(f);
}

/* fte__gguf_shown: a short name from the file, as messages may show it (letters,
 * digits, '.', '_', '-'), else "?": a message never quotes other bytes. */
const char *
fte__gguf_shown(const char *s, size_t len, char out[32])
{
	if (s == NULL || len == 0 || len >= 32)
		return "?";
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return "?";
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

const fte_gguf_kv *
fte_gguf_kv_find(const fte_gguf_file *f, const char *key)
{
	for (int i = 0; i < f->n_kv; i++)
		if (strcmp(f->kv[i].key, key) == 0)
			return &f->kv[i];
	return NULL;
}

const fte_gguf_tensor *
fte_gguf_tensor_find(const fte_gguf_file *f, const char *name)
{
	for (int i = 0; i < f->n_tensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

static double
num_at(int type, const uint8_t *p)
{
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
	    float f32; uint64_t u64; int64_t i64; double f64; } v;

	memcpy(&v, p, type_size(type));
	switch (type) {
	case FTE_GGUF_UINT8: case FTE_GGUF_BOOL: return v.u8;
	case FTE_GGUF_INT8: return v.i8;
	case FTE_GGUF_UINT16: return v.u16;
	case FTE_GGUF_INT16: return v.i16;
	case FTE_GGUF_UINT32: return v.u32;
	case FTE_GGUF_INT32: return v.i32;
	case FTE_GGUF_FLOAT32: return v.f32;
	case FTE_GGUF_UINT64: return (double)v.u64;
	case FTE_GGUF_INT64: return (double)v.i64;
	case FTE_GGUF_FLOAT64: return v.f64;
	}
	return 0;
}

int64_t
fte_gguf_kv_int(const fte_gguf_kv *kv)
{
	if (kv == NULL || kv->type == FTE_GGUF_ARRAY || kv->type == FTE_GGUF_STRING)
		return 0;
	if (kv->type == FTE_GGUF_UINT64 || kv->type == FTE_GGUF_INT64) {
		int64_t x;
		memcpy(&x, kv->val, 8);
		return x;
	}
	double d = num_at(kv->type, kv->val);
	/* a float that no int64 holds (or NaN) reads as 0, not as UB */
	return d >= -0x1p63 && d < 0x1p63 ? (int64_t)d : 0;
}

double
fte_gguf_kv_float(const fte_gguf_kv *kv)
{
	if (kv == NULL || kv->type == FTE_GGUF_ARRAY || kv->type == FTE_GGUF_STRING)
		return 0;
	return num_at(kv->type, kv->val);
}

double
fte_gguf_kv_arr_num(const fte_gguf_kv *kv, uint64_t i)
{
	if (kv == NULL || kv->type != FTE_GGUF_ARRAY || kv->arr_type == FTE_GGUF_STRING || i >= kv->n)
		return 0;
	return num_at(kv->arr_type, kv->val + i * type_size(kv->arr_type));
}

const char *
fte_gguf_kv_str(const fte_gguf_kv *kv, uint64_t i, uint64_t *len)
{
	const uint8_t *p;

	if (kv == NULL || i >= kv->n || !(kv->type == FTE_GGUF_STRING ||
	    (kv->type == FTE_GGUF_ARRAY && kv->arr_type == FTE_GGUF_STRING)))
		return NULL;
	/* the strings were bounds-checked when the file was opened */
	p = kv->val;
	for (uint64_t k = 0;; k++) {
		uint64_t n;
		memcpy(&n, p, 8);
		if (k == i) {
			*len = n;
			return (const char *)p + 8;
		}
		p += 8 + n;
	}
}

int
fte_gguf_kv_strs(const fte_gguf_kv *kv, const char **s, uint64_t *len)
{
	const uint8_t *p;

	if (kv == NULL || kv->type != FTE_GGUF_ARRAY || kv->arr_type != FTE_GGUF_STRING)
		return FTE_EINVAL;
	p = kv->val;
	for (uint64_t k = 0; k < kv->n; k++) {
		memcpy(&len[k], p, 8);
		s[k] = (const char *)p + 8;
		p += 8 + len[k];
	}
	return FTE_OK;
}

int
fte__gguf_read(const char *path, const uint8_t *buf, size_t len, fte_gguf_file **out)
{
	fte_gguf_file *f;
	int rc;

	if ((f = calloc(1, sizeof(*f))) == NULL || (f->path = strdup(path)) == NULL) {
		free(f);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	if ((rc = gguf_parse(f, buf, len)) != FTE_OK) {
		fte_gguf_close(f);
		return rc;
	}
	*out = f;
	return FTE_OK;
}

int
fte__gguf_map(const char *path, fte_gguf_file **out)
{
	fte_gguf_file *f;
	struct stat st;
	void *map;
	int fd, rc;

	if ((rc = fte__file_open(path, &fd)) != FTE_OK)
		return rc;
	if (fstat(fd, &st) != 0 || st.st_size < 24) {
		close(fd);
		return fte_error_set(FTE_EFORMAT, "%s: not a GGUF file (too short)", path);
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return fte_error_set(FTE_EIO, "%s: mmap failed: %s", path, strerror(errno));
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->path = strdup(path)) == NULL) {
		free(f);
		munmap(map, (size_t)st.st_size);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	f->map = map;
	f->map_len = (size_t)st.st_size;
	if ((rc = gguf_parse(f, map, (size_t)st.st_size)) != FTE_OK) {
		fte_gguf_close(f);
		return rc;
	}
	*out = f;
	return FTE_OK;
}
