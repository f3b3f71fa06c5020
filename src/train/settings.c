/* settings.c - the table of a run's settings and what reads a row
 * generically (see settings.h). */
#include "settings.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adam.h"
#include "ckpt_fields.h"
#include "parse.h"

static const char *const BINARIZE_NAMES[] = {"none", "static", "dynamic"};
static const char *const INIT_NAMES[] = {"torch", "glorot"};
const enum_names train_binarize_names = ENUM_NAMES(BINARIZE_NAMES);
const enum_names train_init_names = ENUM_NAMES(INIT_NAMES);

/* Settings that only one schedule uses. */
static int is_cosine(const run_settings *s)
{
    return s->sched.kind == SCHEDULE_COSINE;
}

static int is_step(const run_settings *s)
{
    return s->sched.kind == SCHEDULE_STEP;
}

/* The gradient estimators of the importance-weighted bound. */
static int is_iwae(const run_settings *s)
{
    return s->objective == MODEL_OBJ_IWAE;
}

/* The KL's weight (and its warm-up): the ELBO's; the importance-weighted
 * bound has none. */
static int has_kl_weight(const run_settings *s)
{
    return s->objective != MODEL_OBJ_IWAE;
}

/* Validation, when images are held out. */
static int has_valid(const run_settings *s)
{
    return s->valid != 0;
}

#define AT(field) offsetof(run_settings, field)
#define UINT(arg_, lo_, hi_) .type = SETTING_UINT, .arg = (arg_), .min = (lo_), .max = (hi_)
#define REAL(lo_, lo_in_, hi_, hi_in_)                                                   \
    .type = SETTING_REAL, .arg = "F", .lo = (lo_), .lo_in = (lo_in_), .hi = (hi_),     \
    .hi_in = (hi_in_)
#define ENUM(names_) .type = SETTING_ENUM, .names = &(names_)

/* One row a setting: what it is called and shown as; its option, help and
 * range; its default and the value it holds unused (which is also what a
 * checkpoint older than the field reads as: before version 4, a constant
 * rate, no KL warm-up, PyTorch's Adam and init, the ELBO with one draw, no
 * validation); its checkpoint field. */
const setting_row SETTINGS[SETTING_COUNT] = {
    [SETTING_SEED] = {
        .key = "seed", .label = "seed", .option = "--seed",
        .help = "random seed",
        UINT("N", 0, UINT64_MAX), .offset = AT(seed), .def = 1,
        .field = H_SEED, .since = 2, .group = "training state"},
    [SETTING_BATCH] = {
        .key = "batch", .label = "batch", .unit = "images", .option = "--batch",
        .help = "images per step",
        UINT("N", 1, 1u << 20), .offset = AT(batch), .def = 128,
        .field = H_BATCH, .since = 2, .group = "training state"},
    [SETTING_LR] = {
        .key = "lr", .label = "learning rate", .option = "--lr",
        .help = "Adam learning rate",
        REAL(0.0, 0, 1e6, 1), .offset = AT(sched.lr), .def = 1e-3,
        .field = H_LR, .since = 2, .group = "training state"},
    [SETTING_BETA] = {
        .key = "beta", .label = "KL weight beta", .option = "--beta",
        .help = "weight of the KL term",
        REAL(0.0, 1, 1e6, 1), .offset = AT(beta), .def = 1.0,
        .field = H_BETA, .since = 2, .group = "training state"},
    [SETTING_BINARIZE] = {
        .key = "binarize", .label = "binarize", .option = "--binarize",
        .help = "pixels as intensities (none), binarized once (static), or drawn anew each "
                "time (dynamic)",
        ENUM(train_binarize_names), .offset = AT(binarize), .def = TRAIN_BIN_NONE,
        .field = H_BINARIZE, .since = 2, .group = "training state", .export = 1},
    [SETTING_NOISE] = {
        .key = "noise", .label = "input noise", .option = "--noise",
        .help = "denoising: Gaussian input noise of std F, clipped to [0,1]",
        REAL(0.0, 1, 10.0, 1), .offset = AT(noise), .def = 0.0,
        .field = H_NOISE, .since = 2, .group = "training state"},
    [SETTING_SCHEDULE] = {
        .key = "schedule", .label = "schedule", .option = "--schedule",
        .help = "learning rate over the run: constant; staged (Burda et al.: "
                "stage i = 0..7 lasts 3^i epochs at lr 10^(-i/7)); cosine decay to 0 at "
                "--epochs after --warmup; step (x --lr-gamma every --lr-every epochs)",
        ENUM(schedule_names), .offset = AT(sched.kind), .def = SCHEDULE_CONSTANT,
        .unused = SCHEDULE_CONSTANT,
        .field = H_SCHED, .since = 4, .group = "learning-rate schedule"},
    [SETTING_WARMUP] = {
        .key = "warmup", .label = "rate warm-up", .unit = "epochs", .option = "--warmup",
        .help = "cosine: epochs of linear learning-rate warm-up",
        UINT("N", 0, 1000000), .offset = AT(sched.warmup), .def = 0,
        .applies = is_cosine, .needs = "--schedule cosine",
        .field = H_WARMUP, .since = 4, .group = "learning-rate schedule"},
    [SETTING_HORIZON] = {
        .key = "horizon", .label = "rate 0 at epoch",
        .help = "cosine: the epoch at which the rate reaches 0 (the run's --epochs)",
        UINT("N", 1, 1000000), .offset = AT(sched.horizon), .def = 0,
        .applies = is_cosine,
        .field = H_HORIZON, .since = 4, .group = "learning-rate schedule"},
    [SETTING_LR_EVERY] = {
        .key = "lr_every", .label = "decay every", .unit = "epochs", .option = "--lr-every",
        .help = "step: epochs between decays",
        UINT("N", 1, 1000000), .offset = AT(sched.every), .def = 10,
        .applies = is_step, .needs = "--schedule step",
        .field = H_EVERY, .since = 4, .group = "learning-rate schedule"},
    [SETTING_LR_GAMMA] = {
        .key = "lr_gamma", .label = "decay factor", .option = "--lr-gamma",
        .help = "step: factor of each decay",
        REAL(0.0, 0, 1.0, 1), .offset = AT(sched.gamma), .def = 0.5, .unused = 1.0,
        .applies = is_step, .needs = "--schedule step",
        .field = H_GAMMA, .since = 4, .group = "learning-rate schedule"},
    [SETTING_KL_WARMUP] = {
        .key = "kl_warmup", .label = "KL warm-up", .unit = "epochs", .option = "--kl-warmup",
        .help = "raise the KL's weight linearly from 0 to --beta over the first N epochs; "
                "0: none",
        UINT("N", 0, 1000000), .offset = AT(kl_warmup), .def = 0,
        .applies = has_kl_weight, .needs = "--objective elbo",
        .field = H_KL_WARMUP, .since = 4, .group = "training state"},
    [SETTING_ADAM_BETA1] = {
        .key = "adam_beta1", .label = "Adam beta1", .option = "--adam-beta1",
        .help = "Adam's beta1",
        REAL(0.0, 1, 1.0, 0), .offset = AT(adam_beta1), .def = ADAM_BETA1,
        .unused = ADAM_BETA1,
        .field = H_ADAM_BETA1, .since = 4, .group = "optimizer settings"},
    [SETTING_ADAM_BETA2] = {
        .key = "adam_beta2", .label = "Adam beta2", .option = "--adam-beta2",
        .help = "Adam's beta2",
        REAL(0.0, 1, 1.0, 0), .offset = AT(adam_beta2), .def = ADAM_BETA2,
        .unused = ADAM_BETA2,
        .field = H_ADAM_BETA2, .since = 4, .group = "optimizer settings"},
    [SETTING_ADAM_EPS] = {
        .key = "adam_eps", .label = "Adam epsilon", .option = "--adam-eps",
        .help = "Adam's epsilon",
        REAL(0.0, 0, 1.0, 1), .offset = AT(adam_eps), .def = ADAM_EPS, .unused = ADAM_EPS,
        .field = H_ADAM_EPS, .since = 4, .group = "optimizer settings"},
    [SETTING_INIT] = {
        .key = "init", .label = "initial weights", .option = "--init",
        .help = "initial weights: PyTorch's defaults, or Glorot uniform with zero biases "
                "and the output bias at the logit of each pixel's training mean",
        ENUM(train_init_names), .offset = AT(init), .def = TRAIN_INIT_TORCH,
        .field = H_INIT, .since = 4, .group = "optimizer settings"},
    [SETTING_VALID] = {
        .key = "valid", .label = "held out for validation", .unit = "images",
        .option = "--valid",
        .help = "hold N training images out (a seeded choice), report their loss each "
                "epoch and keep the best epoch's model in CKPT.best.bin (CKPT without .bin); "
                "0: none",
        UINT("N", 0, UINT32_MAX), .offset = AT(valid), .def = 0, .applies = has_valid,
        .field = H_VALID_N, .since = 4, .group = "validation state"},
    [SETTING_OBJECTIVE] = {
        .key = "objective", .label = "objective", .option = "--objective",
        .help = "what training minimises: the negative ELBO, its reconstruction averaged "
                "over --k draws, or the importance-weighted bound with --k draws "
                "(Burda et al.)",
        ENUM(model_objective_names), .offset = AT(objective), .def = MODEL_OBJ_ELBO,
        .field = H_OBJECTIVE, .since = 4, .group = "training objective"},
    [SETTING_DRAWS] = {
        .key = "k", .label = "draws per image (k)", .option = "--k",
        .help = "draws of z per image in training",
        UINT("K", 1, MODEL_MAX_DRAWS), .offset = AT(draws), .def = 1, .unused = 1,
        .field = H_DRAWS, .since = 4, .group = "training objective"},
    [SETTING_ESTIMATOR] = {
        .key = "estimator", .label = "encoder gradient", .option = "--estimator",
        .help = "the importance-weighted bound's encoder gradient: the bound's own "
                "(standard), stl (sticking the landing, Roeder et al.: without the score "
                "term of q), or dreg (doubly reparameterized, Tucker et al.: the path "
                "gradient with squared normalised weights); the decoder's is the "
                "bound's in all three",
        ENUM(model_estimator_names), .offset = AT(estimator), .def = MODEL_EST_STANDARD,
        .unused = MODEL_EST_STANDARD, .applies = is_iwae, .needs = "--objective iwae",
        .field = H_ESTIMATOR, .since = 6, .group = "training objective"},
};

#undef AT
#undef UINT
#undef REAL
#undef ENUM

/* The field of setting id in s, by its type. */
static uint64_t *uint_at(run_settings *s, setting_id id)
{
    return (uint64_t *)(void *)((char *)s + SETTINGS[id].offset);
}

static double *real_at(run_settings *s, setting_id id)
{
    return (double *)(void *)((char *)s + SETTINGS[id].offset);
}

static int *enum_at(run_settings *s, setting_id id)
{
    return (int *)(void *)((char *)s + SETTINGS[id].offset);
}

/* The same, read only. */
static uint64_t uint_of(const run_settings *s, setting_id id)
{
    return *(const uint64_t *)(const void *)((const char *)s + SETTINGS[id].offset);
}

static double real_of(const run_settings *s, setting_id id)
{
    return *(const double *)(const void *)((const char *)s + SETTINGS[id].offset);
}

static int enum_of(const run_settings *s, setting_id id)
{
    return *(const int *)(const void *)((const char *)s + SETTINGS[id].offset);
}

/* Sets setting id to the number v (an enum's value, a count, a real). */
static void set_number(run_settings *s, setting_id id, double v)
{
    switch (SETTINGS[id].type) {
    case SETTING_UINT: *uint_at(s, id) = (uint64_t)v; break;
    case SETTING_REAL: *real_at(s, id) = v; break;
    case SETTING_ENUM: *enum_at(s, id) = (int)v; break;
    }
}

run_settings settings_defaults(void)
{
    run_settings s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < SETTING_COUNT; i++)
        set_number(&s, (setting_id)i, SETTINGS[i].def);
    return s;
}

int settings_applies(const run_settings *s, setting_id id)
{
    return !SETTINGS[id].applies || SETTINGS[id].applies(s);
}

void settings_normalize(run_settings *s)
{
    for (int i = 0; i < SETTING_COUNT; i++)
        if (!settings_applies(s, (setting_id)i))
            set_number(s, (setting_id)i, SETTINGS[i].unused);
}

int settings_parse(run_settings *s, setting_id id, const char *text, err_msg *err)
{
    const setting_row *r = &SETTINGS[id];
    switch (r->type) {
    case SETTING_UINT:
        return parse_uint(r->option, text, r->min, r->max, uint_at(s, id), err);
    case SETTING_REAL:
        return parse_real(r->option, text, r->lo, r->lo_in, r->hi, r->hi_in, real_at(s, id),
                          err);
    case SETTING_ENUM: {
        int v = enum_parse(r->names, text);
        if (v < 0) {
            char list[128];
            enum_list(r->names, list, sizeof list);
            return err_set(err, "%s: '%s' is not %s", r->option, text, list);
        }
        *enum_at(s, id) = v;
        return 0;
    }
    }
    return err_set(err, "%s: unknown setting type", r->option);
}

uint64_t settings_bits(const run_settings *s, setting_id id)
{
    switch (SETTINGS[id].type) {
    case SETTING_UINT: return uint_of(s, id);
    case SETTING_ENUM: return (uint64_t)enum_of(s, id);
    case SETTING_REAL: {
        double v = real_of(s, id);
        uint64_t b;
        memcpy(&b, &v, sizeof b);
        return b;
    }
    }
    return 0;
}

int settings_from_bits(run_settings *s, setting_id id, uint64_t bits)
{
    switch (SETTINGS[id].type) {
    case SETTING_UINT: *uint_at(s, id) = bits; return 0;
    case SETTING_ENUM:
        if (bits >= SETTINGS[id].names->n)
            return -1;
        *enum_at(s, id) = (int)bits;
        return 0;
    case SETTING_REAL: memcpy(real_at(s, id), &bits, sizeof bits); return 0;
    }
    return -1;
}

int settings_differ(const run_settings *a, const run_settings *b, setting_id id)
{
    if (SETTINGS[id].type == SETTING_REAL) /* as numbers: -0 is 0 */
        return real_of(a, id) != real_of(b, id);
    return settings_bits(a, id) != settings_bits(b, id);
}

char *settings_format(const run_settings *s, setting_id id, int json, char *out,
                      size_t size)
{
    const setting_row *r = &SETTINGS[id];
    switch (r->type) {
    case SETTING_UINT: snprintf(out, size, "%llu", (unsigned long long)uint_of(s, id)); break;
    case SETTING_REAL: snprintf(out, size, "%g", real_of(s, id)); break;
    case SETTING_ENUM: {
        const char *name = enum_name(r->names, enum_of(s, id));
        snprintf(out, size, json ? "\"%s\"" : "%s", name ? name : "?");
        break;
    }
    }
    return out;
}

char *settings_describe(const run_settings *s, setting_id first, setting_id last,
                        char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = first; i <= (int)last && len < size; i++) {
        if (!settings_applies(s, (setting_id)i))
            continue;
        char v[64];
        const setting_row *r = &SETTINGS[i];
        int n = snprintf(out + len, size - len, "%s%s %s%s%s", len ? ", " : "", r->label,
                         settings_format(s, (setting_id)i, 0, v, sizeof v),
                         r->unit ? " " : "", r->unit ? r->unit : "");
        len += n > 0 ? (size_t)n : 0;
    }
    return out;
}
