/* show.c - PNG pictures of a trained model (see include/show.h). */
#include "show.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"
#include "png_grid.h"
#include "rng.h"
#include "shard.h"

/* Keeps the display draws apart from every other stream of the same seed. */
#define PRIOR_SALT 0x7072696fULL

void show_prior_draws(float *eps, size_t n, size_t z_dim, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed ^ PRIOR_SALT);
    rng_normal(&rng, eps, n * z_dim);
}

void show_prior_z(const vae_model *m, vae_acts *a, const float *eps,
                  const uint8_t *labels, size_t n, float *z)
{
    size_t Z = m->cfg.z_dim;
    if (!m->cfg.n_classes) {
        memcpy(z, eps, n * Z * sizeof *z);
        return;
    }
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        memcpy(a->y, labels + s, B);
        vae_prior(m, a, B);
        for (size_t i = 0; i < B; i++) {
            const float *mu = vae_prior_mu(m, a, i), *lv = vae_prior_logvar(m, a, i);
            for (size_t j = 0; j < Z; j++)
                z[(s + i) * Z + j] = mu[j] + expf(0.5f * lv[j]) * eps[(s + i) * Z + j];
        }
    }
}

/* Decodes n codes into tiles (n x x_dim means), in batches of a->cap. */
static void decode_means(const vae_model *m, vae_acts *a, const float *z,
                         const uint8_t *labels, size_t n, float *tiles)
{
    size_t D = m->cfg.x_dim, Z = m->cfg.z_dim;
    a->training = 0; /* BatchNorm from its running averages */
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        memcpy(a->z, z + s * Z, B * Z * sizeof(float));
        if (labels)
            memcpy(a->y, labels + s, B);
        vae_decode(m, a, B);
        vae_mean(m, tiles + s * D, vae_logits(m, a), B * D);
    }
}

/* A buffer of n tiles of the model's images; NULL with err on failure. */
static float *alloc_tiles(const vae_model *m, size_t n, err_msg *err)
{
    size_t bytes;
    float *t = NULL;
    if (err_mul_size(n, m->cfg.x_dim * sizeof(float), &bytes) || !(t = malloc(bytes)))
        err_set(err, "out of memory for %zu images", n);
    return t;
}

int show_decode_png(const vae_model *m, vae_acts *a, const float *z,
                    const uint8_t *labels, size_t n, size_t ncol,
                    const char *path, err_msg *err)
{
    float *tiles = alloc_tiles(m, n, err);
    if (!tiles)
        return -1;
    decode_means(m, a, z, m->cfg.n_classes ? labels : NULL, n, tiles);
    size_t side = idx_square_side(m->cfg.x_dim);
    int rc = png_grid_write(path, tiles, n, side, m->cfg.x_dim / side, ncol,
                            SHOW_PAD, err);
    free(tiles);
    return rc;
}

/* Encodes images [start, start+B) of set into a's head (posterior). */
static void encode_images(const vae_model *m, vae_acts *a, const idx_set *set,
                          const idx_view *view, const uint32_t *idx,
                          size_t start, size_t B)
{
    shard_batch b = {set, idx, start, B, view, 0.0f, 0};
    shard_gather(a, &b, 0, B);
    a->training = 0;
    vae_encode(m, a, B);
}

int show_recon_png(const vae_model *m, vae_acts *a, const idx_set *set,
                   const idx_view *view, size_t n, const char *path,
                   err_msg *err)
{
    size_t D = m->cfg.x_dim;
    if (n > set->n)
        n = set->n;
    float *tiles = alloc_tiles(m, 2 * n, err);
    if (!tiles)
        return -1;
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        encode_images(m, a, set, view, NULL, s, B);
        vae_reparam(m, a, B, 1);
        vae_decode(m, a, B);
        for (size_t i = 0; i < B; i++) {
            memcpy(tiles + 2 * (s + i) * D, a->x + i * D, D * sizeof(float));
            vae_mean(m, tiles + (2 * (s + i) + 1) * D, vae_logits(m, a) + i * D, D);
        }
    }
    int rc = png_grid_write(path, tiles, 2 * n, set->rows, set->cols, SHOW_COLS,
                            SHOW_PAD, err);
    free(tiles);
    return rc;
}

int show_interpolate_png(const vae_model *m, vae_acts *a, const idx_set *set,
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
    const float *mu0 = vae_mu(m, a, 0), *mu1 = vae_mu(m, a, 1);
    uint8_t lab = label >= 0 ? (uint8_t)label : set->labels[from];
    for (size_t s = 0; s < steps; s++) {
        float t = (float)s / (float)(steps - 1);
        for (size_t j = 0; j < Z; j++)
            z[s * Z + j] = (1.0f - t) * mu0[j] + t * mu1[j];
        y[s] = lab;
    }
    decode_means(m, a, z, m->cfg.n_classes ? y : NULL, steps, tiles + D);
    rc = png_grid_write(path, tiles, n, set->rows, set->cols, n, SHOW_PAD, err);
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

int show_manifold_png(const vae_model *m, vae_acts *a, size_t side, int label,
                      const char *path, err_msg *err)
{
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
    show_prior_z(m, a, eps, y, n, z);
    rc = show_decode_png(m, a, z, y, n, side, path, err);
done:
    free(eps);
    free(z);
    free(y);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* The scatter                                                             */

#define SC_W 640
#define SC_H 680 /* a legend row above a square plot */
#define SC_TOP 40
#define SC_MARGIN 20

/* matplotlib's tab10, which colour-blind readers can mostly tell apart. */
static const uint8_t PALETTE[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
    {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

/* The digits 0-9 in 3x5 pixels, one row of 3 bits per 3 bits, top first. */
static const uint16_t DIGITS[10] = {
    075557, 026227, 071747, 071717, 055711, 074717, 074757, 071111, 075757, 075717};

static void put_px(uint8_t *img, long x, long y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= SC_W || y >= SC_H)
        return;
    memcpy(img + ((size_t)y * SC_W + (size_t)x) * 3, rgb, 3);
}

static void fill_rect(uint8_t *img, long x, long y, long w, long h, const uint8_t rgb[3])
{
    for (long i = 0; i < h; i++)
        for (long j = 0; j < w; j++)
            put_px(img, x + j, y + i, rgb);
}

/* Digit d at (x, y), each font pixel scale x scale. */
static void put_digit(uint8_t *img, long x, long y, int d, long scale, const uint8_t rgb[3])
{
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 3; c++)
            if (DIGITS[d] >> ((4 - r) * 3 + (2 - c)) & 1)
                fill_rect(img, x + c * scale, y + r * scale, scale, scale, rgb);
}

int show_scatter_png(const float *xy, const uint8_t *labels, size_t n,
                     const char *path, err_msg *err)
{
    static const uint8_t black[3] = {0, 0, 0}, frame[3] = {160, 160, 160},
                         axis[3] = {215, 215, 215}, other[3] = {90, 90, 90};
    uint8_t *img = malloc((size_t)SC_W * SC_H * 3);
    if (!img)
        return err_set(err, "out of memory for the scatter image");
    memset(img, 255, (size_t)SC_W * SC_H * 3);
    /* Data range, padded by 5%, over the finite points. */
    float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 2; d++)
            if (isfinite(xy[2 * i + d])) {
                lo[d] = fminf(lo[d], xy[2 * i + d]);
                hi[d] = fmaxf(hi[d], xy[2 * i + d]);
            }
    for (int d = 0; d < 2; d++) {
        if (!(hi[d] > lo[d])) {
            float c = isfinite(lo[d]) ? lo[d] : 0.0f;
            lo[d] = c - 1.0f, hi[d] = c + 1.0f;
        }
        float pad = 0.05f * (hi[d] - lo[d]);
        lo[d] -= pad, hi[d] += pad;
    }
    long x0 = SC_MARGIN, y0 = SC_TOP, side = SC_W - 2 * SC_MARGIN;
    float sx = (float)(side - 1) / (hi[0] - lo[0]), sy = (float)(side - 1) / (hi[1] - lo[1]);
    /* Axes through 0, then the frame. */
    if (lo[0] < 0.0f && hi[0] > 0.0f)
        fill_rect(img, x0 + (long)((0.0f - lo[0]) * sx), y0, 1, side, axis);
    if (lo[1] < 0.0f && hi[1] > 0.0f)
        fill_rect(img, x0, y0 + (long)((hi[1] - 0.0f) * sy), side, 1, axis);
    fill_rect(img, x0 - 1, y0 - 1, side + 2, 1, frame);
    fill_rect(img, x0 - 1, y0 + side, side + 2, 1, frame);
    fill_rect(img, x0 - 1, y0 - 1, 1, side + 2, frame);
    fill_rect(img, x0 + side, y0 - 1, 1, side + 2, frame);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(xy[2 * i]) || !isfinite(xy[2 * i + 1]))
            continue;
        long px = x0 + (long)((xy[2 * i] - lo[0]) * sx);
        long py = y0 + (long)((hi[1] - xy[2 * i + 1]) * sy);
        const uint8_t *rgb = labels[i] < 10 ? PALETTE[labels[i]] : other;
        fill_rect(img, px - 1, py - 1, 3, 3, rgb);
    }
    /* Legend: a swatch and the digit for each label. */
    for (int c = 0; c < 10; c++) {
        long lx = SC_MARGIN + 8 + c * 60;
        fill_rect(img, lx, 12, 14, 14, PALETTE[c]);
        put_digit(img, lx + 20, 9, c, 4, black);
    }
    int rc = png_grid_write_pixels(path, img, SC_W, SC_H, 3, err);
    free(img);
    return rc;
}
