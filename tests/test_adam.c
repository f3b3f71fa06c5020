/* test_adam.c - Adam against values worked out by hand (PyTorch's formula)
 * and against the formula in double over every range of v. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
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

/* ---- the update against double precision ------------------------------ */

/* The update's relative error against the formula in exact arithmetic on
 * the float m and v, in 2^-23: sqrt, the fused multiply-add and the
 * division each round once (the product step * m too). */
#define UPDATE_ULPS 2.0

/* xorshift64*: the same values on every run. */
static uint64_t next_u64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

/* +-2^e, e uniform in [lo, hi): magnitudes spread over many binades. */
static float signed_pow2(uint64_t *s, double lo, double hi)
{
    uint64_t r = next_u64(s);
    double e = lo + (hi - lo) * (double)(r >> 11) * 0x1p-53;
    return (float)((r & 1) ? -exp2(e) : exp2(e));
}

/* Half the spacing of floats just above |x|: the most p - update can be
 * off by when rounded to float. */
static double half_spacing(float x)
{
    float a = fabsf(x);
    return 0.5 * ((double)nextafterf(a, INFINITY) - a);
}

/* One step on N values drawn for it: p half 0 (so p_after = -update
 * exactly) and half not; g 0 for a quarter; m 0 for an eighth; v before
 * the step 0, subnormal, tiny, ordinary or large, a fifth each. With
 * g = 0, v stays 0 or subnormal: sqrt(0) and sqrt of subnormals are
 * checked. Returns the largest relative error of an update, in 2^-23. */
static double check_update(double lr, double eps, uint64_t t, uint64_t seed)
{
    enum { N = 4099 }; /* 256 full vectors of 16 and a ragged tail */
    static float p0[N], g[N], m0[N], v0[N], p[N], m[N], v[N];
    uint64_t s = seed;
    for (int i = 0; i < N; i++) {
        p0[i] = i % 2 ? signed_pow2(&s, -8, 4) : 0.0f;
        g[i] = next_u64(&s) % 4 ? signed_pow2(&s, -40, 30) : 0.0f;
        m0[i] = next_u64(&s) % 8 ? signed_pow2(&s, -40, 20) : 0.0f;
        switch (next_u64(&s) % 5) {
        case 0: v0[i] = 0.0f; break;
        case 1: v0[i] = fabsf(signed_pow2(&s, -149, -127)); break;
        case 2: v0[i] = fabsf(signed_pow2(&s, -126, -90)); break;
        case 3: v0[i] = fabsf(signed_pow2(&s, -40, 10)); break;
        default: v0[i] = fabsf(signed_pow2(&s, 60, 100)); break;
        }
    }
    memcpy(p, p0, sizeof p);
    memcpy(m, m0, sizeof m);
    memcpy(v, v0, sizeof v);
    adam_config c = adam_defaults(lr);
    c.eps = eps;
    const float *gs = g;
    adam_step(p, &gs, 1, m, v, N, &c, t);

    /* the coefficients as adam.h says: in double, rounded to float once */
    float b1 = (float)c.beta1, b2 = (float)c.beta2;
    float ob1 = (float)(1.0 - c.beta1), ob2 = (float)(1.0 - c.beta2);
    float step = (float)(lr / (1.0 - pow(c.beta1, (double)t)));
    float rc = (float)(1.0 / sqrt(1.0 - pow(c.beta2, (double)t)));
    float eps_f = (float)eps;
    double worst = 0.0;
    int zero_v = 0, subnormal_v = 0;
    for (int i = 0; i < N; i++) {
        /* m and v: within 2^-22 of their terms' size */
        double mb = (double)b1 * m0[i], mg = (double)ob1 * g[i];
        double vw = (double)b2 * v0[i] + (double)ob2 * g[i] * g[i];
        assert_true(fabs(m[i] - (mb + mg)) <= 0x1p-22 * (fabs(mb) + fabs(mg)));
        assert_true(fabs(v[i] - vw) <= 0x1p-22 * vw + FLT_TRUE_MIN);
        zero_v += v[i] == 0.0f && m[i] != 0.0f;
        subnormal_v += v[i] > 0.0f && v[i] < FLT_MIN;

        /* the update, exactly (to double's precision) on the float m, v */
        double a = (double)step * m[i];
        double u = a / (sqrt((double)v[i]) * rc + eps_f);
        if (u == 0.0) {
            assert_true(p[i] == p0[i]);
            continue;
        }
        /* the values drawn keep step * m and the update normal */
        assert_true(fabs(a) >= FLT_MIN && fabs(u) >= FLT_MIN && fabs(u) <= FLT_MAX);
        double err = fabs(((double)p0[i] - p[i]) - u);
        if (p0[i] == 0.0f) {
            if (err / fabs(u) > worst)
                worst = err / fabs(u);
            assert_true(err <= UPDATE_ULPS * 0x1p-23 * fabs(u));
        } else {
            /* p - update rounds once more */
            assert_true(err <= UPDATE_ULPS * 0x1p-23 * fabs(u) + half_spacing(p[i]));
        }
    }
    /* the draws did reach sqrt(0) with m != 0, and subnormal v */
    assert_true(zero_v > 50 && subnormal_v > 50);
    return worst / 0x1p-23;
}

/* The update within adam.h's bound over v from 0 through subnormals to
 * 2^100, at the first step and later ones, with eps small enough that
 * sqrt(v) of a subnormal v matters. An approximate square root (a 14-bit
 * rsqrt estimate, say) would
 * be off by up to 2^-14 (512 * 2^-23). */
static void test_adam_update_accuracy(void **state)
{
    (void)state;
    static const struct { double lr, eps; uint64_t t; } runs[] = {
        {1e-3, 1e-8, 1}, {3e-4, 1e-8, 10}, {1e-2, 1e-30, 100}, {1e-3, 1e-8, 100000},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        double worst = check_update(runs[r].lr, runs[r].eps, runs[r].t,
                                    0x9e3779b97f4a7c15ULL + r);
        print_message("lr %g eps %g t %llu: update within %.2f * 2^-23 (bound %.1f)\n",
                      runs[r].lr, runs[r].eps, (unsigned long long)runs[r].t, worst, UPDATE_ULPS);
    }
}

/* v = inf, from a g whose square overflows or kept from before, leaves p
 * where it is (m / inf = 0), and v = 0 with m != 0 moves p by step * m /
 * eps: at places in full vectors of 16 and in the tail. */
static void test_adam_special_v(void **state)
{
    (void)state;
    enum { N = 37 };
    float p[N], g[N], m[N], v[N];
    for (int i = 0; i < N; i++) {
        p[i] = 0.5f;
        g[i] = 0.01f;
        m[i] = 0.001f;
        v[i] = 1e-4f;
    }
    static const int big_g[] = {3, 20, 33}, inf_v[] = {7, 16, 36}, zero_v[] = {0, 15, 34};
    for (int j = 0; j < 3; j++) {
        g[big_g[j]] = 3e30f;
        v[inf_v[j]] = INFINITY;
        g[zero_v[j]] = 0.0f;
        v[zero_v[j]] = 0.0f;
    }
    adam_config c = adam_defaults(1e-3);
    const float *gs = g;
    adam_step(p, &gs, 1, m, v, N, &c, 3);
    double step = (double)(float)(1e-3 / (1.0 - pow(0.9, 3.0)));
    for (int j = 0; j < 3; j++) {
        assert_true(isinf(v[big_g[j]]) && p[big_g[j]] == 0.5f);
        assert_true(isinf(v[inf_v[j]]) && p[inf_v[j]] == 0.5f);
        int i = zero_v[j];
        assert_true(v[i] == 0.0f);
        double u = step * m[i] / (double)(float)1e-8;
        assert_true(fabs((0.5 - p[i]) - u) <= UPDATE_ULPS * 0x1p-23 * u + half_spacing(p[i]));
    }
    /* and the ordinary ones moved, by the same amount */
    assert_true(p[1] < 0.5f && p[1] == p[35]);
}

/* adam.h's formula to the bit: the AVX-512 kernel (16 at a time, a
 * masked tail) and the plain loop both give what these float operations
 * give one value at a time, over a length with full vectors, blocks and a
 * tail, and gradient shares summed in order. */
static void test_adam_bits(void **state)
{
    (void)state;
    enum { N = 1061, K = 2 };
    static float p[N], m[N], v[N], g[K][N], rp[N], rm[N], rv[N];
    uint64_t s = 77;
    for (int i = 0; i < N; i++) {
        rp[i] = p[i] = signed_pow2(&s, -6, 2);
        rm[i] = m[i] = i % 9 ? signed_pow2(&s, -20, -4) : 0.0f;
        rv[i] = v[i] = i % 7 ? fabsf(signed_pow2(&s, -30, -6)) : 0.0f;
        for (int k = 0; k < K; k++)
            g[k][i] = signed_pow2(&s, -12, 2);
    }
    adam_config c = adam_defaults(2e-3);
    c.eps = 1e-4;
    const float *gs[K] = {g[0], g[1]};
    for (uint64_t t = 1; t <= 3; t++) {
        adam_step(p, gs, K, m, v, N, &c, t);
        float b1 = (float)c.beta1, b2 = (float)c.beta2;
        float ob1 = (float)(1.0 - c.beta1), ob2 = (float)(1.0 - c.beta2);
        float step = (float)(c.lr / (1.0 - pow(c.beta1, (double)t)));
        float rc = (float)(1.0 / sqrt(1.0 - pow(c.beta2, (double)t)));
        float eps = (float)c.eps;
        for (int i = 0; i < N; i++) {
            volatile float gi = g[0][i] + g[1][i], og = ob1 * gi, vg = ob2 * gi;
            vg = vg * gi;
            rm[i] = fmaf(b1, rm[i], og);
            rv[i] = fmaf(b2, rv[i], vg);
            volatile float num = step * rm[i], d = fmaf(sqrtf(rv[i]), rc, eps);
            volatile float q = num / d;
            rp[i] = rp[i] - q;
        }
        assert_memory_equal(m, rm, sizeof m);
        assert_memory_equal(v, rv, sizeof v);
        assert_memory_equal(p, rp, sizeof p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_by_hand),
        cmocka_unit_test(test_adam_vector),
        cmocka_unit_test(test_adam_gradient_shares),
        cmocka_unit_test(test_adam_bits),
        cmocka_unit_test(test_adam_update_accuracy),
        cmocka_unit_test(test_adam_special_v),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
