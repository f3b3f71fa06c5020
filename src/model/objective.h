/* objective.h - what training minimises per image, from what the networks
 * give (the heads [mu | logvar], the prior head of a conditional model, and
 * -log p(x|z) of each draw from the likelihood): the negative ELBO with its
 * reconstruction averaged over the k draws and the KL in closed form, or the
 * importance-weighted bound of Burda et al.; and the gradients they seed.
 * The networks (vae.c, cnn.c) call these; these call no network. */
#ifndef VAE_OBJECTIVE_H
#define VAE_OBJECTIVE_H

#include <stddef.h>

#include "model.h"

/* For B images of a->k draws each, once a->rrec holds -log p(x|z) of every
 * draw and a->dlogits its gradient: fills a->rec (the mean over draws),
 * a->kl, a->obj and a->wt, weights each draw's dlogits row, and writes the
 * heads' gradient into a->dhead (and dprior, the prior head's, when prior
 * is non-NULL: rows [mp | lp] of p(z|y), B x 2z). Returns the batch's sum
 * of rec + kl (the negative ELBO). */
double objective_loss(const model_config *cfg, model_acts *a, size_t B,
                      const model_loss_spec *loss, const float *prior, float *dprior);

/* The reparameterization's backward over the k draws, once the decoder's
 * backward has written a->dz: adds each draw's share into a->dhead, with
 * the IWAE's -log p(z) term (prior: the prior head rows, or NULL). */
void objective_reparam_backward(const model_config *cfg, model_acts *a, size_t B,
                                const model_loss_spec *loss, const float *prior);

/* Two stochastic layers (cfg->z2_dim > 0), every density sampled (the
 * paper's; no KL in closed form): once a->rrec and a->dlogits hold each
 * draw's -log p(x|h1), fills a->rec, a->kl (the sampled log q - log p of
 * both layers, averaged over the draws), a->obj and a->wt (the IW bound's
 * normalised weights, or 1/K for the ELBO, whose KL terms are weighted by
 * beta), weights dlogits, and writes the direct gradients (eps held) at the
 * heads: a->dhead (q(h1|x), B rows), dhead2 (q(h2|h1), B * k rows) and
 * dphead (p(h1|h2), B * k rows). Returns the batch's sum of rec + kl. */
double objective2_loss(const model_config *cfg, model_acts *a, size_t B,
                       const model_loss_spec *loss, const float *head2, float *dhead2,
                       const float *phead, float *dphead);

/* Once p(h1|h2)'s backward has written a->dz2: adds -log p(h2)'s term (and
 * the estimator's, see objective.c) and h2's reparameterization into
 * dhead2. */
void objective2_backward_top(const model_config *cfg, model_acts *a, size_t B,
                             const model_loss_spec *loss, const float *head2, float *dhead2);

/* STL and DReG: the score of log q(h2|h1) in q(h2|h1)'s head (mu2 and
 * logvar2 at the draw of h2, weighted as the estimator weighs the encoder)
 * into dhead2 (overwriting), for q(h2|h1)'s input-only backward into
 * a->dz1s. */
void objective2_score_top(const model_config *cfg, model_acts *a, size_t B,
                          const model_loss_spec *loss, const float *head2, float *dhead2);

/* Once the decoder's backward has written a->dz and q(h2|h1)'s a->dz1q:
 * adds dz1q and -log p(h1|h2)'s term into dz, and h1's reparameterization
 * into a->dhead. */
void objective2_backward_bottom(const model_config *cfg, model_acts *a, size_t B,
                                const model_loss_spec *loss, const float *phead);

#endif
