/* ckpt.h - the vae.bin checkpoint: architecture, parameters and the whole
 * training state, little-endian, with a CRC-32 (zlib) over every byte
 * before it. Written atomically (afile). The format is in docs/checkpoint.md. */
#ifndef VAE_CKPT_H
#define VAE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "idx.h"
#include "rng.h"
#include "schedule.h"
#include "vae.h"

#define CKPT_MAGIC "VAECKPT\x1a" /* 8 bytes */
#define CKPT_VERSION 5u     /* what ckpt_save writes */
#define CKPT_VERSION_MIN 2u /* the oldest ckpt_read reads */

/* Where a training run stands. A checkpoint written mid-epoch (after an
 * interrupt) has step > 0; rng_data is the shuffle RNG as it was when the
 * epoch began, so the epoch's order can be drawn again exactly. */
typedef struct ckpt_train {
    uint64_t seed;       /* the run's --seed */
    uint64_t epoch;      /* completed epochs */
    uint64_t step;       /* steps done in the epoch under way (0 between epochs) */
    uint64_t adam_t;     /* Adam steps taken */
    uint64_t batch;      /* --batch of the run */
    double lr;           /* --lr of the run */
    double beta;         /* --beta: the KL's weight in the objective */
    uint64_t binarize;   /* --binarize: 0 none, 1 static, 2 dynamic */
    double noise;        /* --noise: std of the input corruption (0: none) */
    rng_state rng_data;  /* shuffle RNG at the start of the epoch under way */
    rng_state rng_noise; /* reparameterization RNG, current */
    double sum_rec;      /* running sums over the epoch under way */
    double sum_kl;
    uint64_t n_seen;     /* images seen in the epoch under way */
    double seconds;      /* training seconds spent in the epoch under way */
    idx_fingerprint data; /* the training set (n = 0: unknown, version 2) */
    /* Training controls (version 4; older files read as the defaults). */
    schedule_config sched;  /* learning-rate schedule; sched.lr is lr above */
    uint64_t kl_warmup;  /* epochs over which the KL weight rises to beta (0: none) */
    double adam_beta1, adam_beta2, adam_eps; /* 0.9, 0.999, 1e-8 */
    uint64_t init;       /* how the run began: 0 PyTorch's nn.Linear, 1 Glorot */
    uint64_t valid_n;    /* training images held out for validation (0: none) */
    uint64_t best_epoch; /* the epoch of the lowest validation loss so far (0: none) */
    double best_loss;    /* that loss (0 while best_epoch is 0) */
    uint64_t objective;  /* vae_objective: 0 the ELBO, 1 the importance-weighted bound */
    uint64_t draws;      /* --k: draws of z per image in training (1 to VAE_MAX_DRAWS) */
    double sum_obj;      /* the objective summed over the epoch under way */
} ckpt_train;

/* A training state with every field 0 except the training controls, which
 * hold what a version-2 or 3 file reads as: a constant rate (gamma 1), no
 * KL warm-up, Adam 0.9 / 0.999 / 1e-8, PyTorch's init. */
ckpt_train ckpt_train_defaults(void);

/* A checkpoint read into memory; params/adam_m/adam_v point into buf. */
typedef struct ckpt_data {
    uint32_t version;    /* of the file read */
    vae_config cfg;
    ckpt_train train;
    size_t n_params;
    const float *params;
    const float *adam_m; /* Adam first moments, n_params */
    const float *adam_v; /* Adam second moments, n_params */
    void *buf;
} ckpt_data;

/* Writes model, Adam moments and training state to path atomically.
 * Returns 0, or -1 with err (the old file at path is left untouched). */
int ckpt_save(const char *path, const vae_model *m, const float *adam_m,
              const float *adam_v, const ckpt_train *t, err_msg *err);

/* Reads and validates path (magic, version, CRC, architecture, sizes,
 * finite values). Returns 0, or -1 with err naming path and the problem. */
int ckpt_read(const char *path, ckpt_data *d, err_msg *err);

/* Frees what ckpt_read allocated; safe on a zeroed struct. */
void ckpt_data_free(ckpt_data *d);

/* Reads path into a freshly initialised model m, and its training state
 * into *t (if t is non-NULL). Returns 0, or -1 with err. */
int ckpt_load_model(const char *path, vae_model *m, ckpt_train *t, err_msg *err);

#endif
