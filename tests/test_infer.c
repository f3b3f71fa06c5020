/* test_infer.c - the test loss, per-image codes and the importance-weighted
 * bound: they agree with each other, do not depend on the team size, and
 * the bound behaves as a bound (K = 1 is the ELBO's estimate, more draws
 * tighten it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "par.h"

#define N_IMAGES 200

static model_net model, cond, two; /* two: two stochastic layers */
static idx_set set;

/* Images with some structure (a random bar each), and a model trained a
 * little on nothing: random, but its encoder is not degenerate. */
static int setup(void **state)
{
    (void)state;
    err_msg err;
    model_config cfg = {784, 1, {32}, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_config ccfg = {784, 1, {32}, 3, MODEL_ACT_RELU, MODEL_LIK_GAUSSIAN, 10, MODEL_ARCH_MLP};
    model_config tcfg = {784, 1, {32}, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    tcfg.z2_dim = 2, tcfg.n_hidden2 = 1, tcfg.hidden2[0] = 8;
    if (model_init(&model, &cfg, &err) || model_init(&cond, &ccfg, &err) ||
        model_init(&two, &tcfg, &err))
        return -1;
    rng_state r;
    rng_seed(&r, 3);
    model_init_params(&model, &r);
    model_init_params(&cond, &r);
    model_init_params(&two, &r);
    set.n = N_IMAGES;
    set.rows = set.cols = 28;
    set.images = calloc(N_IMAGES * 784, 1);
    set.labels = malloc(N_IMAGES);
    if (!set.images || !set.labels)
        return -1;
    for (size_t i = 0; i < N_IMAGES; i++) {
        set.labels[i] = (uint8_t)(i % 10);
        size_t pos = 4 + rng_below(&r, 20);
        for (size_t k = 4; k < 24; k++)
            set.images[i * 784 + (i % 2 ? k * 28 + pos : pos * 28 + k)] =
                (uint8_t)(128 + rng_below(&r, 128));
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    model_free(&model);
    model_free(&cond);
    model_free(&two);
    idx_free(&set);
    par_shutdown();
    return 0;
}

/* The per-image terms are the ones eval sums. */
static void test_per_image_sums_to_eval(void **state)
{
    (void)state;
    err_msg err;
    for (size_t T = 1; T <= 3; T += 2) {
        assert_int_equal(par_init(T, &err), 0);
        shard_set s;
        assert_int_equal(shard_init(&s, &model, &(shard_spec){.cap = 64}, &err), 0);
        double rec, kl;
        double loss = infer_eval(&model, &s, &set, NULL, 5, &rec, &kl);
        float r[N_IMAGES], k[N_IMAGES], mu[N_IMAGES * 3];
        infer_per_image(&model, &s, &set, NULL, 5, mu, NULL, r, k);
        double sr = 0.0, sk = 0.0;
        for (size_t i = 0; i < N_IMAGES; i++)
            sr += r[i], sk += k[i];
        printf("  team %zu: loss %.6f, per-image sums %.6f + %.6f\n", T, loss,
               sr / N_IMAGES, sk / N_IMAGES);
        assert_true(fabs(sr / N_IMAGES - rec) < 1e-9 * rec);
        assert_true(fabs(sk / N_IMAGES - kl) < 1e-9 * kl + 1e-12);
        /* mu is the encoder's mean: the same image, the same mu. */
        assert_true(isfinite(mu[0]) && mu[3 * 7] != mu[3 * 8]);
        shard_free(&s);
    }
}

static double iw_of(const model_net *m, size_t K, size_t T, uint64_t seed)
{
    err_msg err;
    assert_int_equal(par_init(T, &err), 0);
    infer_iw_result res;
    if (infer_iw(m, &set, NULL, K, seed, 0, &res, &err))
        fail_msg("%s", err.text);
    assert_true(isfinite(res.iw_nll));
    return res.iw_nll;
}

static void test_iw_bound(void **state)
{
    (void)state;
    const model_net *models[3] = {&model, &cond, &two};
    static const char *const names[3] = {"bernoulli", "conditional gaussian",
                                         "two stochastic layers"};
    for (int mi = 0; mi < 3; mi++) {
        const model_net *m = models[mi];
        err_msg err;
        assert_int_equal(par_init(2, &err), 0);
        shard_set s;
        assert_int_equal(shard_init(&s, m, &(shard_spec){.cap = 64}, &err), 0);
        double rec, kl, elbo = infer_eval(m, &s, &set, NULL, 1, &rec, &kl);
        shard_free(&s);
        /* K = 1 estimates the negative ELBO: the same mean within sampling
         * noise (several seeds average it down). */
        double k1 = 0.0;
        for (uint64_t seed = 1; seed <= 4; seed++)
            k1 += iw_of(m, 1, 2, seed) / 4.0;
        double k10 = iw_of(m, 10, 2, 1), k100 = iw_of(m, 100, 2, 1);
        printf("  %s: -ELBO %.3f, IW K=1 %.3f, K=10 %.3f, K=100 %.3f\n", names[mi], elbo,
               k1, k10, k100);
        assert_true(fabs(k1 - elbo) < 0.01 * elbo);
        assert_true(k10 < k1);
        assert_true(k100 < k10);
        /* The same draws whatever the team: each image's are its own. */
        double k10_one = iw_of(m, 10, 1, 1), k10_three = iw_of(m, 10, 3, 1);
        assert_true(fabs(k10_one - k10) < 1e-9 * fabs(k10));
        assert_true(fabs(k10_three - k10) < 1e-9 * fabs(k10));
    }
}

/* With two stochastic layers the bound's K = 1 value is -log w of one draw
 * of the chain: each image's draws are its own stream's, h1's noise then
 * h2's (rng_mix(seed ^ 0x69775f65, i), docs/checkpoint.md); the same
 * numbers through model_loss's IW objective give the same mean. */
static void test_iw_two_layers_exact(void **state)
{
    (void)state;
    err_msg err;
    assert_int_equal(par_init(1, &err), 0);
    model_acts a;
    assert_int_equal(model_acts_init(&a, &two.cfg, N_IMAGES, &err), 0);
    size_t Z = two.cfg.z_dim, Z2 = two.cfg.z2_dim;
    shard_batch b = {&set, NULL, 0, N_IMAGES, NULL, 0.0f, 0};
    shard_gather(&a, &b, 0, N_IMAGES);
    for (size_t i = 0; i < N_IMAGES; i++) {
        rng_state r;
        rng_seed(&r, rng_mix(7 ^ 0x69775f65ULL, i));
        rng_normal(&r, a.eps + i * Z, Z);
        rng_normal(&r, a.eps2 + i * Z2, Z2);
    }
    model_encode(&two, &a, N_IMAGES);
    model_reparam(&two, &a, N_IMAGES, 0);
    model_decode(&two, &a, N_IMAGES);
    model_loss(&two, &a, N_IMAGES, &(model_loss_spec){MODEL_OBJ_IWAE, 1.0, MODEL_EST_STANDARD});
    double want = 0.0;
    for (size_t i = 0; i < N_IMAGES; i++)
        want += a.obj[i] / (double)N_IMAGES;
    double got = iw_of(&two, 1, 1, 7);
    printf("  two layers, K = 1: infer_iw %.6f, model_loss's -log w %.6f\n", got, want);
    assert_true(fabs(got - want) < 1e-4 * fabs(want));
    model_acts_free(&a);
}

static void test_iw_bench_times(void **state)
{
    (void)state;
    err_msg err;
    assert_int_equal(par_init(2, &err), 0);
    infer_iw_result res;
    assert_int_equal(infer_iw(&model, &set, NULL, 20, 1, 1, &res, &err), 0);
    printf("  work %.4f thread-s, sgemm floor %.4f thread-s, %.3g flops\n",
           res.work_s, res.gemm_s, res.gemm_flops);
    assert_true(res.work_s > 0.0 && res.gemm_s > 0.0);
    /* decoding 200 x 20 rows: (3*32 + 32*784) multiply-adds each, and more
     * for the encoder */
    assert_true(res.gemm_flops >= 2.0 * N_IMAGES * 20 * (3 * 32 + 32 * 784));
    assert_int_equal(infer_iw(&model, &set, NULL, 0, 1, 0, &res, &err), -1);
    assert_non_null(strstr(err.text, "at least 1"));
}

/* A binarized view: the same test set, a fixed binarization (the key is
 * the same for every model), and another loss than the intensities'. */
static void test_test_view(void **state)
{
    (void)state;
    idx_view none = infer_test_view(0), bin = infer_test_view(2);
    assert_int_equal(none.binarize, 0);
    assert_int_equal(bin.binarize, 1);
    assert_true(bin.key == infer_test_view(1).key);
    err_msg err;
    assert_int_equal(par_init(1, &err), 0);
    shard_set s;
    assert_int_equal(shard_init(&s, &model, &(shard_spec){.cap = 64}, &err), 0);
    double r1, r2, k1, k2;
    double a = infer_eval(&model, &s, &set, &none, 1, &r1, &k1);
    double b = infer_eval(&model, &s, &set, &bin, 1, &r2, &k2);
    double c = infer_eval(&model, &s, &set, &bin, 1, &r2, &k2);
    assert_true(a != b && b == c);
    shard_free(&s);
}

/* Active units, worked out by hand: over 4 images, a constant mean (variance
 * 0), one alternating 0 and 0.3 (variance 0.0225) and one alternating -1
 * and 1 (variance 1): 2 active; one alternating 0 and 0.19 (0.009025) is
 * just under the threshold. */
static void test_active_units(void **state)
{
    (void)state;
    const float mu[4 * 4] = {
        0.5f, 0.0f, -1.0f, 0.0f,
        0.5f, 0.3f, 1.0f, 0.19f,
        0.5f, 0.0f, -1.0f, 0.0f,
        0.5f, 0.3f, 1.0f, 0.19f,
    };
    double var[4];
    assert_int_equal(infer_active_units(mu, 4, 4, var), 2);
    assert_true(var[0] == 0.0);
    assert_true(fabs(var[1] - 0.0225) < 1e-8);
    assert_true(fabs(var[2] - 1.0) < 1e-12);
    assert_true(fabs(var[3] - 0.009025) < 1e-8);
    assert_int_equal(infer_active_units(mu, 0, 4, NULL), 0);
    assert_int_equal(infer_active_units(mu, 1, 4, NULL), 0); /* one image: no spread */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_image_sums_to_eval),
        cmocka_unit_test(test_iw_bound),
        cmocka_unit_test(test_iw_two_layers_exact),
        cmocka_unit_test(test_iw_bench_times),
        cmocka_unit_test(test_active_units),
        cmocka_unit_test(test_test_view),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
