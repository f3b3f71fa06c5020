/* rng.c - xoshiro256** with splitmix64 seeding, and the draws built on it. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(rng_state *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->spare = 0.0f;
    r->has_spare = 0;
}

uint64_t rng_u64(rng_state *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(rng_state *r)
{
    return (float)(rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint64_t rng_below(rng_state *r, uint64_t n)
{
    /* Rejection sampling: drop the top partial copy of [0, n). */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = rng_u64(r);
    } while (x >= limit);
    return x % n;
}

void rng_normal(rng_state *r, float *out, size_t n)
{
    size_t i = 0;
    if (n > 0 && r->has_spare) {
        out[i++] = r->spare;
        r->has_spare = 0;
    }
    while (i < n) {
        /* Box-Muller in double: u1 in (0,1] so log(u1) is finite. */
        double u1 = ((double)(rng_u64(r) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(rng_u64(r) >> 11) * 0x1.0p-53;
        double rad = sqrt(-2.0 * log(u1));
        double th = 6.283185307179586 * u2;
        out[i++] = (float)(rad * cos(th));
        if (i < n) {
            out[i++] = (float)(rad * sin(th));
        } else {
            r->spare = (float)(rad * sin(th));
            r->has_spare = 1;
        }
    }
}

void rng_shuffle(rng_state *r, uint32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

uint64_t rng_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ 0x6a09e667f3bcc909ULL;
    uint64_t h = splitmix64(&x);
    x = h ^ b;
    return splitmix64(&x);
}
