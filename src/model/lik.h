/* lik.h - the likelihoods p(x | z): Bernoulli (cross-entropy), continuous
 * Bernoulli and Gaussian of variance 1/2, per pixel from the decoder's
 * logits, with their gradients and means. The networks (MLP, conv) only
 * produce logits; this is where they become a loss. */
#ifndef MODEL_LIK_H
#define MODEL_LIK_H

#include <stddef.h>

#include "model.h"

/* What a row pass writes beside the loss sum. */
typedef enum lik_out {
    LIK_SUM,  /* nothing */
    LIK_GRAD, /* d(-log p)/d logit per pixel */
    LIK_MEAN  /* the likelihood's mean per pixel (what pictures show) */
} lik_out;

/* One row of n pixels with logits a against targets t in [0,1]: returns
 * -log p(t | a) summed over the row, in nats (the Gaussian's constant
 * included), and writes what `what` says into out (n floats). t may be NULL
 * for LIK_MEAN; out may be NULL for LIK_SUM. */
float lik_row(model_lik lik, lik_out what, float *out, const float *a, const float *t,
              size_t n);

#endif
