/* test_shard.c - a batch split across the team computes what one thread
 * computes: the same noise, loss sums and summed gradient, for team sizes
 * that split the batch evenly, raggedly, or leave threads idle. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"

#define N_IMAGES 12
#define TOL 2e-5 /* relative: only the order of float sums differs */

static vae_model model;
static idx_set set;

static int setup(void **state)
{
    (void)state;
    vae_config cfg = {784, 2, {24, 16}, 3, VAE_ACT_TANH, VAE_LIK_BERNOULLI, 0, VAE_ARCH_MLP};
    err_msg err;
    if (vae_init(&model, &cfg, &err))
        return -1;
    rng_state r;
    rng_seed(&r, 5);
    vae_init_params(&model, &r);
    set.n = N_IMAGES;
    set.rows = set.cols = 28;
    set.images = malloc(N_IMAGES * 784);
    set.labels = calloc(N_IMAGES, 1);
    if (!set.images || !set.labels)
        return -1;
    for (size_t i = 0; i < N_IMAGES * 784; i++)
        set.images[i] = (uint8_t)rng_below(&r, 256);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vae_free(&model);
    idx_free(&set);
    par_shutdown();
    return 0;
}

typedef struct result {
    double bce, kl;
    float *grad; /* summed over the shares */
    float eps[N_IMAGES * 3];
} result;

/* Runs images idx[0..B) with a team of T and noise from seed 9. */
static void run_team(size_t T, const uint32_t *idx, size_t B, result *out)
{
    err_msg err;
    assert_int_equal(par_init(T, &err), 0);
    shard_set s;
    assert_int_equal(shard_init(&s, &model, 8, 1, &err), 0);
    assert_int_equal(s.T, T);
    rng_state r;
    rng_seed(&r, 9);
    shard_draw_eps(&s, &model, &r, B);
    size_t at = 0;
    for (size_t k = 0; k < T; k++) {
        size_t lo, hi;
        par_share(B, 1, k, T, &lo, &hi);
        memcpy(out->eps + at, s.acts[k].eps, (hi - lo) * 3 * sizeof(float));
        at += (hi - lo) * 3;
    }
    assert_int_equal(at, B * 3);
    shard_batch b = {&set, idx, 0, B, NULL, 0.0f, 0};
    shard_run(&s, &model, &b, 1, 1.0, &out->bce, &out->kl);
    const float *g[PAR_MAX_THREADS];
    size_t n = shard_grads(&s, B, g);
    assert_int_equal(n, B < T ? B : (B + (B + T - 1) / T - 1) / ((B + T - 1) / T));
    out->grad = calloc(model.n_params, sizeof(float));
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < model.n_params; i++)
            out->grad[i] += g[k][i];
    shard_free(&s);
}

static void assert_close(const result *a, const result *b, size_t B)
{
    assert_memory_equal(a->eps, b->eps, B * 3 * sizeof(float));
    assert_true(fabs(a->bce - b->bce) <= TOL * fabs(a->bce));
    assert_true(fabs(a->kl - b->kl) <= TOL * fabs(a->kl) + 1e-6);
    /* Each gradient is a sum over images whose terms cancel in part, so
     * the order of the sum moves it by rounding of the terms' size: compare
     * against the tensor's largest gradient, not the entry alone. */
    double maxabs = 0.0, maxdiff = 0.0;
    for (size_t i = 0; i < model.n_params; i++)
        if (fabs(a->grad[i]) > maxabs)
            maxabs = fabs(a->grad[i]);
    for (size_t i = 0; i < model.n_params; i++) {
        double d = fabs((double)a->grad[i] - b->grad[i]);
        if (d > maxdiff)
            maxdiff = d;
    }
    printf(" max |gradient difference| %.2e, largest gradient %.2e (tolerance "
           "%.0e of it)\n", maxdiff, maxabs, TOL);
    assert_true(maxdiff <= TOL * maxabs);
}

static void test_teams_agree(void **state)
{
    (void)state;
    const uint32_t idx[8] = {3, 11, 0, 7, 7, 2, 9, 5}; /* a shuffled batch */
    const size_t sizes[] = {8, 7, 2, 1};
    for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
        size_t B = sizes[b];
        result one;
        run_team(1, idx, B, &one);
        for (size_t T = 2; T <= 5; T++) {
            result many;
            run_team(T, idx, B, &many);
            printf("  batch %zu, team %zu:", B, T);
            assert_close(&one, &many, B);
            free(many.grad);
        }
        free(one.grad);
    }
}

/* The same team twice: bit-identical. */
static void test_team_deterministic(void **state)
{
    (void)state;
    const uint32_t idx[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    result a, b;
    run_team(3, idx, 8, &a);
    run_team(3, idx, 8, &b);
    assert_true(a.bce == b.bce && a.kl == b.kl);
    assert_memory_equal(a.grad, b.grad, model.n_params * sizeof(float));
    free(a.grad);
    free(b.grad);
}

/* A shard set made for a team of 3 still computes its 3 shares when the
 * team has since changed size. */
static void test_team_resized_after_init(void **state)
{
    (void)state;
    err_msg err;
    assert_int_equal(par_init(3, &err), 0);
    shard_set s;
    assert_int_equal(shard_init(&s, &model, 8, 0, &err), 0);
    rng_state r;
    rng_seed(&r, 1);
    shard_draw_eps(&s, &model, &r, 8);
    shard_batch b = {&set, NULL, 2, 8, NULL, 0.0f, 0};
    double bce3, kl3, bce2, kl2;
    shard_run(&s, &model, &b, 0, 1.0, &bce3, &kl3);
    assert_int_equal(par_init(2, &err), 0);
    shard_run(&s, &model, &b, 0, 1.0, &bce2, &kl2);
    assert_true(bce3 == bce2 && kl3 == kl2 && bce3 > 0.0);
    shard_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_teams_agree),
        cmocka_unit_test(test_team_deterministic),
        cmocka_unit_test(test_team_resized_after_init),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
