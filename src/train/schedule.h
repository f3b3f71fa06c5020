/* schedule.h - what changes over a run: the learning rate's schedule and the
 * KL term's warm-up. Both are pure functions of where the run stands (the
 * epoch and the fraction of it done), so a resumed run gets the same values
 * as a straight one. */
#ifndef VAE_SCHEDULE_H
#define VAE_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "names.h"

typedef enum schedule_kind {
    SCHEDULE_CONSTANT = 0, /* lr throughout */
    SCHEDULE_STAGED = 1,   /* Burda et al.: stage i lasts 3^i epochs at lr 10^(-i/7) */
    SCHEDULE_COSINE = 2,   /* linear warm-up, then cosine decay to 0 at the horizon */
    SCHEDULE_STEP = 3      /* lr times gamma every `every` epochs */
} schedule_kind;

#define SCHEDULE_STAGES 8 /* the staged schedule's stages: 3^0 + ... + 3^7 = 3280 epochs */

typedef struct schedule_config {
    schedule_kind kind;
    double lr;        /* the base learning rate (--lr) */
    uint64_t warmup;  /* cosine: epochs of linear warm-up (0: none) */
    uint64_t horizon; /* cosine: the epoch at which lr reaches 0 (the run's --epochs) */
    uint64_t every;   /* step: epochs between decays */
    double gamma;     /* step: the factor of each decay, in (0, 1] */
} schedule_config;

/* The learning rate for the step that has done `frac` (in [0, 1)) of epoch
 * `epoch` (0-based: the first epoch of the run is 0). */
double schedule_lr(const schedule_config *c, uint64_t epoch, double frac);

/* The stage (0-based) of the staged schedule that epoch (0-based) is in;
 * epochs after the last stage stay in it. */
size_t schedule_stage(uint64_t epoch);

/* Epochs in the staged schedule's first n stages (3^0 + ... + 3^(n-1)). */
uint64_t schedule_stage_epochs(size_t n);

/* The KL term's weight factor in [0, 1]: rises linearly from 0 over the
 * first `warmup` epochs, step by step, then stays 1 (warmup 0: always 1). */
double schedule_kl_factor(uint64_t warmup, uint64_t epoch, double frac);

/* Checks a schedule's settings, those its kind does not use included
 * (warmup and horizon 0 but for cosine, every 0 and gamma 1 but for step).
 * Returns 0, or -1 with err. */
int schedule_check(const schedule_config *c, err_msg *err);

/* "constant", "staged", "cosine", "step" (NULL for an unknown kind). */
const char *schedule_name(schedule_kind kind);

/* The kinds' names, in their values' order (names.h). */
extern const enum_names schedule_names;

#endif
