/* adam.c - Adam, one flat loop (see include/adam.h for the math). */
#include "adam.h"

#include <math.h>

adam_config adam_defaults(double lr)
{
    adam_config c = {lr, 0.9, 0.999, 1e-8};
    return c;
}

/* Parameters per block: the summed gradient of a block stays in L1. */
#define BLOCK 512

void adam_step(float *restrict params, const float *const *grads,
               size_t n_grads, float *restrict m, float *restrict v, size_t n,
               const adam_config *c, uint64_t t)
{
    /* Bias corrections in double, as PyTorch computes them on the host. */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    float step = (float)(c->lr / bc1);
    float rsqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    float ob1 = (float)(1.0 - c->beta1), ob2 = (float)(1.0 - c->beta2);
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
        float *restrict p = params + at, *restrict mm = m + at, *restrict vv = v + at;
        for (size_t i = 0; i < len; i++) {
            float mi = b1 * mm[i] + ob1 * g[i];
            float vi = b2 * vv[i] + ob2 * g[i] * g[i];
            mm[i] = mi;
            vv[i] = vi;
            p[i] -= step * mi / (sqrtf(vi) * rsqrt_bc2 + eps);
        }
    }
}
