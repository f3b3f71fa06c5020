/* report.h - the training run's page, OUT/index.html: the run's settings
 * (as training holds them), a table of the epochs' losses and the loss
 * curve (from the metrics CSV, metrics.h), the latest samples and
 * reconstructions with links to every earlier epoch's, and the latent map
 * drawn when training finishes.
 *
 * The page is plain HTML5 with a little inline CSS and no script. Every
 * link is relative to OUT and names a file that existed when the page was
 * written, so the folder can be moved or copied whole. Every string from
 * outside (paths, messages) is HTML-escaped. Written atomically (afile.h):
 * a reader sees the previous page or the new one. */
#ifndef VAE_REPORT_H
#define VAE_REPORT_H

#include <stddef.h>

#include "ckpt.h"
#include "err.h"
#include "idx.h"
#include "model.h"

/* The files the report writes in OUT. */
#define REPORT_PAGE "index.html"
#define REPORT_LATENT_PNG "latent.png" /* the latent map, when training finishes */
#define REPORT_LATENT_CSV "latent.csv" /* its points (a latent of more than 2-D) */
/* The loss curve's copy, drawn only when the metrics CSV is outside OUT. */
#define REPORT_LOSS_CSV "loss.csv"
#define REPORT_LOSS_PNG "loss.png"

#define REPORT_THUMBS 8      /* earlier epochs shown as thumbnails; all are linked */
#define REPORT_MAP_SIDE 20   /* the 2-D latent's grid: side x side decodings */

typedef enum report_status {
    REPORT_RUNNING,  /* epochs to go: the page is rewritten after each */
    REPORT_FINISHED, /* every epoch asked for is done */
    REPORT_STOPPED   /* interrupted; the checkpoint resumes it */
} report_status;

/* What the page is about; the strings are the caller's and must outlive
 * the report. */
typedef struct report_run {
    const char *out_dir;     /* the page's folder (--out) */
    const char *ckpt_path;   /* the run's checkpoint: the settings come from it */
    const char *metrics_csv; /* the epochs' CSV (metrics.h), in out_dir or not */
    const char *data_dir;    /* where the images came from (shown only) */
    size_t epochs;           /* the epochs the run is asked for */
    size_t threads;          /* the thread team's size (shown only) */
    size_t ranks;            /* MPI ranks, each with such a team (0 or 1: one process) */
} report_run;

typedef struct report {
    report_run run;
    int have_cfg;          /* cfg, train and n_params are the run's */
    model_config cfg;
    ckpt_train train;
    size_t n_params;
    int latent;            /* 1 drawn by this run, -1 not (latent_note says why), 0 not yet */
    double explained[2];   /* with a PCA map: each component's share of the variance */
    char latent_note[ERR_MSG_LEN];
    /* At the end of training (report_active_units): the active units of
     * the latent layer over active_n test images; active_n 0: not known. */
    size_t active, active_n;
    size_t active2;        /* with two stochastic layers: h2's (at h1's means) */
} report;

/* ---------------------------------------------------------------------- */
/* The page                                                                */

/* Starts a report of run; writes nothing. */
void report_init(report *r, const report_run *run);

/* The run's model and settings as training holds them (the page shows
 * them from then on). */
void report_set_model(report *r, const model_config *cfg, const ckpt_train *state,
                      size_t n_params);

/* Writes OUT/index.html for the run as it stands: the settings (as
 * report_set_model gave them), every epoch of the metrics CSV's text
 * csv_text (csv_len bytes, as metrics.h holds it; NULL: none yet), the
 * images of those epochs found in OUT, and the loss
 * curve: the metrics PNG beside the CSV when both are in OUT, else a copy
 * drawn as OUT/loss.csv and OUT/loss.png; without gnuplot the page says
 * so. Returns 0, or -1 with err (the page could not be written; a missing
 * part of it is said on the page, not an error). */
int report_write(report *r, report_status status, const char *csv_text, size_t csv_len,
                 err_msg *err);

/* The latent map of the finished run into OUT/latent.png: for a latent of
 * more than 2 dimensions the test set's posterior means on their first two
 * principal components, with the points in OUT/latent.csv (as vae manifold,
 * drawn by gnuplot); for a 2-D latent a grid of decodings over the prior's
 * quantiles; a 1-D latent has none. m is the run's final model and t its
 * settings (the test images' view and the seed of their draws), as the
 * run holds them; the thread team must be started. Returns 0 (drawn, or a
 * 1-D latent), or -1 with err (gnuplot missing, no test images, out of
 * memory...); either way the next report_write says what happened. */
int report_latent(report *r, const model_net *m, const ckpt_train *t, const idx_set *test,
                  err_msg *err);

/* The active units (infer_active_units) of the run's final model m over
 * the test images, drawn as evaluation draws them (t's settings), for the
 * page. Returns 0, or -1 with err (out of memory; no test images). */
int report_active_units(report *r, const model_net *m, const ckpt_train *t,
                        const idx_set *test, err_msg *err);

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* s with & < > " ' replaced by their character references, into out.
 * Returns 0, or -1 when it does not fit in size bytes (out is then ""). */
int report_escape(char *out, size_t size, const char *s);

#endif
