/* cmd_train.c - 'vae train' and 'vae bench' (see src/cli/cli.h). */
#define _DEFAULT_SOURCE /* dirfd */
#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cpu.h"
#include "dist.h"
#include "infer.h"
#include "lock.h"
#include "metrics.h"
#include "par.h"
#include "report.h"
#include "runout.h"
#include "train.h"

/* ===================================================================== */
/* Signals and progress                                                   */
/* ===================================================================== */

static volatile sig_atomic_t stop_signal;

/* The signals that stop training with its exact state saved. */
static const struct {
    int sig;
    const char *name;
} STOP_SIGNALS[] = {{SIGINT, "SIGINT"}, {SIGTERM, "SIGTERM"}, {SIGHUP, "SIGHUP"},
                    {SIGXCPU, "SIGXCPU"}};

/* The first SIGINT, SIGTERM, SIGHUP (the terminal closed) or SIGXCPU (a
 * CPU time limit's warning, ulimit -t) asks training to stop after the
 * step under way (it then saves and exits); a second one ends the process
 * at once. Either way the checkpoint on disk stays whole: writes are
 * atomic. */
static void on_signal(int sig)
{
    if (stop_signal) {
        /* Past a CPU time limit's soft end SIGXCPU comes every second
         * until the hard end: only another signal quits at once. */
        if (sig == SIGXCPU)
            return;
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

/* Training's reports go to standard output through say(), not stdio: a
 * reader that stops reading (a stalled pipe) must not hold up a run that
 * is asked to stop. say() waits for room at most SAY_WAIT_MS at a time and
 * looks at stop_signal in between; a line of at most SAY_MAX bytes then
 * goes out in one write that does not wait (poll's POLLOUT on a pipe means
 * a free page). A report that cannot be written (a full disk, a closed
 * pipe: main ignores SIGPIPE) stops the run as a signal would: saved
 * exactly, with a non-zero exit. SIGPIPE stands for it in stop_signal. */
#define SAY_WAIT_MS 100
#define SAY_MAX 2048
static int stdout_errno;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    char text[SAY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    for (size_t done = 0; done < len && !stdout_errno;) {
        struct pollfd p = {STDOUT_FILENO, POLLOUT, 0};
        int ready = poll(&p, 1, SAY_WAIT_MS);
        if (ready <= 0) {
            if (stop_signal)
                return; /* asked to stop: the rest of the line is dropped */
            if (ready == 0 || errno == EINTR)
                continue;
        }
        ssize_t w = write(STDOUT_FILENO, text + done, len - done);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        stdout_errno = w < 0 ? errno : EIO;
        if (!stop_signal)
            stop_signal = SIGPIPE;
    }
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof STOP_SIGNALS / sizeof *STOP_SIGNALS; i++)
        sigaction(STOP_SIGNALS[i].sig, &sa, NULL);
}

/* The name of a stop signal, for the message. */
static const char *stop_name(int sig)
{
    for (size_t i = 0; i < sizeof STOP_SIGNALS / sizeof *STOP_SIGNALS; i++)
        if (STOP_SIGNALS[i].sig == sig)
            return STOP_SIGNALS[i].name;
    return "a signal";
}

typedef struct progress_ctx {
    int tty;
    double last;
    size_t best_epoch; /* the last report's (0: no validation set) */
    runout out;        /* OUT: pictures, metrics, the page */
    lock_file *lock;   /* the checkpoint's, moved to each new save */
    const cli_opts *o; /* the command's options */
    const char *target; /* the file the saves land on (--ckpt's, resolved once) */
} progress_ctx;

static void on_warn(void *vctx, const char *msg);

static void on_progress(void *vctx, size_t epoch, size_t done, size_t total,
                        double seconds)
{
    progress_ctx *ctx = vctx;
    double t = cli_now();
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
    say("\repoch %zu/%zu [%s] %zu/%zu  %.0f img/s  ETA %.1fs\033[K", epoch, ctx->o->epochs, bar,
        done, total, rate, eta);
}

/* The epoch's metrics row, curve and page, before its checkpoint. */
static int on_record(void *vctx, const train_report *r, err_msg *err)
{
    progress_ctx *ctx = vctx;
    return runout_epoch(&ctx->out, r, err);
}

/* The epoch's line, once its checkpoint is saved. */
static int on_epoch(void *vctx, const train_report *r, err_msg *err)
{
    progress_ctx *ctx = vctx;
    (void)err;
    ctx->best_epoch = r->best_epoch;
    if (ctx->tty)
        say("\r\033[K");
    if (ctx->o->json) {
        /* rec is -log p(x|z); for the Bernoulli likelihood it is the BCE. */
        char bce[96] = "";
        if (r->likelihood == MODEL_LIK_BERNOULLI)
            snprintf(bce, sizeof bce, "\"train_bce\":%.6f,\"test_bce\":%.6f,",
                     r->train_rec, r->test_rec);
        char valid[160] = "";
        if (r->best_epoch)
            snprintf(valid, sizeof valid, "\"valid_loss\":%.6f,\"valid_rec\":%.6f,"
                     "\"valid_kl\":%.6f,\"best_epoch\":%zu,", r->valid_loss, r->valid_rec,
                     r->valid_kl, r->best_epoch);
        say("{\"epoch\":%zu,\"epochs\":%zu,\"train_loss\":%.6f,\"train_rec\":%.6f,"
               "\"train_kl\":%.6f,\"test_loss\":%.6f,\"test_rec\":%.6f,\"test_kl\":%.6f,"
               "%s%s\"train_objective\":%.6f,\"beta\":%g,\"kl_factor\":%.9g,\"lr\":%.9g,"
               "\"likelihood\":\"%s\",\"seconds\":%.6f,\"images_per_s\":%.1f}\n",
               r->epoch, r->epochs, r->train_loss, r->train_rec, r->train_kl,
               r->test_loss, r->test_rec, r->test_kl, valid, bce,
               r->train_objective, r->beta,
               r->kl_factor, r->lr, model_lik_name(r->likelihood), r->seconds,
               r->images_per_s);
    } else {
        char valid[64] = "";
        if (r->best_epoch)
            snprintf(valid, sizeof valid, "  valid %.2f%s", r->valid_loss,
                     r->best_epoch == r->epoch ? " (best)" : "");
        say("epoch %zu/%zu  train %.2f (rec %.2f, kl %.2f)  test %.2f%s  "
               "%.2fs  %.0f img/s\n", r->epoch, r->epochs, r->train_loss,
               r->train_rec, r->train_kl, r->test_loss, valid, r->seconds,
               r->images_per_s);
    }
    return 0;
}

/* Training begins, and each epoch's pictures: the output folder's. */
static int on_begin(void *vctx, const train_epoch *e, err_msg *err)
{
    progress_ctx *ctx = vctx;
    return runout_begin(&ctx->out, e, err);
}

static int on_pictures(void *vctx, const train_epoch *e, err_msg *err)
{
    progress_ctx *ctx = vctx;
    return runout_pictures(&ctx->out, e, err);
}

static void on_warn(void *vctx, const char *msg)
{
    (void)vctx;
    fprintf(stderr, "vae train: warning: %s\n", msg);
}

/* A save made a new checkpoint file: the lock moves onto it at once. */
static void on_saved(void *vctx)
{
    progress_ctx *ctx = vctx;
    err_msg err;
    if (lock_follow(ctx->lock, ctx->target, &err))
        on_warn(ctx, err.text);
}

/* ===================================================================== */
/* train                                                                  */
/* ===================================================================== */

/* The options of a new run, from the command line. */
static train_opts run_opts(cli_opts *o)
{
    train_opts to = o->run; /* the settings and controls, parsed there */
    to.epochs = o->epochs;
    to.cfg = o->cfg;
    return to;
}

static int train_locked(cli_opts *o, const char *csv, const char *best,
                        const char *replacing, lock_file *lock, const char *target);

/* A run that made --out and then failed without saving: the folder goes,
 * with what the run wrote into it (pictures of an epoch it never saved).
 * Anything else found there keeps the folder, and the user is told. */
static void unmake_out(cli_opts *o, const char *csv, const char *plot)
{
    DIR *d = opendir(o->out);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (runout_owns(e->d_name, csv, plot))
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    if (rmdir(o->out) != 0 && errno != ENOENT)
        say_error("note: left the folder %s, made by this run: it holds files "
                  "this run did not write", o->out);
}

/* The checkpoint's file as it is now (0: none), to tell after a failure
 * whether the run saved. */
static ino_t ckpt_inode(const char *target)
{
    struct stat st;
    return stat(target, &st) == 0 ? st.st_ino : 0;
}

/* --out: made now if missing (*made says so), and locked, so that a second
 * run into the same folder is refused before either spends an epoch.
 * Returns 0, or -1 after a message. */
static int take_out_folder(cli_opts *o, lock_file *l, int *made)
{
    *made = 0;
    if (mkdir(o->out, 0777) == 0)
        *made = 1;
    else if (errno != EEXIST) {
        say_error("--out %s: cannot create the folder: %s", o->out, strerror(errno));
        return -1;
    } else if (access(o->out, W_OK | X_OK) != 0) { /* else found after an epoch */
        say_error("--out %s: cannot write in the folder: %s", o->out, strerror(errno));
        return -1;
    }
    err_msg err;
    if (lock_take_folder(l, o->out, "--out", &err)) {
        if (*made)
            rmdir(o->out);
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

/* A schedule's own options go with that schedule; a cosine warm-up must
 * end before the run does. Returns 0, or -1 after a usage error. */
static int check_schedule_options(cli_opts *o)
{
    schedule_kind k = o->run.set.sched.kind;
    uint64_t given;
    unsigned model;
    cli_given(o, &given, &model);
    /* A resumed run's settings are its checkpoint's: what it is given is
     * compared with them once it is read. */
    for (int i = 0; i < SETTING_COUNT && !o->set[O_RESUME]; i++)
        if ((given >> i & 1) && SETTINGS[i].needs &&
            !settings_applies(&o->run.set, (setting_id)i))
            return usage_error("%s applies to %s", SETTINGS[i].option, SETTINGS[i].needs);
    if (o->run.set.objective == MODEL_OBJ_IWAE && o->set[O_BETA] && o->run.set.beta != 1.0)
        return usage_error("--beta: the importance-weighted bound has no KL weight "
                           "(use --objective elbo)");
    if (k == SCHEDULE_COSINE && !o->set[O_RESUME] && o->run.set.sched.warmup >= o->epochs)
        return usage_error("--warmup %llu: the cosine schedule's warm-up must be "
                           "shorter than the run (%zu epochs)",
                           (unsigned long long)o->run.set.sched.warmup, o->epochs);
    return 0;
}

/* CKPT.best.bin: the best epoch's model beside the run's checkpoint ("vae.bin"
 * gives "vae.best.bin"; a name without ".bin" gets ".best.bin" added). */
static void best_path(char *out, size_t len, const char *ckpt)
{
    /* Through a link, beside the file it points to: the run's own. */
    char real[8192];
    struct stat st;
    if (lstat(ckpt, &st) == 0 && S_ISLNK(st.st_mode) &&
        paths_resolve(ckpt, real, sizeof real) == 0)
        ckpt = real;
    size_t n = strlen(ckpt);
    if (n > 4 && !strcmp(ckpt + n - 4, ".bin"))
        n -= 4;
    snprintf(out, len, "%.*s.best.bin", (int)n, ckpt);
}

/* The file a save to --ckpt lands on now, into target (size bytes): its
 * links followed (paths_resolve), or as given for a device (/dev/null, a
 * FIFO), which is written in place. Returns whether it is a device. */
static int ckpt_file(const cli_opts *o, char *target, size_t size)
{
    struct stat st;
    int device = stat(o->ckpt, &st) == 0 &&
                 (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode));
    if (device || paths_resolve(o->ckpt, target, size) != 0)
        snprintf(target, size, "%s", o->ckpt);
    return device;
}

/* The folders of the files the run writes beside others', which it saves
 * after an epoch's work: --ckpt's (unless a device) and a --metrics file's
 * outside --out must be there and writable before training. */
static int check_write_folders(const cli_opts *o)
{
    err_msg err;
    char target[PATH_MAX];
    int device = ckpt_file(o, target, sizeof target);
    if ((!device && paths_check_folder("--ckpt", target, &err)) ||
        (o->set[O_METRICS] && paths_check_folder("--metrics", o->metrics, &err)))
        return usage_error("%s", err.text);
    return 0;
}

/* Every file the run reads or writes, none over another (a usage error). */
static int check_train_paths(cli_opts *o, const char *csv, const char *plot, const char *lock,
                             const char *best)
{
    paths_list l = {0};
    cli_add_split(o, &l, "train");
    cli_add_split(o, &l, "t10k");
    /* A checkpoint there already: check_no_earlier_run says what may go. */
    paths_add(&l, "--ckpt", o->ckpt, o->set[O_RESUME] ? PATHS_UPDATE : PATHS_REPLACE);
    paths_add(&l, "the lock file of --ckpt", lock, PATHS_WRITE);
    paths_add(&l, "the best epoch's checkpoint (--valid)", best, PATHS_REPLACE);
    paths_add(&l, "--metrics", csv, PATHS_WRITE);
    paths_add(&l, "the loss plot of --metrics", plot, PATHS_WRITE);
    paths_add_series(&l, "--out", o->out, RUNOUT_SAMPLED, RUNOUT_GRID_SUFFIX, 1, o->epochs);
    paths_add_series(&l, "--out", o->out, RUNOUT_RECONST, RUNOUT_GRID_SUFFIX, 1, o->epochs);
    char files[RUNOUT_N_PAGE_FILES][4096 + 16];
    for (size_t i = 0; i < RUNOUT_N_PAGE_FILES; i++) {
        snprintf(files[i], sizeof files[i], "%s/%s", o->out, RUNOUT_PAGE_FILES[i]);
        paths_add(&l, "the run's page in --out", files[i], PATHS_WRITE);
    }
    return cli_check_paths(&l) ? -1 : check_write_folders(o);
}

/* A new run never replaces another run's checkpoint unasked, nor, when it
 * keeps a best epoch (--valid), an earlier run's best model. Checked while
 * holding the lock, so no other run can slip in between. With --force,
 * what it replaces goes into replacing (size bytes; else it is left
 * empty), to say when the run starts. Returns 0, or the exit status after
 * a message. */
static int check_no_earlier_run(cli_opts *o, const char *best, char *replacing, size_t size)
{
    struct stat st;
    if (o->set[O_RESUME])
        return 0;
    if (o->run.set.valid && !o->set[O_FORCE] && stat(best, &st) == 0 && S_ISREG(st.st_mode)) {
        usage_error("%s holds the best epoch of an earlier run; a new run with --valid "
                    "would replace it. Continue that run with --resume, train into "
                    "another --ckpt, or give --force to replace it", best);
        return EXIT_USAGE;
    }
    if (stat(o->ckpt, &st) != 0 || !S_ISREG(st.st_mode))
        return 0; /* nothing there (or a device such as /dev/null) */
    ckpt_data d;
    err_msg err;
    char what[160];
    if (ckpt_read(o->ckpt, &d, &err) == 0) {
        snprintf(what, sizeof what, "holds a run of %llu epoch%s%s",
                 (unsigned long long)d.train.epoch, d.train.epoch == 1 ? "" : "s",
                 d.train.step ? " and part of the next" : "");
        ckpt_data_free(&d);
    } else {
        snprintf(what, sizeof what, "exists and is not a checkpoint vae can read");
    }
    if (o->set[O_FORCE]) {
        /* Said once the new run is about to start (train_locked). */
        snprintf(replacing, size, "--force: %s %s; the new run replaces it",
                 o->ckpt, what);
        return 0;
    }
    usage_error("--ckpt %s %s; a new run would replace it. Continue that run "
                "with --resume, train into another --ckpt, or give --force to "
                "replace it", o->ckpt, what);
    return EXIT_USAGE;
}

/* s as one shell word: as it is when every byte is safe, else in single
 * quotes (a quote inside as '\''). */
static void put_word(FILE *f, const char *s)
{
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789_-+=.,/:@%") == strlen(s)) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    fputc('\'', f);
}

/* The command that continues a stopped run, with the options given that
 * it needs to go on the same way: the files and folders, and the team size
 * (the bits depend on it). */
static void print_continue(FILE *f, const cli_opts *o)
{
    fputs("vae train --resume --ckpt ", f);
    put_word(f, o->ckpt);
    fprintf(f, " --epochs %zu", o->epochs);
    const int named[] = {O_DATA, O_OUT, O_METRICS};
    const char *value[] = {o->data, o->out, o->metrics};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        if (o->set[named[i]]) {
            fprintf(f, " %s ", cli_option_name(named[i]));
            put_word(f, value[i]);
        }
    if (o->set[O_THREADS])
        fprintf(f, " --threads %zu", o->threads);
    fputc('\n', f);
}

int cmd_train(cli_opts *o)
{
    if (o->set[O_FORCE] && o->set[O_RESUME]) {
        usage_error("--force and --resume: --force starts a new run, --resume "
                    "continues one; give one of them");
        return EXIT_USAGE;
    }
    if (o->set[O_NEW_DATA] && !o->set[O_RESUME]) {
        usage_error("--new-data applies to a resumed run (with --resume)");
        return EXIT_USAGE;
    }
    if (check_schedule_options(o))
        return EXIT_USAGE;
    /* Paths the file system cannot take, refused before an epoch is spent:
     * the files written in --out, and temp names beside each, are up to
     * TRAIN_NAME_ROOM bytes longer. */
    enum { TRAIN_NAME_ROOM = 64 };
    const struct { const char *opt, *path; } given[] = {
        {"--out", o->out}, {"--ckpt", o->ckpt}, {"--metrics", o->metrics}};
    for (size_t i = 0; i < sizeof given / sizeof *given; i++)
        if (given[i].path && strlen(given[i].path) + TRAIN_NAME_ROOM >= PATH_MAX) {
            usage_error("%s: a path of %zu bytes, too long for the files the run writes "
                        "(at most %d)", given[i].opt, strlen(given[i].path),
                        PATH_MAX - 1 - TRAIN_NAME_ROOM);
            return EXIT_USAGE;
        }
    char csv[PATH_MAX], plot[PATH_MAX + 8], lock_name[2 * PATH_MAX], best[PATH_MAX + 16];
    if (o->metrics)
        snprintf(csv, sizeof csv, "%s", o->metrics);
    else
        snprintf(csv, sizeof csv, "%s/metrics.csv", o->out);
    char *png = metrics_png_path(csv);
    if (!png) {
        say_error("out of memory");
        return 1;
    }
    if (lock_path(lock_name, sizeof lock_name, o->ckpt)) {
        free(png);
        usage_error("--ckpt %s: path too long for its lock file beside it", o->ckpt);
        return EXIT_USAGE;
    }
    snprintf(plot, sizeof plot, "%s", png);
    free(png);
    best_path(best, sizeof best, o->ckpt);
    if (check_train_paths(o, csv, plot, lock_name, best))
        return EXIT_USAGE;
    /* A device (/dev/null) as --ckpt has nothing to protect: no lock file
     * beside it. */
    lock_file lock = LOCK_NONE, out_lock = LOCK_NONE;
    err_msg err;
    char target[PATH_MAX];
    int device = ckpt_file(o, target, sizeof target);
    /* Under mpirun rank 0 alone writes the checkpoint, so it alone locks. */
    if (!device && dist_rank() == 0 && lock_take(&lock, o->ckpt, &err)) {
        say_error("%s", err.text);
        return 1;
    }
    /* The file the saves land on, fixed now that the lock is held: a link
     * given as --ckpt and pointed elsewhere during the run does not carry
     * the run's saves onto another file. */
    device = ckpt_file(o, target, sizeof target);
    /* From here on a stop saves the run; before the output folder exists,
     * so that its appearing means they are in. */
    catch_signals();
    int made_out = 0;
    if (dist_rank() == 0 && take_out_folder(o, &out_lock, &made_out)) {
        lock_drop(&lock);
        return 1;
    }
    ino_t before = ckpt_inode(target);
    char replacing[320] = "";
    int rc = check_no_earlier_run(o, best, replacing, sizeof replacing);
    if (rc == 0)
        rc = train_locked(o, csv, best, replacing, &lock, target);
    /* A failed run that never saved leaves no folder it made. */
    if (rc != 0 && rc < 128 && made_out && ckpt_inode(target) == before)
        unmake_out(o, csv, plot);
    lock_drop(&out_lock);
    lock_drop(&lock);
    return rc;
}

/* The run itself, once the checkpoint is ours. */
static int train_locked(cli_opts *o, const char *csv, const char *best,
                        const char *replacing, lock_file *lock, const char *target)
{
    idx_set train = {0}, test = {0};
    if (cli_load_split(o, &train, "train") || cli_load_split(o, &test, "t10k") ||
        cli_same_shape(o, &train, &test) || cli_data_model(o, &o->cfg, &train)) {
        idx_free(&train);
        idx_free(&test);
        return 1;
    }
    if (!o->set[O_RESUME] && o->run.set.valid >= train.n) {
        usage_error("--valid %llu: the training set has %zu images in %s; hold out fewer",
                    (unsigned long long)o->run.set.valid, train.n, o->data);
        idx_free(&train);
        idx_free(&test);
        return EXIT_USAGE;
    }
    if (!o->set[O_RESUME] && o->run.set.batch > train.n - o->run.set.valid) {
        usage_error("--batch %zu: larger than the training set (%zu images in %s%s)",
                    o->run.set.batch, train.n - (size_t)o->run.set.valid, o->data,
                    o->run.set.valid ? ", less --valid" : "");
        idx_free(&train);
        idx_free(&test);
        return EXIT_USAGE;
    }
    if (cli_threads(o)) {
        idx_free(&train);
        idx_free(&test);
        return 1;
    }
    train_opts to = run_opts(o);
    to.resume = o->set[O_RESUME];
    to.new_data = o->set[O_NEW_DATA];
    /* The settings given, each of which a resumed run must already have. */
    cli_given(o, &to.given, &to.given_model);
    for (int p = 0; p < TRAIN_PART_COUNT; p++)
        to.part_option[p] = cli_part_option((train_model_part)p);
    to.data_name = o->data;
    to.ckpt_path = o->ckpt;
    to.save_path = target;
    to.best_path = best;
    to.stop = &stop_signal;
    progress_ctx ctx = {.tty = isatty(STDOUT_FILENO) && !o->json, .lock = lock, .o = o,
                        .target = target};
    report_run page = {o->out, o->ckpt, csv, o->data, o->epochs, par_threads(),
                       dist_size()};
    err_msg err;
    if (runout_open(&ctx.out, &page, on_warn, &ctx, &err)) {
        say_error("%s", err.text);
        idx_free(&train);
        idx_free(&test);
        return 1;
    }
    train_hooks hooks = {on_progress, on_epoch, on_warn, &ctx, on_saved, on_begin,
                         on_pictures, on_record};
    if (replacing[0] && !o->json)
        say("%s\n", replacing);
    int root = dist_rank() == 0; /* under mpirun, rank 0 alone writes and tells */
    int rc = train_run(&to, &train, &test, root ? &hooks : NULL, &err);
    idx_free(&train);
    if (!root) {
        idx_free(&test);
        runout_close(&ctx.out);
        if (rc == TRAIN_STOPPED)
            return 128 + (stop_signal ? (int)stop_signal : SIGTERM);
        if (rc)
            say_error("%s", err.text);
        return rc == TRAIN_REFUSED ? EXIT_USAGE : rc ? 1 : 0;
    }
    if (rc == 0 || rc == TRAIN_STOPPED) /* the page's last state */
        runout_finish(&ctx.out, rc == 0 ? REPORT_FINISHED : REPORT_STOPPED);
    runout_close(&ctx.out);
    idx_free(&test);
    if (ctx.tty)
        say("\r\033[K");
    if (rc == TRAIN_STOPPED) {
        int sig = (int)stop_signal;
        char why[128];
        if (sig == SIGPIPE)
            snprintf(why, sizeof why, "standard output failed (%s)", strerror(stdout_errno));
        else
            snprintf(why, sizeof why, "interrupted by %s",
                     sig ? stop_name(sig) : "a signal to another rank");
        fprintf(stderr, "vae train: %s; the exact state is saved in %s. Continue with: ",
                why, o->ckpt);
        print_continue(stderr, o);
        return sig == SIGPIPE ? 1 : 128 + (sig ? sig : SIGTERM);
    }
    if (rc) {
        say_error("%s", err.text);
        return rc == TRAIN_REFUSED ? EXIT_USAGE : 1;
    }
    if (!o->json)
        say("saved %s; images in %s/, metrics in %s, the run's page %s/%s\n", o->ckpt,
               o->out, csv, o->out, REPORT_PAGE);
    if (!o->json && ctx.best_epoch)
        say("lowest validation loss: epoch %zu, its model in %s\n", ctx.best_epoch,
               best);
    return 0;
}

/* ===================================================================== */
/* bench                                                                  */
/* ===================================================================== */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --iw K: the importance-weighted bound over the test set, timed against
 * its own sgemm calls replayed alone. */
static int bench_iw(cli_opts *o)
{
    idx_set test = {0};
    if (cli_load_split(o, &test, "t10k"))
        return 1;
    if (!o->set[O_CKPT] && cli_data_model(o, &o->cfg, &test)) {
        idx_free(&test);
        return 1;
    }
    model_net m;
    ckpt_train tr = {0};
    int have_ckpt = o->set[O_CKPT];
    if (have_ckpt ? cli_load_model(o, &m, &tr) : 0) {
        idx_free(&test);
        return 1;
    }
    err_msg err;
    if (!have_ckpt) {
        if (model_init(&m, &o->cfg, &err)) {
            say_error("%s", err.text);
            idx_free(&test);
            return 1;
        }
        rng_state r;
        rng_seed(&r, o->run.set.seed);
        model_init_params(&m, &r);
        tr.set.binarize = o->run.set.binarize;
    }
    int rc = 1;
    if (cli_threads(o) == 0) {
        idx_view view = infer_test_view(tr.set.binarize);
        infer_iw_result res;
        double t0 = cli_now();
        if (infer_iw(&m, &test, &view, o->iw, o->run.set.seed, 1, &res, &err)) {
            say_error("%s", err.text);
        } else {
            double wall = cli_now() - t0, ratio = res.work_s / res.gemm_s;
            char core[256];
            cpu_describe(core, sizeof core);
            if (o->json)
                printf("{\"iw\":%zu,\"images\":%zu,\"iw_nll\":%s,\"work_thread_seconds\":%.4f,"
                       "\"sgemm_floor_thread_seconds\":%.4f,\"ratio\":%.4f,"
                       "\"gflops_floor\":%.1f,\"wall_seconds\":%.3f,\"threads\":%zu}\n",
                       o->iw, test.n, cli_json(res.iw_nll, 6, 'f').s, res.work_s, res.gemm_s, ratio,
                       res.gemm_flops / res.gemm_s * 1e-9 * (double)par_threads(),
                       wall, par_threads());
            else
                printf("%s, %zu threads\nimportance-weighted bound, K = %zu, %zu test "
                       "images: %.4f nats/image\nwork %.3f thread-s  sgemm floor %.3f "
                       "thread-s  ratio %.3f  (%.1f GFLOP/s in sgemm; wall %.2fs with "
                       "the replays)\n", core, par_threads(), o->iw, test.n,
                       res.iw_nll, res.work_s, res.gemm_s, ratio,
                       res.gemm_flops / res.gemm_s * 1e-9 * (double)par_threads(), wall);
            rc = 0;
        }
    }
    model_free(&m);
    idx_free(&test);
    return rc;
}

int cmd_bench(cli_opts *o)
{
    /* Options that would be ignored are refused. */
    uint64_t given;
    unsigned model;
    cli_given(o, &given, &model);
    const char *ignored =
        o->set[O_IW] && o->set[O_CKPT] && model
            ? "--iw with --ckpt times the checkpoint's model: give no model options "
              "(--hidden, --latent, ...) with it"
        : !o->set[O_IW] && o->set[O_CKPT]
            ? "--ckpt applies to bench --iw (the bound of a trained model); training "
              "epochs are timed on a fresh model"
        : !o->set[O_IW] && o->run.plan == SHARD_UNITS &&
                  (o->cfg.z2_dim || o->cfg.arch == MODEL_ARCH_CONV)
            ? "--plan units: the units plan (threads splitting each layer) is for the MLP "
              "with one stochastic layer"
            : NULL;
    if (ignored) {
        usage_error("%s", ignored);
        return EXIT_USAGE;
    }
    /* --iw times the bound alone: no training, and a checkpoint's model
     * with its own binarization. */
    static const int NOT_WITH_IW[] = {O_EPOCHS, O_BATCH, O_LR, O_BETA, O_NOISE, O_SCHEDULE,
                                      O_WARMUP, O_LR_EVERY, O_LR_GAMMA, O_KL_WARMUP,
                                      O_ADAM_BETA1, O_ADAM_BETA2, O_ADAM_EPS, O_INIT,
                                      O_OBJECTIVE, O_K, O_ESTIMATOR, O_PLAN};
    for (size_t i = 0; o->set[O_IW] && i < sizeof NOT_WITH_IW / sizeof *NOT_WITH_IW; i++)
        if (o->set[NOT_WITH_IW[i]]) {
            usage_error("%s: bench --iw times the bound of a model, and trains nothing "
                        "(drop it)", cli_option_name(NOT_WITH_IW[i]));
            return EXIT_USAGE;
        }
    if (o->set[O_IW] && o->set[O_CKPT] && o->set[O_BINARIZE]) {
        usage_error("--binarize: bench --iw --ckpt uses the binarization the model in %s "
                    "was trained with (drop it)", o->ckpt);
        return EXIT_USAGE;
    }
    if (o->set[O_IW])
        return bench_iw(o);
    size_t rounds = o->epochs;
    if (rounds > 100) {
        usage_error("--epochs: at most 100 benchmark rounds");
        return EXIT_USAGE;
    }
    idx_set train = {0};
    if (cli_load_split(o, &train, "train"))
        return 1;
    if (o->run.set.batch > train.n) {
        usage_error("--batch %llu: the training set has %zu images in %s",
                    (unsigned long long)o->run.set.batch, train.n, o->data);
        idx_free(&train);
        return EXIT_USAGE;
    }
    if (cli_data_model(o, &o->cfg, &train) || cli_threads(o)) {
        idx_free(&train);
        return 1;
    }
    train_opts to = run_opts(o);
    err_msg err;
    train_bench_round r[100];
    double flops, ratio[100];
    int rc = train_bench(&to, &train, rounds, r, &flops, &err);
    size_t n_images = train.n;
    idx_free(&train);
    if (rc) {
        say_error("%s", err.text);
        return 1;
    }
    char core[256];
    cpu_describe(core, sizeof core);
    if (!o->json && dist_size() > 1)
        printf("%s, %zu ranks x %zu threads, batch %zu, %zu images/epoch\n", core,
               dist_size(), par_threads(), o->run.set.batch, n_images);
    else if (!o->json)
        printf("%s, %zu threads, batch %zu, %zu images/epoch\n", core,
               par_threads(), o->run.set.batch, n_images);
    for (size_t i = 0; i < rounds; i++) {
        ratio[i] = r[i].epoch_s / r[i].gemm_s;
        /* Under mpirun: rank 0's time in the step's collectives (the
         * gradient allgather, BatchNorm's and the losses' gathers). */
        double comm_ms = 1e3 * r[i].comm_s / (double)(r[i].steps ? r[i].steps : 1);
        if (dist_size() > 1 && o->json)
            printf("{\"round\":%zu,\"ranks\":%zu,\"allreduce_ms_per_step\":%.4f,"
                   "\"allreduce_seconds\":%.4f}\n", i + 1, dist_size(), comm_ms,
                   r[i].comm_s);
        else if (dist_size() > 1)
            printf("round %zu: %zu ranks, allreduce %.3f ms/step (%.3fs of the epoch)\n",
                   i + 1, dist_size(), comm_ms, r[i].comm_s);
        if (o->json)
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
    if (o->json)
        printf("{\"rounds\":%zu,\"median_ratio\":%.4f,\"core\":\"%s\",\"threads\":%zu}\n",
               rounds, med, cpu_openblas_core(), par_threads());
    else
        printf("median ratio epoch / sgemm floor: %.3f over %zu rounds\n", med, rounds);
    return 0;
}
