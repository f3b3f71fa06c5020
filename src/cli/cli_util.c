/* cli_util.c - what the commands share: the thread team, loading data and
 * checkpoints with the messages the user sees, and the checks of data
 * against a model (see src/cli/cli.h). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ckpt.h"
#include "idx.h"
#include "blasbuf.h"
#include "cpu.h"
#include "par.h"

cli_json_text cli_json(double v, int prec, char conv)
{
    cli_json_text t = {"null"};
    if (isfinite(v))
        snprintf(t.s, sizeof t.s, conv == 'g' ? "%.*g" : "%.*f", prec, v);
    return t;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The thread team: --threads, or as many threads as OpenBLAS would use
 * (all cores, or OPENBLAS_NUM_THREADS), fewer if an address-space limit
 * leaves room for fewer OpenBLAS buffers (blasbuf.h). par_init makes each
 * sgemm call single-threaded: the team runs them side by side. */
int cli_threads(cli_opts *o)
{
    size_t n = o->set[O_THREADS] ? o->threads : cpu_default_threads();
    size_t fit = blasbuf_fit();
    if (!o->set[O_THREADS] && n > fit) {
        if (fit >= 1)
            say_error("warning: the address-space limit (ulimit -v) leaves room for OpenBLAS's "
                      "work buffers of %zu thread%s: running %zu, not %zu (--threads sets it)",
                      fit, fit == 1 ? "" : "s", fit, n);
        n = fit >= 1 ? fit : 1; /* none: par_init says how much room one needs */
    }
    /* Allowed (the same --threads give the same bits on any machine), but
     * every step's barriers then wait for threads that are not running. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (o->set[O_THREADS] && cores > 0 && n > (size_t)cores)
        say_error("warning: --threads %zu is more than the %ld cores here: the same bits "
                  "as on a machine with that many, but many times slower", n, cores);
    err_msg err;
    if (par_init(n < 1 ? 1 : n > PAR_MAX_THREADS ? PAR_MAX_THREADS : n, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

int cli_load_split(cli_opts *o, idx_set *set, const char *split)
{
    err_msg err;
    if (idx_load(set, o->data, split, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

/* The images file of split in --data into images (IDX_PATH_MAX bytes),
 * for messages ("" if none). Returns images. */
static const char *images_file(cli_opts *o, const char *split, char *images)
{
    char labels[IDX_PATH_MAX];
    err_msg err;
    if (idx_split_paths(o->data, split, images, labels, &err))
        images[0] = '\0';
    return images;
}

int cli_same_shape(cli_opts *o, const idx_set *train, const idx_set *test)
{
    size_t c1 = idx_channels(train), c2 = idx_channels(test);
    if (train->rows == test->rows && train->cols == test->cols && c1 == c2)
        return 0;
    char images[IDX_PATH_MAX];
    say_error("%s: the test images are %zux%zu %s, the training images %zux%zu %s: both "
              "splits must hold images of one size", images_file(o, "t10k", images), test->cols,
              test->rows, c2 == 3 ? "colour" : "grey", train->cols, train->rows,
              c1 == 3 ? "colour" : "grey");
    return -1;
}

int cli_data_model(cli_opts *o, model_config *cfg, const idx_set *set)
{
    model_config_image(cfg, set->rows, set->cols, idx_channels(set));
    if (!o->set[O_CONDITIONAL])
        return 0;
    if (!set->n_classes) {
        say_error("--conditional: the training set in %s has no label file (a flat "
                  "vae import); a conditional model needs labels", o->data);
        return -1;
    }
    cfg->n_classes = set->n_classes;
    return 0;
}

int cli_check_data(cli_opts *o, const model_config *cfg, const idx_set *set, const char *split)
{
    err_msg err;
    const char *what = strcmp(split, "train") ? "test" : "training";
    if (train_check_shape(cfg, set, o->ckpt, what, &err)) {
        char images[IDX_PATH_MAX];
        say_error("%s (%s)", err.text, images_file(o, split, images));
        return -1;
    }
    if (cfg->n_classes && !set->n_classes) {
        say_error("%s: a conditional model needs labels, and the %s set in %s has no "
                  "label file", o->ckpt, what, o->data);
        return -1;
    }
    if (cfg->n_classes && set->n_classes > cfg->n_classes) {
        say_error("%s: the model knows %zu classes, but the %s labels in %s go up to %zu",
                  o->ckpt, cfg->n_classes, what, o->data, set->n_classes - 1);
        return -1;
    }
    return 0;
}

void cli_add_split(cli_opts *o, paths_list *l, const char *split)
{
    /* Static: paths_list keeps the pointers. Missing files are skipped here
     * and reported by the loader. */
    static char names[2][2][IDX_PATH_MAX];
    int k = strcmp(split, "train") != 0;
    err_msg err;
    if (idx_split_paths(o->data, split, names[k][0], names[k][1], &err))
        return;
    paths_add(l, k ? "the test images" : "the training images", names[k][0], PATHS_READ);
    if (names[k][1][0])
        paths_add(l, k ? "the test labels" : "the training labels", names[k][1], PATHS_READ);
}

/* What a file that exists at path holds that a write over it would lose
 * (a checkpoint, IDX data), or NULL. */
static const char *precious(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    unsigned char head[8] = {0};
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (fp)
        fclose(fp);
    uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
                     (uint32_t)head[2] << 8 | head[3];
    size_t len = strlen(path);
    if (n == 8 && !memcmp(head, CKPT_MAGIC, 8))
        return "a vae checkpoint";
    if (n >= 4 && (magic == IDX_MAGIC_IMAGES || magic == IDX_MAGIC_IMAGES4 ||
                   magic == IDX_MAGIC_LABELS))
        return "IDX data";
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b && len > 9 &&
        !strcmp(path + len - 9, "-ubyte.gz"))
        return "IDX data (gzip)";
    return NULL;
}

int cli_check_paths(const paths_list *l)
{
    err_msg err;
    if (paths_check(l, &err))
        return usage_error("%s", err.text);
    /* A picture or a CSV never goes over a checkpoint or a data set. */
    for (size_t i = 0; i < l->n; i++) {
        const paths_entry *e = &l->e[i];
        int plain = e->mode == PATHS_WRITE || e->mode == PATHS_PAIRED;
        const char *kind = plain && !e->prefix ? precious(e->path) : NULL;
        if (kind)
            return usage_error("%s %s holds %s, which this command would write over; "
                               "move it away or give another path", e->what, e->path, kind);
    }
    return 0;
}

int cli_load_model(cli_opts *o, model_net *m, ckpt_train *t)
{
    err_msg err;
    if (ckpt_load_model(o->ckpt, m, t, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}
