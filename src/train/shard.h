/* shard.h - one batch of images split across the thread team (par.h).
 *
 * Two plans. Rows: each thread takes a contiguous share of the batch and
 * runs, with its own activations, the forward pass and the loss, and for
 * training the backward pass into its own gradient buffer; the optimizer
 * then adds the shares' gradients in a fixed order. Units (training the
 * MLP on small batches, where a share of a few rows would run sgemm at a
 * fraction of its speed): all threads run one pass over the whole batch,
 * each computing its share of every layer's output units, into one
 * gradient buffer, and Adam updates each thread's own units: a thread
 * reads and writes only its own units' weights (a layer's input gradient
 * is the sum of the threads' products over their units, added in thread
 * order), as a line another core last wrote costs far more to read or
 * write than a local one. Every other sum has the terms it has with one
 * thread, so the result is the one-thread result up to rounding. Shares and sums
 * never depend on timing, so results depend on the plan and team size
 * only.
 *
 * Across the R ranks of an MPI run (dist.h), each with a team of T, the
 * rows plan makes the R*T shares one process with R*T threads would make:
 * rank r computes shares r*T .. r*T+T-1. The parameters are cut into R
 * slices; rank r gets all R*T gradient shares of its slice, and the
 * training step's then->fn (Adam) adds them in share order and updates
 * that slice, after which every rank gets every slice. On one machine
 * the gradient shares and the slices pass through memory all ranks map
 * (nothing is sent); across machines, in MPI messages. BatchNorm's sums
 * and the losses are gathered and added in share and image order too. So
 * R ranks of T threads compute the bits of one process with R*T threads
 * on the rows plan. The units plan stays inside one process. */
#ifndef VAE_SHARD_H
#define VAE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "idx.h"
#include "par.h"
#include "rng.h"
#include "model.h"

/* How a team splits a batch (see above); auto: shard_plan_for's choice. */
typedef enum shard_plan { SHARD_AUTO = 0, SHARD_ROWS = 1, SHARD_UNITS = 2 } shard_plan;

/* The plans' names ("auto", "rows", "units"), in their values' order. */
extern const enum_names shard_plan_names;

/* shard_plan_for picks the units plan while a batch has fewer than this
 * many images a thread (measured: docs/speed.md). */
#define SHARD_UNITS_BELOW 64

/* What a shard set is made for. Zero fields take the defaults noted. */
typedef struct shard_spec {
    size_t cap;              /* images per batch at most */
    int with_grads;          /* training: gradient buffers */
    size_t draws;            /* k draws of z per image (0: 1) */
    model_objective objective; /* what the passes compute (default the ELBO) */
    shard_plan plan;         /* auto: shard_plan_for's with gradients, rows without */
    size_t rank, ranks;      /* this process of an MPI run's ranks (ranks 0: alone) */
    model_estimator estimator; /* the IW bound's encoder gradient (default standard) */
} shard_spec;

typedef struct shard_set {
    int units;                      /* the units plan (then acts[0] only) */
    model_objective objective;        /* of every pass (shard_spec) */
    model_estimator estimator;        /* of every backward pass (shard_spec) */
    size_t T;                       /* this rank's shares: its team size when created */
    size_t rank, ranks;             /* this process of the ranks sharing each batch */
    size_t S;                       /* all shares: ranks x T */
    size_t cap;                     /* images per batch at most */
    size_t n_params;                /* gradient length; 0 without gradients */
    model_acts acts[PAR_MAX_THREADS]; /* local share k's activations (share rank*T+k) */
    float *grads;                   /* S x n_params: share g's at g * n_params */
    float *part;                    /* units plan: 2 x T x part_n (model_team) */
    size_t part_n;
    double *red;                    /* S x red_n: the team's sums (BatchNorm) */
    size_t red_n;
    float *img;                     /* ranks > 1: 3 x cap per-image losses, gathered */
    float *skip;                    /* ranks > 1: other ranks' noise, drawn and dropped */
    /* Ranks on one machine (dist_one_node), training: grads in memory all
     * ranks map, and a copy of the parameters each rank fills its slice of. */
    struct dist_shared *shm_grads, *shm_params;
} shard_set;

/* The images of one batch: set's images idx[0..B), or start..start+B when
 * idx is NULL, seen through view (NULL: intensities). With noise > 0 the
 * encoder gets them corrupted by Gaussian noise of that std, clipped to
 * [0,1], drawn per image from noise_key; the targets stay clean. */
typedef struct shard_batch {
    const idx_set *set;
    const uint32_t *idx;
    size_t start, B;
    const idx_view *view;
    float noise;
    uint64_t noise_key;
} shard_batch;

/* Allocates activations for batches of up to spec->cap images over
 * par_threads() shares (for an MPI run, ranks x par_threads(), this rank
 * computing its own: shard_run, shard_step and shard_draw_eps are then
 * collectives, called by every rank with the same batch), and gradient
 * buffers with spec->with_grads. The units plan is for training an MLP in
 * one process. Returns 0, or -1 with err (the units plan asked for
 * anything else, more than PAR_MAX_THREADS shares in all, a gradient too
 * large for one MPI message). */
int shard_init(shard_set *s, const model_net *m, const shard_spec *spec, err_msg *err);

/* The plan training uses for batches of up to cap images on a team of
 * threads: units for the MLP below SHARD_UNITS_BELOW images a thread,
 * rows otherwise. */
shard_plan shard_plan_for(const model_net *m, size_t cap, size_t threads);

/* The objective summed over the B images of the last shard_run. */
double shard_objective(const shard_set *s, size_t B);

/* Frees the buffers; safe on a zeroed struct. */
void shard_free(shard_set *s);

/* Draws the reparameterization noise of a batch of B images from rng, in
 * image order: the same numbers as one draw of B x z_dim. */
void shard_draw_eps(shard_set *s, const model_net *m, rng_state *rng, size_t B);

/* Forward pass and loss of the batch with the noise drawn for it; with
 * backward, each share's gradient of its summed rec + beta kl into its
 * buffer. *rec and *kl get the batch's sums, added in image order. */
void shard_run(shard_set *s, const model_net *m, const shard_batch *b,
               int backward, double beta, double *rec, double *kl);

/* What every thread of the team does once a training batch's gradient is
 * complete, in the same job (the optimizer on its share of the
 * parameters): fn(ctx, k, T) on thread k of T. Across ranks the gradient
 * is complete in shard_param_slice only, fn updates that slice of
 * m->params, and shard_step then copies every rank's slice to all. */
typedef struct shard_then {
    void (*fn)(void *ctx, size_t k, size_t T);
    void *ctx;
} shard_then;

/* A training step's pass in one job of the team: the batch's noise drawn
 * from rng (the numbers of shard_draw_eps; in the units plan thread 0 draws
 * them while the others gather the images), the forward and backward pass
 * as shard_run, then then->fn (NULL: nothing) on every thread. */
void shard_step(shard_set *s, const model_net *m, const shard_batch *b, rng_state *rng,
                double beta, const shard_then *then, double *rec, double *kl);

/* Fills a's inputs with images [lo, hi) of batch b: targets a->x, encoder
 * input a->xin (corrupted if b->noise), labels a->y. */
void shard_gather(model_acts *a, const shard_batch *b, size_t lo, size_t hi);

/* Parameters per rank's slice are multiples of this (a cache line). */
#define SHARD_SLICE_ALIGN 16

/* The parameters [*lo, *hi) this rank updates in a training step: all of
 * them for one rank. */
void shard_param_slice(const shard_set *s, size_t *lo, size_t *hi);

/* Calls fn(ctx, lo, hi) on the ranges of parameters thread k of T updates
 * after a training step: in the units plan the weights and biases of the
 * units it computes (the weights only it reads), else its share of
 * shard_param_slice, 16-float aligned. */
void shard_param_share(const shard_set *s, const model_net *m, size_t k, size_t T,
                       void (*fn)(void *ctx, size_t lo, size_t hi), void *ctx);

/* Points out[0..n) at the gradient buffers of the shares a batch of B
 * images used, in order, every rank's (n <= PAR_MAX_THREADS); returns n.
 * Their sum is the batch's gradient. */
size_t shard_grads(const shard_set *s, size_t B, const float **out);

#endif
