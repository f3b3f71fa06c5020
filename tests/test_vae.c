/* test_vae.c - the model's backward pass against central finite
 * differences (every parameter of every tensor), and the per-pixel loss
 * kernels against double-precision references. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae.h"

/* Finite differences in float32: step 1e-2 keeps the rounding error of the
 * ~20-nat loss near 1e-4 and the truncation error of tanh near 1e-5. */
#define FD_STEP 1e-2f
#define GRAD_ATOL 5e-4
#define GRAD_RTOL 5e-3
#define B 3

typedef struct fixture {
    vae_model m;
    vae_acts a;
    float *grads;
} fixture;

static void setup(fixture *f, size_t x_dim, size_t nh, const size_t *hidden,
                  size_t z, vae_act act, uint64_t seed)
{
    vae_config cfg = {0};
    cfg.x_dim = x_dim;
    cfg.n_hidden = nh;
    for (size_t i = 0; i < nh; i++)
        cfg.hidden[i] = hidden[i];
    cfg.z_dim = z;
    cfg.act = act;
    err_msg err;
    assert_int_equal(vae_init(&f->m, &cfg, &err), 0);
    assert_int_equal(vae_acts_init(&f->a, &cfg, B, &err), 0);
    rng_state r;
    rng_seed(&r, seed);
    vae_init_params(&f->m, &r);
    for (size_t i = 0; i < B * x_dim; i++)
        f->a.x[i] = rng_uniform(&r);
    rng_normal(&r, f->a.eps, B * z);
    f->grads = calloc(f->m.n_params, sizeof(float));
    assert_non_null(f->grads);
}

static void teardown(fixture *f)
{
    vae_free(&f->m);
    vae_acts_free(&f->a);
    free(f->grads);
}

/* The full batch loss with the fixture's fixed eps. */
static double loss_of(fixture *f)
{
    vae_encode(&f->m, &f->a, B);
    vae_reparam(&f->m, &f->a, B, 0);
    vae_decode(&f->m, &f->a, B);
    return vae_loss(&f->m, &f->a, B);
}

/* Bit pattern of which ReLU units are active in the last forward pass. */
static void relu_mask(const fixture *f, unsigned char *mask, size_t cap)
{
    size_t k = 0;
    for (size_t l = 0; l < f->m.n_layers; l++) {
        if (!f->m.layer[l].has_act)
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
    vae_backward(&f->m, &f->a, f->grads, B);
    int bad = 0;
    for (size_t l = 0; l < f->m.n_layers; l++) {
        const vae_layer *L = &f->m.layer[l];
        for (int part = 0; part < 2; part++) {
            size_t off = part ? L->b_off : L->w_off;
            size_t n = part ? L->out : L->in * L->out;
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
                if (f->m.cfg.act == VAE_ACT_RELU &&
                    (memcmp(base, up_mask, MASK_CAP) || memcmp(base, down_mask, MASK_CAP))) {
                    (*skipped)++;
                    continue;
                }
                double fd = (up - down) / (2.0 * FD_STEP);
                double diff = fabs(fd - f->grads[i]);
                if (diff > maxdiff)
                    maxdiff = diff;
                if (diff > GRAD_ATOL + GRAD_RTOL * fabs(fd)) {
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

static void test_grad_tanh_one_hidden(void **state)
{
    (void)state;
    fixture f;
    const size_t hidden[] = {6};
    size_t skipped;
    setup(&f, 10, 1, hidden, 3, VAE_ACT_TANH, 11);
    assert_int_equal(check_all(&f, "tanh 10-6-3", &skipped), 0);
    assert_int_equal(skipped, 0);
    teardown(&f);
}

static void test_grad_tanh_two_hidden(void **state)
{
    (void)state;
    fixture f;
    const size_t hidden[] = {7, 5};
    size_t skipped;
    setup(&f, 9, 2, hidden, 2, VAE_ACT_TANH, 12);
    assert_int_equal(check_all(&f, "tanh 9-7-5-2", &skipped), 0);
    assert_int_equal(skipped, 0);
    teardown(&f);
}

/* ReLU: every value whose finite difference does not straddle a kink must
 * agree, and those must be nearly all of them. */
static void test_grad_relu(void **state)
{
    (void)state;
    const size_t one[] = {8}, two[] = {8, 6};
    fixture f;
    size_t skipped;
    setup(&f, 12, 1, one, 3, VAE_ACT_RELU, 5);
    assert_int_equal(check_all(&f, "relu 12-8-3", &skipped), 0);
    printf("  relu 12-8-3: %zu of %zu values straddle a kink (skipped)\n",
           skipped, f.m.n_params);
    assert_true(skipped * 10 < f.m.n_params);
    teardown(&f);
    setup(&f, 12, 2, two, 3, VAE_ACT_RELU, 6);
    assert_int_equal(check_all(&f, "relu 12-8-6-3", &skipped), 0);
    printf("  relu 12-8-6-3: %zu of %zu values straddle a kink (skipped)\n",
           skipped, f.m.n_params);
    assert_true(skipped * 10 < f.m.n_params);
    teardown(&f);
}

/* A deliberately wrong gradient must be caught: the check is not vacuous. */
static void test_grad_check_catches_errors(void **state)
{
    (void)state;
    fixture f;
    const size_t hidden[] = {6};
    setup(&f, 10, 1, hidden, 3, VAE_ACT_TANH, 11);
    loss_of(&f);
    vae_backward(&f.m, &f.a, f.grads, B);
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

/* Per-pixel BCE and sigmoid from the vector kernels against double math,
 * over logits from -100 to 100 (both tails and 0) and targets in [0,1]. */
static void test_bce_and_sigmoid_accuracy(void **state)
{
    (void)state;
    enum { D = 401 }; /* not a multiple of 8: exercises the tail */
    vae_config cfg = {D, 1, {4}, 2, VAE_ACT_RELU};
    vae_model m;
    vae_acts a;
    err_msg err;
    assert_int_equal(vae_init(&m, &cfg, &err), 0);
    assert_int_equal(vae_acts_init(&a, &cfg, 1, &err), 0);
    float *logits = vae_logits(&m, &a);
    for (int j = 0; j < D; j++) {
        logits[j] = -100.0f + 0.5f * (float)j;
        a.x[j] = (float)((j * 37) % 11) / 10.0f;
    }
    memset(a.h[1], 0, 2 * 2 * sizeof(float)); /* mu = logvar = 0: KL 0 */
    vae_loss(&m, &a, 1);
    double want = 0.0;
    float *dlog = a.dh[m.n_layers - 1];
    for (int j = 0; j < D; j++) {
        double x = logits[j], t = a.x[j];
        want += fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
        double sig = 1.0 / (1.0 + exp(-x));
        assert_true(fabs(dlog[j] - (sig - t)) < 1e-6);
    }
    assert_true(fabs(a.bce[0] - want) / want < 1e-5);
    assert_true(fabs(a.kl[0]) < 1e-7);
    float sig[D];
    vae_sigmoid(sig, logits, D);
    for (int j = 0; j < D; j++) {
        double ref = 1.0 / (1.0 + exp(-(double)logits[j]));
        assert_true(fabs(sig[j] - ref) <= 1e-6 * ref + 1e-30);
    }
    vae_free(&m);
    vae_acts_free(&a);
}

/* KL of N(mu, e^lv) against N(0, 1) by its closed form. */
static void test_kl_closed_form(void **state)
{
    (void)state;
    vae_config cfg = {4, 1, {3}, 2, VAE_ACT_RELU};
    vae_model m;
    vae_acts a;
    err_msg err;
    assert_int_equal(vae_init(&m, &cfg, &err), 0);
    assert_int_equal(vae_acts_init(&a, &cfg, 1, &err), 0);
    float *mu = vae_mu(&m, &a, 0), *lv = vae_logvar(&m, &a, 0);
    mu[0] = 0.5f, mu[1] = -2.0f, lv[0] = 0.3f, lv[1] = -1.0f;
    memset(vae_logits(&m, &a), 0, 4 * sizeof(float));
    memset(a.x, 0, 4 * sizeof(float));
    vae_loss(&m, &a, 1);
    double want = 0.0;
    for (int j = 0; j < 2; j++)
        want += -0.5 * (1.0 + lv[j] - mu[j] * mu[j] - exp(lv[j]));
    assert_true(fabs(a.kl[0] - want) < 1e-5);
    assert_true(fabs(a.bce[0] - 4.0 * log(2.0)) < 1e-5);
    vae_free(&m);
    vae_acts_free(&a);
}

static void test_config_errors(void **state)
{
    (void)state;
    err_msg err;
    vae_config ok = {784, 1, {400}, 20, VAE_ACT_RELU};
    assert_int_equal(vae_config_check(&ok, &err), 0);
    vae_config c = ok;
    c.n_hidden = 0;
    assert_int_equal(vae_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "hidden layers"));
    c = ok;
    c.hidden[0] = VAE_MAX_WIDTH + 1;
    assert_int_equal(vae_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "hidden width"));
    c = ok;
    c.z_dim = 0;
    assert_int_equal(vae_config_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "latent"));
    c = ok;
    c.act = (vae_act)7;
    assert_int_equal(vae_config_check(&c, &err), -1);
    vae_acts a;
    assert_int_equal(vae_acts_init(&a, &ok, SIZE_MAX / 8, &err), -1);
    assert_non_null(strstr(err.text, "too large"));
}

/* The default model has the design card's shape and parameter count:
 * 784*400+400 + 400*40+40 + 20*400+400 + 400*784+784 = 652824. */
static void test_default_shape(void **state)
{
    (void)state;
    vae_config cfg = {784, 1, {400}, 20, VAE_ACT_RELU};
    vae_model m;
    err_msg err;
    assert_int_equal(vae_init(&m, &cfg, &err), 0);
    assert_int_equal(m.n_layers, 4);
    assert_int_equal(m.n_params, 652824);
    assert_int_equal(m.layer[1].out, 40);
    assert_int_equal(m.layer[2].in, 20);
    assert_int_equal(m.layer[3].out, 784);
    rng_state r;
    rng_seed(&r, 1);
    vae_init_params(&m, &r);
    /* PyTorch's nn.Linear bounds: 1/sqrt(784) for the first layer. */
    float bound = 1.0f / sqrtf(784.0f), maxabs = 0.0f;
    for (size_t i = 0; i < 784 * 400; i++)
        maxabs = fmaxf(maxabs, fabsf(m.params[i]));
    assert_true(maxabs <= bound && maxabs > 0.99f * bound);
    vae_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_tanh_one_hidden),
        cmocka_unit_test(test_grad_tanh_two_hidden),
        cmocka_unit_test(test_grad_relu),
        cmocka_unit_test(test_grad_check_catches_errors),
        cmocka_unit_test(test_bce_and_sigmoid_accuracy),
        cmocka_unit_test(test_kl_closed_form),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_default_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
