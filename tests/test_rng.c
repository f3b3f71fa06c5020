/* test_rng.c - the seeded RNG: reproducible, resumable, and distributed as
 * claimed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "rng.h"

static void test_same_seed_same_stream(void **state)
{
    (void)state;
    rng_state a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_u64(&a);
        assert_true(x == rng_u64(&b));
        differ += x != rng_u64(&c);
    }
    assert_true(differ > 990);
}

/* Copying the state mid-stream (as a checkpoint does), the spare normal
 * included, continues the stream exactly. */
static void test_state_copy_resumes(void **state)
{
    (void)state;
    rng_state a;
    rng_seed(&a, 7);
    float first[5], rest_a[64], rest_b[64];
    rng_normal(&a, first, 5); /* odd count: leaves a spare */
    assert_true(a.has_spare == 1);
    rng_state b;
    memcpy(&b, &a, sizeof b);
    rng_normal(&a, rest_a, 64);
    rng_normal(&b, rest_b, 64);
    assert_memory_equal(rest_a, rest_b, sizeof rest_a);
}

static void test_normal_moments(void **state)
{
    (void)state;
    enum { N = 200000 };
    static float x[N];
    rng_state r;
    rng_seed(&r, 1);
    rng_normal(&r, x, N);
    double s = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < N; i++) {
        assert_true(isfinite(x[i]));
        s += x[i];
        s2 += (double)x[i] * x[i];
        s4 += (double)x[i] * x[i] * x[i] * x[i];
    }
    double mean = s / N, var = s2 / N - mean * mean, kurt = s4 / N;
    /* standard errors: mean 0.0022, var 0.0032, 4th moment 0.011 */
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.015);
    assert_true(fabs(kurt - 3.0) < 0.06);
}

static void test_uniform_and_below(void **state)
{
    (void)state;
    rng_state r;
    rng_seed(&r, 3);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        float u = rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        uint64_t k = rng_below(&r, 7);
        assert_true(k < 7);
        counts[k]++;
    }
    for (int k = 0; k < 7; k++)
        assert_true(counts[k] > 9500 && counts[k] < 10500);
}

static void test_shuffle_is_permutation(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint32_t idx[N];
    int seen[N] = {0}, moved = 0;
    for (uint32_t i = 0; i < N; i++)
        idx[i] = i;
    rng_state r;
    rng_seed(&r, 9);
    rng_shuffle(&r, idx, N);
    for (uint32_t i = 0; i < N; i++) {
        assert_true(idx[i] < N);
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_stream),
        cmocka_unit_test(test_state_copy_resumes),
        cmocka_unit_test(test_normal_moments),
        cmocka_unit_test(test_uniform_and_below),
        cmocka_unit_test(test_shuffle_is_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
