/* infer.c - evaluation and image grids on top of the model passes. */
#include "infer.h"

#include <stdlib.h>
#include <string.h>

#include "png_grid.h"
#include "rng.h"

#define GRID_COLS 8
#define GRID_PAD 2
/* Salts that keep the evaluation and display RNG streams apart from the
 * training streams drawn from the same --seed. */
#define EVAL_SALT 0x6576616cULL
#define PRIOR_SALT 0x7072696fULL

double infer_eval(const vae_model *m, shard_set *s, const idx_set *set,
                  uint64_t seed, double *bce, double *kl)
{
    rng_state rng;
    rng_seed(&rng, seed ^ EVAL_SALT);
    double sb = 0.0, sk = 0.0;
    for (size_t at = 0; at < set->n; at += s->cap) {
        size_t B = set->n - at < s->cap ? set->n - at : s->cap;
        shard_batch b = {set, NULL, at, B};
        double bb, kk;
        shard_draw_eps(s, m, &rng, B);
        shard_run(s, m, &b, 0, &bb, &kk);
        sb += bb;
        sk += kk;
    }
    double n = set->n ? (double)set->n : 1.0;
    *bce = sb / n;
    *kl = sk / n;
    return *bce + *kl;
}

void infer_prior_draws(float *z, size_t n, size_t z_dim, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed ^ PRIOR_SALT);
    rng_normal(&rng, z, n * z_dim);
}

int infer_sample_png(const vae_model *m, vae_acts *a, const float *z, size_t n,
                     const char *path, err_msg *err)
{
    size_t D = m->cfg.x_dim, Z = m->cfg.z_dim, bytes;
    if (err_mul_size(n, D * sizeof(float), &bytes))
        return err_set(err, "%zu images are too many", n);
    float *tiles = malloc(bytes);
    if (!tiles)
        return err_set(err, "out of memory for %zu images", n);
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        memcpy(a->z, z + s * Z, B * Z * sizeof(float));
        vae_decode(m, a, B);
        vae_sigmoid(tiles + s * D, vae_logits(m, a), B * D);
    }
    int rc = png_grid_write(path, tiles, n, IDX_ROWS, D / IDX_ROWS, GRID_COLS, GRID_PAD, err);
    free(tiles);
    return rc;
}

int infer_recon_png(const vae_model *m, vae_acts *a, const idx_set *set,
                    size_t n, const char *path, err_msg *err)
{
    size_t D = m->cfg.x_dim;
    if (n > set->n)
        n = set->n;
    float *tiles = malloc(2 * n * D * sizeof(float) + 1);
    if (!tiles)
        return err_set(err, "out of memory for %zu images", n);
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        idx_gather(set, NULL, s, B, a->x);
        vae_encode(m, a, B);
        vae_reparam(m, a, B, 1);
        vae_decode(m, a, B);
        for (size_t i = 0; i < B; i++) {
            memcpy(tiles + 2 * (s + i) * D, a->x + i * D, D * sizeof(float));
            vae_sigmoid(tiles + (2 * (s + i) + 1) * D, vae_logits(m, a) + i * D, D);
        }
    }
    int rc = png_grid_write(path, tiles, 2 * n, set->rows, set->cols, GRID_COLS,
                            GRID_PAD, err);
    free(tiles);
    return rc;
}
