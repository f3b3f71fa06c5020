/* pca.h - principal component analysis of a set of points (the latent map
 * of `vae manifold`): the points' covariance over sgemm, its
 * eigen-decomposition by LAPACK's dsyev, the axes of the k largest
 * eigenvalues, and projections onto them.
 *
 * Sign rule: an eigenvector's sign is arbitrary (v and -v both are one), so
 * each axis is turned to make its entry of largest magnitude positive;
 * entries within PCA_SIGN_TIE of the largest count as equally large, and
 * the first of them decides. The same points give the same axes and
 * projections whatever sign LAPACK returns. */
#ifndef VAE_PCA_H
#define VAE_PCA_H

#include <stddef.h>

#include "err.h"

/* Entries of a unit axis this close to its largest magnitude tie with it
 * (rounding would otherwise decide between, say, 1/sqrt(2) and -1/sqrt(2)). */
#define PCA_SIGN_TIE 1e-5

typedef struct pca {
    size_t dim;        /* d: coordinates of a point */
    size_t k;          /* components kept */
    size_t n;          /* points fitted */
    double total_var;  /* the covariance's trace: the sum of all d eigenvalues */
    double *var;       /* k: variance along each axis (eigenvalue), largest first */
    float *mean;       /* d: the points' mean */
    float *axes;       /* k x d: unit axes, row c the c-th component, signs fixed */
} pca;

/* ---------------------------------------------------------------------- */
/* Fitting                                                                 */

/* The first k principal components of the n points x (n x d, row-major):
 * the covariance sum_i (x_i - m)(x_i - m)^T / (n - 1) and its k largest
 * eigenvalues and their unit eigenvectors (signs by the rule above).
 * Returns a pca freed with pca_free, or NULL with err: n < 2, k not in
 * 1..d, a non-finite coordinate, all points equal (no variance), out of
 * memory, or LAPACK failing. */
pca *pca_fit(const float *x, size_t n, size_t d, size_t k, err_msg *err);

/* Frees p (one allocation); safe on NULL. */
void pca_free(pca *p);

/* ---------------------------------------------------------------------- */
/* Using the components                                                    */

/* The share of the total variance along component c (0 when there is
 * none), in [0, 1]. */
double pca_explained(const pca *p, size_t c);

/* Coordinates of n points x (n x dim) on the axes: out (n x k) =
 * (x - mean) axes^T, over sgemm in blocks of rows. Returns 0, or -1 with
 * err when out of memory. */
int pca_project(const pca *p, const float *x, size_t n, float *out, err_msg *err);

#endif
