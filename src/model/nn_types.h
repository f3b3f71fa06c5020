/* nn_types.h - the few types the layer kernels (linear.c, conv.c) share
 * with the model (vae.c, mlp.c, cnn.c): which activation a layer applies,
 * and how a team of threads sums the statistics of one batch. The kernels
 * include this, not the model's header. */
#ifndef VAE_NN_TYPES_H
#define VAE_NN_TYPES_H

#include <stddef.h>

typedef enum model_act {
    MODEL_ACT_RELU = 0,
    MODEL_ACT_TANH = 1,
    MODEL_ACT_LEAKY = 2 /* LeakyReLU, slope 0.1 */
} model_act;

/* Sums n doubles in place over the threads that compute one batch
 * together, every thread getting the same total; sum == NULL: one thread.
 * BatchNorm's batch statistics go through it (shard.c provides it). */
typedef struct model_reduce {
    void (*sum)(void *ctx, size_t k, double *v, size_t n);
    void *ctx;
    size_t k; /* this thread's index */
} model_reduce;

#endif
