/* cli.h - what the command-line files share (internal to src/): the
 * parsed options, messages and exit codes. cli_opts.c holds the option
 * table and parses; cli_cmds.c the command table; cli_util.c what the
 * commands share; main.c dispatches; cmd_train.c, cmd_model.c, cmd_export.c
 * and cmd_import.c hold the commands. Only these files print,
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
#include "model.h"

#include "vae.h" /* the command's version is the library's */

#define VAE_VERSION VAE_VERSION_STRING
#define EXIT_USAGE 2

enum opt_id {
    O_DATA, O_CKPT, O_OUT, O_OUTPUT, O_N, O_SEED, O_THREADS, O_BATCH, O_LR,
    O_EPOCHS, O_JSON, O_RESUME, O_HIDDEN, O_LATENT, O_ACT, O_LIKELIHOOD,
    O_BETA, O_BINARIZE, O_NOISE, O_CONDITIONAL, O_METRICS, O_LABEL, O_GRID,
    O_FROM, O_TO, O_STEPS, O_TOP, O_IW, O_SPLIT, O_ARCH, O_FORCE, O_NEW_DATA,
    O_SCHEDULE, O_WARMUP, O_LR_EVERY, O_LR_GAMMA, O_KL_WARMUP, O_ADAM_BETA1,
    O_ADAM_BETA2, O_ADAM_EPS, O_INIT, O_VALID, O_OBJECTIVE, O_K, O_KNN, O_PLAN, O_SIZE,
    O_CHANNELS, O_BACKGROUND, O_TEST_FRACTION, O_SKIP_BROKEN, O_MAX_PIXELS, O_ESTIMATOR,
    O_ACTIVE_UNITS, O_LAYER, O_COUNT
};

/* Parsed values; set[] says which were given. */
typedef struct cli_opts {
    const char *operand; /* the command's one positional argument (import's DIR) */
    int set[O_COUNT];
    const char *data, *ckpt, *out, *output, *metrics, *split;
    size_t n, threads, epochs, label, from, to, steps, top, iw;
    size_t knn; /* probe's --k: neighbours that vote */
    size_t layer; /* --layer: which stochastic layer's codes (1 or 2) */
    /* The run's settings (run.set: --seed, --batch, --lr, ... as their
     * rows in train/settings.c parse them) and train's other controls. */
    train_opts run;
    model_config cfg;
    int json;
    size_t size_w, size_h; /* import's --size WxH */
    int channels;          /* import's --channels: 0 auto, 1 or 3 */
    int background;        /* import's --background: 255 white, 0 black */
    double test_fraction;  /* import's --test-fraction */
    uint64_t max_pixels;   /* import's --max-pixels */
} cli_opts;


/* A command: its entry in the command table (cli_cmds.c). */
typedef struct cmd_spec {
    const char *name;
    const char *brief;   /* one line for 'vae --help' */
    const char *summary; /* the paragraph of 'vae CMD --help' */
    int opts[O_COUNT + 1]; /* allowed options, ended by -1 */
    const char *help[O_COUNT]; /* this command's help for an option, if not the table's */
    const char *def[O_COUNT];  /* this command's default of an option, if not the
                                  table's, as it would be given (--help shows it);
                                  CLI_NO_DEFAULT: none shown */
    const char *operand; /* its one positional argument ("DIR"), or NULL */
    int mpi;             /* splits its work across MPI ranks (else runs in one) */
    int mpi_unless;      /* ... except when this option is given (0: none) */
    int (*run)(cli_opts *o);
} cmd_spec;

/* A command's .def for an option whose table default it does not use. */
extern const char CLI_NO_DEFAULT[];

/* What score --top writes unless -o is given. */
#define SCORE_TOP_OUTPUT "worst.png"

/* A number's macro as the text of its value: STR(TRAVERSE_STEPS) is "11". */
#define STR_(x) #x
#define STR(x) STR_(x)

/* The commands, in the order 'vae --help' lists them. */
extern const cmd_spec CLI_CMDS[];
extern const size_t CLI_N_CMDS;

/* 'vae --help': every command with its one line. */
void cli_print_help(void);

/* 'vae --man': the manual page (roff) from the command and option tables:
 * what every command's --help says, the files and the exit codes. */
void cli_print_man(void);

/* The defaults of every option into o (cleared first). */
void cli_defaults(cli_opts *o);

/* Parses argv[first..] against command c's options into o (which holds
 * the defaults), then the defaults that depend on other options (the conv
 * VAE's). Returns 0, 1 when help was printed, or -1 after a usage error. */
int cli_parse(cli_opts *o, const cmd_spec *c, int argc, char **argv, int first);

/* Which of the run's settings were given (bit 1 << setting_id) and which
 * parts of the model (bit 1 << train_model_part: --hidden, --latent, ...). */
void cli_given(const cli_opts *o, uint64_t *settings, unsigned *model);

/* The option that sets part of the model ("--hidden"). */
const char *cli_part_option(train_model_part part);

/* The long name of option id ("--iw"). */
const char *cli_option_name(int id);

/* The command messages name ("vae train: ..."); NULL: none. */
void cli_set_command(const char *name);

/* "vae CMD: message" on stderr. */
void say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* say_error plus a pointer to --help; returns -1. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts the thread team (--threads). Returns 0, or -1 after a message. */
int cli_threads(cli_opts *o);

/* Loads split "train" or "t10k" of --data. Returns 0, or -1 after a message. */
int cli_load_split(cli_opts *o, idx_set *set, const char *split);

/* A new model's image shape from the training set, and with
 * --conditional its classes (1 + the largest label). Returns 0, or -1
 * after a message (an unlabelled set cannot train a conditional model). */
int cli_data_model(cli_opts *o, model_config *cfg, const idx_set *set);

/* Whether the test set's images are the training set's size and channels.
 * Returns 0, or -1 after a message naming the test images. */
int cli_same_shape(cli_opts *o, const idx_set *train, const idx_set *test);

/* Whether split's set fits the model of cfg (--ckpt): its image shape, and
 * for a conditional model its labels. Returns 0, or -1 after a message. */
int cli_check_data(cli_opts *o, const model_config *cfg, const idx_set *set, const char *split);

/* Adds the two files of split ("train" or "t10k") of --data that exist,
 * as read; names them "the training images" and so on. */
void cli_add_split(cli_opts *o, paths_list *l, const char *split);

/* paths_check on l; a clash is a usage error. Returns 0, or -1 after the
 * message. */
int cli_check_paths(const paths_list *l);

/* Loads --ckpt (model and training state). Returns 0, or -1 after a message. */
int cli_load_model(cli_opts *o, model_net *m, ckpt_train *t);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* A number as JSON text: v with prec digits (conv 'f': after the point,
 * 'g': significant), or null when v is NaN or infinite (JSON has no
 * word for them). Use its .s within the expression. */
typedef struct cli_json_text {
    char s[48];
} cli_json_text;
cli_json_text cli_json(double v, int prec, char conv);

/* The commands; each returns the exit status. */
int cmd_train(cli_opts *o);
int cmd_bench(cli_opts *o);
int cmd_sample(cli_opts *o);
int cmd_reconstruct(cli_opts *o);
int cmd_eval(cli_opts *o);
int cmd_interpolate(cli_opts *o);
int cmd_encode(cli_opts *o);
int cmd_score(cli_opts *o);
int cmd_manifold(cli_opts *o);
int cmd_info(cli_opts *o);
int cmd_probe(cli_opts *o);
int cmd_traverse(cli_opts *o);
int cmd_export(cli_opts *o); /* cmd_export.c */
int cmd_import(cli_opts *o); /* cmd_import.c */

#endif
