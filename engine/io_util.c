/* io_util.c - file copies, side-file checks and half-precision conversion
 * for the model-format code. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fte.h"
#include "fte_io_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_F16C_PATH 1
#endif

int
fte_file_check(const char *name, const void *buf, size_t len)
{
	size_t n = strlen(name);

	if (n > 5 && strcmp(name + n - 5, ".json") == 0) {
		json_error_t err;
		json_t *j = fte__json_loadb(buf, len, &err);
		int obj = json_is_object(j);

		json_decref(j);
		if (j == NULL)
			return fte__json_parse_error(name, &err);
		return obj ? FTE_OK : fte_error_set(FTE_EFORMAT, "%s: not a JSON object", name);
	}
	if (n > 12 && strcmp(name + n - 12, ".safetensors") == 0) {
		fte_st_file *f = NULL;
		int rc = fte_st_parse(name, buf, len, &f);

		fte_st_close(f);
		return rc;
	}
	if (n > 5 && strcmp(name + n - 5, ".gguf") == 0) {
		fte_gguf_file *f = NULL;
		int rc = fte_gguf_parse(name, buf, len, &f);

		fte_gguf_close(f);
		return rc;
	}
	if (strcmp(name, "tokenizer.bin") == 0 || strcmp(name, "tokenizer.gguf") == 0) {
		fte_tokenizer *t = NULL;
		int rc = fte_tokenizer_load_memory(name, buf, len, &t);

		fte_tokenizer_free(t);
		return rc;
	}
	return fte_error_set(FTE_ENOTSUP, "%s: not a file a model keeps", name);
}

int
fte__file_copy(const char *src, const char *dst)
{
	char buf[65536];
	fte__afile af;
	size_t n;
	FILE *in;
	int rc;

	if ((rc = fte__fopen(src, &in)) != FTE_OK)
		return rc;
	if ((rc = fte__afile_open(&af, dst)) != FTE_OK) {
		fclose(in);
		return rc;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fte__afile_write(&af, buf, n);
	if (ferror(in)) {
		fclose(in);
		fte__afile_abort(&af);
		return fte_error_set(FTE_EIO, "%s: read failed", src);
	}
	fclose(in);
	return fte__afile_commit(&af);
}

json_t *
fte__json_float(float f)
{
	char buf[32];

	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			break;
	}
	return json_real(strtod(buf, NULL));
}

float
fte__f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (exp == 0x1f) {                  /* inf, or nan made quiet as F16C does */
		bits = sign | 0x7f800000 | (man ? 0x400000 | (man << 13) : 0);
	} else if (exp != 0) {              /* normal */
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man == 0) {              /* zero */
		bits = sign;
	} else {                            /* subnormal: man * 2^-24 */
		f = (float)man * 0x1p-24f;
		return sign ? -f : f;
	}
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t
fte__f32_to_f16(float f)
{
	uint32_t bits, sign, exp, man;

	memcpy(&bits, &f, 4);
	sign = (bits >> 16) & 0x8000;
	exp = (bits >> 23) & 0xff;
	man = bits & 0x7fffff;
	if (exp == 0xff)                    /* inf stays inf, nan stays quiet nan */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	if (exp > 142)                      /* >= 2^16: overflow to inf */
		return (uint16_t)(sign | 0x7c00);
	if (exp >= 113) {                   /* normal half */
		uint32_t h = ((exp - 112) << 10) | (man >> 13);
		uint32_t rest = man & 0x1fff;
		/* round to nearest even; a carry into the exponent is correct */
		if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	if (exp < 102)                      /* below half the smallest subnormal */
		return (uint16_t)sign;
	/* subnormal half: shift the full significand into place and round */
	man |= 0x800000;
	{
		int shift = 126 - (int)exp;     /* 14..24 */
		uint32_t h = man >> shift;
		uint32_t rest = man & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rest > half || (rest == half && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
}

float
fte__bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, 4);
	return f;
}

uint16_t
fte__f32_to_bf16(float f)
{
	uint32_t bits;

	memcpy(&bits, &f, 4);
	if ((bits & 0x7fffffff) > 0x7f800000)       /* nan: keep it quiet */
		return (uint16_t)((bits >> 16) | 0x40);
	bits += 0x7fff + ((bits >> 16) & 1);
	return (uint16_t)(bits >> 16);
}

#ifdef HAVE_F16C_PATH
/* F16C converts 8 values per instruction, rounding to nearest even and
 * quieting NaNs exactly as the scalar code does; the build targets plain
 * x86-64, so these are compiled for F16C and chosen at run time. */
__attribute__((target("avx,f16c"))) static void
f32_to_f16_f16c(uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i),
		    _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		dst[i] = fte__f32_to_f16(src[i]);
}

__attribute__((target("avx,f16c"))) static void
f16_to_f32_f16c(float *dst, const void *src, size_t n)
{
	const uint8_t *p = src;
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
	for (; i < n; i++) {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		dst[i] = fte__f16_to_f32(h);
	}
}

/* have_f16c: the CPU has AVX and F16C and the OS saves YMM state. */
static int
have_f16c(void)
{
	static _Atomic int cached = -1;
	unsigned a, b, c, d, lo, hi;
	int yes = 0;

	if (cached >= 0)
		return cached;
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_OSXSAVE) && (c & bit_AVX) &&
	    (c & bit_F16C)) {
		__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		yes = (lo & 6) == 6;
	}
	cached = yes;
	return yes;
}
#endif

void
fte__f32_to_f16_n(uint16_t *dst, const float *src, size_t n)
{
#ifdef HAVE_F16C_PATH
	if (have_f16c()) {
		f32_to_f16_f16c(dst, src, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = fte__f32_to_f16(src[i]);
}

void
fte__f16_to_f32_n(float *dst, const void *src, size_t n)
{
#ifdef HAVE_F16C_PATH
	if (have_f16c()) {
		f16_to_f32_f16c(dst, src, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, (const uint8_t *)src + 2 * i, 2);
		dst[i] = fte__f16_to_f32(h);
	}
}
