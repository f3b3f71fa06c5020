/* cli_opts.c - the option table and the parser: each option's names,
 * value and help, its parsing into cli_opts, the defaults, and a
 * command's --help (see src/cli/cli.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"
#include "import.h"
#include "infer.h"
#include "par.h"
#include "parse.h"
#include "probe.h"
#include "train.h"

/* The command being run, for the prefix of messages ("vae train: "). */
static const char *cmd_name;

void cli_set_command(const char *name)
{
    cmd_name = name;
}

/* ===================================================================== */
/* Options                                                                */
/* ===================================================================== */

typedef struct opt_spec {
    const char *name; /* "--data" */
    const char *alt;  /* "-o", or NULL */
    const char *arg;  /* value placeholder, NULL for a flag ("" for choices) */
    const char *help;
    const enum_names *choices; /* the names the value may take (its usage "a|b|c") */
    int model;   /* 1 + the part of the model it sets (a resumed run keeps its model) */
    int setting; /* a run's setting: 1 + its setting_id, whose row (settings.h)
                    gives the rest; 0: an option of the command line alone */
    const char *def; /* its value when not given, as it would be given: cli_defaults
                        parses it, --help says "(default DEF)" (NULL: none) */
} opt_spec;

/* Choices of the command line alone; the model's and training's enums
 * have their names beside them (names.h). */
static const char *const SPLIT_NAMES[] = {"train", "test"};
static const char *const CHANNEL_NAMES[] = {"auto", "1", "3"};
static const char *const BACKGROUND_NAMES[] = {"white", "black"};
static const enum_names split_names = ENUM_NAMES(SPLIT_NAMES);
static const enum_names channel_names = ENUM_NAMES(CHANNEL_NAMES);
static const enum_names background_names = ENUM_NAMES(BACKGROUND_NAMES);

static const opt_spec SPECS[O_COUNT] = {
    [O_DATA] = {"--data", NULL, "DIR", "folder of IDX files, raw or .gz", .def = "data"},
    [O_CKPT] = {"--ckpt", NULL, "PATH", "checkpoint file", .def = "vae.bin"},
    [O_OUT] = {"--out", NULL, "DIR", "folder for the per-epoch PNG grids and the run's "
               "page, index.html", .def = "out"},
    [O_OUTPUT] = {"--output", "-o", "FILE", "output file"},
    [O_N] = {"--n", NULL, "N", "number of images"},
    [O_SEED] = {.setting = 1 + SETTING_SEED},
    [O_THREADS] = {"--threads", NULL, "N", "threads (default: all cores, or OPENBLAS_NUM_THREADS; "
                   "fewer if ulimit -v leaves room for fewer)"},
    [O_BATCH] = {.setting = 1 + SETTING_BATCH},
    [O_LR] = {.setting = 1 + SETTING_LR},
    [O_EPOCHS] = {"--epochs", NULL, "N", "total epochs of the run", .def = "15"},
    [O_JSON] = {"--json", NULL, NULL, "print one JSON object per line"},
    [O_RESUME] = {"--resume", NULL, NULL, "continue the run saved in --ckpt"},
    [O_HIDDEN] = {"--hidden", NULL, "LIST", "hidden widths, e.g. 400 or 500,500; with two "
                  "stochastic layers W,W/V,V: q(h1|x)'s, then q(h2|h1)'s (the paper's "
                  "200,200/100,100)", .model = 1 + TRAIN_PART_HIDDEN, .def = "400"},
    [O_LATENT] = {"--latent", NULL, "N", "latent dimensions; Z1,Z2: two stochastic layers, "
                  "the bottom one first (with --hidden W,W/V,V)", .model = 1 + TRAIN_PART_LATENT, .def = "20"},
    [O_ACT] = {"--act", NULL, "", "hidden activation (the conv VAE's: leaky, LeakyReLU 0.1)",
               &model_act_names, .model = 1 + TRAIN_PART_ACT, .def = "relu"},
    [O_ARCH] = {"--arch", NULL, "", "the MLP, or the convolutional VAE (its defaults: "
                "--hidden 64,128,256 channels, --latent 100)", &model_arch_names,
                .model = 1 + TRAIN_PART_ARCH, .def = "mlp"},
    [O_LIKELIHOOD] = {"--likelihood", NULL, "",
                      "p(x|z): cross-entropy (bernoulli), continuous Bernoulli (cb), "
                      "or Gaussian of variance 1/2 (squared error)", &model_lik_names,
                      .model = 1 + TRAIN_PART_LIKELIHOOD, .def = "bernoulli"},
    [O_BETA] = {.setting = 1 + SETTING_BETA},
    [O_BINARIZE] = {.setting = 1 + SETTING_BINARIZE},
    [O_NOISE] = {.setting = 1 + SETTING_NOISE},
    [O_CONDITIONAL] = {"--conditional", NULL, NULL,
                       "a conditional VAE on the labels, with a learned prior p(z|y)",
                       .model = 1 + TRAIN_PART_CONDITIONAL},
    [O_METRICS] = {"--metrics", NULL, "FILE", "CSV of the epochs, plotted beside it, "
                   ".csv replaced by .png (default OUT/metrics.csv)"},
    [O_LABEL] = {"--label", NULL, "N", "the label to draw (0 to the model's classes - 1)"},
    [O_GRID] = {"--grid", NULL, NULL, "one column per label"},
    [O_FROM] = {"--from", NULL, "I", "the first test image's index", .def = "0"},
    [O_TO] = {"--to", NULL, "J", "the last test image's index", .def = "1"},
    [O_STEPS] = {"--steps", NULL, "N", "points on the line, ends included", .def = "8"},
    [O_TOP] = {"--top", NULL, "N", "write the N highest-scoring images as a PNG grid "
               "instead of the CSV"},
    [O_IW] = {"--iw", NULL, "K", "also the importance-weighted bound with K draws "
              "per image"},
    [O_SPLIT] = {"--split", NULL, "", "which images", &split_names, .def = "test"},
    [O_FORCE] = {"--force", NULL, NULL, "replace the run already in --ckpt with a new one"},
    [O_NEW_DATA] = {"--new-data", NULL, NULL, "with --resume: go on with training data "
                    "other than the run's own (the checkpoint records it)"},
    [O_SCHEDULE] = {.setting = 1 + SETTING_SCHEDULE},
    [O_WARMUP] = {.setting = 1 + SETTING_WARMUP},
    [O_LR_EVERY] = {.setting = 1 + SETTING_LR_EVERY},
    [O_LR_GAMMA] = {.setting = 1 + SETTING_LR_GAMMA},
    [O_KL_WARMUP] = {.setting = 1 + SETTING_KL_WARMUP},
    [O_ADAM_BETA1] = {.setting = 1 + SETTING_ADAM_BETA1},
    [O_ADAM_BETA2] = {.setting = 1 + SETTING_ADAM_BETA2},
    [O_ADAM_EPS] = {.setting = 1 + SETTING_ADAM_EPS},
    [O_VALID] = {.setting = 1 + SETTING_VALID},
    [O_OBJECTIVE] = {.setting = 1 + SETTING_OBJECTIVE},
    [O_K] = {.setting = 1 + SETTING_DRAWS},
    [O_ESTIMATOR] = {.setting = 1 + SETTING_ESTIMATOR},
    [O_ACTIVE_UNITS] = {"--active-units", NULL, NULL, "also the active units (Burda et "
                        "al.): latent units whose posterior mean varies over the images "
                        "by more than 0.01"},
    [O_LAYER] = {"--layer", NULL, "N", "which stochastic layer's posterior means: 1 (h1) "
                 "or, for a model of two, 2 (h2's, at h1's mean)", .def = "1"},
    [O_KNN] = {"--k", NULL, "K", "neighbours that vote (at most the training images)",
               .def = STR(PROBE_DEFAULT_K)},
    [O_PLAN] = {"--plan", NULL, "", "how threads split a batch: each "
                "a share of the images (rows), each a share of every layer's units "
                "(units: the MLP), or what training picks (default auto: units below "
                "64 images a thread)", &shard_plan_names},
    [O_INIT] = {.setting = 1 + SETTING_INIT},
    [O_SIZE] = {"--size", NULL, "WxH", "resize every image to W x H pixels "
                "(stb_image_resize; default: all images must be one size)"},
    [O_CHANNELS] = {"--channels", NULL, "", "grey or RGB output: auto (default) "
                    "is 1 if every pixel has R = G = B, else 3; 1 turns colour into "
                    "BT.601 luma", &channel_names},
    [O_BACKGROUND] = {"--background", NULL, "", "what transparent pixels "
                      "are composited over (default white)", &background_names},
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

/* "vae CMD: " (and "rank R: " under mpirun), then the message, on stderr. */
static void say_message(const char *fmt, va_list ap)
{
    fprintf(stderr, "vae%s%s: ", cmd_name ? " " : "", cmd_name ? cmd_name : "");
    if (dist_size() > 1) /* under mpirun: whose error */
        fprintf(stderr, "rank %zu: ", dist_rank());
    vfprintf(stderr, fmt, ap);
}

void say_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say_message(fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say_message(fmt, ap);
    fprintf(stderr, " (see 'vae %s%s--help')\n", cmd_name ? cmd_name : "",
            cmd_name ? " " : "");
    va_end(ap);
    return -1;
}

/* Option id as the parser sees it: its own row, or for a run's setting
 * the row of the settings table (its name, value, help and names). */
static opt_spec spec(int id)
{
    opt_spec o = SPECS[id];
    if (o.setting) {
        const setting_row *r = &SETTINGS[o.setting - 1];
        o.name = r->option;
        o.arg = r->type == SETTING_ENUM ? "" : r->arg;
        o.help = r->help;
        o.choices = r->names;
    }
    return o;
}

/* A whole number in [lo, hi] into *out; else a usage error. */
static int parse_size(int id, const char *s, size_t lo, size_t hi, size_t *out)
{
    err_msg err;
    uint64_t v;
    if (parse_uint(spec(id).name, s, lo, hi, &v, &err))
        return usage_error("%s", err.text);
    *out = (size_t)v;
    return 0;
}

/* A whole number in [0, hi] into *out; else a usage error. */
static int parse_u64_max(int id, const char *s, uint64_t hi, uint64_t *out)
{
    err_msg err;
    return parse_uint(spec(id).name, s, 0, hi, out, &err) ? usage_error("%s", err.text) : 0;
}

/* A finite number in [lo, hi] into *out; else a usage error. */
static int parse_double(int id, const char *s, double lo, double hi, double *out)
{
    err_msg err;
    return parse_real(spec(id).name, s, lo, 1, hi, 1, out, &err)
               ? usage_error("%s", err.text)
               : 0;
}

/* One of e's names into *out (its value); else a usage error listing
 * them ("a, b or c"). */
static int parse_choice(int id, const char *s, const enum_names *e, int *out)
{
    int v = enum_parse(e, s);
    if (v >= 0) {
        *out = v;
        return 0;
    }
    char list[128];
    enum_list(e, list, sizeof list);
    return usage_error("%s: '%s' is not %s", spec(id).name, s, list);
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

/* A list of up to `most` numbers "A,B,..." from s (ending at end) into
 * out, each in [1, hi], for option id; *n the count. A malformed list gets
 * "is not a list of <what>". */
static int parse_list(int id, const char *s, const char *end, size_t most, size_t hi,
                      size_t *out, size_t *n, const char *example)
{
    const char *p = s;
    *n = 0;
    while (1) {
        if (*n == most)
            return usage_error("%s: at most %zu %s, got '%s'", spec(id).name, most,
                               id == O_HIDDEN ? "layers" : "stochastic layers", s);
        char item[32];
        size_t len = strcspn(p, ",/");
        if (p + len > end)
            len = (size_t)(end - p);
        if (len == 0 || len >= sizeof item)
            return usage_error("%s: '%s' is not a list of %s", spec(id).name, s, example);
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_size(id, item, 1, hi, &out[(*n)++]))
            return -1;
        if (p + len == end)
            return 0;
        if (p[len] != ',')
            return usage_error("%s: '%s' is not a list of %s", spec(id).name, s, example);
        p += len + 1;
    }
}

/* --hidden W,W or, with two stochastic layers, W,W/V,V: the widths of
 * q(h1|x) (p(x|h1) mirrors them), then of q(h2|h1) (p(h1|h2) mirrors them). */
static int parse_hidden(const char *s, model_config *cfg)
{
    const char *slash = strchr(s, '/');
    const char *ex = "widths like 400 or 500,500 (200,200/100,100 with two stochastic "
                     "layers)";
    if (parse_list(O_HIDDEN, s, slash ? slash : s + strlen(s), MODEL_MAX_HIDDEN,
                   MODEL_MAX_WIDTH, cfg->hidden, &cfg->n_hidden, ex))
        return -1;
    cfg->n_hidden2 = 0;
    return slash ? parse_list(O_HIDDEN, slash + 1, slash + strlen(slash), MODEL_MAX_HIDDEN,
                              MODEL_MAX_WIDTH, cfg->hidden2, &cfg->n_hidden2, ex)
                 : 0;
}

/* --latent Z or Z1,Z2: one stochastic layer, or two (the bottom one first). */
static int parse_latent(const char *s, model_config *cfg)
{
    size_t z[2], n;
    if (parse_list(O_LATENT, s, s + strlen(s), 2, 4096, z, &n,
                   "sizes like 20 (100,50 with two stochastic layers)"))
        return -1;
    cfg->z_dim = z[0];
    cfg->z2_dim = n == 2 ? z[1] : 0;
    return 0;
}

/* A file or folder option's value into *out; "" is a usage error: it
 * names no file, and as a folder would quietly be the current one. */
static int parse_path(int id, const char *v, const char **out)
{
    if (!*v)
        return usage_error("%s: an empty path", spec(id).name);
    *out = v;
    return 0;
}

static int parse_value(cli_opts *o, int id, const char *v)
{
    if (SPECS[id].setting) { /* a run's setting: its row parses it */
        err_msg err;
        if (settings_parse(&o->run.set, (setting_id)(SPECS[id].setting - 1), v, &err))
            return usage_error("%s", err.text);
        return 0;
    }
    /* An option of named values: its value's index into c, first. */
    int c = 0;
    if (spec(id).choices && parse_choice(id, v, spec(id).choices, &c))
        return -1;
    switch (id) {
    case O_DATA: return parse_path(id, v, &o->data);
    case O_CKPT: return parse_path(id, v, &o->ckpt);
    case O_OUT: return parse_path(id, v, &o->out);
    case O_OUTPUT: return parse_path(id, v, &o->output);
    case O_METRICS: return parse_path(id, v, &o->metrics);
    case O_N: return parse_size(id, v, 1, 65536, &o->n);
    case O_THREADS: return parse_size(id, v, 1, PAR_MAX_THREADS, &o->threads);
    case O_EPOCHS: return parse_size(id, v, 1, 1000000, &o->epochs);
    case O_HIDDEN: return parse_hidden(v, &o->cfg);
    case O_LATENT: return parse_latent(v, &o->cfg);
    case O_LABEL: return parse_size(id, v, 0, MODEL_MAX_CLASSES - 1, &o->label);
    case O_FROM: return parse_size(id, v, 0, 1u << 31, &o->from);
    case O_TO: return parse_size(id, v, 0, 1u << 31, &o->to);
    case O_STEPS: return parse_size(id, v, 2, 1000, &o->steps);
    case O_TOP: return parse_size(id, v, 1, 65536, &o->top);
    case O_IW: return parse_size(id, v, 1, INFER_MAX_IW, &o->iw);
    case O_LAYER: return parse_size(id, v, 1, 2, &o->layer);
    case O_KNN: /* checked against the references once they are known */
        return parse_size(id, v, 1, UINT32_MAX, &o->knn);
    case O_SIZE: return parse_wxh(v, &o->size_w, &o->size_h);
    case O_MAX_PIXELS:
        if (parse_u64_max(id, v, IMPORT_MAX_MAX_PIXELS, &o->max_pixels))
            return -1;
        return o->max_pixels == 0 ? usage_error("--max-pixels: must be at least 1") : 0;
    case O_CHANNELS: o->channels = c == 0 ? 0 : c == 1 ? 1 : 3; return 0;
    case O_BACKGROUND: o->background = c == 0 ? 255 : 0; return 0;
    case O_TEST_FRACTION:
        if (parse_double(id, v, 0.0, 1e300, &o->test_fraction))
            return -1;
        if (!(o->test_fraction > 0.0 && o->test_fraction < 1.0))
            return usage_error("--test-fraction: must be above 0 and below 1, not %s", v);
        return 0;
    case O_PLAN: o->run.plan = (shard_plan)c; return 0;
    case O_ACT: o->cfg.act = (model_act)c; return 0;
    case O_ARCH: o->cfg.arch = (model_arch)c; return 0;
    case O_LIKELIHOOD: o->cfg.likelihood = (model_lik)c; return 0;
    case O_SPLIT: o->split = c ? "t10k" : "train"; return 0;
    default: return 0;
    }
}

void cli_defaults(cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cfg.x_dim = IDX_ROWS * IDX_COLS;
    for (int id = 0; id < O_COUNT; id++) /* the table's defaults, parsed as given */
        if (SPECS[id].def && parse_value(o, id, SPECS[id].def))
            abort(); /* a table that does not parse its own defaults */
    o->run = train_defaults(); /* the settings' defaults, from their rows */
    import_opts imp = import_defaults(); /* import's defaults, from import.c */
    o->background = imp.background;
    o->test_fraction = imp.test_fraction;
    o->max_pixels = imp.max_pixels;
}

/* The conv VAE's defaults are the article's: 64, 128, 256 channels, a
 * 100-D latent, LeakyReLU 0.1. Returns 0, or -1 after a usage error. */
static int model_defaults(cli_opts *o)
{
    /* Two stochastic layers: each layer's widths, the MLP, no labels. */
    if (o->cfg.z2_dim && !o->cfg.n_hidden2)
        return usage_error("--latent %zu,%zu: two stochastic layers need the second's "
                           "hidden widths after a slash, e.g. --hidden 200,200/100,100",
                           o->cfg.z_dim, o->cfg.z2_dim);
    if (!o->cfg.z2_dim && o->cfg.n_hidden2)
        return usage_error("--hidden: widths after the slash are a second stochastic "
                           "layer's: give --latent Z1,Z2");
    if (o->cfg.z2_dim && (o->cfg.arch != MODEL_ARCH_MLP || o->set[O_CONDITIONAL]))
        return usage_error("--latent %zu,%zu: two stochastic layers are for the MLP "
                           "without --conditional", o->cfg.z_dim, o->cfg.z2_dim);
    if (o->cfg.arch != MODEL_ARCH_CONV)
        return 0;
    if (o->set[O_CONDITIONAL])
        return usage_error("--conditional: the conv VAE is not conditional (use --arch mlp)");
    if (!o->set[O_HIDDEN]) {
        o->cfg.n_hidden = 3;
        o->cfg.hidden[0] = 64, o->cfg.hidden[1] = 128, o->cfg.hidden[2] = 256;
    }
    if (!o->set[O_LATENT])
        o->cfg.z_dim = 100;
    if (!o->set[O_ACT])
        o->cfg.act = MODEL_ACT_LEAKY;
    return 0;
}

/* "-o, --output FILE": how option id is written, into out. */
static void option_usage(char *out, size_t size, int id)
{
    const opt_spec sp = spec(id), *s = &sp;
    char arg[96] = "";
    if (s->choices)
        for (size_t i = 0, len = 0; i < s->choices->n && len < sizeof arg; i++) {
            int n = snprintf(arg + len, sizeof arg - len, "%s%s", i ? "|" : "",
                             s->choices->names[i]);
            len += n > 0 ? (size_t)n : 0;
        }
    else if (s->arg)
        snprintf(arg, sizeof arg, "%s", s->arg);
    snprintf(out, size, "%s%s%s%s%s", s->alt ? s->alt : "", s->alt ? ", " : "", s->name,
             s->arg ? " " : "", arg);
}

/* Command c's help for option id: its own, or the table's, ended by its
 * default from its row (the settings') or the table (buf: size bytes). */
static const char *option_help(const cmd_spec *c, int id, char *buf, size_t size)
{
    const char *help = c->help[id] ? c->help[id] : spec(id).help;
    const char *def = c->def[id] ? c->def[id] : SPECS[id].def;
    char v[64];
    if (!def && SPECS[id].setting) {
        setting_id sid = (setting_id)(SPECS[id].setting - 1);
        run_settings d = settings_defaults();
        def = settings_format(&d, sid, 0, v, sizeof v);
    }
    if (!def || def == CLI_NO_DEFAULT)
        return help;
    snprintf(buf, size, "%s (default %s)", help, def);
    return buf;
}

static void print_cmd_help(const cmd_spec *c)
{
    printf("usage: vae %s%s%s [options]\n\n%s\n\noptions:\n", c->name,
           c->operand ? " " : "", c->operand ? c->operand : "", c->summary);
    for (const int *op = c->opts; *op >= 0; op++) {
        char left[64], help[1024];
        option_usage(left, sizeof left, *op);
        if (strlen(left) > 24)
            printf("  %s\n  %-24s %s\n", left, "", option_help(c, *op, help, sizeof help));
        else
            printf("  %-24s %s\n", left, option_help(c, *op, help, sizeof help));
    }
    printf("  %-24s %s\n", "-h, --help", "show this help");
}

/* ===================================================================== */
/* The manual page                                                        */
/* ===================================================================== */

/* text as roff: backslashes doubled, a line that would start with '.' or
 * '\'' protected, hyphens of option names kept as hyphens. */
static void roff(const char *text)
{
    int line_start = 1;
    for (const char *p = text; *p; p++) {
        if (line_start && (*p == '.' || *p == '\''))
            fputs("\\&", stdout);
        if (*p == '\\')
            fputs("\\e", stdout);
        else if (*p == '-')
            fputs("\\-", stdout);
        else
            putchar(*p);
        line_start = *p == '\n';
    }
}

void cli_print_man(void)
{
    printf(".TH VAE 1 \"\" \"vae %s\" \"User Commands\"\n", VAE_VERSION);
    printf(".SH NAME\nvae \\- train variational autoencoders on MNIST\\-format images "
           "and sample from them\n");
    printf(".SH SYNOPSIS\n.B vae\n.I COMMAND\n[\\fIoptions\\fR]\n.br\n"
           ".B vae \\-\\-help\n.br\n.B vae \\-\\-version\n");
    printf(".SH DESCRIPTION\nvae trains the MLP VAE of Kingma and Welling (784\\-400\\-20 by "
           "default) and its family (likelihoods, beta, binarization, denoising, conditional, "
           "convolutional, two stochastic layers, the importance\\-weighted objective and its "
           "gradient estimators) with hand\\-written passes over OpenBLAS, "
           "writes PNG grids each epoch, and uses the checkpoint it writes. "
           "Every command and option below is the one \\fBvae COMMAND \\-\\-help\\fR "
           "prints.\n");
    printf(".SH COMMANDS\n");
    for (size_t i = 0; i < CLI_N_CMDS; i++) {
        const cmd_spec *c = &CLI_CMDS[i];
        printf(".SS \"vae %s%s%s\"\n", c->name, c->operand ? " " : "",
               c->operand ? c->operand : "");
        roff(c->summary);
        putchar('\n');
        if (c->mpi) {
            printf(".PP\nUnder mpirun it splits its work across ranks");
            if (c->mpi_unless) {
                printf(", except with \\fB");
                roff(spec(c->mpi_unless).name);
                printf("\\fR");
            }
            printf(".\n");
        }
        for (const int *op = c->opts; *op >= 0; op++) {
            char left[64], help[1024];
            option_usage(left, sizeof left, *op);
            printf(".TP\n.B ");
            roff(left);
            printf("\n");
            roff(option_help(c, *op, help, sizeof help));
            putchar('\n');
        }
    }
    printf(".SH FILES\n"
           ".TP\n.I vae.bin\nthe default checkpoint (\\fB\\-\\-ckpt\\fR): model, "
           "optimizer state and training record; docs/checkpoint.md gives the format.\n"
           ".TP\n.I CKPT.lock\nthe lock of a checkpoint being trained; left behind by a "
           "killed run, it never blocks the next.\n"
           ".TP\n.I CKPT.best.bin\nthe best validation epoch's model (\\fB\\-\\-valid\\fR).\n"
           ".TP\n.I out/\nthe default output folder of \\fBvae train\\fR: "
           "sampled\\-E.png, reconst\\-E.png, metrics.csv and its plot, index.html.\n"
           ".TP\n.I data/\nthe default data folder: train\\- and t10k\\-images\\-idx3\\-ubyte "
           "(or idx4 for colour), the idx1 label files, raw or .gz.\n");
    printf(".SH EXIT STATUS\n.TP\n0\nsuccess\n.TP\n1\nfailure (a message names the "
           "file or option and the problem)\n.TP\n2\na usage error\n.TP\n128+N\n"
           "training stopped by signal N (130 for SIGINT, 143 for SIGTERM, 129 for "
           "SIGHUP, 152 for SIGXCPU), its exact state saved\n");
    printf(".SH SEE ALSO\nREADME.md and docs/ in the source: commands.md, models.md, "
           "data.md, import.md, export.md, errors.md, checkpoint.md, speed.md, mpi.md.\n");
}

/* Parses argv[first..] against the command's options. Returns 0, 1 when
 * help was printed, or -1 after a usage error was printed. */
static int parse_args(cli_opts *o, const cmd_spec *c, int argc, char **argv, int first)
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
        for (const int *op = c->opts; *op >= 0; op++) {
            const opt_spec sp = spec(*op), *s = &sp;
            if ((strlen(s->name) == len && !strncmp(a, s->name, len)) ||
                (s->alt && !eq && !strcmp(a, s->alt)))
                id = *op;
        }
        if (id < 0 && a[0] != '-' && c->operand && !o->operand) {
            if (!*a) /* the operand is a folder (import's DIR) */
                return usage_error("%s: an empty path", c->operand);
            o->operand = a;
            continue;
        }
        if (id < 0) {
            if (a[0] != '-')
                return usage_error("unexpected argument '%s'", a);
            return usage_error("unknown option '%.*s'", (int)len, a);
        }
        if (o->set[id])
            return usage_error("%s given twice", spec(id).name);
        o->set[id] = 1;
        if (!spec(id).arg) {
            if (eq)
                return usage_error("%s takes no value", spec(id).name);
            if (id == O_JSON)
                o->json = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            char what[128];
            if (spec(id).choices)
                enum_list(spec(id).choices, what, sizeof what);
            else
                snprintf(what, sizeof what, "%s", spec(id).arg);
            return usage_error("%s needs a value (%s)", spec(id).name, what);
        }
        if (parse_value(o, id, v))
            return -1;
    }
    return 0;
}


void cli_given(const cli_opts *o, uint64_t *settings, unsigned *model)
{
    *settings = 0;
    *model = 0;
    for (int id = 0; id < O_COUNT; id++) {
        if (!o->set[id])
            continue;
        if (SPECS[id].setting)
            *settings |= (uint64_t)1 << (SPECS[id].setting - 1);
        if (SPECS[id].model)
            *model |= 1u << (SPECS[id].model - 1);
    }
}

const char *cli_part_option(train_model_part part)
{
    for (int id = 0; id < O_COUNT; id++)
        if (SPECS[id].model == 1 + (int)part)
            return SPECS[id].name;
    abort(); /* a part no option sets: the table is incomplete */
}

const char *cli_option_name(int id)
{
    return spec(id).name;
}

int cli_parse(cli_opts *o, const cmd_spec *c, int argc, char **argv, int first)
{
    for (int id = 0; id < O_COUNT; id++) /* the command's own defaults first */
        if (c->def[id] && c->def[id] != CLI_NO_DEFAULT && parse_value(o, id, c->def[id]))
            abort(); /* a table that does not parse its own defaults */
    int p = parse_args(o, c, argc, argv, first);
    return p ? p : model_defaults(o);
}
