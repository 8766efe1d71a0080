/*
 * ft_test.h - a tiny test harness: CHECK macros that count, and a summary.
 *
 *   int main(void) { ...; CHECK(x == 1); CHECK_NEAR(a, b, 1e-5); ...; return ft_test_done(); }
 *
 * ft_test_done prints "N passed, M failed" and returns the exit status.
 * ft_test_asset returns the path of a file under ../shared/assets, or exits
 * 77 (ctest's "skipped") with a message when the assets are absent.
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

static inline int
ft_test_done(void)
{
	printf("%d passed, %d failed\n", ft_test_passed, ft_test_failed);
	return ft_test_failed == 0 ? 0 : 1;
}

#endif
