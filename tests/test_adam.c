/* test_adam.c - Adam against values worked out by hand (PyTorch's formula). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

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
        adam_step(&p, &grads[t], &m, &v, 1, &c, (uint64_t)t + 1);
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
    adam_step(p, g, m, v, N, &c, 1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_by_hand),
        cmocka_unit_test(test_adam_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
