/* show.c - PNG pictures of a trained model (see src/view/show.h). */
#include "show.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afile.h"
#include "idx.h"
#include "infer.h"
#include "pca.h"
#include "plot.h"
#include "png_grid.h"
#include "rng.h"
#include "shard.h"

void show_top_means(const model_net *m, model_acts *a, const float *z2, size_t n, float *z)
{
    size_t Z = m->cfg.z_dim, Z2 = m->cfg.z2_dim;
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        for (size_t i = 0; i < B; i++)
            memcpy(a->z2 + i * a->k * Z2, z2 + (s + i) * Z2, Z2 * sizeof *z);
        model_prior_top(m, a, B);
        for (size_t i = 0; i < B; i++)
            memcpy(z + (s + i) * Z, model_prior_top_mu(m, a, i * a->k), Z * sizeof *z);
    }
}

size_t show_class_cols(size_t n_classes)
{
    return n_classes < SHOW_CLASS_COLS ? n_classes : SHOW_CLASS_COLS;
}

int show_tiles_png(const model_net *m, const float *tiles, size_t n, size_t ncol,
                   const char *path, err_msg *err)
{
    const model_config *c = &m->cfg;
    return png_grid_write_color(path, tiles, n, c->height, c->width, (int)c->channels, ncol,
                                SHOW_PAD, err);
}

/* A buffer of n tiles of the model's images; NULL with err on failure. */
static float *alloc_tiles(const model_net *m, size_t n, err_msg *err)
{
    size_t bytes;
    float *t = NULL;
    if (err_mul_size(n, m->cfg.x_dim * sizeof(float), &bytes) || !(t = malloc(bytes)))
        err_set(err, "out of memory for %zu images", n);
    return t;
}

int show_decode_png(const model_net *m, model_acts *a, const float *z,
                    const uint8_t *labels, size_t n, size_t ncol,
                    const char *path, err_msg *err)
{
    float *tiles = alloc_tiles(m, n, err);
    if (!tiles)
        return -1;
    infer_decode_means(m, a, z, m->cfg.n_classes ? labels : NULL, n, tiles);
    int rc = show_tiles_png(m, tiles, n, ncol, path, err);
    free(tiles);
    return rc;
}

/* Encodes images [start, start+B) of set into a's head (posterior). */
static void encode_images(const model_net *m, model_acts *a, const idx_set *set,
                          const idx_view *view, const uint32_t *idx,
                          size_t start, size_t B)
{
    shard_batch b = {set, idx, start, B, view, 0.0f, 0};
    shard_gather(a, &b, 0, B);
    a->training = 0;
    model_encode(m, a, B);
}

int show_recon_png(const model_net *m, model_acts *a, const idx_set *set,
                   const idx_view *view, size_t n, const char *path,
                   err_msg *err)
{
    size_t D = m->cfg.x_dim;
    if (n > set->n)
        n = set->n;
    float *tiles = alloc_tiles(m, 2 * n, err);
    if (!tiles)
        return -1;
    infer_recon_means(m, a, set, view, n, tiles, tiles + D, 2 * D);
    int rc = show_tiles_png(m, tiles, 2 * n, SHOW_COLS, path, err);
    free(tiles);
    return rc;
}

int show_interpolate_png(const model_net *m, model_acts *a, const idx_set *set,
                         const idx_view *view, size_t from, size_t to,
                         size_t steps, int label, const char *path,
                         err_msg *err)
{
    size_t D = m->cfg.x_dim, Z = m->cfg.z_dim, n = steps + 2;
    if (from >= set->n || to >= set->n)
        return err_set(err, "image %zu is not in the test set (%zu images)",
                       from >= set->n ? from : to, set->n);
    if (steps < 2 || a->cap < 2)
        return err_set(err, "an interpolation needs at least 2 steps");
    float *tiles = alloc_tiles(m, n, err);
    float *z = malloc(steps * Z * sizeof *z);
    uint8_t *y = malloc(steps);
    int rc = -1;
    if (!tiles || !z || !y) {
        err_set(err, "out of memory for %zu steps", steps);
        goto done;
    }
    const uint32_t ends[2] = {(uint32_t)from, (uint32_t)to};
    encode_images(m, a, set, view, ends, 0, 2);
    memcpy(tiles, a->x, D * sizeof(float));
    memcpy(tiles + (n - 1) * D, a->x + D, D * sizeof(float));
    const float *mu0 = model_mu(m, a, 0), *mu1 = model_mu(m, a, 1);
    uint8_t lab = label >= 0 ? (uint8_t)label : set->labels[from];
    for (size_t s = 0; s < steps; s++) {
        float t = (float)s / (float)(steps - 1);
        for (size_t j = 0; j < Z; j++)
            z[s * Z + j] = (1.0f - t) * mu0[j] + t * mu1[j];
        y[s] = lab;
    }
    infer_decode_means(m, a, z, m->cfg.n_classes ? y : NULL, steps, tiles + D);
    rc = show_tiles_png(m, tiles, n, n, path, err);
done:
    free(tiles);
    free(z);
    free(y);
    return rc;
}

/* The standard normal's quantile function, Acklam's rational
 * approximation (relative error below 1.2e-9) for p in (0, 1). */
static double normal_quantile(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00};
    const double lo = 0.02425, hi = 1.0 - lo;
    if (p < lo || p > hi) {
        double q = sqrt(-2.0 * log(p < lo ? p : 1.0 - p));
        double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                   ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
        return p < lo ? x : -x;
    }
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

int show_map_is_grid(const model_config *c)
{
    return c->z_dim == 2 && !c->z2_dim;
}

int show_manifold_png(const model_net *m, model_acts *a, size_t side, int label,
                      const char *path, err_msg *err)
{
    if (m->cfg.z2_dim) /* a grid over h1 has no prior of its own to take quantiles of */
        return err_set(err, "the manifold grid is for one stochastic layer");
    if (m->cfg.z_dim != 2)
        return err_set(err, "the manifold grid needs a 2-D latent space, not %zu-D",
                       m->cfg.z_dim);
    size_t n = side * side;
    float *eps = malloc(n * 2 * sizeof *eps), *z = malloc(n * 2 * sizeof *z);
    uint8_t *y = malloc(n);
    int rc = -1;
    if (!eps || !z || !y) {
        err_set(err, "out of memory for a %zu x %zu grid", side, side);
        goto done;
    }
    /* Row i from the top is the second coordinate's quantile 1 - (i+1/2)/side,
     * column j the first's (j+1/2)/side: up and right are larger. */
    for (size_t i = 0; i < side; i++)
        for (size_t j = 0; j < side; j++) {
            eps[(i * side + j) * 2] = (float)normal_quantile(((double)j + 0.5) / (double)side);
            eps[(i * side + j) * 2 + 1] =
                (float)normal_quantile(1.0 - ((double)i + 0.5) / (double)side);
            y[i * side + j] = (uint8_t)(label > 0 ? label : 0);
        }
    infer_prior_z(m, a, eps, y, n, z);
    rc = show_decode_png(m, a, z, y, n, side, path, err);
done:
    free(eps);
    free(z);
    free(y);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* The latent map                                                          */

#define MAP_SCRIPT_MAX 65536

/* matplotlib's tab10, which colour-blind readers can mostly tell apart,
 * then tab20's light shades for labels 10-19; label l takes l mod 20. */
static const unsigned PALETTE[20] = {
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2,
    0x7f7f7f, 0xbcbd22, 0x17becf, 0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896,
    0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xc7c7c7, 0xdbdb8d, 0x9edae5};

/* The points as CSV into f, opened on csv: index,label,pc1,pc2, floats to
 * the last bit. Finished but not committed: gnuplot reads it under its temp
 * name while csv keeps its old contents. Returns 0, or -1 with err and f
 * not open. */
static int stage_map_csv(afile *f, const float *xy, const uint8_t *labels, size_t n,
                         const char *csv, err_msg *err)
{
    if (afile_open(f, csv, err))
        return -1;
    fputs("index,label,pc1,pc2\n", f->fp);
    for (size_t i = 0; i < n; i++)
        fprintf(f->fp, "%zu,%u,%.9g,%.9g\n", i, labels[i], (double)xy[2 * i],
                (double)xy[2 * i + 1]);
    return afile_finish(f, err);
}

/* Appends to the script at *len; -1 when it would not fit. */
static int add(char *script, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add(char *script, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(script + *len, MAP_SCRIPT_MAX - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= MAP_SCRIPT_MAX - *len)
        return -1;
    *len += (size_t)n;
    return 0;
}

/* The gnuplot script of the latent map into script (MAP_SCRIPT_MAX bytes):
 * the points read from the CSV at points, one colour a label. Returns 0,
 * or -1 with err (png names the chart). */
static int map_script(char *script, const char *points, const uint8_t *labels, size_t n,
                      const double explained[2], const char *title, const char *png,
                      err_msg *err)
{
    char qcsv[8200], qtitle[1200], xlabel[64], ylabel[64], qx[140], qy[140];
    snprintf(xlabel, sizeof xlabel, "PC1 (%.1f%% of variance)", 100.0 * explained[0]);
    snprintf(ylabel, sizeof ylabel, "PC2 (%.1f%%)", 100.0 * explained[1]);
    if (plot_quote(qcsv, sizeof qcsv, points) || plot_quote(qtitle, sizeof qtitle, title) ||
        plot_quote(qx, sizeof qx, xlabel) || plot_quote(qy, sizeof qy, ylabel))
        return err_set(err, "%s: path or title too long", png);
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++)
        seen[labels[i]] = 1;
    size_t len = 0;
    /* Equal units on both axes (size ratio -1): the spreads compare. The
     * points in the file's order, each coloured by its label (so no label
     * is drawn over all the others), then one legend entry a label, with
     * a bigger dot than the points'. */
    int bad = add(script, &len,
                  "set datafile separator ','\n"
                  "set title %s\n"
                  "set xlabel %s\n"
                  "set ylabel %s\n"
                  "set size ratio -1\n"
                  "set grid\n"
                  "set zeroaxis lt 1 lc rgb '#bbbbbb'\n"
                  "set key outside right top title 'label' box\n"
                  "array C[20] = [",
                  qtitle, qx, qy);
    for (int c = 0; c < 20 && !bad; c++)
        bad = add(script, &len, "%u%s", PALETTE[c], c < 19 ? ", " : "]\n");
    if (!bad)
        bad = add(script, &len,
                  "plot %s using 3:4:(C[int(column(2)) %% 20 + 1]) skip 1 "
                  "with points pt 7 ps 0.35 lc rgb variable notitle",
                  qcsv);
    for (int c = 0; c < 256 && !bad; c++)
        if (seen[c])
            bad = add(script, &len,
                      ", keyentry with points pt 7 ps 1.2 lc rgb '#%06x' title '%d'",
                      PALETTE[c % 20], c);
    if (!bad)
        bad = add(script, &len, "\n");
    return bad ? err_set(err, "%s: too many labels or too long a path", png) : 0;
}

int show_latent_map(const float *xy, const uint8_t *labels, size_t n,
                    const double explained[2], const char *title, const char *csv,
                    const char *png, err_msg *err)
{
    /* The CSV and the PNG replace their files together or not at all:
     * gnuplot draws from the points' temp file, and both are committed
     * once the chart is whole. */
    afile points, chart;
    if (stage_map_csv(&points, xy, labels, n, csv, err))
        return -1;
    const char *drawn_from = points.tmp_path ? points.tmp_path : points.path;
    char *script = malloc(MAP_SCRIPT_MAX);
    int rc = !script ? err_set(err, "out of memory for the script of %s", png)
                     : map_script(script, drawn_from, labels, n, explained, title, png, err);
    if (rc == 0)
        rc = plot_png_stage(&chart, png, SHOW_MAP_W, SHOW_MAP_H, script, "latent map", err);
    free(script);
    if (rc != 0) {
        afile_abort(&points);
        return -1;
    }
    return afile_commit_pair(&chart, &points, err);
}

int show_latent_pca(const model_net *m, shard_set *s, const idx_set *set,
                    const idx_view *view, uint64_t seed, int layer, const char *csv,
                    const char *png, double explained[2], err_msg *err)
{
    size_t n = set->n, Z = layer == 2 ? m->cfg.z2_dim : m->cfg.z_dim, bytes;
    explained[0] = explained[1] = 0.0;
    if (Z < 2)
        return err_set(err, "a %zu-D latent has no map of two components", Z);
    float *mu = NULL, *xy = NULL;
    pca *p = NULL;
    int rc = -1;
    if (err_mul_size(n * sizeof(float), Z, &bytes) || !(mu = malloc(bytes)) ||
        !(xy = malloc(n * 2 * sizeof *xy))) {
        err_set(err, "out of memory for %zu latent codes", n);
        goto done;
    }
    infer_layer_means(m, s, set, view, seed, layer, mu);
    char title[160];
    snprintf(title, sizeof title, "posterior means of %zu test images, on their first "
             "two principal components (%zu-D latent%s)", n, Z,
             !m->cfg.z2_dim ? "" : layer == 2 ? ", h2" : ", h1");
    if (!(p = pca_fit(mu, n, Z, 2, err)))
        goto done;
    explained[0] = pca_explained(p, 0);
    explained[1] = pca_explained(p, 1);
    if (pca_project(p, mu, n, xy, err) == 0)
        rc = show_latent_map(xy, set->labels, n, explained, title, csv, png, err);
done:
    pca_free(p);
    free(mu);
    free(xy);
    return rc;
}

char *show_map_csv_path(const char *png)
{
    size_t n = strlen(png);
    if (n >= 4 && !strcmp(png + n - 4, ".png"))
        n -= 4;
    char *p = malloc(n + 5);
    if (p) {
        memcpy(p, png, n);
        strcpy(p + n, ".csv");
    }
    return p;
}
