/* linear.c - fully connected layers and activations (see src/model/linear.h). */
#include "linear.h"

#include <string.h>

#include "gemm.h"
#include "v8math.h"

#define LEAKY_SLOPE 0.1f

/* tanh over n values in place, 8 lanes at a time. */
static void tanh_inplace(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        v8_store(x + i, v8_tanh(v8_load(x + i)));
    if (i < n) {
        float b[8] = {0};
        memcpy(b, x + i, (n - i) * sizeof *b);
        v8_store(b, v8_tanh(v8_load(b)));
        memcpy(x + i, b, (n - i) * sizeof *b);
    }
}

void act_forward(float *x, size_t n, model_act kind)
{
    if (kind == MODEL_ACT_TANH) {
        tanh_inplace(x, n);
    } else {
        float slope = kind == MODEL_ACT_LEAKY ? LEAKY_SLOPE : 0.0f;
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : slope * x[i];
    }
}

/* relu' = [y > 0], leaky' = y > 0 ? 1 : slope (the sign survives the
 * activation), tanh' = 1 - y^2. */
void act_backward(float *dout, const float *y, size_t n, model_act kind)
{
    if (kind == MODEL_ACT_TANH) {
        for (size_t i = 0; i < n; i++)
            dout[i] *= 1.0f - y[i] * y[i];
    } else {
        float slope = kind == MODEL_ACT_LEAKY ? LEAKY_SLOPE : 0.0f;
        for (size_t i = 0; i < n; i++)
            dout[i] = y[i] > 0.0f ? dout[i] : slope * dout[i];
    }
}

/* The sgemm transposes its second operand (w is out x in) and reads the
 * dense columns with leading dimension C+K; a one-hot input just adds
 * column C + y_i of w. Bias and ReLU go in one pass over the columns. */
void linear_forward_cols(float *out, const float *inp, const float *w, const float *b,
                         const uint8_t *y, size_t B, size_t C, size_t K, size_t OC,
                         size_t c0, size_t c1, int act, model_act kind)
{
    if (c0 >= c1)
        return;
    size_t ldw = C + K, n = c1 - c0;
    if (C > 0)
        gemm(0, 1, B, n, C, 1.0f, inp, C, w + c0 * ldw, ldw, 0.0f, out + c0, OC);
    else
        for (size_t i = 0; i < B; i++)
            memset(out + i * OC + c0, 0, n * sizeof *out);
    int relu = act && kind == MODEL_ACT_RELU;
    for (size_t i = 0; i < B; i++) {
        float *o = out + i * OC;
        if (K > 0) {
            const float *col = w + C + y[i];
            for (size_t j = c0; j < c1; j++)
                o[j] += col[j * ldw];
        }
        if (relu) {
            for (size_t j = c0; j < c1; j++) {
                float v = o[j] + b[j];
                o[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (size_t j = c0; j < c1; j++)
                o[j] += b[j];
        }
    }
    if (!act || relu)
        return;
    if (n == OC)
        act_forward(out, B * OC, kind);
    else
        for (size_t i = 0; i < B; i++)
            act_forward(out + i * OC + c0, n, kind);
}

void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    const uint8_t *y, size_t B, size_t C, size_t K, size_t OC,
                    int act, model_act kind)
{
    linear_forward_cols(out, inp, w, b, y, B, C, K, OC, 0, OC, act, kind);
}

void act_backward_cols(float *dout, const float *y, size_t B, size_t OC,
                       size_t c0, size_t c1, model_act kind)
{
    if (c0 >= c1)
        return;
    if (c1 - c0 == OC)
        act_backward(dout, y, B * OC, kind);
    else
        for (size_t i = 0; i < B; i++)
            act_backward(dout + i * OC + c0, y + i * OC + c0, c1 - c0, kind);
}

void linear_backward_params(float *dw, float *db, const float *dout, const float *inp,
                            const uint8_t *y, size_t B, size_t C, size_t K, size_t OC,
                            size_t c0, size_t c1)
{
    if (c0 >= c1)
        return;
    size_t ldw = C + K, n = c1 - c0;
    if (C > 0) /* dw rows c0..c1 (n,C) = dout[:, c0:c1]^T . inp */
        gemm(1, 0, n, C, B, 1.0f, dout + c0, OC, inp, C, 0.0f, dw + c0 * ldw, ldw);
    if (K > 0) {
        for (size_t j = c0; j < c1; j++)
            memset(dw + j * ldw + C, 0, K * sizeof *dw);
        for (size_t i = 0; i < B; i++) {
            float *col = dw + C + y[i];
            const float *d = dout + i * OC;
            for (size_t j = c0; j < c1; j++)
                col[j * ldw] += d[j];
        }
    }
    memset(db + c0, 0, n * sizeof *db);
    for (size_t i = 0; i < B; i++) {
        const float *d = dout + i * OC;
        for (size_t j = c0; j < c1; j++)
            db[j] += d[j];
    }
}

void linear_backward_input(float *dinp, const float *dout, const float *w, size_t B,
                           size_t C, size_t K, size_t OC, size_t i0, size_t i1)
{
    if (i0 >= i1) /* dinp[:, i0:i1] (B, n) = dout . w[:, i0:i1] */
        return;
    gemm(0, 0, B, i1 - i0, OC, 1.0f, dout, OC, w + i0, C + K, 0.0f, dinp + i0, C);
}

void linear_backward_input_part(float *part, const float *dout, const float *w, size_t B,
                                size_t C, size_t K, size_t OC, size_t u0, size_t u1)
{
    if (u0 >= u1) { /* no units: no contribution */
        memset(part, 0, B * C * sizeof *part);
        return;
    }
    gemm(0, 0, B, C, u1 - u0, 1.0f, dout + u0, OC, w + u0 * (C + K), C + K, 0.0f, part, C);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, const uint8_t *y, size_t B,
                     size_t C, size_t K, size_t OC)
{
    linear_backward_params(dw, db, dout, inp, y, B, C, K, OC, 0, OC);
    if (dinp)
        linear_backward_input(dinp, dout, w, B, C, K, OC, 0, C);
}
