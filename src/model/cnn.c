/* cnn.c - the convolutional VAE (see src/model/cnn.h and src/model/vae.h).
 *
 * The whole batch goes through each layer at once: activations are CNHW,
 * so every convolution is one sgemm of (CO x CI*16) by (CI*16 x N*H*W)
 * around an im2col, and the linear head and decoder input are sgemms over
 * the flattened batch. With k draws per image the encoder runs on the B
 * images and the decoder on their B * k draws (row i*k+j: image i's j-th),
 * so the decoder's BatchNorm takes its statistics over all B * k rows.
 * BatchNorm in training mode shares its sums across the thread team
 * (a->reduce), so the statistics are the whole batch's. */
#include "cnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "linear.h"

#define KK (CONV_K * CONV_K)

/* ===================================================================== */
/* Layout                                                                 */
/* ===================================================================== */

/* The padded size of an image side of n pixels for nh blocks: 2^nh times
 * the bottom's side, max(4, ceil(n / 2^nh)). */
static size_t padded(size_t n, size_t nh)
{
    size_t f = (size_t)1 << nh, bottom = (n + f - 1) / f;
    return (bottom < 4 ? 4 : bottom) * f;
}

int cnn_config_check(const model_config *cfg, err_msg *err)
{
    size_t nh = cfg->n_hidden;
    if (cfg->height > 4096 || cfg->width > 4096)
        return err_set(err, "%zux%zu images: the conv VAE takes at most 4096x4096",
                       cfg->height, cfg->width);
    for (size_t i = 0; i < nh; i++)
        if (cfg->hidden[i] > CNN_MAX_CHANNELS)
            return err_set(err, "%zu channels: at most %d", cfg->hidden[i],
                           CNN_MAX_CHANNELS);
    if (cfg->n_classes)
        return err_set(err, "the conv VAE is not conditional");
    return 0;
}

void cnn_layout(model_net *m)
{
    const model_config *c = &m->cfg;
    size_t nh = c->n_hidden, off = 0;
    size_t PH = padded(c->height, nh), PW = padded(c->width, nh);
    m->pad_top = (PH - c->height) / 2;
    m->pad_left = (PW - c->width) / 2;
    size_t F = c->hidden[nh - 1] * (PH >> nh) * (PW >> nh); /* the last block's C x BH x BW */
    m->n_blocks = 2 * nh;
    /* Encoder: PH -> PH/2 -> ... -> BH; decoder: BH -> ... -> PH (likewise W). */
    for (size_t b = 0; b < 2 * nh; b++) {
        model_block *k = &m->block[b];
        k->transposed = b >= nh;
        if (!k->transposed) {
            k->cin = b == 0 ? c->channels : c->hidden[b - 1];
            k->cout = c->hidden[b];
            k->h = PH >> b;
            k->w = PW >> b;
        } else {
            size_t j = b - nh; /* decoder block j: hidden[nh-1-j] -> hidden[nh-2-j] */
            k->cin = c->hidden[nh - 1 - j];
            k->cout = j + 1 < nh ? c->hidden[nh - 2 - j] : c->channels;
            k->h = (PH >> nh) << j;
            k->w = (PW >> nh) << j;
        }
        k->has_bn = b != 2 * nh - 1;
        k->w_off = off;
        off += k->cin * k->cout * KK;
        k->b_off = off;
        off += k->cout;
        k->bn_off = off;
        if (k->has_bn)
            off += 4 * k->cout;
    }
    /* The head (F -> 2z) and the decoder's input (z -> F), no activation. */
    m->n_layers = 2;
    const size_t ins[2] = {F, c->z_dim}, outs[2] = {2 * c->z_dim, F};
    for (size_t l = 0; l < 2; l++) {
        model_layer *L = &m->layer[l];
        L->in = ins[l];
        L->n_onehot = 0;
        L->out = outs[l];
        L->has_act = 0;
        L->w_off = off;
        off += L->in * L->out;
        L->b_off = off;
        off += L->out;
    }
    m->n_params = off;
}

static void uniform(float *x, size_t n, float bound, rng_state *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
}

void cnn_init_params(model_net *m, rng_state *rng)
{
    for (size_t b = 0; b < m->n_blocks; b++) {
        const model_block *k = &m->block[b];
        size_t fan_in = (k->transposed ? k->cout : k->cin) * KK;
        float bound = 1.0f / sqrtf((float)fan_in);
        uniform(m->params + k->w_off, k->cin * k->cout * KK, bound, rng);
        uniform(m->params + k->b_off, k->cout, bound, rng);
        if (k->has_bn) {
            float *bn = m->params + k->bn_off;
            for (size_t c = 0; c < k->cout; c++) {
                bn[c] = 1.0f;                /* gamma */
                bn[k->cout + c] = 0.0f;      /* beta */
                bn[2 * k->cout + c] = 0.0f;  /* running mean */
                bn[3 * k->cout + c] = 1.0f;  /* running variance */
            }
        }
    }
    for (size_t l = 0; l < 2; l++) {
        const model_layer *L = &m->layer[l];
        float bound = 1.0f / sqrtf((float)L->in);
        uniform(m->params + L->w_off, L->in * L->out, bound, rng);
        uniform(m->params + L->b_off, L->out, bound, rng);
    }
}

void cnn_init_glorot(model_net *m, rng_state *rng, float out_bias)
{
    for (size_t b = 0; b < m->n_blocks; b++) {
        const model_block *k = &m->block[b];
        float bound = sqrtf(6.0f / (float)((k->cin + k->cout) * KK));
        uniform(m->params + k->w_off, k->cin * k->cout * KK, bound, rng);
        for (size_t c = 0; c < k->cout; c++)
            m->params[k->b_off + c] = b == m->n_blocks - 1 ? out_bias : 0.0f;
        if (k->has_bn) {
            float *bn = m->params + k->bn_off;
            for (size_t c = 0; c < k->cout; c++) {
                bn[c] = 1.0f, bn[k->cout + c] = 0.0f;
                bn[2 * k->cout + c] = 0.0f, bn[3 * k->cout + c] = 1.0f;
            }
        }
    }
    for (size_t l = 0; l < 2; l++) {
        const model_layer *L = &m->layer[l];
        float bound = sqrtf(6.0f / (float)(L->in + L->out));
        uniform(m->params + L->w_off, L->in * L->out, bound, rng);
        for (size_t i = 0; i < L->out; i++)
            m->params[L->b_off + i] = 0.0f;
    }
}

/* The pixels of one image of block b's output, and of its input. */
static size_t out_px(const model_block *k)
{
    return k->transposed ? 4 * k->h * k->w : (k->h / 2) * (k->w / 2);
}

static size_t in_px(const model_block *k)
{
    return k->h * k->w;
}

/* The pixels of one padded image (PH x PW): the first block's input. */
static size_t padded_px(const model_net *m)
{
    return in_px(&m->block[0]);
}

/* The pixels of one image at the bottom (BH x BW). */
static size_t bottom_px(const model_net *m)
{
    return out_px(&m->block[m->cfg.n_hidden - 1]);
}

/* *total += n * per; returns 0, or -1 if that overflows size_t. */
static int grow(size_t *total, size_t n, size_t per)
{
    size_t t;
    if (err_mul_size(n, per, &t) || t > SIZE_MAX - *total)
        return -1;
    *total += t;
    return 0;
}

int cnn_acts_init(model_acts *a, const model_net *shape, size_t cap, size_t k,
                  err_msg *err)
{
    const model_config *c = &shape->cfg;
    size_t PP = c->channels * padded_px(shape), F = shape->layer[1].out, Z = c->z_dim;
    size_t D = c->x_dim, nb = shape->n_blocks, rows;
    /* The encoder runs on cap images, the decoder on their rows = cap * k
     * draws. Per image: x, xin_buf, head/dhead, rec, kl, obj; xpad; the
     * encoder's block tensors; flat. Per row: logits/dlogits, eps/z/dz, wt,
     * rrec (k > 1); the decoder's block tensors; its linear output, that
     * unflattened, and a flat gradient. The two gradient buffers and the
     * im2col scratch serve the encoder and the decoder in turn, so each
     * takes the larger of the two's needs. Labels: a byte an image (and a
     * row, k > 1), four to a float. */
    size_t per_img = 2 * D + 4 * Z + 3 + PP + F;
    size_t per_row = 2 * D + 3 * Z + 1 + (k > 1) + 3 * F;
    size_t big_e = F, big_d = PP > F ? PP : F, col_e = 0, col_d = 0, cmax = 1;
    for (size_t b = 0; b < nb; b++) {
        const model_block *blk = &shape->block[b];
        size_t t = blk->cout * out_px(blk);
        size_t cb = blk->transposed ? blk->cout * KK * in_px(blk)
                                    : blk->cin * KK * out_px(blk);
        if (blk->transposed) {
            per_row += t * (blk->has_bn ? 3 : 1);
            big_d = t > big_d ? t : big_d;
            col_d = cb > col_d ? cb : col_d;
        } else {
            per_img += t * (blk->has_bn ? 3 : 1);
            big_e = t > big_e ? t : big_e;
            col_e = cb > col_e ? cb : col_e;
        }
        if (blk->cout > cmax)
            cmax = blk->cout;
    }
    size_t fixed = nb * cmax + 2 * (2 * cmax + 1); /* invstd; BatchNorm's doubles */
    size_t total = fixed, g_e = 0, g_d = 0, c_e = 0, c_d = 0;
    if (cap == 0 || err_mul_size(cap, k, &rows) || grow(&total, cap, per_img) ||
        grow(&total, rows, per_row) || grow(&g_e, cap, big_e) || grow(&g_d, rows, big_d) ||
        grow(&c_e, cap, col_e) || grow(&c_d, rows, col_d) ||
        grow(&total, 2, g_e > g_d ? g_e : g_d) || grow(&total, 1, c_e > c_d ? c_e : c_d) ||
        grow(&total, 1, cap / 4 + 1 + (k > 1 ? rows / 4 + 1 : 0)) ||
        total > SIZE_MAX / sizeof(float)) {
        if (k == 1)
            return err_set(err, "batch of %zu images is too large", cap);
        return err_set(err, "batch of %zu images with %zu draws each is too large "
                       "(the decoder runs on batch x draws rows)", cap, k);
    }
    a->mem = malloc(total * sizeof(float));
    if (!a->mem)
        return err_set(err, "out of memory for activations of %zu images x %zu draws "
                       "(%.1f GB)", cap, k, 4e-9 * (double)total);
    a->cap = cap;
    a->k = k;
    float *p = a->mem;
    model_cnn_acts *n = &a->cnn;
    /* doubles first, for their alignment */
    n->scratch = (double *)(void *)p, p += 2 * (2 * cmax + 1);
    a->x = p, p += cap * D;
    a->xin_buf = p, p += cap * D;
    a->xin = a->x;
    a->head = p, p += cap * 2 * Z;
    a->dhead = p, p += cap * 2 * Z;
    a->logits = p, p += rows * D;
    a->dlogits = p, p += rows * D;
    a->eps = p, p += rows * Z;
    a->z = p, p += rows * Z;
    a->dz = p, p += rows * Z;
    a->rec = p, p += cap;
    a->kl = p, p += cap;
    n->xpad = p, p += cap * PP;
    for (size_t b = 0; b < nb; b++) {
        const model_block *blk = &shape->block[b];
        size_t t = (blk->transposed ? rows : cap) * blk->cout * out_px(blk);
        n->act[b] = p, p += t;
        if (blk->has_bn) {
            n->xhat[b] = p, p += t;
            n->out[b] = p, p += t;
        } else {
            n->out[b] = n->act[b];
        }
        n->invstd[b] = p, p += cmax;
    }
    n->flat = p, p += cap * F;
    n->dflat = p, p += rows * F;
    n->unflat = p, p += rows * F;
    n->gflat = p, p += rows * F;
    n->g0 = p, p += g_e > g_d ? g_e : g_d;
    n->g1 = p, p += g_e > g_d ? g_e : g_d;
    n->col = p, p += c_e > c_d ? c_e : c_d;
    a->obj = p, p += cap;
    a->wt = p, p += rows;
    a->rrec = k == 1 ? a->rec : p;
    p += k > 1 ? rows : 0;
    a->y = (uint8_t *)p, p += cap / 4 + 1;
    memset(a->y, 0, cap);
    a->ydec = k == 1 ? a->y : (uint8_t *)p;
    memset(a->ydec, 0, rows);
    return 0;
}

/* ===================================================================== */
/* Passes                                                                 */
/* ===================================================================== */

/* (C, N, HW) -> (N, C*HW), PyTorch's flattening order per image. */
static void flatten(float *flat, const float *t, size_t C, size_t N, size_t HW)
{
    for (size_t c = 0; c < C; c++)
        for (size_t n = 0; n < N; n++)
            memcpy(flat + (n * C + c) * HW, t + (c * N + n) * HW, HW * sizeof(float));
}

/* (N, C*HW) -> (C, N, HW), flatten's inverse. */
static void unflatten(float *t, const float *flat, size_t C, size_t N, size_t HW)
{
    for (size_t c = 0; c < C; c++)
        for (size_t n = 0; n < N; n++)
            memcpy(t + (c * N + n) * HW, flat + (n * C + c) * HW, HW * sizeof(float));
}

/* Pads B images (B, H, W, C: a->xin's rows) into (C, B, PH, PW), zeros
 * around them. */
static void pad_images(float *xpad, const float *x, const model_net *m, size_t B)
{
    const model_block *k = &m->block[0];
    size_t H = m->cfg.height, W = m->cfg.width, C = m->cfg.channels;
    size_t PH = k->h, PW = k->w, top = m->pad_top, left = m->pad_left;
    memset(xpad, 0, C * B * PH * PW * sizeof(float));
    for (size_t i = 0; i < B; i++)
        for (size_t r = 0; r < H; r++) {
            const float *src = x + (i * H + r) * W * C;
            if (C == 1) {
                memcpy(xpad + i * PH * PW + (r + top) * PW + left, src, W * sizeof(float));
                continue;
            }
            for (size_t c = 0; c < C; c++) {
                float *dst = xpad + ((c * B + i) * PH + r + top) * PW + left;
                for (size_t q = 0; q < W; q++)
                    dst[q] = src[q * C + c];
            }
        }
}

/* Crops R images (C, R, PH, PW) back to rows of (H, W, C) in out, or with
 * to_padded, pad_images' step for the decoder's gradient: out (C, R, PH,
 * PW), zeros around, from rows in. */
static void crop_images(float *out, const float *in, const model_net *m, size_t R,
                        int to_padded)
{
    const model_block *k = &m->block[2 * m->cfg.n_hidden - 1];
    size_t H = m->cfg.height, W = m->cfg.width, C = m->cfg.channels;
    size_t PH = 2 * k->h, PW = 2 * k->w, top = m->pad_top, left = m->pad_left;
    if (to_padded)
        memset(out, 0, C * R * PH * PW * sizeof(float));
    for (size_t i = 0; i < R; i++)
        for (size_t r = 0; r < H; r++)
            for (size_t c = 0; c < C; c++) {
                size_t row = (i * H + r) * W * C, pad = ((c * R + i) * PH + r + top) * PW + left;
                if (C == 1 && !to_padded) {
                    memcpy(out + row, in + pad, W * sizeof(float));
                } else if (C == 1) {
                    memcpy(out + pad, in + row, W * sizeof(float));
                } else if (!to_padded) {
                    for (size_t q = 0; q < W; q++)
                        out[row + q * C + c] = in[pad + q];
                } else {
                    for (size_t q = 0; q < W; q++)
                        out[pad + q] = in[row + q * C + c];
                }
            }
}

/* BatchNorm's four vectors of block k. */
static float *bn_param(const model_net *m, const model_block *k, int which)
{
    return m->params + k->bn_off + (size_t)which * k->cout;
}

/* Block b forward from in (cin, B, h*w) into a->cnn.act/out. */
static void block_forward(const model_net *m, model_acts *a, size_t b,
                          const float *in, size_t B)
{
    const model_block *k = &m->block[b];
    model_cnn_acts *n = &a->cnn;
    const float *w = m->params + k->w_off, *bias = m->params + k->b_off;
    if (k->transposed)
        convt_forward(n->act[b], n->col, in, w, bias, B, k->cin, k->cout, k->h, k->w);
    else
        conv_forward(n->act[b], n->col, in, w, bias, B, k->cin, k->cout, k->h, k->w);
    if (!k->has_bn)
        return;
    size_t os = out_px(k);
    act_forward(n->act[b], k->cout * B * os, m->cfg.act);
    if (a->training)
        bn_forward_train(n->out[b], n->xhat[b], n->invstd[b], n->act[b],
                         bn_param(m, k, 0), bn_param(m, k, 1), bn_param(m, k, 2),
                         bn_param(m, k, 3), k->cout, B, os, &a->reduce, n->scratch);
    else
        bn_forward_eval(n->out[b], n->act[b], bn_param(m, k, 0), bn_param(m, k, 1),
                        bn_param(m, k, 2), bn_param(m, k, 3), k->cout, B * os);
}

/* Block b backward: g (cout, B, out_px) is d loss / d out[b]; writes d loss
 * / d in into gin (unless NULL) and the block's gradients into grads. */
static void block_backward(const model_net *m, model_acts *a, size_t b,
                           const float *in, float *g, float *gin, float *grads,
                           size_t B)
{
    const model_block *k = &m->block[b];
    model_cnn_acts *n = &a->cnn;
    size_t os = out_px(k);
    if (k->has_bn) {
        float *dbn = grads + k->bn_off;
        bn_backward(g, dbn, dbn + k->cout, n->xhat[b], n->invstd[b], bn_param(m, k, 0),
                    k->cout, B, os, &a->reduce, n->scratch);
        /* the running averages are not trained */
        memset(dbn + 2 * k->cout, 0, 2 * k->cout * sizeof(float));
        act_backward(g, n->act[b], k->cout * B * os, m->cfg.act);
    }
    const float *w = m->params + k->w_off;
    if (k->transposed)
        convt_backward(gin, grads + k->w_off, grads + k->b_off, n->col, g, in, w, B,
                       k->cin, k->cout, k->h, k->w);
    else
        conv_backward(gin, grads + k->w_off, grads + k->b_off, n->col, g, in, w, B,
                      k->cin, k->cout, k->h, k->w);
}

void cnn_encode(const model_net *m, model_acts *a, size_t B)
{
    model_cnn_acts *n = &a->cnn;
    size_t nh = m->cfg.n_hidden;
    pad_images(n->xpad, a->xin, m, B);
    const float *in = n->xpad;
    for (size_t b = 0; b < nh; b++) {
        block_forward(m, a, b, in, B);
        in = n->out[b];
    }
    flatten(n->flat, in, m->cfg.hidden[nh - 1], B, bottom_px(m));
    const model_layer *L = &m->layer[0];
    linear_forward(a->head, n->flat, m->params + L->w_off, m->params + L->b_off, NULL,
                   B, L->in, 0, L->out, 0, m->cfg.act);
}

void cnn_decode(const model_net *m, model_acts *a, size_t B)
{
    model_cnn_acts *n = &a->cnn;
    size_t nh = m->cfg.n_hidden, R = B * a->k; /* one row a draw */
    const model_layer *L = &m->layer[1];
    linear_forward(n->dflat, a->z, m->params + L->w_off, m->params + L->b_off, NULL, R,
                   L->in, 0, L->out, 0, m->cfg.act);
    unflatten(n->unflat, n->dflat, m->cfg.hidden[nh - 1], R, bottom_px(m));
    const float *in = n->unflat;
    for (size_t b = nh; b < 2 * nh; b++) {
        block_forward(m, a, b, in, R);
        in = n->out[b];
    }
    /* Crop the PH x PW output back to H x W: the logits. */
    crop_images(a->logits, in, m, R, 0);
}

void cnn_backward_decoder(const model_net *m, model_acts *a, float *grads, size_t B)
{
    model_cnn_acts *n = &a->cnn;
    size_t nh = m->cfg.n_hidden, R = B * a->k;
    /* The crop's backward: the gradient inside, zeros on the border. */
    float *g = n->g0, *other = n->g1;
    crop_images(g, a->dlogits, m, R, 1);
    for (size_t b = 2 * nh; b-- > nh;) {
        const float *in = b == nh ? n->unflat : n->out[b - 1];
        block_backward(m, a, b, in, g, other, grads, R);
        float *t = g;
        g = other;
        other = t;
    }
    flatten(n->gflat, g, m->cfg.hidden[nh - 1], R, bottom_px(m));
    const model_layer *L = &m->layer[1];
    linear_backward(a->dz, grads + L->w_off, grads + L->b_off, n->gflat, a->z,
                    m->params + L->w_off, NULL, R, L->in, 0, L->out);
}

void cnn_backward_encoder(const model_net *m, model_acts *a, float *grads, size_t B)
{
    model_cnn_acts *n = &a->cnn;
    size_t nh = m->cfg.n_hidden;
    const model_layer *L = &m->layer[0];
    linear_backward(n->gflat, grads + L->w_off, grads + L->b_off, a->dhead, n->flat,
                    m->params + L->w_off, NULL, B, L->in, 0, L->out);
    float *g = n->g0, *other = n->g1;
    unflatten(g, n->gflat, m->cfg.hidden[nh - 1], B, bottom_px(m));
    for (size_t b = nh; b-- > 0;) {
        const float *in = b == 0 ? n->xpad : n->out[b - 1];
        block_backward(m, a, b, in, g, b == 0 ? NULL : other, grads, B);
        float *t = g;
        g = other;
        other = t;
    }
}
