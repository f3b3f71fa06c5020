/* objective.c - what training minimises, from the network's outputs (see
 * src/model/objective.h): the closed-form KL terms, the K-sample ELBO and the
 * importance-weighted bound (Burda et al.), and the gradients they seed. */
#include "objective.h"

#include <math.h>

/* KL(q || N(0, I)) per image from head rows [mu | lv] (B, 2Z):
 *   kl = -1/2 sum(1 + lv - mu^2 - exp(lv))
 *   dkl/dmu = mu,  dkl/dlv = (exp(lv) - 1) / 2
 * beta times the gradients go into dhead (B, 2Z) (overwriting). */
static void kl_normal(float *kl, float *dhead, const float *head, size_t B,
                      size_t Z, float beta)
{
    for (size_t i = 0; i < B; i++) {
        const float *mu = head + i * 2 * Z, *lv = mu + Z;
        float *dmu = dhead + i * 2 * Z, *dlv = dmu + Z;
        float sum = 0.0f;
        for (size_t j = 0; j < Z; j++) {
            float ev = expf(lv[j]);
            sum += 1.0f + lv[j] - mu[j] * mu[j] - ev;
            dmu[j] = beta * mu[j];
            dlv[j] = beta * 0.5f * (ev - 1.0f);
        }
        kl[i] = -0.5f * sum;
    }
}

/* KL(q || p) per image between diagonal Gaussians, q from head rows
 * [mu | lv], p from prior rows [mp | lp] (both (B, 2Z)):
 *   kl = 1/2 sum(lp - lv + (exp(lv) + (mu - mp)^2) / exp(lp) - 1)
 *   dkl/dmu = (mu - mp) / exp(lp) = -dkl/dmp
 *   dkl/dlv = (exp(lv) / exp(lp) - 1) / 2
 *   dkl/dlp = (1 - (exp(lv) + (mu - mp)^2) / exp(lp)) / 2
 * beta times the gradients go into dhead and dprior (overwriting). */
static void kl_prior(float *kl, float *dhead, float *dprior, const float *head,
                     const float *prior, size_t B, size_t Z, float beta)
{
    for (size_t i = 0; i < B; i++) {
        const float *mu = head + i * 2 * Z, *lv = mu + Z;
        const float *mp = prior + i * 2 * Z, *lp = mp + Z;
        float *dmu = dhead + i * 2 * Z, *dlv = dmu + Z;
        float *dmp = dprior + i * 2 * Z, *dlp = dmp + Z;
        float sum = 0.0f;
        for (size_t j = 0; j < Z; j++) {
            float ev = expf(lv[j]), inv_p = expf(-lp[j]), d = mu[j] - mp[j];
            float ratio = (ev + d * d) * inv_p;
            sum += lp[j] - lv[j] + ratio - 1.0f;
            dmu[j] = beta * d * inv_p;
            dmp[j] = -dmu[j];
            dlv[j] = beta * 0.5f * (ev * inv_p - 1.0f);
            dlp[j] = beta * 0.5f * (1.0f - ratio);
        }
        kl[i] = 0.5f * sum;
    }
}

/* The importance-weighted bound for image i's K draws (rows i*K ..
 * i*K+K-1) once rrec holds -log p(x|z_j); prior and dprior are the image's
 * prior head row [mp | lp] and its gradient (NULL: N(0, I)). The log weights
 *   log w_j = -rec_j + log p(z_j) - log q(z_j|x)
 *           = -rec_j + sum_d (-z^2/2 + eps^2/2 + lv/2)          (prior N(0, I))
 *           = -rec_j + sum_d (-(z-mp)^2/(2 e^lp) - lp/2 + eps^2/2 + lv/2)
 * (the 2 pi terms cancel), the objective -log(1/K sum_j w_j), and its
 * gradient (Burda et al.): -sum_j wt_j d log w_j with the normalised
 * weights wt_j held fixed. Here: wt, the direct -1/2 on each lv (the score
 * term of log q, which STL and DReG drop), and the prior head's gradient;
 * reparam_backward adds the z terms. */
static float iwae_image(model_acts *a, size_t i, size_t K, size_t Z, const float *prior,
                        float *dprior, model_estimator est)
{
    const float *mu = a->head + i * 2 * Z, *lv = mu + Z;
    double lw[MODEL_MAX_DRAWS], top = -INFINITY;
    for (size_t j = 0; j < K; j++) {
        size_t r = i * K + j;
        const float *z = a->z + r * Z, *eps = a->eps + r * Z;
        double t = -(double)a->rrec[r];
        for (size_t d = 0; d < Z; d++) {
            double dz = prior ? (double)z[d] - prior[d] : (double)z[d];
            double inv = prior ? exp(-(double)prior[Z + d]) : 1.0;
            t += -0.5 * dz * dz * inv - (prior ? 0.5 * prior[Z + d] : 0.0) +
                 0.5 * (double)eps[d] * eps[d] + 0.5 * (double)lv[d];
        }
        lw[j] = t;
        top = t > top ? t : top;
    }
    double sum = 0.0;
    for (size_t j = 0; j < K; j++)
        sum += exp(lw[j] - top);
    for (size_t j = 0; j < K; j++)
        a->wt[i * K + j] = (float)(exp(lw[j] - top) / sum);
    /* d/dlv directly: -sum_j wt_j / 2 = -1/2; mu only through z. */
    float *dmu = a->dhead + i * 2 * Z, *dlv = dmu + Z;
    float direct = est == MODEL_EST_STANDARD ? -0.5f : 0.0f;
    for (size_t d = 0; d < Z; d++)
        dmu[d] = 0.0f, dlv[d] = direct;
    if (prior) { /* -log p(z|y) against mp and lp, weighted */
        float *dmp = dprior, *dlp = dmp + Z;
        for (size_t d = 0; d < Z; d++) {
            float inv = expf(-prior[Z + d]), gm = 0.0f, gl = 0.0f;
            for (size_t j = 0; j < K; j++) {
                size_t r = i * K + j;
                float dz = a->z[r * Z + d] - prior[d], w = a->wt[r];
                gm -= w * dz * inv;
                gl += w * (0.5f - 0.5f * dz * dz * inv);
            }
            dmp[d] = gm, dlp[d] = gl;
        }
    }
    return (float)(-(top + log(sum) - log((double)K)));
}

double objective_loss(const model_config *cfg, model_acts *a, size_t B,
                      const model_loss_spec *loss, const float *prior, float *dprior)
{
    size_t D = cfg->x_dim, Z = cfg->z_dim, K = a->k;
    int iwae = loss->objective == MODEL_OBJ_IWAE;
    double beta = loss->beta;
    /* The closed-form KL: the ELBO's, and what is reported for the IWAE
     * (whose gradient it does not enter). */
    float kl_beta = iwae ? 0.0f : (float)beta;
    if (prior)
        kl_prior(a->kl, a->dhead, dprior, a->head, prior, B, Z, kl_beta);
    else
        kl_normal(a->kl, a->dhead, a->head, B, Z, kl_beta);
    double sum = 0.0;
    for (size_t i = 0; i < B; i++) {
        if (K > 1) { /* rec: the mean over the draws */
            double rs = 0.0;
            for (size_t j = 0; j < K; j++)
                rs += a->rrec[i * K + j];
            a->rec[i] = (float)(rs / (double)K);
        }
        if (iwae) {
            a->obj[i] = iwae_image(a, i, K, Z, prior ? prior + i * 2 * Z : NULL,
                                  prior ? dprior + i * 2 * Z : NULL, loss->estimator);
        } else {
            a->obj[i] = a->rec[i] + (float)beta * a->kl[i];
            for (size_t j = 0; K > 1 && j < K; j++)
                a->wt[i * K + j] = 1.0f / (float)K;
        }
        sum += (double)a->rec[i] + (double)a->kl[i];
    }
    /* Each draw's reconstruction gradient counts with its weight. */
    if (K > 1 || iwae)
        for (size_t r = 0; r < B * K; r++) {
            float w = a->wt[r], *g = a->dlogits + r * D;
            for (size_t p = 0; p < D; p++)
                g[p] *= w;
        }
    return sum;
}

/* Reparameterization z_r = mu + eps_r * exp(lv/2) over each image's k draws:
 * the gradient already in dhead gets each draw's dz added on mu and
 * dz * eps * exp(lv/2) / 2 on lv. For the IWAE, dz also holds the draw's
 * weighted -log p(z) term: wt (z - mp) / exp(lp) (mp = 0, lp = 0 for N(0, I)).
 * The estimators differ only here (and in iwae_image's direct term):
 *   standard  dz = wt g_rec + wt (z - mp) / e^lp       (+ lv's direct -1/2)
 *   stl       dz = wt g_rec + wt ((z - mp) / e^lp - eps e^(-lv/2))
 *   dreg      dz = wt (wt g_rec) + wt^2 ((z - mp) / e^lp - eps e^(-lv/2))
 * where wt g_rec is what the decoder's backward left in dz (its rows were
 * weighted by wt), and -eps e^(-lv/2) = d log q(z)/dz with q's parameters
 * held: STL keeps log q's path term and drops its score term; DReG takes
 * the path gradient of log w with the squared normalised weights (Tucker et
 * al., eq. 5). The decoder's and the prior's gradients never see this. */
void objective_reparam_backward(const model_config *cfg, model_acts *a, size_t B,
                                const model_loss_spec *loss, const float *prior_rows)
{
    size_t Z = cfg->z_dim, K = a->k;
    int iwae = loss->objective == MODEL_OBJ_IWAE;
    for (size_t r = 0; r < B * K; r++) {
        size_t i = r / K;
        const float *lv = a->head + i * 2 * Z + Z;
        const float *prior = prior_rows ? prior_rows + i * 2 * Z : NULL;
        float *dz = a->dz + r * Z;
        const float *eps = a->eps + r * Z, *z = a->z + r * Z;
        float *dmu = a->dhead + i * 2 * Z, *dlv = dmu + Z;
        float w = a->wt[r];
        for (size_t j = 0; j < Z; j++) {
            if (iwae) {
                float gp = prior ? (z[j] - prior[j]) * expf(-prior[Z + j]) : z[j];
                if (loss->estimator == MODEL_EST_STANDARD) {
                    dz[j] += w * gp;
                } else {
                    float path = gp - eps[j] * expf(-0.5f * lv[j]);
                    dz[j] = loss->estimator == MODEL_EST_DREG ? w * (dz[j] + w * path)
                                                            : dz[j] + w * path;
                }
            }
            dmu[j] += dz[j];
            dlv[j] += dz[j] * eps[j] * 0.5f * expf(0.5f * lv[j]);
        }
    }
}

/* ===================================================================== */
/* Two stochastic layers                                                  */
/* ===================================================================== */

/* Draw r's weight in the KL terms' gradient: its normalised weight for the
 * IW bound, beta / K for the ELBO (whose terms are all sampled here). */
static float kl_weight(const model_acts *a, size_t r, const model_loss_spec *loss)
{
    return loss->objective == MODEL_OBJ_IWAE ? a->wt[r] : (float)(loss->beta / (double)a->k);
}

/* The two-layer model's log weight of draw r, every density at its draw
 * (the 2 pi terms cancel):
 *   log w = log p(x|h1) + log p(h1|h2) + log p(h2) - log q(h1|x) - log q(h2|h1)
 * with log q(h1|x) = sum -eps1^2/2 - lv1/2 and log q(h2|h1) = sum -eps2^2/2
 * - lv2/2 (h = mu + eps exp(lv/2)), log p(h1|h2) = sum -(h1 - mp)^2 /
 * (2 e^lp) - lp/2 and log p(h2) = sum -h2^2/2. Returns -log w; its sampled
 * KL part (log q - log p of both layers) into *kl. */
static double neg_log_w2(const model_config *cfg, const model_acts *a, size_t r,
                         const float *head2, const float *phead, double *kl)
{
    size_t Z1 = cfg->z_dim, Z2 = cfg->z2_dim, i = r / a->k;
    const float *lv1 = a->head + i * 2 * Z1 + Z1, *e1 = a->eps + r * Z1, *h1 = a->z + r * Z1;
    const float *mp = phead + r * 2 * Z1, *lp = mp + Z1;
    const float *lv2 = head2 + r * 2 * Z2 + Z2, *e2 = a->eps2 + r * Z2, *h2 = a->z2 + r * Z2;
    double t = 0.0;
    for (size_t d = 0; d < Z1; d++) {
        double dz = (double)h1[d] - mp[d];
        t += -0.5 * (double)e1[d] * e1[d] - 0.5 * lv1[d]           /* log q(h1|x) */
             + 0.5 * dz * dz * exp(-(double)lp[d]) + 0.5 * lp[d]; /* -log p(h1|h2) */
    }
    for (size_t d = 0; d < Z2; d++)
        t += -0.5 * (double)e2[d] * e2[d] - 0.5 * lv2[d]  /* log q(h2|h1) */
             + 0.5 * (double)h2[d] * h2[d];                /* -log p(h2) */
    *kl = t;
    return (double)a->rrec[r] + t;
}

double objective2_loss(const model_config *cfg, model_acts *a, size_t B,
                       const model_loss_spec *loss, const float *head2, float *dhead2,
                       const float *phead, float *dphead)
{
    size_t D = cfg->x_dim, Z1 = cfg->z_dim, Z2 = cfg->z2_dim, K = a->k;
    int iwae = loss->objective == MODEL_OBJ_IWAE;
    double sum = 0.0;
    for (size_t i = 0; i < B; i++) {
        double lw[MODEL_MAX_DRAWS], top = -INFINITY, rs = 0.0, ks = 0.0;
        for (size_t j = 0; j < K; j++) {
            size_t r = i * K + j;
            double kl;
            lw[j] = -neg_log_w2(cfg, a, r, head2, phead, &kl);
            top = lw[j] > top ? lw[j] : top;
            rs += a->rrec[r];
            ks += kl;
        }
        a->rec[i] = (float)(rs / (double)K);
        a->kl[i] = (float)(ks / (double)K);
        double wsum = 0.0;
        for (size_t j = 0; j < K; j++)
            wsum += exp(lw[j] - top);
        for (size_t j = 0; j < K; j++)
            a->wt[i * K + j] = iwae ? (float)(exp(lw[j] - top) / wsum) : 1.0f / (float)K;
        a->obj[i] = iwae ? (float)(-(top + log(wsum) - log((double)K)))
                         : a->rec[i] + (float)loss->beta * a->kl[i];
        sum += rs / (double)K + ks / (double)K;
        /* The direct terms (eps held): -1/2 on each logvar of q(h1|x) and
         * q(h2|h1), weighted; p(h1|h2)'s head against its draw. */
        float *dmu1 = a->dhead + i * 2 * Z1, *dlv1 = dmu1 + Z1;
        float c1 = 0.0f, score = loss->estimator == MODEL_EST_STANDARD ? -0.5f : 0.0f;
        for (size_t j = 0; j < K; j++)
            c1 += kl_weight(a, i * K + j, loss);
        for (size_t d = 0; d < Z1; d++)
            dmu1[d] = 0.0f, dlv1[d] = score * c1;
        for (size_t j = 0; j < K; j++) {
            size_t r = i * K + j;
            float c = kl_weight(a, r, loss);
            float *dmu2 = dhead2 + r * 2 * Z2, *dlv2 = dmu2 + Z2;
            for (size_t d = 0; d < Z2; d++)
                dmu2[d] = 0.0f, dlv2[d] = score * c;
            const float *mp = phead + r * 2 * Z1, *lp = mp + Z1, *h1 = a->z + r * Z1;
            float *dmp = dphead + r * 2 * Z1, *dlp = dmp + Z1;
            for (size_t d = 0; d < Z1; d++) {
                float inv = expf(-lp[d]), dz = h1[d] - mp[d];
                dmp[d] = -c * dz * inv;
                dlp[d] = c * 0.5f * (1.0f - dz * dz * inv);
            }
        }
    }
    /* Each draw's reconstruction gradient counts with its weight. */
    for (size_t r = 0; r < B * K; r++) {
        float w = a->wt[r], *g = a->dlogits + r * D;
        for (size_t p = 0; p < D; p++)
            g[p] *= w;
    }
    return sum;
}

/* The estimators (one layer's, objective_reparam_backward, extended): the
 * encoder's gradient at each draw's h2 and h1 gets, besides the standard
 * terms, log q's path terms -c eps/sigma in place of the -c/2 on each
 * logvar (STL and DReG), q(h2|h1)'s score sent to h1 through its input
 * only (its parameters held, as the path derivative of log q(h2|h1) in h1
 * has it), and, for DReG, every one of these encoder-side gradients times
 * the draw's weight again (Tucker et al.: squared weights). The
 * decoder's and p(h1|h2)'s parameters see the standard gradients. */
static float encoder_factor(const model_acts *a, size_t r, const model_loss_spec *loss)
{
    return loss->estimator == MODEL_EST_DREG ? a->wt[r] : 1.0f;
}

void objective2_backward_top(const model_config *cfg, model_acts *a, size_t B,
                             const model_loss_spec *loss, const float *head2, float *dhead2)
{
    size_t Z2 = cfg->z2_dim;
    int path = loss->estimator != MODEL_EST_STANDARD;
    for (size_t r = 0; r < B * a->k; r++) {
        float c = kl_weight(a, r, loss), e = encoder_factor(a, r, loss);
        float *dz2 = a->dz2 + r * Z2;
        const float *h2 = a->z2 + r * Z2, *e2 = a->eps2 + r * Z2;
        const float *lv2 = head2 + r * 2 * Z2 + Z2;
        float *dmu2 = dhead2 + r * 2 * Z2, *dlv2 = dmu2 + Z2;
        for (size_t d = 0; d < Z2; d++) {
            float sigma = expf(0.5f * lv2[d]);
            dz2[d] += c * h2[d]; /* -log p(h2) */
            if (path)             /* +log q(h2|h1)'s path term */
                dz2[d] -= c * e2[d] / sigma;
            dz2[d] *= e;
            dmu2[d] += dz2[d];
            dlv2[d] += dz2[d] * e2[d] * 0.5f * sigma;
        }
    }
}

void objective2_score_top(const model_config *cfg, model_acts *a, size_t B,
                          const model_loss_spec *loss, const float *head2, float *dhead2)
{
    size_t Z2 = cfg->z2_dim;
    for (size_t r = 0; r < B * a->k; r++) {
        float ce = kl_weight(a, r, loss) * encoder_factor(a, r, loss);
        const float *e2 = a->eps2 + r * Z2, *lv2 = head2 + r * 2 * Z2 + Z2;
        float *dmu2 = dhead2 + r * 2 * Z2, *dlv2 = dmu2 + Z2;
        for (size_t d = 0; d < Z2; d++) { /* d log q(h2|h1) / d(mu2, logvar2) at h2 */
            dmu2[d] = ce * e2[d] * expf(-0.5f * lv2[d]);
            dlv2[d] = ce * (-0.5f + 0.5f * e2[d] * e2[d]);
        }
    }
}

void objective2_backward_bottom(const model_config *cfg, model_acts *a, size_t B,
                                const model_loss_spec *loss, const float *phead)
{
    size_t Z1 = cfg->z_dim, K = a->k;
    int path = loss->estimator != MODEL_EST_STANDARD;
    for (size_t r = 0; r < B * K; r++) {
        size_t i = r / K;
        float c = kl_weight(a, r, loss), e = encoder_factor(a, r, loss);
        float *dz = a->dz + r * Z1;
        const float *h1 = a->z + r * Z1, *e1 = a->eps + r * Z1, *dq = a->dz1q + r * Z1;
        const float *ds = a->dz1s + r * Z1;
        const float *mp = phead + r * 2 * Z1, *lp = mp + Z1;
        const float *lv1 = a->head + i * 2 * Z1 + Z1;
        float *dmu1 = a->dhead + i * 2 * Z1, *dlv1 = dmu1 + Z1;
        for (size_t d = 0; d < Z1; d++) {
            float sigma = expf(0.5f * lv1[d]);
            float g = dz[d] + c * (h1[d] - mp[d]) * expf(-lp[d]); /* -log p(h1|h2) */
            if (path) /* +log q(h1|x)'s path term, and q(h2|h1)'s score at h1 */
                g = e * (g - c * e1[d] / sigma) + ds[d];
            dz[d] = g + dq[d];
            dmu1[d] += dz[d];
            dlv1[d] += dz[d] * e1[d] * 0.5f * sigma;
        }
    }
}
