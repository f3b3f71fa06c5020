/* vae.c - MLP VAE forward and backward over cblas_sgemm (see include/vae.h).
 *
 * All tensors are row-major with the batch as the leading dimension. The
 * elementwise kernels are written without branches so gcc vectorizes them;
 * the only transcendental work per pixel is one exp and one log1p. */
#include "vae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

/* ===================================================================== */
/* Per-pixel math on 8-lane vectors                                       */
/* ===================================================================== */

/* GCC/clang vector extensions: plain C arithmetic on 8 floats at a time,
 * which -O2 maps onto AVX (or pairs of SSE registers). gcc does not
 * vectorize the clamped exp below from scalar code on its own. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f v8_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v8_store(float *p, v8f v)
{
    memcpy(p, &v, sizeof v);
}

/* exp(x) for x <= 0, relative error ~2e-7: x = k ln2 + r with |r| <= ln2/2
 * (Cody-Waite split of ln2), a degree-7 Taylor/minimax polynomial for
 * exp(r), and 2^k built in the exponent bits. k < -126 (x < -87.3, or
 * x = -inf or NaN, where the conversion gives INT_MIN) flushes to 0. */
static inline v8f v8_exp_nonpos(v8f x)
{
    v8i k = __builtin_convertvector(x * 1.44269504f - 0.5f, v8i);
    v8f n = __builtin_convertvector(k, v8f);
    v8f r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v8i under = k < -126;
    v8i bits = (k + 127) << 23;
    v8f y = p * (v8f)bits;
    return (v8f)((v8i)y & ~under);
}

/* log1p(e) for e in [0, 1], via log1p(e) = 2 atanh(s), s = e / (2 + e) in
 * [0, 1/3]: the odd series in s to s^13 is accurate to ~1e-8 absolute and
 * never forms 1 + e, so small e keep full precision. */
static inline v8f v8_log1p_unit(v8f e)
{
    v8f s = e / (2.0f + e);
    v8f s2 = s * s;
    v8f p = s2 * (1.0f / 13.0f) + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* For logits a: sig = sigmoid(a) and the BCE term against target t,
 * softplus(a) - a t = max(a,0) - a t + log1p(exp(-|a|)), stable for any a. */
static inline v8f v8_sigmoid_bce(v8f a, v8f t, v8f *sig)
{
    v8f abs_a = (v8f)((v8i)a & 0x7fffffff);
    v8f e = v8_exp_nonpos(-abs_a);
    v8f r = 1.0f / (1.0f + e);
    v8i pos = a >= 0.0f;
    *sig = (v8f)((pos & (v8i)r) | (~pos & (v8i)(e * r)));
    v8f relu = (v8f)((v8i)a & (a > 0.0f));
    return relu - a * t + v8_log1p_unit(e);
}

/* Runs v8_sigmoid_bce over n values: sig[i] = sigmoid(a[i]) - t[i] when
 * grad is set (the BCE gradient), else sigmoid(a[i]); returns the sum of
 * the BCE terms (t may be NULL when only the sigmoid is wanted). */
static float sigmoid_bce_row(float *out, const float *a, const float *t,
                             size_t n, int grad)
{
    v8f acc = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f sig, tv = t ? v8_load(t + i) : (v8f){0};
        acc += v8_sigmoid_bce(v8_load(a + i), tv, &sig);
        v8_store(out + i, grad ? sig - tv : sig);
    }
    if (i < n) {
        /* The tail goes through the same vector code on zero padding;
         * padded lanes are masked out of the sum. */
        float ab[8] = {0}, tb[8] = {0}, ob[8];
        size_t rest = n - i;
        memcpy(ab, a + i, rest * sizeof *ab);
        if (t)
            memcpy(tb, t + i, rest * sizeof *tb);
        v8f sig, tv = v8_load(tb);
        v8f l = v8_sigmoid_bce(v8_load(ab), tv, &sig);
        v8_store(ob, grad ? sig - tv : sig);
        memcpy(out + i, ob, rest * sizeof *ob);
        for (size_t j = 0; j < rest; j++)
            acc[j] += l[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < 8; j++)
        sum += acc[j];
    return sum;
}

/* ===================================================================== */
/* Layer kernels                                                          */
/* ===================================================================== */

/* out (B,OC) = inp (B,C) . w^T + b; w is (OC,C) as PyTorch stores it, so
 * the sgemm transposes its second operand. Bias and activation are applied
 * afterwards in one pass over out. */
static void linear_forward(float *out, const float *inp, const float *w,
                           const float *b, size_t B, size_t C, size_t OC,
                           int act, vae_act kind)
{
    gemm(0, 1, B, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    for (size_t i = 0; i < B; i++) {
        float *o = out + i * OC;
        if (!act) {
            for (size_t j = 0; j < OC; j++)
                o[j] += b[j];
        } else if (kind == VAE_ACT_RELU) {
            for (size_t j = 0; j < OC; j++) {
                float v = o[j] + b[j];
                o[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (size_t j = 0; j < OC; j++)
                o[j] = tanhf(o[j] + b[j]);
        }
    }
}

/* dout (B,OC) *= act'(y) where y (B,OC) is the activation's output:
 * relu' = [y > 0], tanh' = 1 - y^2. */
static void act_backward(float *dout, const float *y, size_t n, vae_act kind)
{
    if (kind == VAE_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            dout[i] = y[i] > 0.0f ? dout[i] : 0.0f;
    } else {
        for (size_t i = 0; i < n; i++)
            dout[i] *= 1.0f - y[i] * y[i];
    }
}

/* Given dout (B,OC) = d loss / d (pre-activation output):
 *   dw (OC,C) = dout^T . inp      (first operand transposed)
 *   db (OC)   = column sums of dout
 *   dinp (B,C) = dout . w         (skipped when dinp is NULL) */
static void linear_backward(float *dinp, float *dw, float *db,
                            const float *dout, const float *inp,
                            const float *w, size_t B, size_t C, size_t OC)
{
    gemm(1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 0.0f, dw, C);
    memset(db, 0, OC * sizeof *db);
    for (size_t i = 0; i < B; i++) {
        const float *d = dout + i * OC;
        for (size_t j = 0; j < OC; j++)
            db[j] += d[j];
    }
    if (dinp)
        gemm(0, 0, B, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
}

/* Binary cross-entropy from logits a (B,D) against targets t (B,D) in [0,1]:
 *   loss = max(a,0) - a t + log1p(exp(-|a|)),  dloss/da = sigmoid(a) - t
 * Writes the per-image sums into loss (B) and the gradient into da. */
static void bce_logits(float *loss, float *da, const float *a, const float *t,
                       size_t B, size_t D)
{
    for (size_t i = 0; i < B; i++)
        loss[i] = sigmoid_bce_row(da + i * D, a + i * D, t + i * D, D, 1);
}

/* KL(q(z|x) || N(0,I)) per image from head rows [mu | lv] (B, 2Z):
 *   kl = -1/2 sum(1 + lv - mu^2 - exp(lv))
 *   dkl/dmu = mu,  dkl/dlv = (exp(lv) - 1) / 2
 * The gradients are written into dhead (B, 2Z) (overwriting). */
static void kl_normal(float *kl, float *dhead, const float *head, size_t B,
                      size_t Z)
{
    for (size_t i = 0; i < B; i++) {
        const float *mu = head + i * 2 * Z, *lv = mu + Z;
        float *dmu = dhead + i * 2 * Z, *dlv = dmu + Z;
        float sum = 0.0f;
        for (size_t j = 0; j < Z; j++) {
            float ev = expf(lv[j]);
            sum += 1.0f + lv[j] - mu[j] * mu[j] - ev;
            dmu[j] = mu[j];
            dlv[j] = 0.5f * (ev - 1.0f);
        }
        kl[i] = -0.5f * sum;
    }
}

/* ===================================================================== */
/* Lifecycle                                                              */
/* ===================================================================== */

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
    if (cfg->act != VAE_ACT_RELU && cfg->act != VAE_ACT_TANH)
        return err_set(err, "unknown activation %d", (int)cfg->act);
    return 0;
}

int vae_layout(vae_model *m, const vae_config *cfg, err_msg *err)
{
    memset(m, 0, sizeof *m);
    if (vae_config_check(cfg, err))
        return -1;
    m->cfg = *cfg;
    size_t nh = cfg->n_hidden;
    m->n_layers = 2 * nh + 2;
    size_t off = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        vae_layer *L = &m->layer[l];
        if (l < nh) {
            L->in = l == 0 ? cfg->x_dim : cfg->hidden[l - 1];
            L->out = cfg->hidden[l];
        } else if (l == nh) {
            L->in = cfg->hidden[nh - 1];
            L->out = 2 * cfg->z_dim;
        } else if (l < 2 * nh + 1) {
            L->in = l == nh + 1 ? cfg->z_dim : cfg->hidden[2 * nh + 1 - l];
            L->out = cfg->hidden[2 * nh - l];
        } else {
            L->in = cfg->hidden[0];
            L->out = cfg->x_dim;
        }
        L->has_act = l != nh && l != 2 * nh + 1;
        /* Widths are bounded by vae_config_check, so this cannot overflow. */
        L->w_off = off;
        off += L->in * L->out;
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
    for (size_t l = 0; l < m->n_layers; l++) {
        const vae_layer *L = &m->layer[l];
        float bound = 1.0f / sqrtf((float)L->in);
        float *w = m->params + L->w_off;
        for (size_t i = 0; i < L->in * L->out; i++)
            w[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
        float *b = m->params + L->b_off;
        for (size_t i = 0; i < L->out; i++)
            b[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
    }
}

void vae_free(vae_model *m)
{
    free(m->params);
    memset(m, 0, sizeof *m);
}

int vae_acts_init(vae_acts *a, const vae_config *cfg, size_t cap, err_msg *err)
{
    memset(a, 0, sizeof *a);
    vae_model shape; /* the layer widths, without parameters */
    if (vae_layout(&shape, cfg, err))
        return -1;
    size_t L = shape.n_layers, widths[VAE_MAX_LAYERS];
    for (size_t l = 0; l < L; l++)
        widths[l] = shape.layer[l].out;
    size_t per_image = cfg->x_dim + 3 * cfg->z_dim + 2;
    for (size_t l = 0; l < L; l++)
        per_image += 2 * widths[l];
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
    for (size_t l = 0; l < L; l++) {
        a->h[l] = p, p += cap * widths[l];
        a->dh[l] = p, p += cap * widths[l];
    }
    a->eps = p, p += cap * cfg->z_dim;
    a->z = p, p += cap * cfg->z_dim;
    a->dz = p, p += cap * cfg->z_dim;
    a->bce = p, p += cap;
    a->kl = p;
    return 0;
}

void vae_acts_free(vae_acts *a)
{
    free(a->mem);
    memset(a, 0, sizeof *a);
}

/* ===================================================================== */
/* Passes                                                                 */
/* ===================================================================== */

/* The input of layer l: x for the first, z for the decoder's first. */
static const float *layer_input(const vae_model *m, const vae_acts *a, size_t l)
{
    if (l == 0)
        return a->x;
    if (l == m->cfg.n_hidden + 1)
        return a->z;
    return a->h[l - 1];
}

static void forward_layers(const vae_model *m, vae_acts *a, size_t B,
                           size_t first, size_t last)
{
    for (size_t l = first; l <= last; l++) {
        const vae_layer *L = &m->layer[l];
        linear_forward(a->h[l], layer_input(m, a, l), m->params + L->w_off,
                       m->params + L->b_off, B, L->in, L->out, L->has_act,
                       m->cfg.act);
    }
}

void vae_encode(const vae_model *m, vae_acts *a, size_t B)
{
    forward_layers(m, a, B, 0, m->cfg.n_hidden);
}

void vae_decode(const vae_model *m, vae_acts *a, size_t B)
{
    forward_layers(m, a, B, m->cfg.n_hidden + 1, m->n_layers - 1);
}

void vae_reparam(const vae_model *m, vae_acts *a, size_t B, int use_mean)
{
    size_t Z = m->cfg.z_dim;
    const float *head = a->h[m->cfg.n_hidden];
    for (size_t i = 0; i < B; i++) {
        const float *mu = head + i * 2 * Z, *lv = mu + Z;
        const float *eps = a->eps + i * Z;
        float *z = a->z + i * Z;
        for (size_t j = 0; j < Z; j++)
            z[j] = use_mean ? mu[j] : mu[j] + eps[j] * expf(0.5f * lv[j]);
    }
}

double vae_loss(const vae_model *m, vae_acts *a, size_t B)
{
    size_t out = m->n_layers - 1, nh = m->cfg.n_hidden;
    bce_logits(a->bce, a->dh[out], a->h[out], a->x, B, m->cfg.x_dim);
    kl_normal(a->kl, a->dh[nh], a->h[nh], B, m->cfg.z_dim);
    double sum = 0.0;
    for (size_t i = 0; i < B; i++)
        sum += (double)a->bce[i] + (double)a->kl[i];
    return sum;
}

void vae_backward(const vae_model *m, vae_acts *a, float *grads, size_t B)
{
    size_t nh = m->cfg.n_hidden, Z = m->cfg.z_dim;
    /* Decoder, from the output back to z. dh[l] holds the gradient at the
     * layer's output; for activated layers it is first taken through the
     * activation, then through the linear map into the previous dh. */
    for (size_t l = m->n_layers - 1; l > nh; l--) {
        const vae_layer *L = &m->layer[l];
        if (L->has_act)
            act_backward(a->dh[l], a->h[l], B * L->out, m->cfg.act);
        float *dinp = l == nh + 1 ? a->dz : a->dh[l - 1];
        linear_backward(dinp, grads + L->w_off, grads + L->b_off, a->dh[l],
                        layer_input(m, a, l), m->params + L->w_off, B, L->in,
                        L->out);
    }
    /* Reparameterization z = mu + eps * exp(lv/2): the KL gradient already
     * in the head's dh gets dz added on mu and dz * eps * exp(lv/2) / 2 on lv. */
    float *dhead = a->dh[nh];
    const float *head = a->h[nh];
    for (size_t i = 0; i < B; i++) {
        const float *lv = head + i * 2 * Z + Z;
        const float *dz = a->dz + i * Z, *eps = a->eps + i * Z;
        float *dmu = dhead + i * 2 * Z, *dlv = dmu + Z;
        for (size_t j = 0; j < Z; j++) {
            dmu[j] += dz[j];
            dlv[j] += dz[j] * eps[j] * 0.5f * expf(0.5f * lv[j]);
        }
    }
    /* Encoder, from the head back to the input (whose gradient is unused). */
    for (size_t l = nh + 1; l-- > 0;) {
        const vae_layer *L = &m->layer[l];
        if (L->has_act)
            act_backward(a->dh[l], a->h[l], B * L->out, m->cfg.act);
        linear_backward(l == 0 ? NULL : a->dh[l - 1], grads + L->w_off,
                        grads + L->b_off, a->dh[l], layer_input(m, a, l),
                        m->params + L->w_off, B, L->in, L->out);
    }
}

float *vae_mu(const vae_model *m, const vae_acts *a, size_t b)
{
    return a->h[m->cfg.n_hidden] + b * 2 * m->cfg.z_dim;
}

float *vae_logvar(const vae_model *m, const vae_acts *a, size_t b)
{
    return vae_mu(m, a, b) + m->cfg.z_dim;
}

float *vae_logits(const vae_model *m, const vae_acts *a)
{
    return a->h[m->n_layers - 1];
}

void vae_sigmoid(float *out, const float *logits, size_t n)
{
    sigmoid_bce_row(out, logits, NULL, n, 0);
}
