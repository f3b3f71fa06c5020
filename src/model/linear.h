/* linear.h - fully connected layers and their activations, shared by the
 * MLP (vae.c) and the conv VAE's linear heads (cnn.c). Internal to src/. */
#ifndef VAE_LINEAR_H
#define VAE_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "nn_types.h"

/* out (B,OC) = inp (B,C) . w[:, :C]^T + w[:, C + y_i] + b, then the
 * activation if act. w is (OC, C+K) as PyTorch stores it (K one-hot label
 * inputs after the C dense ones; K = 0 without labels). */
void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    const uint8_t *y, size_t B, size_t C, size_t K, size_t OC,
                    int act, model_act kind);

/* Columns [c0, c1) of linear_forward's out (rows OC apart): one thread's
 * part of a layer whose output units a team splits. */
void linear_forward_cols(float *out, const float *inp, const float *w, const float *b,
                         const uint8_t *y, size_t B, size_t C, size_t K, size_t OC,
                         size_t c0, size_t c1, int act, model_act kind);

/* Given dout (B,OC) = d loss / d (pre-activation output):
 *   dw[:, :C] = dout^T . inp,  dw[:, C+c] = sum of the rows with y_i = c,
 *   db = column sums of dout,  dinp (B,C) = dout . w[:, :C] (unless NULL).
 * Writes, does not accumulate. */
void linear_backward(float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, const uint8_t *y, size_t B,
                     size_t C, size_t K, size_t OC);

/* linear_backward's parameter gradients of output units [c0, c1) only:
 * rows c0..c1 of dw and db[c0..c1). */
void linear_backward_params(float *dw, float *db, const float *dout, const float *inp,
                            const uint8_t *y, size_t B, size_t C, size_t K, size_t OC,
                            size_t c0, size_t c1);

/* linear_backward's dinp, columns [i0, i1) only (i1 <= C). */
void linear_backward_input(float *dinp, const float *dout, const float *w, size_t B,
                           size_t C, size_t K, size_t OC, size_t i0, size_t i1);

/* The part of linear_backward's dinp (B, C) that output units [u0, u1)
 * contribute: part = dout[:, u0:u1] . w[u0:u1, :C], rows C apart. */
void linear_backward_input_part(float *part, const float *dout, const float *w, size_t B,
                                size_t C, size_t K, size_t OC, size_t u0, size_t u1);

/* The activation in place over n values, and its backward: dout *= act'(y)
 * from the activation's output y. */
void act_forward(float *x, size_t n, model_act kind);
void act_backward(float *dout, const float *y, size_t n, model_act kind);

/* act_backward over columns [c0, c1) of B rows OC apart. */
void act_backward_cols(float *dout, const float *y, size_t B, size_t OC,
                       size_t c0, size_t c1, model_act kind);

#endif
