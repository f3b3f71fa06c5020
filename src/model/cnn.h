/* cnn.h - the convolutional VAE's encoder and decoder (internal to src/;
 * vae.c dispatches to these when cfg.arch is MODEL_ARCH_CONV, and keeps
 * everything the two architectures share: likelihoods, KL,
 * reparameterization). The architecture is described in src/model/vae.h. */
#ifndef VAE_CNN_H
#define VAE_CNN_H

#include <stddef.h>

#include "err.h"
#include "rng.h"
#include "model.h"

#define CNN_MAX_CHANNELS 4096

/* Checks the conv-specific parts of cfg, whose image shape is filled in
 * (model_config_shape: model_config_check passes it so). Returns 0, or -1
 * with err. */
int cnn_config_check(const model_config *cfg, err_msg *err);

/* Lays out the blocks and the two linear layers of m->cfg into m. */
void cnn_layout(model_net *m);

/* PyTorch's initialisation: Conv2d, ConvTranspose2d and Linear weights and
 * biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in = cout*16 for a
 * transposed convolution, as PyTorch counts it); BatchNorm gamma 1, beta 0,
 * running mean 0, running variance 1. */
void cnn_init_params(model_net *m, rng_state *rng);

/* Glorot uniform weights, zero biases but the last block's (out_bias),
 * BatchNorm as cnn_init_params. */
void cnn_init_glorot(model_net *m, rng_state *rng, float out_bias);

/* Allocates a's buffers for batches of up to cap images of k draws each
 * (shape: the model's layout, no parameters needed): the encoder's for cap
 * rows, the decoder's, eps, z, dz, rrec, wt and ydec for cap * k (rrec is
 * rec and ydec is y when k is 1). Sets a->cap and a->k, not the objective.
 * Returns 0, or -1 with err (a batch whose cap * k rows do not fit). */
int cnn_acts_init(model_acts *a, const model_net *shape, size_t cap, size_t k,
                  err_msg *err);

/* a->xin (B x H*W*C) -> a->head (B x 2z). Training mode (a->training)
 * uses the batch's statistics, shared through a->reduce, and moves the
 * running averages (thread 0 of the team). */
void cnn_encode(const model_net *m, model_acts *a, size_t B);

/* a->z (B * a->k x z) -> a->logits (B * a->k x H*W*C), row i*k+j image
 * i's j-th draw. Training mode: BatchNorm's statistics over all B * k rows. */
void cnn_decode(const model_net *m, model_acts *a, size_t B);

/* From a->dlogits (B * a->k rows), the decoder's gradients into grads and
 * d loss / dz into a->dz (B * a->k rows). */
void cnn_backward_decoder(const model_net *m, model_acts *a, float *grads, size_t B);

/* From a->dhead, the encoder's gradients into grads. */
void cnn_backward_encoder(const model_net *m, model_acts *a, float *grads, size_t B);

#endif
