/* cli.h - what the command-line files share (internal to src/): the
 * parsed options, messages and exit codes. main.c parses and dispatches;
 * cmd_train.c, cmd_model.c, cmd_export.c and cmd_import.c hold the commands. Only these files print,
 * read the environment for user-facing choices, and pick exit codes:
 * 0 success, 1 failure, 2 usage error, 128+signal when interrupted. */
#ifndef VAE_CLI_H
#define VAE_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "idx.h"
#include "paths.h"
#include "train.h"
#include "vae.h"

#define VAE_VERSION "0.3.0"
#define EXIT_USAGE 2

enum opt_id {
    O_DATA, O_CKPT, O_OUT, O_OUTPUT, O_N, O_SEED, O_THREADS, O_BATCH, O_LR,
    O_EPOCHS, O_JSON, O_RESUME, O_HIDDEN, O_LATENT, O_ACT, O_LIKELIHOOD,
    O_BETA, O_BINARIZE, O_NOISE, O_CONDITIONAL, O_METRICS, O_LABEL, O_GRID,
    O_FROM, O_TO, O_STEPS, O_TOP, O_IW, O_SPLIT, O_ARCH, O_FORCE, O_NEW_DATA,
    O_SCHEDULE, O_WARMUP, O_LR_EVERY, O_LR_GAMMA, O_KL_WARMUP, O_ADAM_BETA1,
    O_ADAM_BETA2, O_ADAM_EPS, O_INIT, O_VALID, O_OBJECTIVE, O_K, O_PLAN, O_SIZE,
    O_CHANNELS, O_BACKGROUND, O_TEST_FRACTION, O_SKIP_BROKEN, O_MAX_PIXELS, O_COUNT
};

/* Parsed values; set[] says which were given. */
typedef struct cli_opts {
    const char *cmd;
    const char *operand; /* the command's one positional argument (import's DIR) */
    int set[O_COUNT];
    const char *data, *ckpt, *out, *output, *metrics, *split;
    size_t n, threads, batch, epochs, label, from, to, steps, top, iw;
    size_t knn; /* probe's --k: neighbours that vote */
    uint64_t seed;
    double lr, beta, noise;
    int binarize; /* train_binarize */
    train_opts run; /* train's training controls (schedule, warm-up, Adam, init) */
    vae_config cfg;
    int json;
    size_t size_w, size_h; /* import's --size WxH */
    int channels;          /* import's --channels: 0 auto, 1 or 3 */
    int background;        /* import's --background: 255 white, 0 black */
    double test_fraction;  /* import's --test-fraction */
    uint64_t max_pixels;   /* import's --max-pixels */
} cli_opts;

extern cli_opts opt;

/* "vae CMD: message" on stderr. */
void say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* say_error plus a pointer to --help; returns -1. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts the thread team (--threads). Returns 0, or -1 after a message. */
int cli_threads(void);

/* Loads split "train" or "t10k" of --data. Returns 0, or -1 after a message. */
int cli_load_split(idx_set *set, const char *split);

/* A new model's image shape from the training set, and with
 * --conditional its classes (1 + the largest label). Returns 0, or -1
 * after a message (an unlabelled set cannot train a conditional model). */
int cli_data_model(vae_config *cfg, const idx_set *set);

/* Whether the test set's images are the training set's size and channels.
 * Returns 0, or -1 after a message naming the test images. */
int cli_same_shape(const idx_set *train, const idx_set *test);

/* Whether split's set fits the model of cfg (--ckpt): its image shape, and
 * for a conditional model its labels. Returns 0, or -1 after a message. */
int cli_check_data(const vae_config *cfg, const idx_set *set, const char *split);

/* Adds the two files of split ("train" or "t10k") of --data that exist,
 * as read; names them "the training images" and so on. */
void cli_add_split(paths_list *l, const char *split);

/* paths_check on l; a clash is a usage error. Returns 0, or -1 after the
 * message. */
int cli_check_paths(const paths_list *l);

/* Loads --ckpt (model and training state). Returns 0, or -1 after a message. */
int cli_load_model(vae_model *m, ckpt_train *t);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* The commands; each returns the exit status. */
int cmd_train(void);
int cmd_bench(void);
int cmd_sample(void);
int cmd_reconstruct(void);
int cmd_eval(void);
int cmd_interpolate(void);
int cmd_encode(void);
int cmd_score(void);
int cmd_manifold(void);
int cmd_info(void);
int cmd_probe(void);
int cmd_traverse(void);
int cmd_export(void); /* cmd_export.c */
int cmd_import(void); /* cmd_import.c */

#endif
