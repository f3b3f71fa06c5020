/* test_adam.c - Adam against values worked out by hand (PyTorch's formula). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "adam.h"

/* p = 1, lr 1e-3, gradients 0.5, -1, 0.25 over steps 1..3:
 *   m1 = 0.05,    v1 = 0.00025,     p1 = 1 - 1e-3 * 0.5 / (0.5 + 1e-8)
 *   m2 = -0.055,  v2 = 0.00124975,  p2 = p1 + 1e-3 * (0.055/0.19) / (sqrt(v2/0.001999) + 1e-8)
 *   m3 = -0.0245, v3 = 0.001311000..., p3 as the same formula gives. */
static void test_adam_by_hand(void **state)
{
    (void)state;
    static const double want_p[3] = {0.99900000002, 0.9993661035424056, 0.9995027942033897};
    static const double want_m[3] = {0.05, -0.055, -0.0245};
    static const double want_v[3] = {0.00025, 0.00124975, 0.00131100025};
    const float grads[3] = {0.5f, -1.0f, 0.25f};
    float p = 1.0f, m = 0.0f, v = 0.0f;
    adam_config c = adam_defaults(1e-3f);
    assert_true(c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8);
    for (int t = 0; t < 3; t++) {
        const float *g = &grads[t];
        adam_step(&p, &g, 1, &m, &v, 1, &c, (uint64_t)t + 1);
        /* float arithmetic: agree to a few ulps of the values involved */
        assert_true(fabs(p - want_p[t]) < 2e-7);
        assert_true(fabs(m - want_m[t]) < 3e-8);  /* ulp(0.05) = 3.7e-9 */
        assert_true(fabs(v - want_v[t]) < 1e-9);  /* ulp(0.00125) = 1.2e-10 */
    }
}

/* Every element follows the same rule, and a zero gradient moves nothing at
 * step 1 (m = 0). */
static void test_adam_vector(void **state)
{
    (void)state;
    enum { N = 37 };
    float p[N], g[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++) {
        p[i] = (float)i;
        g[i] = i % 3 == 0 ? 0.0f : (float)(i - 18);
    }
    adam_config c = adam_defaults(0.1f);
    const float *gs = g;
    adam_step(p, &gs, 1, m, v, N, &c, 1);
    for (int i = 0; i < N; i++) {
        if (g[i] == 0.0f) {
            assert_true(p[i] == (float)i);
        } else {
            /* step 1: mhat = g, vhat = g^2, so the move is lr * sign(g) */
            float want = (float)i - 0.1f * (g[i] > 0 ? 1.0f : -1.0f);
            assert_true(fabsf(p[i] - want) < 1e-5f);
        }
    }
}

/* A gradient given as shares (one per thread of a data-parallel batch) is
 * their sum in order: bit-identical to a step on the summed buffer, over a
 * length that spans several internal blocks and a ragged tail. */
static void test_adam_gradient_shares(void **state)
{
    (void)state;
    enum { N = 1300, K = 3 };
    static float p1[N], p2[N], m1[N], m2[N], v1[N], v2[N], g[K][N], sum[N];
    for (int i = 0; i < N; i++) {
        p1[i] = p2[i] = 0.01f * (float)(i % 97) - 0.4f;
        m1[i] = m2[i] = 0.001f * (float)(i % 13);
        v1[i] = v2[i] = 1e-4f * (float)(i % 7 + 1);
        for (int k = 0; k < K; k++)
            g[k][i] = 0.1f * (float)((i * (k + 3)) % 17) - 0.8f;
        sum[i] = (g[0][i] + g[1][i]) + g[2][i];
    }
    adam_config c = adam_defaults(3e-3);
    const float *shares[K] = {g[0], g[1], g[2]};
    const float *whole = sum;
    for (uint64_t t = 1; t <= 4; t++) {
        adam_step(p1, shares, K, m1, v1, N, &c, t);
        adam_step(p2, &whole, 1, m2, v2, N, &c, t);
    }
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(v1, v2, sizeof v1);
    /* and the parameters did move */
    assert_true(p1[5] != 0.01f * 5.0f - 0.4f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_by_hand),
        cmocka_unit_test(test_adam_vector),
        cmocka_unit_test(test_adam_gradient_shares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
