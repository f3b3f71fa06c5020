/* vae.h - the variational autoencoder: parameters, activations, and the
 * forward and backward passes written over cblas_sgemm (through gemm.h).
 * Two architectures share everything but the encoder and decoder: the MLP
 * and the convolutional VAE.
 *
 * The MLP's layers are numbered 0..L-1:
 *   0..nh-1       encoder hidden layers   (x -> h, activation)
 *   nh            head, out 2*z_dim       (row = [mu | logvar], no activation)
 *   nh+1..2nh     decoder hidden layers   (z -> h, activation, mirrored widths)
 *   2nh+1         output, out x_dim       (logits of the likelihood)
 *   2nh+2, 2nh+3  conditional only: the prior network, one-hot label ->
 *                 hidden (width hidden[nh-1], activation) -> [mu | logvar]
 *                 of p(z | y)
 * A conditional model also feeds the one-hot label to the encoder's first
 * layer (after the pixels) and the decoder's first (after z): those layers
 * have n_classes extra input columns.
 * Weights are stored out x in, row-major, like PyTorch's nn.Linear.
 *
 * The conv VAE (arch conv; n_hidden conv blocks of hidden[i] channels)
 * zero-pads each H x W image of C channels to PH x PW, PH = 2^n_hidden *
 * max(4, ceil(H / 2^n_hidden)) (likewise PW; 28 -> 32 for 3 blocks, 64 ->
 * 64), floor((PH - H) / 2) rows on top and the rest below, likewise left
 * and right; it runs blocks of Conv 4x4 stride 2 pad 1 (halving the
 * sides), the activation (LeakyReLU 0.1 by default), BatchNorm, down to
 * hidden[nh-1] x BH x BW (BH = PH / 2^nh, at least 4); a linear
 * head gives [mu | logvar]. The decoder: linear z -> hidden[nh-1] x BH x BW,
 * then ConvTranspose 4x4 stride 2 pad 1 blocks (doubling the sides) with
 * the activation and BatchNorm, the last to C channels with neither: its
 * PH x PW output, cropped back to H x W, is the logits. layer[0] is the
 * head, layer[1] the decoder's linear; block[] holds the convolutions.
 * With k draws per image the encoder runs on the B images and the decoder
 * on the B * k draws, so in training the decoder's BatchNorm takes its
 * batch statistics over all B * k rows (the encoder's over the B images). */
#ifndef MODEL_MODEL_H
#define MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "names.h"
#include "nn_types.h"
#include "rng.h"

#define MODEL_MAX_HIDDEN 4
#define MODEL_MAX_LAYERS (4 * MODEL_MAX_HIDDEN + 4) /* two stochastic layers: four networks */
#define MODEL_MAX_BLOCKS (2 * MODEL_MAX_HIDDEN)
#define MODEL_MAX_WIDTH 65536 /* largest accepted width of any layer */
#define MODEL_MAX_CLASSES (UINT8_MAX + 1) /* largest accepted number of labels: bytes */
#define MODEL_MAX_DRAWS 5000  /* largest accepted number of draws per image (--k) */

/* The Gaussian likelihood's fixed variance: with sigma^2 = 1/2 the
 * negative log-likelihood is the summed squared error plus the constant
 * (x_dim / 2) log(pi). */
#define MODEL_GAUSS_VAR 0.5

typedef enum model_arch { MODEL_ARCH_MLP = 0, MODEL_ARCH_CONV = 1 } model_arch;

/* p(x | z) per pixel, from the decoder's output a (a logit):
 *   bernoulli  Bernoulli(sigmoid(a)): binary cross-entropy
 *   cb         continuous Bernoulli(sigmoid(a)) (Loaiza-Ganem & Cunningham
 *              2019): the cross-entropy minus its log normalising constant
 *   gaussian   N(sigmoid(a), MODEL_GAUSS_VAR) */
typedef enum model_lik {
    MODEL_LIK_BERNOULLI = 0,
    MODEL_LIK_CB = 1,
    MODEL_LIK_GAUSSIAN = 2
} model_lik;

/* The architecture; stored in checkpoints. */
typedef struct model_config {
    size_t x_dim;                  /* input values per image (784): height * width * channels */
    size_t n_hidden;               /* hidden layers per side, 1..MODEL_MAX_HIDDEN */
    size_t hidden[MODEL_MAX_HIDDEN]; /* encoder widths; the decoder mirrors them */
    size_t z_dim;                  /* latent dimensions */
    model_act act;                   /* hidden-layer activation */
    model_lik likelihood;            /* p(x | z) */
    size_t n_classes;              /* 0, or the labels of a conditional VAE (MLP) */
    model_arch arch;                 /* MLP, or conv (hidden[] are then channels) */
    size_t height, width;          /* image size; 0: a square of x_dim pixels (else 1 x x_dim) */
    size_t channels;               /* 1 grey, 3 RGB (each pixel's three values together); 0: 1 */
    /* A second stochastic layer h2 above h1 = z (MLP, unconditional): q(h2|h1)
     * of n_hidden2 hidden layers hidden2[] and a head [mu2 | logvar2], p(h1|h2)
     * mirroring them with a head [mu | logvar] of h1, and p(h2) = N(0, I).
     * z2_dim 0: one stochastic layer. */
    size_t z2_dim;
    size_t n_hidden2;
    size_t hidden2[MODEL_MAX_HIDDEN];
} model_config;

/* One linear layer: out = W [inp | one-hot(y)] + b. Offsets of its weight
 * (out x (in + n_onehot)) and bias (out) in the flat parameter buffer;
 * gradients and Adam moments use the same offsets. */
typedef struct model_layer {
    size_t in;       /* dense inputs */
    size_t n_onehot; /* one-hot label inputs after them (0 or n_classes) */
    size_t out;
    size_t w_off, b_off;
    int has_act;
} model_layer;

/* One convolution (or transposed convolution) of the conv VAE, with its
 * activation and BatchNorm if it has them. Offsets as in model_layer; the
 * BatchNorm's gamma, beta, running mean and running variance (cout each)
 * follow one another at bn_off. The running averages are in the parameter
 * buffer, so checkpoints hold them, but their gradient is always 0: Adam
 * leaves them alone, and the training forward pass moves them. */
typedef struct model_block {
    size_t cin, cout;
    size_t h, w;     /* input size; a conv halves it, a transposed one doubles it */
    size_t w_off, b_off, bn_off;
    int transposed;
    int has_bn;      /* LeakyReLU then BatchNorm (all blocks but the last) */
} model_block;

typedef struct model_net {
    model_config cfg;
    size_t n_layers;
    model_layer layer[MODEL_MAX_LAYERS];
    size_t n_blocks; /* conv VAE only */
    model_block block[MODEL_MAX_BLOCKS];
    size_t pad_top, pad_left; /* conv VAE: zero rows above, columns left of an image */
    size_t n_params;
    float *params; /* one allocation, n_params floats */
} model_net;

/* A thread's part in a team that computes one batch together by splitting
 * every MLP layer's output units (the plan for small batches; see
 * model_train_team). {0, 1, NULL, NULL, NULL, 0}: one thread alone. */
typedef struct model_team {
    size_t k, T;                /* this thread's index, of T */
    void (*barrier)(void *ctx); /* returns once all T threads have called it */
    void *ctx;
    /* T > 1: T scratch buffers of part_n floats (thread k's at part + k *
     * part_n) for the backward pass's partial input gradients, each at
     * least model_team_part_n floats. */
    float *part;
    size_t part_n;
} model_team;

/* The floats each thread's partial input gradient needs (model_team.part_n)
 * for batches of up to cap images with k draws each. */
size_t model_team_part_n(const model_net *m, size_t cap, size_t k);

/* The conv VAE's activations (CNHW tensors: channel, image, row, column). */
typedef struct model_cnn_acts {
    float *xpad;                 /* (C, cap, PH, PW) padded input */
    float *act[MODEL_MAX_BLOCKS];  /* block output after LeakyReLU (pre-BatchNorm) */
    float *xhat[MODEL_MAX_BLOCKS]; /* BatchNorm's normalized input */
    float *out[MODEL_MAX_BLOCKS];  /* block output (after BatchNorm) */
    float *invstd[MODEL_MAX_BLOCKS];
    float *flat;                 /* (cap, F): the encoder's last block, flattened */
    float *dflat;                /* (cap, F): the decoder's linear output */
    float *unflat;               /* (C, cap, 4x4): the same, as the first block's input */
    float *gflat;                /* (cap, F): a gradient at either */
    float *g0, *g1;              /* gradient buffers, each the largest CNHW tensor */
    float *col;                  /* im2col scratch */
    double *scratch;             /* BatchNorm sums */
} model_cnn_acts;

/* What training minimises per image. */
typedef enum model_objective {
    MODEL_OBJ_ELBO = 0, /* rec averaged over the draws + beta KL: the negative ELBO */
    MODEL_OBJ_IWAE = 1  /* -log (1/k sum_j p(x, z_j) / q(z_j | x)) (beta unused) */
} model_objective;

/* How the importance-weighted bound's gradient reaches the encoder (the
 * decoder's, and a conditional prior's, is the standard one in all three). */
typedef enum model_estimator {
    MODEL_EST_STANDARD = 0, /* the bound's gradient (Burda et al.) */
    MODEL_EST_STL = 1,      /* sticking the landing (Roeder et al. 2017): without the
                             score term of q's parameters */
    MODEL_EST_DREG = 2      /* doubly reparameterized (Tucker et al. 2018): the path
                             gradient with the squared normalised weights */
} model_estimator;

/* The loss a pass computes and differentiates: the objective over the
 * acts' k draws per image, the ELBO's KL weight, and (for the IW bound) the
 * encoder's gradient estimator. */
typedef struct model_loss_spec {
    model_objective objective;
    double beta;
    model_estimator estimator;
} model_loss_spec;

/* Activations and their gradients for up to cap images, one allocation. */
typedef struct model_acts {
    size_t cap;
    float *mem;
    int training;              /* BatchNorm: batch statistics (1) or running (0) */
    model_reduce reduce;         /* the team's sum for batch statistics */
    float *head, *dhead;       /* cap x 2z: [mu | logvar] and its gradient */
    float *logits, *dlogits;   /* cap x x_dim */
    model_cnn_acts cnn;
    float *x;                  /* cap x x_dim: the reconstruction target */
    float *xin;                /* the encoder's input: x, or xin_buf (corrupted x) */
    float *xin_buf;            /* cap x x_dim */
    uint8_t *y;                /* cap labels (conditional models) */
    float *h[MODEL_MAX_LAYERS];  /* layer outputs after activation; head = [mu|logvar] */
    float *dh[MODEL_MAX_LAYERS]; /* d loss / d h[l] (for the heads and output: pre-act) */
    float *eps;                /* cap x z_dim, the reparameterization noise */
    float *z, *dz;             /* cap x z_dim */
    float *rec, *kl;           /* cap: per-image -log p(x|z) and KL (nats) */
    /* K draws per image (both architectures): the decoder runs on cap * k
     * rows, row i*k+j the j-th draw of image i; eps, z and dz are then
     * cap * k rows too. */
    size_t k;
    float *obj;                /* cap: the objective per image (what is minimised) */
    float *rrec;               /* cap * k: -log p(x|z) per draw */
    float *wt;                 /* cap * k: each draw's weight in the gradient */
    uint8_t *ydec;             /* cap * k labels of the decoder's rows (= y when k is 1) */
    /* Two stochastic layers (else NULL), cap * k rows each: h2's noise,
     * h2 and its gradient, and the gradient at h1 that q(h2|h1) gives. */
    float *eps2, *z2, *dz2, *dz1q;
    float *dz1s; /* STL and DReG: the part of dz1q from log q(h2|h1)'s score */
    void *aux;                 /* a second allocation, or NULL (neither uses one now) */
} model_acts;

/* ---- lifecycle ---------------------------------------------------------- */

/* Checks a configuration. Returns 0, or -1 with err saying what is wrong. */
int model_config_check(const model_config *cfg, err_msg *err);

/* Fills in an unset image shape of cfg (height/width 0, channels 0): one
 * channel, a square of x_dim pixels if x_dim is a square, else 1 x x_dim. */
void model_config_shape(model_config *cfg);

/* Sets cfg's image shape and x_dim = height * width * channels. */
void model_config_image(model_config *cfg, size_t height, size_t width, size_t channels);

/* The widths as the command line writes them, into out (size bytes):
 * hidden "200,200", with two stochastic layers "200,200/100,100"; latent
 * "50", with two "100,50". With json, the second layer's part is left out
 * (JSON gives it under its own keys). Return out. */
char *model_hidden_text(const model_config *cfg, int json, char *out, size_t size);
char *model_latent_text(const model_config *cfg, int json, char *out, size_t size);

/* Lays out the layers of cfg and counts its parameters, allocating
 * nothing (m->params stays NULL). Returns 0, or -1 with err. */
int model_layout(model_net *m, const model_config *cfg, err_msg *err);

/* model_layout, then allocates the parameters (uninitialised). Returns 0, or
 * -1 with err. */
int model_init(model_net *m, const model_config *cfg, err_msg *err);

/* PyTorch nn.Linear init: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
void model_init_params(model_net *m, rng_state *rng);

/* Glorot (Xavier) uniform init: weights U(-b, b), b = sqrt(6 / (fan_in +
 * fan_out)), drawn in the same order as model_init_params; biases 0, except
 * the output layer's: the logit of each pixel's mean over the training set
 * (pixel_mean, x_dim values in [0,1]; clipped to [0.001, 0.999]); the conv
 * VAE's single output bias takes the mean over all pixels. */
void model_init_glorot(model_net *m, rng_state *rng, const double *pixel_mean);

/* Frees the parameters; safe on a zeroed model. */
void model_free(model_net *m);

/* Allocates activations for batches of up to cap images, one draw each.
 * Returns 0 or -1. */
int model_acts_init(model_acts *a, const model_config *cfg, size_t cap, err_msg *err);

/* model_acts_init with k draws per image (for the K-sample ELBO, whose
 * reconstruction term is averaged over the k draws, or the
 * importance-weighted bound of Burda et al.). Returns 0 or -1 with err. */
int model_acts_init_k(model_acts *a, const model_config *cfg, size_t cap, size_t k,
                    err_msg *err);

/* Frees the activations; safe on a zeroed struct. */
void model_acts_free(model_acts *a);

/* ---- passes (B <= a->cap images) ---------------------------------------- */

/* Two stochastic layers (else a no-op): q(h2|h1) on the B * k rows of a->z,
 * then h2 = mu2 + eps2 exp(logvar2 / 2) into a->z2 from a->eps2 (mu2 with
 * use_mean). model_reparam calls it after drawing h1. */
void model_draw_top(const model_net *m, model_acts *a, size_t B, int use_mean);

/* Two stochastic layers: q(h2|h1)'s head [mu2 | logvar2] at row r after
 * model_draw_top (NULL for one layer). */
float *model_top_mu(const model_net *m, const model_acts *a, size_t r);

/* Two stochastic layers: p(h1|h2) alone on the B * k rows of a->z2, and
 * its head [mu | logvar] of h1 at row r (NULL for one layer). */
void model_prior_top(const model_net *m, model_acts *a, size_t B);
float *model_prior_top_mu(const model_net *m, const model_acts *a, size_t r);

/* Two stochastic layers, row r after model_draw_top and model_decode:
 * log p(h1|h2) + log p(h2) - log q(h2|h1) at the row's draws, the 2 pi
 * terms cancelled (log q(h2|h1) = sum -eps2^2/2 - logvar2/2). */
double model_top_log_ratio(const model_net *m, const model_acts *a, size_t r);

/* Encoder: a->xin (B x x_dim), and a->y if conditional -> head rows
 * [mu | logvar] (B x 2z); for a conditional model also the prior head. */
void model_encode(const model_net *m, model_acts *a, size_t B);

/* The prior network alone: a->y -> [mu | logvar] of p(z | y) (B x 2z).
 * No-op for an unconditional model, whose prior is N(0, I). */
void model_prior(const model_net *m, model_acts *a, size_t B);

/* z = mu + eps * exp(logvar / 2) from a->eps; with use_mean, z = mu. */
void model_reparam(const model_net *m, model_acts *a, size_t B, int use_mean);

/* Decoder: a->z (B x z), and a->y if conditional -> logits (B x x_dim). */
void model_decode(const model_net *m, model_acts *a, size_t B);

/* p(x|z) alone: the pixels' logits from the B * k rows of a->z, without a
 * two-layer model's p(h1|h2) (model_decode's, for pictures of given codes). */
void model_decode_pixels(const model_net *m, model_acts *a, size_t B);

/* Loss per image into a->rec (-log p(x|z) against a->x), a->kl (KL of
 * q(z|x) to the prior) and a->obj (the objective of loss), and the
 * gradient of the batch sum of the objective with respect to the logits
 * and the heads. Returns the batch sum of rec + kl. */
double model_loss(const model_net *m, model_acts *a, size_t B, const model_loss_spec *loss);

/* Backpropagates what model_loss seeded through decoder, reparameterization,
 * encoder and prior network. Writes (does not accumulate) the gradient
 * into grads, laid out like m->params. */
void model_backward(const model_net *m, model_acts *a, float *grads, size_t B,
                  const model_loss_spec *loss);

/* The MLP's whole training pass, by every thread of team t at once over
 * one shared a and grads: encode, draw z from a->eps, decode, the loss and
 * its gradient (as model_loss) and the backward pass (as model_backward); each
 * layer's units split among the threads. Each thread reads and writes only
 * its own units' weights: a layer's input gradient is the sum of every
 * thread's product over its own units, added in thread order; every other
 * sum has the terms it has with one thread (in the same order, unless
 * OpenBLAS picks another kernel for a narrower share). Returns, in thread
 * 0, the batch sum of rec + kl (0 elsewhere). */
double model_train_team(const model_net *m, model_acts *a, float *grads, size_t B,
                      const model_loss_spec *loss, const model_team *t);

/* -log p(x | logits) of n rows of logits (n x x_dim) against targets x,
 * rows x_stride apart (0: the same target for every row), into rec[n]. */
void model_rec_rows(const model_net *m, const float *logits, const float *x,
                  size_t x_stride, size_t n, float *rec);

/* Pointers into the head output of image b. */
float *model_mu(const model_net *m, const model_acts *a, size_t b);
float *model_logvar(const model_net *m, const model_acts *a, size_t b);

/* Pointers into the prior head of image b (conditional models only). */
float *model_prior_mu(const model_net *m, const model_acts *a, size_t b);
float *model_prior_logvar(const model_net *m, const model_acts *a, size_t b);

/* Output logits of the batch (B x x_dim). */
float *model_logits(const model_net *m, const model_acts *a);

/* The likelihood's mean per pixel from n logits, what images show:
 * sigmoid(a) (Bernoulli, Gaussian) or the continuous Bernoulli's mean. */
void model_mean(const model_net *m, float *out, const float *logits, size_t n);


/* The names of model_act ("relu", "tanh", "leaky"), model_arch ("mlp",
 * "conv"), model_lik ("bernoulli", "cb", "gaussian") and model_objective
 * ("elbo", "iwae"), in their values' order (names.h). */
extern const enum_names model_act_names, model_arch_names, model_lik_names, model_objective_names,
    model_estimator_names;

/* The name of a likelihood ("bernoulli", "cb", "gaussian"; "unknown"). */
const char *model_lik_name(model_lik lik);

#endif
