/* test_traverse.c - latent traversals: the KL ranking against values worked
 * out by hand (a model whose encoder head, and prior network, are set so
 * every image gets known codes), the traversal codes, the unit of the
 * moves, the picture's size and tiles, and the errors. */
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

#include "png_grid.h"
#include "rng.h"
#include "traverse.h"
#include "testutil.h"

#define N_IMG 6
#define KL_TOL 1e-6 /* nats: the sums are in double, the codes in float */

static char dir[64];
static model_net mn, mc, mv; /* N(0, I) prior; conditional; conv */
static model_acts an, ac, av;
static float pixels[N_IMG * 784];

/* The head of n's model, [mu | logvar] whatever the image: weights 0. */
static const float MU[4] = {0.5f, -2.0f, 0.0f, 1.0f};
static const float LV[4] = {0.0f, -3.0f, 0.0f, -0.69314718f}; /* log 1/2 */

/* The head layer's weights set to 0 and its bias to [mu | lv]. */
static void set_head(model_net *m, const float *mu, const float *lv)
{
    const model_layer *L = &m->layer[m->cfg.n_hidden];
    size_t Z = m->cfg.z_dim;
    memset(m->params + L->w_off, 0, (L->in + L->n_onehot) * L->out * sizeof(float));
    memcpy(m->params + L->b_off, mu, Z * sizeof(float));
    memcpy(m->params + L->b_off + Z, lv, Z * sizeof(float));
}

/* The conditional model's prior, by hand: its hidden layer (ReLU) gives
 * h_0 = y and 0 elsewhere; its head mp_j = MP0[j] + MP1[j] y, lp_j = LP[j]. */
static const float MP0[3] = {0.5f, 0.0f, -1.0f}, MP1[3] = {0.25f, 0.0f, 0.0f};
static const float LP[3] = {0.0f, 1.0f, -1.0f};

static void set_prior(model_net *m)
{
    size_t nh = m->cfg.n_hidden, Z = m->cfg.z_dim, K = m->cfg.n_classes;
    const model_layer *H = &m->layer[2 * nh + 2], *P = &m->layer[2 * nh + 3];
    float *w = m->params + H->w_off; /* out x K: the one-hot's columns */
    memset(w, 0, H->out * K * sizeof(float));
    memset(m->params + H->b_off, 0, H->out * sizeof(float));
    for (size_t y = 0; y < K; y++)
        w[y] = (float)y;
    w = m->params + P->w_off; /* 2Z x H->out */
    memset(w, 0, P->out * P->in * sizeof(float));
    for (size_t j = 0; j < Z; j++) {
        w[j * P->in] = MP1[j];
        m->params[P->b_off + j] = MP0[j];
        m->params[P->b_off + Z + j] = LP[j];
    }
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/vae-test-traverse-XXXXXX");
    if (tu_mkdtemp(dir))
        return -1;
    err_msg err;
    model_config cn = {784, 1, {8}, 4, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_config cc = {784, 1, {8}, 3, MODEL_ACT_RELU, MODEL_LIK_CB, 10, MODEL_ARCH_MLP};
    model_config cv = {784, 3, {2, 4, 4}, 3, MODEL_ACT_LEAKY, MODEL_LIK_GAUSSIAN, 0, MODEL_ARCH_CONV};
    if (model_init(&mn, &cn, &err) || model_init(&mc, &cc, &err) || model_init(&mv, &cv, &err) ||
        model_acts_init(&an, &cn, N_IMG, &err) || model_acts_init(&ac, &cc, 4, &err) ||
        model_acts_init(&av, &cv, 5, &err))
        return -1;
    rng_state r;
    rng_seed(&r, 11);
    model_init_params(&mn, &r);
    model_init_params(&mc, &r);
    model_init_params(&mv, &r);
    for (size_t i = 0; i < N_IMG * 784; i++)
        pixels[i] = (float)rng_below(&r, 256) / 255.0f;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    model_free(&mn);
    model_free(&mc);
    model_free(&mv);
    model_acts_free(&an);
    model_acts_free(&ac);
    model_acts_free(&av);
    tu_remove_tree(dir);
    return 0;
}

/* Encodes the N_IMG images (labels y, for a conditional model) into mu and
 * lv (N_IMG x z_dim), a->cap at a time. */
static void encode(const model_net *m, model_acts *a, const uint8_t *y, float *mu, float *lv)
{
    size_t Z = m->cfg.z_dim;
    for (size_t s = 0; s < N_IMG; s += a->cap) {
        size_t B = N_IMG - s < a->cap ? N_IMG - s : a->cap;
        memcpy(a->xin, pixels + s * 784, B * 784 * sizeof(float));
        if (y)
            memcpy(a->y, y + s, B);
        a->training = 0;
        model_encode(m, a, B);
        for (size_t i = 0; i < B; i++) {
            memcpy(mu + (s + i) * Z, model_mu(m, a, i), Z * sizeof(float));
            memcpy(lv + (s + i) * Z, model_logvar(m, a, i), Z * sizeof(float));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The ranking                                                              */

/* N(0, I): each dimension's KL is 1/2 (mu^2 + exp(lv) - 1 - lv), the same
 * for every image, worked out by hand:
 *   d0: 1/2 (0.25 + 1 - 1 - 0)              = 0.125
 *   d1: 1/2 (4 + e^-3 - 1 + 3)              = 3.0248935341...
 *   d2: 1/2 (0 + 1 - 1 - 0)                 = 0
 *   d3: 1/2 (1 + 0.5 - 1 + log 2)           = 0.5965735902...
 * so the order is 1, 3, 0, 2. */
static void test_rank_by_hand(void **state)
{
    (void)state;
    set_head(&mn, MU, LV);
    float mu[N_IMG * 4], lv[N_IMG * 4];
    encode(&mn, &an, NULL, mu, lv);
    traverse_dim d[4];
    err_msg err;
    assert_int_equal(traverse_rank(&mn, NULL, 1, mu, lv, NULL, NULL, N_IMG, d, &err), 0);
    const size_t want_dim[4] = {1, 3, 0, 2};
    const double want_kl[4] = {3.0248935341839319, 0.59657359027997264, 0.125, 0.0};
    for (int r = 0; r < 4; r++) {
        printf("  rank %d: dim %zu, KL %.9f (by hand %.9f)\n", r + 1, d[r].dim, d[r].kl,
               want_kl[r]);
        assert_int_equal(d[r].dim, want_dim[r]);
        assert_true(fabs(d[r].kl - want_kl[r]) < KL_TOL);
        assert_true(d[r].sd_means == 0.0); /* every image has the same code */
    }
    /* The sum is the per-image KL the objective computes. */
    double sum = d[0].kl + d[1].kl + d[2].kl + d[3].kl;
    assert_true(fabs(sum - (0.125 + 3.0248935341839319 + 0.59657359027997264)) < KL_TOL);
}

/* Codes that differ between images: the KL is the mean over them, the
 * spread of the means their standard deviation; equal KLs keep the order
 * of their dimensions, a NaN goes last. */
static void test_rank_mean_and_ties(void **state)
{
    (void)state;
    /* 4 images, 3 dimensions:
     *   d0: mu = +1, -1, +1, -1, lv = 0: KL 1/2 each; means' sd 1
     *   d1: mu = 0, lv = 0, 0, log 4, log 4: KL 0, 0, (3 - log 4)/2 twice:
     *       mean (3 - log 4)/4 = 0.40342640972
     *   d2: mu = 1, 1, 1, 1, lv = 0: KL 1/2, tying d0; means' sd 0 */
    const float mu[12] = {1, 0, 1, -1, 0, 1, 1, 0, 1, -1, 0, 1};
    const float l4 = 1.3862943611f;
    const float lv[12] = {0, 0, 0, 0, 0, 0, 0, l4, 0, 0, l4, 0};
    model_config c3 = mn.cfg;
    c3.z_dim = 3;
    model_net m3 = {0};
    err_msg err;
    assert_int_equal(model_layout(&m3, &c3, &err), 0); /* no parameters needed */
    traverse_dim d[3];
    assert_int_equal(traverse_rank(&m3, NULL, 1, mu, lv, NULL, NULL, 4, d, &err), 0);
    assert_int_equal(d[0].dim, 0);
    assert_int_equal(d[1].dim, 2);
    assert_int_equal(d[2].dim, 1);
    assert_true(fabs(d[0].kl - 0.5) < KL_TOL && fabs(d[1].kl - 0.5) < KL_TOL);
    assert_true(fabs(d[2].kl - (3.0 - log(4.0)) / 4.0) < KL_TOL);
    /* The means' spread about their own mean: 1 for d0, none for d2 (all 1). */
    assert_true(fabs(d[0].sd_means - 1.0) < 1e-12);
    assert_true(d[1].sd_means == 0.0 && d[2].sd_means == 0.0);
    /* A NaN KL (a diverged model) is ranked last, not anywhere. */
    float bad[12];
    memcpy(bad, lv, sizeof bad);
    bad[0] = NAN;
    assert_int_equal(traverse_rank(&m3, NULL, 1, mu, bad, NULL, NULL, 4, d, &err), 0);
    assert_int_equal(d[0].dim, 2);
    assert_int_equal(d[1].dim, 1);
    assert_int_equal(d[2].dim, 0);
    assert_true(isnan(d[2].kl));
}

/* A conditional model: each image's KL is against p(z | y) of its label,
 * 1/2 (lp - lv + (exp(lv) + (mu - mp)^2) / exp(lp) - 1), with the head and
 * the prior network set by hand (mp_0 = 0.5 + y/4, mp_2 = -1; lp = 0, 1, -1). */
static void test_rank_conditional(void **state)
{
    (void)state;
    const float mu_h[3] = {1.0f, 0.0f, -1.0f}, lv_h[3] = {0.0f, 0.0f, -1.0f};
    set_head(&mc, mu_h, lv_h);
    set_prior(&mc);
    const uint8_t y[N_IMG] = {0, 2, 2, 9, 4, 1};
    float mu[N_IMG * 3], lv[N_IMG * 3];
    encode(&mc, &ac, y, mu, lv);
    /* By hand, per label y:
     *   d0: mp = 0.5 + y/4, lp = 0:  1/2 (1 + (0.5 - y/4)^2 - 1) = (0.5 - y/4)^2 / 2
     *   d1: mp = 0, lp = 1:          1/2 (1 + e^-1 - 1) = e^-1 / 2 = 0.18393972
     *   d2: mp = -1, lp = -1, lv = -1: 1/2 (0 + e^-1 e^1 - 1) = 0 */
    double d0 = 0.0;
    for (int i = 0; i < N_IMG; i++)
        d0 += 0.5 * (0.5 - y[i] / 4.0) * (0.5 - y[i] / 4.0);
    d0 /= N_IMG; /* 0.125, 0, 0, 1.53125, 0.125, 0.03125: mean 0.3020833 */
    traverse_dim d[3];
    err_msg err;
    assert_int_equal(traverse_rank(&mc, &ac, 1, mu, lv, NULL, y, N_IMG, d, &err), 0);
    printf("  by hand: d0 %.7f, d1 %.7f, d2 0; got dims %zu %zu %zu: %.7f %.7f %.7f\n",
           d0, 0.5 * exp(-1.0), d[0].dim, d[1].dim, d[2].dim, d[0].kl, d[1].kl, d[2].kl);
    assert_int_equal(d[0].dim, 0);
    assert_int_equal(d[1].dim, 1);
    assert_int_equal(d[2].dim, 2);
    assert_true(fabs(d[0].kl - d0) < KL_TOL);
    assert_true(fabs(d[1].kl - 0.5 * exp(-1.0)) < KL_TOL);
    assert_true(fabs(d[2].kl) < KL_TOL);
    /* Errors: no images; a label the model does not have. */
    assert_int_equal(traverse_rank(&mc, &ac, 1, mu, lv, NULL, y, 0, d, &err), -1);
    tu_assert_contains(err.text, "no images");
    const uint8_t y_bad[N_IMG] = {0, 1, 10, 0, 0, 0};
    assert_int_equal(traverse_rank(&mc, &ac, 1, mu, lv, NULL, y_bad, N_IMG, d, &err), -1);
    tu_assert_contains(err.text, "image 2 has label 10; the model has labels 0 to 9");
}

/* ------------------------------------------------------------------------ */
/* Codes, unit, picture                                                     */

/* Each row moves its one coordinate from exactly -3 to +3 units around the
 * centre, evenly; every other coordinate is the centre's, bit for bit. */
static void test_codes(void **state)
{
    (void)state;
    enum { Z = 5, ROWS = 3, STEPS = 7 };
    const float center[Z] = {0.3f, -1.25f, 2.0f, 0.0f, -0.7f};
    const float sd[Z] = {1.0f, 0.5f, 2.0f, 1.0f, 0.1f};
    const size_t dims[ROWS] = {4, 0, 2};
    float z[ROWS * STEPS * Z];
    traverse_codes(center, sd, Z, dims, ROWS, STEPS, 3.0f, z);
    for (size_t r = 0; r < ROWS; r++)
        for (size_t s = 0; s < STEPS; s++) {
            const float *row = z + (r * STEPS + s) * Z;
            double t = -3.0 + (double)s; /* 7 steps: -3, -2, ..., 3 */
            for (size_t j = 0; j < Z; j++) {
                if (j != dims[r]) {
                    assert_memory_equal(&row[j], &center[j], sizeof(float));
                    continue;
                }
                /* (z - c) / sd is t, to the float rounding of c + t sd */
                double got = ((double)row[j] - center[j]) / sd[j];
                if (!(fabs(got - t) <= 4e-7 * (fabs(center[j]) / sd[j] + 3.0)))
                    fail_msg("row %zu step %zu: moved %.9f units, expected %g", r, s, got, t);
            }
        }
    /* The ends and the middle exactly. */
    assert_true(z[(0 * STEPS + 0) * Z + 4] == center[4] + -3.0f * sd[4]);
    assert_true(z[(0 * STEPS + 6) * Z + 4] == center[4] + 3.0f * sd[4]);
    assert_true(z[(2 * STEPS + 3) * Z + 2] == center[2]);
    /* An even number of steps: no middle code, but the same ends. */
    float z2[1 * 4 * Z];
    traverse_codes(center, sd, Z, dims + 1, 1, 4, 3.0f, z2);
    assert_true(z2[0] == center[0] - 3.0f && z2[3 * Z] == center[0] + 3.0f);
    assert_true(fabsf(z2[Z] - (center[0] - 1.0f)) < 1e-6f);
}

/* The unit is the prior's standard deviation: 1 for N(0, I); exp(lp / 2)
 * of the label's p(z | y) for a conditional model. */
static void test_unit(void **state)
{
    (void)state;
    float sd[4];
    traverse_unit(&mn, &an, 1, NULL, 3, sd);
    for (int j = 0; j < 4; j++)
        assert_true(sd[j] == 1.0f);
    set_prior(&mc);
    traverse_unit(&mc, &ac, 1, NULL, 7, sd);
    for (int j = 0; j < 3; j++)
        assert_true(fabsf(sd[j] - expf(0.5f * LP[j])) < 1e-6f);
}


/* Asserts that tile (row, col) of a grid ncol tiles wide shows the decoding
 * of code z (with label y for a conditional model). */
static void assert_tile(const uint8_t *px, size_t ncol, size_t row, size_t col,
                        const model_net *m, model_acts *a, const float *z, uint8_t y)
{
    float mean[784];
    memcpy(a->z, z, m->cfg.z_dim * sizeof(float));
    if (m->cfg.n_classes)
        a->y[0] = y;
    a->training = 0;
    model_decode(m, a, 1);
    model_mean(m, mean, model_logits(m, a), 784);
    size_t W = ncol * 30 + 2;
    for (size_t i = 0; i < 28; i++)
        for (size_t j = 0; j < 28; j++) {
            int want = (int)(mean[i * 28 + j] * 255.0f + 0.5f);
            int got = px[(2 + row * 30 + i) * W + 2 + col * 30 + j];
            if (abs(got - want) > 1)
                fail_msg("tile (%zu, %zu) pixel (%zu, %zu): %d, expected %d", row, col, i,
                         j, got, want);
        }
}

/* rows x steps tiles of 28 x 28 with save_image's padding of 2: the middle
 * column is the code itself, the first the coordinate at -3 units. */
static void test_png(void **state)
{
    (void)state;
    char path[160];
    err_msg err;
    tu_join(path, sizeof path, dir, "traverse.png");
    const float c4[4] = {0.2f, -0.4f, 1.0f, 0.0f};
    const size_t dims[4] = {1, 3, 0, 2};
    /* 4 rows of 11 in batches of 6 (an's cap) */
    assert_int_equal(traverse_png(&mn, &an, 1, NULL, c4, 0, dims, 4, 11, path, &err), 0);
    uint8_t *px = tu_read_png(path, 11 * 30 + 2, 4 * 30 + 2);
    assert_tile(px, 11, 0, 5, &mn, &an, c4, 0);
    float z[4];
    memcpy(z, c4, sizeof z);
    z[3] = c4[3] - 3.0f; /* row 1 moves dimension 3; N(0, I): unit 1 */
    assert_tile(px, 11, 1, 0, &mn, &an, z, 0);
    free(px);
    /* Conditional: decoded with the label, in the unit of its prior. */
    set_prior(&mc);
    const float c3[3] = {0.5f, 0.5f, -0.5f};
    assert_int_equal(traverse_png(&mc, &ac, 1, NULL, c3, 6, dims + 1, 2, 3, path, &err), -1);
    tu_assert_contains(err.text, "latent dimension 3: the model has dimensions 0 to 2");
    const size_t d3[2] = {2, 1};
    assert_int_equal(traverse_png(&mc, &ac, 1, NULL, c3, 6, d3, 2, 3, path, &err), 0);
    px = tu_read_png(path, 3 * 30 + 2, 2 * 30 + 2);
    float zc[3] = {c3[0], c3[1], c3[2] + 3.0f * expf(0.5f * LP[2])};
    assert_tile(px, 3, 0, 2, &mc, &ac, zc, 6);
    assert_tile(px, 3, 1, 1, &mc, &ac, c3, 6);
    free(px);
    /* The conv VAE, 3 rows of 2 in batches of 5. */
    const size_t d2[3] = {2, 0, 1};
    assert_int_equal(traverse_png(&mv, &av, 1, NULL, c3, 0, d2, 3, 2, path, &err), 0);
    px = tu_read_png(path, 2 * 30 + 2, 3 * 30 + 2);
    zc[0] = c3[0] + 3.0f, zc[1] = c3[1], zc[2] = c3[2];
    assert_tile(px, 2, 1, 1, &mv, &av, zc, 0);
    free(px);
    /* Errors. */
    assert_int_equal(traverse_png(&mn, &an, 1, NULL, c4, 0, dims, 4, 1, path, &err), -1);
    tu_assert_contains(err.text, "at least 2 steps");
    assert_int_equal(traverse_png(&mn, &an, 1, NULL, c4, 0, dims, 0, 5, path, &err), -1);
    tu_assert_contains(err.text, "at least one latent dimension");
    assert_int_equal(traverse_png(&mc, &ac, 1, NULL, c3, 10, d3, 2, 3, path, &err), -1);
    tu_assert_contains(err.text, "label 10: the model has labels 0 to 9");
    tu_join(path, sizeof path, dir, "nope/traverse.png");
    assert_int_equal(traverse_png(&mn, &an, 1, NULL, c4, 0, dims, 4, 11, path, &err), -1);
    tu_assert_contains(err.text, "does not exist");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_by_hand),
        cmocka_unit_test(test_rank_mean_and_ties),
        cmocka_unit_test(test_rank_conditional),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_unit),
        cmocka_unit_test(test_png),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
