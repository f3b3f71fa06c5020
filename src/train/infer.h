/* infer.h - what a trained model computes about a data set: the test loss
 * (negative ELBO), per-image latent codes and scores, and the
 * importance-weighted bound on -log p(x). Work is split across the thread
 * team; every random draw is fixed by the seed and the image, so results
 * depend on the number of threads only through the rounding of the sgemm
 * calls a split makes (last digits). */
#ifndef VAE_INFER_H
#define VAE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "idx.h"
#include "shard.h"
#include "model.h"

/* The draws that binarize the test images for a model trained binarized
 * (the same for every model, so their numbers compare). */
#define INFER_TEST_KEY 0x7465737462696eULL

/* How a model trained with binarize mode b (0 none, else binarized) sees
 * evaluation data: intensities, or a fixed binarization. */
idx_view infer_test_view(uint64_t binarize);

/* Mean negative ELBO of the whole set in nats per image, split into *rec
 * (-log p(x|z)) and *kl; z is drawn with eps from an RNG seeded with seed,
 * in batches of s->cap split across the team. Returns rec + kl. */
double infer_eval(const model_net *m, shard_set *s, const idx_set *set,
                  const idx_view *view, uint64_t seed, double *rec, double *kl);

/* Per image of set, the quantities infer_eval sums (same draws): the
 * posterior mean and log-variance (n x z_dim each) and the negative ELBO's
 * two terms (n each). Any output may be NULL (the same on every rank).
 * Across ranks (s from shard_init_ranks) every rank gets every image's. */
void infer_per_image(const model_net *m, shard_set *s, const idx_set *set,
                     const idx_view *view, uint64_t seed, float *mu,
                     float *logvar, float *rec, float *kl);

/* Burda et al.'s diagnostic of posterior collapse: a latent unit is active
 * when the variance over the data of its posterior mean is above this. */
#define INFER_ACTIVE_VAR 0.01

/* The active units of n posterior means (mu: n x z_dim, row-major): how
 * many of the z_dim units' means vary over the n images by more than
 * INFER_ACTIVE_VAR (the variance over the images, divided by n, in double).
 * Each unit's variance into var (z_dim) if non-NULL. Returns the count
 * (0 when n is 0). */
size_t infer_active_units(const float *mu, size_t n, size_t z_dim, double *var);

/* Two stochastic layers: each image's mean and log-variance of q(h2|h1)
 * at h1 = the mean of q(h1|x) (the chain's means, no draw) into mu2 and
 * logvar2 (n x z2_dim each; logvar2 may be NULL), through a (one draw an
 * image), a->cap images at a time. */
void infer_top_means(const model_net *m, model_acts *a, const idx_set *set,
                     const idx_view *view, float *mu2, float *logvar2);

/* Two stochastic layers: each image's p(h1|h2) head [mp | lp] (n x 2
 * z_dim) at h2 = q(h2|h1)'s mean at h1 = q(h1|x)'s mean (the chain's
 * means), through a, a->cap images at a time: the prior of its h1. */
void infer_top_prior(const model_net *m, model_acts *a, const idx_set *set,
                     const idx_view *view, float *prior);

/* The posterior means of stochastic layer `layer` (1: q(h1|x)'s, as
 * infer_per_image gives them; 2: q(h2|h1)'s at h1's mean, through
 * infer_top_means on s->acts[0]) of every image into mu (n x that layer's
 * size). */
void infer_layer_means(const model_net *m, shard_set *s, const idx_set *set,
                       const idx_view *view, uint64_t seed, int layer, float *mu);

/* The active units of each stochastic layer over set, bottom first, into
 * active[0] (h1, or z) and active[1] (h2 of a model of two, else 0): the
 * posterior means of infer_layer_means. Returns 0, or -1 with err (out of
 * memory). */
int infer_layer_activity(const model_net *m, shard_set *s, const idx_set *set,
                         const idx_view *view, uint64_t seed, size_t active[2],
                         err_msg *err);

/* The most draws an image the bound takes (--iw, vae_score's k). */
#define INFER_MAX_IW 1000000

/* The importance-weighted bound of Burda et al. over the set. */
typedef struct infer_iw_result {
    double iw_nll;   /* mean over images of -log (1/K sum_k p(x,z_k)/q(z_k|x)) */
    /* With bench: thread-seconds of the computation and of its sgemm calls
     * replayed alone right after each batch of images, and their flops. */
    double work_s, gemm_s, gemm_flops;
} infer_iw_result;

/* For every image, K draws z_k ~ q(z|x) decoded in batches, log w_k =
 * log p(x|z_k) + log p(z_k) - log q(z_k|x), and log (1/K sum exp(log w_k))
 * by a running log-sum-exp. Under mpirun (dist.h) every rank calls it:
 * R ranks of T threads take the images one process with R x T threads
 * gives its threads, the per-image values are gathered and summed in image
 * order on every rank, so the bound is that process's to the bit; the
 * timings are this rank's. With
 * bench, also times the work against its own sgemm calls. Returns 0, or -1
 * with err (out of memory on any rank). */
int infer_iw(const model_net *m, const idx_set *set, const idx_view *view,
             size_t K, uint64_t seed, int bench, infer_iw_result *out,
             err_msg *err);

/* Each image's bound on -log p(x), -log (1/K sum_k w_k) with infer_iw's
 * draws, into score (set->n doubles; the same on every rank). Returns 0, or
 * -1 with err (out of memory, K = 0). */
int infer_iw_images(const model_net *m, const idx_set *set, const idx_view *view,
                    size_t K, uint64_t seed, double *score, err_msg *err);

/* n x z_dim standard normal draws from seed (a stream of their own). */
void infer_prior_draws(float *eps, size_t n, size_t z_dim, uint64_t seed);

/* The noise values a prior draw takes: z_dim; with two stochastic layers
 * z2_dim + z_dim (h2's, then h1's). */
size_t infer_prior_dim(const model_net *m);

/* Latent codes (n x z_dim) of n prior draws from the noise eps (n x
 * infer_prior_dim): z = eps for N(0, I); for a conditional model z = mu_p(y) +
 * exp(logvar_p(y) / 2) eps, y = labels[i], through a's prior network; with
 * two stochastic layers ancestrally: h2 = its noise, then h1 = mu(h2) +
 * exp(logvar(h2) / 2) eps1 through p(h1|h2). In batches of a->cap. */
void infer_prior_z(const model_net *m, model_acts *a, const float *eps,
                  const uint8_t *labels, size_t n, float *z);

/* Decodes n codes z (n x z_dim; h1's with two layers; with labels for a
 * conditional model, else labels NULL) into out (n x x_dim pixel means),
 * a->cap at a time, BatchNorm from its running averages. */
void infer_decode_means(const model_net *m, model_acts *a, const float *z,
                        const uint8_t *labels, size_t n, float *out);

/* The first n images of set (through view), each decoded from its
 * posterior mean: image i as the model sees it into x + i * stride (x may
 * be NULL) and its pixel means into recon + i * stride, a->cap at a time. */
void infer_recon_means(const model_net *m, model_acts *a, const idx_set *set,
                       const idx_view *view, size_t n, float *x, float *recon,
                       size_t stride);

/* Images a picture's activations take at once (vae sample, reconstruct,
 * libvae): INFER_PICTURE_CAP, the conv VAE's (~1 MB an image) at most
 * INFER_CONV_CAP. */
#define INFER_PICTURE_CAP 256
#define INFER_CONV_CAP 32

#endif
