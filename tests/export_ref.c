/* export_ref.c - vae's own numbers for tests/export_torch.py to compare
 * with PyTorch's: runs the model of a checkpoint over the test set of a data
 * folder exactly as `vae eval --seed SEED` draws it (evaluation mode, eps
 * from the eval stream, image k getting normals k*z_dim ..; with two
 * stochastic layers k*(z_dim+z2_dim) .., h1's then h2's), and writes raw
 * little-endian float32 files into OUT_DIR:
 *
 *   x.f32       n x x_dim   the encoder's input (and the target)
 *   eps.f32     n x z_dim   the draws
 *   mu.f32, logvar.f32      n x z_dim
 *   logits.f32  n x x_dim   the decoder's output at z = mu + eps exp(logvar/2)
 *   rec.f32, kl.f32         n   -log p(x|z) and the KL, per image
 *
 * and for a model of two stochastic layers (z = h1, whose kl is the
 * sampled one: log q(h1|x) + log q(h2|h1) - log p(h1|h2) - log p(h2) at
 * the draws):
 *
 *   eps2.f32    n x z2_dim  h2's draws (each image's after its h1 noise)
 *   mu2.f32, logvar2.f32    n x z2_dim  q(h2|h1) at the drawn h1
 *   mp.f32, lp.f32          n x z_dim   p(h1|h2)'s head at h2 = mu2 +
 *                                       eps2 exp(logvar2/2)
 *
 * usage: export_ref CKPT DATA_DIR OUT_DIR SEED. Exits 0, or 1 with a message. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "idx.h"
#include "infer.h"
#include "rng.h"
#include "model.h"

#define EVAL_SALT 0x6576616cULL /* docs/checkpoint.md, "Test loss" */
#define BATCH 25

static int write_f32(const char *dir, const char *name, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    /* The tests run on little-endian hosts; the file format says so too. */
    int bad = !fp || fwrite(x, sizeof *x, n, fp) != n;
    if (fp && fclose(fp) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "export_ref: cannot write %s\n", path);
    return bad ? -1 : 0;
}

/* The eval stream's normals for B images, as `vae eval` draws them
 * (draw_share in src/train/shard.c): one layer, the B x z_dim in one call;
 * two, each image's z_dim normals of h1 then its z2_dim of h2. */
static void draw_eps(const model_net *m, rng_state *rng, model_acts *a, size_t B)
{
    size_t Z = m->cfg.z_dim, Z2 = m->cfg.z2_dim;
    if (!Z2) {
        rng_normal(rng, a->eps, B * Z);
        return;
    }
    for (size_t i = 0; i < B; i++) {
        rng_normal(rng, a->eps + i * Z, Z);
        rng_normal(rng, a->eps2 + i * Z2, Z2);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: export_ref CKPT DATA_DIR OUT_DIR SEED\n");
        return 2;
    }
    const char *ckpt = argv[1], *data = argv[2], *out = argv[3];
    uint64_t seed = strtoull(argv[4], NULL, 10);
    model_net m;
    ckpt_train t;
    idx_set set;
    model_acts a;
    err_msg err;
    memset(&set, 0, sizeof set);
    memset(&a, 0, sizeof a);
    if (ckpt_load_model(ckpt, &m, &t, &err) || idx_load(&set, data, "t10k", &err) ||
        model_acts_init(&a, &m.cfg, BATCH, &err)) {
        fprintf(stderr, "export_ref: %s\n", err.text);
        return 1;
    }
    size_t n = set.n, D = m.cfg.x_dim, Z = m.cfg.z_dim, Z2 = m.cfg.z2_dim;
    float *x = malloc(n * D * sizeof *x), *logits = malloc(n * D * sizeof *logits);
    float *eps = malloc(n * Z * sizeof *eps), *mu = malloc(n * Z * sizeof *mu);
    float *lv = malloc(n * Z * sizeof *lv), *rec = malloc(n * sizeof *rec);
    float *kl = malloc(n * sizeof *kl);
    /* Two stochastic layers: h2's draws, q(h2|h1)'s head and p(h1|h2)'s
     * (for one layer a float each, unused: malloc(0) may give NULL). */
    size_t top = Z2 ? n : 0;
    float *eps2 = malloc((top * Z2 + 1) * sizeof *eps2);
    float *mu2 = malloc((top * Z2 + 1) * sizeof *mu2), *lv2 = malloc((top * Z2 + 1) * sizeof *lv2);
    float *mp = malloc((top * Z + 1) * sizeof *mp), *lp = malloc((top * Z + 1) * sizeof *lp);
    if (!x || !logits || !eps || !mu || !lv || !rec || !kl || !eps2 || !mu2 || !lv2 || !mp ||
        !lp) {
        fprintf(stderr, "export_ref: out of memory\n");
        return 1;
    }
    idx_view view = infer_test_view(t.set.binarize);
    rng_state rng;
    rng_seed(&rng, seed ^ EVAL_SALT);
    a.training = 0; /* BatchNorm with the running averages */
    for (size_t at = 0; at < n; at += BATCH) {
        size_t B = n - at < BATCH ? n - at : BATCH;
        idx_gather(&set, NULL, at, B, &view, a.x);
        a.xin = a.x;
        memcpy(a.y, set.labels + at, B);
        draw_eps(&m, &rng, &a, B);
        model_encode(&m, &a, B);
        model_reparam(&m, &a, B, 0);
        model_decode(&m, &a, B);
        model_loss(&m, &a, B, &(model_loss_spec){MODEL_OBJ_ELBO, 1.0, MODEL_EST_STANDARD});
        memcpy(x + at * D, a.x, B * D * sizeof *x);
        memcpy(eps + at * Z, a.eps, B * Z * sizeof *eps);
        memcpy(logits + at * D, model_logits(&m, &a), B * D * sizeof *logits);
        for (size_t i = 0; i < B; i++) {
            memcpy(mu + (at + i) * Z, model_mu(&m, &a, i), Z * sizeof *mu);
            memcpy(lv + (at + i) * Z, model_logvar(&m, &a, i), Z * sizeof *lv);
            rec[at + i] = a.rec[i];
            kl[at + i] = a.kl[i];
            if (!Z2)
                continue;
            /* One draw an image: row i of the top networks is image i. */
            const float *q2 = model_top_mu(&m, &a, i), *p1 = model_prior_top_mu(&m, &a, i);
            memcpy(eps2 + (at + i) * Z2, a.eps2 + i * Z2, Z2 * sizeof *eps2);
            memcpy(mu2 + (at + i) * Z2, q2, Z2 * sizeof *mu2);
            memcpy(lv2 + (at + i) * Z2, q2 + Z2, Z2 * sizeof *lv2);
            memcpy(mp + (at + i) * Z, p1, Z * sizeof *mp);
            memcpy(lp + (at + i) * Z, p1 + Z, Z * sizeof *lp);
        }
    }
    int rc = write_f32(out, "x.f32", x, n * D) || write_f32(out, "eps.f32", eps, n * Z) ||
             write_f32(out, "mu.f32", mu, n * Z) || write_f32(out, "logvar.f32", lv, n * Z) ||
             write_f32(out, "logits.f32", logits, n * D) ||
             write_f32(out, "rec.f32", rec, n) || write_f32(out, "kl.f32", kl, n);
    if (!rc && Z2)
        rc = write_f32(out, "eps2.f32", eps2, n * Z2) || write_f32(out, "mu2.f32", mu2, n * Z2) ||
             write_f32(out, "logvar2.f32", lv2, n * Z2) || write_f32(out, "mp.f32", mp, n * Z) ||
             write_f32(out, "lp.f32", lp, n * Z);
    free(x), free(logits), free(eps), free(mu), free(lv), free(rec), free(kl);
    free(eps2), free(mu2), free(lv2), free(mp), free(lp);
    model_acts_free(&a);
    idx_free(&set);
    model_free(&m);
    return rc ? 1 : 0;
}
