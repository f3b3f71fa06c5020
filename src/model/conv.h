/* conv.h - the convolutional VAE's layer kernels (internal to src/):
 * convolution and transposed convolution as im2col / col2im around one
 * sgemm over the whole batch, BatchNorm with batch statistics shared
 * across the thread team, and LeakyReLU.
 *
 * Tensors are "CNHW": C channels, each holding N images of H x W, so a
 * layer's output for the whole batch is one (C, N*H*W) matrix and the
 * next im2col reads it directly. All kernels accept N = 0 (a thread with
 * no images still takes part in the team's reductions). */
#ifndef VAE_CONV_H
#define VAE_CONV_H

#include <stddef.h>

#include "nn_types.h" /* model_reduce: sums across the team */

#define CONV_K 4      /* kernel side */
#define CONV_STRIDE 2
#define CONV_PAD 1    /* a 4x4 kernel, stride 2, pad 1 halves (doubles) the side */
#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

/* Convolution, CI -> CO channels, H x W -> H/2 x W/2 (H, W even):
 *   y (CO, N*OH*OW) = w (CO, CI*K*K) . im2col(x) + b
 * w is PyTorch's Conv2d weight (CO, CI, K, K). col is scratch of
 * CI*K*K x N*OH*OW floats. */
void conv_forward(float *y, float *col, const float *x, const float *w,
                  const float *b, size_t N, size_t CI, size_t CO, size_t H, size_t W);

/* Its backward from dy (CO, N*OH*OW): dw = dy . col^T, db = row sums of
 * dy, and (unless dx is NULL) dx = col2im(w^T . dy). Writes, does not
 * accumulate. col is scratch (x's im2col is recomputed into it). */
void conv_backward(float *dx, float *dw, float *db, float *col, const float *dy,
                   const float *x, const float *w, size_t N, size_t CI, size_t CO,
                   size_t H, size_t W);

/* Transposed convolution, CI -> CO channels, H x W -> 2H x 2W (the
 * adjoint of conv_forward's linear part, plus a bias):
 *   y (CO, N, 2H, 2W) = col2im(w^T . x) + b
 * w is PyTorch's ConvTranspose2d weight (CI, CO, K, K), x (CI, N*H*W). */
void convt_forward(float *y, float *col, const float *x, const float *w,
                   const float *b, size_t N, size_t CI, size_t CO, size_t H, size_t W);

/* Its backward from dy (CO, N, 2H, 2W): dcol = im2col(dy),
 * dw = x . dcol^T, db = sums of dy, dx = w . dcol (unless dx is NULL). */
void convt_backward(float *dx, float *dw, float *db, float *col, const float *dy,
                    const float *x, const float *w, size_t N, size_t CI, size_t CO,
                    size_t H, size_t W);

/* BatchNorm over (N, H, W) per channel of x (C, N*HW), training mode:
 * mean and biased variance of the whole batch (reduced across the team),
 * xhat = (x - mean) / sqrt(var + eps), y = gamma xhat + beta. Saves xhat
 * and 1/sqrt(var + eps) (invstd, C) for the backward; when k == 0 of the
 * team, moves the running averages (momentum 0.1, unbiased variance). */
void bn_forward_train(float *y, float *xhat, float *invstd, const float *x,
                      const float *gamma, const float *beta, float *run_mean,
                      float *run_var, size_t C, size_t N, size_t HW,
                      const model_reduce *red, double *scratch);

/* BatchNorm with the running averages (evaluation and sampling). */
void bn_forward_eval(float *y, const float *x, const float *gamma,
                     const float *beta, const float *run_mean,
                     const float *run_var, size_t C, size_t NHW);

/* Its backward, in place: dy (C, N*HW) becomes dx; dgamma, dbeta get this
 * thread's sums (written). The sums over the whole batch the formula needs
 * are reduced across the team:
 *   dx = invstd (g - mean(g) - xhat mean(g xhat)),  g = gamma dy. */
void bn_backward(float *dy, float *dgamma, float *dbeta, const float *xhat,
                 const float *invstd, const float *gamma, size_t C, size_t N,
                 size_t HW, const model_reduce *red, double *scratch);

#endif
