/* adam.c - Adam, one flat loop (see src/train/adam.h for the math). */
#include "adam.h"

#include <math.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

adam_config adam_defaults(double lr)
{
    adam_config c = {lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
    return c;
}

/* Parameters per block: the summed gradient of a block stays in L1. */
#define BLOCK 512

/* A step's coefficients, each rounded to float once. */
typedef struct adam_coef {
    float b1, b2, ob1, ob2; /* b1, b2, 1 - b1, 1 - b2 */
    float step;             /* lr / (1 - b1^t) */
    float rsqrt_bc2;        /* 1 / sqrt(1 - b2^t) */
    float eps;
} adam_coef;

#ifdef __AVX512F__

/* ---- AVX-512: the same math, loads ahead of stores ------------------- */

/* The step's coefficients in every lane. */
typedef struct adam_lanes {
    __m512 b1, b2, ob1, ob2, step, rsqrt_bc2, eps;
} adam_lanes;

/* One step on 16 parameters: updates *m and *v, returns the new p. */
static inline __m512 adam_lane_step(const adam_lanes *k, __m512 g, __m512 *m,
                                    __m512 *v, __m512 p)
{
    /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g, with the fused
     * multiply-adds adam.h names */
    __m512 mi = _mm512_fmadd_ps(k->b1, *m, _mm512_mul_ps(k->ob1, g));
    __m512 vi = _mm512_fmadd_ps(k->b2, *v, _mm512_mul_ps(_mm512_mul_ps(k->ob2, g), g));
    *m = mi;
    *v = vi;
    /* d = sqrt(v) / sqrt(1-b2^t) + eps, sqrt and division IEEE's: the
     * bits of the plain loop below */
    __m512 d = _mm512_fmadd_ps(_mm512_sqrt_ps(vi), k->rsqrt_bc2, k->eps);
    return _mm512_sub_ps(p, _mm512_div_ps(_mm512_mul_ps(k->step, mi), d));
}

/* One step on len parameters whose gradient is g: 16 at a time, the tail
 * under a mask. The pointers are not restrict on purpose: each group's
 * four loads then stay ahead of its three stores. A load issued after a
 * store to the same address modulo 4 KiB waits for it, and p, g, m and v
 * often share a page offset (large buffers do): the plain loop, which
 * loads p after storing m and v, then runs 1.6x slower on Zen 4. */
static void adam_block(float *p, const float *g, float *m, float *v,
                       size_t len, const adam_coef *c)
{
    adam_lanes k = {_mm512_set1_ps(c->b1),   _mm512_set1_ps(c->b2),
                    _mm512_set1_ps(c->ob1),  _mm512_set1_ps(c->ob2),
                    _mm512_set1_ps(c->step), _mm512_set1_ps(c->rsqrt_bc2),
                    _mm512_set1_ps(c->eps)};
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        __m512 gi = _mm512_loadu_ps(g + i), mi = _mm512_loadu_ps(m + i);
        __m512 vi = _mm512_loadu_ps(v + i), pi = _mm512_loadu_ps(p + i);
        pi = adam_lane_step(&k, gi, &mi, &vi, pi);
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        _mm512_storeu_ps(p + i, pi);
    }
    if (i < len) {
        __mmask16 in = (__mmask16)((1u << (len - i)) - 1);
        __m512 gi = _mm512_maskz_loadu_ps(in, g + i), mi = _mm512_maskz_loadu_ps(in, m + i);
        __m512 vi = _mm512_maskz_loadu_ps(in, v + i), pi = _mm512_maskz_loadu_ps(in, p + i);
        pi = adam_lane_step(&k, gi, &mi, &vi, pi);
        _mm512_mask_storeu_ps(m + i, in, mi);
        _mm512_mask_storeu_ps(v + i, in, vi);
        _mm512_mask_storeu_ps(p + i, in, pi);
    }
}

#else

/* ---- Elsewhere: the plain loop ---------------------------------------- */

/* One step on len parameters whose gradient is g. */
static void adam_block(float *restrict p, const float *restrict g,
                       float *restrict m, float *restrict v, size_t len,
                       const adam_coef *c)
{
    for (size_t i = 0; i < len; i++) {
        float mi = fmaf(c->b1, m[i], c->ob1 * g[i]);
        float vi = fmaf(c->b2, v[i], c->ob2 * g[i] * g[i]);
        m[i] = mi;
        v[i] = vi;
        p[i] -= c->step * mi / fmaf(sqrtf(vi), c->rsqrt_bc2, c->eps);
    }
}

#endif

void adam_step(float *params, const float *const *grads, size_t n_grads,
               float *m, float *v, size_t n, const adam_config *c, uint64_t t)
{
    /* Bias corrections in double, as PyTorch computes them on the host. */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    adam_coef co = {(float)c->beta1, (float)c->beta2, (float)(1.0 - c->beta1),
                   (float)(1.0 - c->beta2), (float)(c->lr / bc1),
                   (float)(1.0 / sqrt(bc2)), (float)c->eps};
    float sum[BLOCK];
    for (size_t at = 0; at < n; at += BLOCK) {
        size_t len = n - at < BLOCK ? n - at : BLOCK;
        const float *g = grads[0] + at;
        if (n_grads > 1) {
            for (size_t i = 0; i < len; i++)
                sum[i] = g[i];
            for (size_t k = 1; k < n_grads; k++) {
                const float *gk = grads[k] + at;
                for (size_t i = 0; i < len; i++)
                    sum[i] += gk[i];
            }
            g = sum;
        }
        adam_block(params + at, g, m + at, v + at, len, &co);
    }
}
