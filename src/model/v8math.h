/* v8math.h - math on 8 floats at a time for the per-pixel and per-unit
 * kernels, with GCC/clang vector extensions: plain C arithmetic that -O2
 * maps onto AVX (or pairs of SSE registers). gcc does not vectorize libm's
 * expf or tanhf from scalar loops; these are branch-free, accurate to a few
 * ulp, and never form 1 + e where e may be tiny. Internal to src/. */
#ifndef VAE_V8MATH_H
#define VAE_V8MATH_H

#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f v8_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v8_store(float *p, v8f v)
{
    memcpy(p, &v, sizeof v);
}

static inline v8f v8_abs(v8f x)
{
    return (v8f)((v8i)x & 0x7fffffff);
}

/* mask ? a : b, lane by lane (mask lanes are 0 or -1, as comparisons give). */
static inline v8f v8_select(v8i mask, v8f a, v8f b)
{
    return (v8f)((mask & (v8i)a) | (~mask & (v8i)b));
}

/* a with the sign of s. */
static inline v8f v8_copysign(v8f a, v8f s)
{
    return (v8f)(((v8i)a & 0x7fffffff) | ((v8i)s & (int32_t)0x80000000));
}

/* For x <= 0: *ex = exp(x), returns expm1(x) = exp(x) - 1, both to ~2e-7
 * relative. x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
 * q = exp(r) - 1 from a degree-7 polynomial, then with s = 2^k:
 * exp(x) = s q + s and expm1(x) = s q + (s - 1), exact for k = 0 (small
 * |x|). k < -126 (x < -87.3) flushes s to 0; x below -100 is taken as
 * -100 first (the same 0 and -1), as from -1.5e9 on (and at -inf) k would
 * overflow its int and q its float, and 0 x Inf is NaN. A NaN stays NaN. */
static inline v8f v8_expm1_nonpos(v8f x, v8f *ex)
{
    x = v8_select(x < -100.0f, (v8f){0} - 100.0f, x);
    v8i k = __builtin_convertvector(x * 1.44269504f - 0.5f, v8i);
    v8f n = __builtin_convertvector(k, v8f);
    v8f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    v8f q = p * r * r + r;
    v8i under = k < -126;
    v8f s = (v8f)(((k + 127) << 23) & ~under);
    *ex = s * q + s;
    return s * q + (s - 1.0f);
}

static inline v8f v8_exp_nonpos(v8f x)
{
    v8f ex;
    (void)v8_expm1_nonpos(x, &ex);
    return ex;
}

/* log1p(e) for e in [0, 1], via log1p(e) = 2 atanh(s), s = e / (2 + e) in
 * [0, 1/3]: the odd series in s to s^13 is accurate to ~1e-8 absolute and
 * never forms 1 + e, so small e keep full precision. */
static inline v8f v8_log1p_unit(v8f e)
{
    v8f s = e / (2.0f + e);
    v8f s2 = s * s;
    v8f p = s2 * (1.0f / 13.0f) + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* log(x) for normal x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)),
 * log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, by its series
 * to s^11; e ln2 is added in two parts (Cody-Waite). ~1 ulp. */
static inline v8f v8_log(v8f x)
{
    v8i bits = (v8i)x;
    v8i e = ((bits >> 23) & 0xff) - 127;
    v8f m = (v8f)((bits & 0x7fffff) | 0x3f800000);
    v8i big = m > 1.41421356f;
    m = v8_select(big, m * 0.5f, m);
    e = e - big; /* big lanes are -1 */
    v8f s = (m - 1.0f) / (m + 1.0f);
    v8f s2 = s * s;
    v8f p = s2 * (1.0f / 11.0f) + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    v8f n = __builtin_convertvector(e, v8f);
    return (n * -2.12194440e-4f + 2.0f * s * p) + n * 0.693359375f;
}

/* tanh(x) = sign(x) * -t / (2 + t) with t = expm1(-2|x|) in (-1, 0]:
 * accurate near 0 (t is), exactly +-1 far out. */
static inline v8f v8_tanh(v8f x)
{
    v8f ex;
    v8f t = v8_expm1_nonpos(-2.0f * v8_abs(x), &ex);
    return v8_copysign(-t / (2.0f + t), x);
}

#endif
