/* adam.h - the Adam optimizer over one flat parameter buffer, PyTorch's
 * semantics (bias-corrected moments, eps added after the square root). */
#ifndef VAE_ADAM_H
#define VAE_ADAM_H

#include <stddef.h>
#include <stdint.h>

/* Hyperparameters in double, as PyTorch holds them (Python floats): each
 * coefficient such as 1 - beta2 is formed in double, then rounded to float
 * once (1.0f - 0.999f would be 0.00099998713, not 0.001). */
typedef struct adam_config {
    double lr;    /* 1e-3 */
    double beta1; /* 0.9 */
    double beta2; /* 0.999 */
    double eps;   /* 1e-8 */
} adam_config;

/* PyTorch's defaults (torch.optim.Adam). */
#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8

/* PyTorch's defaults with lr. */
adam_config adam_defaults(double lr);

/* One step t (1-based, already counting this step) over n parameters whose
 * gradient is the sum g = grads[0] + ... + grads[n_grads-1] (the shares of
 * a data-parallel batch, added in that order):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * in float, with the coefficients rounded to float once, exactly as
 *   m = fma(b1, m, (1-b1) g);  v = fma(b2, v, ((1-b2) g) g)
 *   p = p - (step m) / fma(sqrt(v), 1/sqrt(1-b2^t), eps),  step = lr/(1-b1^t)
 * with sqrt and division correctly rounded: the same bits on every CPU. */
void adam_step(float *params, const float *const *grads, size_t n_grads,
               float *m, float *v, size_t n, const adam_config *c, uint64_t t);

#endif
