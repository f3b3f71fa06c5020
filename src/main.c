/* main.c - the vae command line. The only place that prints, reads the
 * environment for user-facing choices, and turns errors into exit codes:
 * 0 success, 1 failure, 2 usage error, 128+signal when interrupted. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "cpu.h"
#include "idx.h"
#include "infer.h"
#include "par.h"
#include "train.h"
#include "vae.h"

#define VAE_VERSION "0.1.0"
#define EXIT_USAGE 2

/* ===================================================================== */
/* Options                                                                */
/* ===================================================================== */

enum opt_id {
    O_DATA, O_CKPT, O_OUT, O_OUTPUT, O_N, O_SEED, O_THREADS, O_BATCH, O_LR,
    O_EPOCHS, O_JSON, O_RESUME, O_HIDDEN, O_LATENT, O_ACT, O_COUNT
};

typedef struct opt_spec {
    const char *name; /* "--data" */
    const char *alt;  /* "-o", or NULL */
    const char *arg;  /* value placeholder, NULL for a flag */
    const char *help;
} opt_spec;

static const opt_spec SPECS[O_COUNT] = {
    [O_DATA] = {"--data", NULL, "DIR", "folder of IDX files, raw or .gz (default data/)"},
    [O_CKPT] = {"--ckpt", NULL, "PATH", "checkpoint file (default vae.bin)"},
    [O_OUT] = {"--out", NULL, "DIR", "folder for the per-epoch PNG grids (default samples/)"},
    [O_OUTPUT] = {"--output", "-o", "FILE", "output PNG file"},
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
    [O_ACT] = {"--act", NULL, "relu|tanh", "hidden activation (default relu)"},
};

typedef struct cmd_spec {
    const char *name;
    const char *brief;   /* one line for 'vae --help' */
    const char *summary; /* the paragraph of 'vae CMD --help' */
    int opts[O_COUNT + 1]; /* allowed options, ended by -1 */
    const char *help[O_COUNT]; /* this command's help for an option, if not SPECS' */
    int (*run)(void);
} cmd_spec;

/* Parsed values; set[] says which were given. */
static struct {
    const char *cmd;
    int set[O_COUNT];
    const char *data, *ckpt, *out, *output, *hidden_arg;
    size_t n, threads, batch, epochs;
    uint64_t seed;
    double lr;
    vae_config cfg;
    int json;
} opt;

/* Prints "vae CMD: message" to stderr. */
static void say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vae%s%s: ", opt.cmd ? " " : "", opt.cmd ? opt.cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vae%s%s: ", opt.cmd ? " " : "", opt.cmd ? opt.cmd : "");
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

static int parse_pos_double(int id, const char *s, double *out)
{
    const char *name = SPECS[id].name;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v))
        return usage_error("%s: '%s' is not a number", name, s);
    if (!(v > 0.0) || v > 1e6)
        return usage_error("%s: %s must be above 0 (and at most 1e6)", name, s);
    *out = v;
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
    switch (id) {
    case O_DATA: opt.data = v; return 0;
    case O_CKPT: opt.ckpt = v; return 0;
    case O_OUT: opt.out = v; return 0;
    case O_OUTPUT: opt.output = v; return 0;
    case O_N: return parse_size(id, v, 1, 65536, &opt.n);
    case O_SEED: return parse_u64(id, v, &opt.seed);
    case O_THREADS: return parse_size(id, v, 1, PAR_MAX_THREADS, &opt.threads);
    case O_BATCH: return parse_size(id, v, 1, 1u << 20, &opt.batch);
    case O_LR: return parse_pos_double(id, v, &opt.lr);
    case O_EPOCHS: return parse_size(id, v, 1, 1000000, &opt.epochs);
    case O_HIDDEN: opt.hidden_arg = v; return parse_hidden(v, &opt.cfg);
    case O_LATENT: return parse_size(id, v, 1, 4096, &opt.cfg.z_dim);
    case O_ACT:
        if (!strcmp(v, "relu"))
            opt.cfg.act = VAE_ACT_RELU;
        else if (!strcmp(v, "tanh"))
            opt.cfg.act = VAE_ACT_TANH;
        else
            return usage_error("--act: '%s' is not relu or tanh", v);
        return 0;
    default: return 0;
    }
}

static void set_defaults(void)
{
    opt.data = "data";
    opt.ckpt = "vae.bin";
    opt.out = "samples";
    opt.seed = 1;
    opt.batch = 128;
    opt.lr = 1e-3;
    opt.epochs = 15;
    opt.cfg.x_dim = IDX_ROWS * IDX_COLS;
    opt.cfg.n_hidden = 1;
    opt.cfg.hidden[0] = 400;
    opt.cfg.z_dim = 20;
    opt.cfg.act = VAE_ACT_RELU;
}

static void print_cmd_help(const cmd_spec *c)
{
    printf("usage: vae %s [options]\n\n%s\n\noptions:\n", c->name, c->summary);
    for (const int *o = c->opts; *o >= 0; o++) {
        const opt_spec *s = &SPECS[*o];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", s->alt ? s->alt : "",
                 s->alt ? ", " : "", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
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
/* Signals and progress                                                   */
/* ===================================================================== */

static volatile sig_atomic_t stop_signal;

/* The first SIGINT or SIGTERM asks training to stop after the step under
 * way (it then saves and exits); a second one ends the process at once.
 * Either way the checkpoint on disk stays whole: writes are atomic. */
static void on_signal(int sig)
{
    if (stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
    static const char msg[] = "\nvae train: stopping after this step to save "
                              "the run (again to quit at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct progress_ctx {
    int tty;
    double last;
} progress_ctx;

static void on_progress(void *vctx, size_t epoch, size_t done, size_t total,
                        double seconds)
{
    progress_ctx *ctx = vctx;
    double t = now_s();
    if (!ctx->tty || (t - ctx->last < 0.1 && done < total))
        return;
    ctx->last = t;
    const int width = 30;
    int fill = (int)((double)width * (double)done / (double)total);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    double rate = seconds > 0 ? (double)done / seconds : 0.0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0.0;
    printf("\repoch %zu/%zu [%s] %zu/%zu  %.0f img/s  ETA %.1fs\033[K", epoch,
           opt.epochs, bar, done, total, rate, eta);
    fflush(stdout);
}

static void on_epoch(void *vctx, const train_report *r)
{
    progress_ctx *ctx = vctx;
    if (ctx->tty)
        printf("\r\033[K");
    if (opt.json)
        printf("{\"epoch\":%zu,\"epochs\":%zu,\"train_loss\":%.6f,\"train_bce\":%.6f,"
               "\"train_kl\":%.6f,\"test_loss\":%.6f,\"test_bce\":%.6f,\"test_kl\":%.6f,"
               "\"seconds\":%.6f,\"images_per_s\":%.1f}\n",
               r->epoch, r->epochs, r->train_loss, r->train_bce, r->train_kl,
               r->test_loss, r->test_bce, r->test_kl, r->seconds, r->images_per_s);
    else
        printf("epoch %zu/%zu  train %.2f (bce %.2f, kl %.2f)  test %.2f  "
               "%.2fs  %.0f img/s\n", r->epoch, r->epochs, r->train_loss,
               r->train_bce, r->train_kl, r->test_loss, r->seconds,
               r->images_per_s);
    fflush(stdout);
}

/* ===================================================================== */
/* Commands                                                               */
/* ===================================================================== */

/* The thread team: --threads, or as many threads as OpenBLAS would use
 * (all cores, or OPENBLAS_NUM_THREADS). par_init makes each sgemm call
 * single-threaded: the team runs them side by side. */
static int apply_threads(void)
{
    size_t n = opt.set[O_THREADS] ? opt.threads : (size_t)openblas_get_num_threads();
    err_msg err;
    if (par_init(n < 1 ? 1 : n > PAR_MAX_THREADS ? PAR_MAX_THREADS : n, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

static int load_split(idx_set *set, const char *split)
{
    err_msg err;
    if (idx_load(set, opt.data, split, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

static int cmd_train(void)
{
    idx_set train = {0}, test = {0};
    if (load_split(&train, "train") || load_split(&test, "t10k")) {
        idx_free(&train);
        return 1;
    }
    if (!opt.set[O_RESUME] && opt.batch > train.n) {
        usage_error("--batch %zu: larger than the training set (%zu images in %s)",
                    opt.batch, train.n, opt.data);
        idx_free(&train);
        idx_free(&test);
        return EXIT_USAGE;
    }
    if (apply_threads())
        return 1;
    train_opts o = {0};
    o.epochs = opt.epochs;
    o.batch = opt.batch;
    o.lr = opt.lr;
    o.seed = opt.seed;
    o.cfg = opt.cfg;
    o.resume = opt.set[O_RESUME];
    o.explicit_batch = opt.set[O_BATCH];
    o.explicit_lr = opt.set[O_LR];
    o.explicit_cfg = opt.set[O_HIDDEN] || opt.set[O_LATENT] || opt.set[O_ACT];
    o.ckpt_path = opt.ckpt;
    o.out_dir = opt.out;
    o.stop = &stop_signal;
    progress_ctx ctx = {isatty(STDOUT_FILENO) && !opt.json, 0.0};
    train_hooks hooks = {on_progress, on_epoch, &ctx};
    catch_signals();
    err_msg err;
    int rc = train_run(&o, &train, &test, &hooks, &err);
    idx_free(&train);
    idx_free(&test);
    if (ctx.tty)
        printf("\r\033[K");
    fflush(stdout);
    if (rc == TRAIN_STOPPED) {
        int sig = (int)stop_signal;
        fprintf(stderr, "vae train: interrupted by %s; the exact state is saved "
                "in %s. Continue with: vae train --resume --ckpt %s --epochs %zu\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", opt.ckpt, opt.ckpt, opt.epochs);
        return 128 + sig;
    }
    if (rc) {
        say_error("%s", err.text);
        return 1;
    }
    if (!opt.json)
        printf("saved %s; images in %s/\n", opt.ckpt, opt.out);
    return 0;
}

/* Loads --ckpt; returns 0 or prints the error. */
static int load_model(vae_model *m)
{
    err_msg err;
    if (ckpt_load_model(opt.ckpt, m, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    if (m->cfg.x_dim != IDX_ROWS * IDX_COLS) {
        say_error("%s: the model takes %zu pixels, not 28x28 images", opt.ckpt,
                  m->cfg.x_dim);
        vae_free(m);
        return -1;
    }
    return 0;
}

static int cmd_sample(void)
{
    size_t n = opt.set[O_N] ? opt.n : 128;
    const char *path = opt.output ? opt.output : "sampled.png";
    if (apply_threads())
        return 1;
    vae_model m;
    if (load_model(&m))
        return 1;
    vae_acts a;
    err_msg err;
    float *z = malloc(n * m.cfg.z_dim * sizeof *z);
    int rc = 1;
    if (!z) {
        say_error("out of memory for %zu samples", n);
    } else if (vae_acts_init(&a, &m.cfg, n < 256 ? n : 256, &err)) {
        say_error("%s", err.text);
    } else {
        rng_state rng;
        rng_seed(&rng, opt.seed);
        rng_normal(&rng, z, n * m.cfg.z_dim);
        if (infer_sample_png(&m, &a, z, n, path, &err))
            say_error("%s", err.text);
        else
            rc = 0;
        vae_acts_free(&a);
    }
    free(z);
    vae_free(&m);
    if (rc == 0 && !opt.json)
        printf("wrote %s (%zu samples from %s)\n", path, n, opt.ckpt);
    return rc;
}

static int cmd_reconstruct(void)
{
    size_t n = opt.set[O_N] ? opt.n : TRAIN_RECON_N;
    const char *path = opt.output ? opt.output : "reconst.png";
    if (apply_threads())
        return 1;
    vae_model m;
    if (load_model(&m))
        return 1;
    idx_set test = {0};
    if (load_split(&test, "t10k")) {
        vae_free(&m);
        return 1;
    }
    if (n > test.n)
        n = test.n;
    vae_acts a;
    err_msg err;
    int rc = 1;
    if (vae_acts_init(&a, &m.cfg, n < 256 ? n : 256, &err)) {
        say_error("%s", err.text);
    } else {
        if (infer_recon_png(&m, &a, &test, n, path, &err))
            say_error("%s", err.text);
        else
            rc = 0;
        vae_acts_free(&a);
    }
    idx_free(&test);
    vae_free(&m);
    if (rc == 0)
        printf("wrote %s (%zu test images, each beside its reconstruction)\n", path, n);
    return rc;
}

static int cmd_eval(void)
{
    if (apply_threads())
        return 1;
    vae_model m;
    if (load_model(&m))
        return 1;
    idx_set test = {0};
    if (load_split(&test, "t10k")) {
        vae_free(&m);
        return 1;
    }
    shard_set sh;
    err_msg err;
    int rc = 1;
    if (shard_init(&sh, &m, opt.batch, 0, &err)) {
        say_error("%s", err.text);
    } else {
        double bce, kl, t0 = now_s();
        double loss = infer_eval(&m, &sh, &test, opt.seed, &bce, &kl);
        double secs = now_s() - t0;
        if (opt.json)
            printf("{\"test_loss\":%.6f,\"test_bce\":%.6f,\"test_kl\":%.6f,"
                   "\"n\":%zu,\"seconds\":%.4f}\n", loss, bce, kl, test.n, secs);
        else
            printf("test loss %.4f nats/image (bce %.4f, kl %.4f) on %zu images "
                   "[%s, %.2fs]\n", loss, bce, kl, test.n, opt.data, secs);
        rc = 0;
        shard_free(&sh);
    }
    idx_free(&test);
    vae_free(&m);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_bench(void)
{
    size_t rounds = opt.set[O_EPOCHS] ? opt.epochs : 3;
    if (rounds > 100) {
        usage_error("--epochs: at most 100 benchmark rounds");
        return EXIT_USAGE;
    }
    idx_set train = {0};
    if (load_split(&train, "train"))
        return 1;
    if (apply_threads()) {
        idx_free(&train);
        return 1;
    }
    train_opts o = {0};
    o.batch = opt.batch;
    o.lr = opt.lr;
    o.seed = opt.seed;
    o.cfg = opt.cfg;
    err_msg err;
    train_bench_round r[100];
    double flops, ratio[100];
    int rc = train_bench(&o, &train, rounds, r, &flops, &err);
    size_t n_images = train.n;
    idx_free(&train);
    if (rc) {
        say_error("%s", err.text);
        return 1;
    }
    char core[256];
    cpu_describe(core, sizeof core);
    if (!opt.json)
        printf("%s, %zu threads, batch %zu, %zu images/epoch\n", core,
               par_threads(), opt.batch, n_images);
    for (size_t i = 0; i < rounds; i++) {
        ratio[i] = r[i].epoch_s / r[i].gemm_s;
        if (opt.json)
            printf("{\"round\":%zu,\"epoch_seconds\":%.4f,\"sgemm_floor_seconds\":%.4f,"
                   "\"ratio\":%.4f,\"gflops_floor\":%.1f}\n", i + 1, r[i].epoch_s,
                   r[i].gemm_s, ratio[i], flops / r[i].gemm_s * 1e-9);
        else
            printf("round %zu: epoch %.3fs  sgemm floor %.3fs  ratio %.3f  "
                   "(%.1f GFLOP/s in sgemm)\n", i + 1, r[i].epoch_s, r[i].gemm_s,
                   ratio[i], flops / r[i].gemm_s * 1e-9);
    }
    qsort(ratio, rounds, sizeof *ratio, cmp_double);
    double med = rounds % 2 ? ratio[rounds / 2]
                            : 0.5 * (ratio[rounds / 2 - 1] + ratio[rounds / 2]);
    if (opt.json)
        printf("{\"rounds\":%zu,\"median_ratio\":%.4f,\"core\":\"%s\",\"threads\":%zu}\n",
               rounds, med, cpu_openblas_core(), par_threads());
    else
        printf("median ratio epoch / sgemm floor: %.3f over %zu rounds\n", med, rounds);
    return 0;
}

#define ARCH O_HIDDEN, O_LATENT, O_ACT
static const cmd_spec CMDS[] = {
    {.name = "train",
     .brief = "train a VAE, writing sample grids and a checkpoint each epoch",
     .summary = "Train the VAE on DIR/train-*, evaluate on DIR/t10k-* after each "
                "epoch, write\nOUT/sampled-E.png and OUT/reconst-E.png and the "
                "checkpoint each epoch.",
     .opts = {O_DATA, O_CKPT, O_OUT, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS,
              O_JSON, O_RESUME, ARCH, -1},
     .help = {[O_JSON] = "print one JSON object per epoch"},
     .run = cmd_train},
    {.name = "sample",
     .brief = "decode draws from the prior into a PNG grid",
     .summary = "Decode --n draws from the prior N(0, I) into one PNG grid, 8 a row.",
     .opts = {O_CKPT, O_N, O_OUTPUT, O_SEED, O_THREADS, -1},
     .help = {[O_N] = "images to draw (default 128)",
              [O_OUTPUT] = "output PNG (default sampled.png)",
              [O_SEED] = "seed of the prior draws (default 1)"},
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
     .brief = "test-set loss (negative ELBO) in nats per image",
     .summary = "Test-set loss (negative ELBO, one z draw per image), in nats per "
                "image.",
     .opts = {O_CKPT, O_DATA, O_SEED, O_BATCH, O_THREADS, O_JSON, -1},
     .help = {[O_SEED] = "seed of the z draws (default 1, as train's evaluation)",
              [O_JSON] = "print the result as one JSON object"},
     .run = cmd_eval},
    {.name = "bench",
     .brief = "time a training epoch against its sgemm floor",
     .summary = "Time training epochs of a fresh model and, step by step, the same "
                "sgemm calls\nalone (the floor); print both and their ratio.",
     .opts = {O_DATA, O_EPOCHS, O_BATCH, O_LR, O_SEED, O_THREADS, O_JSON, ARCH, -1},
     .help = {[O_EPOCHS] = "epochs to time (default 3)",
              [O_JSON] = "print one JSON object per epoch and a summary"},
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

int main(int argc, char **argv)
{
    cpu_tune_openblas(argv);
    set_defaults();
    if (argc < 2) {
        print_help();
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help();
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        char core[256];
        cpu_describe(core, sizeof core);
        printf("vae %s\n%s\n%s\n", VAE_VERSION, core, openblas_get_config());
        return 0;
    }
    for (size_t i = 0; i < N_CMDS; i++) {
        if (strcmp(argv[1], CMDS[i].name))
            continue;
        opt.cmd = CMDS[i].name;
        int p = parse_args(&CMDS[i], argc, argv, 2);
        if (p)
            return p > 0 ? 0 : EXIT_USAGE;
        int rc = CMDS[i].run();
        par_shutdown(); /* join the team: nothing is left running at exit */
        return rc;
    }
    fprintf(stderr, "vae: unknown command '%s' (see 'vae --help')\n", argv[1]);
    return EXIT_USAGE;
}
