/* rng.h - explicit, seedable random number state (xoshiro256**, seeded by
 * splitmix64). The whole state is a plain struct so checkpoints can store it
 * and a resumed run draws exactly the numbers an uninterrupted one would. */
#ifndef VAE_RNG_H
#define VAE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng_state {
    uint64_t s[4];     /* xoshiro256** state; never all zero */
    float spare;       /* second Box-Muller normal, valid if has_spare */
    uint32_t has_spare;
} rng_state;

/* Seeds the state from a 64-bit seed (any value, 0 included). */
void rng_seed(rng_state *r, uint64_t seed);

/* Next 64 random bits. */
uint64_t rng_u64(rng_state *r);

/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(rng_state *r);

/* Uniform integer in [0, n), unbiased (n > 0). */
uint64_t rng_below(rng_state *r, uint64_t n);

/* Fills out[0..n) with standard normal draws (Box-Muller). */
void rng_normal(rng_state *r, float *out, size_t n);

/* A 64-bit key from two values (say a run's key and an image's index),
 * well mixed: keyed draws that do not depend on the order of the work. */
uint64_t rng_mix(uint64_t a, uint64_t b);

/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(rng_state *r, uint32_t *idx, size_t n);

#endif
