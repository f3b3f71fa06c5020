/* test_cli.c - the vae binary end to end, on small IDX files this test
 * writes itself (no MNIST, no network): exit codes, stdout, stderr and the
 * files each command leaves behind. The binary is $VAE_BIN (set by CTest). */
#define _GNU_SOURCE /* openpty, memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "cpu.h"
#include "png_grid.h"
#include "rng.h"
#include "testutil.h"
#include "cliutil.h"
#include "vae.h" /* VAE_VERSION_STRING */

#define N_TRAIN CLI_N_TRAIN
#define N_TEST CLI_N_TEST

/* Trains a small model into ckpt (once per group: several tests use it). */
static char model[160];

static void train_small_model(void)
{
    if (tu_exists(model))
        return;
    char out[160];
    in_dir(out, sizeof out, "model-out");
    /* 100 steps at a larger learning rate than the default: it learns. */
    assert_exit(run("train", "--data", data, "--ckpt", model, "--out", out,
                    "--epochs", "10", "--batch", "30", "--lr", "0.005",
                    "--hidden", "64", "--latent", "4", NULL), 0);
}

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-cli"))
        return -1;
    snprintf(model, sizeof model, "%s/model.bin", dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Help and version                                                         */

static void test_help_and_version(void **state)
{
    (void)state;
    assert_exit(run("--help", NULL), 0);
    const char *cmds[] = {"train", "sample", "reconstruct", "eval", "bench"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        tu_assert_contains(out_text, cmds[i]);

    assert_exit(run("--version", NULL), 0);
    tu_assert_contains(out_text, "vae " VAE_VERSION_STRING);
    tu_assert_contains(out_text, "OpenBLAS core");
    /* They take nothing after them; "help CMD" is "CMD --help". */
    assert_exit(run("--version", "extra", NULL), 2);
    tu_assert_contains(err_text, "--version takes no arguments, and 'extra' is one");
    assert_exit(run("--help", "train", NULL), 0);
    tu_assert_contains(out_text, "usage: vae train [options]");
    assert_exit(run("help", "nope", NULL), 2);
    tu_assert_contains(err_text, "help: 'nope' is no command");
    assert_exit(run("help", "eval", NULL), 0);
    tu_assert_contains(out_text, "usage: vae eval [options]");
    /* Each default once in a table, shown by --help from there: the
     * command's own, the option table's, a setting's row's; none where the
     * command does without (bench --ckpt). */
    assert_exit(run("sample", "--help", NULL), 0);
    tu_assert_contains(out_text, "output PNG (default sampled.png)\n");
    tu_assert_contains(out_text, "of its labels) (default 128)\n");
    tu_assert_contains(out_text, "checkpoint file (default vae.bin)\n");
    tu_assert_contains(out_text, "seed of the prior draws (default 1)\n");
    assert_exit(run("bench", "--help", NULL), 0);
    tu_assert_contains(out_text, "with --iw: the model (without it: a fresh one)\n");
    tu_assert_contains(out_text, "epochs to time (default 3)\n");

    /* Every option the issue names, in the help of the commands using it. */
    assert_exit(run("train", "--help", NULL), 0);
    const char *train_opts[] = {"--data", "--ckpt", "--out", "--epochs", "--batch",
                                "--lr", "--seed", "--threads", "--json", "--resume"};
    for (size_t i = 0; i < sizeof train_opts / sizeof *train_opts; i++)
        tu_assert_contains(out_text, train_opts[i]);
    assert_exit(run("sample", "--help", NULL), 0);
    tu_assert_contains(out_text, "--n N");
    tu_assert_contains(out_text, "-o, --output FILE");
    assert_exit(run("eval", "--help", NULL), 0);
    tu_assert_contains(out_text, "--json");
}

/* The manual page (vae --man, what the build installs as vae.1) holds
 * every command of 'vae --help' as a section and, in it, every option that
 * command's --help lists, with the same help text. */
static void test_man_page_matches_help(void **state)
{
    (void)state;
    assert_exit(run("--man", NULL), 0);
    char *man = out_text;
    out_text = NULL;
    tu_assert_contains(man, ".TH VAE 1");
    tu_assert_contains(man, ".SH EXIT STATUS");
    assert_exit(run("--help", NULL), 0);
    char *help = out_text;
    out_text = NULL;
    size_t n_cmds = 0, n_opts = 0;
    for (char *line = strstr(help, "commands:\n"); line && (line = strchr(line, '\n'));) {
        line++;
        char name[32];
        if (sscanf(line, "  %31s", name) != 1 || line[0] != ' ')
            break;
        n_cmds++;
        char head[64];
        snprintf(head, sizeof head, ".SS \"vae %s", name);
        const char *sec = strstr(man, head);
        if (!sec)
            fail_msg("the man page has no section for vae %s", name);
        const char *next = strstr(sec + 1, ".SS ");
        size_t sec_len = next ? (size_t)(next - sec) : strlen(sec);
        assert_exit(run(name, "--help", NULL), 0);
        /* "  --name ARG   help" lines: each name must be in the section. */
        for (char *o = strstr(out_text, "options:\n"); o && (o = strstr(o, "\n  ")); o++) {
            const char *dash = o + 3;
            if (*dash == '-' && dash[1] != '-') /* "-o, --output" */
                dash = strstr(dash, "--");
            if (!dash || strncmp(dash, "--", 2) != 0 || !strncmp(dash, "--help", 6))
                continue;
            char opt[40], roffed[80] = "";
            sscanf(dash, "%39[-a-z0-9]", opt);
            for (const char *c = opt; *c; c++)
                strcat(roffed, *c == '-' ? "\\-" : (char[2]){*c, 0});
            if (!memmem(sec, sec_len, roffed, strlen(roffed)))
                fail_msg("vae %s --help lists %s; its man page section does not", name, opt);
            n_opts++;
        }
    }
    printf("  the man page: %zu commands, %zu options, as --help lists them\n", n_cmds, n_opts);
    assert_true(n_cmds >= 14 && n_opts > 80);
    free(man);
    free(help);
}

/* ------------------------------------------------------------------------ */
/* The settings table                                                       */

/* A value of setting id, as option text, other than the one s holds and
 * within what the option takes. */
static void other_value(const run_settings *s, setting_id id, char *out, size_t size)
{
    const setting_row *r = &SETTINGS[id];
    uint64_t bits = settings_bits(s, id);
    if (r->type == SETTING_ENUM) {
        snprintf(out, size, "%s", r->names->names[(bits + 1) % r->names->n]);
    } else if (r->type == SETTING_UINT) {
        snprintf(out, size, "%llu", (unsigned long long)(bits == r->min ? r->min + 1 : r->min));
    } else {
        double v, lo = r->lo_in ? r->lo : r->lo + (r->hi - r->lo) / 4;
        memcpy(&v, &bits, sizeof v);
        snprintf(out, size, "%.17g", v == lo ? (r->lo + r->hi) / 2 : lo);
    }
}

/* Every setting of the table: a checkpoint holding a value other than the
 * default for each reads back the same; vae info --json gives each under
 * its key and vae info each one in use under its label; train --help and
 * the man page list each option with its help; and a resumed run given
 * another value is refused by the option's name (unless its row says it
 * may change). Two runs: a step schedule, then a cosine one. */
static void test_every_setting_round_trips(void **state)
{
    (void)state;
    assert_exit(run("train", "--help", NULL), 0);
    char *help = out_text;
    out_text = NULL;
    assert_exit(run("--man", NULL), 0);
    char *man = out_text;
    out_text = NULL;
    for (int i = 0; i < SETTING_COUNT; i++) {
        const setting_row *r = &SETTINGS[i];
        if (!r->option)
            continue;
        char roffed[64] = "";
        for (const char *c = r->option; *c; c++)
            strcat(roffed, *c == '-' ? "\\-" : (char[2]){*c, 0});
        /* its help, then the default its row gives */
        run_settings def = settings_defaults();
        char v[64], line[1024];
        snprintf(line, sizeof line, "%s (default %s)\n", r->help,
                 settings_format(&def, (setting_id)i, 0, v, sizeof v));
        if (!strstr(help, r->option) || !strstr(help, line))
            fail_msg("vae train --help lacks %s or its help '%s'", r->option, line);
        if (!strstr(man, roffed))
            fail_msg("the man page lacks %s", r->option);
    }
    tu_assert_contains(help, "images per step (default 128)\n");
    free(help);
    free(man);

    model_config cfg = {784, 1, {16}, 4, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_net m;
    err_msg err;
    if (model_init(&m, &cfg, &err))
        fail_msg("%s", err.text);
    rng_state r;
    rng_seed(&r, 3);
    model_init_params(&m, &r);
    float *zeros = calloc(m.n_params, sizeof *zeros);
    assert_non_null(zeros);
    int refused[SETTING_COUNT] = {0}, moved[SETTING_COUNT] = {0};
    for (int variant = 0; variant < 2; variant++) {
        /* The step schedule and the IW bound with DReG; the cosine schedule
         * and the ELBO with a KL warm-up. */
        ckpt_train t = ckpt_train_defaults();
        run_settings *s = &t.set;
        s->seed = 12345, s->batch = 50, s->sched.lr = 0.002, s->beta = 0.5;
        s->binarize = TRAIN_BIN_STATIC, s->noise = 0.25;
        s->adam_beta1 = 0.8, s->adam_beta2 = 0.99, s->adam_eps = 1e-6;
        s->init = TRAIN_INIT_GLOROT, s->valid = 40, s->draws = 3;
        if (variant == 0) {
            s->sched.kind = SCHEDULE_STEP, s->sched.every = 7, s->sched.gamma = 0.25;
            s->objective = MODEL_OBJ_IWAE, s->estimator = MODEL_EST_DREG;
        } else {
            s->sched.kind = SCHEDULE_COSINE, s->sched.warmup = 2, s->sched.horizon = 9;
            s->kl_warmup = 3;
        }
        t.epoch = 1, t.adam_t = 6;
        rng_seed(&t.rng_data, 1);
        rng_seed(&t.rng_noise, 2);
        run_settings def = settings_defaults();
        for (int i = 0; i < SETTING_COUNT; i++)
            moved[i] |= settings_applies(s, (setting_id)i) &&
                        settings_differ(s, &def, (setting_id)i);
        char path[160];
        in_dir(path, sizeof path, variant ? "settings-cos.bin" : "settings-step.bin");
        if (ckpt_save(path, &m, zeros, zeros, &t, &err))
            fail_msg("%s", err.text);
        ckpt_data d;
        if (ckpt_read(path, &d, &err))
            fail_msg("%s", err.text);
        for (int i = 0; i < SETTING_COUNT; i++)
            if (settings_bits(&d.train.set, (setting_id)i) != settings_bits(s, (setting_id)i))
                fail_msg("%s did not round-trip through the checkpoint", SETTINGS[i].key);
        ckpt_data_free(&d);

        assert_exit(run("info", "--ckpt", path, "--json", NULL), 0);
        for (int i = 0; i < SETTING_COUNT; i++) {
            char v[64], want[128];
            snprintf(want, sizeof want, "\"%s\":%s,", SETTINGS[i].key,
                     settings_format(s, (setting_id)i, 1, v, sizeof v));
            if (!strstr(out_text, want))
                fail_msg("vae info --json lacks %s in %s", want, out_text);
        }
        assert_exit(run("info", "--ckpt", path, NULL), 0);
        for (int i = 0; i < SETTING_COUNT; i++) {
            char v[64], want[128];
            snprintf(want, sizeof want, "%s %s", SETTINGS[i].label,
                     settings_format(s, (setting_id)i, 0, v, sizeof v));
            int shown = strstr(out_text, want) != NULL;
            if (settings_applies(s, (setting_id)i) != shown)
                fail_msg("vae info %s \"%s\":\n%s", shown ? "shows" : "lacks", want,
                         out_text);
        }

        /* Resuming with another value of each in use: refused by name, nothing
         * trained (a schedule's own options need that schedule: see the other
         * variant). */
        for (int i = 0; i < SETTING_COUNT; i++) {
            const setting_row *row = &SETTINGS[i];
            if (!row->option || row->resumable || !settings_applies(s, (setting_id)i))
                continue;
            char v[64], out[160], want[96];
            other_value(s, (setting_id)i, v, sizeof v);
            in_dir(out, sizeof out, "settings-out");
            /* An option that needs another ("--schedule step") gets it, as the
             * run's own. */
            char need[64] = "", *need_val = NULL;
            if (row->needs) {
                snprintf(need, sizeof need, "%s", row->needs);
                need_val = strchr(need, ' ');
                *need_val++ = '\0';
            }
            int rc = run("train", "--resume", "--ckpt", path, "--data", data, "--out", out,
                         "--epochs", "3", "--threads", "1", row->option, v,
                         row->needs ? need : NULL, need_val, NULL);
            snprintf(want, sizeof want, "%s given other than the run being resumed's",
                     row->option);
            if (rc == 0 || !strstr(err_text, want))
                fail_msg("vae train --resume %s %s: exit %d, expected \"%s\" in: %s",
                         row->option, v, rc, want, err_text);
            refused[i] = 1;
        }
        if (ckpt_read(path, &d, &err))
            fail_msg("%s", err.text);
        assert_int_equal(d.train.epoch, 1); /* nothing trained */
        ckpt_data_free(&d);
    }
    for (int i = 0; i < SETTING_COUNT; i++)
        if (!moved[i])
            fail_msg("%s is at its default in both variants; the test would not see it "
                     "lost", SETTINGS[i].key);
    size_t n_refused = 0, n_options = 0;
    for (int i = 0; i < SETTING_COUNT; i++) {
        n_options += SETTINGS[i].option && !SETTINGS[i].resumable;
        n_refused += (size_t)refused[i];
    }
    printf("  %d settings round-trip; %zu of %zu options refused on resume\n",
           SETTING_COUNT, n_refused, n_options);
    assert_int_equal(n_refused, n_options);
    assert_true(n_options >= 18);
    free(zeros);
    model_free(&m);
}

/* "OpenBLAS core NAME ..." from --version: NAME into buf. */
static void version_core(char *buf, size_t size)
{
    assert_exit(run("--version", NULL), 0);
    const char *p = strstr(out_text, "OpenBLAS core ");
    assert_non_null(p);
    p += strlen("OpenBLAS core ");
    size_t len = strcspn(p, " \n");
    assert_true(len > 0 && len < size);
    memcpy(buf, p, len);
    buf[len] = '\0';
}

/* With no OPENBLAS_CORETYPE the tool runs on kernels as strong as the CPU
 * supports: as detected, or by re-executing itself once; a user's own
 * OPENBLAS_CORETYPE always wins. */
static void test_openblas_core(void **state)
{
    (void)state;
    char *saved = getenv("OPENBLAS_CORETYPE");
    saved = saved ? strdup(saved) : NULL;
    const char *best = cpu_best_core();
    char core[64];

    unsetenv("OPENBLAS_CORETYPE");
    version_core(core, sizeof core);
    printf("  best core for this CPU %s, in use %s\n", best ? best : "n/a", core);
    if (best)
        assert_true(cpu_core_rank(core) >= cpu_core_rank(best));

    /* OpenBLAS "detects" Prescott: vae sets the best core and re-executes. */
    if (best) {
        setenv(CPU_TEST_DETECTED_ENV, "Prescott", 1);
        version_core(core, sizeof core);
        unsetenv(CPU_TEST_DETECTED_ENV);
        assert_string_equal(core, best);
        tu_assert_contains(out_text, "chosen by vae: OpenBLAS detected Prescott");
        /* The re-executed process ran the command it was given. */
        setenv(CPU_TEST_DETECTED_ENV, "Prescott", 1);
        int rc = run("sample", "--n", "0", NULL);
        unsetenv(CPU_TEST_DETECTED_ENV);
        assert_exit(rc, 2);
        tu_assert_contains(err_text, "--n: must be at least 1");
    }

    /* The user's choice wins, even a weak one. */
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    setenv(CPU_TEST_DETECTED_ENV, "Prescott", 1);
    version_core(core, sizeof core);
    unsetenv(CPU_TEST_DETECTED_ENV);
    assert_string_equal(core, "Prescott");
    tu_assert_contains(out_text, "OPENBLAS_CORETYPE=Prescott set by the user");

    if (saved)
        setenv("OPENBLAS_CORETYPE", saved, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    free(saved);
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_exit(run(NULL), 2);
    tu_assert_contains(out_text, "usage: vae COMMAND");

    assert_exit(run("fly", NULL), 2);
    tu_assert_contains(err_text, "unknown command 'fly'");

    struct {
        const char *args[4];
        const char *msg;
    } cases[] = {
        {{"train", "--epochs", "0"}, "--epochs: must be at least 1, not 0"},
        {{"train", "--epochs", "-3"}, "--epochs: '-3' is not a whole number"},
        {{"train", "--epochs", "ten"}, "--epochs: 'ten' is not a whole number"},
        {{"train", "--batch", "99999999999999999999999"}, "--batch"},
        {{"train", "--lr", "0"}, "--lr: 0 must be above 0"},
        {{"train", "--lr", "fast"}, "--lr: 'fast' is not a number"},
        {{"train", "--wings"}, "unknown option '--wings'"},
        {{"train", "--data"}, "--data needs a value"},
        {{"train", "--json=1"}, "--json takes no value"},
        {{"train", "--seed", "1", "--seed"}, "--seed given twice"},
        {{"sample", "--n", "0"}, "--n: must be at least 1, not 0"},
        {{"sample", "--epochs", "3"}, "unknown option '--epochs'"},
        {{"eval", "stray"}, "unexpected argument 'stray'"},
        {{"train", "--hidden", "400,,400"}, "--hidden"},
        {{"train", "--act", "sigmoid"}, "--act: 'sigmoid' is not relu, tanh or leaky"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char **a = cases[i].args;
        assert_exit(run(a[0], a[1], a[2], a[3], NULL), 2);
        tu_assert_contains(err_text, cases[i].msg);
        char see[64];
        snprintf(see, sizeof see, "(see 'vae %s --help')", a[0]);
        tu_assert_contains(err_text, see);
        assert_string_equal(out_text, "");
    }
}

/* ------------------------------------------------------------------------ */
/* train                                                                    */

static void test_train_json_and_files(void **state)
{
    (void)state;
    char out[160], ckpt[160], path[256];
    in_dir(out, sizeof out, "json-out");
    in_dir(ckpt, sizeof ckpt, "json.bin");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out,
                    "--epochs", "2", "--batch", "64", "--hidden", "64",
                    "--latent", "4", "--json", "--threads", "1", NULL), 0);
    /* One JSON object per line, one line per epoch, nothing else. */
    char *lines[3] = {0};
    size_t n = 0;
    for (char *s = strtok(out_text, "\n"); s; s = strtok(NULL, "\n")) {
        assert_true(n < 3);
        lines[n++] = s;
    }
    assert_int_equal(n, 2);
    const char *keys[] = {"epoch", "train_loss", "train_bce", "train_kl",
                          "test_loss", "seconds", "images_per_s"};
    for (size_t i = 0; i < n; i++) {
        assert_true(lines[i][0] == '{' && lines[i][strlen(lines[i]) - 1] == '}');
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (!isfinite(json_num(lines[i], keys[k])))
                fail_msg("no \"%s\" in %s", keys[k], lines[i]);
        assert_true(json_num(lines[i], "epoch") == (double)(i + 1));
        double loss = json_num(lines[i], "train_loss");
        assert_true(fabs(loss - json_num(lines[i], "train_bce") -
                         json_num(lines[i], "train_kl")) < 1e-4);
        assert_true(json_num(lines[i], "seconds") > 0.0);
        /* images_per_s is the epoch's images over its training seconds. */
        double ips = (double)N_TRAIN / json_num(lines[i], "seconds");
        assert_true(fabs(json_num(lines[i], "images_per_s") - ips) < 0.01 * ips + 1.0);
    }
    double test_loss2 = json_num(lines[1], "test_loss");
    assert_string_equal(err_text, "");

    /* 128 samples, 8 a row, 28 px tiles and 2 px padding: 242 x 482;
     * 32 test images beside their reconstructions: 64 tiles, 242 x 242. */
    for (int e = 1; e <= 2; e++) {
        snprintf(path, sizeof path, "%s/sampled-%d.png", out, e);
        assert_png_size(path, 242, 482);
        snprintf(path, sizeof path, "%s/reconst-%d.png", out, e);
        assert_png_size(path, 242, 242);
    }
    /* The metrics: a CSV row per epoch, and the loss curve beside it. */
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    char *csv = (char *)tu_read_file(path, NULL);
    tu_assert_contains(csv, "epoch,train_loss,train_rec,train_kl,test_loss");
    tu_assert_contains(csv, "\n1,");
    tu_assert_contains(csv, "\n2,");
    free(csv);
    snprintf(path, sizeof path, "%s/metrics.png", out);
    uint8_t *px;
    size_t pw, ph;
    err_msg perr;
    if (png_grid_read_gray(path, &px, &pw, &ph, &perr))
        fail_msg("the loss curve: %s", perr.text);
    free(px);
    assert_true(pw == 800 && ph == 500);
    /* The run's page and, as the run finished, its latent map with the
     * points; nothing else in the folder: no temp files left behind. */
    snprintf(path, sizeof path, "%s/index.html", out);
    assert_true(tu_exists(path));
    snprintf(path, sizeof path, "%s/latent.png", out);
    assert_true(tu_exists(path));
    assert_int_equal(tu_count_entries(out, NULL, 0), 9);

    /* The checkpoint holds the run; eval of it gives the test loss train
     * printed (same seed, so the same eps; only GEMM blocking differs). */
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.train.epoch, 2);
    assert_int_equal(d.cfg.hidden[0], 64);
    assert_int_equal(d.cfg.z_dim, 4);
    ckpt_data_free(&d);
    assert_exit(run("eval", "--data", data, "--ckpt", ckpt, "--json", NULL), 0);
    double eval_loss = json_num(out_text, "test_loss");
    printf("  train's test_loss %.5f, eval's %.5f\n", test_loss2, eval_loss);
    assert_true(fabs(eval_loss - test_loss2) < 1e-3 * test_loss2);
    assert_true(json_num(out_text, "n") == N_TEST);
}

static void test_train_human_output(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "human-out");
    in_dir(ckpt, sizeof ckpt, "human.bin");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out,
                    "--epochs", "1", "--batch", "100", "--hidden", "32",
                    "--latent", "2", NULL), 0);
    tu_assert_contains(out_text, "epoch 1/1  train ");
    tu_assert_contains(out_text, " test ");
    tu_assert_contains(out_text, "img/s");
    tu_assert_contains(out_text, "saved ");
    /* stdout is a file, not a terminal: no progress bar. */
    assert_null(strchr(out_text, '\r'));
    assert_null(strstr(out_text, "ETA"));
}

/* On a terminal the epoch shows a progress bar with images/s and an ETA. */
static void test_progress_bar_on_tty(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "tty-out");
    in_dir(ckpt, sizeof ckpt, "tty.bin");
    int master, slave;
    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(master);
        if (dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
            _exit(99);
        /* batch 1: 300 steps, so the bar is drawn more than once. */
        execl(vae_bin, vae_bin, "train", "--data", data, "--ckpt", ckpt, "--out",
              out, "--epochs", "1", "--batch", "1", "--hidden", "16", "--latent",
              "2", (char *)NULL);
        _exit(98);
    }
    close(slave);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    for (;;) {
        ssize_t r = read(master, buf + len, cap - len);
        if (r <= 0) /* EIO once the child has closed the terminal */
            break;
        len += (size_t)r;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    close(master);
    int rc = wait_status(pid);
    if (rc != 0)
        fail_msg("exit %d; terminal output:\n%s", rc, buf);
    tu_assert_contains(buf, "\repoch 1/1 [");
    tu_assert_contains(buf, "img/s  ETA ");
    tu_assert_contains(buf, "epoch 1/1  train ");
    free(buf);
}

static void test_resume_matches_straight_run(void **state)
{
    (void)state;
    char out[160], straight[160], resumed[160];
    in_dir(out, sizeof out, "resume-out");
    in_dir(straight, sizeof straight, "straight.bin");
    in_dir(resumed, sizeof resumed, "resumed.bin");
#define ARGS "--data", data, "--out", out, "--batch", "64", "--hidden", "48", \
             "--latent", "3", "--seed", "5", "--threads", "2"
    assert_exit(run("train", ARGS, "--ckpt", straight, "--epochs", "2", NULL), 0);
    assert_exit(run("train", ARGS, "--ckpt", resumed, "--epochs", "1", NULL), 0);
#undef ARGS
    /* The resumed run takes its settings from the checkpoint. */
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", resumed,
                    "--epochs", "2", "--resume", "--threads", "2", NULL), 0);
    tu_assert_contains(out_text, "epoch 2/2");
    tu_assert_same_file(straight, resumed);

    /* Resuming a finished run, or with other settings, is refused. */
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", resumed,
                    "--epochs", "2", "--resume", NULL), 2);
    tu_assert_contains(err_text, "already has 2 epochs");
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", resumed,
                    "--epochs", "3", "--resume", "--batch", "32", NULL), 2);
    tu_assert_contains(err_text, "--batch given other than");
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", resumed,
                    "--epochs", "3", "--resume", "--latent", "9", NULL), 2);
    tu_assert_contains(err_text, "--latent given other than");
}

static void test_train_input_errors(void **state)
{
    (void)state;
    char out[160], ckpt[160], missing[160];
    in_dir(out, sizeof out, "err-out");
    in_dir(ckpt, sizeof ckpt, "err.bin");
    in_dir(missing, sizeof missing, "no-such-folder");

    assert_exit(run("train", "--data", missing, "--ckpt", ckpt, "--out", out,
                    "--epochs", "1", NULL), 1);
    tu_assert_contains(err_text, missing);
    tu_assert_contains(err_text, "train-images-idx3-ubyte");
    assert_false(tu_exists(ckpt));

    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out,
                    "--epochs", "1", "--batch", "301", NULL), 2);
    tu_assert_contains(err_text, "--batch 301: larger than the training set (300 images");
    assert_false(tu_exists(ckpt));

    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out,
                    "--epochs", "1", "--resume", NULL), 1);
    tu_assert_contains(err_text, ckpt);
    assert_false(tu_exists(ckpt));

    /* --out naming a file, not a folder. */
    char file[160];
    in_dir(file, sizeof file, "plain-file");
    tu_write_file(file, "x", 1);
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", file,
                    "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "--out");
    tu_assert_contains(err_text, "not a folder");
    /* Nothing was created by the failed runs: no checkpoint, no --out. */
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
}

/* ------------------------------------------------------------------------ */
/* sample, reconstruct, eval                                                */

static void test_sample(void **state)
{
    (void)state;
    train_small_model();
    char png[160], png2[160];
    in_dir(png, sizeof png, "s10.png");
    in_dir(png2, sizeof png2, "s10b.png");
    assert_exit(run("sample", "--ckpt", model, "--n", "10", "-o", png, NULL), 0);
    tu_assert_contains(out_text, png);
    assert_png_size(png, 242, 62); /* 10 tiles: 8 + 2, two rows */

    /* Same seed, same picture; another seed, another. */
    assert_exit(run("sample", "--ckpt", model, "--n", "10", "--output", png2, NULL), 0);
    size_t n1, n2;
    unsigned char *a = tu_read_file(png, &n1), *b = tu_read_file(png2, &n2);
    assert_true(n1 == n2 && memcmp(a, b, n1) == 0);
    free(b);
    assert_exit(run("sample", "--ckpt", model, "--n", "10", "--seed", "2", "-o",
                    png2, NULL), 0);
    b = tu_read_file(png2, &n2);
    assert_false(n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);

    /* The default: 128 images. */
    in_dir(png, sizeof png, "s128.png");
    assert_exit(run("sample", "--ckpt", model, "-o", png, NULL), 0);
    assert_png_size(png, 242, 482);
}

static void test_reconstruct_and_eval(void **state)
{
    (void)state;
    train_small_model();
    char png[160];
    in_dir(png, sizeof png, "rec.png");
    assert_exit(run("reconstruct", "--ckpt", model, "--data", data, "--n", "4",
                    "-o", png, NULL), 0);
    assert_png_size(png, 242, 32); /* 4 pairs: 8 tiles, one row */
    tu_assert_contains(out_text, "4 test images");

    assert_exit(run("eval", "--ckpt", model, "--data", data, NULL), 0);
    tu_assert_contains(out_text, "test loss ");
    tu_assert_contains(out_text, "nats/image");
    tu_assert_contains(out_text, "on 100 images");
    double loss = strtod(strstr(out_text, "test loss ") + 10, NULL);
    /* An untrained model scores ~543 nats (784 ln 2); this one learned. */
    printf("  test loss of the small model: %.2f\n", loss);
    assert_true(loss > 0.0 && loss < 300.0);

    /* --active-units: the same count in text and JSON, of the 4 latent units,
     * and the same loss as without it (the same draws). */
    assert_exit(run("eval", "--ckpt", model, "--data", data, "--active-units", "--json",
                    NULL), 0);
    const char *au = strstr(out_text, "\"active_units\":[");
    assert_non_null(au);
    int active = atoi(au + strlen("\"active_units\":["));
    tu_assert_contains(out_text, "\"latent\":[4]");
    assert_true(active >= 0 && active <= 4);
    assert_true(fabs(json_num(out_text, "test_loss") - loss) < 1e-3);
    char want[64];
    snprintf(want, sizeof want, "active units: %d of 4 (", active);
    assert_exit(run("eval", "--ckpt", model, "--data", data, "--active-units", NULL), 0);
    tu_assert_contains(out_text, want);
    printf("  active units of the small model: %d of 4\n", active);
}

static void test_checkpoint_errors(void **state)
{
    (void)state;
    train_small_model();
    char bad[160], png[160], missing[160];
    in_dir(bad, sizeof bad, "bad.bin");
    in_dir(png, sizeof png, "never.png");
    in_dir(missing, sizeof missing, "missing.bin");

    assert_exit(run("sample", "--ckpt", missing, "-o", png, NULL), 1);
    tu_assert_contains(err_text, missing);
    assert_false(tu_exists(png));

    tu_write_file(bad, "hello, not a checkpoint", 23);
    assert_exit(run("sample", "--ckpt", bad, "-o", png, NULL), 1);
    tu_assert_contains(err_text, "not a vae checkpoint");
    assert_false(tu_exists(png));

    /* One flipped byte in the middle of the parameters. */
    size_t n;
    unsigned char *b = tu_read_file(model, &n);
    b[n / 2] ^= 0x10;
    tu_write_file(bad, b, n);
    free(b);
    assert_exit(run("eval", "--ckpt", bad, "--data", data, NULL), 1);
    tu_assert_contains(err_text, bad);
    tu_assert_contains(err_text, "corrupt");
    assert_exit(run("reconstruct", "--ckpt", bad, "--data", data, "-o", png, NULL), 1);
    tu_assert_contains(err_text, "CRC32");
    assert_false(tu_exists(png));
}

static void test_output_errors_keep_old_file(void **state)
{
    (void)state;
    train_small_model();
    char png[160], nodir[200];
    in_dir(png, sizeof png, "keep.png");
    tu_write_file(png, "old", 3);

    assert_exit(run("sample", "--ckpt", model, "-o", "/dev/full", NULL), 1);
    tu_assert_contains(err_text, "/dev/full");

    snprintf(nodir, sizeof nodir, "%s/no-such-folder/x.png", dir);
    assert_exit(run("sample", "--ckpt", model, "-o", nodir, NULL), 1);
    tu_assert_contains(err_text, nodir);

    assert_exit(run("sample", "--ckpt", model, "-o", dir, NULL), 2);
    tu_assert_contains(err_text, "is a folder");

    /* Failed writes touched neither the old file nor left temp files. */
    tu_assert_file_equals(png, "old", 3);
    char hidden[256];
    tu_count_entries(dir, hidden, sizeof hidden);
    assert_string_equal(hidden, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_man_page_matches_help),
        cmocka_unit_test(test_every_setting_round_trips),
        cmocka_unit_test(test_openblas_core),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_train_json_and_files),
        cmocka_unit_test(test_train_human_output),
        cmocka_unit_test(test_progress_bar_on_tty),
        cmocka_unit_test(test_resume_matches_straight_run),
        cmocka_unit_test(test_train_input_errors),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_reconstruct_and_eval),
        cmocka_unit_test(test_checkpoint_errors),
        cmocka_unit_test(test_output_errors_keep_old_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
