/* runout.c - a training run's output folder (see runout.h). */
#include "runout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "show.h"

const char *const RUNOUT_PAGE_FILES[RUNOUT_N_PAGE_FILES] = {
    REPORT_PAGE, REPORT_LATENT_PNG, REPORT_LATENT_CSV, REPORT_LOSS_CSV, REPORT_LOSS_PNG};

/* Whether path (NULL: none) names a file called name in some folder. */
static int named(const char *path, const char *name)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash && !strcmp(slash + 1, name);
}

int runout_owns(const char *name, const char *csv, const char *plot)
{
    for (size_t i = 0; i < RUNOUT_N_PAGE_FILES; i++)
        if (!strcmp(name, RUNOUT_PAGE_FILES[i]))
            return 1;
    if (named(csv, name) || named(plot, name))
        return 1;
    size_t n = strlen(name), ls = strlen(RUNOUT_GRID_SUFFIX);
    return n > ls && !strcmp(name + n - ls, RUNOUT_GRID_SUFFIX) &&
           (!strncmp(name, RUNOUT_SAMPLED, strlen(RUNOUT_SAMPLED)) ||
            !strncmp(name, RUNOUT_RECONST, strlen(RUNOUT_RECONST)));
}

int runout_open(runout *r, const report_run *run, void (*warn)(void *ctx, const char *msg),
                void *warn_ctx, err_msg *err)
{
    memset(r, 0, sizeof *r);
    r->dir = run->out_dir;
    r->csv = run->metrics_csv;
    r->warn = warn;
    r->warn_ctx = warn_ctx;
    if (r->csv && !(r->plot = metrics_png_path(r->csv)))
        return err_set(err, "out of memory");
    report_init(&r->page, run);
    return 0;
}

/* The name of epoch's grid PREFIX E SUFFIX in OUT into out (size bytes);
 * prefix RUNOUT_SAMPLED or RUNOUT_RECONST. */
static void grid_path(char *out, size_t size, const runout *r, const char *prefix,
                      size_t epoch)
{
    snprintf(out, size, "%s/%s%zu%s", r->dir, prefix, epoch, RUNOUT_GRID_SUFFIX);
}

static void tell(runout *r, const char *msg)
{
    if (r->warn)
        r->warn(r->warn_ctx, msg);
}

/* The fixed prior draws shown each epoch, made once the model is known:
 * for a conditional model 10 rows, one column per label (the first
 * SHOW_CLASS_COLS labels if there are more); else RUNOUT_SAMPLE_N. */
static int make_draws(runout *r, const model_net *m, uint64_t seed, err_msg *err)
{
    r->show_cols = m->cfg.n_classes ? show_class_cols(m->cfg.n_classes) : SHOW_COLS;
    r->n_show = m->cfg.n_classes ? 10 * r->show_cols : RUNOUT_SAMPLE_N;
    size_t dim = infer_prior_dim(m);
    r->eps = malloc(r->n_show * (dim + m->cfg.z_dim) * sizeof *r->eps);
    r->labels = malloc(r->n_show);
    if (!r->eps || !r->labels)
        return err_set(err, "out of memory");
    r->prior_z = r->eps + r->n_show * dim;
    infer_prior_draws(r->eps, r->n_show, dim, seed);
    for (size_t i = 0; i < r->n_show; i++)
        r->labels[i] = (uint8_t)(i % r->show_cols);
    return 0;
}

/* The latent map, once the run has done all its epochs (a resumed run always
 * has one to do): from its model as training holds it (a failure is a
 * warning: the page says why). */
static void final_map(runout *r, const train_epoch *e)
{
    err_msg err;
    if (e->epoch < r->page.run.epochs)
        return;
    if (e->test && e->test->n &&
        report_active_units(&r->page, e->model, e->state, e->test, &err))
        tell(r, err.text);
    if (report_latent(&r->page, e->model, e->state, e->test, &err))
        tell(r, err.text);
}

int runout_begin(runout *r, const train_epoch *e, err_msg *err)
{
    /* The rows of the epochs done are the resumed run's own, kept; a
     * validation set has its columns. */
    if (r->csv) {
        if (metrics_open(&r->mt, r->csv, e->epoch, e->valid_n > 0, err))
            return -1;
        r->have_mt = 1;
    }
    report_set_model(&r->page, &e->model->cfg, e->state, e->model->n_params);
    return make_draws(r, e->model, e->seed, err);
}

int runout_pictures(runout *r, const train_epoch *e, err_msg *err)
{
    const model_net *m = e->model;
    report_set_model(&r->page, &m->cfg, e->state, m->n_params);
    char path[4096];
    grid_path(path, sizeof path, r, RUNOUT_SAMPLED, e->epoch);
    infer_prior_z(m, e->acts, r->eps, r->labels, r->n_show, r->prior_z);
    if (show_decode_png(m, e->acts, r->prior_z, r->labels, r->n_show, r->show_cols, path, err))
        return -1;
    if (e->test && e->test->n) {
        grid_path(path, sizeof path, r, RUNOUT_RECONST, e->epoch);
        if (show_recon_png(m, e->acts, e->test, e->test_view, RUNOUT_RECON_N, path, err))
            return -1;
    }
    final_map(r, e);
    return 0;
}

/* Rewrites the page; a failure is a warning, said once until the page
 * fails some other way: the page is a view of the run, whose checkpoint
 * is already saved. */
static void write_page(runout *r, report_status status)
{
    err_msg err;
    const char *csv = r->have_mt ? r->mt.text : NULL;
    size_t len = r->have_mt ? r->mt.len : 0;
    if (report_write(&r->page, status, csv, len, &err) == 0 ||
        !strcmp(err.text, r->page_warned))
        return;
    snprintf(r->page_warned, sizeof r->page_warned, "%s", err.text);
    tell(r, err.text);
}

int runout_epoch(runout *r, const train_report *rep, err_msg *err)
{
    if (r->have_mt) {
        metrics_row row = {rep->epoch, rep->train_loss, rep->train_rec, rep->train_kl,
                           rep->test_loss, rep->test_rec, rep->test_kl, rep->seconds,
                           rep->images_per_s, rep->valid_loss, rep->valid_rec,
                           rep->valid_kl};
        if (metrics_add(&r->mt, &row, err))
            return -1;
        err_msg perr;
        if (metrics_plot(r->csv, r->plot, rep->best_epoch > 0, &perr) && !r->plot_warned) {
            r->plot_warned = 1; /* once: the curve is a convenience */
            tell(r, perr.text);
        }
    }
    write_page(r, rep->epoch < rep->epochs ? REPORT_RUNNING : REPORT_FINISHED);
    return 0;
}

void runout_finish(runout *r, report_status status)
{
    write_page(r, status);
}

void runout_close(runout *r)
{
    if (r->have_mt)
        metrics_close(&r->mt);
    free(r->plot);
    free(r->eps);
    free(r->labels);
    memset(r, 0, sizeof *r);
}
