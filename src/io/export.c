/* export.c - a model's weights as safetensors (see src/io/export.h).
 *
 * The tensors are listed once (export_tensors), in the order PyTorch's
 * state_dict gives the modules of scripts/vae_torch.py; the header and the
 * data are both written from that list, so their orders cannot disagree. */
#include "export.h"


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afile.h"

/* ===================================================================== */
/* The tensors                                                            */
/* ===================================================================== */

static export_tensor *add(export_tensor *t, size_t *n, const char *name, size_t off,
                          size_t ndim, size_t d0, size_t d1, size_t d2, size_t d3)
{
    export_tensor *e = &t[(*n)++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = EXPORT_F32;
    e->ndim = ndim;
    const size_t d[4] = {d0, d1, d2, d3};
    e->count = 1;
    for (size_t i = 0; i < ndim; i++)
        e->count *= e->shape[i] = d[i];
    e->off = off;
    return e;
}

/* A Linear: weight (out x in, PyTorch's layout and ours) then bias. */
static void add_linear(export_tensor *t, size_t *n, const char *prefix, const model_layer *L)
{
    char name[EXPORT_NAME_LEN];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(t, n, name, L->w_off, 2, L->out, L->in + L->n_onehot, 0, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(t, n, name, L->b_off, 1, L->out, 0, 0, 0);
}

/* A Conv2d (weight cout x cin x 4 x 4) or ConvTranspose2d (cin x cout x 4
 * x 4), its bias, and its BatchNorm2d at index bn of the same Sequential:
 * gamma, beta, the running averages (stored in that order at bn_off), and
 * the I64 count of the batches that moved them. */
static void add_block(export_tensor *t, size_t *n, const char *seq, size_t conv,
                      size_t bn, const model_block *k, uint64_t steps)
{
    char name[EXPORT_NAME_LEN];
    size_t rows = k->transposed ? k->cin : k->cout, cols = k->transposed ? k->cout : k->cin;
    snprintf(name, sizeof name, "%s.%zu.weight", seq, conv);
    add(t, n, name, k->w_off, 4, rows, cols, 4, 4);
    snprintf(name, sizeof name, "%s.%zu.bias", seq, conv);
    add(t, n, name, k->b_off, 1, k->cout, 0, 0, 0);
    if (!k->has_bn)
        return;
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    for (size_t p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "%s.%zu.%s", seq, bn, parts[p]);
        add(t, n, name, k->bn_off + p * k->cout, 1, k->cout, 0, 0, 0);
    }
    snprintf(name, sizeof name, "%s.%zu.num_batches_tracked", seq, bn);
    export_tensor *e = add(t, n, name, 0, 0, 0, 0, 0, 0);
    e->dtype = EXPORT_I64;
    e->value = steps > INT64_MAX ? INT64_MAX : (int64_t)steps;
}

size_t export_tensors(const model_net *m, const export_info *info, export_tensor *t)
{
    size_t n = 0, nh = m->cfg.n_hidden;
    char name[EXPORT_NAME_LEN];
    if (m->cfg.arch == MODEL_ARCH_CONV) {
        /* encoder: [Conv2d, act, BatchNorm2d] per block; then the two
         * Linears; decoder: the same with ConvTranspose2d, the last bare. */
        for (size_t b = 0; b < nh; b++)
            add_block(t, &n, "encoder", 3 * b, 3 * b + 2, &m->block[b], info->steps);
        add_linear(t, &n, "head", &m->layer[0]);
        add_linear(t, &n, "decoder_input", &m->layer[1]);
        for (size_t j = 0; j < nh; j++)
            add_block(t, &n, "decoder", 3 * j, 3 * j + 2, &m->block[nh + j], info->steps);
        return n;
    }
    /* MLP: Sequentials of [Linear, act] pairs, the decoder's last Linear
     * (the output) bare; layers in storage order (see vae.h). */
    for (size_t l = 0; l < nh; l++) {
        snprintf(name, sizeof name, "encoder.%zu", 2 * l);
        add_linear(t, &n, name, &m->layer[l]);
    }
    add_linear(t, &n, "head", &m->layer[nh]);
    for (size_t j = 0; j <= nh; j++) {
        snprintf(name, sizeof name, "decoder.%zu", 2 * j);
        add_linear(t, &n, name, &m->layer[nh + 1 + j]);
    }
    if (m->cfg.n_classes) {
        add_linear(t, &n, "prior.0", &m->layer[2 * nh + 2]);
        add_linear(t, &n, "prior.2", &m->layer[2 * nh + 3]);
    }
    if (m->cfg.z2_dim) {
        /* Two stochastic layers (never conditional): q(h2|h1) as encoder2
         * and head2, then p(h1|h2) as decoder2, whose last Linear is its
         * head [mu | logvar] of h1, bare as the decoder's output is. */
        size_t n2 = m->cfg.n_hidden2, first = 2 * nh + 2;
        for (size_t i = 0; i < n2; i++) {
            snprintf(name, sizeof name, "encoder2.%zu", 2 * i);
            add_linear(t, &n, name, &m->layer[first + i]);
        }
        add_linear(t, &n, "head2", &m->layer[first + n2]);
        for (size_t j = 0; j <= n2; j++) {
            snprintf(name, sizeof name, "decoder2.%zu", 2 * j);
            add_linear(t, &n, name, &m->layer[first + n2 + 1 + j]);
        }
    }
    return n;
}

/* ===================================================================== */
/* The header                                                             */
/* ===================================================================== */

/* A growing string; ok drops to 0 when memory runs out. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int ok;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf *b, const char *fmt, ...)
{
    if (!b->ok)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->ok = 0;
            return;
        }
        if (b->s && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap <= b->len + (size_t)k)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->ok = 0;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* "__metadata__": the architecture, as strings (safetensors allows no other
 * type there). Every name and value is plain ASCII without quotes. */
static void put_metadata(sbuf *b, const model_net *m, const export_info *info)
{
    const model_config *c = &m->cfg;
    put(b, "\"__metadata__\":{\"format\":\"pt\",\"vae_export\":\"1\",\"vae_version\":\"%s\","
        "\"arch\":\"%s\",\"x_dim\":\"%zu\",\"hidden\":\"", info->vae_version,
        enum_name(&model_arch_names, (int)c->arch), c->x_dim);
    for (size_t i = 0; i < c->n_hidden; i++)
        put(b, "%s%zu", i ? "," : "", c->hidden[i]);
    put(b, "\",\"latent\":\"%zu\"", c->z_dim);
    /* Two stochastic layers only: a one-layer file has neither key (and
     * stays the bytes it was before there were two-layer models). */
    if (c->z2_dim) {
        put(b, ",\"latent2\":\"%zu\",\"hidden2\":\"", c->z2_dim);
        for (size_t i = 0; i < c->n_hidden2; i++)
            put(b, "%s%zu", i ? "," : "", c->hidden2[i]);
        put(b, "\"");
    }
    put(b, ",\"activation\":\"%s\",\"likelihood\":\"%s\",\"n_classes\":\"%zu\","
        "\"height\":\"%zu\",\"width\":\"%zu\",\"channels\":\"%zu\"",
        enum_name(&model_act_names, (int)c->act), model_lik_name(c->likelihood), c->n_classes,
        c->height, c->width, c->channels);
    if (c->arch == MODEL_ARCH_CONV)
        put(b, ",\"pad_top\":\"%zu\",\"pad_left\":\"%zu\"", m->pad_top, m->pad_left);
    put(b, ",\"epochs\":\"%llu\"", (unsigned long long)info->epochs);
    for (size_t i = 0; i < info->n_meta; i++)
        put(b, ",\"%s\":\"%s\"", info->meta_keys[i], info->meta_values[i]);
    put(b, "}");
}

int export_header(const model_net *m, const export_info *info, char **json,
                  size_t *len, size_t *data_len, err_msg *err)
{
    export_tensor t[EXPORT_MAX_TENSORS];
    size_t n = export_tensors(m, info, t), at = 0;
    sbuf b = {NULL, 0, 0, 1};
    put(&b, "{");
    put_metadata(&b, m, info);
    for (size_t i = 0; i < n; i++) {
        /* Sizes are bounded by model_config_check: no overflow here. */
        size_t bytes = t[i].count * (t[i].dtype == EXPORT_I64 ? 8 : 4);
        put(&b, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
            t[i].dtype == EXPORT_I64 ? "I64" : "F32");
        for (size_t d = 0; d < t[i].ndim; d++)
            put(&b, "%s%zu", d ? "," : "", t[i].shape[d]);
        put(&b, "],\"data_offsets\":[%zu,%zu]}", at, at + bytes);
        at += bytes;
    }
    put(&b, "}");
    /* Pad with spaces (JSON whitespace) so the data starts 8-byte aligned,
     * as the safetensors writers do. */
    while (b.ok && (8 + b.len) % 8)
        put(&b, " ");
    if (!b.ok) {
        free(b.s);
        return err_set(err, "out of memory for the safetensors header");
    }
    *json = b.s;
    *len = b.len;
    *data_len = at;
    return 0;
}

/* ===================================================================== */
/* The file                                                               */
/* ===================================================================== */

/* n little-endian bytes of v. */
static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The n floats at x, little-endian whatever the host's order. */
static int write_floats(FILE *fp, const float *x, size_t n)
{
    unsigned char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) {
            uint32_t v;
            memcpy(&v, &x[i], 4);
            put_le(buf + 4 * i, v, 4);
        }
        if (fwrite(buf, 4, k, fp) != k)
            return -1;
        x += k;
        n -= k;
    }
    return 0;
}

int export_write(const char *path, const model_net *m, const export_info *info,
                 err_msg *err)
{
    char *json;
    size_t len, data_len;
    if (export_header(m, info, &json, &len, &data_len, err))
        return -1;
    export_tensor t[EXPORT_MAX_TENSORS];
    size_t n = export_tensors(m, info, t);
    afile f;
    if (afile_open(&f, path, err)) {
        free(json);
        return -1;
    }
    unsigned char head[8];
    put_le(head, len, 8);
    int bad = fwrite(head, 1, 8, f.fp) != 8 || fwrite(json, 1, len, f.fp) != len;
    free(json);
    for (size_t i = 0; i < n && !bad; i++) {
        if (t[i].dtype == EXPORT_I64) {
            unsigned char v[8];
            put_le(v, (uint64_t)t[i].value, 8);
            bad = fwrite(v, 1, 8, f.fp) != 8;
        } else {
            bad = write_floats(f.fp, m->params + t[i].off, t[i].count);
        }
    }
    if (bad) {
        int e = afile_write_errno(&f);
        if (!e)
            e = errno ? errno : EIO;
        afile_abort(&f);
        return err_sys(err, e, "cannot write %s", path);
    }
    return afile_commit(&f, err);
}
