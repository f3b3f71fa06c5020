/* metrics.h - the training run's record: one CSV row per epoch, rewritten
 * atomically after each, and a loss curve drawn from it by gnuplot (a
 * separate program; when it is missing only the curve is). */
#ifndef VAE_METRICS_H
#define VAE_METRICS_H

#include <stddef.h>

#include "err.h"

/* The CSV's columns, in order; a run with a validation set has three more. */
#define METRICS_HEADER "epoch,train_loss,train_rec,train_kl,test_loss,test_rec," \
                       "test_kl,seconds,images_per_s"
#define METRICS_HEADER_VALID METRICS_HEADER ",valid_loss,valid_rec,valid_kl"

typedef struct metrics_row {
    size_t epoch;
    double train_loss, train_rec, train_kl;
    double test_loss, test_rec, test_kl;
    double seconds, images_per_s;
    double valid_loss, valid_rec, valid_kl; /* written with a validation set only */
} metrics_row;

typedef struct metrics {
    char *path; /* the CSV */
    char *text; /* its contents */
    size_t len, cap;
    int valid;  /* the validation columns are there */
} metrics;

/* Starts the record at path, with the validation columns when valid: the
 * rows of epochs 1..keep_epochs already in it are kept (a resumed run),
 * anything else is dropped. Returns 0, or -1 with err. */
int metrics_open(metrics *mt, const char *path, size_t keep_epochs, int valid,
                 err_msg *err);

/* Appends a row and rewrites the CSV. Returns 0, or -1 with err. */
int metrics_add(metrics *mt, const metrics_row *r, err_msg *err);

/* Frees the record; safe on a zeroed struct. */
void metrics_close(metrics *mt);

/* Draws train and test loss (and the validation loss when valid) against
 * the epoch from csv into png with gnuplot (written to a temp file, then
 * renamed). Returns 0, or -1 with err (gnuplot missing or failing, or csv
 * not a regular file, which gnuplot might wait on for ever). */
int metrics_plot(const char *csv, const char *png, int valid, err_msg *err);

/* The PNG beside a CSV: its name with ".csv" (if any) replaced by ".png".
 * Returns a malloc'd string, or NULL when out of memory. */
char *metrics_png_path(const char *csv);

#endif
