/*
 * ft_test.h - a tiny test harness: CHECK macros that count, and a summary.
 *
 *   int main(void) { ...; CHECK(x == 1); CHECK_NEAR(a, b, 1e-5); ...; return ft_test_done(); }
 *
 * ft_test_done prints "N passed, M failed" and returns the exit status.
 * ft_test_asset returns the path of a file under ../shared/assets, or exits
 * 77 (ctest's "skipped") with a message when the assets are absent.
 * ft_test_tmp names files in a scratch directory of the run;
 * ft_test_file_read and ft_test_file_write move whole files.
 */
#ifndef FT_TEST_H
#define FT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ft_test_passed, ft_test_failed;

#define CHECK(cond) do { \
	if (cond) ft_test_passed++; \
	else { ft_test_failed++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_NEAR(a, b, tol) do { \
	double ft_a_ = (a), ft_b_ = (b); \
	if (fabs(ft_a_ - ft_b_) <= (tol)) ft_test_passed++; \
	else { ft_test_failed++; fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g, tol %g\n", \
	    __FILE__, __LINE__, #a, ft_a_, #b, ft_b_, (double)(tol)); } \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *ft_a_ = (a), *ft_b_ = (b); \
	if (ft_a_ && ft_b_ && strcmp(ft_a_, ft_b_) == 0) ft_test_passed++; \
	else { ft_test_failed++; fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", \
	    __FILE__, __LINE__, ft_a_ ? ft_a_ : "(null)", ft_b_ ? ft_b_ : "(null)"); } \
} while (0)

static inline const char *
ft_test_asset(const char *rel)
{
	static char path[4096];
	const char *root = getenv("FT_ASSETS");

	if (root == NULL)
		root = "../shared/assets";
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (access(path, R_OK) != 0) {
		printf("SKIP: asset %s not found (../shared/assets absent)\n", path);
		exit(77);
	}
	return path;
}

static inline const char *
ft_test_fixture(const char *rel)
{
	static char path[4096];
	const char *root = getenv("FT_FIXTURES");

	snprintf(path, sizeof(path), "%s/%s", root ? root : "tests/fixtures", rel);
	return path;
}

static char ft_test_tmp_root[] = "/tmp/ft_test_XXXXXX";
static int ft_test_tmp_made;

/* ft_test_tmp returns the path of name in a directory made for this run
 * (on the first call; exits 1 when it cannot be made).  The answer lasts
 * for three more calls. */
static inline const char *
ft_test_tmp(const char *name)
{
	static char path[4][4096];
	static int k;

	if (!ft_test_tmp_made) {
		if (mkdtemp(ft_test_tmp_root) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
		ft_test_tmp_made = 1;
	}
	k = (k + 1) % 4;
	snprintf(path[k], sizeof(path[k]), "%s/%s", ft_test_tmp_root, name);
	return path[k];
}

/* ft_test_tmp_remove deletes the run's scratch directory, if made. */
static inline void
ft_test_tmp_remove(void)
{
	char cmd[sizeof(ft_test_tmp_root) + 16];

	if (!ft_test_tmp_made)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ft_test_tmp_root);
	CHECK(system(cmd) == 0);
	ft_test_tmp_made = 0;
}

/* ft_test_file_read returns path's bytes, NUL-terminated and malloc'd, and
 * their number in *len; NULL when it cannot be read whole. */
static inline char *
ft_test_file_read(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, fp) == (size_t)n) {
			buf[n] = '\0';
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(fp);
	return buf;
}

/* ft_test_file_write writes the n bytes at p to path, CHECKing it does. */
static inline void
ft_test_file_write(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");

	CHECK(fp != NULL);
	if (fp != NULL) {
		CHECK(fwrite(p, 1, n, fp) == n);
		CHECK(fclose(fp) == 0);
	}
}

static inline int
ft_test_done(void)
{
	printf("%d passed, %d failed\n", ft_test_passed, ft_test_failed);
	return ft_test_failed == 0 ? 0 : 1;
}

#endif
