/* mlp.c - the MLP VAE's networks over cblas_sgemm (see src/model/mlp.h). The
 * layers' math is in linear.c; this file knows which layer feeds which and
 * how a team splits them. */
#include "mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linear.h"
#include "par.h"

/* Layer indices of the model's parts. */
static size_t head_of(const model_net *m) { return m->cfg.n_hidden; }
static size_t out_of(const model_net *m) { return 2 * m->cfg.n_hidden + 1; }
static size_t prior_hidden_of(const model_net *m) { return 2 * m->cfg.n_hidden + 2; }
static size_t prior_head_of(const model_net *m) { return 2 * m->cfg.n_hidden + 3; }

/* Two stochastic layers: q(h2|h1)'s layers from enc2_of up to its head,
 * then p(h1|h2)'s from pdec_of up to its head (after the decoder; such a
 * model has no prior network). */
static int two_layers(const model_net *m) { return m->cfg.z2_dim > 0; }
static size_t enc2_of(const model_net *m) { return 2 * m->cfg.n_hidden + 2; }
static size_t head2_of(const model_net *m) { return enc2_of(m) + m->cfg.n_hidden2; }
static size_t pdec_of(const model_net *m) { return head2_of(m) + 1; }
static size_t phead_of(const model_net *m) { return pdec_of(m) + m->cfg.n_hidden2; }

/* Whether layer l runs on k rows an image: the decoder's, and with two
 * stochastic layers every layer above h1's draws. */
static int is_decoder(const model_net *m, size_t l)
{
    return (l > head_of(m) && l <= out_of(m)) || (two_layers(m) && l >= enc2_of(m));
}

/* The layers of q(h2|h1) and p(h1|h2) (after the one-layer model's). */
static void layout_top(model_net *m)
{
    const model_config *cfg = &m->cfg;
    size_t n2 = cfg->n_hidden2, first = enc2_of(m);
    m->n_layers = phead_of(m) + 1;
    for (size_t l = first; l < m->n_layers; l++) {
        model_layer *L = &m->layer[l];
        size_t i = l - first; /* 0..n2 q(h2|h1), n2+1..2 n2+1 p(h1|h2) */
        memset(L, 0, sizeof *L);
        if (i < n2) {
            L->in = i == 0 ? cfg->z_dim : cfg->hidden2[i - 1];
            L->out = cfg->hidden2[i];
        } else if (i == n2) {
            L->in = cfg->hidden2[n2 - 1];
            L->out = 2 * cfg->z2_dim;
        } else if (i < 2 * n2 + 1) {
            size_t j = i - n2 - 1; /* mirrored */
            L->in = j == 0 ? cfg->z2_dim : cfg->hidden2[n2 - j];
            L->out = cfg->hidden2[n2 - 1 - j];
        } else {
            L->in = cfg->hidden2[0];
            L->out = 2 * cfg->z_dim;
        }
        L->has_act = l != head2_of(m) && l != phead_of(m);
    }
}

void mlp_layout(model_net *m)
{
    const model_config *cfg = &m->cfg;
    size_t nh = cfg->n_hidden, K = cfg->n_classes;
    m->n_layers = 2 * nh + 2 + (K ? 2 : 0);
    size_t off = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        model_layer *L = &m->layer[l];
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
        /* Widths are bounded by model_config_check, so this cannot overflow. */
        L->w_off = off;
        off += (L->in + L->n_onehot) * L->out;
        L->b_off = off;
        off += L->out;
    }
    if (two_layers(m)) {
        layout_top(m);
        for (size_t l = enc2_of(m); l < m->n_layers; l++) {
            model_layer *L = &m->layer[l];
            L->w_off = off;
            off += L->in * L->out;
            L->b_off = off;
            off += L->out;
        }
    }
    m->n_params = off;
}

void mlp_init_params(model_net *m, rng_state *rng)
{
    for (size_t l = 0; l < m->n_layers; l++) {
        const model_layer *L = &m->layer[l];
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

void mlp_init_glorot(model_net *m, rng_state *rng, const double *pixel_mean)
{
    for (size_t l = 0; l < m->n_layers; l++) {
        const model_layer *L = &m->layer[l];
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

int mlp_acts_init(model_acts *a, const model_net *shape, size_t cap, size_t k, err_msg *err)
{
    const model_config *cfg = &shape->cfg;
    size_t L = shape->n_layers;
    /* Per image: x, xin_buf, rec, kl, obj, 4 bytes of label room; k times
     * eps, z, dz, rrec, wt and the decoder's label room; the layers' outputs
     * and gradients, k times for the decoder's. */
    size_t per_image = 2 * cfg->x_dim + 4 + k * (3 * cfg->z_dim + 3);
    if (cfg->z2_dim) /* eps2, z2, dz2 and dz1q, k rows each */
        per_image += k * (3 * cfg->z2_dim + 2 * cfg->z_dim);
    for (size_t l = 0; l < L; l++)
        per_image += 2 * shape->layer[l].out * (is_decoder(shape, l) ? k : 1);
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
        size_t rows = cap * (is_decoder(shape, l) ? k : 1);
        a->h[l] = p, p += rows * shape->layer[l].out;
        a->dh[l] = p, p += rows * shape->layer[l].out;
    }
    a->eps = p, p += cap * k * cfg->z_dim;
    a->z = p, p += cap * k * cfg->z_dim;
    a->dz = p, p += cap * k * cfg->z_dim;
    if (cfg->z2_dim) {
        a->eps2 = p, p += cap * k * cfg->z2_dim;
        a->z2 = p, p += cap * k * cfg->z2_dim;
        a->dz2 = p, p += cap * k * cfg->z2_dim;
        a->dz1q = p, p += cap * k * cfg->z_dim;
        a->dz1s = p, p += cap * k * cfg->z_dim;
    }
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
    a->head = a->h[head_of(shape)];
    a->dhead = a->dh[head_of(shape)];
    a->logits = a->h[out_of(shape)];
    a->dlogits = a->dh[out_of(shape)];
    return 0;
}

float *mlp_prior_head(const model_net *m, const model_acts *a)
{
    return m->cfg.n_classes ? a->h[prior_head_of(m)] : NULL;
}

float *mlp_prior_grad(const model_net *m, const model_acts *a)
{
    return m->cfg.n_classes ? a->dh[prior_head_of(m)] : NULL;
}

/* Shares of a layer's units are multiples of this many: 16 floats, one
 * cache line of each row. */
#define SHARE_ALIGN 16

/* Share k of T [*lo, *hi) of n units: the n / 16 cache lines of a row
 * split as evenly as whole lines allow (the last share takes the ragged
 * end). */
static void unit_share(size_t n, size_t k, size_t T, size_t *lo, size_t *hi)
{
    size_t lines = (n + SHARE_ALIGN - 1) / SHARE_ALIGN;
    size_t a = lines * k / T * SHARE_ALIGN, b = lines * (k + 1) / T * SHARE_ALIGN;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* Thread t->k's share [*lo, *hi) of n units. */
static void share(size_t n, const model_team *t, size_t *lo, size_t *hi)
{
    unit_share(n, t->k, t->T, lo, hi);
}

static void wait_all(const model_team *t)
{
    if (t->T > 1)
        t->barrier(t->ctx);
}

/* The input of layer l. */
static const float *layer_input(const model_net *m, const model_acts *a, size_t l)
{
    if (l == 0)
        return a->xin;
    if (l == head_of(m) + 1)
        return a->z;
    if (two_layers(m) && l == enc2_of(m))
        return a->z;
    if (two_layers(m) && l == pdec_of(m))
        return a->z2;
    if (l == prior_hidden_of(m))
        return NULL; /* the label alone */
    return a->h[l - 1];
}

/* Layers first..last on B images (the decoder's on B * k rows, with their
 * labels); every thread has all of layer last's output on return. */
static void forward_layers(const model_net *m, model_acts *a, size_t B, size_t first,
                           size_t last, const model_team *t)
{
    for (size_t l = first; l <= last; l++) {
        const model_layer *L = &m->layer[l];
        int dec = is_decoder(m, l);
        size_t lo, hi;
        share(L->out, t, &lo, &hi);
        linear_forward_cols(a->h[l], layer_input(m, a, l), m->params + L->w_off,
                            m->params + L->b_off, dec ? a->ydec : a->y,
                            dec ? B * a->k : B, L->in, L->n_onehot, L->out, lo, hi,
                            L->has_act, m->cfg.act);
        wait_all(t);
    }
}

void mlp_encode(const model_net *m, model_acts *a, size_t B, const model_team *t)
{
    forward_layers(m, a, B, 0, head_of(m), t);
    mlp_prior(m, a, B, t);
}

void mlp_prior(const model_net *m, model_acts *a, size_t B, const model_team *t)
{
    if (m->cfg.n_classes)
        forward_layers(m, a, B, prior_hidden_of(m), prior_head_of(m), t);
}

void mlp_decode(const model_net *m, model_acts *a, size_t B, const model_team *t)
{
    forward_layers(m, a, B, head_of(m) + 1, out_of(m), t);
}

/* Thread t->k's part of dinp = dout . w[:, :C] (rows x C) for a layer
 * whose output units it owns [u0, u1): its own product into a scratch
 * buffer (two sets, alternating by parity, so a thread may start the next
 * layer's while others still read this one's), then, once every thread
 * has its own, its share of the columns as the sum of all the products in
 * thread order. */
static void input_grad_team(float *dinp, const float *dout, const float *w, size_t rows,
                            size_t C, size_t K, size_t OC, size_t u0, size_t u1,
                            int parity, const model_team *t)
{
    float *set = t->part + (size_t)parity * t->T * t->part_n;
    linear_backward_input_part(set + t->k * t->part_n, dout, w, rows, C, K, OC, u0, u1);
    t->barrier(t->ctx);
    size_t c0, c1;
    share(C, t, &c0, &c1);
    for (size_t r = 0; r < rows; r++) {
        float *out = dinp + r * C;
        const float *p0 = set + r * C;
        for (size_t c = c0; c < c1; c++)
            out[c] = p0[c];
        for (size_t k = 1; k < t->T; k++) {
            const float *pk = set + k * t->part_n + r * C;
            for (size_t c = c0; c < c1; c++)
                out[c] += pk[c];
        }
    }
}

/* Backward through layers last..first, each from dh[l] (the gradient at
 * its output), through its activation and into the previous layer's dh
 * (or dinp_first for the first). A thread's share of layer l's inputs is
 * its share of layer l-1's outputs, so it goes on to layer l-1 with the
 * columns it computed itself. In a team a thread reads only its own
 * units' weights (input_grad_team). dinp_first is complete for every
 * thread on return. */
static void backward_layers(const model_net *m, model_acts *a, float *grads, size_t B,
                            size_t last, size_t first, float *dinp_first,
                            const model_team *t)
{
    for (size_t l = last + 1; l-- > first;) {
        const model_layer *L = &m->layer[l];
        int dec = is_decoder(m, l);
        size_t rows = dec ? B * a->k : B, lo, hi;
        share(L->out, t, &lo, &hi);
        if (L->has_act)
            act_backward_cols(a->dh[l], a->h[l], rows, L->out, lo, hi, m->cfg.act);
        linear_backward_params(grads + L->w_off, grads + L->b_off, a->dh[l],
                               layer_input(m, a, l), dec ? a->ydec : a->y, rows,
                               L->in, L->n_onehot, L->out, lo, hi);
        float *dinp = l == first ? dinp_first : a->dh[l - 1];
        if (!dinp)
            continue;
        if (t->T > 1)
            input_grad_team(dinp, a->dh[l], m->params + L->w_off, rows, L->in,
                            L->n_onehot, L->out, lo, hi, (int)(l & 1), t);
        else
            linear_backward_input(dinp, a->dh[l], m->params + L->w_off, rows, L->in,
                                  L->n_onehot, L->out, 0, L->in);
    }
    if (dinp_first)
        wait_all(t);
}

void mlp_backward_decoder(const model_net *m, model_acts *a, float *grads, size_t B,
                          const model_team *t)
{
    backward_layers(m, a, grads, B, out_of(m), head_of(m) + 1, a->dz, t);
}

void mlp_backward_encoder(const model_net *m, model_acts *a, float *grads, size_t B,
                          const model_team *t)
{
    /* From the head back to the input (whose gradient is unused). */
    backward_layers(m, a, grads, B, head_of(m), 0, NULL, t);
    /* The prior network, from the KL's gradient at its head; after a
     * barrier, as its head's partial input gradients take the scratch
     * set of the encoder's layer 1 (both odd), which others may still read. */
    if (m->cfg.n_classes) {
        wait_all(t);
        backward_layers(m, a, grads, B, prior_head_of(m), prior_hidden_of(m), NULL, t);
    }
}

void mlp_encode_top(const model_net *m, model_acts *a, size_t B, const model_team *t)
{
    forward_layers(m, a, B, enc2_of(m), head2_of(m), t);
}

void mlp_decode_top(const model_net *m, model_acts *a, size_t B, const model_team *t)
{
    forward_layers(m, a, B, pdec_of(m), phead_of(m), t);
}

void mlp_backward_decode_top(const model_net *m, model_acts *a, float *grads, size_t B,
                             const model_team *t)
{
    backward_layers(m, a, grads, B, phead_of(m), pdec_of(m), a->dz2, t);
}

void mlp_backward_encode_top(const model_net *m, model_acts *a, float *grads, size_t B,
                             const model_team *t)
{
    backward_layers(m, a, grads, B, head2_of(m), enc2_of(m), a->dz1q, t);
}

void mlp_backward_encode_top_input(const model_net *m, model_acts *a, size_t B)
{
    /* backward_layers without the parameters' gradients: layer by layer,
     * through the activation, into the previous layer's dh, and from the
     * first layer into dz1s. */
    size_t rows = B * a->k;
    for (size_t l = head2_of(m) + 1; l-- > enc2_of(m);) {
        const model_layer *L = &m->layer[l];
        if (L->has_act)
            act_backward(a->dh[l], a->h[l], rows * L->out, m->cfg.act);
        float *dinp = l == enc2_of(m) ? a->dz1s : a->dh[l - 1];
        linear_backward_input(dinp, a->dh[l], m->params + L->w_off, rows, L->in,
                              L->n_onehot, L->out, 0, L->in);
    }
}

float *mlp_top_head(const model_net *m, const model_acts *a, int grad)
{
    return two_layers(m) ? (grad ? a->dh : a->h)[head2_of(m)] : NULL;
}

float *mlp_top_prior(const model_net *m, const model_acts *a, int grad)
{
    return two_layers(m) ? (grad ? a->dh : a->h)[phead_of(m)] : NULL;
}

void mlp_share_params(const model_net *m, size_t l, size_t k, size_t T, size_t r[4])
{
    const model_layer *L = &m->layer[l];
    size_t lo, hi, row = L->in + L->n_onehot;
    unit_share(L->out, k, T, &lo, &hi);
    r[0] = L->w_off + lo * row;
    r[1] = L->w_off + hi * row;
    r[2] = L->b_off + lo;
    r[3] = L->b_off + hi;
}

size_t mlp_part_n(const model_net *m, size_t cap, size_t k)
{
    size_t most = 0;
    for (size_t l = 1; l < m->n_layers; l++) { /* layer 0's is never computed */
        size_t rows = is_decoder(m, l) ? cap * k : cap;
        if (rows * m->layer[l].in > most)
            most = rows * m->layer[l].in;
    }
    return most;
}
