/* train.h - the training run: Adam over shuffled mini-batches, per-epoch
 * evaluation, sample and reconstruction grids, and atomic checkpoints that
 * let a run be resumed (even mid-epoch) to the bit-identical result. */
#ifndef VAE_TRAIN_H
#define VAE_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "err.h"
#include "idx.h"
#include "names.h"
#include "schedule.h"
#include "shard.h"
#include "vae.h"

#define TRAIN_STOPPED 1 /* train_run's return when *stop was raised */

/* How training sees the pixels (--binarize). */
typedef enum train_binarize {
    TRAIN_BIN_NONE = 0,    /* intensities in [0,1] */
    TRAIN_BIN_STATIC = 1,  /* each image binarized once for the whole run */
    TRAIN_BIN_DYNAMIC = 2  /* each pixel drawn anew every time an image is used */
} train_binarize;

/* How a new run's parameters start (--init). */
typedef enum train_init {
    TRAIN_INIT_TORCH = 0,  /* PyTorch's nn.Linear / Conv2d defaults */
    TRAIN_INIT_GLOROT = 1  /* Glorot uniform, zero biases, output bias at the
                              logit of each pixel's training mean */
} train_init;

/* train_binarize's names ("none", "static", "dynamic") and train_init's
 * ("torch", "glorot"), in their values' order (names.h). */
extern const enum_names train_binarize_names, train_init_names;

/* Bits of train_opts.given: the settings given on the command line. A
 * resumed run keeps its own, so each given one must equal the run's (one
 * rule per bit, in train.c). */
enum {
    TRAIN_SET_SCHEDULE = 1u << 0, TRAIN_SET_WARMUP = 1u << 1, TRAIN_SET_EVERY = 1u << 2,
    TRAIN_SET_GAMMA = 1u << 3, TRAIN_SET_KL_WARMUP = 1u << 4, TRAIN_SET_BETA1 = 1u << 5,
    TRAIN_SET_BETA2 = 1u << 6, TRAIN_SET_EPS = 1u << 7, TRAIN_SET_INIT = 1u << 8,
    TRAIN_SET_VALID = 1u << 9, TRAIN_SET_OBJECTIVE = 1u << 10, TRAIN_SET_DRAWS = 1u << 11,
    TRAIN_SET_SEED = 1u << 12, TRAIN_SET_MODEL = 1u << 13, TRAIN_SET_BATCH = 1u << 14,
    TRAIN_SET_LR = 1u << 15, TRAIN_SET_BETA = 1u << 16, TRAIN_SET_BINARIZE = 1u << 17,
    TRAIN_SET_NOISE = 1u << 18
};

typedef struct train_opts {
    size_t epochs;       /* total epochs of the run (a resumed run included) */
    size_t batch;        /* images per Adam step */
    double lr;           /* Adam learning rate */
    double beta;         /* weight of the KL term in the objective */
    train_binarize binarize;
    double noise;        /* std of the Gaussian input corruption (0: none) */
    uint64_t seed;       /* all randomness of the run derives from it */
    vae_config cfg;      /* architecture of a new run */
    /* Training controls of a new run. sched.lr and sched.horizon are set
     * from lr and epochs; a resumed run keeps its own. */
    schedule_config sched;  /* the learning rate's schedule */
    uint64_t kl_warmup;  /* epochs over which the KL weight rises from 0 to beta */
    double adam_beta1, adam_beta2, adam_eps;
    train_init init;     /* how parameters start */
    uint64_t valid;      /* training images held out for validation (0: none) */
    vae_objective objective; /* what is minimised: the ELBO or the IW bound */
    size_t draws;        /* draws of z per image (--k) */
    shard_plan plan;     /* how threads split a batch (auto; bench --plan) */
    int resume;          /* continue the run stored in ckpt_path */
    /* With resume: which settings were given on the command line; each must
     * match the checkpoint's (a resumed run keeps its settings). */
    unsigned given; /* TRAIN_SET_* bits */
    /* With resume: the training set may differ from the one the checkpoint's
     * fingerprint describes (which then becomes this one's); without it, a
     * different training set is refused. */
    int new_data;
    const char *data_name; /* where the training set came from, for messages */
    const char *ckpt_path; /* written after every epoch and when stopped */
    const char *best_path; /* with a validation set: the checkpoint of the epoch with
                              the lowest validation loss; NULL: not kept */
    volatile sig_atomic_t *stop; /* raised by a signal: finish the step, save, stop */
} train_opts;

/* One finished epoch. Losses are means in nats per image: loss is the
 * negative ELBO, rec + kl (what beta weighs is only the objective). */
typedef struct train_report {
    size_t epoch, epochs;
    double train_loss, train_rec, train_kl; /* over the epoch's images */
    double train_objective; /* what training minimised, its mean over the epoch */
    double test_loss, test_rec, test_kl;    /* over the test set */
    double valid_loss, valid_rec, valid_kl; /* over the held-out images (if any) */
    size_t best_epoch;   /* the epoch of the lowest validation loss so far (0: none) */
    double beta;
    double lr;           /* the learning rate of the epoch's last step */
    double kl_factor;    /* KL warm-up's factor at the epoch's last step (1: none) */
    vae_lik likelihood;
    double seconds;      /* training time only (no evaluation or images) */
    double images_per_s;
} train_report;

/* The run as training holds it at a moment, for whatever shows it (the
 * output folder, view/runout.h): the model, activations free to run it
 * on, the test images as evaluation sees them. */
typedef struct train_epoch {
    size_t epoch;               /* the epoch just done (at the start: those done) */
    const vae_model *model;
    vae_acts *acts;             /* the evaluation's: scratch for the caller */
    const idx_set *test;        /* NULL or empty: none */
    const idx_view *test_view;
    uint64_t seed;              /* the run's */
    uint64_t valid_n;           /* images held out for validation (0: none) */
    const ckpt_train *state;    /* the run's settings and state, as saved */
} train_epoch;

typedef struct train_hooks {
    /* After every step: images done of total in this epoch, seconds so far. */
    void (*progress)(void *ctx, size_t epoch, size_t done, size_t total,
                     double seconds);
    /* After every epoch, once its checkpoint is saved. A non-zero return
     * stops training with err (the checkpoint holds the epoch). */
    int (*epoch_done)(void *ctx, const train_report *r, err_msg *err);
    /* Something went wrong that does not stop training (the loss curve
     * could not be drawn, say). */
    void (*warn)(void *ctx, const char *msg);
    void *ctx;
    /* Right after each save of the run's checkpoint (a new file under its
     * name), before anything else is written; may be NULL. */
    void (*saved)(void *ctx);
    /* Once, before the first step (e->epoch: the epochs done), and after
     * every epoch's evaluation, before its checkpoint is saved (so that a
     * saved epoch has what these write). A non-zero return stops training
     * with err; may be NULL. */
    int (*begin)(void *ctx, const train_epoch *e, err_msg *err);
    int (*pictures)(void *ctx, const train_epoch *e, err_msg *err);
} train_hooks;

/* The defaults of every option: batch 128, lr 1e-3, beta 1, a constant
 * learning rate, no KL warm-up, PyTorch's Adam (0.9, 0.999, 1e-8) and
 * init, seed 1, 15 epochs; no checkpoint. */
train_opts train_defaults(void);

/* The validation split of a run: valid (valid_n images) and part (the rest,
 * trained on), copies of whole's images and labels, each in file order. The
 * held-out images are the first valid_n of a shuffle of all indices by
 * rng_seed(seed ^ 0x76616c69), so the run's seed fixes them. Returns 0, or
 * -1 with err (valid_n not in [1, n), out of memory); free both with idx_free. */
int train_split(const idx_set *whole, uint64_t valid_n, uint64_t seed, idx_set *part,
                idx_set *valid, err_msg *err);

/* Runs training on train, evaluating on test after each epoch.
 * Returns 0 when all epochs are done, TRAIN_STOPPED when *stop was raised
 * (a checkpoint of the exact state is written first), or -1 with err
 * (bad options, non-finite loss, I/O failure; the last good checkpoint
 * is kept). hooks may be NULL. */
int train_run(const train_opts *o, const idx_set *train, const idx_set *test,
              const train_hooks *hooks, err_msg *err);

/* One benchmark round: a training epoch and its GEMMs replayed alone. */
typedef struct train_bench_round {
    double epoch_s;  /* the epoch's training time */
    double gemm_s;   /* the same sgemm calls, same operands, alone */
    double comm_s;   /* under mpirun: of epoch_s, the time in collectives (dist.h) */
    size_t steps;    /* the epoch's steps */
} train_bench_round;

/* The benchmark: trains `rounds` epochs of a fresh model exactly as
 * train_run does (no evaluation, images or checkpoint); after every step
 * it replays that step's sgemm calls alone (same shapes and operands).
 * Fills out[0..rounds) with the summed times and *gemm_flops with one
 * epoch's GEMM work. Returns 0, or -1 with err. */
int train_bench(const train_opts *o, const idx_set *train, size_t rounds,
                train_bench_round *out, double *gemm_flops, err_msg *err);

/* Whether set's images are what the model of cfg takes (height, width and
 * channels). Returns 0, or -1 with err naming whose model and what set
 * (sizes as width x height). */
int train_check_shape(const vae_config *cfg, const idx_set *set, const char *whose,
                      const char *what, err_msg *err);

#endif
