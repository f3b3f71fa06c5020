/* vae.c - the VAE's forward and backward passes over cblas_sgemm (see
 * include/vae.h).
 *
 * All tensors are row-major with the batch as the leading dimension. The
 * likelihoods are in lik.c, the objectives (KL, K-sample ELBO, IW bound) in
 * objective.c, the conv VAE's network in cnn.c; this file holds the MLP and
 * the reparameterization, and hands the conv architecture to cnn.c (which
 * calls nothing here). The tanh runs 8
 * lanes at a time (v8math.h); ReLU, bias and the small latent-sized loops
 * are plain loops gcc vectorizes itself. */
#include "vae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "gemm.h"
#include "lik.h"
#include "objective.h"
#include "linear.h"
#include "v8math.h"

/* ===================================================================== */
/* Lifecycle                                                              */
/* ===================================================================== */

/* Layer indices of the model's parts. */
static size_t head_of(const vae_model *m) { return m->cfg.n_hidden; }
static size_t out_of(const vae_model *m) { return 2 * m->cfg.n_hidden + 1; }
static size_t prior_hidden_of(const vae_model *m) { return 2 * m->cfg.n_hidden + 2; }
static size_t prior_head_of(const vae_model *m) { return 2 * m->cfg.n_hidden + 3; }

const char *vae_lik_name(vae_lik lik)
{
    switch (lik) {
    case VAE_LIK_BERNOULLI: return "bernoulli";
    case VAE_LIK_CB: return "cb";
    case VAE_LIK_GAUSSIAN: return "gaussian";
    }
    return "unknown";
}

int vae_config_check(const vae_config *cfg, err_msg *err)
{
    if (cfg->x_dim == 0 || cfg->x_dim > VAE_MAX_WIDTH * 16)
        return err_set(err, "input size %zu out of range", cfg->x_dim);
    if (cfg->n_hidden < 1 || cfg->n_hidden > VAE_MAX_HIDDEN)
        return err_set(err, "%zu hidden layers: need 1 to %d", cfg->n_hidden,
                       VAE_MAX_HIDDEN);
    for (size_t i = 0; i < cfg->n_hidden; i++)
        if (cfg->hidden[i] == 0 || cfg->hidden[i] > VAE_MAX_WIDTH)
            return err_set(err, "hidden width %zu out of range 1..%d",
                           cfg->hidden[i], VAE_MAX_WIDTH);
    if (cfg->z_dim == 0 || cfg->z_dim > VAE_MAX_WIDTH / 2)
        return err_set(err, "latent size %zu out of range 1..%d", cfg->z_dim,
                       VAE_MAX_WIDTH / 2);
    if (cfg->act != VAE_ACT_RELU && cfg->act != VAE_ACT_TANH && cfg->act != VAE_ACT_LEAKY)
        return err_set(err, "unknown activation %d", (int)cfg->act);
    if (cfg->arch != VAE_ARCH_MLP && cfg->arch != VAE_ARCH_CONV)
        return err_set(err, "unknown architecture %d", (int)cfg->arch);
    if (cfg->likelihood != VAE_LIK_BERNOULLI && cfg->likelihood != VAE_LIK_CB &&
        cfg->likelihood != VAE_LIK_GAUSSIAN)
        return err_set(err, "unknown likelihood %d", (int)cfg->likelihood);
    if (cfg->n_classes > VAE_MAX_CLASSES)
        return err_set(err, "%zu classes: at most %d", cfg->n_classes, VAE_MAX_CLASSES);
    if (cfg->arch == VAE_ARCH_CONV)
        return cnn_config_check(cfg, err);
    return 0;
}

int vae_layout(vae_model *m, const vae_config *cfg, err_msg *err)
{
    memset(m, 0, sizeof *m);
    if (vae_config_check(cfg, err))
        return -1;
    m->cfg = *cfg;
    if (cfg->arch == VAE_ARCH_CONV) {
        cnn_layout(m);
        return 0;
    }
    size_t nh = cfg->n_hidden, K = cfg->n_classes;
    m->n_layers = 2 * nh + 2 + (K ? 2 : 0);
    size_t off = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        vae_layer *L = &m->layer[l];
        if (l < nh) {
            L->in = l == 0 ? cfg->x_dim : cfg->hidden[l - 1];
            L->n_onehot = l == 0 ? K : 0;
            L->out = cfg->hidden[l];
        } else if (l == nh) {
            L->in = cfg->hidden[nh - 1];
            L->out = 2 * cfg->z_dim;
        } else if (l < 2 * nh + 1) {
            L->in = l == nh + 1 ? cfg->z_dim : cfg->hidden[2 * nh + 1 - l];
            L->n_onehot = l == nh + 1 ? K : 0;
            L->out = cfg->hidden[2 * nh - l];
        } else if (l == 2 * nh + 1) {
            L->in = cfg->hidden[0];
            L->out = cfg->x_dim;
        } else if (l == 2 * nh + 2) { /* prior network: label -> hidden */
            L->in = 0;
            L->n_onehot = K;
            L->out = cfg->hidden[nh - 1];
        } else { /* prior head */
            L->in = cfg->hidden[nh - 1];
            L->out = 2 * cfg->z_dim;
        }
        L->has_act = l != nh && l != 2 * nh + 1 && l != 2 * nh + 3;
        /* Widths are bounded by vae_config_check, so this cannot overflow. */
        L->w_off = off;
        off += (L->in + L->n_onehot) * L->out;
        L->b_off = off;
        off += L->out;
    }
    m->n_params = off;
    return 0;
}

int vae_init(vae_model *m, const vae_config *cfg, err_msg *err)
{
    if (vae_layout(m, cfg, err))
        return -1;
    m->params = malloc(m->n_params * sizeof *m->params);
    if (!m->params)
        return err_set(err, "out of memory for the model's %zu parameters (%.1f GB)",
                       m->n_params, 4e-9 * (double)m->n_params);
    return 0;
}

void vae_init_params(vae_model *m, rng_state *rng)
{
    if (m->cfg.arch == VAE_ARCH_CONV) {
        cnn_init_params(m, rng);
        return;
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        const vae_layer *L = &m->layer[l];
        size_t fan_in = L->in + L->n_onehot;
        float bound = 1.0f / sqrtf((float)fan_in);
        float *w = m->params + L->w_off;
        for (size_t i = 0; i < fan_in * L->out; i++)
            w[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
        float *b = m->params + L->b_off;
        for (size_t i = 0; i < L->out; i++)
            b[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
    }
}

/* logit(p) with p kept in [0.001, 0.999]: a pixel that is always 0 (MNIST's
 * corners) would otherwise get an infinite bias. */
static float clipped_logit(double p)
{
    p = p < 0.001 ? 0.001 : p > 0.999 ? 0.999 : p;
    return (float)log(p / (1.0 - p));
}

void vae_init_glorot(vae_model *m, rng_state *rng, const double *pixel_mean)
{
    if (m->cfg.arch == VAE_ARCH_CONV) {
        double mean = 0.0;
        for (size_t p = 0; p < m->cfg.x_dim; p++)
            mean += pixel_mean[p];
        cnn_init_glorot(m, rng, clipped_logit(mean / (double)m->cfg.x_dim));
        return;
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        const vae_layer *L = &m->layer[l];
        size_t fan_in = L->in + L->n_onehot;
        float bound = sqrtf(6.0f / (float)(fan_in + L->out));
        float *w = m->params + L->w_off;
        for (size_t i = 0; i < fan_in * L->out; i++)
            w[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
        float *b = m->params + L->b_off;
        for (size_t i = 0; i < L->out; i++)
            b[i] = l == out_of(m) ? clipped_logit(pixel_mean[i]) : 0.0f;
    }
}

void vae_free(vae_model *m)
{
    free(m->params);
    memset(m, 0, sizeof *m);
}

int vae_acts_init(vae_acts *a, const vae_config *cfg, size_t cap, err_msg *err)
{
    return vae_acts_init_k(a, cfg, cap, 1, VAE_OBJ_ELBO, err);
}

/* Whether layer l is the decoder's (it runs on k rows an image). */
static int is_decoder(const vae_model *m, size_t l)
{
    return l > head_of(m) && l <= out_of(m);
}

int vae_acts_init_k(vae_acts *a, const vae_config *cfg, size_t cap, size_t k,
                    vae_objective objective, err_msg *err)
{
    memset(a, 0, sizeof *a);
    vae_model shape; /* the layer widths, without parameters */
    if (vae_layout(&shape, cfg, err))
        return -1;
    if (k < 1 || k > VAE_MAX_DRAWS)
        return err_set(err, "%zu draws per image: need 1 to %d", k, VAE_MAX_DRAWS);
    if (cfg->arch == VAE_ARCH_CONV) {
        if (k != 1 || objective != VAE_OBJ_ELBO)
            return err_set(err, "the conv VAE trains on one draw per image and the "
                           "ELBO only (not yet --k > 1 or --objective iwae)");
        if (cnn_acts_init(a, &shape, cap, err))
            return -1;
        a->k = 1;
        a->rrec = a->rec;
        a->ydec = a->y;
        a->obj = a->aux = malloc(cap * sizeof *a->obj);
        if (!a->obj) {
            vae_acts_free(a);
            return err_set(err, "out of memory for activations of %zu images", cap);
        }
        return 0;
    }
    size_t L = shape.n_layers;
    /* Per image: x, xin_buf, rec, kl, obj, 4 bytes of label room; k times
     * eps, z, dz, rrec, wt and the decoder's label room; the layers' outputs
     * and gradients, k times for the decoder's. */
    size_t per_image = 2 * cfg->x_dim + 4 + k * (3 * cfg->z_dim + 3);
    for (size_t l = 0; l < L; l++)
        per_image += 2 * shape.layer[l].out * (is_decoder(&shape, l) ? k : 1);
    size_t total;
    if (cap == 0 || err_mul_size(per_image, cap, &total) ||
        total > SIZE_MAX / sizeof(float))
        return err_set(err, "batch of %zu images is too large", cap);
    a->mem = malloc(total * sizeof(float));
    if (!a->mem)
        return err_set(err, "out of memory for activations of %zu images", cap);
    a->cap = cap;
    float *p = a->mem;
    a->x = p, p += cap * cfg->x_dim;
    a->xin_buf = p, p += cap * cfg->x_dim;
    a->xin = a->x;
    for (size_t l = 0; l < L; l++) {
        size_t rows = cap * (is_decoder(&shape, l) ? k : 1);
        a->h[l] = p, p += rows * shape.layer[l].out;
        a->dh[l] = p, p += rows * shape.layer[l].out;
    }
    a->eps = p, p += cap * k * cfg->z_dim;
    a->z = p, p += cap * k * cfg->z_dim;
    a->dz = p, p += cap * k * cfg->z_dim;
    a->rec = p, p += cap;
    a->kl = p, p += cap;
    a->obj = p, p += cap;
    a->rrec = k == 1 ? a->rec : p;
    p += cap * k;
    a->wt = p, p += cap * k;
    a->y = (uint8_t *)p, p += cap;
    memset(a->y, 0, cap);
    a->ydec = k == 1 ? a->y : (uint8_t *)p;
    memset(a->ydec, 0, cap * k);
    a->k = k;
    a->objective = objective;
    a->head = a->h[shape.cfg.n_hidden];
    a->dhead = a->dh[shape.cfg.n_hidden];
    a->logits = a->h[2 * shape.cfg.n_hidden + 1];
    a->dlogits = a->dh[2 * shape.cfg.n_hidden + 1];
    return 0;
}

void vae_acts_free(vae_acts *a)
{
    free(a->mem);
    free(a->aux);
    memset(a, 0, sizeof *a);
}

/* ===================================================================== */
/* Passes                                                                 */
/* ===================================================================== */

/* The input of layer l. */
static const float *layer_input(const vae_model *m, const vae_acts *a, size_t l)
{
    if (l == 0)
        return a->xin;
    if (l == head_of(m) + 1)
        return a->z;
    if (l == prior_hidden_of(m))
        return NULL; /* the label alone */
    return a->h[l - 1];
}

/* B images: the decoder's layers run on B * k rows, with their labels. */
static void forward_layers(const vae_model *m, vae_acts *a, size_t B,
                           size_t first, size_t last)
{
    for (size_t l = first; l <= last; l++) {
        const vae_layer *L = &m->layer[l];
        int dec = is_decoder(m, l);
        linear_forward(a->h[l], layer_input(m, a, l), m->params + L->w_off,
                       m->params + L->b_off, dec ? a->ydec : a->y, dec ? B * a->k : B,
                       L->in, L->n_onehot, L->out, L->has_act, m->cfg.act);
    }
}

void vae_encode(const vae_model *m, vae_acts *a, size_t B)
{
    if (m->cfg.arch == VAE_ARCH_CONV) {
        cnn_encode(m, a, B);
        return;
    }
    forward_layers(m, a, B, 0, head_of(m));
    vae_prior(m, a, B);
}

void vae_prior(const vae_model *m, vae_acts *a, size_t B)
{
    if (m->cfg.n_classes && m->cfg.arch == VAE_ARCH_MLP)
        forward_layers(m, a, B, prior_hidden_of(m), prior_head_of(m));
}

void vae_decode(const vae_model *m, vae_acts *a, size_t B)
{
    if (m->cfg.arch == VAE_ARCH_CONV)
        cnn_decode(m, a, B);
    else
        forward_layers(m, a, B, head_of(m) + 1, out_of(m));
}

void vae_reparam(const vae_model *m, vae_acts *a, size_t B, int use_mean)
{
    size_t Z = m->cfg.z_dim, K = a->k;
    const float *head = a->head;
    for (size_t r = 0; r < B * K; r++) {
        size_t i = r / K;
        const float *mu = head + i * 2 * Z, *lv = mu + Z;
        const float *eps = a->eps + r * Z;
        float *z = a->z + r * Z;
        for (size_t j = 0; j < Z; j++)
            z[j] = use_mean ? mu[j] : mu[j] + eps[j] * expf(0.5f * lv[j]);
        if (K > 1)
            a->ydec[r] = a->y[i];
    }
}

double vae_loss(const vae_model *m, vae_acts *a, size_t B, double beta)
{
    size_t D = m->cfg.x_dim, K = a->k;
    for (size_t r = 0; r < B * K; r++)
        a->rrec[r] = lik_row(m->cfg.likelihood, LIK_GRAD, a->dlogits + r * D,
                             a->logits + r * D, a->x + (r / K) * D, D);
    const float *prior = vae_prior_mu(m, a, 0);
    return objective_loss(&m->cfg, a, B, beta, prior,
                          prior ? a->dh[prior_head_of(m)] : NULL);
}

/* Backward through layers last..first, each from dh[l] (the gradient at
 * its output), through its activation and into the previous layer's dh
 * (or dinp_first for the first). */
static void backward_layers(const vae_model *m, vae_acts *a, float *grads,
                            size_t B, size_t last, size_t first,
                            float *dinp_first)
{
    for (size_t l = last + 1; l-- > first;) {
        const vae_layer *L = &m->layer[l];
        int dec = is_decoder(m, l);
        size_t rows = dec ? B * a->k : B;
        if (L->has_act)
            act_backward(a->dh[l], a->h[l], rows * L->out, m->cfg.act);
        float *dinp = l == first ? dinp_first : a->dh[l - 1];
        linear_backward(dinp, grads + L->w_off, grads + L->b_off, a->dh[l],
                        layer_input(m, a, l), m->params + L->w_off,
                        dec ? a->ydec : a->y, rows, L->in, L->n_onehot, L->out);
    }
}

void vae_backward(const vae_model *m, vae_acts *a, float *grads, size_t B)
{
    if (m->cfg.arch == VAE_ARCH_CONV) {
        cnn_backward_decoder(m, a, grads, B);
        objective_reparam_backward(&m->cfg, a, B, vae_prior_mu(m, a, 0));
        cnn_backward_encoder(m, a, grads, B);
        return;
    }
    size_t nh = head_of(m);
    /* Decoder, from the output back to z. */
    backward_layers(m, a, grads, B, out_of(m), nh + 1, a->dz);
    objective_reparam_backward(&m->cfg, a, B, vae_prior_mu(m, a, 0));
    /* Encoder, from the head back to the input (whose gradient is unused). */
    backward_layers(m, a, grads, B, nh, 0, NULL);
    /* The prior network, from the KL's gradient at its head. */
    if (m->cfg.n_classes)
        backward_layers(m, a, grads, B, prior_head_of(m), prior_hidden_of(m), NULL);
}

void vae_rec_rows(const vae_model *m, const float *logits, const float *x,
                  size_t x_stride, size_t n, float *rec)
{
    size_t D = m->cfg.x_dim;
    for (size_t i = 0; i < n; i++)
        rec[i] = lik_row(m->cfg.likelihood, LIK_SUM, NULL, logits + i * D,
                         x + i * x_stride, D);
}

float *vae_mu(const vae_model *m, const vae_acts *a, size_t b)
{
    return a->head + b * 2 * m->cfg.z_dim;
}

float *vae_logvar(const vae_model *m, const vae_acts *a, size_t b)
{
    return vae_mu(m, a, b) + m->cfg.z_dim;
}

float *vae_prior_mu(const vae_model *m, const vae_acts *a, size_t b)
{
    return m->cfg.n_classes && m->cfg.arch == VAE_ARCH_MLP
               ? a->h[prior_head_of(m)] + b * 2 * m->cfg.z_dim
               : NULL;
}

float *vae_prior_logvar(const vae_model *m, const vae_acts *a, size_t b)
{
    float *mu = vae_prior_mu(m, a, b);
    return mu ? mu + m->cfg.z_dim : NULL;
}

float *vae_logits(const vae_model *m, const vae_acts *a)
{
    (void)m;
    return a->logits;
}

void vae_mean(const vae_model *m, float *out, const float *logits, size_t n)
{
    lik_row(m->cfg.likelihood, LIK_MEAN, out, logits, NULL, n);
}
