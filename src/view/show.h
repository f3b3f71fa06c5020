/* show.h - what a trained model looks like, as PNG files: samples from the
 * prior, reconstructions, interpolations, the latent manifold, and a map of
 * the latent codes (a chart drawn by gnuplot, plot.h). Grids follow
 * torchvision's save_image (png_grid.h); each picture shows the
 * likelihood's mean per pixel. */
#ifndef VAE_SHOW_H
#define VAE_SHOW_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "idx.h"
#include "shard.h"
#include "model.h"

#define SHOW_COLS 8 /* tiles a row, as save_image */
#define SHOW_CLASS_COLS 16 /* most labels a conditional model's grid shows, a column each */

/* Writes n tiles of the model's images (x_dim floats each, as the model
 * sees them) to a PNG grid of ncol columns, grey or colour as the model's
 * images are. Returns 0, or -1 with err. */
int show_tiles_png(const model_net *m, const float *tiles, size_t n, size_t ncol,
                   const char *path, err_msg *err);

/* The columns of a conditional model's grid of n_classes labels. */
size_t show_class_cols(size_t n_classes);
#define SHOW_PAD 2  /* pixels between tiles */

/* Two stochastic layers: n codes of h2 (n x z2_dim) to the means of
 * p(h1|h2) (n x z_dim), the codes of pictures of h2, through a. */
void show_top_means(const model_net *m, model_acts *a, const float *z2, size_t n, float *z);

/* Decodes n latent codes z (with labels, for a conditional model) and
 * writes the means as a grid of ncol columns. Returns 0, or -1 with err. */
int show_decode_png(const model_net *m, model_acts *a, const float *z,
                    const uint8_t *labels, size_t n, size_t ncol,
                    const char *path, err_msg *err);

/* The first n images of set (through view) each beside its reconstruction
 * from the posterior mean, 8 tiles a row. Returns 0, or -1 with err. */
int show_recon_png(const model_net *m, model_acts *a, const idx_set *set,
                   const idx_view *view, size_t n, const char *path,
                   err_msg *err);

/* One row: image `from`, the decodings of steps points evenly spaced on the
 * straight line from its posterior mean to image `to`'s (ends included),
 * then image `to`. A conditional model decodes with label (or, if label
 * < 0, image from's label). Returns 0, or -1 with err. */
int show_interpolate_png(const model_net *m, model_acts *a, const idx_set *set,
                         const idx_view *view, size_t from, size_t to,
                         size_t steps, int label, const char *path,
                         err_msg *err);

/* Whether the latent map of m is the grid of decodings (show_manifold_png:
 * one stochastic layer, 2-D) rather than the principal components of the
 * test set's codes (show_latent_pca). */
int show_map_is_grid(const model_config *c);

/* For a 2-D latent: a side x side grid of decodings of z on the prior's
 * quantiles, z = (Phi^-1(u), Phi^-1(v)) with u, v at (i + 1/2) / side
 * (Kingma & Welling, Fig. 4); a conditional model uses p(z | label).
 * Returns 0, or -1 with err (also when z is not 2-D). */
int show_manifold_png(const model_net *m, model_acts *a, size_t side, int label,
                      const char *path, err_msg *err);

/* The size of the latent map, in pixels. */
#define SHOW_MAP_W 800
#define SHOW_MAP_H 640

/* The latent map: n points xy (n x 2, coordinates on the first two
 * principal components, explained[c] the share of the variance along each)
 * written to csv (index,label,pc1,pc2) and drawn from it by gnuplot into
 * png: one colour and legend entry a label, axes "PC1 (x% of variance)"
 * and "PC2 (y%)", the title. The two replace their files together: on any
 * failure (gnuplot missing or failing, a full disk) neither is written.
 * Returns 0, or -1 with err. */
int show_latent_map(const float *xy, const uint8_t *labels, size_t n,
                    const double explained[2], const char *title, const char *csv,
                    const char *png, err_msg *err);

/* The latent map of set: the posterior means of stochastic layer `layer`
 * (infer_layer_means: 1, or 2 for h2 of a model of two) projected on their
 * first two principal components (pca.h),
 * written by show_latent_map to csv and png under a title that says so;
 * explained[] gets each component's share of the variance. s is the
 * team's activations, m's latent at least 2-D. Returns 0, or -1 with err
 * (out of memory, no variance, gnuplot missing or failing). */
int show_latent_pca(const model_net *m, shard_set *s, const idx_set *set,
                    const idx_view *view, uint64_t seed, int layer, const char *csv,
                    const char *png, double explained[2], err_msg *err);

/* The CSV beside a latent map: png's name with ".png" (if any) replaced by
 * ".csv" (else ".csv" appended). Returns a malloc'd string, or NULL when
 * out of memory. */
char *show_map_csv_path(const char *png);

#endif
