/* vae.c - libvae: the calls of include/vae.h over the model (model.h), its
 * checkpoint (ckpt.h) and the passes the commands make (infer.h). Each call
 * wraps the caller's images as a data set and runs what the matching vae
 * command runs, on the calling thread (the library never starts the thread
 * team), so the numbers are the command's with --threads 1. */
#define _POSIX_C_SOURCE 200809L
#include "vae.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "infer.h"
#include "model.h"
#include "settings.h"
#include "shard.h"

struct vae {
    model_net m;
    ckpt_train tr;
    idx_view view; /* how the commands see test images: binarized or not */
    vae_info info;
};

const char *vae_version(void)
{
    return VAE_VERSION_STRING;
}

/* ---- errors --------------------------------------------------------------- */

/* Fills err (if any) with code and the message; returns -1. */
static int fail(vae_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(vae_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int ok(vae_error *err)
{
    if (err) {
        err->code = VAE_OK;
        err->message[0] = '\0';
    }
    return 0;
}

/* ---- a model -------------------------------------------------------------- */

int vae_load(const char *path, vae **out, vae_error *err)
{
    if (!out)
        return fail(err, VAE_EARG, "vae_load: out is NULL");
    *out = NULL;
    if (!path)
        return fail(err, VAE_EARG, "vae_load: path is NULL");
    struct vae *v = calloc(1, sizeof *v);
    if (!v)
        return fail(err, VAE_ENOMEM, "vae_load: out of memory");
    err_msg e;
    if (ckpt_load_model(path, &v->m, &v->tr, &e)) {
        free(v);
        return fail(err, VAE_ELOAD, "%s", e.text);
    }
    model_config c = v->m.cfg;
    model_config_shape(&c); /* older checkpoints leave the shape unset */
    v->info.width = c.width;
    v->info.height = c.height;
    v->info.channels = c.channels;
    v->info.pixels = c.x_dim;
    v->info.latent = c.z_dim;
    v->info.latent2 = c.z2_dim;
    v->info.classes = c.n_classes;
    v->info.arch = enum_name(&model_arch_names, (int)c.arch);
    v->info.likelihood = model_lik_name(c.likelihood);
    v->info.binarized = v->tr.set.binarize != TRAIN_BIN_NONE;
    v->view = infer_test_view(v->tr.set.binarize);
    *out = v;
    return ok(err);
}

void vae_free(vae *m)
{
    if (!m)
        return;
    model_free(&m->m);
    free(m);
}

const vae_info *vae_describe(const vae *m)
{
    return m ? &m->info : NULL;
}

/* ---- checks --------------------------------------------------------------- */

/* n * per * size into *bytes; returns 0, or -1 when that overflows. */
static int size_of(size_t n, size_t per, size_t size, size_t *bytes)
{
    return err_mul_size(n, per, bytes) || err_mul_size(*bytes, size, bytes);
}

/* The labels of a conditional model's n images are given and below its
 * classes; other models ignore them. */
static int check_labels(const vae *m, const char *call, const uint8_t *labels, size_t n,
                        vae_error *err)
{
    size_t C = m->info.classes;
    if (!C)
        return 0;
    if (!labels && n)
        return fail(err, VAE_EARG, "%s: labels is NULL: the model is conditional "
                    "(labels 0 to %zu)", call, C - 1);
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= C)
            return fail(err, VAE_EARG, "%s: label %u of image %zu is out of range: the "
                        "model knows labels 0 to %zu", call, labels[i], i, C - 1);
    return 0;
}

/* The common checks of a call on m: the model and the output. */
static int check_call(const vae *m, const char *call, const void *out, const char *out_name,
                      vae_error *err)
{
    if (!m)
        return fail(err, VAE_EARG, "%s: the model is NULL", call);
    if (!out)
        return fail(err, VAE_EARG, "%s: %s is NULL", call, out_name);
    return 0;
}

/* n latent codes of `width` floats each, all finite. */
static int check_codes(const char *call, const float *z, size_t n, size_t width,
                       vae_error *err)
{
    size_t bytes;
    if (size_of(n, width, sizeof *z, &bytes))
        return fail(err, VAE_EARG, "%s: %zu codes are too many", call, n);
    if (!z && n)
        return fail(err, VAE_EARG, "%s: z is NULL", call);
    for (size_t i = 0; i < n * width; i++)
        if (!isfinite(z[i]))
            return fail(err, VAE_EARG, "%s: code %zu, value %zu is not a finite number",
                        call, i / width, i % width);
    return 0;
}

/* A data set over the caller's images (and labels, or zeros: the passes
 * read a label for every image). *zeros is what to free afterwards.
 * Checks the images: present, the model's size, a known type, floats in
 * [0, 1]. */
static int wrap_images(const vae *m, const char *call, const vae_images *im, idx_set *set,
                       uint8_t **zeros, vae_error *err)
{
    *zeros = NULL;
    memset(set, 0, sizeof *set);
    if (!im)
        return fail(err, VAE_EARG, "%s: images is NULL", call);
    const vae_info *f = &m->info;
    size_t n = im->n, D = f->pixels, bytes;
    if (im->type != VAE_F32 && im->type != VAE_U8)
        return fail(err, VAE_EARG, "%s: images->type %d is neither VAE_F32 nor VAE_U8", call,
                    (int)im->type);
    if (im->width != f->width || im->height != f->height || im->channels != f->channels)
        return fail(err, VAE_EARG, "%s: the images are %zu x %zu x %zu (width x height x "
                    "channels); the model's are %zu x %zu x %zu", call, im->width,
                    im->height, im->channels, f->width, f->height, f->channels);
    if (!im->data && n)
        return fail(err, VAE_EARG, "%s: images->data is NULL", call);
    if (size_of(n, D, sizeof(float), &bytes))
        return fail(err, VAE_EARG, "%s: %zu images of %zu values are too many", call, n, D);
    if (check_labels(m, call, im->labels, n, err))
        return -1;
    if (im->type == VAE_F32) {
        const float *x = im->data;
        for (size_t i = 0; i < n * D; i++)
            if (!(x[i] >= 0.0f && x[i] <= 1.0f))
                return fail(err, VAE_EARG, "%s: image %zu, value %zu is %g: VAE_F32 values "
                            "are 0 to 1", call, i / D, i % D, (double)x[i]);
        set->values = x;
    } else {
        set->images = (uint8_t *)im->data; /* only read */
    }
    if (!f->classes && n && !(*zeros = calloc(n, 1)))
        return fail(err, VAE_ENOMEM, "%s: out of memory", call);
    set->labels = f->classes ? (uint8_t *)im->labels : *zeros;
    set->n = n;
    set->rows = f->height;
    set->cols = f->width;
    set->channels = f->channels;
    return 0;
}

/* Activations for pictures, as the commands take them. */
static int picture_acts(const vae *m, const char *call, model_acts *a, vae_error *err)
{
    size_t cap = m->m.cfg.arch == MODEL_ARCH_CONV ? INFER_CONV_CAP : INFER_PICTURE_CAP;
    err_msg e;
    if (model_acts_init(a, &m->m.cfg, cap, &e))
        return fail(err, VAE_ENOMEM, "%s: %s", call, e.text);
    return 0;
}

/* The activations of passes over a data set, as vae encode and vae score
 * take them: the default --batch images at a time, on this thread. */
static int data_acts(const vae *m, const char *call, shard_set *s, vae_error *err)
{
    shard_spec spec = {.cap = settings_defaults().batch};
    err_msg e;
    if (shard_init(s, &m->m, &spec, &e))
        return fail(err, VAE_ENOMEM, "%s: %s", call, e.text);
    return 0;
}

/* ---- using it ------------------------------------------------------------- */

int vae_encode(const vae *m, const vae_images *images, float *mu, float *logvar,
               vae_error *err)
{
    const char *call = "vae_encode";
    idx_set set;
    uint8_t *zeros;
    if (check_call(m, call, mu, "mu", err) || wrap_images(m, call, images, &set, &zeros, err))
        return -1;
    size_t n = set.n;
    if (n == 0)
        return ok(err);
    size_t Z = m->info.latent, Z2 = m->info.latent2, W = Z + Z2;
    shard_set s = {0};
    model_acts a = {0};
    /* h1's, then h2's, each n x its size; copied into the rows of W. */
    size_t bytes;
    float *buf = size_of(n, 2 * W, sizeof *buf, &bytes) ? NULL : malloc(bytes);
    int rc = -1;
    if (!buf)
        fail(err, VAE_ENOMEM, "%s: out of memory for %zu codes", call, n);
    else if (data_acts(m, call, &s, err) || (Z2 && picture_acts(m, call, &a, err)))
        ; /* said */
    else {
        float *mu1 = buf, *lv1 = mu1 + n * Z, *mu2 = lv1 + n * Z, *lv2 = mu2 + n * Z2;
        infer_per_image(&m->m, &s, &set, &m->view, settings_defaults().seed, mu1, lv1, NULL,
                        NULL);
        if (Z2) /* q(h2|h1) at h1's mean, as vae encode */
            infer_top_means(&m->m, &a, &set, &m->view, mu2, lv2);
        for (size_t i = 0; i < n; i++) {
            memcpy(mu + i * W, mu1 + i * Z, Z * sizeof *mu);
            memcpy(mu + i * W + Z, mu2 + i * Z2, Z2 * sizeof *mu);
            if (logvar) {
                memcpy(logvar + i * W, lv1 + i * Z, Z * sizeof *mu);
                memcpy(logvar + i * W + Z, lv2 + i * Z2, Z2 * sizeof *mu);
            }
        }
        rc = ok(err);
    }
    free(buf);
    shard_free(&s);
    model_acts_free(&a);
    free(zeros);
    return rc;
}

int vae_decode(const vae *m, const float *z, size_t n, const uint8_t *labels, float *out,
               vae_error *err)
{
    const char *call = "vae_decode";
    size_t bytes, P = m ? m->info.pixels : 0;
    if (check_call(m, call, out, "out", err))
        return -1;
    /* The sizes before the codes are read. */
    if (size_of(n, P, sizeof *out, &bytes))
        return fail(err, VAE_EARG, "%s: %zu images are too many", call, n);
    if (check_codes(call, z, n, m->info.latent, err) || check_labels(m, call, labels, n, err))
        return -1;
    if (n == 0)
        return ok(err);
    model_acts a = {0};
    if (picture_acts(m, call, &a, err))
        return -1;
    infer_decode_means(&m->m, &a, z, m->info.classes ? labels : NULL, n, out);
    model_acts_free(&a);
    /* Finite codes so large (|z| near FLT_MAX) that the decoder's sums
     * overflow give NaN pixels: refused, not returned. */
    for (size_t i = 0; i < n * P; i++)
        if (isnan(out[i]))
            return fail(err, VAE_EARG, "%s: code %zu is too large to decode (the decoder "
                        "overflows float)", call, i / P);
    return ok(err);
}

int vae_sample(const vae *m, size_t n, uint64_t seed, const uint8_t *labels, float *out,
               vae_error *err)
{
    const char *call = "vae_sample";
    if (check_call(m, call, out, "out", err))
        return -1;
    /* The noise of each draw, then its code, as vae sample. */
    size_t dim = infer_prior_dim(&m->m), Z = m->info.latent, bytes;
    if (size_of(n, m->info.pixels, sizeof *out, &bytes) ||
        size_of(n, dim + Z, sizeof(float), &bytes))
        return fail(err, VAE_EARG, "%s: %zu samples are too many", call, n);
    if (check_labels(m, call, labels, n, err))
        return -1;
    if (n == 0)
        return ok(err);
    float *eps = malloc(bytes);
    model_acts a = {0};
    int rc = -1;
    if (!eps)
        fail(err, VAE_ENOMEM, "%s: out of memory for %zu samples", call, n);
    else if (picture_acts(m, call, &a, err) == 0) {
        const uint8_t *y = m->info.classes ? labels : NULL;
        infer_prior_draws(eps, n, dim, seed);
        infer_prior_z(&m->m, &a, eps, y, n, eps + n * dim);
        infer_decode_means(&m->m, &a, eps + n * dim, y, n, out);
        rc = ok(err);
    }
    free(eps);
    model_acts_free(&a);
    return rc;
}

int vae_reconstruct(const vae *m, const vae_images *images, float *out, vae_error *err)
{
    const char *call = "vae_reconstruct";
    idx_set set;
    uint8_t *zeros;
    if (check_call(m, call, out, "out", err) || wrap_images(m, call, images, &set, &zeros, err))
        return -1;
    size_t n = set.n;
    model_acts a = {0};
    int rc = -1;
    if (n == 0) {
        rc = ok(err);
    } else if (picture_acts(m, call, &a, err) == 0) {
        infer_recon_means(&m->m, &a, &set, &m->view, n, NULL, out, m->info.pixels);
        rc = ok(err);
    }
    model_acts_free(&a);
    free(zeros);
    return rc;
}

int vae_score(const vae *m, const vae_images *images, size_t k, uint64_t seed,
              double *score, vae_error *err)
{
    const char *call = "vae_score";
    if (check_call(m, call, score, "score", err))
        return -1;
    if (k > INFER_MAX_IW)
        return fail(err, VAE_EARG, "%s: k = %zu draws an image: at most %d", call, k,
                    INFER_MAX_IW);
    idx_set set;
    uint8_t *zeros;
    if (wrap_images(m, call, images, &set, &zeros, err))
        return -1;
    size_t n = set.n;
    err_msg e;
    shard_set s = {0};
    float *rk = NULL;
    int rc = -1;
    if (n == 0) {
        rc = ok(err);
    } else if (k > 0) { /* the bound, as vae score --iw k */
        if (infer_iw_images(&m->m, &set, &m->view, k, seed, score, &e))
            fail(err, VAE_ENOMEM, "%s: %s", call, e.text);
        else
            rc = ok(err);
    } else if (!(rk = calloc(n, 2 * sizeof *rk))) {
        fail(err, VAE_ENOMEM, "%s: out of memory for %zu scores", call, n);
    } else if (data_acts(m, call, &s, err) == 0) {
        /* -log p(x|z) and the KL, added in double as vae score's column. */
        infer_per_image(&m->m, &s, &set, &m->view, seed, NULL, NULL, rk, rk + n);
        for (size_t i = 0; i < n; i++)
            score[i] = (double)rk[i] + rk[n + i];
        rc = ok(err);
    }
    free(rk);
    shard_free(&s);
    free(zeros);
    return rc;
}
