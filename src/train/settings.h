/* settings.h - a training run's settings: the one struct a run stores
 * (train_opts and the checkpoint's ckpt_train embed it) and the table with
 * one row per setting. The row is the setting's only description: the
 * option parser, --help and the man page, the checkpoint's training record,
 * the resume check, vae info, the run's page and the export's metadata all
 * read it. Adding a setting is its field, its row, and the code that uses it. */
#ifndef VAE_SETTINGS_H
#define VAE_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "names.h"
#include "schedule.h"
#include "model.h"

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

/* What a run is trained with; fixed for its life (a resumed run keeps it). */
typedef struct run_settings {
    uint64_t seed;        /* all randomness of the run derives from it */
    uint64_t batch;       /* images per Adam step */
    double beta;          /* weight of the KL term in the objective */
    train_binarize binarize;
    double noise;         /* std of the Gaussian input corruption (0: none) */
    schedule_config sched; /* the learning rate (sched.lr, --lr) and its schedule */
    uint64_t kl_warmup;   /* epochs over which the KL weight rises from 0 to beta */
    double adam_beta1, adam_beta2, adam_eps;
    train_init init;      /* how the parameters started */
    uint64_t valid;       /* training images held out for validation (0: none) */
    model_objective objective; /* what is minimised: the ELBO or the IW bound */
    uint64_t draws;       /* draws of z per image in training (--k) */
    model_estimator estimator; /* the IW bound's encoder gradient (version 6) */
} run_settings;

/* The settings, in the table's order. */
typedef enum setting_id {
    SETTING_SEED, SETTING_BATCH, SETTING_LR, SETTING_BETA, SETTING_BINARIZE,
    SETTING_NOISE, SETTING_SCHEDULE, SETTING_WARMUP, SETTING_HORIZON, SETTING_LR_EVERY,
    SETTING_LR_GAMMA, SETTING_KL_WARMUP, SETTING_ADAM_BETA1, SETTING_ADAM_BETA2,
    SETTING_ADAM_EPS, SETTING_INIT, SETTING_VALID, SETTING_OBJECTIVE, SETTING_DRAWS,
    SETTING_ESTIMATOR, SETTING_COUNT
} setting_id;

typedef enum setting_type {
    SETTING_UINT, /* uint64_t */
    SETTING_REAL, /* double */
    SETTING_ENUM  /* an enum, its names in .names */
} setting_type;

typedef struct setting_row {
    const char *key;      /* its name in vae info --json and the export's metadata */
    const char *label;    /* how vae info and the run's page show it ("KL warm-up") */
    const char *unit;     /* after its value when shown ("epochs"), or NULL */
    const char *option;   /* "--batch", or NULL: derived from other settings */
    const char *arg;      /* the value's placeholder in --help ("N"); NULL for an enum */
    const char *help;     /* the option's line in --help and the man page, which add
                           * "(default X)" from .def */
    setting_type type;
    const enum_names *names; /* SETTING_ENUM: its values' names */
    size_t offset;        /* of its field in run_settings */
    double def;           /* a new run's value unless the option is given */
    double unused;        /* its value when the run does not use it (see applies),
                             and in a checkpoint older than `since` */
    uint64_t min, max;    /* SETTING_UINT: what the option takes */
    double lo, hi;        /* SETTING_REAL: what the option takes ... */
    int lo_in, hi_in;     /* ... ends included or not */
    unsigned field;       /* its 8-byte field in the checkpoint's header (ckpt_fields.h) */
    unsigned since;       /* the checkpoint format version that added the field */
    const char *group;    /* what a bad value in a checkpoint is called: "corrupt
                             checkpoint: bad optimizer settings" */
    int resumable;        /* a resumed run may be given another value */
    int export;           /* written into the export's metadata */
    /* Whether the run uses it (NULL: always); one it does not use holds
     * `unused` and is not shown. */
    int (*applies)(const run_settings *s);
    /* When applies depends on another option: what it needs, for the
     * usage error of an option given without it ("--schedule cosine"). */
    const char *needs;
} setting_row;

extern const setting_row SETTINGS[SETTING_COUNT];

/* Every setting at its default. */
run_settings settings_defaults(void);

/* Each setting the run does not use (its row's applies) set to its unused
 * value: what a new run stores. */
void settings_normalize(run_settings *s);

/* Whether setting id of s is in use (its row's applies). */
int settings_applies(const run_settings *s, setting_id id);

/* Parses text as setting id's value into s, within the row's range or
 * names. Returns 0, or -1 with err naming the option. */
int settings_parse(run_settings *s, setting_id id, const char *text, err_msg *err);

/* Setting id's value as its checkpoint field holds it (a REAL's IEEE bits). */
uint64_t settings_bits(const run_settings *s, setting_id id);

/* Sets setting id from a checkpoint field's bits; an ENUM's value beyond
 * its names is refused. Returns 0, or -1 when the bits are no value of it. */
int settings_from_bits(run_settings *s, setting_id id, uint64_t bits);

/* Whether a and b hold different values of setting id. */
int settings_differ(const run_settings *a, const run_settings *b, setting_id id);

/* Setting id's value as text into out ("128", "0.001", "cosine"); with
 * json, an enum's name is quoted. Returns out. */
char *settings_format(const run_settings *s, setting_id id, int json, char *out,
                      size_t size);

/* "label value unit, label value, ..." of the settings in use, from first
 * to last (inclusive), into out. Returns out. */
char *settings_describe(const run_settings *s, setting_id first, setting_id last,
                        char *out, size_t size);

#endif
