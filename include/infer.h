/* infer.h - what a trained model is used for: test loss, sample grids and
 * reconstruction grids. Shared by 'vae train' (each epoch) and the
 * sample, reconstruct and eval commands. */
#ifndef VAE_INFER_H
#define VAE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "idx.h"
#include "shard.h"
#include "vae.h"

/* Mean negative ELBO of the whole set in nats per image, split into *bce
 * and *kl; z is sampled with eps drawn from an RNG seeded with seed, in
 * batches of s->cap split across the team. Returns bce + kl. */
double infer_eval(const vae_model *m, shard_set *s, const idx_set *set,
                  uint64_t seed, double *bce, double *kl);

/* Decodes n latent vectors z (n x z_dim) into pixel means and writes them
 * as a PNG grid (8 a row). Returns 0, or -1 with err. */
int infer_sample_png(const vae_model *m, vae_acts *a, const float *z, size_t n,
                     const char *path, err_msg *err);

/* Writes the first n images of set each beside its reconstruction (decoded
 * from the posterior mean): 8 tiles a row, original then reconstruction.
 * Returns 0, or -1 with err. */
int infer_recon_png(const vae_model *m, vae_acts *a, const idx_set *set,
                    size_t n, const char *path, err_msg *err);

/* The fixed prior draws shown each epoch: n x z_dim normals from seed. */
void infer_prior_draws(float *z, size_t n, size_t z_dim, uint64_t seed);

#endif
