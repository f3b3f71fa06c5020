/* objective.h - what training minimises per image, from what the networks
 * give (the heads [mu | logvar], the prior head of a conditional model, and
 * -log p(x|z) of each draw from the likelihood): the negative ELBO with its
 * reconstruction averaged over the k draws and the KL in closed form, or the
 * importance-weighted bound of Burda et al.; and the gradients they seed.
 * The networks (vae.c, cnn.c) call these; these call no network. */
#ifndef VAE_OBJECTIVE_H
#define VAE_OBJECTIVE_H

#include <stddef.h>

#include "vae.h"

/* For B images of a->k draws each, once a->rrec holds -log p(x|z) of every
 * draw and a->dlogits its gradient: fills a->rec (the mean over draws),
 * a->kl, a->obj and a->wt, weights each draw's dlogits row, and writes the
 * heads' gradient into a->dhead (and dprior, the prior head's, when prior
 * is non-NULL: rows [mp | lp] of p(z|y), B x 2z). Returns the batch's sum
 * of rec + kl (the negative ELBO). */
double objective_loss(const vae_config *cfg, vae_acts *a, size_t B,
                      const vae_loss_spec *loss, const float *prior, float *dprior);

/* The reparameterization's backward over the k draws, once the decoder's
 * backward has written a->dz: adds each draw's share into a->dhead, with
 * the IWAE's -log p(z) term (prior: the prior head rows, or NULL). */
void objective_reparam_backward(const vae_config *cfg, vae_acts *a, size_t B,
                                const vae_loss_spec *loss, const float *prior);

#endif
