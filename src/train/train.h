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
#include "settings.h"
#include "shard.h"
#include "model.h"

#define TRAIN_STOPPED 1 /* train_run's return when *stop was raised */
/* train_run's return when the options ask what the resumed run cannot do:
 * a setting other than its own, epochs it already has, epochs past its
 * cosine schedule (a usage error, where -1 is a failure). */
#define TRAIN_REFUSED (-2)

/* The parts of a model's architecture an option sets (bits of
 * train_opts.given_model). */
typedef enum train_model_part {
    TRAIN_PART_HIDDEN,      /* the hidden widths, of both stochastic layers */
    TRAIN_PART_LATENT,      /* the latent sizes */
    TRAIN_PART_ACT,
    TRAIN_PART_ARCH,
    TRAIN_PART_LIKELIHOOD,
    TRAIN_PART_CONDITIONAL, /* whether it is conditional */
    TRAIN_PART_COUNT
} train_model_part;

typedef struct train_opts {
    size_t epochs;       /* total epochs of the run (a resumed run included) */
    /* A new run's settings; a resumed run keeps its own. set.sched.horizon
     * is set from epochs, and the settings the schedule does not use are
     * normalized (settings_normalize). */
    run_settings set;
    model_config cfg;      /* architecture of a new run */
    shard_plan plan;     /* how threads split a batch (auto; bench --plan) */
    int resume;          /* continue the run stored in ckpt_path */
    /* With resume: which settings were given on the command line (bit
     * 1 << setting_id) and which parts of the model (bit 1 << part, named
     * by part_option[part] in messages); each must match the checkpoint's
     * unless its row says a resumed run may change it, and a setting given
     * must be one the run uses. */
    uint64_t given;
    unsigned given_model;
    const char *part_option[TRAIN_PART_COUNT];
    /* With resume: the training set may differ from the one the checkpoint's
     * fingerprint describes (which then becomes this one's); without it, a
     * different training set is refused. */
    int new_data;
    const char *data_name; /* where the training set came from, for messages */
    const char *ckpt_path; /* written after every epoch and when stopped */
    /* The file those writes land on: ckpt_path's target resolved once,
     * when the run took its lock, so that a link pointed elsewhere
     * meanwhile does not move the run's saves; NULL: ckpt_path. */
    const char *save_path;
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
    model_lik likelihood;
    double seconds;      /* training time only (no evaluation or images) */
    double images_per_s;
} train_report;

/* The run as training holds it at a moment, for whatever shows it (the
 * output folder, view/runout.h): the model, activations free to run it
 * on, the test images as evaluation sees them. */
typedef struct train_epoch {
    size_t epoch;               /* the epoch just done (at the start: those done) */
    const model_net *model;
    model_acts *acts;             /* the evaluation's: scratch for the caller */
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
    /* After every epoch, once its checkpoint is saved (what is said of an
     * epoch is in the checkpoint). A non-zero return stops training with
     * err (the checkpoint holds the epoch). */
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
    /* After every epoch's pictures, before its checkpoint is saved: the
     * epoch's record (a metrics row), which a resume from the checkpoint
     * before it drops and writes again, so that no epoch's record is ever
     * missing. A non-zero return stops training with err, the epoch not
     * saved; may be NULL. */
    int (*record)(void *ctx, const train_report *r, err_msg *err);
} train_hooks;

/* 15 epochs, every setting at its row's default (settings_defaults), the
 * default model is the caller's; no checkpoint. */
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
 * (a checkpoint of the exact state is written first), TRAIN_REFUSED with
 * err, or -1 with err (bad options, non-finite loss, I/O failure; the last
 * good checkpoint is kept). hooks may be NULL. */
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
int train_check_shape(const model_config *cfg, const idx_set *set, const char *whose,
                      const char *what, err_msg *err);

#endif
