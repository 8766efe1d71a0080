/*
 * safetensors.c - the safetensors format: a validating, memory-mapping reader
 * and an atomic writer (see fte_io_internal.h for the layout).
 *
 * Nothing in a header is trusted: the header length is checked against the
 * file, each entry's dtype, shape and data_offsets against the data section,
 * and the spans against each other, before any tensor byte is read.
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

static const struct {
	const char *name;
	size_t size;
} st_dtypes[FTE_ST_NDTYPES] = {
	[FTE_ST_F32] = {"F32", 4},   [FTE_ST_F16] = {"F16", 2},
	[FTE_ST_BF16] = {"BF16", 2}, [FTE_ST_F64] = {"F64", 8},
	[FTE_ST_I64] = {"I64", 8},   [FTE_ST_I32] = {"I32", 4},
	[FTE_ST_I16] = {"I16", 2},   [FTE_ST_I8] = {"I8", 1},
	[FTE_ST_U8] = {"U8", 1},     [FTE_ST_BOOL] = {"BOOL", 1},
	[FTE_ST_F8_E4M3] = {"F8_E4M3", 1}, [FTE_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *
fte_st_dtype_name(int dtype)
{
	return dtype >= 0 && dtype < FTE_ST_NDTYPES ? st_dtypes[dtype].name : "?";
}

size_t
fte_st_dtype_size(int dtype)
{
	return dtype >= 0 && dtype < FTE_ST_NDTYPES ? st_dtypes[dtype].size : 0;
}

static int
st_dtype_parse(const char *s)
{
	for (int i = 0; i < FTE_ST_NDTYPES; i++)
		if (strcmp(s, st_dtypes[i].name) == 0)
			return i;
	return -1;
}

void
fte_st_close(fte_st_file *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->n_tensors; i++)
		free(f->tensors[i].name);
	free(f->tensors);
	json_decref(f->metadata);
	if (f->map != NULL)
		munmap(f->map, f->map_len);
	free(f->path);
	free(f);
}

/* st_entry_parse validates one header entry against a data section of
 * data_len bytes. */
static int
st_entry_parse(const char *path, const char *name, json_t *v, size_t data_len,
    fte_st_tensor *t)
{
	json_t *dtype = json_object_get(v, "dtype");
	json_t *shape = json_object_get(v, "shape");
	json_t *offs = json_object_get(v, "data_offsets");
	size_t numel = 1, bytes;
	json_int_t b, e;

	if (!json_is_object(v))
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": entry is not an object",
		    path, name);
	if (!json_is_string(dtype))
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": missing dtype",
		    path, name);
	if ((t->dtype = st_dtype_parse(json_string_value(dtype))) < 0)
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": unknown dtype \"%s\"",
		    path, name, json_string_value(dtype));
	if (!json_is_array(shape) || json_array_size(shape) > FTE_ST_MAX_DIMS)
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": shape is not an array of at most %d sizes",
		    path, name, FTE_ST_MAX_DIMS);
	t->ndim = (int)json_array_size(shape);
	for (int d = 0; d < t->ndim; d++) {
		json_t *s = json_array_get(shape, d);
		json_int_t n = json_is_integer(s) ? json_integer_value(s) : -1;
		if (n < 0)
			return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer",
			    path, name, d);
		/* the product may not exceed the data section, so no overflow */
		if (n > 0 && numel > data_len / (size_t)n)
			return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": shape exceeds the file",
			    path, name);
		t->shape[d] = n;
		numel *= (size_t)n;
	}
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    !json_is_integer(json_array_get(offs, 0)) ||
	    !json_is_integer(json_array_get(offs, 1)))
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": data_offsets is not [begin, end]",
		    path, name);
	b = json_integer_value(json_array_get(offs, 0));
	e = json_integer_value(json_array_get(offs, 1));
	if (b < 0 || e < b || (uint64_t)e > data_len)
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": data_offsets [%lld, %lld] outside the %zu-byte data section",
		    path, name, (long long)b, (long long)e, data_len);
	bytes = numel * st_dtypes[t->dtype].size;
	if (bytes != (size_t)(e - b))
		return fte_error_set(FTE_EFORMAT, "%s: tensor \"%s\": shape and dtype %s need %zu bytes but data_offsets span %lld",
		    path, name, st_dtypes[t->dtype].name, bytes, (long long)(e - b));
	t->numel = numel;
	t->begin = (size_t)b;
	t->end = (size_t)e;
	return FTE_OK;
}

static int
st_span_cmp(const void *a, const void *b)
{
	const fte_st_tensor *x = *(fte_st_tensor *const *)a;
	const fte_st_tensor *y = *(fte_st_tensor *const *)b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* st_overlap_check fails when two non-empty tensors share bytes. */
static int
st_overlap_check(fte_st_file *f)
{
	fte_st_tensor **by = malloc(sizeof(*by) * (size_t)(f->n_tensors + 1));
	size_t last_end = 0;
	const char *last = NULL;
	int rc = FTE_OK;

	if (by == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", f->path);
	for (int i = 0; i < f->n_tensors; i++)
		by[i] = &f->tensors[i];
	qsort(by, (size_t)f->n_tensors, sizeof(*by), st_span_cmp);
	for (int i = 0; i < f->n_tensors; i++) {
		if (by[i]->begin == by[i]->end)
			continue;
		if (last != NULL && by[i]->begin < last_end) {
			rc = fte_error_set(FTE_EFORMAT, "%s: tensors \"%s\" and \"%s\" overlap",
			    f->path, last, by[i]->name);
			break;
		}
		last_end = by[i]->end;
		last = by[i]->name;
	}
	free(by);
	return rc;
}

int
fte_st_parse(const char *path, const uint8_t *buf, size_t len, fte_st_file **out)
{
	fte_st_file *f;
	json_error_t jerr;
	json_t *hdr, *v;
	const char *key;
	uint64_t n = 0;
	int rc = FTE_OK;

	if (len < 8)
		return fte_error_set(FTE_EFORMAT, "%s: truncated: %zu bytes, no header length",
		    path, len);
	for (int i = 7; i >= 0; i--)
		n = n << 8 | buf[i];
	if (n > len - 8)
		return fte_error_set(FTE_EFORMAT, "%s: header length %llu exceeds the file (%zu bytes)",
		    path, (unsigned long long)n, len);
	if (n > FTE_ST_MAX_HEADER || n < 2)
		return fte_error_set(FTE_EFORMAT, "%s: header length %llu out of range",
		    path, (unsigned long long)n);
	hdr = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (hdr == NULL)
		return fte__json_parse_error(path, &jerr);
	if (!json_is_object(hdr)) {
		json_decref(hdr);
		return fte_error_set(FTE_EFORMAT, "%s: header is not a JSON object", path);
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->path = strdup(path)) == NULL ||
	    (f->tensors = calloc(json_object_size(hdr) + 1, sizeof(*f->tensors))) == NULL) {
		json_decref(hdr);
		fte_st_close(f);
		return fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
	}
	f->data = buf + 8 + n;
	f->data_len = len - 8 - (size_t)n;
	json_object_foreach(hdr, key, v) {
		if (strcmp(key, "__metadata__") == 0) {
			const char *mk;
			json_t *mv;
			if (!json_is_object(v)) {
				rc = fte_error_set(FTE_EFORMAT, "%s: __metadata__ is not an object", path);
				break;
			}
			json_object_foreach(v, mk, mv) {
				if (!json_is_string(mv)) {
					rc = fte_error_set(FTE_EFORMAT, "%s: __metadata__ \"%s\" is not a string",
					    path, mk);
					break;
				}
			}
			if (rc != FTE_OK)
				break;
			f->metadata = json_incref(v);
			continue;
		}
		fte_st_tensor *t = &f->tensors[f->n_tensors];
		if ((rc = st_entry_parse(path, key, v, f->data_len, t)) != FTE_OK)
			break;
		if ((t->name = strdup(key)) == NULL) {
			rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
			break;
		}
		f->n_tensors++;
	}
	json_decref(hdr);
	if (rc == FTE_OK)
		rc = st_overlap_check(f);
	if (rc != FTE_OK) {
		fte_st_close(f);
		return rc;
	}
	*out = f;
	return FTE_OK;
}

int
fte_st_open(const char *path, fte_st_file **out)
{
	struct stat st;
	fte_st_file *f;
	void *map;
	int fd, rc;

	if ((rc = fte__file_open(path, &fd)) != FTE_OK)
		return rc;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return fte_error_set(FTE_EIO, "%s: %s", path, strerror(errno));
	}
	if (st.st_size < 8) {
		close(fd);
		return fte_error_set(FTE_EFORMAT, "%s: truncated: %lld bytes, no header length",
		    path, (long long)st.st_size);
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return fte_error_set(FTE_EIO, "%s: mmap failed: %s", path, strerror(errno));
	/* loaders read each tensor once, front to back */
	(void)madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	(void)madvise(map, (size_t)st.st_size, MADV_WILLNEED);
	if ((rc = fte_st_parse(path, map, (size_t)st.st_size, &f)) != FTE_OK) {
		munmap(map, (size_t)st.st_size);
		return rc;
	}
	f->map = map;
	f->map_len = (size_t)st.st_size;
	*out = f;
	return FTE_OK;
}

const fte_st_tensor *
fte_st_find(const fte_st_file *f, const char *name)
{
	for (int i = 0; i < f->n_tensors; i++)
		if (strcmp(f->tensors[i].name, name) == 0)
			return &f->tensors[i];
	return NULL;
}

const char *
fte_st_metadata(const fte_st_file *f, const char *key)
{
	return f->metadata ? json_string_value(json_object_get(f->metadata, key)) : NULL;
}

/* st_pages_drop gives back the mapped file pages wholly inside [p, p+len),
 * read and copied: a load then never holds a file and its weights at once
 * (the private read-only mapping refaults from the file if read again). */
static void
st_pages_drop(const fte_st_file *f, const uint8_t *p, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + len) & ~(page - 1);

	if (f->map != NULL && hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int
fte_st_read_f32(const fte_st_file *f, const fte_st_tensor *t, float *dst)
{
	const uint8_t *p = f->data + t->begin;
	size_t n = t->numel;

	/* the data section has no alignment guarantee: copy, never cast */
#define ST_CONVERT(type, size, expr) \
	for (size_t i = 0; i < n; i++) { type x; memcpy(&x, p + (size) * i, (size)); dst[i] = (expr); }
	switch (t->dtype) {
	case FTE_ST_F32: memcpy(dst, p, n * 4); break;
	case FTE_ST_F16: fte__f16_to_f32_n(dst, p, n); break;
	case FTE_ST_BF16: ST_CONVERT(uint16_t, 2, fte__bf16_to_f32(x)); break;
	case FTE_ST_F64: ST_CONVERT(double, 8, (float)x); break;
	case FTE_ST_I64: ST_CONVERT(int64_t, 8, (float)x); break;
	case FTE_ST_I32: ST_CONVERT(int32_t, 4, (float)x); break;
	case FTE_ST_I16: ST_CONVERT(int16_t, 2, (float)x); break;
	case FTE_ST_I8: ST_CONVERT(int8_t, 1, (float)x); break;
	case FTE_ST_U8: ST_CONVERT(uint8_t, 1, (float)x); break;
	default:
		return fte_error_set(FTE_ENOTSUP, "%s: tensor \"%s\": dtype %s cannot be converted to float32",
		    f->path, t->name, st_dtypes[t->dtype].name);
	}
#undef ST_CONVERT
	st_pages_drop(f, p, n * st_dtypes[t->dtype].size);
	return FTE_OK;
}

/* st_header_build returns the header JSON text for the entries. */
static char *
st_header_build(const fte_st_entry *e, int n, int dtype, const char *const *meta)
{
	json_t *hdr = json_object(), *md = json_object();
	size_t off = 0, esz = st_dtypes[dtype].size;
	char *text = NULL;
	int ok = hdr != NULL && md != NULL;

	ok = ok && json_object_set_new(md, "format", json_string("pt")) == 0;
	for (int i = 0; meta != NULL && meta[i] != NULL && meta[i + 1] != NULL; i += 2)
		ok = ok && json_object_set_new(md, meta[i], json_string(meta[i + 1])) == 0;
	ok = ok && json_object_set(hdr, "__metadata__", md) == 0;
	for (int i = 0; ok && i < n; i++) {
		json_t *t = json_object(), *shape = json_array();
		size_t numel = 1;
		for (int d = 0; d < e[i].ndim; d++) {
			numel *= (size_t)e[i].shape[d];
			ok = ok && json_array_append_new(shape, json_integer(e[i].shape[d])) == 0;
		}
		ok = ok && t != NULL && shape != NULL &&
		    json_object_set_new(t, "dtype", json_string(st_dtypes[dtype].name)) == 0 &&
		    json_object_set(t, "shape", shape) == 0 &&
		    json_object_set_new(t, "data_offsets", json_pack("[II]",
			(json_int_t)off, (json_int_t)(off + numel * esz))) == 0 &&
		    json_object_set(hdr, e[i].name, t) == 0;
		json_decref(shape);
		json_decref(t);
		off += numel * esz;
	}
	if (ok)
		text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(md);
	json_decref(hdr);
	return text;
}

int
fte_st_write(const char *path, const fte_st_entry *e, int n, int dtype,
    const char *const *meta)
{
	static const char spaces[8] = "        ";
	uint8_t lenbuf[8];
	uint16_t half[1024];
	fte__afile af;
	size_t hlen, padded;
	char *hdr;
	int rc;

	if (dtype != FTE_ST_F32 && dtype != FTE_ST_F16 && dtype != FTE_ST_BF16)
		return fte_error_set(FTE_EINVAL, "%s: cannot write dtype %s",
		    path, fte_st_dtype_name(dtype));
	if ((hdr = st_header_build(e, n, dtype, meta)) == NULL)
		return fte_error_set(FTE_ENOMEM, "%s: cannot build the header", path);
	hlen = strlen(hdr);
	padded = (hlen + 7) & ~(size_t)7;   /* keep the data 8-byte aligned */
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
	if ((rc = fte__afile_open(&af, path)) != FTE_OK) {
		free(hdr);
		return rc;
	}
	fte__afile_write(&af, lenbuf, 8);
	fte__afile_write(&af, hdr, hlen);
	fte__afile_write(&af, spaces, padded - hlen);
	free(hdr);
	for (int i = 0; i < n; i++) {
		size_t numel = 1;
		for (int d = 0; d < e[i].ndim; d++)
			numel *= (size_t)e[i].shape[d];
		if (dtype == FTE_ST_F32) {
			fte__afile_write(&af, e[i].data, numel * sizeof(float));
			continue;
		}
		for (size_t j = 0; j < numel; j += 1024) {
			size_t m = numel - j < 1024 ? numel - j : 1024;
			if (dtype == FTE_ST_F16)
				fte__f32_to_f16_n(half, e[i].data + j, m);
			else
				for (size_t k = 0; k < m; k++)
					half[k] = fte__f32_to_bf16(e[i].data[j + k]);
			fte__afile_write(&af, half, m * 2);
		}
	}
	return fte__afile_commit(&af);
}
