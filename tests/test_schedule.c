/* test_schedule.c - the learning-rate schedules and KL warm-up at chosen
 * epochs and steps, against values worked out by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "schedule.h"

#define PI 3.14159265358979323846

#define CLOSE(got, want) \
    do { \
        double g_ = (got), w_ = (want); \
        if (!(fabs(g_ - w_) <= 1e-12 * (fabs(w_) + 1e-300))) \
            fail_msg("%s = %.17g, expected %.17g", #got, g_, w_); \
    } while (0)

static schedule_config config(schedule_kind kind)
{
    schedule_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = 1e-3;
    c.gamma = 1.0;
    return c;
}

/* Burda et al.: stage i covers 3^i epochs: epochs 0 | 1-3 | 4-12 | 13-39 |
 * 40-120 | 121-363 | 364-1092 | 1093-3279, at lr 1e-3 * 10^(-i/7). */
static void test_staged(void **state)
{
    (void)state;
    const struct { uint64_t epoch; size_t stage; } at[] = {
        {0, 0}, {1, 1}, {3, 1}, {4, 2}, {12, 2}, {13, 3}, {39, 3}, {40, 4},
        {120, 4}, {121, 5}, {363, 5}, {364, 6}, {1092, 6}, {1093, 7}, {3279, 7},
        {3280, 7}, {100000, 7},
    };
    schedule_config c = config(SCHEDULE_STAGED);
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        if (schedule_stage(at[i].epoch) != at[i].stage)
            fail_msg("epoch %llu: stage %zu, expected %zu",
                     (unsigned long long)at[i].epoch, schedule_stage(at[i].epoch),
                     at[i].stage);
        /* Constant within an epoch: the fraction done does not matter. */
        CLOSE(schedule_lr(&c, at[i].epoch, 0.0), 1e-3 * pow(10.0, -(double)at[i].stage / 7.0));
        CLOSE(schedule_lr(&c, at[i].epoch, 0.99), schedule_lr(&c, at[i].epoch, 0.0));
    }
    CLOSE(schedule_lr(&c, 1093, 0.5), 1e-4); /* the last stage: lr / 10 */
    const uint64_t sums[] = {0, 1, 4, 13, 40, 121, 364, 1093, 3280};
    for (size_t n = 0; n <= 8; n++)
        assert_int_equal(schedule_stage_epochs(n), sums[n]);
}

static void test_cosine(void **state)
{
    (void)state;
    schedule_config c = config(SCHEDULE_COSINE);
    c.warmup = 2;
    c.horizon = 10;
    /* Warm-up: linear in the run's position, step by step. */
    CLOSE(schedule_lr(&c, 0, 0.0), 0.0);
    CLOSE(schedule_lr(&c, 0, 0.5), 0.25e-3);
    CLOSE(schedule_lr(&c, 1, 0.5), 0.75e-3);
    /* Then half a cosine from lr down to 0 over epochs 2..10. */
    CLOSE(schedule_lr(&c, 2, 0.0), 1e-3);
    CLOSE(schedule_lr(&c, 6, 0.0), 0.5e-3);
    CLOSE(schedule_lr(&c, 4, 0.0), 1e-3 * 0.5 * (1.0 + cos(PI / 4.0)));
    CLOSE(schedule_lr(&c, 9, 0.5), 1e-3 * 0.5 * (1.0 + cos(PI * 7.5 / 8.0)));
    CLOSE(schedule_lr(&c, 10, 0.0), 0.0);
    CLOSE(schedule_lr(&c, 12, 0.3), 0.0);
    c.warmup = 0; /* no warm-up: full rate at the first step */
    CLOSE(schedule_lr(&c, 0, 0.0), 1e-3);
}

static void test_step(void **state)
{
    (void)state;
    schedule_config c = config(SCHEDULE_STEP);
    c.every = 3;
    c.gamma = 0.5;
    CLOSE(schedule_lr(&c, 0, 0.0), 1e-3);
    CLOSE(schedule_lr(&c, 2, 0.9), 1e-3);
    CLOSE(schedule_lr(&c, 3, 0.0), 0.5e-3);
    CLOSE(schedule_lr(&c, 8, 0.5), 0.25e-3);
    CLOSE(schedule_lr(&c, 9, 0.0), 0.125e-3);
    c = config(SCHEDULE_CONSTANT);
    CLOSE(schedule_lr(&c, 12345, 0.7), 1e-3);
}

static void test_kl_warmup(void **state)
{
    (void)state;
    CLOSE(schedule_kl_factor(0, 0, 0.0), 1.0);
    CLOSE(schedule_kl_factor(4, 0, 0.0), 0.0);
    CLOSE(schedule_kl_factor(4, 0, 0.5), 0.125);
    CLOSE(schedule_kl_factor(4, 2, 0.0), 0.5);
    CLOSE(schedule_kl_factor(4, 3, 0.75), 0.9375);
    CLOSE(schedule_kl_factor(4, 4, 0.0), 1.0);
    CLOSE(schedule_kl_factor(4, 100, 0.2), 1.0);
}

static void test_check(void **state)
{
    (void)state;
    err_msg err;
    schedule_config c = config(SCHEDULE_COSINE);
    c.horizon = 5;
    c.warmup = 5;
    assert_int_equal(schedule_check(&c, &err), -1);
    assert_non_null(strstr(err.text, "warm-up"));
    c.warmup = 4;
    assert_int_equal(schedule_check(&c, &err), 0);
    c = config(SCHEDULE_STEP);
    c.every = 0;
    assert_int_equal(schedule_check(&c, &err), -1);
    c.every = 2;
    c.gamma = 0.0;
    assert_int_equal(schedule_check(&c, &err), -1);
    c.gamma = 1.0;
    assert_int_equal(schedule_check(&c, &err), 0);
    c.lr = 0.0;
    assert_int_equal(schedule_check(&c, &err), -1);
    c = config((schedule_kind)7);
    assert_int_equal(schedule_check(&c, &err), -1);
    assert_string_equal(schedule_name(SCHEDULE_STAGED), "staged");
    assert_null(schedule_name((schedule_kind)7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_staged),
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_kl_warmup),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
