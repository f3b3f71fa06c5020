/* schedule.c - learning-rate schedules and KL warm-up (see src/train/schedule.h). */
#include "schedule.h"

#include <math.h>

size_t schedule_stage(uint64_t epoch)
{
    uint64_t end = 0, len = 1;
    for (size_t i = 0; i < SCHEDULE_STAGES; i++, len *= 3) {
        end += len;
        if (epoch < end)
            return i;
    }
    return SCHEDULE_STAGES - 1;
}

uint64_t schedule_stage_epochs(size_t n)
{
    uint64_t sum = 0, len = 1;
    for (size_t i = 0; i < n; i++, len *= 3)
        sum += len;
    return sum;
}

double schedule_lr(const schedule_config *c, uint64_t epoch, double frac)
{
    /* Where the run stands, in epochs (fractional), for the per-step kinds. */
    double at = (double)epoch + frac;
    switch (c->kind) {
    case SCHEDULE_STAGED:
        return c->lr * pow(10.0, -(double)schedule_stage(epoch) / 7.0);
    case SCHEDULE_COSINE: {
        double w = (double)c->warmup, h = (double)c->horizon;
        if (at < w) /* from 0 at the run's first step */
            return c->lr * (at > 0.0 ? at : 0.0) / w;
        if (at >= h)
            return 0.0;
        return c->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (at - w) / (h - w)));
    }
    case SCHEDULE_STEP:
        return c->lr * pow(c->gamma, (double)(epoch / c->every));
    default:
        return c->lr;
    }
}

double schedule_kl_factor(uint64_t warmup, uint64_t epoch, double frac)
{
    if (warmup == 0)
        return 1.0;
    double f = ((double)epoch + frac) / (double)warmup;
    return f < 1.0 ? f : 1.0;
}

int schedule_check(const schedule_config *c, err_msg *err)
{
    if (!(c->lr > 0.0) || !isfinite(c->lr))
        return err_set(err, "the learning rate must be finite and above 0");
    /* Settings a kind does not use hold their neutral values: anything else
     * is damage, or a mix-up of kinds. */
    if (c->kind != SCHEDULE_COSINE && (c->warmup != 0 || c->horizon != 0))
        return err_set(err, "only the cosine schedule has a warm-up and a horizon");
    if (c->kind != SCHEDULE_STEP && (c->every != 0 || c->gamma != 1.0))
        return err_set(err, "only the step schedule decays every N epochs by a factor");
    switch (c->kind) {
    case SCHEDULE_CONSTANT:
    case SCHEDULE_STAGED:
        return 0;
    case SCHEDULE_COSINE:
        if (c->horizon == 0 || c->warmup >= c->horizon)
            return err_set(err, "cosine schedule: the warm-up (%llu epochs) must be "
                           "shorter than the run (%llu epochs)",
                           (unsigned long long)c->warmup, (unsigned long long)c->horizon);
        return 0;
    case SCHEDULE_STEP:
        if (c->every == 0 || !(c->gamma > 0.0) || !(c->gamma <= 1.0))
            return err_set(err, "step schedule: needs a decay every N >= 1 epochs and "
                           "a factor in (0, 1]");
        return 0;
    }
    return err_set(err, "unknown learning-rate schedule %d", (int)c->kind);
}

static const char *const NAMES[] = {"constant", "staged", "cosine", "step"};
const enum_names schedule_names = ENUM_NAMES(NAMES);

const char *schedule_name(schedule_kind kind)
{
    return enum_name(&schedule_names, (int)kind);
}
