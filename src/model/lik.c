/* lik.c - the likelihoods p(x | z) per pixel, 8 lanes at a time (see
 * src/model/lik.h). */
#include "lik.h"

#include <string.h>

#include "v8math.h"

/* ===================================================================== */
/* Likelihoods, per pixel, on 8 lanes                                     */
/* ===================================================================== */

#define LOG_2 0.69314718f
#define HALF_LOG_PI 0.57236494f /* 0.5 log(2 pi sigma^2) with sigma^2 = 1/2 */

/* The parts of the logistic function every likelihood shares, for logits
 * a: e = exp(-|a|), sig = sigmoid(a), and the binary cross-entropy against
 * t, softplus(a) - a t = max(a,0) - a t + log1p(e), stable for any a. */
typedef struct logistic {
    v8f e, sig, bce;
} logistic;

static inline logistic logistic_of(v8f a, v8f t)
{
    logistic l;
    l.e = v8_exp_nonpos(-v8_abs(a));
    v8f r = 1.0f / (1.0f + l.e);
    l.sig = v8_select(a >= 0.0f, r, l.e * r);
    v8f relu = (v8f)((v8i)a & (a > 0.0f));
    l.bce = relu - a * t + v8_log1p_unit(l.e);
    return l;
}

/* The continuous Bernoulli's log normalising constant as a function of the
 * logit a (lambda = sigmoid(a)): C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda)
 * = a / tanh(a / 2), even in a. With u = |a|, e = exp(-u):
 *   u >= 1/2: log C = log u - log(1 - e) + log1p(e),
 *             d log C / du = 1/u - 2e / ((1 - e)(1 + e))    (= 1/u - 1/sinh u)
 *   u < 1/2:  the series (x = u/2) log 2 + x^2/3 - 7x^4/90 + 62x^6/2835
 *             - 127x^8/18900, and its derivative; both branches are then
 *             accurate to float precision (the closed form loses digits to
 *             cancellation near 0, where C -> 2). */
static inline v8f cb_log_norm(v8f a, v8f e, v8f *dlogc_da)
{
    v8f u = v8_abs(a);
    v8f ex;
    v8f one_minus_e = -v8_expm1_nonpos(-u, &ex); /* 1 - e, accurately */
    v8f far = v8_log(u) - v8_log(one_minus_e) + v8_log1p_unit(e);
    v8f dfar = 1.0f / u - 2.0f * e / (one_minus_e * (1.0f + e));
    v8f u2 = u * u;
    v8f near = u2 * (-127.0f / 4838400.0f) + 62.0f / 181440.0f;
    near = near * u2 - 7.0f / 1440.0f;
    near = near * u2 + 1.0f / 12.0f;
    near = near * u2 + LOG_2;
    v8f dnear = u2 * (-127.0f / 604800.0f) + 62.0f / 30240.0f;
    dnear = dnear * u2 - 7.0f / 360.0f;
    dnear = dnear * u2 + 1.0f / 6.0f;
    dnear = dnear * u;
    v8i small = u < 0.5f;
    *dlogc_da = v8_copysign(v8_select(small, dnear, dfar), a);
    return v8_select(small, near, far);
}

/* The continuous Bernoulli's mean as a function of the logit a:
 * 1/2 + (coth(a/2) - 2/a) / 2, odd about 1/2; for |a| < 1 its series
 * a/12 - a^3/720 + a^5/30240 - a^7/1209600 + a^9/47900160. */
static inline v8f cb_mean(v8f a, v8f e)
{
    v8f u = v8_abs(a);
    v8f ex;
    v8f one_minus_e = -v8_expm1_nonpos(-u, &ex);
    v8f far = 0.5f * ((1.0f + e) / one_minus_e - 2.0f / u);
    v8f u2 = u * u;
    v8f near = u2 * (1.0f / 47900160.0f) - 1.0f / 1209600.0f;
    near = near * u2 + 1.0f / 30240.0f;
    near = near * u2 - 1.0f / 720.0f;
    near = near * u2 + 1.0f / 12.0f;
    near = near * u;
    return 0.5f + v8_copysign(v8_select(u < 1.0f, near, far), a);
}

/* -log p(t | a) per lane, with d/da into *grad and the mean into *mean. */
static inline v8f lik_lanes(model_lik lik, v8f a, v8f t, v8f *grad, v8f *mean)
{
    logistic l = logistic_of(a, t);
    if (lik == MODEL_LIK_BERNOULLI) {
        *grad = l.sig - t;
        *mean = l.sig;
        return l.bce;
    }
    if (lik == MODEL_LIK_CB) {
        v8f dlogc;
        v8f logc = cb_log_norm(a, l.e, &dlogc);
        *grad = l.sig - t - dlogc;
        *mean = cb_mean(a, l.e);
        return l.bce - logc;
    }
    /* Gaussian, sigma^2 = 1/2: (t - mu)^2 + log(pi)/2 with mu = sigmoid(a),
     * d/da = 2 (mu - t) mu (1 - mu), and mu (1 - mu) = e / (1 + e)^2. */
    v8f d = l.sig - t;
    v8f r = 1.0f / (1.0f + l.e);
    *grad = 2.0f * d * l.e * r * r;
    *mean = l.sig;
    return d * d; /* lik_row adds the constant once a row */
}

/* One row of n pixels: returns the summed -log p(t | a); writes the
 * gradient (LIK_GRAD) or the mean (LIK_MEAN) into out, or nothing
 * (LIK_SUM). t may be NULL for LIK_MEAN. The tail goes through the same
 * lanes on zero padding, masked out of the sum. */
float lik_row(model_lik lik, lik_out what, float *out, const float *a, const float *t,
              size_t n)
{
    v8f acc = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f grad, mean, tv = t ? v8_load(t + i) : (v8f){0};
        acc += lik_lanes(lik, v8_load(a + i), tv, &grad, &mean);
        if (what == LIK_GRAD)
            v8_store(out + i, grad);
        else if (what == LIK_MEAN)
            v8_store(out + i, mean);
    }
    if (i < n) {
        float ab[8] = {0}, tb[8] = {0}, ob[8];
        size_t rest = n - i;
        memcpy(ab, a + i, rest * sizeof *ab);
        if (t)
            memcpy(tb, t + i, rest * sizeof *tb);
        v8f grad, mean;
        v8f l = lik_lanes(lik, v8_load(ab), v8_load(tb), &grad, &mean);
        v8_store(ob, what == LIK_GRAD ? grad : mean);
        if (what != LIK_SUM)
            memcpy(out + i, ob, rest * sizeof *ob);
        for (size_t j = 0; j < rest; j++)
            acc[j] += l[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < 8; j++)
        sum += acc[j];
    /* The Gaussian's constant, added once rather than per pixel, so the
     * float sum keeps the digits that vary. */
    if (lik == MODEL_LIK_GAUSSIAN)
        sum += (float)((double)HALF_LOG_PI * (double)n);
    return sum;
}
