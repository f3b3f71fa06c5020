/* vae.c - the VAE as a whole (see src/model/vae.h): checks a configuration,
 * allocates, and runs a batch through the network of its architecture
 * (the MLP in mlp.c, the conv VAE in cnn.c; neither calls the other or
 * this file), the reparameterization here, the likelihood (lik.c) and the
 * objective (objective.c). All tensors are row-major with the batch as
 * the leading dimension. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "lik.h"
#include "mlp.h"
#include "objective.h"
#include "par.h"

/* ===================================================================== */
/* Lifecycle                                                              */
/* ===================================================================== */

/* One thread alone. */
static const model_team ALONE = {0, 1, NULL, NULL, NULL, 0};

/* The enums' names, in their values' order (vae.h). */
static const char *const ACT_NAMES[] = {"relu", "tanh", "leaky"};
static const char *const ARCH_NAMES[] = {"mlp", "conv"};
static const char *const LIK_NAMES[] = {"bernoulli", "cb", "gaussian"};
static const char *const OBJECTIVE_NAMES[] = {"elbo", "iwae"};
const enum_names model_act_names = ENUM_NAMES(ACT_NAMES);
const enum_names model_arch_names = ENUM_NAMES(ARCH_NAMES);
const enum_names model_lik_names = ENUM_NAMES(LIK_NAMES);
const enum_names model_objective_names = ENUM_NAMES(OBJECTIVE_NAMES);
static const char *const ESTIMATOR_NAMES[] = {"standard", "stl", "dreg"};
const enum_names model_estimator_names = ENUM_NAMES(ESTIMATOR_NAMES);

const char *model_lik_name(model_lik lik)
{
    const char *name = enum_name(&model_lik_names, (int)lik);
    return name ? name : "unknown";
}

void model_config_shape(model_config *cfg)
{
    if (cfg->channels == 0)
        cfg->channels = 1;
    if (cfg->height == 0 || cfg->width == 0) {
        size_t px = cfg->x_dim / cfg->channels, s = 0;
        while (s * s < px)
            s++;
        cfg->height = s * s == px ? s : 1;
        cfg->width = s * s == px ? s : px;
    }
}

void model_config_image(model_config *cfg, size_t height, size_t width, size_t channels)
{
    cfg->height = height;
    cfg->width = width;
    cfg->channels = channels;
    cfg->x_dim = height * width * channels;
}

int model_config_check(const model_config *cfg, err_msg *err)
{
    if (cfg->x_dim == 0 || cfg->x_dim > MODEL_MAX_WIDTH * 16)
        return err_set(err, "input size %zu out of range", cfg->x_dim);
    if (cfg->channels != 0 && cfg->channels != 1 && cfg->channels != 3)
        return err_set(err, "%zu channels: 1 (grey) or 3 (RGB)", cfg->channels);
    size_t ch = cfg->channels ? cfg->channels : 1;
    if (cfg->height && cfg->width &&
        (cfg->height > MODEL_MAX_WIDTH || cfg->width > MODEL_MAX_WIDTH ||
         cfg->height * cfg->width * ch != cfg->x_dim))
        return err_set(err, "%zux%zu images of %zu channels are not %zu input values",
                       cfg->height, cfg->width, ch, cfg->x_dim);
    if (cfg->x_dim % ch)
        return err_set(err, "%zu input values are not whole pixels of %zu channels",
                       cfg->x_dim, cfg->channels);
    model_config shaped = *cfg;
    model_config_shape(&shaped);
    if (shaped.width > MODEL_MAX_WIDTH)
        return err_set(err, "%zu input values with no image size: a row of %zu pixels is "
                       "wider than %d; give the height and width", cfg->x_dim,
                       shaped.width, MODEL_MAX_WIDTH);
    if (cfg->n_hidden < 1 || cfg->n_hidden > MODEL_MAX_HIDDEN)
        return err_set(err, "%zu hidden layers: need 1 to %d", cfg->n_hidden,
                       MODEL_MAX_HIDDEN);
    for (size_t i = 0; i < cfg->n_hidden; i++)
        if (cfg->hidden[i] == 0 || cfg->hidden[i] > MODEL_MAX_WIDTH)
            return err_set(err, "hidden width %zu out of range 1..%d",
                           cfg->hidden[i], MODEL_MAX_WIDTH);
    if (cfg->z_dim == 0 || cfg->z_dim > MODEL_MAX_WIDTH / 2)
        return err_set(err, "latent size %zu out of range 1..%d", cfg->z_dim,
                       MODEL_MAX_WIDTH / 2);
    if (cfg->act != MODEL_ACT_RELU && cfg->act != MODEL_ACT_TANH && cfg->act != MODEL_ACT_LEAKY)
        return err_set(err, "unknown activation %d", (int)cfg->act);
    if (cfg->arch != MODEL_ARCH_MLP && cfg->arch != MODEL_ARCH_CONV)
        return err_set(err, "unknown architecture %d", (int)cfg->arch);
    if (cfg->likelihood != MODEL_LIK_BERNOULLI && cfg->likelihood != MODEL_LIK_CB &&
        cfg->likelihood != MODEL_LIK_GAUSSIAN)
        return err_set(err, "unknown likelihood %d", (int)cfg->likelihood);
    if (cfg->n_classes > MODEL_MAX_CLASSES)
        return err_set(err, "%zu classes: at most %d", cfg->n_classes, MODEL_MAX_CLASSES);
    if (cfg->z2_dim) {
        if (cfg->arch != MODEL_ARCH_MLP || cfg->n_classes)
            return err_set(err, "two stochastic layers: the MLP only, and not conditional");
        if (cfg->z2_dim > MODEL_MAX_WIDTH / 2)
            return err_set(err, "latent size %zu out of range 1..%d", cfg->z2_dim,
                           MODEL_MAX_WIDTH / 2);
        if (cfg->n_hidden2 < 1 || cfg->n_hidden2 > MODEL_MAX_HIDDEN)
            return err_set(err, "%zu hidden layers of the second stochastic layer: need 1 "
                           "to %d", cfg->n_hidden2, MODEL_MAX_HIDDEN);
        for (size_t i = 0; i < cfg->n_hidden2; i++)
            if (cfg->hidden2[i] == 0 || cfg->hidden2[i] > MODEL_MAX_WIDTH)
                return err_set(err, "hidden width %zu out of range 1..%d", cfg->hidden2[i],
                               MODEL_MAX_WIDTH);
    }
    if (cfg->arch == MODEL_ARCH_CONV)
        return cnn_config_check(&shaped, err);
    return 0;
}

/* "a,b,c" of n numbers into out at *len. */
static void put_list(char *out, size_t size, size_t *len, const size_t *v, size_t n)
{
    for (size_t i = 0; i < n && *len < size; i++) {
        int k = snprintf(out + *len, size - *len, "%s%zu", i ? "," : "", v[i]);
        *len += k > 0 ? (size_t)k : 0;
    }
}

char *model_hidden_text(const model_config *cfg, int json, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    put_list(out, size, &len, cfg->hidden, cfg->n_hidden);
    if (cfg->z2_dim && !json && len + 1 < size) {
        out[len++] = '/', out[len] = '\0';
        put_list(out, size, &len, cfg->hidden2, cfg->n_hidden2);
    }
    return out;
}

char *model_latent_text(const model_config *cfg, int json, char *out, size_t size)
{
    snprintf(out, size, cfg->z2_dim && !json ? "%zu,%zu" : "%zu", cfg->z_dim, cfg->z2_dim);
    return out;
}

int model_layout(model_net *m, const model_config *cfg, err_msg *err)
{
    memset(m, 0, sizeof *m);
    if (model_config_check(cfg, err))
        return -1;
    m->cfg = *cfg;
    model_config_shape(&m->cfg);
    if (cfg->arch == MODEL_ARCH_CONV) {
        cnn_layout(m);
        return 0;
    }
    mlp_layout(m);
    return 0;
}

int model_init(model_net *m, const model_config *cfg, err_msg *err)
{
    if (model_layout(m, cfg, err))
        return -1;
    m->params = malloc(m->n_params * sizeof *m->params);
    if (!m->params)
        return err_set(err, "out of memory for the model's %zu parameters (%.1f GB)",
                       m->n_params, 4e-9 * (double)m->n_params);
    return 0;
}

void model_init_params(model_net *m, rng_state *rng)
{
    if (m->cfg.arch == MODEL_ARCH_CONV) {
        cnn_init_params(m, rng);
        return;
    }
    mlp_init_params(m, rng);
}

/* logit(p) with p kept in [0.001, 0.999]: a pixel that is always 0 (MNIST's
 * corners) would otherwise get an infinite bias. */
static float clipped_logit(double p)
{
    p = p < 0.001 ? 0.001 : p > 0.999 ? 0.999 : p;
    return (float)log(p / (1.0 - p));
}

void model_init_glorot(model_net *m, rng_state *rng, const double *pixel_mean)
{
    if (m->cfg.arch == MODEL_ARCH_CONV) {
        double mean = 0.0;
        for (size_t p = 0; p < m->cfg.x_dim; p++)
            mean += pixel_mean[p];
        cnn_init_glorot(m, rng, clipped_logit(mean / (double)m->cfg.x_dim));
        return;
    }
    mlp_init_glorot(m, rng, pixel_mean);
}

void model_free(model_net *m)
{
    free(m->params);
    memset(m, 0, sizeof *m);
}

int model_acts_init(model_acts *a, const model_config *cfg, size_t cap, err_msg *err)
{
    return model_acts_init_k(a, cfg, cap, 1, err);
}

int model_acts_init_k(model_acts *a, const model_config *cfg, size_t cap, size_t k,
                    err_msg *err)
{
    memset(a, 0, sizeof *a);
    model_net shape; /* the layer widths, without parameters */
    if (model_layout(&shape, cfg, err))
        return -1;
    if (k < 1 || k > MODEL_MAX_DRAWS)
        return err_set(err, "%zu draws per image: need 1 to %d", k, MODEL_MAX_DRAWS);
    if (cfg->arch == MODEL_ARCH_CONV)
        return cnn_acts_init(a, &shape, cap, k, err);
    return mlp_acts_init(a, &shape, cap, k, err);
}

void model_acts_free(model_acts *a)
{
    free(a->mem);
    free(a->aux);
    memset(a, 0, sizeof *a);
}

/* ===================================================================== */
/* Passes                                                                 */
/* ===================================================================== */

void model_encode(const model_net *m, model_acts *a, size_t B)
{
    if (m->cfg.arch == MODEL_ARCH_CONV)
        cnn_encode(m, a, B);
    else
        mlp_encode(m, a, B, &ALONE);
}

void model_prior(const model_net *m, model_acts *a, size_t B)
{
    if (m->cfg.arch == MODEL_ARCH_MLP)
        mlp_prior(m, a, B, &ALONE);
}

void model_decode_pixels(const model_net *m, model_acts *a, size_t B)
{
    if (m->cfg.arch == MODEL_ARCH_CONV)
        cnn_decode(m, a, B);
    else
        mlp_decode(m, a, B, &ALONE);
}

void model_decode(const model_net *m, model_acts *a, size_t B)
{
    if (m->cfg.arch == MODEL_ARCH_CONV) {
        cnn_decode(m, a, B);
        return;
    }
    if (m->cfg.z2_dim) /* p(h1|h2) first: the loss needs both */
        mlp_decode_top(m, a, B, &ALONE);
    mlp_decode(m, a, B, &ALONE);
}

void model_draw_top(const model_net *m, model_acts *a, size_t B, int use_mean)
{
    if (!m->cfg.z2_dim)
        return;
    mlp_encode_top(m, a, B, &ALONE);
    size_t Z2 = m->cfg.z2_dim;
    const float *head2 = mlp_top_head(m, a, 0);
    for (size_t r = 0; r < B * a->k; r++) {
        const float *mu = head2 + r * 2 * Z2, *lv = mu + Z2, *eps = a->eps2 + r * Z2;
        float *z2 = a->z2 + r * Z2;
        for (size_t j = 0; j < Z2; j++)
            z2[j] = use_mean ? mu[j] : mu[j] + eps[j] * expf(0.5f * lv[j]);
    }
}

/* Rows [r0, r1) of model_reparam's B * k. */
static void reparam_rows(const model_net *m, model_acts *a, size_t r0, size_t r1,
                         int use_mean)
{
    size_t Z = m->cfg.z_dim, K = a->k;
    const float *head = a->head;
    for (size_t r = r0; r < r1; r++) {
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

void model_reparam(const model_net *m, model_acts *a, size_t B, int use_mean)
{
    reparam_rows(m, a, 0, B * a->k, use_mean);
    model_draw_top(m, a, B, use_mean); /* q(h2|h1) on every draw of h1, and h2 */
}

float *model_top_mu(const model_net *m, const model_acts *a, size_t r)
{
    float *head = mlp_top_head(m, a, 0);
    return head ? head + r * 2 * m->cfg.z2_dim : NULL;
}

void model_prior_top(const model_net *m, model_acts *a, size_t B)
{
    if (m->cfg.z2_dim)
        mlp_decode_top(m, a, B, &ALONE);
}

float *model_prior_top_mu(const model_net *m, const model_acts *a, size_t r)
{
    float *head = mlp_top_prior(m, a, 0);
    return head ? head + r * 2 * m->cfg.z_dim : NULL;
}

double model_top_log_ratio(const model_net *m, const model_acts *a, size_t r)
{
    size_t Z1 = m->cfg.z_dim, Z2 = m->cfg.z2_dim;
    const float *h1 = a->z + r * Z1, *h2 = a->z2 + r * Z2, *e2 = a->eps2 + r * Z2;
    const float *mp = mlp_top_prior(m, a, 0) + r * 2 * Z1, *lp = mp + Z1;
    const float *lv2 = mlp_top_head(m, a, 0) + r * 2 * Z2 + Z2;
    double t = 0.0;
    for (size_t d = 0; d < Z1; d++) {
        double dz = (double)h1[d] - mp[d];
        t += -0.5 * dz * dz * exp(-(double)lp[d]) - 0.5 * lp[d];
    }
    for (size_t d = 0; d < Z2; d++)
        t += -0.5 * (double)h2[d] * h2[d] + 0.5 * (double)e2[d] * e2[d] + 0.5 * lv2[d];
    return t;
}


/* -log p(x | z) of rows [r0, r1) of the decoder's B * k and its gradient
 * at their logits. */
static void rec_rows_grad(const model_net *m, model_acts *a, size_t r0, size_t r1)
{
    size_t D = m->cfg.x_dim, K = a->k;
    for (size_t r = r0; r < r1; r++)
        a->rrec[r] = lik_row(m->cfg.likelihood, LIK_GRAD, a->dlogits + r * D,
                             a->logits + r * D, a->x + (r / K) * D, D);
}

/* The objective from the rows' rec (objective.c), seeding the heads. */
static double objective_of(const model_net *m, model_acts *a, size_t B,
                           const model_loss_spec *loss)
{
    if (m->cfg.z2_dim)
        return objective2_loss(&m->cfg, a, B, loss, mlp_top_head(m, a, 0),
                               mlp_top_head(m, a, 1), mlp_top_prior(m, a, 0),
                               mlp_top_prior(m, a, 1));
    float *prior = model_prior_mu(m, a, 0);
    return objective_loss(&m->cfg, a, B, loss, prior,
                          prior ? mlp_prior_grad(m, a) : NULL);
}

double model_loss(const model_net *m, model_acts *a, size_t B, const model_loss_spec *loss)
{
    rec_rows_grad(m, a, 0, B * a->k);
    return objective_of(m, a, B, loss);
}

/* Two stochastic layers, between the decoder's backward and q(h1|x)'s:
 * p(h1|h2), h2's draw, q(h2|h1), then h1's draw. */
static void backward_top(const model_net *m, model_acts *a, float *grads, size_t B,
                         const model_loss_spec *loss, const model_team *t)
{
    mlp_backward_decode_top(m, a, grads, B, t);
    objective2_backward_top(&m->cfg, a, B, loss, mlp_top_head(m, a, 0),
                            mlp_top_head(m, a, 1));
    mlp_backward_encode_top(m, a, grads, B, t);
    if (loss->estimator != MODEL_EST_STANDARD) { /* log q(h2|h1)'s score, to h1 only */
        objective2_score_top(&m->cfg, a, B, loss, mlp_top_head(m, a, 0),
                             mlp_top_head(m, a, 1));
        mlp_backward_encode_top_input(m, a, B);
    }
    objective2_backward_bottom(&m->cfg, a, B, loss, mlp_top_prior(m, a, 0));
}

void model_backward(const model_net *m, model_acts *a, float *grads, size_t B,
                  const model_loss_spec *loss)
{
    if (m->cfg.arch == MODEL_ARCH_CONV) {
        cnn_backward_decoder(m, a, grads, B);
        objective_reparam_backward(&m->cfg, a, B, loss, model_prior_mu(m, a, 0));
        cnn_backward_encoder(m, a, grads, B);
        return;
    }
    mlp_backward_decoder(m, a, grads, B, &ALONE);
    if (m->cfg.z2_dim) {
        backward_top(m, a, grads, B, loss, &ALONE);
    } else {
        objective_reparam_backward(&m->cfg, a, B, loss, model_prior_mu(m, a, 0));
    }
    mlp_backward_encoder(m, a, grads, B, &ALONE);
}

size_t model_team_part_n(const model_net *m, size_t cap, size_t k)
{
    return m->cfg.arch == MODEL_ARCH_MLP ? mlp_part_n(m, cap, k) : 0;
}

double model_train_team(const model_net *m, model_acts *a, float *grads, size_t B,
                      const model_loss_spec *loss, const model_team *t)
{
    double sum = 0.0;
    size_t r0, r1;
    par_share(B * a->k, 1, t->k, t->T, &r0, &r1);
    mlp_encode(m, a, B, t);
    reparam_rows(m, a, r0, r1, 0);
    if (t->T > 1)
        t->barrier(t->ctx);
    mlp_decode(m, a, B, t);
    rec_rows_grad(m, a, r0, r1);
    if (t->T > 1)
        t->barrier(t->ctx);
    if (t->k == 0)
        sum = objective_of(m, a, B, loss);
    if (t->T > 1)
        t->barrier(t->ctx);
    mlp_backward_decoder(m, a, grads, B, t);
    if (t->k == 0)
        objective_reparam_backward(&m->cfg, a, B, loss, model_prior_mu(m, a, 0));
    if (t->T > 1)
        t->barrier(t->ctx);
    mlp_backward_encoder(m, a, grads, B, t);
    return sum;
}

void model_rec_rows(const model_net *m, const float *logits, const float *x,
                  size_t x_stride, size_t n, float *rec)
{
    size_t D = m->cfg.x_dim;
    for (size_t i = 0; i < n; i++)
        rec[i] = lik_row(m->cfg.likelihood, LIK_SUM, NULL, logits + i * D,
                         x + i * x_stride, D);
}

float *model_mu(const model_net *m, const model_acts *a, size_t b)
{
    return a->head + b * 2 * m->cfg.z_dim;
}

float *model_logvar(const model_net *m, const model_acts *a, size_t b)
{
    return model_mu(m, a, b) + m->cfg.z_dim;
}

float *model_prior_mu(const model_net *m, const model_acts *a, size_t b)
{
    float *head = m->cfg.arch == MODEL_ARCH_MLP ? mlp_prior_head(m, a) : NULL;
    return head ? head + b * 2 * m->cfg.z_dim : NULL;
}

float *model_prior_logvar(const model_net *m, const model_acts *a, size_t b)
{
    float *mu = model_prior_mu(m, a, b);
    return mu ? mu + m->cfg.z_dim : NULL;
}

float *model_logits(const model_net *m, const model_acts *a)
{
    (void)m;
    return a->logits;
}

void model_mean(const model_net *m, float *out, const float *logits, size_t n)
{
    lik_row(m->cfg.likelihood, LIK_MEAN, out, logits, NULL, n);
}
