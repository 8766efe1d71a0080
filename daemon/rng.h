/*
 * rng.h - the daemon's seeded randomness: splitmix64, and a Fisher-Yates
 * permutation drawn from it, so dataset splits, epoch orders and bootstrap
 * resamples are pure functions of their seeds.
 */
#ifndef FT_RNG_H
#define FT_RNG_H

#include <stddef.h>
#include <stdint.h>

/* rng_next advances *state and returns its next 64 random bits. */
static inline uint64_t
rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* rng_permutation fills idx[0..n) with 0..n-1 in an order drawn from
 * *state (Fisher-Yates; the modulo bias of a 64-bit draw is below 2^-40
 * for any n the daemon handles). */
static inline void
rng_permutation(size_t *idx, size_t n, uint64_t *state)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(rng_next(state) % i), t = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}

#endif
