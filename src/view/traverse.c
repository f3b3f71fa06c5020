/* traverse.c - latent dimensions ranked by their KL, and traversals of
 * one dimension at a time (see src/view/traverse.h). */
#include "traverse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "show.h"

/* The prior rows [mp | lp] (2 z_dim) of every label of a conditional
 * model, through a's prior network a->cap labels at a time; NULL with err
 * when out of memory. */
static float *prior_rows(const model_net *m, model_acts *a, err_msg *err)
{
    size_t C = m->cfg.n_classes, Z = m->cfg.z_dim;
    float *p = malloc(C * 2 * Z * sizeof *p);
    if (!p) {
        err_set(err, "out of memory for the priors of %zu labels", C);
        return NULL;
    }
    for (size_t s = 0; s < C; s += a->cap) {
        size_t B = C - s < a->cap ? C - s : a->cap;
        for (size_t i = 0; i < B; i++)
            a->y[i] = (uint8_t)(s + i);
        model_prior(m, a, B);
        for (size_t i = 0; i < B; i++) {
            memcpy(p + (s + i) * 2 * Z, model_prior_mu(m, a, i), Z * sizeof *p);
            memcpy(p + (s + i) * 2 * Z + Z, model_prior_logvar(m, a, i), Z * sizeof *p);
        }
    }
    return p;
}

/* Whether layer is a two-layer model's h2. */
static int top_layer(const model_net *m, int layer)
{
    return m->cfg.z2_dim && layer == 2;
}

size_t traverse_latent(const model_net *m, int layer)
{
    return top_layer(m, layer) ? m->cfg.z2_dim : m->cfg.z_dim;
}

/* Largest KL first, then the lower dimension; a NaN counts as the least. */
static int by_kl_desc(const void *pa, const void *pb)
{
    const traverse_dim *a = pa, *b = pb;
    double x = isnan(a->kl) ? -INFINITY : a->kl, y = isnan(b->kl) ? -INFINITY : b->kl;
    if (x != y)
        return x > y ? -1 : 1;
    return (a->dim > b->dim) - (a->dim < b->dim);
}

int traverse_rank(const model_net *m, model_acts *a, int layer, const float *mu,
                  const float *logvar, const float *image_prior, const uint8_t *labels,
                  size_t n, traverse_dim *dims, err_msg *err)
{
    size_t Z = traverse_latent(m, layer), C = m->cfg.n_classes;
    if (n == 0)
        return err_set(err, "no images to rank the latent dimensions by");
    float *prior = NULL;
    if (C) {
        for (size_t i = 0; i < n; i++)
            if (labels[i] >= C)
                return err_set(err, "image %zu has label %u; the model has labels 0 to %zu",
                               i, (unsigned)labels[i], C - 1);
        if (!(prior = prior_rows(m, a, err)))
            return -1;
    }
    for (size_t j = 0; j < Z; j++)
        dims[j] = (traverse_dim){j, 0.0, 0.0};
    /* Sums over the images in double: the KL terms, and the means' first
     * moment (sd_means holds it until the second pass). */
    for (size_t i = 0; i < n; i++) {
        const float *u = mu + i * Z, *lv = logvar + i * Z;
        const float *mp = prior          ? prior + (size_t)labels[i] * 2 * Z
                          : image_prior ? image_prior + i * 2 * Z
                                        : NULL;
        for (size_t j = 0; j < Z; j++) {
            double v = exp((double)lv[j]), t;
            if (mp) {
                double lp = mp[Z + j], d = (double)u[j] - mp[j];
                t = 0.5 * (lp - lv[j] + (v + d * d) * exp(-lp) - 1.0);
            } else {
                t = 0.5 * ((double)u[j] * u[j] + v - 1.0 - lv[j]);
            }
            dims[j].kl += t;
            dims[j].sd_means += u[j];
        }
    }
    /* The spread of the means about their mean, as a second pass (no
     * cancellation between two large sums). */
    for (size_t j = 0; j < Z; j++) {
        double mean = dims[j].sd_means / (double)n, ss = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)mu[i * Z + j] - mean;
            ss += d * d;
        }
        dims[j].kl /= (double)n;
        dims[j].sd_means = sqrt(ss / (double)n);
    }
    free(prior);
    qsort(dims, Z, sizeof *dims, by_kl_desc);
    return 0;
}

void traverse_unit(const model_net *m, model_acts *a, int layer, const float *prior_row,
                   uint8_t label, float *sd)
{
    size_t Z = traverse_latent(m, layer);
    if (prior_row) {
        for (size_t j = 0; j < Z; j++)
            sd[j] = expf(0.5f * prior_row[Z + j]);
        return;
    }
    if (!m->cfg.n_classes) {
        for (size_t j = 0; j < Z; j++)
            sd[j] = 1.0f;
        return;
    }
    a->y[0] = label;
    model_prior(m, a, 1);
    const float *lp = model_prior_logvar(m, a, 0);
    for (size_t j = 0; j < Z; j++)
        sd[j] = expf(0.5f * lp[j]);
}

void traverse_codes(const float *center, const float *sd, size_t z_dim,
                    const size_t *dims, size_t rows, size_t steps, float range,
                    float *z)
{
    for (size_t r = 0; r < rows; r++) {
        size_t d = dims[r];
        for (size_t s = 0; s < steps; s++) {
            float *row = z + (r * steps + s) * z_dim;
            /* t in double, so the ends are -range and +range exactly and an
             * odd number of steps has t = 0 (the code itself) in the middle. */
            double t = -(double)range + 2.0 * range * (double)s / (double)(steps - 1);
            memcpy(row, center, z_dim * sizeof *row);
            row[d] = center[d] + (float)t * sd[d];
        }
    }
}

int traverse_png(const model_net *m, model_acts *a, int layer, const float *prior_row,
                 const float *center, uint8_t label, const size_t *dims, size_t rows,
                 size_t steps, const char *path, err_msg *err)
{
    size_t Z = traverse_latent(m, layer), n, bytes;
    if (steps < 2)
        return err_set(err, "a traversal needs at least 2 steps, not %zu", steps);
    if (rows == 0)
        return err_set(err, "a traversal needs at least one latent dimension");
    for (size_t r = 0; r < rows; r++)
        if (dims[r] >= Z)
            return err_set(err, "latent dimension %zu: the model has dimensions 0 to %zu",
                           dims[r], Z - 1);
    if (m->cfg.n_classes && label >= m->cfg.n_classes)
        return err_set(err, "label %u: the model has labels 0 to %zu", (unsigned)label,
                       m->cfg.n_classes - 1);
    if (err_mul_size(rows, steps, &n) || err_mul_size(n, Z * sizeof(float), &bytes))
        return err_set(err, "a traversal of %zu x %zu codes is too large", rows, steps);
    float *sd = malloc(Z * sizeof *sd), *z = malloc(bytes);
    uint8_t *y = malloc(n);
    int rc = -1;
    if (!sd || !z || !y) {
        err_set(err, "out of memory for %zu x %zu codes", rows, steps);
        goto done;
    }
    traverse_unit(m, a, layer, prior_row, label, sd);
    traverse_codes(center, sd, Z, dims, rows, steps, TRAVERSE_RANGE, z);
    memset(y, label, n);
    if (top_layer(m, layer)) { /* codes of h2: pictures of p(h1|h2)'s means */
        float *h1 = malloc(n * m->cfg.z_dim * sizeof *h1);
        if (!h1) {
            err_set(err, "out of memory for %zu x %zu codes", rows, steps);
            goto done;
        }
        show_top_means(m, a, z, n, h1);
        rc = show_decode_png(m, a, h1, y, n, steps, path, err);
        free(h1);
    } else {
        rc = show_decode_png(m, a, z, y, n, steps, path, err);
    }
done:
    free(sd);
    free(z);
    free(y);
    return rc;
}
