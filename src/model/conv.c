/* conv.c - convolution, transposed convolution, BatchNorm and LeakyReLU
 * for the conv VAE (see src/model/conv.h). */
#include "conv.h"

#include <math.h>
#include <string.h>

#include "gemm.h"

#define KK (CONV_K * CONV_K)

/* ===================================================================== */
/* im2col / col2im                                                        */
/* ===================================================================== */

/* col (C*K*K, N*OH*OW) from x (C, N, H, W): row (c, i, j), column
 * (n, oh, ow) holds x[c][n][oh*S + i - P][ow*S + j - P], 0 outside. */
static void conv_im2col(float *col, const float *x, size_t C, size_t N, size_t H,
                        size_t W, size_t OH, size_t OW)
{
    size_t cols = N * OH * OW;
    for (size_t c = 0; c < C; c++)
        for (size_t i = 0; i < CONV_K; i++)
            for (size_t j = 0; j < CONV_K; j++) {
                float *row = col + ((c * CONV_K + i) * CONV_K + j) * cols;
                for (size_t n = 0; n < N; n++) {
                    const float *img = x + (c * N + n) * H * W;
                    for (size_t oh = 0; oh < OH; oh++) {
                        float *out = row + (n * OH + oh) * OW;
                        /* ih, iw = o*S + i - P, as signed to test the border */
                        long ih = (long)(oh * CONV_STRIDE + i) - CONV_PAD;
                        if (ih < 0 || ih >= (long)H) {
                            memset(out, 0, OW * sizeof *out);
                            continue;
                        }
                        const float *in = img + (size_t)ih * W;
                        for (size_t ow = 0; ow < OW; ow++) {
                            long iw = (long)(ow * CONV_STRIDE + j) - CONV_PAD;
                            out[ow] = iw >= 0 && iw < (long)W ? in[iw] : 0.0f;
                        }
                    }
                }
            }
}

/* The adjoint of im2col: x (C, N, H, W) = the sum of every column entry
 * into the pixel it was read from (x is overwritten). */
static void conv_col2im(float *x, const float *col, size_t C, size_t N, size_t H,
                        size_t W, size_t OH, size_t OW)
{
    size_t cols = N * OH * OW;
    memset(x, 0, C * N * H * W * sizeof *x);
    for (size_t c = 0; c < C; c++)
        for (size_t i = 0; i < CONV_K; i++)
            for (size_t j = 0; j < CONV_K; j++) {
                const float *row = col + ((c * CONV_K + i) * CONV_K + j) * cols;
                for (size_t n = 0; n < N; n++) {
                    float *img = x + (c * N + n) * H * W;
                    for (size_t oh = 0; oh < OH; oh++) {
                        long ih = (long)(oh * CONV_STRIDE + i) - CONV_PAD;
                        if (ih < 0 || ih >= (long)H)
                            continue;
                        const float *in = row + (n * OH + oh) * OW;
                        float *out = img + (size_t)ih * W;
                        for (size_t ow = 0; ow < OW; ow++) {
                            long iw = (long)(ow * CONV_STRIDE + j) - CONV_PAD;
                            if (iw >= 0 && iw < (long)W)
                                out[iw] += in[ow];
                        }
                    }
                }
            }
}

/* y (C, cols) += b[c] per row. */
static void add_bias_rows(float *y, const float *b, size_t C, size_t cols)
{
    for (size_t c = 0; c < C; c++) {
        float *r = y + c * cols;
        for (size_t i = 0; i < cols; i++)
            r[i] += b[c];
    }
}

/* db[c] = the sum of row c of dy (C, cols). */
static void row_sums(float *db, const float *dy, size_t C, size_t cols)
{
    for (size_t c = 0; c < C; c++) {
        const float *r = dy + c * cols;
        float s = 0.0f;
        for (size_t i = 0; i < cols; i++)
            s += r[i];
        db[c] = s;
    }
}

/* ===================================================================== */
/* Convolution and transposed convolution                                 */
/* ===================================================================== */

void conv_forward(float *y, float *col, const float *x, const float *w,
                  const float *b, size_t N, size_t CI, size_t CO, size_t H, size_t W)
{
    size_t oh = H / 2, ow = W / 2, cols = N * oh * ow;
    conv_im2col(col, x, CI, N, H, W, oh, ow);
    /* (CO, CI*KK) . (CI*KK, cols): neither operand transposed */
    gemm(0, 0, CO, cols, CI * KK, 1.0f, w, CI * KK, col, cols, 0.0f, y, cols);
    add_bias_rows(y, b, CO, cols);
}

void conv_backward(float *dx, float *dw, float *db, float *col, const float *dy,
                   const float *x, const float *w, size_t N, size_t CI, size_t CO,
                   size_t H, size_t W)
{
    size_t oh = H / 2, ow = W / 2, cols = N * oh * ow;
    conv_im2col(col, x, CI, N, H, W, oh, ow);
    /* dw (CO, CI*KK) = dy (CO, cols) . col^T: the second operand transposed */
    gemm(0, 1, CO, CI * KK, cols, 1.0f, dy, cols, col, cols, 0.0f, dw, CI * KK);
    row_sums(db, dy, CO, cols);
    if (!dx)
        return;
    /* dcol (CI*KK, cols) = w^T . dy, into col (its x is no longer needed) */
    gemm(1, 0, CI * KK, cols, CO, 1.0f, w, CI * KK, dy, cols, 0.0f, col, cols);
    conv_col2im(dx, col, CI, N, H, W, oh, ow);
}

void convt_forward(float *y, float *col, const float *x, const float *w,
                   const float *b, size_t N, size_t CI, size_t CO, size_t H, size_t W)
{
    size_t oh = 2 * H, ow = 2 * W, cols = N * H * W;
    /* col (CO*KK, cols) = w^T . x, w stored (CI, CO*KK): first operand transposed */
    gemm(1, 0, CO * KK, cols, CI, 1.0f, w, CO * KK, x, cols, 0.0f, col, cols);
    conv_col2im(y, col, CO, N, oh, ow, H, W);
    add_bias_rows(y, b, CO, N * oh * ow);
}

void convt_backward(float *dx, float *dw, float *db, float *col, const float *dy,
                    const float *x, const float *w, size_t N, size_t CI, size_t CO,
                    size_t H, size_t W)
{
    size_t oh = 2 * H, ow = 2 * W, cols = N * H * W;
    conv_im2col(col, dy, CO, N, oh, ow, H, W);
    /* dw (CI, CO*KK) = x (CI, cols) . dcol^T */
    gemm(0, 1, CI, CO * KK, cols, 1.0f, x, cols, col, cols, 0.0f, dw, CO * KK);
    row_sums(db, dy, CO, N * oh * ow);
    if (dx) /* dx (CI, cols) = w (CI, CO*KK) . dcol */
        gemm(0, 0, CI, cols, CO * KK, 1.0f, w, CO * KK, col, cols, 0.0f, dx, cols);
}

/* ===================================================================== */
/* BatchNorm                                                              */
/* ===================================================================== */

/* Sums v[0..n) over the team (no-op for one thread). */
static void reduce(const model_reduce *red, double *v, size_t n)
{
    if (red && red->sum)
        red->sum(red->ctx, red->k, v, n);
}

void bn_forward_train(float *y, float *xhat, float *invstd, const float *x,
                      const float *gamma, const float *beta, float *run_mean,
                      float *run_var, size_t C, size_t N, size_t HW,
                      const model_reduce *red, double *scratch)
{
    size_t cols = N * HW;
    /* Sums in double: sum x, sum x^2 per channel, and the pixel count. */
    for (size_t c = 0; c < C; c++) {
        const float *r = x + c * cols;
        double s = 0.0, ss = 0.0;
        for (size_t i = 0; i < cols; i++) {
            s += r[i];
            ss += (double)r[i] * r[i];
        }
        scratch[c] = s;
        scratch[C + c] = ss;
    }
    scratch[2 * C] = (double)cols;
    reduce(red, scratch, 2 * C + 1);
    double M = scratch[2 * C];
    for (size_t c = 0; c < C; c++) {
        double mean = M > 0 ? scratch[c] / M : 0.0;
        double var = M > 0 ? scratch[C + c] / M - mean * mean : 0.0;
        if (var < 0.0)
            var = 0.0;
        invstd[c] = (float)(1.0 / sqrt(var + BN_EPS));
        float m = (float)mean, is = invstd[c], g = gamma[c], bt = beta[c];
        const float *r = x + c * cols;
        float *xh = xhat + c * cols, *o = y + c * cols;
        for (size_t i = 0; i < cols; i++) {
            xh[i] = (r[i] - m) * is;
            o[i] = g * xh[i] + bt;
        }
        if ((!red || red->k == 0) && M > 1) {
            run_mean[c] = (float)((1.0 - BN_MOMENTUM) * run_mean[c] + BN_MOMENTUM * mean);
            run_var[c] = (float)((1.0 - BN_MOMENTUM) * run_var[c] +
                                 BN_MOMENTUM * var * M / (M - 1.0));
        }
    }
}

void bn_forward_eval(float *y, const float *x, const float *gamma,
                     const float *beta, const float *run_mean,
                     const float *run_var, size_t C, size_t NHW)
{
    for (size_t c = 0; c < C; c++) {
        float is = (float)(1.0 / sqrt((double)run_var[c] + BN_EPS));
        float scale = gamma[c] * is, shift = beta[c] - run_mean[c] * scale;
        const float *r = x + c * NHW;
        float *o = y + c * NHW;
        for (size_t i = 0; i < NHW; i++)
            o[i] = r[i] * scale + shift;
    }
}

void bn_backward(float *dy, float *dgamma, float *dbeta, const float *xhat,
                 const float *invstd, const float *gamma, size_t C, size_t N,
                 size_t HW, const model_reduce *red, double *scratch)
{
    size_t cols = N * HW;
    for (size_t c = 0; c < C; c++) {
        const float *d = dy + c * cols, *xh = xhat + c * cols;
        double sd = 0.0, sdx = 0.0;
        for (size_t i = 0; i < cols; i++) {
            sd += d[i];
            sdx += (double)d[i] * xh[i];
        }
        dbeta[c] = (float)sd;
        dgamma[c] = (float)sdx;
        /* g = gamma dy: its sums are gamma times these */
        scratch[c] = sd * gamma[c];
        scratch[C + c] = sdx * gamma[c];
    }
    scratch[2 * C] = (double)cols;
    reduce(red, scratch, 2 * C + 1);
    double M = scratch[2 * C];
    for (size_t c = 0; c < C; c++) {
        float mg = M > 0 ? (float)(scratch[c] / M) : 0.0f;
        float mgx = M > 0 ? (float)(scratch[C + c] / M) : 0.0f;
        float g = gamma[c], is = invstd[c];
        float *d = dy + c * cols;
        const float *xh = xhat + c * cols;
        for (size_t i = 0; i < cols; i++)
            d[i] = is * (g * d[i] - mg - xh[i] * mgx);
    }
}
