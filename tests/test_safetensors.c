/* test_safetensors.c - the safetensors reader and writer: the shared fixture
 * files, write/read round trips in F32/F16/BF16, half-precision conversion,
 * and every kind of malformed header. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fte.h"
#include "fte_io_internal.h"
#include "ft_test.h"

/* asset returns the path of a shared asset, or NULL when the assets are
 * absent (those checks are then skipped, the others still run). */
static const char *
asset(const char *rel)
{
	static char path[4096];
	const char *root = getenv("FT_ASSETS");

	snprintf(path, sizeof(path), "%s/%s", root ? root : "../shared/assets", rel);
	return access(path, R_OK) == 0 ? path : NULL;
}

static void
check_fixture(const char *file, int dtype, int ndim, const int64_t *shape,
    const float *values, size_t n)
{
	fte_st_file *f = NULL;
	const fte_st_tensor *t;
	float got[32];

	if (asset(file) == NULL) {
		printf("SKIP: %s not found\n", file);
		return;
	}
	CHECK(fte_st_open(asset(file), &f) == FTE_OK);
	if (f == NULL)
		return;
	CHECK(f->n_tensors == 1);
	t = fte_st_find(f, "embedding");
	CHECK(t != NULL);
	if (t != NULL) {
		CHECK(t->dtype == dtype);
		CHECK(t->ndim == ndim);
		for (int d = 0; d < ndim && d < t->ndim; d++)
			CHECK(t->shape[d] == shape[d]);
		CHECK(t->numel == n);
		CHECK(fte_st_read_f32(f, t, got) == FTE_OK);
		for (size_t i = 0; i < n; i++)
			CHECK(got[i] == values[i]);
	}
	fte_st_close(f);
}

static void
test_fixtures(void)
{
	static const float v1[] = {1, 2, 3};
	static const float v2[] = {1, 2, 3, 24, 25, 26};
	static const float v3[] = {22, 23, 24, 11, 12, 13, 2, 3, 4, 1, 2, 3};
	static const float v4[] = {11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24,
	    15, 16, 17, 17, 18, 19};

	check_fixture("safetensors-fixtures/tensor-1d-int32.safetensors", FTE_ST_I32, 1,
	    (int64_t[]){3}, v1, 3);
	check_fixture("safetensors-fixtures/tensor-2d-float64.safetensors", FTE_ST_F64, 2,
	    (int64_t[]){2, 3}, v2, 6);
	check_fixture("safetensors-fixtures/tensor-3d-float32.safetensors", FTE_ST_F32, 3,
	    (int64_t[]){2, 2, 3}, v3, 12);
	check_fixture("safetensors-fixtures/tensor-4d-float32.safetensors", FTE_ST_F32, 4,
	    (int64_t[]){2, 3, 1, 3}, v4, 18);
}

/* Every finite half survives f16 -> f32 -> f16; rounding is to nearest even. */
static void
test_half(void)
{
	int bad = 0;

	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
			continue;                           /* nan */
		if (fte__f32_to_f16(fte__f16_to_f32((uint16_t)h)) != h)
			bad++;
	}
	CHECK(bad == 0);
	/* the bulk (F16C) conversions agree with the scalar ones bit for bit,
	 * on every half and on random floats including nan, inf, subnormals */
	{
		enum { N = 1 << 16 };
		static uint16_t h[N], h2[N];
		static float f[N], f2[N];
		uint32_t seed = 7;
		int diff = 0;
		for (uint32_t i = 0; i < N; i++)
			h[i] = (uint16_t)i;
		fte__f16_to_f32_n(f2, h, N);
		for (uint32_t i = 0; i < N; i++) {
			float x = fte__f16_to_f32(h[i]);
			diff += memcmp(&x, &f2[i], 4) != 0;
		}
		for (int round = 0; round < 16; round++) {
			for (uint32_t i = 0; i < N; i++) {
				seed = seed * 1664525u + 1013904223u;
				uint32_t bits = round < 8 ? seed : (seed & 0x87ffffffu) | 0x30000000u;
				memcpy(&f[i], &bits, 4);
			}
			fte__f32_to_f16_n(h2, f, N - 3);   /* odd length: a scalar tail */
			for (uint32_t i = 0; i < N - 3; i++)
				diff += h2[i] != fte__f32_to_f16(f[i]);
		}
		CHECK(diff == 0);
	}
	CHECK(fte__f16_to_f32(0x3c00) == 1.0f);
	CHECK(fte__f16_to_f32(0x0001) == 0x1p-24f);
	CHECK(fte__f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);     /* tie to even */
	CHECK(fte__f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02); /* tie to even, up */
	CHECK(fte__f32_to_f16(65520.0f) == 0x7c00);            /* overflow */
	CHECK(fte__f32_to_f16(0x1p-25f) == 0);                 /* tie to zero */
	CHECK(fte__f32_to_f16(0x1.8p-25f) == 1);
	CHECK(fte__f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);     /* tie to even */
	CHECK(fte__f32_to_bf16(1.0f + 0x1.8p-8f) == 0x3f81);
	CHECK(fte__bf16_to_f32(0x3f81) == 1.0f + 0x1p-7f);
}

static void
test_write(void)
{
	char dir[] = "/tmp/test_st_XXXXXX", path[256];
	const char *meta[] = {"kind", "test", NULL};
	float a[6], b[5];
	fte_st_entry e[2];
	int dts[3] = {FTE_ST_F32, FTE_ST_F16, FTE_ST_BF16};

	CHECK(mkdtemp(dir) != NULL);
	for (int i = 0; i < 6; i++)
		a[i] = (float)(i + 1) / 3.0f - 1.0f;
	for (int i = 0; i < 5; i++)
		b[i] = 1000.0f * (float)i + 0.1f;
	memset(e, 0, sizeof(e));
	snprintf(e[0].name, sizeof(e[0].name), "model.a.weight");
	e[0].ndim = 2, e[0].shape[0] = 2, e[0].shape[1] = 3, e[0].data = a;
	snprintf(e[1].name, sizeof(e[1].name), "b");
	e[1].ndim = 1, e[1].shape[0] = 5, e[1].data = b;
	for (int k = 0; k < 3; k++) {
		fte_st_file *f = NULL;
		float got[6];
		snprintf(path, sizeof(path), "%s/w%d.safetensors", dir, k);
		CHECK(fte_st_write(path, e, 2, dts[k], meta) == FTE_OK);
		CHECK(fte_st_open(path, &f) == FTE_OK);
		if (f == NULL)
			continue;
		CHECK(f->n_tensors == 2);
		CHECK(((uintptr_t)f->data - (uintptr_t)f->map) % 8 == 0);
		CHECK_STR(fte_st_metadata(f, "format"), "pt");
		CHECK_STR(fte_st_metadata(f, "kind"), "test");
		const fte_st_tensor *t = fte_st_find(f, "model.a.weight");
		CHECK(t != NULL && t->dtype == dts[k] && t->ndim == 2 && t->shape[1] == 3);
		if (t != NULL && fte_st_read_f32(f, t, got) == FTE_OK)
			for (int i = 0; i < 6; i++) {
				if (k == 0)
					CHECK(got[i] == a[i]);
				else
					CHECK_NEAR(got[i], a[i], fabsf(a[i]) * (k == 1 ? 0x1p-11 : 0x1p-8));
			}
		t = fte_st_find(f, "b");
		CHECK(t != NULL && t->numel == 5);
		if (t != NULL && fte_st_read_f32(f, t, got) == FTE_OK)
			for (int i = 0; i < 5; i++) {
				if (k == 1)
					CHECK(got[i] == fte__f16_to_f32(fte__f32_to_f16(b[i])));
				else if (k == 2)
					CHECK(got[i] == fte__bf16_to_f32(fte__f32_to_bf16(b[i])));
				else
					CHECK(got[i] == b[i]);
			}
		fte_st_close(f);
		unlink(path);
	}
	/* the writer leaves no temporary behind, and fails cleanly */
	snprintf(path, sizeof(path), "%s/missing/x.safetensors", dir);
	CHECK(fte_st_write(path, e, 2, FTE_ST_F32, NULL) == FTE_EIO);
	CHECK(strstr(fte_last_error(), "x.safetensors") != NULL);
	CHECK(rmdir(dir) == 0);
}

/* image builds a safetensors file: length, header text, data_len bytes. */
static uint8_t *
image(const char *header, size_t data_len, size_t *len)
{
	size_t n = strlen(header);
	uint8_t *p = calloc(1, 8 + n + data_len + 1);

	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)n >> (8 * i));
	memcpy(p + 8, header, n);
	*len = 8 + n + data_len;
	return p;
}

static void
expect_bad(const char *header, size_t data_len, int err, const char *what)
{
	fte_st_file *f = NULL;
	size_t len;
	uint8_t *p = image(header, data_len, &len);
	int rc = fte_st_parse("bad.safetensors", p, len, &f);

	CHECK(rc == err);
	CHECK(f == NULL);
	if (rc != err || strstr(fte_last_error(), "bad.safetensors") == NULL ||
	    strstr(fte_last_error(), what) == NULL)
		fprintf(stderr, "  header %s -> %d \"%s\" (want \"%s\")\n", header, rc,
		    fte_last_error(), what);
	CHECK(strstr(fte_last_error(), "bad.safetensors") != NULL);
	CHECK(strstr(fte_last_error(), what) != NULL);
	fte_st_close(f);
	free(p);
}

static void
test_bad(void)
{
	fte_st_file *f = NULL;
	size_t len;
	uint8_t *p;
	char path[] = "/tmp/test_st_bad_XXXXXX";
	int fd;

	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
	    FTE_EFORMAT, "outside");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
	    FTE_EFORMAT, "overlap");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
	    FTE_EFORMAT, "need 12 bytes");
	expect_bad("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
	    FTE_EFORMAT, "unknown dtype");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
	    FTE_EFORMAT, "not valid JSON");
	expect_bad("[1, 2]", 0, FTE_EFORMAT, "not a JSON object");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
	    FTE_EFORMAT, "shape[0]");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8,
	    FTE_EFORMAT, "exceeds");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
	    FTE_EFORMAT, "outside");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
	    FTE_EFORMAT, "data_offsets");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, FTE_EFORMAT, "data_offsets");
	expect_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FTE_EFORMAT, "dtype");
	expect_bad("{\"a\":7}", 8, FTE_EFORMAT, "not an object");
	expect_bad("{\"__metadata__\":{\"x\":1}}", 0, FTE_EFORMAT, "__metadata__");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	    FTE_EFORMAT, "not valid JSON");

	/* header length beyond the file, and a file too short for the length */
	p = image("{}", 0, &len);
	p[0] = 200;
	CHECK(fte_st_parse("bad.safetensors", p, len, &f) == FTE_EFORMAT);
	CHECK(strstr(fte_last_error(), "exceeds the file") != NULL);
	CHECK(fte_st_parse("bad.safetensors", p, 5, &f) == FTE_EFORMAT);
	CHECK(strstr(fte_last_error(), "truncated") != NULL);
	free(p);

	/* a real file cut short: the data no longer covers the offsets */
	p = image("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8, &len);
	CHECK((fd = mkstemp(path)) >= 0);
	CHECK(write(fd, p, len - 3) == (ssize_t)(len - 3));
	close(fd);
	CHECK(fte_st_open(path, &f) == FTE_EFORMAT);
	CHECK(strstr(fte_last_error(), path) != NULL);
	CHECK(f == NULL);
	unlink(path);
	CHECK(fte_st_open("/nonexistent/x.safetensors", &f) == FTE_ENOENT);
	free(p);

	/* BOOL parses but does not convert to float */
	p = image("{\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, &len);
	CHECK(fte_st_parse("bool.safetensors", p, len, &f) == FTE_OK);
	if (f != NULL) {
		float x[2];
		CHECK(fte_st_read_f32(f, &f->tensors[0], x) == FTE_ENOTSUP);
		CHECK(strstr(fte_last_error(), "bool.safetensors") != NULL);
		fte_st_close(f);
	}
	free(p);
}

int
main(void)
{
	test_half();
	test_write();
	test_bad();
	test_fixtures();
	return ft_test_done();
}
