/* pca.c - principal components over sgemm and LAPACK (see src/view/pca.h). */
#include "pca.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

/* LAPACK's symmetric eigensolver (Fortran; OpenBLAS ships it, CMake links
 * it as LAPACK::LAPACK). Column-major; with jobz 'V' the eigenvectors
 * replace a, one per column, their eigenvalues in w in ascending order.
 * The two size_t are the hidden lengths gfortran passes for the character
 * arguments. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a,
                   const int *lda, double *w, double *work, const int *lwork,
                   int *info, size_t jobz_len, size_t uplo_len);

/* Rows centred and multiplied at a time: a buffer of PCA_BLOCK x d floats
 * instead of a centred copy of every point. */
#define PCA_BLOCK 1024

/* rows [s, s + B) of x (n x d) minus mean, into buf (B x d). */
static void centre_rows(float *buf, const float *x, const float *mean, size_t s, size_t B,
                        size_t d)
{
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < d; j++)
            buf[i * d + j] = x[(s + i) * d + j] - mean[j];
}

/* Index of the entry of v (length d) that decides its sign: the first
 * whose magnitude is within PCA_SIGN_TIE of the largest. */
static size_t sign_entry(const double *v, size_t d)
{
    double big = 0.0;
    for (size_t j = 0; j < d; j++)
        big = fmax(big, fabs(v[j]));
    size_t j = 0;
    while (j + 1 < d && fabs(v[j]) < big - PCA_SIGN_TIE)
        j++;
    return j;
}

/* One block holding the struct, var, mean and axes (doubles first, for
 * their alignment). NULL when out of memory or too large. */
static pca *alloc_result(size_t d, size_t k)
{
    size_t kd, bytes;
    if (err_mul_size(k, d, &kd) || err_mul_size(kd + d, sizeof(float), &bytes) ||
        bytes > SIZE_MAX - sizeof(pca) - k * sizeof(double))
        return NULL;
    pca *p = malloc(sizeof(pca) + k * sizeof(double) + bytes);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->dim = d;
    p->k = k;
    p->var = (double *)(p + 1);
    p->mean = (float *)(p->var + k);
    p->axes = p->mean + d;
    return p;
}

/* The sample covariance of x (n x d) about mean, over sgemm: cov (d x d)
 * = sum over blocks of Xc^T Xc / (n - 1). buf holds PCA_BLOCK x d floats. */
static void covariance(float *cov, float *buf, const float *x, const float *mean,
                       size_t n, size_t d)
{
    float alpha = (float)(1.0 / (double)(n - 1));
    for (size_t s = 0; s < n; s += PCA_BLOCK) {
        size_t B = n - s < PCA_BLOCK ? n - s : PCA_BLOCK;
        centre_rows(buf, x, mean, s, B, d);
        /* buf is B x d: buf^T buf (A transposed) sums the block's outer
         * products; later blocks add to the first (beta 1). */
        gemm(1, 0, d, d, B, alpha, buf, d, buf, d, s ? 1.0f : 0.0f, cov, d);
    }
}

/* Eigen-decomposes the symmetric a (d x d) in place: eigenvectors in its
 * columns, eigenvalues ascending in w. Returns 0, or -1 with err. */
static int eigen(double *a, double *w, size_t d, err_msg *err)
{
    int n = (int)d, lwork = -1, info = 0;
    double query = 0.0;
    dsyev_("V", "U", &n, a, &n, w, &query, &lwork, &info, 1, 1);
    if (info != 0)
        return err_set(err, "PCA: LAPACK dsyev's workspace query failed (info %d)", info);
    lwork = query > 3.0 * d ? (int)query : 3 * n; /* at least its minimum, 3d - 1 */
    double *work = malloc((size_t)lwork * sizeof *work);
    if (!work)
        return err_set(err, "PCA: out of memory for LAPACK's workspace");
    dsyev_("V", "U", &n, a, &n, w, work, &lwork, &info, 1, 1);
    free(work);
    if (info != 0)
        return err_set(err, "PCA: LAPACK dsyev failed (info %d: %s)", info,
                       info < 0 ? "a bad argument" : "no convergence");
    return 0;
}

pca *pca_fit(const float *x, size_t n, size_t d, size_t k, err_msg *err)
{
    if (n < 2) {
        err_set(err, "PCA needs at least 2 points, not %zu", n);
        return NULL;
    }
    if (d < 1 || d > 46340) { /* d * d must fit LAPACK's int */
        err_set(err, "PCA of %zu-D points: dimensions must be 1 to 46340", d);
        return NULL;
    }
    if (k < 1 || k > d) {
        err_set(err, "PCA: %zu components of %zu-D points (1 to %zu)", k, d, d);
        return NULL;
    }
    pca *p = alloc_result(d, k);
    double *mean = calloc(d, sizeof *mean), *a = malloc(d * d * sizeof *a);
    double *w = malloc(d * sizeof *w);
    float *cov = malloc(d * d * sizeof *cov);
    float *buf = malloc(PCA_BLOCK * d * sizeof *buf);
    if (!p || !mean || !a || !w || !cov || !buf) {
        err_set(err, "PCA: out of memory for %zu-D points", d);
        goto fail;
    }
    p->n = n;
    /* The mean in double; a non-finite coordinate would poison everything. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            if (!isfinite(x[i * d + j])) {
                err_set(err, "PCA: point %zu has a non-finite coordinate (%g)", i,
                        (double)x[i * d + j]);
                goto fail;
            }
            mean[j] += x[i * d + j];
        }
    for (size_t j = 0; j < d; j++)
        p->mean[j] = (float)(mean[j] / (double)n);
    covariance(cov, buf, x, p->mean, n, d);
    /* To double for LAPACK, made exactly symmetric (sgemm's two triangles
     * may differ in the last bit). Symmetric, so row- or column-major is
     * the same matrix. */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            a[i * d + j] = 0.5 * ((double)cov[i * d + j] + (double)cov[j * d + i]);
    for (size_t j = 0; j < d; j++)
        p->total_var += a[j * d + j];
    if (!isfinite(p->total_var)) {
        err_set(err, "PCA: the covariance of the %zu points overflows", n);
        goto fail;
    }
    if (p->total_var <= 0.0) {
        err_set(err, "PCA: all %zu points are the same: no variance to project", n);
        goto fail;
    }
    if (eigen(a, w, d, err))
        goto fail;
    /* The largest eigenvalues are last: component c is column d - 1 - c. */
    for (size_t c = 0; c < k; c++) {
        double *v = a + (d - 1 - c) * d;
        double sign = v[sign_entry(v, d)] < 0.0 ? -1.0 : 1.0;
        /* Rounding can leave a zero eigenvalue slightly negative. */
        p->var[c] = fmax(w[d - 1 - c], 0.0);
        for (size_t j = 0; j < d; j++)
            p->axes[c * d + j] = (float)(sign * v[j]);
    }
    free(mean);
    free(a);
    free(w);
    free(cov);
    free(buf);
    return p;
fail:
    free(p);
    free(mean);
    free(a);
    free(w);
    free(cov);
    free(buf);
    return NULL;
}

void pca_free(pca *p)
{
    free(p);
}

double pca_explained(const pca *p, size_t c)
{
    if (c >= p->k || !(p->total_var > 0.0))
        return 0.0;
    return fmin(p->var[c] / p->total_var, 1.0);
}

int pca_project(const pca *p, const float *x, size_t n, float *out, err_msg *err)
{
    size_t d = p->dim, B0 = n < PCA_BLOCK ? n : PCA_BLOCK;
    if (n == 0)
        return 0;
    float *buf = malloc(B0 * d * sizeof *buf);
    if (!buf)
        return err_set(err, "PCA: out of memory projecting %zu points", n);
    for (size_t s = 0; s < n; s += PCA_BLOCK) {
        size_t B = n - s < PCA_BLOCK ? n - s : PCA_BLOCK;
        centre_rows(buf, x, p->mean, s, B, d);
        /* (B x d) times axes^T (axes is k x d, so B transposed): B x k. */
        gemm(0, 1, B, p->k, d, 1.0f, buf, d, p->axes, d, 0.0f, out + s * p->k, p->k);
    }
    free(buf);
    return 0;
}
