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
#include "settings.h"
#include "model.h"

#define CKPT_MAGIC "VAECKPT\x1a" /* 8 bytes */
#define CKPT_VERSION 7u     /* what ckpt_save writes */
#define CKPT_VERSION_MIN 2u /* the oldest ckpt_read reads */

/* Where a training run stands. A checkpoint written mid-epoch (after an
 * interrupt) has step > 0; rng_data is the shuffle RNG as it was when the
 * epoch began, so the epoch's order can be drawn again exactly. */
typedef struct ckpt_train {
    run_settings set;    /* what the run is trained with (settings.h) */
    uint64_t epoch;      /* completed epochs */
    uint64_t step;       /* steps done in the epoch under way (0 between epochs) */
    uint64_t adam_t;     /* Adam steps taken */
    rng_state rng_data;  /* shuffle RNG at the start of the epoch under way */
    rng_state rng_noise; /* reparameterization RNG, current */
    double sum_rec;      /* running sums over the epoch under way */
    double sum_kl;
    uint64_t n_seen;     /* images seen in the epoch under way */
    double seconds;      /* training seconds spent in the epoch under way */
    idx_fingerprint data; /* the training set (n = 0: unknown, version 2) */
    uint64_t best_epoch; /* the epoch of the lowest validation loss so far (0: none;
                            version 4) */
    double best_loss;    /* that loss (0 while best_epoch is 0) */
    double sum_obj;      /* the objective summed over the epoch under way */
} ckpt_train;

/* A training state with every field 0 except the settings, which hold
 * what a file before any of them reads as (each row's unused value): a
 * constant rate (gamma 1), no KL warm-up, PyTorch's Adam and init, the
 * ELBO with one draw. */
ckpt_train ckpt_train_defaults(void);

/* A checkpoint read into memory; params/adam_m/adam_v point into buf. */
typedef struct ckpt_data {
    uint32_t version;    /* of the file read */
    model_config cfg;
    ckpt_train train;
    size_t n_params;
    const float *params;
    const float *adam_m; /* Adam first moments, n_params */
    const float *adam_v; /* Adam second moments, n_params */
    void *buf;
} ckpt_data;

/* Which of the three arrays of n floats holds a NaN or an Inf first
 * ("parameters", "Adam first moments", "Adam second moments"), or NULL
 * when all are finite: what ckpt_read refuses. */
const char *ckpt_nonfinite(const float *params, const float *adam_m, const float *adam_v,
                           size_t n);

/* What ckpt_save returns when it refuses a state holding NaN or Inf. */
#define CKPT_NONFINITE (-2)

/* Writes model, Adam moments and training state to path atomically.
 * Returns 0; CKPT_NONFINITE with err when they hold a NaN or an Inf
 * (ckpt_nonfinite), which nothing reads back, and nothing is written; or
 * -1 with err. On failure the old file at path is left untouched. */
int ckpt_save(const char *path, const model_net *m, const float *adam_m,
              const float *adam_v, const ckpt_train *t, err_msg *err);

/* Reads and validates path (magic, version, CRC, architecture, sizes,
 * finite values). Returns 0, or -1 with err naming path and the problem. */
int ckpt_read(const char *path, ckpt_data *d, err_msg *err);

/* Frees what ckpt_read allocated; safe on a zeroed struct. */
void ckpt_data_free(ckpt_data *d);

/* Reads path into a freshly initialised model m, and its training state
 * into *t (if t is non-NULL). Returns 0, or -1 with err. */
int ckpt_load_model(const char *path, model_net *m, ckpt_train *t, err_msg *err);

#endif
