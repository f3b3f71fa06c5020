/* test_model.c - the model's backward pass against central finite
 * differences (every parameter of every tensor, for every likelihood,
 * activation, conditional or not, beta = 1 or not), and the per-pixel
 * kernels (likelihoods, means, tanh) against double-precision references. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lik.h"
#include "model.h"

/* Finite differences in float32: step 1e-2 keeps the rounding error of the
 * ~20-nat loss near 1e-4 and the truncation error of tanh near 1e-5. */
#define FD_STEP 1e-2f
#define GRAD_ATOL 5e-4
#define GRAD_RTOL 5e-3
#define B 3

typedef struct fixture {
    model_net m;
    model_acts a;
    float *grads;
    model_loss_spec loss; /* the objective and beta */
} fixture;

/* A model of cfg with random parameters, inputs in [0,1], labels and eps,
 * k draws an image and the objective. */
static void setup_k(fixture *f, model_config cfg, double beta, uint64_t seed, size_t k,
                    model_objective obj)
{
    err_msg err;
    assert_int_equal(model_init(&f->m, &cfg, &err), 0);
    assert_int_equal(model_acts_init_k(&f->a, &cfg, B, k, &err), 0);
    rng_state r;
    rng_seed(&r, seed);
    model_init_params(&f->m, &r);
    for (size_t i = 0; i < B * cfg.x_dim; i++)
        f->a.x[i] = rng_uniform(&r);
    for (size_t i = 0; i < B; i++)
        f->a.y[i] = cfg.n_classes ? (uint8_t)rng_below(&r, cfg.n_classes) : 0;
    rng_normal(&r, f->a.eps, B * k * cfg.z_dim);
    if (cfg.z2_dim)
        rng_normal(&r, f->a.eps2, B * k * cfg.z2_dim);
    f->grads = calloc(f->m.n_params, sizeof(float));
    assert_non_null(f->grads);
    f->loss.objective = obj;
    f->loss.beta = beta;
    f->loss.estimator = MODEL_EST_STANDARD;
}

static void setup(fixture *f, model_config cfg, double beta, uint64_t seed)
{
    setup_k(f, cfg, beta, seed, 1, MODEL_OBJ_ELBO);
}

/* The ELBO, beta 1. */
static const model_loss_spec ELBO = {MODEL_OBJ_ELBO, 1.0, MODEL_EST_STANDARD};

static void teardown(fixture *f)
{
    model_free(&f->m);
    model_acts_free(&f->a);
    free(f->grads);
}

/* The objective summed over the batch, with the fixed eps: rec + beta kl
 * for the ELBO (rec averaged over the draws), the negative IW bound for the
 * IWAE. */
static double loss_of(fixture *f)
{
    model_encode(&f->m, &f->a, B);
    model_reparam(&f->m, &f->a, B, 0);
    model_decode(&f->m, &f->a, B);
    model_loss(&f->m, &f->a, B, &f->loss);
    double sum = 0.0;
    for (size_t i = 0; i < B; i++) {
        if (f->loss.objective == MODEL_OBJ_ELBO)
            assert_true(fabsf(f->a.obj[i] - (f->a.rec[i] + (float)f->loss.beta * f->a.kl[i])) <=
                        1e-4f * fabsf(f->a.obj[i]));
        sum += (double)f->a.obj[i];
    }
    return sum;
}

/* Bit pattern of which ReLU units are active in the last forward pass. */
static void relu_mask(const fixture *f, unsigned char *mask, size_t cap)
{
    size_t k = 0;
    for (size_t l = 0; l < f->m.n_layers; l++) {
        if (!f->m.layer[l].has_act || f->m.cfg.act == MODEL_ACT_TANH)
            continue;
        for (size_t i = 0; i < B * f->m.layer[l].out && k < cap; i++)
            mask[k++] = f->a.h[l][i] > 0.0f;
    }
}

#define MASK_CAP 4096

/* Checks every parameter's gradient; returns the number of mismatches and
 * prints the max difference per tensor. For ReLU, an entry whose +-step
 * evaluations switch any unit on or off straddles a kink where the finite
 * difference is not the derivative; those are counted in *skipped. */
static int check_all(fixture *f, const char *name, size_t *skipped)
{
    static unsigned char base[MASK_CAP], up_mask[MASK_CAP], down_mask[MASK_CAP];
    *skipped = 0;
    loss_of(f);
    relu_mask(f, base, MASK_CAP);
    model_backward(&f->m, &f->a, f->grads, B, &f->loss);
    int bad = 0;
    for (size_t l = 0; l < f->m.n_layers; l++) {
        const model_layer *L = &f->m.layer[l];
        for (int part = 0; part < 2; part++) {
            size_t off = part ? L->b_off : L->w_off;
            size_t n = part ? L->out : (L->in + L->n_onehot) * L->out;
            double maxdiff = 0.0;
            for (size_t i = off; i < off + n; i++) {
                float keep = f->m.params[i];
                f->m.params[i] = keep + FD_STEP;
                double up = loss_of(f);
                relu_mask(f, up_mask, MASK_CAP);
                f->m.params[i] = keep - FD_STEP;
                double down = loss_of(f);
                relu_mask(f, down_mask, MASK_CAP);
                f->m.params[i] = keep;
                if (f->m.cfg.act != MODEL_ACT_TANH &&
                    (memcmp(base, up_mask, MASK_CAP) || memcmp(base, down_mask, MASK_CAP))) {
                    (*skipped)++;
                    continue;
                }
                double fd = (up - down) / (2.0 * FD_STEP);
                double diff = fabs(fd - f->grads[i]);
                if (diff > maxdiff)
                    maxdiff = diff;
                if (!(diff <= GRAD_ATOL + GRAD_RTOL * fabs(fd))) {
                    if (bad < 5)
                        printf("  %s layer %zu %s[%zu]: backward %.6g, finite "
                               "difference %.6g\n", name, l, part ? "b" : "W",
                               i - off, f->grads[i], fd);
                    bad++;
                }
            }
            printf("  %s layer %zu %s (%zu values): max |backward - fd| = %.2e "
                   "(tolerance %.0e + %.0e |fd|)\n", name, l, part ? "b" : "W",
                   n, maxdiff, GRAD_ATOL, GRAD_RTOL);
        }
    }
    return bad;
}

/* A small model: x_dim pixels, hidden widths, z, the rest from the args. */
static model_config small(size_t x_dim, size_t nh, size_t h0, size_t h1, size_t z,
                        model_act act, model_lik lik, size_t classes)
{
    model_config c = {0};
    c.x_dim = x_dim;
    c.n_hidden = nh;
    c.hidden[0] = h0;
    c.hidden[1] = h1;
    c.z_dim = z;
    c.act = act;
    c.likelihood = lik;
    c.n_classes = classes;
    return c;
}

/* Runs the check; tanh must match everywhere, ReLU off its kinks (which
 * must be a small share of the values). */
static void expect_gradients(model_config cfg, double beta, uint64_t seed, const char *name)
{
    fixture f;
    size_t skipped;
    setup(&f, cfg, beta, seed);
    assert_int_equal(check_all(&f, name, &skipped), 0);
    if (cfg.act == MODEL_ACT_TANH) {
        assert_int_equal(skipped, 0); /* smooth: nothing to skip */
    } else {
        printf("  %s: %zu of %zu values straddle a kink (skipped)\n", name, skipped,
               f.m.n_params);
        assert_true(skipped * 5 < f.m.n_params);
    }
    teardown(&f);
}

/* Logits far past float's exp range (a diverging model's) give every
 * likelihood a finite loss, gradient and mean, never a NaN; the Bernoulli
 * loss is max(a, 0) - a t + log1p(exp(-|a|)) to float precision. */
static void test_lik_huge_logits(void **state)
{
    (void)state;
    enum { N = 16 };
    const float big[4] = {100.0f, 1e10f, 1e30f, 1e35f};
    float a[N], t[N], out[N];
    for (size_t i = 0; i < N; i++) {
        a[i] = (i % 2 ? -1.0f : 1.0f) * big[i / 2 % 4];
        t[i] = i < N / 2 ? 0.25f : 1.0f;
    }
    for (int lik = 0; lik < 3; lik++)
        for (int what = LIK_SUM; what <= LIK_MEAN; what++) {
            float loss = lik_row((model_lik)lik, (lik_out)what, out, a, t, N);
            if (!isfinite(loss))
                fail_msg("%s: loss %g", model_lik_name((model_lik)lik), (double)loss);
            for (size_t i = 0; what != LIK_SUM && i < N; i++)
                if (!isfinite(out[i]))
                    fail_msg("%s: %s of logit %g is %g", model_lik_name((model_lik)lik),
                             what == LIK_GRAD ? "gradient" : "mean", (double)a[i],
                             (double)out[i]);
            if (lik == MODEL_LIK_BERNOULLI) {
                double want = 0.0;
                for (size_t i = 0; i < N; i++)
                    want += fmax(a[i], 0.0) - (double)a[i] * t[i] +
                            log1p(exp(-fabs((double)a[i])));
                if (!(fabs(loss - want) <= 1e-6 * fabs(want)))
                    fail_msg("bernoulli: loss %.9g, expected %.9g", (double)loss, want);
            }
        }
}

static void test_grad_bernoulli(void **state)
{
    (void)state;
    expect_gradients(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0), 1.0, 11,
                     "tanh 10-6-3");
    expect_gradients(small(9, 2, 7, 5, 2, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0), 1.0, 12,
                     "tanh 9-7-5-2");
    expect_gradients(small(12, 1, 8, 0, 3, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0), 1.0, 5,
                     "relu 12-8-3");
    expect_gradients(small(12, 2, 8, 6, 3, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0), 1.0, 6,
                     "relu 12-8-6-3");
    expect_gradients(small(12, 2, 8, 6, 3, MODEL_ACT_LEAKY, MODEL_LIK_BERNOULLI, 0), 1.0, 7,
                     "leaky relu 12-8-6-3");
}

static void test_grad_continuous_bernoulli(void **state)
{
    (void)state;
    expect_gradients(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_CB, 0), 1.0, 21,
                     "cb tanh 10-6-3");
    expect_gradients(small(12, 2, 8, 6, 3, MODEL_ACT_RELU, MODEL_LIK_CB, 0), 1.0, 22,
                     "cb relu 12-8-6-3");
}

static void test_grad_gaussian(void **state)
{
    (void)state;
    expect_gradients(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_GAUSSIAN, 0), 1.0, 31,
                     "gaussian tanh 10-6-3");
    expect_gradients(small(12, 1, 8, 0, 3, MODEL_ACT_RELU, MODEL_LIK_GAUSSIAN, 0), 1.0, 32,
                     "gaussian relu 12-8-3");
}

static void test_grad_beta(void **state)
{
    (void)state;
    expect_gradients(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0), 0.1, 41,
                     "beta 0.1 tanh");
    expect_gradients(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_GAUSSIAN, 0), 4.0, 42,
                     "beta 4 gaussian");
}

/* Colour, non-square images: the MLP takes each image as its H*W*C values
 * (each pixel's three together), here 2x3 RGB (18 inputs), every
 * likelihood, and the conditional model. */
static void test_grad_colour_non_square(void **state)
{
    (void)state;
    static const model_lik liks[3] = {MODEL_LIK_BERNOULLI, MODEL_LIK_CB, MODEL_LIK_GAUSSIAN};
    for (int l = 0; l < 3; l++) {
        model_config c = small(18, 1, 6, 0, 3, MODEL_ACT_TANH, liks[l], l == 2 ? 4 : 0);
        model_config_image(&c, 2, 3, 3);
        model_net m;
        err_msg err;
        assert_int_equal(model_layout(&m, &c, &err), 0);
        assert_int_equal(m.cfg.x_dim, 18);
        assert_int_equal(m.layer[0].in, 18);
        expect_gradients(c, 1.0, 81 + (uint64_t)l, l == 2 ? "2x3 rgb cvae gaussian" : "2x3 rgb");
    }
}

/* The conditional VAE: one-hot label columns in the encoder's and the
 * decoder's first layers, and the prior network p(z | y). */
static void test_grad_conditional(void **state)
{
    (void)state;
    expect_gradients(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 4), 1.0, 51,
                     "cvae tanh 10-6-3");
    expect_gradients(small(9, 2, 7, 5, 2, MODEL_ACT_TANH, MODEL_LIK_CB, 3), 0.5, 52,
                     "cvae cb tanh 9-7-5-2 beta 0.5");
    expect_gradients(small(12, 1, 8, 0, 3, MODEL_ACT_RELU, MODEL_LIK_GAUSSIAN, 5), 1.0, 53,
                     "cvae gaussian relu 12-8-3");
}

/* The objectives over K draws per image (Burda et al.): the K-sample ELBO
 * and the importance-weighted bound, for K = 1, 5, a case where one draw's
 * weight dominates, and the conditional model (prior p(z|y)). */
static void expect_gradients_k(model_config cfg, size_t k, model_objective obj,
                               double eps_scale, uint64_t seed, const char *name)
{
    fixture f;
    size_t skipped;
    setup_k(&f, cfg, 1.0, seed, k, obj);
    for (size_t i = 0; i < B * k * cfg.z_dim; i++)
        f.a.eps[i] *= (float)eps_scale;
    assert_int_equal(check_all(&f, name, &skipped), 0);
    assert_int_equal(skipped, 0);
    teardown(&f);
}

static void test_grad_k_draws(void **state)
{
    (void)state;
    model_config c = small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0);
    expect_gradients_k(c, 5, MODEL_OBJ_ELBO, 1.0, 61, "elbo k=5");
    expect_gradients_k(c, 1, MODEL_OBJ_IWAE, 1.0, 62, "iwae k=1");
    expect_gradients_k(c, 5, MODEL_OBJ_IWAE, 1.0, 63, "iwae k=5");
    expect_gradients_k(small(9, 2, 7, 5, 2, MODEL_ACT_TANH, MODEL_LIK_GAUSSIAN, 0), 4,
                       MODEL_OBJ_IWAE, 1.0, 64, "iwae k=4 gaussian 9-7-5-2");
    expect_gradients_k(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_CB, 4), 3, MODEL_OBJ_IWAE,
                       1.0, 65, "iwae k=3 conditional cb");
    expect_gradients_k(small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 4), 3,
                       MODEL_OBJ_ELBO, 1.0, 66, "elbo k=3 conditional");
}

/* Two stochastic layers (x - h1 - h2): q(h1|x), q(h2|h1), p(h1|h2), p(x|h1),
 * every density sampled; the ELBO with one and with k draws (beta weighing
 * the sampled KL terms) and the IW bound, each parameter against central
 * differences. */
static model_config two_layer(size_t x_dim, size_t h0, size_t h1, size_t z, size_t g0,
                            size_t z2, model_lik lik)
{
    model_config c = small(x_dim, h1 ? 2 : 1, h0, h1, z, MODEL_ACT_TANH, lik, 0);
    c.z2_dim = z2;
    c.n_hidden2 = 1;
    c.hidden2[0] = g0;
    return c;
}

static void expect_gradients_two(model_config cfg, size_t k, model_objective obj, double beta,
                                 uint64_t seed, const char *name)
{
    fixture f;
    size_t skipped;
    setup_k(&f, cfg, beta, seed, k, obj);
    assert_int_equal(check_all(&f, name, &skipped), 0);
    assert_int_equal(skipped, 0);
    teardown(&f);
}

static void test_grad_two_layers(void **state)
{
    (void)state;
    model_config c = two_layer(10, 6, 0, 3, 5, 2, MODEL_LIK_BERNOULLI);
    expect_gradients_two(c, 1, MODEL_OBJ_ELBO, 1.0, 101, "2 layers elbo k=1");
    expect_gradients_two(c, 3, MODEL_OBJ_ELBO, 0.5, 102, "2 layers elbo k=3 beta 0.5");
    expect_gradients_two(c, 4, MODEL_OBJ_IWAE, 1.0, 103, "2 layers iwae k=4");
    expect_gradients_two(two_layer(9, 7, 5, 4, 3, 2, MODEL_LIK_GAUSSIAN), 3, MODEL_OBJ_IWAE,
                         1.0, 104, "2 layers 9-7-5-4-3-2 gaussian iwae k=3");
    /* The layout: q(h1|x), p(x|h1), q(h2|h1), p(h1|h2), in that order. */
    model_net m;
    err_msg err;
    assert_int_equal(model_layout(&m, &c, &err), 0);
    assert_int_equal(m.n_layers, 8);
    assert_int_equal(m.layer[4].in, 3);   /* q(h2|h1) from h1 */
    assert_int_equal(m.layer[5].out, 4);  /* [mu2 | logvar2] */
    assert_int_equal(m.layer[6].in, 2);   /* p(h1|h2) from h2 */
    assert_int_equal(m.layer[7].out, 6);  /* [mu | logvar] of h1 */
    /* Refused: conditional, or the conv VAE, with two layers. */
    c.n_classes = 3;
    assert_int_equal(model_layout(&m, &c, &err), -1);
    assert_non_null(strstr(err.text, "two stochastic layers"));
}

/* The estimators with two stochastic layers, against the gradients of
 * surrogates worked out apart from the code: with `frozen` a copy of the
 * model whose q(h1|x) and q(h2|h1) give log q (their parameters held) and
 * the live model everything else (the draws h1, h2 and p), STL's encoder
 * gradient is that of -log mean_j w_j and DReG's that of -sum_j c_j^2 log
 * w_j with the weights c held (Tucker et al., eq. 5): central differences
 * over every encoder parameter. The decoder's and p(h1|h2)'s gradients are
 * the standard ones, bit for bit. */
static double surrogate(fixture *f, model_net *frozen, model_acts *af, const float *c)
{
    size_t Z1 = f->m.cfg.z_dim, Z2 = f->m.cfg.z2_dim, K = f->a.k;
    loss_of(f); /* the live chain and -log p(x|h1) of each draw */
    memcpy(af->x, f->a.x, B * f->m.cfg.x_dim * sizeof(float));
    af->xin = af->x;
    model_encode(frozen, af, B); /* q(h1|x)'s parameters, held */
    memcpy(af->z, f->a.z, B * K * Z1 * sizeof(float));
    model_draw_top(frozen, af, B, 1); /* q(h2|h1)'s at the live h1 */
    double total = 0.0;
    for (size_t i = 0; i < B; i++) {
        double lw[16], top = -INFINITY;
        for (size_t j = 0; j < K; j++) {
            size_t r = i * K + j;
            const float *h1 = f->a.z + r * Z1, *h2 = f->a.z2 + r * Z2;
            const float *mp = model_prior_top_mu(&f->m, &f->a, r), *lp = mp + Z1;
            const float *mu1 = model_mu(frozen, af, i), *lv1 = mu1 + Z1;
            const float *mu2 = model_top_mu(frozen, af, r), *lv2 = mu2 + Z2;
            double t = -(double)f->a.rrec[r];
            for (size_t d = 0; d < Z1; d++) {
                double dp = (double)h1[d] - mp[d], dq = (double)h1[d] - mu1[d];
                t += -0.5 * dp * dp * exp(-(double)lp[d]) - 0.5 * lp[d] +
                     0.5 * dq * dq * exp(-(double)lv1[d]) + 0.5 * lv1[d];
            }
            for (size_t d = 0; d < Z2; d++) {
                double dq = (double)h2[d] - mu2[d];
                t += -0.5 * (double)h2[d] * h2[d] + 0.5 * dq * dq * exp(-(double)lv2[d]) +
                     0.5 * lv2[d];
            }
            lw[j] = t;
            top = t > top ? t : top;
        }
        if (c) { /* DReG: -sum_j c_j^2 log w_j */
            for (size_t j = 0; j < K; j++)
                total -= (double)c[i * K + j] * c[i * K + j] * lw[j];
        } else {
            double sum = 0.0;
            for (size_t j = 0; j < K; j++)
                sum += exp(lw[j] - top);
            total -= top + log(sum / (double)K);
        }
    }
    return total;
}

static void test_estimators_two_layers(void **state)
{
    (void)state;
    model_config cfg = two_layer(10, 6, 0, 3, 5, 2, MODEL_LIK_BERNOULLI);
    const size_t K = 4;
    float *std = NULL;
    for (int e = 0; e < 3; e++) {
        fixture f;
        setup_k(&f, cfg, 1.0, 111, K, MODEL_OBJ_IWAE);
        f.loss.estimator = (model_estimator)e;
        loss_of(&f);
        model_backward(&f.m, &f.a, f.grads, B, &f.loss);
        const model_layer *L = f.m.layer;
        size_t enc1_end = L[1].b_off + L[1].out, dec_end = L[3].b_off + L[3].out;
        size_t enc2_end = L[5].b_off + L[5].out;
        if (e == 0) {
            std = malloc(f.m.n_params * sizeof *std);
            assert_non_null(std);
            memcpy(std, f.grads, f.m.n_params * sizeof *std);
            teardown(&f);
            continue;
        }
        /* The decoder's (p(x|h1), after q(h1|x)) and p(h1|h2)'s: the standard. */
        for (size_t p = 0; p < f.m.n_params; p++) {
            int encoder = p < enc1_end || (p >= dec_end && p < enc2_end);
            if (!encoder && memcmp(&std[p], &f.grads[p], sizeof(float)))
                fail_msg("estimator %d: parameter %zu (not the encoders') moved", e, p);
        }
        model_net frozen;
        model_acts af;
        err_msg err;
        assert_int_equal(model_init(&frozen, &cfg, &err), 0);
        memcpy(frozen.params, f.m.params, f.m.n_params * sizeof(float));
        assert_int_equal(model_acts_init_k(&af, &cfg, B, K, &err), 0);
        float c[B * 16];
        memcpy(c, f.a.wt, B * K * sizeof(float));
        int bad = 0;
        double worst = 0.0;
        for (size_t p = 0; p < enc2_end; p++) {
            if (p >= enc1_end && p < dec_end)
                continue;
            float keep = f.m.params[p];
            f.m.params[p] = keep + FD_STEP;
            double up = surrogate(&f, &frozen, &af, e == 2 ? c : NULL);
            f.m.params[p] = keep - FD_STEP;
            double down = surrogate(&f, &frozen, &af, e == 2 ? c : NULL);
            f.m.params[p] = keep;
            double fd = (up - down) / (2.0 * FD_STEP), diff = fabs(fd - f.grads[p]);
            worst = diff > worst ? diff : worst;
            if (!(diff <= GRAD_ATOL + GRAD_RTOL * fabs(fd)) && bad++ < 5)
                printf("  %s parameter %zu: backward %.6g, surrogate's difference %.6g\n",
                       e == 1 ? "stl" : "dreg", p, f.grads[p], fd);
        }
        printf("  two layers, %s: max |backward - surrogate's difference| = %.2e over the "
               "encoders' %zu parameters\n", e == 1 ? "stl" : "dreg", worst,
               enc1_end + enc2_end - dec_end);
        assert_int_equal(bad, 0);
        model_acts_free(&af);
        model_free(&frozen);
        teardown(&f);
    }
    free(std);
}

/* One draw far from the others (eps scaled up 4x): its weight dominates,
 * and the gradient still matches. */
static void test_grad_iwae_unbalanced(void **state)
{
    (void)state;
    model_config c = small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0);
    fixture f;
    setup_k(&f, c, 1.0, 71, 5, MODEL_OBJ_IWAE);
    for (size_t i = 0; i < B * 5 * c.z_dim; i++)
        f.a.eps[i] *= 4.0f;
    loss_of(&f);
    float top = 0.0f;
    for (size_t r = 0; r < B * 5; r++)
        top = f.a.wt[r] > top ? f.a.wt[r] : top;
    printf("  the largest normalised weight: %.4f\n", top);
    assert_true(top > 0.9f);
    size_t skipped;
    assert_int_equal(check_all(&f, "iwae k=5 unbalanced", &skipped), 0);
    teardown(&f);
}

/* The IWAE objective's value: for K = 1 the one-sample ELBO estimate with
 * the KL sampled, rec + log q(z|x) - log p(z); for K > 1 at most the mean
 * of the K one-sample estimates (Jensen), and the weights sum to 1. */
static void test_iwae_values(void **state)
{
    (void)state;
    model_config c = small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0);
    fixture f;
    setup_k(&f, c, 1.0, 81, 1, MODEL_OBJ_IWAE);
    loss_of(&f);
    for (size_t i = 0; i < B; i++) {
        const float *mu = f.a.head + i * 2 * c.z_dim, *lv = mu + c.z_dim;
        double want = f.a.rrec[i];
        for (size_t d = 0; d < c.z_dim; d++) {
            double z = f.a.z[i * c.z_dim + d], e = f.a.eps[i * c.z_dim + d];
            want += 0.5 * z * z - 0.5 * e * e - 0.5 * lv[d];
        }
        assert_true(fabs(f.a.obj[i] - want) < 1e-4 * fabs(want));
        assert_true(f.a.wt[i] == 1.0f);
    }
    teardown(&f);
    setup_k(&f, c, 1.0, 82, 6, MODEL_OBJ_IWAE);
    loss_of(&f);
    for (size_t i = 0; i < B; i++) {
        double mean = 0.0, wsum = 0.0;
        const float *lv = f.a.head + i * 2 * c.z_dim + c.z_dim;
        for (size_t j = 0; j < 6; j++) {
            size_t r = i * 6 + j;
            double one = f.a.rrec[r];
            for (size_t d = 0; d < c.z_dim; d++) {
                double z = f.a.z[r * c.z_dim + d], e = f.a.eps[r * c.z_dim + d];
                one += 0.5 * z * z - 0.5 * e * e - 0.5 * lv[d];
            }
            mean += one / 6.0;
            wsum += f.a.wt[r];
        }
        assert_true(f.a.obj[i] <= mean + 1e-4);
        assert_true(fabs(wsum - 1.0) < 1e-5);
    }
    teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* The IW bound's gradient estimators (--estimator)                         */

/* log w of draw r of image i (the IW bound's log weight, 2 pi terms
 * cancelled), from the pass's rec, z, eps, logvar and prior (NULL: N(0, I)). */
static double log_w(const fixture *f, size_t i, size_t r)
{
    size_t Z = f->m.cfg.z_dim;
    const float *lv = f->a.head + i * 2 * Z + Z;
    const float *prior = model_prior_mu(&f->m, &f->a, i);
    double t = -(double)f->a.rrec[r];
    for (size_t d = 0; d < Z; d++) {
        double z = f->a.z[r * Z + d], e = f->a.eps[r * Z + d];
        double mp = prior ? prior[d] : 0.0, lp = prior ? prior[Z + d] : 0.0;
        t += -0.5 * (z - mp) * (z - mp) * exp(-lp) - 0.5 * lp + 0.5 * e * e + 0.5 * lv[d];
    }
    return t;
}

/* The head gradient STL and DReG must give, worked out apart from the code:
 * for each draw the path derivative g = d log w_j / d z_j with q's
 * parameters held (central differences: eps_j moved by +-h / sigma moves z_j
 * by +-h and nothing else), then over the draws
 *   stl   dmu = -sum_j wt_j g_j,    dlv = -sum_j wt_j g_j eps_j sigma / 2
 *   dreg  dmu = -sum_j wt_j^2 g_j,  dlv = -sum_j wt_j^2 g_j eps_j sigma / 2
 * into want (B x 2Z). */
static void reference_head_grad(fixture *f, size_t K, model_estimator est, double *want)
{
    size_t Z = f->m.cfg.z_dim;
    const double h = 1e-2;
    loss_of(f);
    float *wt = malloc(B * K * sizeof *wt), *head = malloc(B * 2 * Z * sizeof *head);
    assert_true(wt && head);
    memcpy(wt, f->a.wt, B * K * sizeof *wt);
    memcpy(head, f->a.head, B * 2 * Z * sizeof *head);
    memset(want, 0, B * 2 * Z * sizeof *want);
    for (size_t r = 0; r < B * K; r++) {
        size_t i = r / K;
        const float *lv = head + i * 2 * Z + Z;
        double w = est == MODEL_EST_DREG ? (double)wt[r] * wt[r] : wt[r];
        for (size_t d = 0; d < Z; d++) {
            double sigma = exp(0.5 * lv[d]);
            float keep = f->a.eps[r * Z + d];
            f->a.eps[r * Z + d] = keep + (float)(h / sigma);
            loss_of(f);
            double up = log_w(f, i, r);
            f->a.eps[r * Z + d] = keep - (float)(h / sigma);
            loss_of(f);
            double down = log_w(f, i, r);
            f->a.eps[r * Z + d] = keep;
            double g = (up - down) / (2.0 * h);
            want[i * 2 * Z + d] -= w * g;
            want[i * 2 * Z + Z + d] -= w * g * keep * sigma * 0.5;
        }
    }
    loss_of(f); /* the unmoved pass again */
    free(wt);
    free(head);
}

/* Each estimator's gradients for cfg with K draws (seed fixes everything):
 * all parameters' into grads[e], the heads' into dhead[e]. */
static void estimator_grads(model_config cfg, size_t K, uint64_t seed, float **grads,
                            float **dhead, double **want)
{
    for (int e = 0; e < 3; e++) {
        fixture f;
        setup_k(&f, cfg, 1.0, seed, K, MODEL_OBJ_IWAE);
        f.loss.estimator = (model_estimator)e;
        size_t Z = cfg.z_dim;
        if (e > 0) {
            want[e] = malloc(B * 2 * Z * sizeof **want);
            assert_non_null(want[e]);
            reference_head_grad(&f, K, (model_estimator)e, want[e]);
        }
        loss_of(&f);
        model_backward(&f.m, &f.a, f.grads, B, &f.loss);
        grads[e] = malloc(f.m.n_params * sizeof **grads);
        dhead[e] = malloc(B * 2 * Z * sizeof **dhead);
        assert_true(grads[e] && dhead[e]);
        memcpy(grads[e], f.grads, f.m.n_params * sizeof **grads);
        memcpy(dhead[e], f.a.dhead, B * 2 * Z * sizeof **dhead);
        teardown(&f);
    }
}

/* STL and DReG against the reference worked out above; the decoder's (and
 * the conditional prior's) gradient the same bits in all three; the
 * encoder's different from the standard one. */
static void test_estimators_exact(void **state)
{
    (void)state;
    const struct { model_config c; size_t K; uint64_t seed; const char *name; } cases[] = {
        {small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0), 5, 91, "10-6-3 k=5"},
        {small(9, 2, 7, 5, 2, MODEL_ACT_TANH, MODEL_LIK_GAUSSIAN, 0), 4, 92, "9-7-5-2 gaussian k=4"},
        {small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_CB, 4), 3, 93, "conditional cb k=3"},
        {small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0), 1, 94, "10-6-3 k=1"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        model_config cfg = cases[c].c;
        size_t Z = cfg.z_dim, K = cases[c].K;
        float *grads[3], *dhead[3];
        double *want[3] = {NULL, NULL, NULL};
        estimator_grads(cfg, K, cases[c].seed, grads, dhead, want);
        model_net m;
        err_msg err;
        assert_int_equal(model_layout(&m, &cfg, &err), 0);
        /* The encoder: its layers up to the head (mlp.c's order). */
        const model_layer *head = &m.layer[cfg.n_hidden];
        size_t enc_end = head->b_off + head->out;
        for (int e = 1; e < 3; e++) {
            double maxdiff = 0.0;
            for (size_t k = 0; k < B * 2 * Z; k++) {
                double diff = fabs(dhead[e][k] - want[e][k]);
                maxdiff = diff > maxdiff ? diff : maxdiff;
                if (!(diff <= GRAD_ATOL + GRAD_RTOL * fabs(want[e][k])))
                    fail_msg("%s %s: head gradient [%zu] %.6g, reference %.6g", cases[c].name,
                             e == 1 ? "stl" : "dreg", k, dhead[e][k], want[e][k]);
            }
            printf("  %s %s: max |head gradient - reference| = %.2e\n", cases[c].name,
                   e == 1 ? "stl" : "dreg", maxdiff);
            size_t enc_differs = 0;
            for (size_t p = 0; p < m.n_params; p++) {
                if (p >= enc_end && memcmp(&grads[e][p], &grads[0][p], sizeof(float)))
                    fail_msg("%s: parameter %zu (not the encoder's) moved with the "
                             "estimator: %.9g against %.9g", cases[c].name, p, grads[e][p],
                             grads[0][p]);
                enc_differs += p < enc_end && grads[e][p] != grads[0][p];
            }
            assert_true(enc_differs > enc_end / 2);
            free(want[e]);
        }
        for (int e = 0; e < 3; e++)
            free(grads[e]), free(dhead[e]);
    }
}

/* DReG is unbiased for the IW bound: over many draws its mean encoder
 * gradient is the standard one's (within 4 standard errors); STL is not
 * (Tucker et al.) and is only reported. */
static void test_dreg_unbiased(void **state)
{
    (void)state;
    model_config cfg = small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0);
    const size_t K = 5, N = 20000, Z = cfg.z_dim;
    fixture f[3];
    for (int e = 0; e < 3; e++) {
        setup_k(&f[e], cfg, 1.0, 95, K, MODEL_OBJ_IWAE);
        f[e].loss.estimator = (model_estimator)e;
    }
    size_t n = B * 2 * Z;
    double *sum = calloc(3 * n, sizeof *sum), *sq = calloc(3 * n, sizeof *sq);
    assert_true(sum && sq);
    rng_state r;
    rng_seed(&r, 96);
    for (size_t t = 0; t < N; t++) {
        rng_normal(&r, f[0].a.eps, B * K * Z);
        for (int e = 0; e < 3; e++) {
            memcpy(f[e].a.eps, f[0].a.eps, B * K * Z * sizeof(float));
            loss_of(&f[e]);
            model_backward(&f[e].m, &f[e].a, f[e].grads, B, &f[e].loss);
            for (size_t k = 0; k < n; k++) {
                double g = f[e].a.dhead[k];
                sum[e * n + k] += g;
                sq[e * n + k] += g * g;
            }
        }
    }
    double worst = 0.0, stl_worst = 0.0;
    for (size_t k = 0; k < n; k++) {
        double m0 = sum[k] / N, m2 = sum[2 * n + k] / N, m1 = sum[n + k] / N;
        double v0 = sq[k] / N - m0 * m0, v2 = sq[2 * n + k] / N - m2 * m2;
        double se = sqrt((v0 + v2) / N) + 1e-9;
        double z = fabs(m2 - m0) / se;
        worst = z > worst ? z : worst;
        double v1 = sq[n + k] / N - m1 * m1, z1 = fabs(m1 - m0) / (sqrt((v0 + v1) / N) + 1e-9);
        stl_worst = z1 > stl_worst ? z1 : stl_worst;
    }
    printf("  %zu passes: DReG's mean head gradient within %.2f standard errors of the "
           "standard one's (STL: %.2f)\n", N, worst, stl_worst);
    assert_true(worst < 4.5);
    free(sum);
    free(sq);
    for (int e = 0; e < 3; e++)
        teardown(&f[e]);
}

/* A deliberately wrong gradient must be caught: the check is not vacuous. */
static void test_grad_check_catches_errors(void **state)
{
    (void)state;
    fixture f;
    setup(&f, small(10, 1, 6, 0, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0), 1.0, 11);
    loss_of(&f);
    model_backward(&f.m, &f.a, f.grads, B, &f.loss);
    size_t i = f.m.layer[1].w_off + 2;
    float keep = f.m.params[i];
    f.m.params[i] = keep + FD_STEP;
    double up = loss_of(&f);
    f.m.params[i] = keep - FD_STEP;
    double down = loss_of(&f);
    f.m.params[i] = keep;
    double fd = (up - down) / (2.0 * FD_STEP);
    assert_true(fabs(fd - f.grads[i]) < GRAD_ATOL + GRAD_RTOL * fabs(fd));
    assert_false(fabs(fd - 1.1 * f.grads[i]) < GRAD_ATOL + GRAD_RTOL * fabs(fd));
    teardown(&f);
}

/* ------------------------------------------------------------------------ */
/* Kernels against double references                                        */

enum { D = 401 }; /* not a multiple of 8: exercises the tail */

/* The continuous Bernoulli in double, from lambda = sigmoid(a):
 * log C = log(2 atanh(1 - 2l) / (1 - 2l)), mean = l/(2l-1) + 1/(2 atanh(1-2l)),
 * by their series near a = 0 (computed in long double to be safe). */
static double ref_cb_logc(double a)
{
    long double x = a / 2.0L;
    if (fabsl(x) < 1e-4L)
        return (double)(logl(2.0L) + x * x / 3.0L);
    return (double)(logl(2.0L * x / tanhl(x)));
}

static double ref_cb_mean(double a)
{
    long double x = a / 2.0L;
    if (fabsl(x) < 1e-4L)
        return (double)(0.5L + a / 12.0L);
    return (double)(0.5L + 0.5L * (1.0L / tanhl(x) - 1.0L / x));
}

/* Logits from -60 to 60 through 0, and the near-0 region densely; targets
 * in [0,1]. One image with mu = logvar = 0, so the KL is 0. */
static void kernel_fixture(model_net *m, model_acts *a, model_lik lik)
{
    model_config cfg = small(D, 1, 4, 0, 2, MODEL_ACT_RELU, lik, 0);
    err_msg err;
    assert_int_equal(model_init(m, &cfg, &err), 0);
    assert_int_equal(model_acts_init(a, &cfg, 1, &err), 0);
    float *logits = model_logits(m, a);
    for (int j = 0; j < D; j++) {
        logits[j] = j < 200 ? -60.0f + 0.6f * (float)j : -1.5f + 0.0075f * (float)(j - 200);
        a->x[j] = (float)((j * 37) % 11) / 10.0f;
    }
    memset(model_mu(m, a, 0), 0, 2 * 2 * sizeof(float));
}

static void test_likelihood_accuracy(void **state)
{
    (void)state;
    for (int lik = 0; lik < 3; lik++) {
        model_net m;
        model_acts a;
        kernel_fixture(&m, &a, (model_lik)lik);
        const float *logits = model_logits(&m, &a);
        model_loss(&m, &a, 1, &ELBO);
        const float *grad = a.dh[m.n_layers - 1];
        float mean[D];
        model_mean(&m, mean, logits, D);
        double want = 0.0, max_grad_err = 0.0, max_mean_err = 0.0;
        for (int j = 0; j < D; j++) {
            double x = logits[j], t = a.x[j];
            double sig = 1.0 / (1.0 + exp(-x));
            double bce = fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
            double l, g, mu;
            if (lik == MODEL_LIK_BERNOULLI) {
                l = bce, g = sig - t, mu = sig;
            } else if (lik == MODEL_LIK_CB) {
                /* d log C / da by a central difference in long double. */
                double h = 1e-4;
                double dlogc = (ref_cb_logc(x + h) - ref_cb_logc(x - h)) / (2 * h);
                l = bce - ref_cb_logc(x), g = sig - t - dlogc, mu = ref_cb_mean(x);
            } else {
                l = (t - sig) * (t - sig) + 0.5 * log(3.14159265358979323846);
                g = 2.0 * (sig - t) * sig * (1.0 - sig), mu = sig;
            }
            want += l;
            max_grad_err = fmax(max_grad_err, fabs(grad[j] - g));
            max_mean_err = fmax(max_mean_err, fabs(mean[j] - mu));
        }
        printf("  %s: loss %.6f (double %.6f), max gradient error %.2e, max mean "
               "error %.2e\n", model_lik_name((model_lik)lik), a.rec[0], want,
               max_grad_err, max_mean_err);
        assert_true(fabs(a.rec[0] - want) <= 2e-6 * fabs(want) + 1e-4);
        assert_true(max_grad_err < 2e-6);
        assert_true(max_mean_err < 1e-6);
        assert_true(fabs(a.kl[0]) < 1e-7);
        /* model_rec_rows gives the same -log p(x|z) without gradients. */
        float rec;
        model_rec_rows(&m, logits, a.x, 0, 1, &rec);
        assert_true(rec == a.rec[0]);
        model_free(&m);
        model_acts_free(&a);
    }
}

/* The CB normaliser is finite and even, and its two branches meet. */
static void test_cb_near_half(void **state)
{
    (void)state;
    model_net m;
    model_acts a;
    kernel_fixture(&m, &a, MODEL_LIK_CB);
    float *logits = model_logits(&m, &a);
    const float probes[] = {0.0f, 1e-30f, 1e-8f, 1e-3f, 0.4999f, 0.5f, 0.5001f,
                            0.9999f, 1.0f, 1.0001f, 80.0f};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            for (int j = 0; j < D; j++) {
                logits[j] = (float)sign * probes[i];
                a.x[j] = 0.5f;
            }
            model_loss(&m, &a, 1, &ELBO);
            double per_pixel = a.rec[0] / D;
            /* bce at t = 1/2 is softplus(a) - a/2 = log(2 cosh(a/2)) */
            double x = (double)sign * probes[i];
            double want = log(2.0 * cosh(x / 2.0)) - ref_cb_logc(x);
            if (!isfinite(per_pixel) || fabs(per_pixel - want) >= 2e-6 * fmax(1.0, fabs(want)))
                fail_msg("a = %g: -log p(1/2 | a) %.9g, expected %.9g", x, per_pixel, want);
        }
    }
    model_free(&m);
    model_acts_free(&a);
}

/* tanh layers against double tanh (the vector kernel, through a forward). */
static void test_tanh_accuracy(void **state)
{
    (void)state;
    model_config cfg = small(1, 1, 1024, 0, 1, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0);
    model_net m;
    model_acts a;
    err_msg err;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    assert_int_equal(model_acts_init(&a, &cfg, 1, &err), 0);
    /* Layer 0: h = tanh(w x + b) with x = 1, w = 0: h = tanh(b). */
    const model_layer *L = &m.layer[0];
    memset(m.params + L->w_off, 0, L->out * sizeof(float));
    for (size_t j = 0; j < L->out; j++)
        m.params[L->b_off + j] = j < 512 ? -12.0f + 24.0f * (float)j / 511.0f
                                         : 1e-6f * (float)(j - 512) - 2.5e-4f;
    a.x[0] = 1.0f;
    model_encode(&m, &a, 1);
    double worst = 0.0;
    for (size_t j = 0; j < L->out; j++) {
        double b = m.params[L->b_off + j], ref = tanh(b);
        double rel = fabs(a.h[0][j] - ref) / fmax(fabs(ref), 1e-30);
        worst = fmax(worst, rel);
    }
    printf("  tanh: max relative error %.2e over [-12, 12] and near 0\n", worst);
    assert_true(worst < 5e-7);
    model_free(&m);
    model_acts_free(&a);
}

/* KL of N(mu, e^lv) against N(0, 1), and against a prior N(mp, e^lp), by
 * their closed forms. */
static void test_kl_closed_form(void **state)
{
    (void)state;
    model_config cfg = small(4, 1, 3, 0, 2, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0);
    model_net m;
    model_acts a;
    err_msg err;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    assert_int_equal(model_acts_init(&a, &cfg, 1, &err), 0);
    float *mu = model_mu(&m, &a, 0), *lv = model_logvar(&m, &a, 0);
    mu[0] = 0.5f, mu[1] = -2.0f, lv[0] = 0.3f, lv[1] = -1.0f;
    memset(model_logits(&m, &a), 0, 4 * sizeof(float));
    memset(a.x, 0, 4 * sizeof(float));
    model_loss(&m, &a, 1, &ELBO);
    double want = 0.0;
    for (int j = 0; j < 2; j++)
        want += -0.5 * (1.0 + lv[j] - mu[j] * mu[j] - exp(lv[j]));
    assert_true(fabs(a.kl[0] - want) < 1e-5);
    assert_true(fabs(a.rec[0] - 4.0 * log(2.0)) < 1e-5);
    model_free(&m);
    model_acts_free(&a);

    cfg.n_classes = 3;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    assert_int_equal(model_acts_init(&a, &cfg, 1, &err), 0);
    mu = model_mu(&m, &a, 0), lv = model_logvar(&m, &a, 0);
    float *mp = model_prior_mu(&m, &a, 0), *lp = model_prior_logvar(&m, &a, 0);
    mu[0] = 0.5f, mu[1] = -2.0f, lv[0] = 0.3f, lv[1] = -1.0f;
    mp[0] = 1.0f, mp[1] = -1.0f, lp[0] = -0.5f, lp[1] = 0.7f;
    memset(model_logits(&m, &a), 0, 4 * sizeof(float));
    model_loss(&m, &a, 1, &ELBO);
    want = 0.0;
    for (int j = 0; j < 2; j++)
        want += 0.5 * (lp[j] - lv[j] + (exp(lv[j]) + (mu[j] - mp[j]) * (mu[j] - mp[j])) /
                                           exp(lp[j]) - 1.0);
    printf("  KL to the prior network's N: %.6f (closed form %.6f)\n", a.kl[0], want);
    assert_true(fabs(a.kl[0] - want) < 1e-5);
    model_free(&m);
    model_acts_free(&a);
}

static void test_config_errors(void **state)
{
    (void)state;
    err_msg err;
    model_config ok = small(784, 1, 400, 0, 20, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0);
    assert_int_equal(model_config_check(&ok, &err), 0);
    model_config c = ok;
    c.n_hidden = 0;
    assert_int_equal(model_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "hidden layers"));
    c = ok;
    c.hidden[0] = MODEL_MAX_WIDTH + 1;
    assert_int_equal(model_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "hidden width"));
    c = ok;
    c.z_dim = 0;
    assert_int_equal(model_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "latent"));
    c = ok;
    c.act = (model_act)7;
    assert_int_equal(model_config_check(&c, &err), -1);
    c = ok;
    c.likelihood = (model_lik)3;
    assert_int_equal(model_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "likelihood"));
    c = ok;
    c.n_classes = MODEL_MAX_CLASSES + 1;
    assert_int_equal(model_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "classes"));
    model_acts a;
    assert_int_equal(model_acts_init(&a, &ok, SIZE_MAX / 8, &err), -1);
    assert_non_null(strstr(err.text, "too large"));
}

/* The default model has the design card's shape and parameter count:
 * 784*400+400 + 400*40+40 + 20*400+400 + 400*784+784 = 652824; the
 * conditional one adds 10 label columns to two layers and the prior
 * network, 10*400+400 + 400*40+40. */
static void test_default_shape(void **state)
{
    (void)state;
    model_config cfg = small(784, 1, 400, 0, 20, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0);
    model_net m;
    err_msg err;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    assert_int_equal(m.n_params, 652824);
    assert_int_equal(m.n_layers, 4);
    model_free(&m);
    cfg.n_classes = 10;
    assert_int_equal(model_layout(&m, &cfg, &err), 0);
    assert_null(m.params);
    assert_int_equal(m.n_params, 652824 + 10 * 400 + 10 * 400 + 10 * 400 + 400 + 400 * 40 + 40);
    assert_int_equal(m.n_layers, 6);
}

/* Glorot: every weight within sqrt(6 / (fan_in + fan_out)) and spread over
 * that range, biases 0, the output bias at the logit of each pixel's mean
 * (clipped to [0.001, 0.999]); the conv VAE alike, one output bias. */
static void test_glorot_init(void **state)
{
    (void)state;
    err_msg err;
    model_net m;
    model_config c = {784, 2, {64, 32}, 8, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 10, MODEL_ARCH_MLP};
    assert_int_equal(model_init(&m, &c, &err), 0);
    double mean[784];
    for (size_t p = 0; p < 784; p++)
        mean[p] = p < 100 ? 0.0 : p < 200 ? 1.0 : (double)p / 1000.0;
    rng_state r;
    rng_seed(&r, 5);
    model_init_glorot(&m, &r, mean);
    for (size_t l = 0; l < m.n_layers; l++) {
        const model_layer *L = &m.layer[l];
        size_t fan_in = L->in + L->n_onehot;
        float bound = sqrtf(6.0f / (float)(fan_in + L->out)), top = 0.0f;
        for (size_t i = 0; i < fan_in * L->out; i++) {
            float w = fabsf(m.params[L->w_off + i]);
            assert_true(w <= bound);
            top = w > top ? w : top;
        }
        assert_true(top > 0.9f * bound);
        for (size_t i = 0; i < L->out; i++) {
            float b = m.params[L->b_off + i];
            if (l != 2 * c.n_hidden + 1) {
                assert_true(b == 0.0f);
                continue;
            }
            double p = mean[i] < 0.001 ? 0.001 : mean[i] > 0.999 ? 0.999 : mean[i];
            assert_true(fabs(b - log(p / (1.0 - p))) < 1e-5);
        }
    }
    model_free(&m);

    model_config k = {144, 2, {4, 8}, 3, MODEL_ACT_LEAKY, MODEL_LIK_GAUSSIAN, 0, MODEL_ARCH_CONV};
    assert_int_equal(model_init(&m, &k, &err), 0);
    for (size_t p = 0; p < 784; p++)
        mean[p] = 0.25;
    model_init_glorot(&m, &r, mean);
    for (size_t b = 0; b < m.n_blocks; b++) {
        const model_block *K = &m.block[b];
        float bound = sqrtf(6.0f / (float)((K->cin + K->cout) * 16));
        for (size_t i = 0; i < K->cin * K->cout * 16; i++)
            assert_true(fabsf(m.params[K->w_off + i]) <= bound);
        float want = b == m.n_blocks - 1 ? logf(0.25f / 0.75f) : 0.0f;
        for (size_t i = 0; i < K->cout; i++)
            assert_true(fabsf(m.params[K->b_off + i] - want) < 1e-6f);
    }
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lik_huge_logits),
        cmocka_unit_test(test_grad_bernoulli),
        cmocka_unit_test(test_grad_continuous_bernoulli),
        cmocka_unit_test(test_grad_gaussian),
        cmocka_unit_test(test_grad_beta),
        cmocka_unit_test(test_grad_conditional),
        cmocka_unit_test(test_grad_colour_non_square),
        cmocka_unit_test(test_grad_check_catches_errors),
        cmocka_unit_test(test_grad_k_draws),
        cmocka_unit_test(test_grad_iwae_unbalanced),
        cmocka_unit_test(test_grad_two_layers),
        cmocka_unit_test(test_estimators_two_layers),
        cmocka_unit_test(test_iwae_values),
        cmocka_unit_test(test_estimators_exact),
        cmocka_unit_test(test_dreg_unbiased),
        cmocka_unit_test(test_likelihood_accuracy),
        cmocka_unit_test(test_cb_near_half),
        cmocka_unit_test(test_tanh_accuracy),
        cmocka_unit_test(test_kl_closed_form),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_default_shape),
        cmocka_unit_test(test_glorot_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
