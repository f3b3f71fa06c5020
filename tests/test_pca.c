/* test_pca.c - principal components: points on an ellipse in 3-D whose
 * eigenvalues, axes, explained variances and projections are worked out by
 * hand; the sign rule (negated points, an exact tie); random 5-D data
 * against a double-precision covariance, over more rows than a block; and
 * the degenerate cases (equal points, too few, 1-D, a line, NaN). */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pca.h"
#include "rng.h"
#include "testutil.h"

/* Tolerance of results computed in float (sgemm) from values of order 1-10. */
#define TOL 2e-5

static void assert_near(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: %.9g, expected %.9g (difference %.3g, tolerance %.3g)", what, got,
                 want, fabs(got - want), tol);
}

static pca *fit_ok(const float *x, size_t n, size_t d, size_t k)
{
    err_msg err;
    pca *p = pca_fit(x, n, d, k, &err);
    if (!p)
        fail_msg("pca_fit: %s", err.text);
    return p;
}

/* ===================================================================== */
/* A case worked out by hand                                              */
/* ===================================================================== */

/* x_i = c + a cos(t_i) u + b sin(t_i) v, t_i = 2 pi i / N, with u, v, w =
 * u x v orthonormal. Over N >= 3 evenly spaced angles sum cos^2 = sum sin^2
 * = N/2 and sum cos sin = sum cos = sum sin = 0, so the covariance (divided
 * by N - 1) is a^2 N / (2 (N-1)) u u^T + b^2 N / (2 (N-1)) v v^T:
 * eigenvalues 9 * 12/22 = 4.909 and 12/22 = 0.545 for a = 3, b = 1, N = 12,
 * and 0 along w; explained 9/10 and 1/10. Sign rule: u = (2, 3, 6)/7 has
 * its largest entry positive and stays; v = (3, -6, 2)/7 has -6/7, so the
 * second axis is -v and the second coordinate -b sin(t); w = (6, 2, -3)/7
 * stays. */
enum { EN = 12 };
static const double U[3] = {2.0 / 7, 3.0 / 7, 6.0 / 7}, V[3] = {3.0 / 7, -6.0 / 7, 2.0 / 7},
                    W[3] = {6.0 / 7, 2.0 / 7, -3.0 / 7}, C[3] = {5.0, -2.0, 1.0};
static const double EA = 3.0, EB = 1.0;

static void ellipse(float *x, double sign)
{
    for (int i = 0; i < EN; i++) {
        double t = 2.0 * M_PI * i / EN, ca = EA * cos(t), sb = EB * sin(t);
        for (int j = 0; j < 3; j++)
            x[i * 3 + j] = (float)(sign * (C[j] + ca * U[j] + sb * V[j]));
    }
}

static void test_ellipse(void **state)
{
    (void)state;
    float x[EN * 3], y[EN * 3];
    ellipse(x, 1.0);
    pca *p = fit_ok(x, EN, 3, 3);
    double l1 = EA * EA * EN / (2.0 * (EN - 1)), l2 = EB * EB * EN / (2.0 * (EN - 1));
    printf("  eigenvalues %.7f %.7f %.3g (expected %.7f %.7f 0), explained %.6f %.6f\n",
           p->var[0], p->var[1], p->var[2], l1, l2, pca_explained(p, 0),
           pca_explained(p, 1));
    assert_int_equal(p->n, EN);
    assert_near(p->var[0], l1, TOL * l1, "first eigenvalue");
    assert_near(p->var[1], l2, TOL * l1, "second eigenvalue");
    assert_near(p->var[2], 0.0, TOL * l1, "third eigenvalue");
    assert_true(p->var[2] >= 0.0);
    assert_near(p->total_var, l1 + l2, TOL * l1, "total variance");
    assert_near(pca_explained(p, 0), 0.9, TOL, "explained by PC1");
    assert_near(pca_explained(p, 1), 0.1, TOL, "explained by PC2");
    assert_near(pca_explained(p, 2), 0.0, TOL, "explained by PC3");
    assert_near(pca_explained(p, 3), 0.0, 0.0, "explained past k");
    for (int j = 0; j < 3; j++) {
        assert_near(p->mean[j], C[j], TOL * 5, "mean");
        assert_near(p->axes[j], U[j], TOL, "PC1 = u");
        assert_near(p->axes[3 + j], -V[j], TOL, "PC2 = -v (sign rule)");
        assert_near(p->axes[6 + j], W[j], 1e-4, "PC3 = w");
    }
    /* The points' coordinates: (a cos t, -b sin t, 0). */
    float xy[EN * 3];
    err_msg err;
    assert_int_equal(pca_project(p, x, EN, xy, &err), 0);
    for (int i = 0; i < EN; i++) {
        double t = 2.0 * M_PI * i / EN;
        assert_near(xy[i * 3], EA * cos(t), 1e-4, "coordinate on PC1");
        assert_near(xy[i * 3 + 1], -EB * sin(t), 1e-4, "coordinate on PC2");
        assert_near(xy[i * 3 + 2], 0.0, 1e-4, "coordinate on PC3");
    }
    pca_free(p);

    /* k = 2 keeps the first two of the same. */
    p = fit_ok(x, EN, 3, 2);
    assert_int_equal(p->k, 2);
    assert_near(p->var[0], l1, TOL * l1, "first eigenvalue, k = 2");
    assert_near(p->axes[3 + 1], -V[1], TOL, "PC2, k = 2");
    pca_free(p);

    /* Sign rule: the points negated (and so centred elsewhere) give the same
     * axes, whatever LAPACK's signs, and negated coordinates. */
    ellipse(y, -1.0);
    p = fit_ok(y, EN, 3, 2);
    float yz[EN * 2];
    assert_int_equal(pca_project(p, y, EN, yz, &err), 0);
    for (int j = 0; j < 3; j++) {
        assert_near(p->axes[j], U[j], TOL, "PC1 of -x");
        assert_near(p->axes[3 + j], -V[j], TOL, "PC2 of -x");
    }
    for (int i = 0; i < EN; i++) {
        assert_near(yz[i * 2], -xy[i * 3], 1e-4, "-x on PC1");
        assert_near(yz[i * 2 + 1], -xy[i * 3 + 1], 1e-4, "-x on PC2");
    }
    pca_free(p);
}

/* An exact tie: 2-D points on the line (t, -t). PC1 is (1, -1)/sqrt(2) or
 * its negation; both entries are equally large, so the first decides:
 * (+, -). PC2, of eigenvalue 0, is (1, 1)/sqrt(2). Dimension 2 works. */
static void test_sign_tie(void **state)
{
    (void)state;
    float x[2 * 5];
    for (int i = 0; i < 5; i++) {
        x[2 * i] = (float)(i - 2);
        x[2 * i + 1] = (float)(2 - i);
    }
    pca *p = fit_ok(x, 5, 2, 2);
    double r = sqrt(0.5);
    assert_near(p->var[0], 5.0, TOL * 5, "variance along the line"); /* 2 * 10/4 */
    assert_near(p->var[1], 0.0, TOL * 5, "variance across it");
    assert_near(p->axes[0], r, TOL, "PC1[0]");
    assert_near(p->axes[1], -r, TOL, "PC1[1]");
    assert_near(p->axes[2], r, TOL, "PC2[0]");
    assert_near(p->axes[3], r, TOL, "PC2[1]");
    assert_near(pca_explained(p, 0), 1.0, TOL, "explained by PC1");
    pca_free(p);
    /* The mirror image (t, t): PC1 (1, 1)/sqrt(2). */
    for (int i = 0; i < 5; i++)
        x[2 * i + 1] = (float)(i - 2);
    p = fit_ok(x, 5, 2, 1);
    assert_near(p->axes[0], r, TOL, "PC1[0] of (t, t)");
    assert_near(p->axes[1], r, TOL, "PC1[1] of (t, t)");
    pca_free(p);
}

/* ===================================================================== */
/* Random data against double precision                                   */
/* ===================================================================== */

/* n = 3000 points (three blocks) in 5-D: independent normals of standard
 * deviations 5, 3, 2, 1, 0.5, rotated by a random orthogonal matrix and
 * shifted. Each axis must be a unit eigenvector of the covariance computed
 * here in double (C a = lambda a), the axes orthogonal, the eigenvalues
 * falling, the coordinates' variances the eigenvalues and their covariance
 * zero; PC1's variance at least that along any other direction. */
static void test_random(void **state)
{
    (void)state;
    enum { N = 3000, D = 5, K = 5 };
    static const double sd[D] = {5.0, 3.0, 2.0, 1.0, 0.5};
    rng_state r;
    rng_seed(&r, 11);
    float g[D * D], *z = malloc(N * D * sizeof *z), *x = malloc(N * D * sizeof *x);
    assert_non_null(z);
    assert_non_null(x);
    /* A random orthogonal Q by Gram-Schmidt on normal rows. */
    double q[D][D];
    rng_normal(&r, g, D * D);
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++)
            q[i][j] = g[i * D + j];
        for (int h = 0; h < i; h++) {
            double dot = 0.0;
            for (int j = 0; j < D; j++)
                dot += q[i][j] * q[h][j];
            for (int j = 0; j < D; j++)
                q[i][j] -= dot * q[h][j];
        }
        double nrm = 0.0;
        for (int j = 0; j < D; j++)
            nrm += q[i][j] * q[i][j];
        for (int j = 0; j < D; j++)
            q[i][j] /= sqrt(nrm);
    }
    rng_normal(&r, z, N * D);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double s = 0.5 * j - 1.0;
            for (int h = 0; h < D; h++)
                s += sd[h] * z[i * D + h] * q[h][j];
            x[i * D + j] = (float)s;
        }
    /* The covariance in double. */
    double mean[D] = {0}, cov[D][D] = {{0}};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            mean[j] += x[i * D + j] / (double)N;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                cov[a][b] += (x[i * D + a] - mean[a]) * (x[i * D + b] - mean[b]) / (N - 1.0);
    double trace = 0.0;
    for (int a = 0; a < D; a++)
        trace += cov[a][a];

    pca *p = fit_ok(x, N, D, K);
    printf("  eigenvalues");
    for (int c = 0; c < K; c++)
        printf(" %.4f", p->var[c]);
    printf(" (population: 25 9 4 1 0.25)\n");
    double big = p->var[0];
    assert_near(p->total_var, trace, 1e-5 * trace, "total variance");
    double sum = 0.0;
    for (int c = 0; c < K; c++) {
        const float *a = p->axes + c * D;
        if (c)
            assert_true(p->var[c] <= p->var[c - 1]);
        sum += pca_explained(p, c);
        /* C a = lambda a, and the sign rule. */
        double ca[D], err2 = 0.0;
        for (int i = 0; i < D; i++) {
            ca[i] = 0.0;
            for (int j = 0; j < D; j++)
                ca[i] += cov[i][j] * a[j];
            err2 += (ca[i] - p->var[c] * a[i]) * (ca[i] - p->var[c] * a[i]);
        }
        assert_near(sqrt(err2), 0.0, 1e-4 * big, "|C a - lambda a|");
        int top = 0;
        for (int j = 1; j < D; j++)
            if (fabsf(a[j]) > fabsf(a[top]) + 1e-5f)
                top = j;
        assert_true(a[top] > 0.0f);
        for (int e = 0; e < K; e++) {
            double dot = 0.0;
            for (int j = 0; j < D; j++)
                dot += (double)a[j] * p->axes[e * D + j];
            assert_near(dot, c == e ? 1.0 : 0.0, 1e-5, "axes orthonormal");
        }
    }
    assert_near(sum, 1.0, 1e-5, "explained variances sum to 1");
    /* The coordinates: variances the eigenvalues, uncorrelated. */
    float *xy = malloc(N * K * sizeof *xy);
    assert_non_null(xy);
    err_msg err;
    assert_int_equal(pca_project(p, x, N, xy, &err), 0);
    for (int c = 0; c < K; c++)
        for (int e = 0; e <= c; e++) {
            double s = 0.0;
            for (int i = 0; i < N; i++)
                s += (double)xy[i * K + c] * xy[i * K + e] / (N - 1.0);
            assert_near(s, c == e ? p->var[c] : 0.0, 1e-4 * big, "covariance of coordinates");
        }
    /* PC1 maximises the variance: no random direction beats it. */
    for (int t = 0; t < 200; t++) {
        float dir[D];
        rng_normal(&r, dir, D);
        double nrm = 0.0, v = 0.0;
        for (int j = 0; j < D; j++)
            nrm += (double)dir[j] * dir[j];
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                v += dir[a] * cov[a][b] * dir[b] / nrm;
        assert_true(v <= p->var[0] * (1.0 + 1e-5));
        assert_true(v >= p->var[K - 1] * (1.0 - 1e-5));
    }
    free(xy);
    pca_free(p);
    free(z);
    free(x);
}

/* ===================================================================== */
/* Degenerate cases                                                       */
/* ===================================================================== */

static void expect_error(const float *x, size_t n, size_t d, size_t k, const char *want)
{
    err_msg err;
    strcpy(err.text, "(none)");
    pca *p = pca_fit(x, n, d, k, &err);
    if (p) {
        pca_free(p);
        fail_msg("pca_fit(n %zu, d %zu, k %zu) succeeded; expected \"%s\"", n, d, k, want);
    }
    tu_assert_contains(err.text, want);
}

static void test_degenerate(void **state)
{
    (void)state;
    float same[5 * 3];
    for (int i = 0; i < 15; i++)
        same[i] = (float)(i % 3) + 0.1f;
    expect_error(same, 5, 3, 2, "all 5 points are the same: no variance to project");
    expect_error(same, 1, 3, 2, "PCA needs at least 2 points, not 1");
    expect_error(same, 0, 3, 2, "PCA needs at least 2 points, not 0");
    expect_error(same, 5, 3, 0, "0 components of 3-D points (1 to 3)");
    expect_error(same, 5, 3, 4, "4 components of 3-D points (1 to 3)");
    expect_error(same, 5, 0, 1, "PCA of 0-D points");
    float one[3] = {1.0f, 2.0f, 3.0f};
    expect_error(one, 3, 1, 2, "2 components of 1-D points (1 to 1)");
    float bad[4 * 2] = {0, 1, 2, 3, 4, NAN, 6, 7};
    expect_error(bad, 4, 2, 2, "point 2 has a non-finite coordinate");
    bad[5] = INFINITY;
    expect_error(bad, 4, 2, 2, "point 2 has a non-finite coordinate (inf)");

    /* 1-D, one component: the variance, axis +1, the centred values. */
    pca *p = fit_ok(one, 3, 1, 1);
    assert_near(p->var[0], 1.0, TOL, "1-D variance");
    assert_near(p->axes[0], 1.0, 0.0, "1-D axis");
    assert_near(pca_explained(p, 0), 1.0, TOL, "1-D explained");
    float c[3];
    err_msg err;
    assert_int_equal(pca_project(p, one, 3, c, &err), 0);
    assert_near(c[0], -1.0, TOL, "1-D coordinate");
    assert_near(c[2], 1.0, TOL, "1-D coordinate");
    pca_free(p);

    /* Points on a line in 3-D: all the variance on PC1, none on PC2 (a
     * defined picture: every point at 0 on the second axis). */
    float line[4 * 3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            line[i * 3 + j] = (float)(i * (j + 1)) - 1.0f;
    p = fit_ok(line, 4, 3, 2);
    assert_near(pca_explained(p, 0), 1.0, TOL, "a line: explained by PC1");
    assert_near(pca_explained(p, 1), 0.0, TOL, "a line: explained by PC2");
    assert_true(p->var[1] >= 0.0);
    float xy[4 * 2];
    assert_int_equal(pca_project(p, line, 4, xy, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_near(xy[i * 2 + 1], 0.0, 1e-4, "a line: PC2 coordinate");
    assert_near(xy[2] - xy[0], sqrt(14.0), 1e-4, "a line: spacing on PC1");
    /* Projecting nothing is nothing. */
    assert_int_equal(pca_project(p, line, 0, xy, &err), 0);
    pca_free(p);
    pca_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ellipse),
        cmocka_unit_test(test_sign_tie),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_degenerate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
