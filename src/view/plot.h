/* plot.h - charts drawn by gnuplot, a separate program that reads a script
 * on its standard input: the loss curve (metrics.c) and the latent map
 * (show.c). gnuplot writes the chart to a pipe; only a whole PNG of the
 * size asked for (its IEND chunk there, every row decoded) replaces the
 * file, atomically (afile.h), so a full disk, a killed gnuplot or a broken
 * picture leaves the old file as it was and no temp file behind. */
#ifndef VAE_PLOT_H
#define VAE_PLOT_H

#include <stddef.h>

#include "afile.h"
#include "err.h"

/* How to get gnuplot, for messages. */
#define PLOT_INSTALL_HINT "install it with scripts/deps.sh, or apt-get install gnuplot-nox"

/* 1 when an executable gnuplot is on PATH, else 0. */
int plot_gnuplot_found(void);

/* s as a gnuplot single-quoted string ('' stands for ') into out. Returns
 * 0, or -1 when it does not fit in size bytes. */
int plot_quote(char *out, size_t size, const char *s);

/* Runs gnuplot on script after a pngcairo terminal of width x height, and
 * writes the chart to png. what names the chart in messages ("loss
 * curve"). Returns 0, or -1 with err: "gnuplot not found: no WHAT in PNG
 * (install ...)", "gnuplot failed drawing PNG: its first line", "gnuplot
 * gave no whole PNG", or the write's error; png is untouched then. */
int plot_png(const char *png, int width, int height, const char *script,
             const char *what, err_msg *err);

/* plot_png, but the chart is left in f, opened on png and written, for the
 * caller to afile_commit with the file it goes with (afile_commit_pair),
 * or afile_abort. Returns 0, or -1 with err and f not open. */
int plot_png_stage(afile *f, const char *png, int width, int height, const char *script,
                   const char *what, err_msg *err);

#endif
