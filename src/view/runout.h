/* runout.h - a training run's output folder, OUT: the one module that
 * names and writes what is in it. Each epoch, its pictures (sampled-E.png,
 * the prior draws of a fixed noise; reconst-E.png, test images beside
 * their reconstructions), a row of the metrics CSV and its loss curve, and
 * the run's page (report.h); at the end, the latent map. train_run hands
 * it each epoch's model and results through its hooks (train.h); nothing
 * here trains. */
#ifndef VAE_RUNOUT_H
#define VAE_RUNOUT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "metrics.h"
#include "report.h"
#include "train.h"

/* The per-epoch pictures: PREFIX E SUFFIX in OUT. */
#define RUNOUT_SAMPLED "sampled-"
#define RUNOUT_RECONST "reconst-"
#define RUNOUT_GRID_SUFFIX ".png"
#define RUNOUT_SAMPLE_N 128 /* prior draws in sampled-E.png (a conditional model: 10 rows) */
#define RUNOUT_RECON_N 32   /* test images in reconst-E.png */

/* The page's files in OUT (report.h's names). */
#define RUNOUT_N_PAGE_FILES 5
extern const char *const RUNOUT_PAGE_FILES[RUNOUT_N_PAGE_FILES];

/* Whether name, in OUT, is a file a run writes there: a grid, a page
 * file, or the metrics CSV csv or its plot (paths). */
int runout_owns(const char *name, const char *csv, const char *plot);

typedef struct runout {
    const char *dir;      /* OUT; the caller's string */
    const char *csv;      /* the metrics CSV (in OUT or not); the caller's */
    char *plot;           /* its loss curve, beside it */
    metrics mt;           /* open from the first epoch on */
    int have_mt;
    float *eps, *prior_z; /* the fixed prior draws of sampled-E.png, their codes */
    uint8_t *labels;      /* a conditional model's label of each draw */
    size_t n_show, show_cols;
    report page;          /* OUT/index.html */
    char page_warned[ERR_MSG_LEN]; /* the last page failure said */
    int plot_warned;
    void (*warn)(void *ctx, const char *msg); /* told what does not stop the run */
    void *warn_ctx;
} runout;

/* Starts the output of run (report.h) into run->out_dir, the metrics in
 * run->metrics_csv; warn (may be NULL) is told failures that do not stop
 * the run. Writes nothing yet. Returns 0, or -1 with err. */
int runout_open(runout *r, const report_run *run, void (*warn)(void *ctx, const char *msg),
                void *warn_ctx, err_msg *err);

/* Once training starts (e->epoch: the epochs done): the metrics CSV
 * (the rows of those epochs kept, the rest dropped) and the fixed prior
 * draws of the pictures. Returns 0, or -1 with err. */
int runout_begin(runout *r, const train_epoch *e, err_msg *err);

/* An epoch's pictures from e's model (before its checkpoint is saved, so
 * that a saved epoch has them), and after the run's last epoch its active
 * units and latent map (report_active_units, report_latent; a failure is a
 * warning). Returns 0, or -1 with err. */
int runout_pictures(runout *r, const train_epoch *e, err_msg *err);

/* An epoch's row of the metrics CSV (rewritten whole), its loss curve (a
 * failure is a warning, said once) and the page (a warning, said once a
 * kind of failure). Returns 0, or -1 with err (the CSV could not be
 * written). */
int runout_epoch(runout *r, const train_report *rep, err_msg *err);

/* The page's last state (the latent map was drawn with the last epoch's
 * pictures). */
void runout_finish(runout *r, report_status status);

/* Frees what r holds; safe on a zeroed struct. */
void runout_close(runout *r);

#endif
