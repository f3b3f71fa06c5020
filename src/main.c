/* main.c - the vae command line: options, help, and dispatch to the
 * commands (cmd_train.c, cmd_model.c, cmd_export.c, cmd_import.c). See
 * src/cli.h. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cpu.h"
#include "dist.h"
#include "import.h"
#include "par.h"
#include "train.h"

cli_opts opt;

/* ===================================================================== */
/* Options                                                                */
/* ===================================================================== */

typedef struct opt_spec {
    const char *name; /* "--data" */
    const char *alt;  /* "-o", or NULL */
    const char *arg;  /* value placeholder, NULL for a flag */
    const char *help;
} opt_spec;

static const opt_spec SPECS[O_COUNT] = {
    [O_DATA] = {"--data", NULL, "DIR", "folder of IDX files, raw or .gz (default data/)"},
    [O_CKPT] = {"--ckpt", NULL, "PATH", "checkpoint file (default vae.bin)"},
    [O_OUT] = {"--out", NULL, "DIR", "folder for the per-epoch PNG grids and the run's "
               "page, index.html (default out/)"},
    [O_OUTPUT] = {"--output", "-o", "FILE", "output file"},
    [O_N] = {"--n", NULL, "N", "number of images"},
    [O_SEED] = {"--seed", NULL, "N", "random seed (default 1)"},
    [O_THREADS] = {"--threads", NULL, "N", "threads (default: all cores, or OPENBLAS_NUM_THREADS)"},
    [O_BATCH] = {"--batch", NULL, "N", "images per step (default 128)"},
    [O_LR] = {"--lr", NULL, "F", "Adam learning rate (default 0.001)"},
    [O_EPOCHS] = {"--epochs", NULL, "N", "total epochs of the run (default 15)"},
    [O_JSON] = {"--json", NULL, NULL, "print one JSON object per line"},
    [O_RESUME] = {"--resume", NULL, NULL, "continue the run saved in --ckpt"},
    [O_HIDDEN] = {"--hidden", NULL, "LIST", "hidden widths, e.g. 400 or 500,500 (default 400)"},
    [O_LATENT] = {"--latent", NULL, "N", "latent dimensions (default 20)"},
    [O_ACT] = {"--act", NULL, "relu|tanh|leaky", "hidden activation (default relu; "
               "leaky, LeakyReLU 0.1, for conv)"},
    [O_ARCH] = {"--arch", NULL, "mlp|conv", "the MLP (default), or the convolutional "
                "VAE (defaults --hidden 64,128,256 channels, --latent 100)"},
    [O_LIKELIHOOD] = {"--likelihood", NULL, "bernoulli|cb|gaussian",
                      "p(x|z): cross-entropy (default), continuous Bernoulli, "
                      "or Gaussian of variance 1/2 (squared error)"},
    [O_BETA] = {"--beta", NULL, "F", "weight of the KL term (default 1)"},
    [O_BINARIZE] = {"--binarize", NULL, "none|static|dynamic",
                    "pixels as intensities (default), binarized once, or "
                    "drawn anew each time"},
    [O_NOISE] = {"--noise", NULL, "F", "denoising: Gaussian input noise of std F, "
                 "clipped to [0,1] (default 0)"},
    [O_CONDITIONAL] = {"--conditional", NULL, NULL,
                       "a conditional VAE on the labels, with a learned prior p(z|y)"},
    [O_METRICS] = {"--metrics", NULL, "FILE", "CSV of the epochs, plotted beside it as "
                   "FILE.png (default OUT/metrics.csv)"},
    [O_LABEL] = {"--label", NULL, "N", "the label to draw (0 to the model's classes - 1)"},
    [O_GRID] = {"--grid", NULL, NULL, "one column per label"},
    [O_FROM] = {"--from", NULL, "I", "first test image (index, default 0)"},
    [O_TO] = {"--to", NULL, "J", "last test image (index, default 1)"},
    [O_STEPS] = {"--steps", NULL, "N", "points on the line, ends included (default 8)"},
    [O_TOP] = {"--top", NULL, "N", "write the N highest-scoring images as a PNG grid "
               "instead of the CSV"},
    [O_IW] = {"--iw", NULL, "K", "also the importance-weighted bound with K draws "
              "per image"},
    [O_SPLIT] = {"--split", NULL, "train|test", "which images (default test)"},
    [O_FORCE] = {"--force", NULL, NULL, "replace the run already in --ckpt with a new one"},
    [O_NEW_DATA] = {"--new-data", NULL, NULL, "with --resume: go on with training data "
                    "other than the run's own (the checkpoint records it)"},
    [O_SCHEDULE] = {"--schedule", NULL, "constant|staged|cosine|step",
                    "learning rate over the run: constant (default); staged "
                    "(Burda et al.: stage i = 0..7 lasts 3^i epochs at lr 10^(-i/7)); "
                    "cosine decay to 0 at --epochs after --warmup; step (x --lr-gamma "
                    "every --lr-every epochs)"},
    [O_WARMUP] = {"--warmup", NULL, "N", "cosine: epochs of linear learning-rate "
                  "warm-up (default 0)"},
    [O_LR_EVERY] = {"--lr-every", NULL, "N", "step: epochs between decays (default 10)"},
    [O_LR_GAMMA] = {"--lr-gamma", NULL, "F", "step: factor of each decay (default 0.5)"},
    [O_KL_WARMUP] = {"--kl-warmup", NULL, "N", "raise the KL's weight linearly from 0 "
                     "to --beta over the first N epochs (default 0: none)"},
    [O_ADAM_BETA1] = {"--adam-beta1", NULL, "F", "Adam's beta1 (default 0.9)"},
    [O_ADAM_BETA2] = {"--adam-beta2", NULL, "F", "Adam's beta2 (default 0.999)"},
    [O_ADAM_EPS] = {"--adam-eps", NULL, "F", "Adam's epsilon (default 1e-8)"},
    [O_VALID] = {"--valid", NULL, "N", "hold N training images out (a seeded choice), "
                 "report their loss each epoch and keep the best epoch's model in "
                 "CKPT.best.bin (CKPT without .bin)"},
    [O_OBJECTIVE] = {"--objective", NULL, "elbo|iwae", "what training minimises: the "
                     "negative ELBO, its reconstruction averaged over --k draws "
                     "(default), or the importance-weighted bound with --k draws "
                     "(Burda et al.)"},
    [O_K] = {"--k", NULL, "K", "draws of z per image in training (default 1)"},
    [O_PLAN] = {"--plan", NULL, "auto|rows|units", "how threads split a batch: each "
                "a share of the images (rows), each a share of every layer's units "
                "(units: the MLP), or what training picks (default auto: units below "
                "64 images a thread)"},
    [O_INIT] = {"--init", NULL, "torch|glorot", "initial weights: PyTorch's defaults, "
                "or Glorot uniform with zero biases and the output bias at the logit "
                "of each pixel's training mean (default torch)"},
    [O_SIZE] = {"--size", NULL, "WxH", "resize every image to W x H pixels "
                "(stb_image_resize; default: all images must be one size)"},
    [O_CHANNELS] = {"--channels", NULL, "auto|1|3", "grey or RGB output: auto (default) "
                    "is 1 if every pixel has R = G = B, else 3; 1 turns colour into "
                    "BT.601 luma"},
    [O_BACKGROUND] = {"--background", NULL, "white|black", "what transparent pixels "
                      "are composited over (default white)"},
    [O_TEST_FRACTION] = {"--test-fraction", NULL, "F", "share of each class that goes "
                         "to the test files: round(F x n), above 0 and below 1 (default 0.1)"},
    [O_SKIP_BROKEN] = {"--skip-broken", NULL, NULL, "skip an image that does not decode, "
                       "with a warning (default: stop with its name and the decoder's "
                       "message)"},
    [O_MAX_PIXELS] = {"--max-pixels", NULL, "N", "refuse an image whose header declares "
                      "more than N pixels (width x height), before decoding it; "
                      "--skip-broken skips it (default 16777216, 4096 x 4096: 64 MiB "
                      "decoded)"},
};

typedef struct cmd_spec {
    const char *name;
    const char *brief;   /* one line for 'vae --help' */
    const char *summary; /* the paragraph of 'vae CMD --help' */
    int opts[O_COUNT + 1]; /* allowed options, ended by -1 */
    const char *help[O_COUNT]; /* this command's help for an option, if not SPECS' */
    const char *operand; /* its one positional argument ("DIR"), or NULL */
    int (*run)(void);
} cmd_spec;

void say_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vae%s%s: ", opt.cmd ? " " : "", opt.cmd ? opt.cmd : "");
    if (dist_size() > 1) /* under mpirun: whose error */
        fprintf(stderr, "rank %zu: ", dist_rank());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vae%s%s: ", opt.cmd ? " " : "", opt.cmd ? opt.cmd : "");
    if (dist_size() > 1) /* under mpirun: whose error */
        fprintf(stderr, "rank %zu: ", dist_rank());
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'vae %s%s--help')\n", opt.cmd ? opt.cmd : "",
            opt.cmd ? " " : "");
    va_end(ap);
    return -1;
}

/* Whole number in [lo, hi]. */
static int parse_size(int id, const char *s, size_t lo, size_t hi, size_t *out)
{
    const char *name = SPECS[id].name;
    if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return usage_error("%s: '%s' is not a whole number%s", name, s,
                           *s == '-' ? " >= 0" : "");
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return usage_error("%s: '%s' is not a whole number", name, s);
    if (errno == ERANGE || v > hi)
        return usage_error("%s: %s is too large (at most %zu)", name, s, hi);
    if (v < lo)
        return usage_error("%s: must be at least %zu, not %s", name, lo, s);
    *out = (size_t)v;
    return 0;
}

static int parse_u64(int id, const char *s, uint64_t *out)
{
    const char *name = SPECS[id].name;
    if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return usage_error("%s: '%s' is not a whole number >= 0", name, s);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return usage_error("%s: '%s' is not a whole number below 2^64", name, s);
    *out = v;
    return 0;
}

/* A whole number in [0, hi]. */
static int parse_u64_max(int id, const char *s, uint64_t hi, uint64_t *out)
{
    if (parse_u64(id, s, out))
        return -1;
    if (*out > hi)
        return usage_error("%s: %s is too large (at most %llu)", SPECS[id].name, s,
                           (unsigned long long)hi);
    return 0;
}

/* A finite number in (lo, hi], or [lo, hi] when lo_ok. */
static int parse_double(int id, const char *s, double lo, int lo_ok, double hi,
                        double *out)
{
    const char *name = SPECS[id].name;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v))
        return usage_error("%s: '%s' is not a number", name, s);
    if (lo_ok ? !(v >= lo) : !(v > lo))
        return usage_error("%s: %s must be %s %g", name, s, lo_ok ? "at least" : "above",
                           lo);
    if (v > hi)
        return usage_error("%s: %s is too large (at most %g)", name, s, hi);
    *out = v;
    return 0;
}

/* One of names[0..n) into *out (its index); else a usage error listing
 * them ("a, b or c"). */
static int parse_double(int id, const char *s, double lo, int lo_ok, double hi,
                        double *out);

/* A number in [0, 1) (Adam's betas). */
static int parse_unit(int id, const char *s, double *out)
{
    if (parse_double(id, s, 0.0, 1, 1.0, out))
        return -1;
    if (*out >= 1.0)
        return usage_error("%s: must be below 1, not %s", SPECS[id].name, s);
    return 0;
}

static int parse_choice(int id, const char *s, const char *const *names, int n,
                        int *out)
{
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                 names[i]);
    }
    return usage_error("%s: '%s' is not %s", SPECS[id].name, s, list);
}

/* --size WxH: each side a whole number from 1 to IMPORT_MAX_SIDE. */
static int parse_wxh(const char *s, size_t *w, size_t *h)
{
    const char *x = strpbrk(s, "xX");
    char side[32];
    if (!x || (size_t)(x - s) >= sizeof side)
        return usage_error("--size: '%s' is not WxH, e.g. 28x28", s);
    memcpy(side, s, (size_t)(x - s));
    side[x - s] = '\0';
    char *end;
    for (int k = 0; k < 2; k++) {
        const char *t = k ? x + 1 : side;
        if (*t < '0' || *t > '9')
            return usage_error("--size: '%s' is not WxH, e.g. 28x28", s);
        errno = 0;
        unsigned long long v = strtoull(t, &end, 10);
        if (*end != '\0')
            return usage_error("--size: '%s' is not WxH, e.g. 28x28", s);
        if (v < 1 || v > IMPORT_MAX_SIDE || errno == ERANGE)
            return usage_error("--size: '%s': width and height go from 1 to %d", s,
                               IMPORT_MAX_SIDE);
        *(k ? h : w) = (size_t)v;
    }
    return 0;
}

static int parse_hidden(const char *s, vae_config *cfg)
{
    size_t n = 0;
    const char *p = s;
    while (1) {
        if (n == VAE_MAX_HIDDEN)
            return usage_error("--hidden: at most %d layers, got '%s'", VAE_MAX_HIDDEN, s);
        char item[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return usage_error("--hidden: '%s' is not a list of widths like 400 or 500,500", s);
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_size(O_HIDDEN, item, 1, VAE_MAX_WIDTH, &cfg->hidden[n]))
            return -1;
        n++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    cfg->n_hidden = n;
    return 0;
}

static int parse_value(int id, const char *v)
{
    static const char *const acts[] = {"relu", "tanh", "leaky"};
    static const char *const archs[] = {"mlp", "conv"};
    static const char *const liks[] = {"bernoulli", "cb", "gaussian"};
    static const char *const bins[] = {"none", "static", "dynamic"};
    static const char *const splits[] = {"train", "test"};
    static const char *const scheds[] = {"constant", "staged", "cosine", "step"};
    static const char *const inits[] = {"torch", "glorot"};
    static const char *const objectives[] = {"elbo", "iwae"};
    static const char *const plans[] = {"auto", "rows", "units"};
    static const char *const channels[] = {"auto", "1", "3"};
    static const char *const backgrounds[] = {"white", "black"};
    int c = 0;
    switch (id) {
    case O_DATA: opt.data = v; return 0;
    case O_CKPT: opt.ckpt = v; return 0;
    case O_OUT: opt.out = v; return 0;
    case O_OUTPUT: opt.output = v; return 0;
    case O_METRICS: opt.metrics = v; return 0;
    case O_N: return parse_size(id, v, 1, 65536, &opt.n);
    case O_SEED: return parse_u64(id, v, &opt.seed);
    case O_THREADS: return parse_size(id, v, 1, PAR_MAX_THREADS, &opt.threads);
    case O_BATCH: return parse_size(id, v, 1, 1u << 20, &opt.batch);
    case O_LR: return parse_double(id, v, 0.0, 0, 1e6, &opt.lr);
    case O_BETA: return parse_double(id, v, 0.0, 1, 1e6, &opt.beta);
    case O_NOISE: return parse_double(id, v, 0.0, 1, 10.0, &opt.noise);
    case O_EPOCHS: return parse_size(id, v, 1, 1000000, &opt.epochs);
    case O_HIDDEN: return parse_hidden(v, &opt.cfg);
    case O_LATENT: return parse_size(id, v, 1, 4096, &opt.cfg.z_dim);
    case O_LABEL: return parse_size(id, v, 0, VAE_MAX_CLASSES - 1, &opt.label);
    case O_FROM: return parse_size(id, v, 0, 1u << 31, &opt.from);
    case O_TO: return parse_size(id, v, 0, 1u << 31, &opt.to);
    case O_STEPS: return parse_size(id, v, 2, 1000, &opt.steps);
    case O_TOP: return parse_size(id, v, 1, 65536, &opt.top);
    case O_IW: return parse_size(id, v, 1, 1000000, &opt.iw);
    case O_WARMUP: return parse_u64_max(id, v, 1000000, &opt.run.sched.warmup);
    case O_LR_EVERY: return parse_u64_max(id, v, 1000000, &opt.run.sched.every) ||
                            (opt.run.sched.every == 0 &&
                             usage_error("--lr-every: must be at least 1"));
    case O_LR_GAMMA: return parse_double(id, v, 0.0, 0, 1.0, &opt.run.sched.gamma);
    case O_KL_WARMUP: return parse_u64_max(id, v, 1000000, &opt.run.kl_warmup);
    case O_VALID: return parse_u64_max(id, v, UINT32_MAX, &opt.run.valid);
    case O_K: /* probe's neighbours: checked against the references once known */
        if (!strcmp(opt.cmd, "probe"))
            return parse_size(id, v, 1, UINT32_MAX, &opt.knn);
        return parse_size(id, v, 1, VAE_MAX_DRAWS, &opt.run.draws);
    case O_SIZE: return parse_wxh(v, &opt.size_w, &opt.size_h);
    case O_MAX_PIXELS:
        if (parse_u64_max(id, v, IMPORT_MAX_MAX_PIXELS, &opt.max_pixels))
            return -1;
        return opt.max_pixels == 0 ? usage_error("--max-pixels: must be at least 1") : 0;
    case O_CHANNELS:
        if (parse_choice(id, v, channels, 3, &c))
            return -1;
        opt.channels = c == 0 ? 0 : c == 1 ? 1 : 3;
        return 0;
    case O_BACKGROUND:
        if (parse_choice(id, v, backgrounds, 2, &c))
            return -1;
        opt.background = c == 0 ? 255 : 0;
        return 0;
    case O_TEST_FRACTION:
        if (parse_double(id, v, 0.0, 1, 1e300, &opt.test_fraction))
            return -1;
        if (!(opt.test_fraction > 0.0 && opt.test_fraction < 1.0))
            return usage_error("--test-fraction: must be above 0 and below 1, not %s", v);
        return 0;
    case O_PLAN:
        if (parse_choice(id, v, plans, 3, &c))
            return -1;
        opt.run.plan = (shard_plan)c;
        return 0;
    case O_OBJECTIVE:
        if (parse_choice(id, v, objectives, 2, &c))
            return -1;
        opt.run.objective = (vae_objective)c;
        return 0;
    case O_ADAM_BETA1: return parse_unit(id, v, &opt.run.adam_beta1);
    case O_ADAM_BETA2: return parse_unit(id, v, &opt.run.adam_beta2);
    case O_ADAM_EPS: return parse_double(id, v, 0.0, 0, 1.0, &opt.run.adam_eps);
    case O_SCHEDULE:
        if (parse_choice(id, v, scheds, 4, &c))
            return -1;
        opt.run.sched.kind = (schedule_kind)c;
        return 0;
    case O_INIT:
        if (parse_choice(id, v, inits, 2, &c))
            return -1;
        opt.run.init = (train_init)c;
        return 0;
    case O_ACT:
        if (parse_choice(id, v, acts, 3, &c))
            return -1;
        opt.cfg.act = (vae_act)c;
        return 0;
    case O_ARCH:
        if (parse_choice(id, v, archs, 2, &c))
            return -1;
        opt.cfg.arch = (vae_arch)c;
        return 0;
    case O_LIKELIHOOD:
        if (parse_choice(id, v, liks, 3, &c))
            return -1;
        opt.cfg.likelihood = (vae_lik)c;
        return 0;
    case O_BINARIZE: return parse_choice(id, v, bins, 3, &opt.binarize);
    case O_SPLIT:
        if (parse_choice(id, v, splits, 2, &c))
            return -1;
        opt.split = c ? "t10k" : "train";
        return 0;
    default: return 0;
    }
}

static void set_defaults(void)
{
    opt.data = "data";
    opt.ckpt = "vae.bin";
    opt.out = "out";
    opt.split = "t10k";
    opt.seed = 1;
    opt.batch = 128;
    opt.lr = 1e-3;
    opt.beta = 1.0;
    opt.epochs = 15;
    opt.steps = 8;
    opt.to = 1;
    opt.cfg.x_dim = IDX_ROWS * IDX_COLS;
    opt.cfg.n_hidden = 1;
    opt.cfg.hidden[0] = 400;
    opt.cfg.z_dim = 20;
    opt.cfg.act = VAE_ACT_RELU;
    opt.cfg.likelihood = VAE_LIK_BERNOULLI;
    opt.run = train_defaults();
    opt.run.sched.every = 10;
    opt.run.sched.gamma = 0.5;
    opt.background = 255;
    opt.test_fraction = 0.1;
    opt.max_pixels = IMPORT_DEFAULT_MAX_PIXELS;
}

/* The conv VAE's defaults are the article's: 64, 128, 256 channels, a
 * 100-D latent, LeakyReLU 0.1. Returns 0, or -1 after a usage error. */
static int model_defaults(void)
{
    if (opt.cfg.arch != VAE_ARCH_CONV)
        return 0;
    if (opt.set[O_CONDITIONAL])
        return usage_error("--conditional: the conv VAE is not conditional (use --arch mlp)");
    if (!opt.set[O_HIDDEN]) {
        opt.cfg.n_hidden = 3;
        opt.cfg.hidden[0] = 64, opt.cfg.hidden[1] = 128, opt.cfg.hidden[2] = 256;
    }
    if (!opt.set[O_LATENT])
        opt.cfg.z_dim = 100;
    if (!opt.set[O_ACT])
        opt.cfg.act = VAE_ACT_LEAKY;
    return 0;
}

static void print_cmd_help(const cmd_spec *c)
{
    printf("usage: vae %s%s%s [options]\n\n%s\n\noptions:\n", c->name,
           c->operand ? " " : "", c->operand ? c->operand : "", c->summary);
    for (const int *o = c->opts; *o >= 0; o++) {
        const opt_spec *s = &SPECS[*o];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", s->alt ? s->alt : "",
                 s->alt ? ", " : "", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
        if (strlen(left) > 24)
            printf("  %s\n  %-24s %s\n", left, "", c->help[*o] ? c->help[*o] : s->help);
        else
            printf("  %-24s %s\n", left, c->help[*o] ? c->help[*o] : s->help);
    }
    printf("  %-24s %s\n", "-h, --help", "show this help");
}

/* Parses argv[first..] against the command's options. Returns 0, 1 when
 * help was printed, or -1 after a usage error was printed. */
static int parse_args(const cmd_spec *c, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_cmd_help(c);
            return 1;
        }
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int id = -1;
        for (const int *o = c->opts; *o >= 0; o++) {
            const opt_spec *s = &SPECS[*o];
            if ((strlen(s->name) == len && !strncmp(a, s->name, len)) ||
                (s->alt && !eq && !strcmp(a, s->alt)))
                id = *o;
        }
        if (id < 0 && a[0] != '-' && c->operand && !opt.operand) {
            opt.operand = a;
            continue;
        }
        if (id < 0) {
            if (a[0] != '-')
                return usage_error("unexpected argument '%s'", a);
            return usage_error("unknown option '%.*s'", (int)len, a);
        }
        if (opt.set[id])
            return usage_error("%s given twice", SPECS[id].name);
        opt.set[id] = 1;
        if (!SPECS[id].arg) {
            if (eq)
                return usage_error("%s takes no value", SPECS[id].name);
            if (id == O_JSON)
                opt.json = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v)
            return usage_error("%s needs a value (%s)", SPECS[id].name, SPECS[id].arg);
        if (parse_value(id, v))
            return -1;
    }
    return 0;
}

/* ===================================================================== */
/* What the commands share                                                */
/* ===================================================================== */

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The thread team: --threads, or as many threads as OpenBLAS would use
 * (all cores, or OPENBLAS_NUM_THREADS). par_init makes each sgemm call
 * single-threaded: the team runs them side by side. */
int cli_threads(void)
{
    size_t n = opt.set[O_THREADS] ? opt.threads : (size_t)openblas_get_num_threads();
    err_msg err;
    if (par_init(n < 1 ? 1 : n > PAR_MAX_THREADS ? PAR_MAX_THREADS : n, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

int cli_load_split(idx_set *set, const char *split)
{
    err_msg err;
    if (idx_load(set, opt.data, split, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

/* The images file of split in --data, for messages ("" if none). */
static const char *images_file(const char *split)
{
    static char images[IDX_PATH_MAX], labels[IDX_PATH_MAX];
    err_msg err;
    if (idx_split_paths(opt.data, split, images, labels, &err))
        images[0] = '\0';
    return images;
}

int cli_same_shape(const idx_set *train, const idx_set *test)
{
    size_t c1 = idx_channels(train), c2 = idx_channels(test);
    if (train->rows == test->rows && train->cols == test->cols && c1 == c2)
        return 0;
    say_error("%s: the test images are %zux%zu %s, the training images %zux%zu %s: both "
              "splits must hold images of one size", images_file("t10k"), test->cols,
              test->rows, c2 == 3 ? "colour" : "grey", train->cols, train->rows,
              c1 == 3 ? "colour" : "grey");
    return -1;
}

int cli_data_model(vae_config *cfg, const idx_set *set)
{
    vae_config_image(cfg, set->rows, set->cols, idx_channels(set));
    if (!opt.set[O_CONDITIONAL])
        return 0;
    if (!set->n_classes) {
        say_error("--conditional: the training set in %s has no label file (a flat "
                  "vae import); a conditional model needs labels", opt.data);
        return -1;
    }
    cfg->n_classes = set->n_classes;
    return 0;
}

int cli_check_data(const vae_config *cfg, const idx_set *set, const char *split)
{
    err_msg err;
    const char *what = strcmp(split, "train") ? "test" : "training";
    if (train_check_shape(cfg, set, opt.ckpt, what, &err)) {
        say_error("%s (%s)", err.text, images_file(split));
        return -1;
    }
    if (cfg->n_classes && !set->n_classes) {
        say_error("%s: a conditional model needs labels, and the %s set in %s has no "
                  "label file", opt.ckpt, what, opt.data);
        return -1;
    }
    if (cfg->n_classes && set->n_classes > cfg->n_classes) {
        say_error("%s: the model knows %zu classes, but the %s labels in %s go up to %zu",
                  opt.ckpt, cfg->n_classes, what, opt.data, set->n_classes - 1);
        return -1;
    }
    return 0;
}

void cli_add_split(paths_list *l, const char *split)
{
    /* Static: paths_list keeps the pointers. Missing files are skipped here
     * and reported by the loader. */
    static char names[2][2][IDX_PATH_MAX];
    int k = strcmp(split, "train") != 0;
    err_msg err;
    if (idx_split_paths(opt.data, split, names[k][0], names[k][1], &err))
        return;
    paths_add(l, k ? "the test images" : "the training images", names[k][0], PATHS_READ);
    if (names[k][1][0])
        paths_add(l, k ? "the test labels" : "the training labels", names[k][1], PATHS_READ);
}

int cli_check_paths(const paths_list *l)
{
    err_msg err;
    if (paths_check(l, &err))
        return usage_error("%s", err.text);
    return 0;
}

int cli_load_model(vae_model *m, ckpt_train *t)
{
    err_msg err;
    if (ckpt_load_model(opt.ckpt, m, t, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

/* ===================================================================== */
/* Commands                                                               */
/* ===================================================================== */

#define MODEL O_ARCH, O_HIDDEN, O_LATENT, O_ACT, O_LIKELIHOOD, O_CONDITIONAL
#define TRAINING O_BETA, O_BINARIZE, O_NOISE
#define CONTROLS O_SCHEDULE, O_WARMUP, O_LR_EVERY, O_LR_GAMMA, O_KL_WARMUP, \
    O_ADAM_BETA1, O_ADAM_BETA2, O_ADAM_EPS, O_INIT, O_VALID, O_OBJECTIVE, O_K
static const cmd_spec CMDS[] = {
    {.name = "train",
     .brief = "train a VAE, writing sample grids and a checkpoint each epoch",
     .summary = "Train the VAE on DIR/train-*, evaluate on DIR/t10k-* after each "
                "epoch, write\nOUT/sampled-E.png, OUT/reconst-E.png, the checkpoint "
                "and the metrics each epoch.\nOUT/index.html is the run's page, "
                "rewritten each epoch: settings, losses, loss\ncurve, samples and "
                "reconstructions, and at the end the latent map (OUT/latent.png;\n"
                "vae manifold's). Open it in a browser; the folder can be moved whole.\n"
                "Model and training options are stored "
                "in the checkpoint: other commands read them.\nA run locks its "
                "checkpoint (CKPT.lock) against a second run. An existing\ncheckpoint "
                "is never replaced unasked: --resume continues it, --force replaces it.",
     .opts = {O_DATA, O_CKPT, O_OUT, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS,
              O_JSON, O_RESUME, O_NEW_DATA, O_FORCE, MODEL, TRAINING, CONTROLS,
              O_METRICS, -1},
     .help = {[O_JSON] = "print one JSON object per epoch"},
     .run = cmd_train},
    {.name = "sample",
     .brief = "decode draws from the prior into a PNG grid",
     .summary = "Decode --n draws from the prior into one PNG grid, 8 a row: N(0, I), "
                "or for a\nconditional model p(z|y) with --label, or one column "
                "per label with --grid.",
     .opts = {O_CKPT, O_N, O_OUTPUT, O_SEED, O_THREADS, O_LABEL, O_GRID, -1},
     .help = {[O_N] = "images to draw (default 128; 100 with --grid)",
              [O_OUTPUT] = "output PNG (default sampled.png)",
              [O_SEED] = "seed of the prior draws (default 1)",
              [O_LABEL] = "draw this label (conditional models; 0 to classes - 1)",
              [O_GRID] = "10 columns, one per label (conditional models)"},
     .run = cmd_sample},
    {.name = "reconstruct",
     .brief = "test images beside their reconstructions, as a PNG grid",
     .summary = "Write the first --n test images, each beside its reconstruction "
                "from the\nposterior mean, as one PNG grid.",
     .opts = {O_CKPT, O_DATA, O_N, O_OUTPUT, O_THREADS, -1},
     .help = {[O_N] = "test images to show (default 32)",
              [O_OUTPUT] = "output PNG (default reconst.png)"},
     .run = cmd_reconstruct},
    {.name = "eval",
     .brief = "test-set loss (negative ELBO), and the importance-weighted bound",
     .summary = "Test-set loss (negative ELBO, one z draw per image), in nats per "
                "image; with\n--iw K also the importance-weighted bound on "
                "-log p(x) (Burda et al.) from K\ndraws per image (use K = 5000 "
                "to report a likelihood).",
     .opts = {O_CKPT, O_DATA, O_SEED, O_BATCH, O_THREADS, O_JSON, O_IW, -1},
     .help = {[O_SEED] = "seed of the z draws (default 1; train's evaluation uses the run's own seed, which vae info shows)",
              [O_JSON] = "print the result as one JSON object"},
     .run = cmd_eval},
    {.name = "interpolate",
     .brief = "decode the line between two test images' latent codes",
     .summary = "Decode --steps points on the straight line between the posterior "
                "means of\ntest images --from and --to (ends included), shown "
                "between the two images, as\none PNG row.",
     .opts = {O_CKPT, O_DATA, O_FROM, O_TO, O_STEPS, O_LABEL, O_OUTPUT, O_THREADS, -1},
     .help = {[O_OUTPUT] = "output PNG (default strip.png)",
              [O_LABEL] = "conditional models: decode with this label (default: "
                          "the first image's)"},
     .run = cmd_interpolate},
    {.name = "encode",
     .brief = "latent codes of images, as CSV",
     .summary = "One CSV row per image: index, label, the posterior mean and "
                "log-variance\n(index,label,mu_0,...,logvar_0,...).",
     .opts = {O_CKPT, O_DATA, O_SPLIT, O_OUTPUT, O_THREADS, -1},
     .help = {[O_OUTPUT] = "output CSV (default latents.csv)"},
     .run = cmd_encode},
    {.name = "score",
     .brief = "per-image negative ELBO as an anomaly score",
     .summary = "Per-image negative ELBO in nats (index,label,score,rec,kl) as CSV, "
                "or with\n--top N the N highest-scoring images as a PNG grid, "
                "highest first.",
     .opts = {O_CKPT, O_DATA, O_SPLIT, O_OUTPUT, O_TOP, O_SEED, O_THREADS, -1},
     .help = {[O_OUTPUT] = "output CSV (default scores.csv), or PNG with --top "
                           "(default worst.png)",
              [O_SEED] = "seed of the z draws (default 1)"},
     .run = cmd_score},
    {.name = "probe",
     .brief = "k-NN accuracy of the latent means: test images by training labels",
     .summary = "Classify each test image by the labels of the --k training images "
                "whose posterior\nmeans are nearest its own (Euclidean), and print "
                "the accuracy. The vote goes\nto the most frequent label; a tie, to "
                "the tied label with the nearest\nneighbour (equal distances: the "
                "earlier training image). A conditional model\nencodes each image "
                "with its own label.",
     .opts = {O_CKPT, O_DATA, O_K, O_THREADS, O_JSON, -1},
     .help = {[O_K] = "neighbours that vote (default 5; at most the training images)",
              [O_JSON] = "print the result as one JSON object, with the "
                         "accuracy of each label"},
     .run = cmd_probe},
    {.name = "manifold",
     .brief = "the latent space as a picture",
     .summary = "For a 2-D latent, decode an N x N grid on the prior's quantiles "
                "(Kingma &\nWelling, Fig. 4). For more dimensions, the latent map: the "
                "test set's\nposterior means projected on their first two principal "
                "components (PCA), one\ncolour a label, the axes saying the share of "
                "the variance each carries; drawn\nby gnuplot (without it, an error: "
                "scripts/deps.sh installs gnuplot-nox), with\nthe points as CSV beside "
                "the PNG (index,label,pc1,pc2; manifold.csv).",
     .opts = {O_CKPT, O_DATA, O_N, O_LABEL, O_OUTPUT, O_THREADS, -1},
     .help = {[O_N] = "grid side for a 2-D latent (default 20)",
              [O_OUTPUT] = "output PNG (default manifold.png; the map's CSV beside it)",
              [O_LABEL] = "conditional models: the label of the grid (default 0)"},
     .run = cmd_manifold},
    {.name = "traverse",
     .brief = "latent dimensions by their KL, each moved around a test image's code",
     .summary = "Rank the latent dimensions by the KL of q(z|x) to the prior each "
                "carries, averaged\nover the test set, and print the ranking. Then, "
                "for the --top most active, decode\na row that moves that one "
                "coordinate of test image --from's posterior mean from\n-3 to +3 "
                "standard deviations of the prior (1 for N(0, I); for a conditional\n"
                "model, p(z|y)'s of the image's label, which it also decodes with), "
                "the others\nheld at the mean: one row a dimension, --steps columns, "
                "as one PNG grid.",
     .opts = {O_CKPT, O_DATA, O_FROM, O_TOP, O_STEPS, O_OUTPUT, O_THREADS, O_JSON, -1},
     .help = {[O_FROM] = "the test image whose code is moved (index, default 0)",
              [O_TOP] = "rows: the N most active dimensions (default all, at most 10)",
              [O_STEPS] = "columns a row, -3 to +3 ends included (default 11)",
              [O_OUTPUT] = "output PNG (default traverse.png)",
              [O_JSON] = "print the ranking as one JSON object"},
     .run = cmd_traverse},
    {.name = "info",
     .brief = "what a checkpoint holds: model, training state, training data",
     .summary = "Print what --ckpt holds: its format version, the model, how far "
                "training got and\nwith which settings, and the fingerprint of the "
                "training data (count, size,\nCRC-32s of pixels and labels).",
     .opts = {O_CKPT, O_JSON, -1},
     .help = {[O_JSON] = "print it as one JSON object"},
     .run = cmd_info},
    {.name = "export",
     .brief = "the model's weights as safetensors, for PyTorch",
     .summary = "Write the model of --ckpt as a safetensors file: its tensors "
                "named as the\nstate_dict of scripts/vae_torch.py's modules, the "
                "architecture in the\nheader's __metadata__. scripts/vae_torch.py "
                "loads it with PyTorch alone.",
     .opts = {O_CKPT, O_OUTPUT, -1},
     .help = {[O_OUTPUT] = "output file (default model.safetensors)"},
     .run = cmd_export},
    {.name = "import",
     .brief = "a folder of PNG/JPEG images into IDX files the other commands read",
     .summary = "Turn the images in DIR into a data set in the folder -o (created if "
                "missing):\none sub-folder of DIR per class (label i: the i-th name in "
                "byte order; images\nanywhere below it; an image beside class folders "
                "is an error), or only\nimages (no labels). Files ending in .png, .jpg "
                "or .jpeg (any case) are images;\nother files are skipped and counted; "
                "names starting with '.' are ignored.\nAlpha is composited over "
                "--background; an image that does not decode, or whose\nheader declares "
                "more than --max-pixels pixels (checked before decoding), stops\nthe import "
                "(--skip-broken: skipped with a warning). Grey output is\n"
                "train/t10k-images-idx3-ubyte, colour idx4 (N, H, W, 3, RGB "
                "interleaved); with\nclasses also the idx1 label files and labels.txt.\n"
                "Each class's round(F x n) images, at most n - 1, go to the test files "
                "(a seeded\nchoice). Existing IDX files in the folder are not replaced "
                "without --force.\nThe data set is built in a hidden folder beside "
                "the folder and swapped in whole\n(renameat2 RENAME_EXCHANGE): a killed "
                "import leaves the old set or the new one,\nnever a mix; the next import "
                "removes what it left. Other files in the folder are\nkept; a "
                "sub-folder in it is refused. See docs/import.md.",
     .opts = {O_OUTPUT, O_SIZE, O_CHANNELS, O_BACKGROUND, O_TEST_FRACTION, O_SEED,
              O_SKIP_BROKEN, O_MAX_PIXELS, O_FORCE, O_JSON, -1},
     .help = {[O_OUTPUT] = "the data set's folder (required; created if missing)",
              [O_SEED] = "seed of the split and of the files' order (default 1)",
              [O_FORCE] = "replace the data set already in the folder, whole (its "
                          "files this import does not write go too; other files stay)",
              [O_JSON] = "print the summary as one JSON object"},
     .operand = "DIR",
     .run = cmd_import},
    {.name = "bench",
     .brief = "time training (or the importance-weighted bound) against its sgemm floor",
     .summary = "Time training epochs of a fresh model and, step by step, the same "
                "sgemm calls\nalone (the floor); print both and their ratio. With "
                "--iw K, time the\nimportance-weighted bound over the test set of "
                "--ckpt (or a fresh model)\ninstead.",
     .opts = {O_DATA, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS, O_JSON, MODEL,
              TRAINING, CONTROLS, O_IW, O_CKPT, O_PLAN, -1},
     .help = {[O_EPOCHS] = "epochs to time (default 3)",
              [O_JSON] = "print one JSON object per epoch and a summary",
              [O_CKPT] = "with --iw: the model (default: a fresh one)"},
     .run = cmd_bench},
};
#define N_CMDS (sizeof CMDS / sizeof *CMDS)

static void print_help(void)
{
    printf("usage: vae COMMAND [options]\n\n"
           "Trains a variational autoencoder on MNIST-format images and samples "
           "from it.\n\ncommands:\n");
    for (size_t i = 0; i < N_CMDS; i++)
        printf("  %-12s %s\n", CMDS[i].name, CMDS[i].brief);
    printf("\n'vae COMMAND --help' lists a command's options; 'vae --version' "
           "the version and BLAS core.\n");
}

/* Started by mpirun: joins the job (dist.h). Only vae train, vae eval (--iw
 * too), vae score, vae encode and vae bench (without --iw) split their work
 * across ranks so far; other commands refuse more than one rank.
 * Ranks other than 0 print nothing to stdout. Returns 0, or -1 after a
 * message. */
static int join_ranks(int *argc, char ***argv)
{
    err_msg err;
    if (dist_init(argc, argv, &err)) {
        say_error("%s", err.text);
        dist_abort(1);
        return -1;
    }
    if (dist_size() < 2)
        return 0;
    int split = !strcmp(opt.cmd, "train") || !strcmp(opt.cmd, "eval") ||
                !strcmp(opt.cmd, "score") || !strcmp(opt.cmd, "encode") ||
                (!strcmp(opt.cmd, "bench") && !opt.set[O_IW]);
    if (!split) {
        if (dist_rank() == 0)
            say_error("runs in one process: under mpirun only 'vae train', 'vae eval', "
                      "'vae score', 'vae encode' and 'vae bench' (without --iw) split "
                      "their work across ranks so far (start it without mpirun, or -np "
                      "1)");
        dist_finalize();
        return -1;
    }
    if (dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) {
        say_error("cannot silence stdout: %s", strerror(errno));
        dist_abort(1);
        return -1;
    }
    return 0;
}

/* Whatever a command printed must have reached standard output: a full
 * disk or a closed pipe is an error (SIGPIPE is ignored, so a closed pipe
 * is EPIPE here rather than a silent death). Returns 0, or -1 after a
 * message. */
static int finish_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    say_error("cannot write standard output: %s",
              errno ? strerror(errno) : "an earlier write failed");
    return -1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    cpu_tune_openblas(argv);
    set_defaults();
    if (argc < 2) {
        print_help();
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help();
        return finish_stdout() ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        char core[256];
        cpu_describe(core, sizeof core);
        printf("vae %s\n%s\n%s\n", VAE_VERSION, core, openblas_get_config());
        return finish_stdout() ? 1 : 0;
    }
    for (size_t i = 0; i < N_CMDS; i++) {
        if (strcmp(argv[1], CMDS[i].name))
            continue;
        opt.cmd = CMDS[i].name;
        int p = parse_args(&CMDS[i], argc, argv, 2);
        if (p == 0)
            p = model_defaults();
        if (p > 0) /* --help was asked for and printed */
            return finish_stdout() ? 1 : 0;
        if (p)
            return EXIT_USAGE;
        if (join_ranks(&argc, &argv))
            return 1;
        int rc = CMDS[i].run();
        if (finish_stdout() && rc == 0)
            rc = 1;
        par_shutdown(); /* join the team: nothing is left running at exit */
        /* Under mpirun: a failed rank ends the job, so none waits in a
         * collective for it; a finished or stopped one leaves it cleanly. */
        if (rc != 0 && rc < 128)
            dist_abort(rc);
        dist_finalize();
        return rc;
    }
    fprintf(stderr, "vae: unknown command '%s' (see 'vae --help')\n", argv[1]);
    return EXIT_USAGE;
}
