/* test_cnn.c - the convolutional VAE: each layer kernel against a direct
 * loop or its adjoint, BatchNorm's two modes, every parameter's gradient
 * against central finite differences (training mode, batch statistics),
 * with one draw per image and with k draws (the K-sample ELBO and the
 * importance-weighted bound), and a batch split across teams of 1 to 3
 * threads computing the same. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "par.h"
#include "shard.h"
#include "model.h"

static float urand(rng_state *r)
{
    return 2.0f * rng_uniform(r) - 1.0f;
}

/* Direct convolution, 4x4 stride 2 pad 1, CNHW, against conv_forward. */
static void test_conv_direct(void **state)
{
    (void)state;
    enum { N = 3, CI = 2, CO = 3, S = 8, OS = 4 };
    rng_state r;
    rng_seed(&r, 1);
    float x[CI * N * S * S], w[CO * CI * 16], b[CO], y[CO * N * OS * OS];
    float col[CI * 16 * N * OS * OS];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = urand(&r);
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        w[i] = urand(&r);
    for (size_t i = 0; i < CO; i++)
        b[i] = urand(&r);
    conv_forward(y, col, x, w, b, N, CI, CO, S, S);
    double worst = 0.0;
    for (int co = 0; co < CO; co++)
        for (int n = 0; n < N; n++)
            for (int oh = 0; oh < OS; oh++)
                for (int ow = 0; ow < OS; ow++) {
                    double v = b[co];
                    for (int ci = 0; ci < CI; ci++)
                        for (int i = 0; i < 4; i++)
                            for (int j = 0; j < 4; j++) {
                                int ih = oh * 2 + i - 1, iw = ow * 2 + j - 1;
                                if (ih >= 0 && ih < S && iw >= 0 && iw < S)
                                    v += (double)w[((co * CI + ci) * 4 + i) * 4 + j] *
                                         x[((ci * N + n) * S + ih) * S + iw];
                            }
                    worst = fmax(worst, fabs(v - y[((co * N + n) * OS + oh) * OS + ow]));
                }
    printf("  conv: max |sgemm - direct| = %.2e\n", worst);
    assert_true(worst < 1e-5);
}

/* The transposed convolution is the adjoint of the convolution's linear
 * part: <conv(x; w), y> = <x, convt(y; w)> with the same weights. */
static void test_convt_is_adjoint(void **state)
{
    (void)state;
    enum { N = 2, C1 = 3, C2 = 4, S = 8, OS = 4 };
    rng_state r;
    rng_seed(&r, 2);
    static float x[C1 * N * S * S], y[C2 * N * OS * OS], w[C2 * C1 * 16], zero[8];
    static float cx[C2 * N * OS * OS], ty[C1 * N * S * S], col[C2 * 16 * N * OS * OS];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = urand(&r);
    for (size_t i = 0; i < sizeof y / sizeof *y; i++)
        y[i] = urand(&r);
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        w[i] = urand(&r);
    /* conv C1 -> C2 at side 8 uses w as (C2, C1, 4, 4); convt C2 -> C1 at
     * side 4 reads the same array as (C2, C1, 4, 4) = (CI, CO, K, K). */
    conv_forward(cx, col, x, w, zero, N, C1, C2, S, S);
    convt_forward(ty, col, y, w, zero, N, C2, C1, OS, OS);
    double a = 0.0, b = 0.0;
    for (size_t i = 0; i < sizeof cx / sizeof *cx; i++)
        a += (double)cx[i] * y[i];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        b += (double)x[i] * ty[i];
    printf("  <conv x, y> = %.6f, <x, convt y> = %.6f\n", a, b);
    assert_true(fabs(a - b) < 1e-4 * fabs(a));
}

/* BatchNorm: training normalizes with the batch's statistics and moves the
 * running ones; evaluation uses the running ones. */
static void test_batchnorm_modes(void **state)
{
    (void)state;
    enum { C = 2, NHW = 50 };
    float x[C * NHW], y[C * NHW], xhat[C * NHW], invstd[C];
    float gamma[C] = {1.5f, 0.5f}, beta[C] = {0.2f, -1.0f}, rm[C] = {0, 0}, rv[C] = {1, 1};
    double scratch[2 * C + 1];
    for (int i = 0; i < C * NHW; i++)
        x[i] = (float)(i % NHW) * (i < NHW ? 1.0f : -2.0f) + 3.0f;
    bn_forward_train(y, xhat, invstd, x, gamma, beta, rm, rv, C, 5, 10, NULL, scratch);
    for (int c = 0; c < C; c++) {
        double m = 0.0, v = 0.0;
        for (int i = 0; i < NHW; i++)
            m += y[c * NHW + i];
        m /= NHW;
        for (int i = 0; i < NHW; i++)
            v += (y[c * NHW + i] - m) * (y[c * NHW + i] - m);
        v /= NHW;
        /* the output has mean beta and std gamma (up to eps) */
        assert_true(fabs(m - beta[c]) < 1e-5);
        assert_true(fabs(sqrt(v) - gamma[c]) < 1e-4);
    }
    /* x in channel 0: 3..52, mean 27.5, unbiased var 212.5 */
    assert_true(fabsf(rm[0] - 2.75f) < 1e-5f);
    assert_true(fabsf(rv[0] - (0.9f + 0.1f * 212.5f)) < 1e-3f);
    bn_forward_eval(y, x, gamma, beta, rm, rv, C, NHW);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < NHW; i++) {
            float want = gamma[c] * (x[c * NHW + i] - rm[c]) / sqrtf(rv[c] + 1e-5f) + beta[c];
            assert_true(fabsf(y[c * NHW + i] - want) < 1e-4f);
        }
}

/* ------------------------------------------------------------------------ */
/* The model's gradient against finite differences                          */

/* 6x6 images padded to 16x16, two conv blocks of 2 and 3 channels: few
 * pixels keep the loss small, so float rounding puts little noise on the
 * finite differences (the border of zeros still runs through every layer
 * and every BatchNorm statistic).
 * The gradient checks use tanh, which has no kink: with BatchNorm coupling
 * every unit of a block, a finite-difference step moves many LeakyReLU
 * units across 0. LeakyReLU's own derivative is checked in test_model. */
static model_config small_conv(model_lik lik, model_act act)
{
    model_config c = {36, 2, {2, 3}, 2, act, lik, 0, MODEL_ARCH_CONV};
    return c;
}

#define B 3
#define FD_STEP 1e-2f
/* Float rounding of the loss through BatchNorm puts noise on each finite
 * difference (it grows as the step shrinks): single entries are held to
 * a tolerance above it, and each tensor as a whole, along a random
 * direction, where the noise is small against the derivative. */
#define GRAD_ATOL 3e-3
#define GRAD_RTOL 2e-2
#define DIR_STEP 1e-2f /* the length of a directional step */
#define DIR_ATOL 3e-3
#define DIR_RTOL 5e-3

/* A conv model of cfg with random parameters, batch inputs and eps for k
 * draws an image, in training mode; r continues the random
 * stream. */
static void setup_model_k(model_net *m, model_acts *a, model_config cfg, size_t k,
                          rng_state *r)
{
    err_msg err;
    assert_int_equal(model_init(m, &cfg, &err), 0);
    assert_int_equal(model_acts_init_k(a, &cfg, B, k, &err), 0);
    assert_int_equal(a->k, k);
    model_init_params(m, r);
    /* Move BatchNorm's gamma and beta off 1 and 0, so their gradients and
     * the normalization are exercised away from the identity. */
    for (size_t b = 0; b < m->n_blocks; b++)
        if (m->block[b].has_bn)
            for (size_t c = 0; c < 2 * m->block[b].cout; c++)
                m->params[m->block[b].bn_off + c] += 0.3f * urand(r);
    for (size_t i = 0; i < B * cfg.x_dim; i++)
        a->x[i] = rng_uniform(r);
    rng_normal(r, a->eps, B * k * cfg.z_dim);
    a->training = 1;
}

static void setup_model(model_net *m, model_acts *a, model_config cfg, rng_state *r)
{
    setup_model_k(m, a, cfg, 1, r);
}

/* The loss of objective obj with beta 1. */
static const model_loss_spec *loss_of(model_objective obj)
{
    static const model_loss_spec elbo = {MODEL_OBJ_ELBO, 1.0}, iwae = {MODEL_OBJ_IWAE, 1.0};
    return obj == MODEL_OBJ_IWAE ? &iwae : &elbo;
}

/* The batch's objective obj with the fixed eps (beta 1): rec + kl for one
 * draw and the ELBO, else what model_loss says is minimised, a->obj (the
 * ELBO's rec averaged over the draws plus kl; the negative IW bound). */
static double objective(const model_net *m, model_acts *a, model_objective obj)
{
    model_encode(m, a, B);
    model_reparam(m, a, B, 0);
    model_decode(m, a, B);
    model_loss(m, a, B, loss_of(obj));
    double s = 0.0;
    for (int i = 0; i < B; i++)
        if (a->k == 1 && obj == MODEL_OBJ_ELBO)
            s += (double)a->rec[i] + a->kl[i];
        else
            s += (double)a->obj[i];
    return s;
}

/* Which LeakyReLU units are positive after the last forward pass (none
 * recorded for a smooth activation). */
static size_t sign_mask(const model_net *m, const model_acts *a, unsigned char *mask,
                        size_t cap)
{
    size_t k = 0;
    if (m->cfg.act == MODEL_ACT_TANH)
        return 0;
    for (size_t b = 0; b < m->n_blocks; b++) {
        const model_block *blk = &m->block[b];
        if (!blk->has_bn)
            continue;
        size_t os = blk->transposed ? 4 * blk->h * blk->w : (blk->h / 2) * (blk->w / 2);
        size_t rows = blk->transposed ? B * a->k : B; /* the decoder's: every draw */
        for (size_t i = 0; i < blk->cout * rows * os && k < cap; i++)
            mask[k++] = a->cnn.act[b][i] > 0.0f;
    }
    return k;
}

#define MASK_CAP 8192

/* Every parameter's gradient, and each tensor's along a random direction,
 * against central finite differences of the objective obj with `draws`
 * draws an image (eps fixed, scaled by eps_scale). */
static void check_gradients_cfg(model_config cfg, uint64_t seed, size_t draws,
                                model_objective obj, float eps_scale)
{
    static unsigned char base[MASK_CAP], up_m[MASK_CAP], down_m[MASK_CAP];
    model_net m;
    model_acts a;
    rng_state r;
    rng_seed(&r, seed);
    setup_model_k(&m, &a, cfg, draws, &r);
    for (size_t i = 0; i < B * draws * cfg.z_dim; i++)
        a.eps[i] *= eps_scale;
    float *grads = calloc(m.n_params, sizeof(float));
    objective(&m, &a, obj);
    if (obj == MODEL_OBJ_IWAE && draws > 1) {
        /* The weights must be far from uniform, or the IW bound's gradient
         * would be the ELBO's with the KL sampled. */
        float far = 0.0f;
        for (size_t i = 0; i < B * draws; i++)
            far = fmaxf(far, fabsf(a.wt[i] - 1.0f / (float)draws));
        printf("  the normalised weights: largest |wt - 1/k| %.3f\n", far);
        assert_true(far > 0.1f);
    }
    size_t nmask = sign_mask(&m, &a, base, MASK_CAP);
    assert_true(nmask < MASK_CAP);
    if (cfg.act == MODEL_ACT_TANH)
        assert_int_equal(nmask, 0);
    model_backward(&m, &a, grads, B, loss_of(obj));
    size_t bad = 0, skipped = 0;
    double maxdiff = 0.0;
    for (size_t i = 0; i < m.n_params; i++) {
        float keep = m.params[i];
        m.params[i] = keep + FD_STEP;
        double up = objective(&m, &a, obj);
        sign_mask(&m, &a, up_m, MASK_CAP);
        m.params[i] = keep - FD_STEP;
        double down = objective(&m, &a, obj);
        sign_mask(&m, &a, down_m, MASK_CAP);
        m.params[i] = keep;
        /* A step that moves a LeakyReLU unit across 0 measures two slopes:
         * no derivative there. */
        if (memcmp(base, up_m, nmask) || memcmp(base, down_m, nmask)) {
            skipped++;
            continue;
        }
        double fd = (up - down) / (2.0 * FD_STEP);
        double diff = fabs(fd - grads[i]);
        if (diff > maxdiff)
            maxdiff = diff;
        if (!(diff <= GRAD_ATOL + GRAD_RTOL * fabs(fd))) {
            if (bad < 5)
                printf("  param %zu: backward %.6g, finite difference %.6g\n", i,
                       grads[i], fd);
            bad++;
        }
    }
    /* Each tensor along a random +-1 direction v: (L(p + h v) - L(p - h v))
     * / 2h against grad . v, the step h v of length DIR_STEP. */
    size_t offs[4 * MODEL_MAX_BLOCKS + 4][2], nt = 0;
    for (size_t b = 0; b < m.n_blocks; b++) {
        const model_block *k = &m.block[b];
        offs[nt][0] = k->w_off, offs[nt++][1] = k->cin * k->cout * 16;
        offs[nt][0] = k->b_off, offs[nt++][1] = k->cout;
        if (k->has_bn) {
            offs[nt][0] = k->bn_off, offs[nt++][1] = k->cout;            /* gamma */
            offs[nt][0] = k->bn_off + k->cout, offs[nt++][1] = k->cout;  /* beta */
        }
    }
    for (size_t l = 0; l < 2; l++) {
        offs[nt][0] = m.layer[l].w_off, offs[nt++][1] = m.layer[l].in * m.layer[l].out;
        offs[nt][0] = m.layer[l].b_off, offs[nt++][1] = m.layer[l].out;
    }
    double worst_dir = 0.0;
    for (size_t t = 0; t < nt; t++) {
        size_t off = offs[t][0], n = offs[t][1];
        float *keep = malloc(n * sizeof *keep), *v = malloc(n * sizeof *v);
        memcpy(keep, m.params + off, n * sizeof *keep);
        double an = 0.0;
        for (size_t i = 0; i < n; i++) {
            v[i] = rng_below(&r, 2) ? 1.0f : -1.0f;
            an += (double)grads[off + i] * v[i];
        }
        /* a step of length DIR_STEP along v: each entry moves DIR_STEP / sqrt(n) */
        float h = DIR_STEP / sqrtf((float)n);
        for (size_t i = 0; i < n; i++)
            m.params[off + i] = keep[i] + h * v[i];
        double up = objective(&m, &a, obj);
        for (size_t i = 0; i < n; i++)
            m.params[off + i] = keep[i] - h * v[i];
        double down = objective(&m, &a, obj);
        memcpy(m.params + off, keep, n * sizeof *keep);
        double fd = (up - down) / (2.0 * h), diff = fabs(fd - an);
        worst_dir = fmax(worst_dir, diff / (DIR_ATOL + DIR_RTOL * fabs(fd)));
        if (!(diff <= DIR_ATOL + DIR_RTOL * fabs(fd))) {
            printf("  tensor at %zu (%zu values): grad . v %.6g, finite difference %.6g\n",
                   off, n, an, fd);
            bad++;
        }
        free(keep);
        free(v);
    }
    printf("  %zu tensors along random directions: worst |difference| / tolerance "
           "%.2f (tolerance %.0e + %.0e |fd|)\n", nt, worst_dir, DIR_ATOL, DIR_RTOL);
    /* The running averages get no gradient, and the loss does not depend
     * on them in training mode. */
    for (size_t b = 0; b < m.n_blocks; b++)
        if (m.block[b].has_bn)
            for (size_t c = 2 * m.block[b].cout; c < 4 * m.block[b].cout; c++)
                assert_true(grads[m.block[b].bn_off + c] == 0.0f);
    printf("  conv %zux%zux%zu %s, %s k=%zu: %zu parameters, %zu straddle a LeakyReLU kink "
           "(skipped), max |backward - fd| %.2e (tolerance %.0e + %.0e |fd|)\n",
           m.cfg.height, m.cfg.width, m.cfg.channels, model_lik_name(cfg.likelihood),
           obj == MODEL_OBJ_IWAE ? "iwae" : "elbo", draws, m.n_params,
           skipped, maxdiff, GRAD_ATOL, GRAD_RTOL);
    assert_int_equal(bad, 0);
    assert_true(skipped * 10 < m.n_params);
    free(grads);
    model_free(&m);
    model_acts_free(&a);
}

static void check_gradients_k(model_lik lik, uint64_t seed, size_t draws, model_objective obj,
                              float eps_scale)
{
    check_gradients_cfg(small_conv(lik, MODEL_ACT_TANH), seed, draws, obj, eps_scale);
}

static void check_gradients(model_lik lik, uint64_t seed)
{
    check_gradients_k(lik, seed, 1, MODEL_OBJ_ELBO, 1.0f);
}

static void test_grad_bernoulli(void **state)
{
    (void)state;
    check_gradients(MODEL_LIK_BERNOULLI, 3);
}

static void test_grad_gaussian(void **state)
{
    (void)state;
    check_gradients(MODEL_LIK_GAUSSIAN, 4);
}

/* Colour and non-square images: 3x5 RGB padded to 16x16 (6 rows on top, 5
 * columns left) through two blocks; 10x2 RGB through one block, padded to
 * 10x8 (a 5x4 bottom). The input's three channels and the output's are
 * split from and joined into each pixel's three values. Small images, as
 * small_conv's, keep float noise off the finite differences. */
static void test_grad_colour_non_square(void **state)
{
    (void)state;
    model_config c = {45, 2, {2, 3}, 2, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_CONV,
                    3, 5, 3};
    model_net m;
    err_msg err;
    assert_int_equal(model_layout(&m, &c, &err), 0);
    assert_int_equal(m.block[0].h, 16);
    assert_int_equal(m.block[0].w, 16);
    assert_int_equal(m.pad_top, 6);
    assert_int_equal(m.pad_left, 5);
    assert_int_equal(m.block[0].cin, 3);
    assert_int_equal(m.block[3].cout, 3);
    check_gradients_cfg(c, 21, 1, MODEL_OBJ_ELBO, 1.0f);
    /* K draws: the decoder's rows through the crop. (The IWAE's gradient
     * is checked on small_conv; with eps scaled up its single entries here
     * come within float noise of the tolerance.) */
    check_gradients_cfg(c, 22, 3, MODEL_OBJ_ELBO, 1.0f);
    model_config d = {60, 1, {2}, 2, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_CONV,
                    10, 2, 3};
    assert_int_equal(model_layout(&m, &d, &err), 0);
    assert_int_equal(m.block[0].h, 10);
    assert_int_equal(m.block[0].w, 8);
    assert_int_equal(m.pad_top, 0);
    assert_int_equal(m.pad_left, 3);
    assert_int_equal(m.layer[0].in, 2 * 5 * 4);
    check_gradients_cfg(d, 23, 1, MODEL_OBJ_ELBO, 1.0f);
}

/* A wrong gradient is caught: the check above is not vacuous. */
static void test_grad_check_catches_errors(void **state)
{
    (void)state;
    model_net m;
    model_acts a;
    rng_state r;
    rng_seed(&r, 5);
    setup_model(&m, &a, small_conv(MODEL_LIK_BERNOULLI, MODEL_ACT_TANH), &r);
    float *grads = calloc(m.n_params, sizeof(float));
    objective(&m, &a, MODEL_OBJ_ELBO);
    model_backward(&m, &a, grads, B, loss_of(MODEL_OBJ_ELBO));
    /* the second conv's weight with the largest gradient */
    size_t i = m.block[1].w_off;
    for (size_t j = i; j < m.block[1].w_off + m.block[1].cin * m.block[1].cout * 16; j++)
        if (fabsf(grads[j]) > fabsf(grads[i]))
            i = j;
    float keep = m.params[i];
    m.params[i] = keep + FD_STEP;
    double up = objective(&m, &a, MODEL_OBJ_ELBO);
    m.params[i] = keep - FD_STEP;
    double down = objective(&m, &a, MODEL_OBJ_ELBO);
    m.params[i] = keep;
    double fd = (up - down) / (2.0 * FD_STEP);
    assert_true(fabs(fd - grads[i]) < GRAD_ATOL + GRAD_RTOL * fabs(fd));
    assert_false(fabs(fd - 1.2 * grads[i]) < GRAD_ATOL + GRAD_RTOL * fabs(fd));
    free(grads);
    model_free(&m);
    model_acts_free(&a);
}

/* ------------------------------------------------------------------------ */
/* K draws per image                                                        */

/* The K-sample ELBO and the IW bound with k = 3: the decoder on B * 3
 * rows, its BatchNorm's statistics over all of them. The IWAE's eps are
 * scaled up so that the draws' weights differ. */
static void test_grad_k_draws(void **state)
{
    (void)state;
    check_gradients_k(MODEL_LIK_BERNOULLI, 13, 3, MODEL_OBJ_ELBO, 1.0f);
    check_gradients_k(MODEL_LIK_BERNOULLI, 14, 3, MODEL_OBJ_IWAE, 3.0f);
    check_gradients_k(MODEL_LIK_GAUSSIAN, 15, 3, MODEL_OBJ_IWAE, 3.0f);
}

/* With one draw the IW bound is the ELBO (Burda et al.): the same
 * reconstruction term, bit for bit, and the same decoder gradient (the one
 * draw's weight is 1); only the KL differs, sampled (log q(z|x) - log p(z))
 * in the IWAE where the ELBO has it in closed form, so the two objectives
 * agree in expectation over eps. */
static void test_iwae_one_draw_is_elbo(void **state)
{
    (void)state;
    model_config cfg = small_conv(MODEL_LIK_BERNOULLI, MODEL_ACT_TANH);
    model_net m;
    model_acts e, w;
    err_msg err;
    rng_state r;
    rng_seed(&r, 16);
    setup_model_k(&m, &e, cfg, 1, &r);
    assert_int_equal(model_acts_init_k(&w, &cfg, B, 1, &err), 0);
    w.training = 1;
    memcpy(w.x, e.x, B * cfg.x_dim * sizeof(float));
    size_t Z = cfg.z_dim, n = m.n_params;
    float *ge = calloc(n, sizeof(float)), *gw = calloc(n, sizeof(float));
    enum { DRAWS = 4000 };
    double diff = 0.0, diff2 = 0.0, kl = 0.0;
    for (int t = 0; t < DRAWS; t++) {
        rng_normal(&r, e.eps, B * Z);
        memcpy(w.eps, e.eps, B * Z * sizeof(float));
        double oe = objective(&m, &e, MODEL_OBJ_ELBO), ow = objective(&m, &w, MODEL_OBJ_IWAE);
        for (size_t i = 0; i < B; i++) {
            assert_true(w.rec[i] == e.rec[i] && w.rrec[i] == w.rec[i]);
            assert_true(w.kl[i] == e.kl[i]);
            assert_true(w.wt[i] == 1.0f);
            assert_true(fabsf(e.obj[i] - (e.rec[i] + e.kl[i])) <= 1e-6f * e.obj[i]);
            /* the IWAE's: rec + log q(z|x) - log p(z), the 2 pi terms cancelled */
            const float *lv = model_logvar(&m, &w, i);
            double want = w.rec[i];
            for (size_t d = 0; d < Z; d++) {
                double z = w.z[i * Z + d], x = w.eps[i * Z + d];
                want += 0.5 * z * z - 0.5 * x * x - 0.5 * lv[d];
            }
            assert_true(fabs(w.obj[i] - want) <= 1e-5 * fabs(want));
        }
        if (t == 0) { /* the decoder's gradient is the same, bit for bit */
            model_backward(&m, &e, ge, B, loss_of(MODEL_OBJ_ELBO));
            model_backward(&m, &w, gw, B, loss_of(MODEL_OBJ_IWAE));
            size_t d0 = m.block[m.n_blocks / 2].w_off, d1 = m.layer[0].w_off;
            for (size_t i = d0; i < d1; i++)
                assert_true(ge[i] == gw[i]);
            const model_layer *L = &m.layer[1];
            for (size_t i = L->w_off; i < L->b_off + L->out; i++)
                assert_true(ge[i] == gw[i]);
            assert_true(memcmp(ge, gw, n * sizeof(float)) != 0); /* the encoder's differ */
        }
        diff += ow - oe;
        diff2 += (ow - oe) * (ow - oe);
        for (size_t i = 0; i < B; i++)
            kl += e.kl[i] / DRAWS;
    }
    double mean = diff / DRAWS, se = sqrt((diff2 / DRAWS - mean * mean) / DRAWS);
    printf("  iwae - elbo objective, k=1, over %d draws of eps: %.4f +- %.4f (the "
           "batch's KL %.4f)\n", DRAWS, mean, se, kl);
    assert_true(fabs(mean) < 4.0 * se);
    assert_true(se < 0.05 * kl);
    free(ge);
    free(gw);
    model_free(&m);
    model_acts_free(&e);
    model_acts_free(&w);
}

/* The decoder's rows are the draws, row i*k+j image i's j-th: in
 * evaluation mode (no batch coupling) decoding B * 3 rows at once gives,
 * for each j, what decoding the B rows of draw j alone gives. */
static void test_draws_are_rows(void **state)
{
    (void)state;
    enum { K = 3 };
    model_config cfg = small_conv(MODEL_LIK_BERNOULLI, MODEL_ACT_LEAKY);
    model_net m;
    model_acts a3, a1;
    err_msg err;
    rng_state r;
    rng_seed(&r, 17);
    setup_model_k(&m, &a3, cfg, K, &r);
    assert_int_equal(model_acts_init(&a1, &cfg, B, &err), 0);
    a3.training = a1.training = 0;
    size_t Z = cfg.z_dim, D = cfg.x_dim;
    memcpy(a1.x, a3.x, B * D * sizeof(float));
    model_encode(&m, &a3, B);
    model_reparam(&m, &a3, B, 0);
    model_decode(&m, &a3, B);
    double worst = 0.0;
    for (size_t j = 0; j < K; j++) {
        for (size_t i = 0; i < B; i++)
            memcpy(a1.z + i * Z, a3.z + (i * K + j) * Z, Z * sizeof(float));
        model_decode(&m, &a1, B);
        for (size_t i = 0; i < B; i++)
            for (size_t p = 0; p < D; p++)
                worst = fmax(worst, fabs(a1.logits[i * D + p] -
                                         a3.logits[(i * K + j) * D + p]));
    }
    printf("  %d draws decoded together vs one at a time: max |difference| %.2e\n", K,
           worst);
    assert_true(worst < 1e-5);
    /* and the draws differ (eps is not reused across them) */
    assert_true(memcmp(a3.logits, a3.logits + D, D * sizeof(float)) != 0);
    model_free(&m);
    model_acts_free(&a3);
    model_acts_free(&a1);
}

/* Buffers: k = 1 keeps rrec = rec and ydec = y; k > 1 gives them their own;
 * a batch whose rows times draws overflow is refused with a message. */
static void test_draws_buffers(void **state)
{
    (void)state;
    model_config cfg = small_conv(MODEL_LIK_BERNOULLI, MODEL_ACT_LEAKY);
    model_acts a;
    err_msg err;
    assert_int_equal(model_acts_init_k(&a, &cfg, 4, 1, &err), 0);
    assert_ptr_equal(a.rrec, a.rec);
    assert_ptr_equal(a.ydec, a.y);
    assert_non_null(a.obj);
    assert_non_null(a.wt);
    model_acts_free(&a);
    assert_int_equal(model_acts_init_k(&a, &cfg, 4, MODEL_MAX_DRAWS, &err), 0);
    assert_int_equal(a.k, MODEL_MAX_DRAWS);
    assert_true(a.rrec != a.rec && a.ydec != a.y);
    /* every row of every per-draw buffer is there (ASan checks the ends) */
    size_t rows = 4 * MODEL_MAX_DRAWS;
    memset(a.logits, 0, rows * cfg.x_dim * sizeof(float));
    memset(a.dz, 0, rows * cfg.z_dim * sizeof(float));
    memset(a.rrec, 0, rows * sizeof(float));
    memset(a.wt, 0, rows * sizeof(float));
    memset(a.ydec, 0, rows);
    model_acts_free(&a);
    assert_int_equal(model_acts_init_k(&a, &cfg, SIZE_MAX / 4, 3, &err), -1);
    assert_non_null(strstr(err.text, "with 3 draws each is too large"));
    assert_int_equal(model_acts_init_k(&a, &cfg, 2, 0, &err), -1);
    assert_non_null(strstr(err.text, "need 1 to"));
}

/* The default shape: 32x32 padding, the article's channels, 100-D latent. */
static void test_default_shape(void **state)
{
    (void)state;
    model_config c = {784, 3, {64, 128, 256}, 100, MODEL_ACT_LEAKY, MODEL_LIK_GAUSSIAN, 0,
                    MODEL_ARCH_CONV};
    model_net m;
    err_msg err;
    assert_int_equal(model_layout(&m, &c, &err), 0);
    assert_int_equal(m.cfg.height, 28);
    assert_int_equal(m.cfg.width, 28);
    assert_int_equal(m.cfg.channels, 1);
    assert_int_equal(m.pad_top, 2);
    assert_int_equal(m.pad_left, 2);
    assert_int_equal(m.block[0].h, 32);
    assert_int_equal(m.block[0].w, 32);
    assert_int_equal(m.n_blocks, 6);
    size_t want = (1 * 64 * 16 + 64 + 4 * 64) + (64 * 128 * 16 + 128 + 4 * 128) +
                  (128 * 256 * 16 + 256 + 4 * 256) + (4096 * 200 + 200) +
                  (100 * 4096 + 4096) + (256 * 128 * 16 + 128 + 4 * 128) +
                  (128 * 64 * 16 + 64 + 4 * 64) + (64 * 1 * 16 + 1);
    assert_int_equal(m.n_params, want);
    /* 29 x 29 pads to 32 x 32 too, the odd pixel of padding below and right;
     * 64 x 64 keeps its size, with an 8 x 8 bottom. */
    c.x_dim = 841;
    assert_int_equal(model_layout(&m, &c, &err), 0);
    assert_int_equal(m.block[0].h, 32);
    assert_int_equal(m.pad_top, 1);
    assert_int_equal(m.pad_left, 1);
    c.x_dim = 64 * 64;
    assert_int_equal(model_layout(&m, &c, &err), 0);
    assert_int_equal(m.block[0].h, 64);
    assert_int_equal(m.pad_top, 0);
    assert_int_equal(m.layer[0].in, 256 * 8 * 8);
    /* Refused: a shape that is not x_dim values, other channel counts, and
     * a conditional conv model. */
    c.x_dim = 783, c.height = 28, c.width = 28, c.channels = 1;
    assert_int_equal(model_layout(&m, &c, &err), -1);
    assert_non_null(strstr(err.text, "28x28 images of 1 channels are not 783"));
    c.x_dim = 28 * 28 * 2, c.channels = 2;
    assert_int_equal(model_layout(&m, &c, &err), -1);
    assert_non_null(strstr(err.text, "2 channels"));
    c.x_dim = 784, c.channels = 1;
    c.n_classes = 10;
    assert_int_equal(model_layout(&m, &c, &err), -1);
    assert_non_null(strstr(err.text, "not conditional"));
}

/* A batch split across teams of 1 to max_T threads, `draws` an image and
 * the objective: BatchNorm's statistics are the whole batch's either way
 * (the decoder's over all its draws), so the loss, the objective and the
 * summed gradient agree up to the order of float sums; and the running
 * averages move the same. */
static void teams_agree(size_t draws, model_objective objective, size_t max_T)
{
    model_config cfg = small_conv(MODEL_LIK_BERNOULLI, MODEL_ACT_LEAKY);
    model_net m;
    err_msg err;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    rng_state r;
    rng_seed(&r, 6);
    model_init_params(&m, &r);
    float *init = malloc(m.n_params * sizeof(float));
    memcpy(init, m.params, m.n_params * sizeof(float));
    enum { N = 7 };
    idx_set set = {N, 6, 6, malloc(N * 36), malloc(N)};
    for (size_t i = 0; i < N * 36; i++)
        set.images[i] = (uint8_t)rng_below(&r, 256);
    memset(set.labels, 0, N);
    double loss[3], obj[3];
    float *g[3], *stats[3];
    assert_true(max_T <= 3);
    for (size_t T = 1; T <= max_T; T++) {
        memcpy(m.params, init, m.n_params * sizeof(float));
        assert_int_equal(par_init(T, &err), 0);
        shard_set s;
        shard_spec spec = {.cap = N, .with_grads = 1, .draws = draws, .objective = objective};
        assert_int_equal(shard_init(&s, &m, &spec, &err), 0);
        assert_int_equal(s.units, 0); /* the conv VAE splits by rows */
        rng_state e;
        rng_seed(&e, 9);
        shard_draw_eps(&s, &m, &e, N);
        shard_batch b = {&set, NULL, 0, N, NULL, 0.0f, 0};
        double rec, kl;
        shard_run(&s, &m, &b, 1, 1.0, &rec, &kl);
        loss[T - 1] = rec + kl;
        obj[T - 1] = shard_objective(&s, N);
        const float *gs[PAR_MAX_THREADS];
        size_t ng = shard_grads(&s, N, gs);
        g[T - 1] = calloc(m.n_params, sizeof(float));
        for (size_t k = 0; k < ng; k++)
            for (size_t i = 0; i < m.n_params; i++)
                g[T - 1][i] += gs[k][i];
        stats[T - 1] = malloc(m.n_params * sizeof(float));
        memcpy(stats[T - 1], m.params, m.n_params * sizeof(float));
        shard_free(&s);
    }
    par_shutdown();
    double gmax = 0.0;
    for (size_t i = 0; i < m.n_params; i++)
        gmax = fmax(gmax, fabs(g[0][i]));
    for (size_t t = 1; t < max_T; t++) {
        double worst = 0.0, wstat = 0.0;
        for (size_t i = 0; i < m.n_params; i++) {
            worst = fmax(worst, fabs(g[t][i] - g[0][i]));
            wstat = fmax(wstat, fabs(stats[t][i] - stats[0][i]));
        }
        printf("  %s k=%zu, team %zu: loss %.6f (one thread %.6f), objective %.6f "
               "(%.6f), max gradient difference %.2e of %.2e, running averages %.2e\n",
               objective == MODEL_OBJ_IWAE ? "iwae" : "elbo", draws, t + 1, loss[t], loss[0],
               obj[t], obj[0], worst, gmax, wstat);
        assert_true(fabs(loss[t] - loss[0]) < 1e-5 * fabs(loss[0]));
        assert_true(fabs(obj[t] - obj[0]) < 1e-5 * fabs(obj[0]));
        assert_true(worst < 1e-4 * gmax);
        assert_true(wstat < 1e-6);
    }
    /* and the running averages did move (the forward pass trained them) */
    assert_true(memcmp(stats[0], init, m.n_params * sizeof(float)) != 0);
    if (objective == MODEL_OBJ_IWAE && draws > 1) /* the IW bound is below the ELBO */
        assert_true(obj[0] < loss[0]);
    for (size_t t = 0; t < max_T; t++) {
        free(g[t]);
        free(stats[t]);
    }
    free(init);
    idx_free(&set);
    model_free(&m);
}

static void test_teams_agree(void **state)
{
    (void)state;
    teams_agree(1, MODEL_OBJ_ELBO, 3);
}

/* k = 3: each thread's share decodes its images' draws, and the decoder's
 * BatchNorm sums over every share's B * k rows. */
static void test_teams_agree_k_draws(void **state)
{
    (void)state;
    teams_agree(3, MODEL_OBJ_IWAE, 2);
    teams_agree(3, MODEL_OBJ_ELBO, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_direct),
        cmocka_unit_test(test_convt_is_adjoint),
        cmocka_unit_test(test_batchnorm_modes),
        cmocka_unit_test(test_grad_bernoulli),
        cmocka_unit_test(test_grad_gaussian),
        cmocka_unit_test(test_grad_check_catches_errors),
        cmocka_unit_test(test_grad_colour_non_square),
        cmocka_unit_test(test_grad_k_draws),
        cmocka_unit_test(test_iwae_one_draw_is_elbo),
        cmocka_unit_test(test_draws_are_rows),
        cmocka_unit_test(test_draws_buffers),
        cmocka_unit_test(test_default_shape),
        cmocka_unit_test(test_teams_agree),
        cmocka_unit_test(test_teams_agree_k_draws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
