/* traverse.h - latent traversals: which latent dimensions a model uses,
 * ranked by the KL each one carries, and rows of decodings that move one
 * dimension at a time around an image's code (the figures of Higgins et
 * al., "beta-VAE", 2017).
 *
 * The unit of a move is the prior's standard deviation of the dimension:
 * 1 for N(0, I); for a conditional model exp(logvar_p(y) / 2) of p(z | y),
 * y the image's label. The prior is the scale the decoder was trained to
 * read (the test set's means of an active dimension spread over about one
 * such unit), the same for every dimension, so rows compare; a dimension
 * the encoder leaves unused changes nothing, whatever the unit. */
#ifndef VAE_TRAVERSE_H
#define VAE_TRAVERSE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

#define TRAVERSE_RANGE 3.0f    /* a row runs from -3 to +3 units around the code */
#define TRAVERSE_STEPS 11      /* columns a row, by default (the code in the middle) */
#define TRAVERSE_MAX_ROWS 10   /* rows, by default: the most active dimensions */

/* One latent dimension's activity over a set of images. */
typedef struct traverse_dim {
    size_t dim;      /* the latent coordinate, 0..z_dim-1 */
    double kl;       /* its closed-form KL of q(z|x) to the prior, nats, averaged */
    double sd_means; /* the standard deviation of its posterior means (over n) */
} traverse_dim;

/* The latent layer a traversal moves along (`layer` 1 or 2): z (or a
 * two-layer model's h1), or a two-layer model's h2; returns its size.
 * Everything below is of that layer. A two-layer model's h1 has the prior
 * p(h1|h2) of each image (its rows [mp | lp], at h2 = q(h2|h1)'s mean at
 * h1's mean: `prior`, n x 2 z_dim); its h2 has N(0, I), its mu and logvar
 * are q(h2|h1)'s at h1's mean, and its codes are pictured through
 * p(h1|h2)'s mean. */
size_t traverse_latent(const model_net *m, int layer);

/* ---- ranking ------------------------------------------------------------ */

/* For each dimension j of n images' posterior means mu and log-variances
 * logvar (n x z_dim each), the mean over the images of its KL term,
 *   N(0, 1):    1/2 (mu^2 + exp(lv) - 1 - lv)
 *   p(z | y):   1/2 (lp - lv + (exp(lv) + (mu - mp)^2) / exp(lp) - 1)
 * (a conditional model's prior [mp | lp] for label y = labels[i] through
 * a's prior network; a and labels may be NULL otherwise), and the spread of
 * its means; into dims[0..z_dim), largest KL first (ties: the lower
 * dimension first; a NaN last). Returns 0, or -1 with err (no images, a
 * label the model does not have, out of memory). */
int traverse_rank(const model_net *m, model_acts *a, int layer, const float *mu,
                  const float *logvar, const float *prior, const uint8_t *labels,
                  size_t n, traverse_dim *dims, err_msg *err);

/* ---- codes and the picture ---------------------------------------------- */

/* The unit of the moves, per dimension, for an image of label: sd[j] = 1,
 * or for a conditional model exp(logvar_p(label)_j / 2) (through a's
 * prior network), or a two-layer model's h1 exp(lp_j / 2) of the image's
 * prior row prior_row (else NULL). */
void traverse_unit(const model_net *m, model_acts *a, int layer, const float *prior_row,
                   uint8_t label, float *sd);

/* rows x steps codes, row-major (row r's steps codes of z_dim each): row r
 * moves coordinate d = dims[r] through center[d] + t sd[d], t at steps
 * evenly spaced points from -range to +range (ends included; steps >= 2),
 * every other coordinate at center. */
void traverse_codes(const float *center, const float *sd, size_t z_dim,
                    const size_t *dims, size_t rows, size_t steps, float range,
                    float *z);

/* The traversal of the code center (an image's posterior mean) along
 * dims[0..rows), TRAVERSE_RANGE units either way in steps columns,
 * decoded (a conditional model with label) into a grid of rows x steps
 * tiles of the pixel means (show_decode_png). Returns 0, or -1 with err
 * (fewer than 2 steps, no rows, a dimension out of range, out of memory,
 * or the PNG could not be written). */
int traverse_png(const model_net *m, model_acts *a, int layer, const float *prior_row,
                 const float *center, uint8_t label, const size_t *dims, size_t rows,
                 size_t steps, const char *path, err_msg *err);

#endif
