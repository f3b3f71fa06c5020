/* vae.h - the MLP variational autoencoder: parameters, activations, and the
 * forward and backward passes written over cblas_sgemm (through gemm.h).
 *
 * Layers are numbered 0..L-1 with L = 2*n_hidden + 2:
 *   0..nh-1       encoder hidden layers   (x -> h, activation)
 *   nh            head, out 2*z_dim       (row = [mu | logvar], no activation)
 *   nh+1..2nh     decoder hidden layers   (z -> h, activation, mirrored widths)
 *   2nh+1         output, out x_dim       (logits; sigmoid gives pixel means)
 * Weights are stored out x in, row-major, like PyTorch's nn.Linear. */
#ifndef VAE_VAE_H
#define VAE_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rng.h"

#define VAE_MAX_HIDDEN 4
#define VAE_MAX_LAYERS (2 * VAE_MAX_HIDDEN + 2)
#define VAE_MAX_WIDTH 65536 /* largest accepted width of any layer */

typedef enum vae_act { VAE_ACT_RELU = 0, VAE_ACT_TANH = 1 } vae_act;

/* The architecture; stored in checkpoints. */
typedef struct vae_config {
    size_t x_dim;                  /* input pixels (784) */
    size_t n_hidden;               /* hidden layers per side, 1..VAE_MAX_HIDDEN */
    size_t hidden[VAE_MAX_HIDDEN]; /* encoder widths; the decoder mirrors them */
    size_t z_dim;                  /* latent dimensions */
    vae_act act;                   /* hidden-layer activation */
} vae_config;

/* One linear layer: offsets of its weight (out x in) and bias (out) in the
 * flat parameter buffer; gradients and Adam moments use the same offsets. */
typedef struct vae_layer {
    size_t in, out;
    size_t w_off, b_off;
    int has_act;
} vae_layer;

typedef struct vae_model {
    vae_config cfg;
    size_t n_layers;
    vae_layer layer[VAE_MAX_LAYERS];
    size_t n_params;
    float *params; /* one allocation, n_params floats */
} vae_model;

/* Activations and their gradients for up to cap images, one allocation. */
typedef struct vae_acts {
    size_t cap;
    float *mem;
    float *x;                     /* cap x x_dim, input in [0,1] (also the BCE target) */
    float *h[VAE_MAX_LAYERS];     /* layer outputs after activation; head = [mu|logvar] */
    float *dh[VAE_MAX_LAYERS];    /* d loss / d h[l] (for the head and output: pre-act) */
    float *eps;                   /* cap x z_dim, the reparameterization noise */
    float *z, *dz;                /* cap x z_dim */
    float *bce, *kl;              /* cap, per-image loss terms (nats) */
} vae_acts;

/* ---- lifecycle ---------------------------------------------------------- */

/* Checks a configuration. Returns 0, or -1 with err saying what is wrong. */
int vae_config_check(const vae_config *cfg, err_msg *err);

/* Lays out the layers of cfg and counts its parameters, allocating
 * nothing (m->params stays NULL). Returns 0, or -1 with err. */
int vae_layout(vae_model *m, const vae_config *cfg, err_msg *err);

/* vae_layout, then allocates the parameters (uninitialised). Returns 0, or
 * -1 with err. */
int vae_init(vae_model *m, const vae_config *cfg, err_msg *err);

/* PyTorch nn.Linear init: weights and biases U(-1/sqrt(in), 1/sqrt(in)). */
void vae_init_params(vae_model *m, rng_state *rng);

/* Frees the parameters; safe on a zeroed model. */
void vae_free(vae_model *m);

/* Allocates activations for batches of up to cap images. Returns 0 or -1. */
int vae_acts_init(vae_acts *a, const vae_config *cfg, size_t cap, err_msg *err);

/* Frees the activations; safe on a zeroed struct. */
void vae_acts_free(vae_acts *a);

/* ---- passes (B <= a->cap images) ---------------------------------------- */

/* Encoder: a->x (B x x_dim) -> head rows [mu | logvar] (B x 2z). */
void vae_encode(const vae_model *m, vae_acts *a, size_t B);

/* z = mu + eps * exp(logvar / 2) from a->eps; with use_mean, z = mu. */
void vae_reparam(const vae_model *m, vae_acts *a, size_t B, int use_mean);

/* Decoder: a->z (B x z) -> output logits (B x x_dim). */
void vae_decode(const vae_model *m, vae_acts *a, size_t B);

/* Loss per image into a->bce, a->kl (BCE summed over pixels, from logits,
 * against a->x; KL to N(0,I)), and the gradient of their batch sum with
 * respect to the logits and the head. Returns the batch sum of bce + kl. */
double vae_loss(const vae_model *m, vae_acts *a, size_t B);

/* Backpropagates what vae_loss seeded through decoder, reparameterization
 * and encoder. Writes (does not accumulate) d(batch loss)/d(params) into
 * grads, laid out like m->params. */
void vae_backward(const vae_model *m, vae_acts *a, float *grads, size_t B);

/* Pointers into the head output of image b. */
float *vae_mu(const vae_model *m, const vae_acts *a, size_t b);
float *vae_logvar(const vae_model *m, const vae_acts *a, size_t b);

/* Output logits of the batch (B x x_dim). */
float *vae_logits(const vae_model *m, const vae_acts *a);

/* out[i] = sigmoid(logits[i]) for n values: the decoder's pixel means. */
void vae_sigmoid(float *out, const float *logits, size_t n);

#endif
