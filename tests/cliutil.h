/* cliutil.h - running the vae binary from cmocka tests: generated IDX data
 * sets, a scratch folder, spawning $VAE_BIN with captured stdout/stderr and
 * exit status. Include after <cmocka.h> and testutil.h; the including file
 * defines _DEFAULT_SOURCE (or _POSIX_C_SOURCE) first. */
#ifndef VAE_CLIUTIL_H
#define VAE_CLIUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include "ckpt.h"
#include "png_grid.h"
#include "rng.h"

#define CLI_MAX_ARGS 40
#define CLI_N_TRAIN 300
#define CLI_N_TEST 100

static const char *vae_bin;
static char dir[64];   /* scratch folder of the whole group */
static char data[128]; /* a good data set: CLI_N_TRAIN / CLI_N_TEST images */
static char out_path[160], err_path[160];
static char *out_text, *err_text; /* the last run's stdout and stderr */
/* NULL, or a launcher's argv (NULL-terminated) that runs the binary:
 * {"mpirun", "-np", "2", NULL} runs "mpirun -np 2 $VAE_BIN args". */
static const char *const *cli_prefix;

/* ------------------------------------------------------------------------ */
/* Data                                                                     */

static inline void cli_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes SPLIT-images-idx3-ubyte and SPLIT-labels-idx1-ubyte into folder:
 * n 28x28 images of one bright bar each (vertical or horizontal, at a
 * random place), labels 0-9 in turn. */
static inline void write_split(const char *folder, const char *split, size_t n,
                               uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    size_t img_len = 16 + n * 784, lab_len = 8 + n;
    unsigned char *img = calloc(img_len, 1), *lab = calloc(lab_len, 1);
    assert_non_null(img);
    assert_non_null(lab);
    cli_put_be32(img, 0x803);
    cli_put_be32(img + 4, (uint32_t)n);
    cli_put_be32(img + 8, 28);
    cli_put_be32(img + 12, 28);
    cli_put_be32(lab, 0x801);
    cli_put_be32(lab + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        unsigned char *px = img + 16 + i * 784;
        lab[8 + i] = (unsigned char)(i % 10);
        size_t pos = 4 + rng_below(&r, 20), vertical = i % 2;
        for (size_t k = 4; k < 24; k++) {
            size_t y = vertical ? k : pos, x = vertical ? pos : k;
            px[y * 28 + x] = 255;
            px[y * 28 + x + 1] = (unsigned char)(100 + rng_below(&r, 155));
        }
    }
    char path[256];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", folder, split);
    tu_write_file(path, img, img_len);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", folder, split);
    tu_write_file(path, lab, lab_len);
    free(img);
    free(lab);
}

/* ------------------------------------------------------------------------ */
/* Running the binary                                                       */

static inline void free_outputs(void)
{
    free(out_text);
    free(err_text);
    out_text = err_text = NULL;
}

/* Reaps pid; returns its exit code, or 128 + signal if it was killed. */
static inline int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs in the child between fork and exec (set limits, signals, ...). */
typedef void (*cli_child_fn)(void);

/* Starts vae with the argument list (argv[0] excluded, NULL-terminated),
 * stdout and stderr into out_path and err_path. Returns the pid. */
static inline pid_t spawn_v(cli_child_fn child, const char *first, va_list ap)
{
    const char *argv[CLI_MAX_ARGS + 2];
    size_t n = 0;
    for (size_t i = 0; cli_prefix && cli_prefix[i]; i++) {
        assert_true(n < CLI_MAX_ARGS);
        argv[n++] = cli_prefix[i];
    }
    argv[n++] = vae_bin;
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        assert_true(n < CLI_MAX_ARGS);
        argv[n++] = a;
    }
    argv[n] = NULL;
    /* Emptied here, not only in the child: a caller polling out_path right
     * after spawn must not see the previous run's output. */
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fo >= 0 && fe >= 0);
    close(fo);
    close(fe);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(99);
        if (child)
            child();
        execvp(argv[0], (char *const *)argv);
        _exit(98);
    }
    return pid;
}

/* Starts vae in the background; see spawn_v. */
static inline pid_t spawn(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(NULL, first, ap);
    va_end(ap);
    return pid;
}

static inline void read_outputs(void)
{
    free_outputs();
    out_text = (char *)tu_read_file(out_path, NULL);
    err_text = (char *)tu_read_file(err_path, NULL);
}

/* Runs vae to the end; returns its exit status, outputs in out_text/err_text. */
static inline int run(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(NULL, first, ap);
    va_end(ap);
    int rc = wait_status(pid);
    read_outputs();
    return rc;
}

/* run() with child() called in the child before exec. */
static inline int run_with(cli_child_fn child, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(child, first, ap);
    va_end(ap);
    int rc = wait_status(pid);
    read_outputs();
    return rc;
}

/* Asserts that the last run exited with want, showing its outputs if not. */
#define assert_exit(got, want)                                                  \
    do {                                                                        \
        int got_ = (got);                                                       \
        if (got_ != (want))                                                     \
            fail_msg("exit %d, expected %d\nstdout:\n%s\nstderr:\n%s", got_,    \
                     (want), out_text ? out_text : "", err_text ? err_text : ""); \
    } while (0)

/* dir/name into buf. */
static inline const char *in_dir(char *buf, size_t size, const char *name)
{
    tu_join(buf, size, dir, name);
    return buf;
}

/* Polls path every 2 ms for up to limit_s seconds until it contains
 * needle; returns 1 if it did. */
static inline int wait_for_text(const char *path, const char *needle, double limit_s)
{
    for (double waited = 0.0; waited < limit_s; waited += 0.002) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        char *t = (char *)tu_read_file(path, NULL);
        int seen = strstr(t, needle) != NULL;
        free(t);
        if (seen)
            return 1;
    }
    return 0;
}

/* The value of "key": in a JSON line, or NAN when absent. */
static inline double json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    return strtod(p + strlen(pat), NULL);
}

/* A checkpoint a test edits: path read into d, and m built from its
 * architecture holding its parameters. Fails the test on an error. */
static inline void cli_ckpt_load(const char *path, model_net *m, ckpt_data *d)
{
    err_msg err;
    if (ckpt_read(path, d, &err))
        fail_msg("%s", err.text);
    if (model_init(m, &d->cfg, &err))
        fail_msg("%s", err.text);
    memcpy(m->params, d->params, d->n_params * sizeof(float));
}

/* Saves m, with d's Adam moments and training state, as path; frees both.
 * Fails the test on an error. */
static inline void cli_ckpt_store(const char *path, model_net *m, ckpt_data *d)
{
    err_msg err;
    if (ckpt_save(path, m, d->adam_m, d->adam_v, &d->train, &err))
        fail_msg("%s", err.text);
    ckpt_data_free(d);
    model_free(m);
}

/* Sets every weight of m's output layer to w: a model whose loss blows up. */
static inline void cli_set_output_weights(model_net *m, float w)
{
    const model_layer *L = &m->layer[m->n_layers - 1];
    for (size_t i = 0; i < L->in * L->out; i++)
        m->params[L->w_off + i] = w;
}

static inline void assert_png_size(const char *path, size_t w, size_t h)
{
    uint8_t *px = NULL;
    size_t pw, ph;
    err_msg err;
    if (png_grid_read_gray(path, &px, &pw, &ph, &err))
        fail_msg("%s", err.text);
    free(px);
    if (pw != w || ph != h)
        fail_msg("%s is %zux%zu, expected %zux%zu", path, pw, ph, w, h);
}

/* Group setup: finds $VAE_BIN, makes the scratch folder /tmp/NAME-XXXXXX
 * and the good data set in it. Returns 0, or -1. */
/* ------------------------------------------------------------------------ */
/* Children that fail in chosen ways (for run_with)                          */

/* In the child: resource limited to soft (hard: the limit root could raise
 * it to); exit 96 if it cannot be set. */
static inline void cli_set_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    if (setrlimit(resource, &rl) != 0)
        _exit(96);
}

/* The file size limit limit_file_size sets, in bytes. */
static inline rlim_t *cli_fsize_limit(void)
{
    static rlim_t limit;
    return &limit;
}

/* In the child: a file size limit of *cli_fsize_limit() bytes (as a full
 * disk). SIGXFSZ keeps its default action, which kills: vae itself must
 * turn it into a write error (EFBIG) to report. */
static inline void limit_file_size(void)
{
    signal(SIGXFSZ, SIG_DFL);
    cli_set_limit(RLIMIT_FSIZE, *cli_fsize_limit(), *cli_fsize_limit());
}

/* In the child, when run as root: become nobody, so permissions apply. */
static inline void drop_root(void)
{
    if (getuid() != 0)
        return;
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        _exit(96);
}

static inline int cli_setup(const char *name)
{
    vae_bin = getenv("VAE_BIN");
    if (!vae_bin || access(vae_bin, X_OK) != 0) {
        fprintf(stderr, "%s: VAE_BIN must name the vae binary (CTest sets it)\n", name);
        return -1;
    }
    snprintf(dir, sizeof dir, "/tmp/%s-XXXXXX", name);
    if (tu_mkdtemp(dir))
        return -1;
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", dir);
    if (mkdir(data, 0755) != 0)
        return -1;
    write_split(data, "train", CLI_N_TRAIN, 1);
    write_split(data, "t10k", CLI_N_TEST, 2);
    return 0;
}

static inline void cli_teardown(void)
{
    free_outputs();
    tu_remove_tree(dir);
}

#endif
