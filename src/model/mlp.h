/* mlp.h - the MLP VAE's encoder, decoder and prior network (internal to
 * src/; vae.c dispatches to it, as to cnn.h for the conv VAE). Layer
 * numbering and layout are in src/model/vae.h.
 *
 * Every pass takes the team that computes the batch: {0, 1, NULL} for one
 * thread; with more, each thread computes its share of every layer's
 * output units (columns), and the passes wait at the team's barrier where
 * a layer needs all of the previous one. Shares are multiples of 16
 * floats, so no two threads write one cache line. */
#ifndef VAE_MLP_H
#define VAE_MLP_H

#include <stddef.h>

#include "err.h"
#include "rng.h"
#include "model.h"

/* Two stochastic layers (model_config.z2_dim), each on B * k rows: q(h2|h1)
 * from a->z to its head [mu2 | logvar2]; p(h1|h2) from a->z2 to its head
 * [mu | logvar] of h1. */
void mlp_encode_top(const model_net *m, model_acts *a, size_t B, const model_team *t);
void mlp_decode_top(const model_net *m, model_acts *a, size_t B, const model_team *t);

/* Their backward passes, from the gradients at their heads: p(h1|h2)'s
 * input gradient into a->dz2, q(h2|h1)'s into a->dz1q (overwriting). */
void mlp_backward_decode_top(const model_net *m, model_acts *a, float *grads, size_t B,
                             const model_team *t);
void mlp_backward_encode_top(const model_net *m, model_acts *a, float *grads, size_t B,
                             const model_team *t);

/* q(h2|h1)'s input gradient alone (no parameter gradients), from the
 * gradient at its head in a->dh, into a->dz1s (overwriting); the layers'
 * dh are overwritten on the way. */
void mlp_backward_encode_top_input(const model_net *m, model_acts *a, size_t B);

/* The heads of q(h2|h1) and p(h1|h2) (B * k x 2 z2 and 2 z), or with grad
 * their gradients; NULL for a model of one stochastic layer. */
float *mlp_top_head(const model_net *m, const model_acts *a, int grad);
float *mlp_top_prior(const model_net *m, const model_acts *a, int grad);

/* The parameters of layer l's output units share k of T, the units a
 * team's thread k computes: weight rows [r[0], r[1]) and biases
 * [r[2], r[3]), as offsets into the parameter buffer. */
void mlp_share_params(const model_net *m, size_t l, size_t k, size_t T, size_t r[4]);

/* model_team_part_n for the MLP. */
size_t mlp_part_n(const model_net *m, size_t cap, size_t k);

/* Lays out the layers of m->cfg into m and counts the parameters. */
void mlp_layout(model_net *m);

/* PyTorch's nn.Linear initialisation, layer by layer. */
void mlp_init_params(model_net *m, rng_state *rng);

/* Glorot uniform weights; biases 0 but the output layer's, the clipped
 * logit of each pixel's training mean (pixel_mean, x_dim values). */
void mlp_init_glorot(model_net *m, rng_state *rng, const double *pixel_mean);

/* Allocates a's buffers for cap images with k draws each (shape: the
 * layout of the model). Returns 0, or -1 with err. */
int mlp_acts_init(model_acts *a, const model_net *shape, size_t cap, size_t k, err_msg *err);

/* The prior head rows [mu | logvar] of p(z | y), or NULL (unconditional). */
float *mlp_prior_head(const model_net *m, const model_acts *a);

/* The gradient at the prior head (NULL: unconditional). */
float *mlp_prior_grad(const model_net *m, const model_acts *a);

/* a->xin and a->y -> a->head; then the prior network if conditional. */
void mlp_encode(const model_net *m, model_acts *a, size_t B, const model_team *t);

/* The prior network alone (no-op if unconditional). */
void mlp_prior(const model_net *m, model_acts *a, size_t B, const model_team *t);

/* a->z and a->ydec (B * a->k rows) -> a->logits. */
void mlp_decode(const model_net *m, model_acts *a, size_t B, const model_team *t);

/* From a->dlogits, the decoder's gradients into grads and d loss / dz
 * into a->dz (complete for every thread on return). */
void mlp_backward_decoder(const model_net *m, model_acts *a, float *grads, size_t B,
                          const model_team *t);

/* From a->dhead (and the prior head's gradient), the encoder's and the
 * prior network's gradients into grads. */
void mlp_backward_encoder(const model_net *m, model_acts *a, float *grads, size_t B,
                          const model_team *t);

#endif
