/* test_shard.c - a batch split across the team computes what one thread
 * computes: the same noise, loss sums and summed gradient, for team sizes
 * that split the batch evenly, raggedly, or leave threads idle; by rows
 * and by units. */
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

static model_net model;
static idx_set set;

static int setup(void **state)
{
    (void)state;
    model_config cfg = {784, 2, {24, 16}, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    err_msg err;
    if (model_init(&model, &cfg, &err))
        return -1;
    rng_state r;
    rng_seed(&r, 5);
    model_init_params(&model, &r);
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
    model_free(&model);
    idx_free(&set);
    par_shutdown();
    return 0;
}

typedef struct result {
    double bce, kl;
    float *grad; /* summed over the shares */
    float eps[N_IMAGES * 3];
} result;

/* Runs images idx[0..B) with a team of T splitting by rows and noise from
 * seed 9. */
static void run_team(size_t T, const uint32_t *idx, size_t B, result *out)
{
    err_msg err;
    assert_int_equal(par_init(T, &err), 0);
    shard_set s;
    assert_int_equal(shard_init(&s, &model, &(shard_spec){8, 1, 1, MODEL_OBJ_ELBO, SHARD_ROWS, 0, 1}, &err), 0);
    assert_int_equal(s.T, T);
    assert_false(s.units);
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

static void assert_grad_close(const model_net *m, const result *a, const result *b);

static void assert_close(const result *a, const result *b, size_t B)
{
    assert_memory_equal(a->eps, b->eps, B * 3 * sizeof(float));
    assert_true(fabs(a->bce - b->bce) <= TOL * fabs(a->bce));
    assert_true(fabs(a->kl - b->kl) <= TOL * fabs(a->kl) + 1e-6);
    assert_grad_close(&model, a, b);
}

static void assert_grad_close(const model_net *m, const result *a, const result *b)
{
    /* Each gradient is a sum over images whose terms cancel in part, so
     * the order of the sum moves it by rounding of the terms' size: compare
     * against the tensor's largest gradient, not the entry alone. */
    double maxabs = 0.0, maxdiff = 0.0;
    for (size_t i = 0; i < m->n_params; i++)
        if (fabs(a->grad[i]) > maxabs)
            maxabs = fabs(a->grad[i]);
    for (size_t i = 0; i < m->n_params; i++) {
        double d = fabs((double)a->grad[i] - b->grad[i]);
        if (!(d <= maxdiff)) /* a NaN too */
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
    assert_int_equal(shard_init(&s, &model, &(shard_spec){8, 0, 1, MODEL_OBJ_ELBO, SHARD_ROWS, 0, 1}, &err), 0);
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

/* One training pass of batch idx[0..B) of model m with k draws under
 * objective o (and the IW bound's estimator est), by a team of T with the
 * plan given; the gradient copied into grad (the shares summed), the sums
 * into rec and kl. */
static void pass_est(const model_net *m, size_t T, shard_plan plan, size_t k,
                     model_objective o, model_estimator est, const uint32_t *idx, size_t B,
                     float *grad, double *rec, double *kl, double *obj)
{
    err_msg err;
    assert_int_equal(par_init(T, &err), 0);
    shard_set s;
    if (shard_init(&s, m, &(shard_spec){B, 1, k, o, plan, 0, 1, est}, &err))
        fail_msg("shard_init: %s", err.text);
    assert_int_equal(s.units, plan == SHARD_UNITS && T > 1);
    rng_state r;
    rng_seed(&r, 4);
    shard_draw_eps(&s, m, &r, B);
    shard_batch b = {&set, idx, 0, B, NULL, 0.0f, 0};
    shard_run(&s, m, &b, 1, 0.7, rec, kl);
    *obj = shard_objective(&s, B);
    const float *g[PAR_MAX_THREADS];
    size_t n = shard_grads(&s, B, g);
    assert_int_equal(n, s.units ? 1 : (B < T ? B : T));
    memcpy(grad, g[0], m->n_params * sizeof *grad);
    for (size_t i = 1; i < n; i++)
        for (size_t p = 0; p < m->n_params; p++)
            grad[p] += g[i][p];
    shard_free(&s);
}

/* The units plan splits every layer's output units among the threads:
 * every sum runs over the same terms as with one thread (an input
 * gradient's as the threads' parts, added in thread order), so teams of 2
 * to 5 give the one-thread loss, objective and gradient up to rounding
 * (OpenBLAS may also pick another kernel, with another order of the sums,
 * for a narrower share): plain, conditional
 * (labels into the encoder, decoder and prior network), and with k = 3
 * draws under the IWAE objective (the decoder on B * k rows), with each
 * gradient estimator. Layer widths leave some threads with a ragged share,
 * some with none. */
static void test_units_plan_is_one_thread(void **state)
{
    (void)state;
    const uint32_t idx[6] = {4, 1, 9, 9, 0, 11};
    static const struct {
        size_t classes, k;
        model_objective o;
        model_act act;
        model_estimator est;
    } cases[] = {
        {0, 1, MODEL_OBJ_ELBO, MODEL_ACT_TANH, MODEL_EST_STANDARD},
        {10, 1, MODEL_OBJ_ELBO, MODEL_ACT_RELU, MODEL_EST_STANDARD},
        {0, 3, MODEL_OBJ_IWAE, MODEL_ACT_LEAKY, MODEL_EST_STANDARD},
        {10, 3, MODEL_OBJ_ELBO, MODEL_ACT_TANH, MODEL_EST_STANDARD},
        {0, 3, MODEL_OBJ_IWAE, MODEL_ACT_TANH, MODEL_EST_DREG},
        {10, 3, MODEL_OBJ_IWAE, MODEL_ACT_RELU, MODEL_EST_STL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        model_config cfg = {784, 2, {100, 40}, 20, cases[c].act, MODEL_LIK_BERNOULLI,
                          cases[c].classes, MODEL_ARCH_MLP};
        model_net m;
        err_msg err;
        assert_int_equal(model_init(&m, &cfg, &err), 0);
        rng_state r;
        rng_seed(&r, 8);
        model_init_params(&m, &r);
        float *g1 = malloc(m.n_params * sizeof *g1), *gT = malloc(m.n_params * sizeof *gT);
        assert_non_null(g1);
        assert_non_null(gT);
        double rec1, kl1, obj1;
        pass_est(&m, 1, SHARD_ROWS, cases[c].k, cases[c].o, cases[c].est, idx, 6, g1, &rec1,
                 &kl1, &obj1);
        for (size_t T = 2; T <= 5; T++) {
            double rec, kl, obj;
            pass_est(&m, T, SHARD_UNITS, cases[c].k, cases[c].o, cases[c].est, idx, 6, gT,
                     &rec, &kl, &obj);
            assert_true(fabs(rec - rec1) <= 1e-6 * rec1);
            assert_true(fabs(kl - kl1) <= 1e-6 * kl1);
            assert_true(fabs(obj - obj1) <= 1e-6 * obj1);
            result r1 = {.grad = g1}, rT = {.grad = gT};
            printf("  case %zu, team %zu:", c, T);
            assert_grad_close(&m, &r1, &rT);
        }
        /* and the gradient is not trivially zero */
        double norm = 0.0;
        for (size_t p = 0; p < m.n_params; p++)
            norm += fabs(g1[p]);
        assert_true(norm > 1.0);
        free(g1);
        free(gT);
        model_free(&m);
    }
}

/* What each thread saw: its own slots only, so the threads never write
 * one variable. */
typedef struct then_log {
    int calls[PAR_MAX_THREADS];
    size_t T[PAR_MAX_THREADS];
} then_log;

static void log_then(void *ctx, size_t k, size_t T)
{
    then_log *l = ctx;
    if (k < PAR_MAX_THREADS) {
        l->calls[k]++;
        l->T[k] = T;
    }
}

/* shard_step is shard_draw_eps then shard_run (the same noise, loss and
 * gradient, bit for bit, with either plan; in the units plan thread 0
 * draws while the others gather), then the hook once on every thread. */
static void test_step_is_draw_then_run(void **state)
{
    (void)state;
    const uint32_t idx[8] = {3, 11, 0, 7, 7, 2, 9, 5};
    err_msg err;
    for (int plan = SHARD_ROWS; plan <= SHARD_UNITS; plan++)
        for (size_t T = 1; T <= 3; T++) {
            assert_int_equal(par_init(T, &err), 0);
            shard_set a, b;
            assert_int_equal(shard_init(&a, &model, &(shard_spec){8, 1, 1, MODEL_OBJ_ELBO, (shard_plan)plan, 0, 1}, &err), 0);
            assert_int_equal(shard_init(&b, &model, &(shard_spec){8, 1, 1, MODEL_OBJ_ELBO, (shard_plan)plan, 0, 1}, &err), 0);
            shard_batch batch = {&set, idx, 0, 8, NULL, 0.0f, 0};
            rng_state ra, rb;
            rng_seed(&ra, 21);
            rb = ra;
            double rec_a, kl_a, rec_b, kl_b;
            shard_draw_eps(&a, &model, &ra, 8);
            shard_run(&a, &model, &batch, 1, 1.0, &rec_a, &kl_a);
            then_log log = {{0}, {0}};
            shard_then then = {log_then, &log};
            shard_step(&b, &model, &batch, &rb, 1.0, &then, &rec_b, &kl_b);
            assert_true(rec_a == rec_b && kl_a == kl_b);
            assert_memory_equal(&ra, &rb, sizeof ra); /* as many draws */
            const float *ga[PAR_MAX_THREADS], *gb[PAR_MAX_THREADS];
            size_t n = shard_grads(&a, 8, ga);
            assert_int_equal(shard_grads(&b, 8, gb), n);
            for (size_t i = 0; i < n; i++)
                assert_memory_equal(ga[i], gb[i], model.n_params * sizeof(float));
            for (size_t k = 0; k < PAR_MAX_THREADS; k++) {
                assert_int_equal(log.calls[k], k < T);
                assert_int_equal(log.T[k], k < T ? T : 0);
            }
            shard_free(&a);
            shard_free(&b);
        }
}

typedef struct cover {
    unsigned char *hit;
    size_t n;
    int bad;
} cover;

static void mark(void *ctx, size_t lo, size_t hi)
{
    cover *c = ctx;
    if (lo >= hi || hi > c->n) {
        c->bad = 1;
        return;
    }
    for (size_t i = lo; i < hi; i++)
        c->hit[i]++;
}

/* The parameters each thread updates after a step (shard_param_share):
 * the threads' ranges cover every parameter exactly once, for both plans
 * and for teams that leave some thread without units of a layer; in the
 * units plan thread k's ranges are its units' weight rows and biases: in
 * every layer, the rows a 16-unit aligned share starts at, and no thread
 * gets a row of another's units. */
static void test_param_shares(void **state)
{
    (void)state;
    model_config cfg = {784, 2, {100, 40}, 20, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 10,
                      MODEL_ARCH_MLP};
    model_net m;
    err_msg err;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    for (int plan = SHARD_ROWS; plan <= SHARD_UNITS; plan++)
        for (size_t T = 2; T <= 5; T++) {
            assert_int_equal(par_init(T, &err), 0);
            shard_set s;
            assert_int_equal(shard_init(&s, &m, &(shard_spec){8, 1, 1, MODEL_OBJ_ELBO, (shard_plan)plan, 0, 1}, &err), 0);
            cover c = {calloc(m.n_params, 1), m.n_params, 0};
            assert_non_null(c.hit);
            for (size_t k = 0; k < T; k++) {
                unsigned char *before = malloc(m.n_params);
                assert_non_null(before);
                memcpy(before, c.hit, m.n_params);
                shard_param_share(&s, &m, k, T, mark, &c);
                if (plan != SHARD_UNITS) {
                    free(before);
                    continue;
                }
                /* Thread k's weights: whole rows, a share starting at a
                 * multiple of 16 units. */
                for (size_t l = 0; l < m.n_layers; l++) {
                    const model_layer *L = &m.layer[l];
                    size_t row = L->in + L->n_onehot, first = SIZE_MAX, count = 0;
                    for (size_t u = 0; u < L->out; u++)
                        if (c.hit[L->w_off + u * row] != before[L->w_off + u * row]) {
                            if (first == SIZE_MAX)
                                first = u;
                            count++;
                            /* the row and its bias, wholly */
                            for (size_t i = 0; i < row; i++)
                                assert_int_equal(c.hit[L->w_off + u * row + i], 1);
                            assert_int_equal(c.hit[L->b_off + u], 1);
                        }
                    if (count) {
                        assert_int_equal(first % 16, 0);
                        for (size_t u = first; u < first + count; u++)
                            assert_int_equal(c.hit[L->w_off + u * row],
                                             before[L->w_off + u * row] + 1);
                    }
                }
                free(before);
            }
            assert_false(c.bad);
            for (size_t i = 0; i < m.n_params; i++)
                if (c.hit[i] != 1)
                    fail_msg("plan %d, team %zu: parameter %zu updated %d times", plan, T,
                             i, c.hit[i]);
            free(c.hit);
            shard_free(&s);
        }
    model_free(&m);
}

/* The plan training picks: units for the MLP's small batches only. */
static void test_plan_choice(void **state)
{
    (void)state;
    assert_int_equal(shard_plan_for(&model, 20, 2), SHARD_UNITS);
    assert_int_equal(shard_plan_for(&model, 127, 2), SHARD_UNITS);
    assert_int_equal(shard_plan_for(&model, 128, 2), SHARD_ROWS);
    assert_int_equal(shard_plan_for(&model, 20, 1), SHARD_ROWS);
    model_net conv = model;
    conv.cfg.arch = MODEL_ARCH_CONV;
    assert_int_equal(shard_plan_for(&conv, 20, 2), SHARD_ROWS);
    shard_set s;
    err_msg err;
    assert_int_equal(shard_init(&s, &model, &(shard_spec){8, 0, 1, MODEL_OBJ_ELBO, SHARD_UNITS, 0, 1}, &err), -1);
    assert_non_null(strstr(err.text, "MLP"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_teams_agree),
        cmocka_unit_test(test_team_deterministic),
        cmocka_unit_test(test_team_resized_after_init),
        cmocka_unit_test(test_units_plan_is_one_thread),
        cmocka_unit_test(test_plan_choice),
        cmocka_unit_test(test_param_shares),
        cmocka_unit_test(test_step_is_draw_then_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
