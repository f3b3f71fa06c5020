/* adam.c - Adam, one flat loop (see include/adam.h for the math). */
#include "adam.h"

#include <math.h>

adam_config adam_defaults(double lr)
{
    adam_config c = {lr, 0.9, 0.999, 1e-8};
    return c;
}

void adam_step(float *restrict params, const float *restrict grads,
               float *restrict m, float *restrict v, size_t n,
               const adam_config *c, uint64_t t)
{
    /* Bias corrections in double, as PyTorch computes them on the host. */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    float step = (float)(c->lr / bc1);
    float rsqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    float ob1 = (float)(1.0 - c->beta1), ob2 = (float)(1.0 - c->beta2);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = b1 * m[i] + ob1 * g;
        float vi = b2 * v[i] + ob2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] -= step * mi / (sqrtf(vi) * rsqrt_bc2 + eps);
    }
}
