/* ckpt.c - checkpoint writer and validating reader (see docs/checkpoint.md).
 *
 * Layout: magic (8) | version u32 | header bytes u32 | header (u64/f64
 * fields) | params f32[n] | adam_m f32[n] | adam_v f32[n] | crc32 u32.
 * Writes version 7; reads 6 (without the second stochastic layer), 5
 * (without the gradient estimator either), 4 (without the image shape
 * either), 3 (without the
 * training controls either) and 2 (without the data fingerprint either). */
#define _POSIX_C_SOURCE 200809L
#include "ckpt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "adam.h"
#include "afile.h"
#include "ckpt_fields.h"

#define HEADER_BYTES (H_COUNT * 8)
#define PREFIX_BYTES 16 /* magic, version, header size */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void put_u64(unsigned char *h, size_t field, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        h[field * 8 + (size_t)i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *h, size_t field)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)h[field * 8 + (size_t)i] << (8 * i);
    return v;
}

static void put_f64(unsigned char *h, size_t field, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(h, field, v);
}

static double get_f64(const unsigned char *h, size_t field)
{
    uint64_t v = get_u64(h, field);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* An RNG state takes 6 fields: s[0..3], the spare normal's bits, the flag. */
static void put_rng(unsigned char *h, size_t field, const rng_state *r)
{
    uint32_t spare;
    memcpy(&spare, &r->spare, sizeof spare);
    for (int i = 0; i < 4; i++)
        put_u64(h, field + (size_t)i, r->s[i]);
    put_u64(h, field + 4, spare);
    put_u64(h, field + 5, r->has_spare);
}

static int get_rng(const unsigned char *h, size_t field, rng_state *r)
{
    uint64_t any = 0;
    for (int i = 0; i < 4; i++)
        any |= r->s[i] = get_u64(h, field + (size_t)i);
    uint64_t spare = get_u64(h, field + 4), flag = get_u64(h, field + 5);
    if (!any || spare > UINT32_MAX || flag > 1)
        return -1;
    uint32_t s32 = (uint32_t)spare;
    memcpy(&r->spare, &s32, sizeof r->spare);
    r->has_spare = (uint32_t)flag;
    return 0;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Writes n floats little-endian, updating the running CRC. */
static int write_floats(FILE *fp, const float *x, size_t n, uLong *crc)
{
    unsigned char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        if (host_is_little_endian()) {
            memcpy(buf, x, k * 4);
        } else {
            for (size_t i = 0; i < k; i++) {
                uint32_t v;
                memcpy(&v, &x[i], 4);
                put_u32(buf + 4 * i, v);
            }
        }
        *crc = crc32(*crc, buf, (uInt)(k * 4));
        if (fwrite(buf, 4, k, fp) != k)
            return -1;
        x += k;
        n -= k;
    }
    return 0;
}

ckpt_train ckpt_train_defaults(void)
{
    ckpt_train t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < SETTING_COUNT; i++) {
        double v = SETTINGS[i].unused;
        uint64_t bits = (uint64_t)v;
        if (SETTINGS[i].type == SETTING_REAL)
            memcpy(&bits, &v, sizeof bits);
        settings_from_bits(&t.set, (setting_id)i, bits);
    }
    return t;
}

/* The three float arrays after the header, as messages name them. */
static const char *const ARRAY_NAMES[3] = {"parameters", "Adam first moments",
                                           "Adam second moments"};

const char *ckpt_nonfinite(const float *params, const float *adam_m, const float *adam_v,
                           size_t n)
{
    const float *arrays[3] = {params, adam_m, adam_v};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(arrays[k][i]))
                return ARRAY_NAMES[k];
    return NULL;
}

int ckpt_save(const char *path, const model_net *m, const float *adam_m,
              const float *adam_v, const ckpt_train *t, err_msg *err)
{
    /* What the reader would refuse is never written. */
    const char *nonfinite = ckpt_nonfinite(m->params, adam_m, adam_v, m->n_params);
    if (nonfinite) {
        err_set(err, "%s: not written: the %s hold NaN or Inf", path, nonfinite);
        return CKPT_NONFINITE;
    }
    unsigned char pre[PREFIX_BYTES], h[HEADER_BYTES];
    memcpy(pre, CKPT_MAGIC, 8);
    put_u32(pre + 8, CKPT_VERSION);
    put_u32(pre + 12, HEADER_BYTES);
    memset(h, 0, sizeof h);
    const model_config *c = &m->cfg;
    put_u64(h, H_ARCH, (uint64_t)c->arch);
    put_u64(h, H_X_DIM, c->x_dim);
    put_u64(h, H_N_HIDDEN, c->n_hidden);
    for (size_t i = 0; i < MODEL_MAX_HIDDEN; i++)
        put_u64(h, H_HIDDEN0 + i, i < c->n_hidden ? c->hidden[i] : 0);
    put_u64(h, H_Z_DIM, c->z_dim);
    put_u64(h, H_ACT, (uint64_t)c->act);
    put_u64(h, H_LIKELIHOOD, (uint64_t)c->likelihood);
    put_u64(h, H_N_CLASSES, c->n_classes);
    put_u64(h, H_N_PARAMS, m->n_params);
    put_u64(h, H_HEIGHT, c->height);
    put_u64(h, H_WIDTH, c->width);
    put_u64(h, H_CHANNELS, c->channels);
    put_u64(h, H_Z2_DIM, c->z2_dim);
    put_u64(h, H_N_HIDDEN2, c->n_hidden2);
    for (size_t i = 0; i < MODEL_MAX_HIDDEN; i++)
        put_u64(h, H_HIDDEN2_0 + i, i < c->n_hidden2 ? c->hidden2[i] : 0);
    put_u64(h, H_EPOCH, t->epoch);
    put_u64(h, H_STEP, t->step);
    put_u64(h, H_ADAM_T, t->adam_t);
    put_rng(h, H_RNG_DATA, &t->rng_data);
    put_rng(h, H_RNG_NOISE, &t->rng_noise);
    put_f64(h, H_SUM_REC, t->sum_rec);
    put_f64(h, H_SUM_KL, t->sum_kl);
    put_u64(h, H_N_SEEN, t->n_seen);
    put_f64(h, H_SECONDS, t->seconds);
    put_u64(h, H_DATA_N, t->data.n);
    put_u64(h, H_DATA_ROWS, t->data.rows);
    put_u64(h, H_DATA_COLS, t->data.cols);
    put_u64(h, H_DATA_PIXELS_CRC, t->data.pixels_crc);
    put_u64(h, H_DATA_LABELS_CRC, t->data.labels_crc);
    put_u64(h, H_BEST_EPOCH, t->best_epoch);
    put_f64(h, H_BEST_LOSS, t->best_loss);
    put_f64(h, H_SUM_OBJ, t->sum_obj);
    for (int i = 0; i < SETTING_COUNT; i++) /* the settings, each in its row's field */
        put_u64(h, SETTINGS[i].field, settings_bits(&t->set, (setting_id)i));

    afile f;
    if (afile_open(&f, path, err))
        return -1;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, pre, sizeof pre);
    crc = crc32(crc, h, sizeof h);
    int bad = fwrite(pre, 1, sizeof pre, f.fp) != sizeof pre ||
              fwrite(h, 1, sizeof h, f.fp) != sizeof h ||
              write_floats(f.fp, m->params, m->n_params, &crc) ||
              write_floats(f.fp, adam_m, m->n_params, &crc) ||
              write_floats(f.fp, adam_v, m->n_params, &crc);
    unsigned char tail[4];
    put_u32(tail, (uint32_t)crc);
    if (bad || fwrite(tail, 1, 4, f.fp) != 4) {
        int e = errno;
        afile_abort(&f);
        return err_sys(err, e ? e : EIO, "%s: write failed", path);
    }
    return afile_commit(&f, err);
}

/* Decodes n little-endian floats in place and checks they are finite. */
static int decode_floats(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = get_u32((const unsigned char *)&x[i]);
        memcpy(&x[i], &v, 4);
        if (!isfinite(x[i]))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading, section by section. Each returns 0, or -1 with err naming path. */

/* The frame: magic, version, header size, the exact file size for
 * n_params, and the CRC-32 of everything before it. */
typedef struct frame {
    uint32_t version;
    size_t n_fields;        /* of the header */
    const unsigned char *h; /* the header */
    uint64_t n_params;
} frame;

/* Everything of the frame but the CRC, from the first have bytes (b) of a
 * file of len bytes: have is at least the prefix and the longest header,
 * or the whole file. f->h points into b. */
static int read_layout(const char *path, const unsigned char *b, size_t have, size_t len,
                       frame *f, err_msg *err)
{
    if (have < 8 || memcmp(b, CKPT_MAGIC, 8) != 0)
        return err_set(err, "%s: not a vae checkpoint (bad magic; expected a vae.bin "
                       "written by 'vae train')", path);
    if (have < PREFIX_BYTES + 4)
        return err_set(err, "%s: truncated checkpoint (%zu bytes)", path, len);
    uint32_t version = get_u32(b + 8);
    if (version > CKPT_VERSION)
        return err_set(err, "%s: checkpoint version %u is newer than this vae reads (%u); "
                       "upgrade vae", path, version, CKPT_VERSION);
    if (version < CKPT_VERSION_MIN)
        return err_set(err, "%s: unknown checkpoint version %u", path, version);
    /* Each version has one header size; any other is damage. */
    size_t n_fields = version == 2   ? H_COUNT_V2
                      : version == 3 ? H_COUNT_V3
                      : version == 4 ? H_COUNT_V4
                      : version == 5 ? H_COUNT_V5
                      : version == 6 ? H_COUNT_V6
                                     : H_COUNT;
    size_t header = 8 * n_fields;
    if (get_u32(b + 12) != header)
        return err_set(err, "%s: corrupt checkpoint (header size %u, expected %zu for "
                       "version %u)", path, get_u32(b + 12), header, version);
    if (len < PREFIX_BYTES + header + 4)
        return err_set(err, "%s: truncated checkpoint (%zu bytes)", path, len);
    const unsigned char *h = b + PREFIX_BYTES;
    uint64_t n_params = get_u64(h, H_N_PARAMS);
    /* The size must be exact: 3 float arrays and the CRC after the header. */
    uint64_t body = len - PREFIX_BYTES - header - 4;
    if (n_params == 0 || n_params > body / 12 || body != n_params * 12)
        return err_set(err, "%s: truncated or corrupt checkpoint (%zu bytes for %llu "
                       "parameters)", path, len, (unsigned long long)n_params);
    f->version = version;
    f->n_fields = n_fields;
    f->h = h;
    f->n_params = n_params;
    return 0;
}

/* The CRC-32 of the len - 4 bytes before it, at the end of b. */
static int check_crc(const char *path, const unsigned char *b, size_t len, err_msg *err)
{
    uint32_t want = get_u32(b + len - 4);
    uint32_t got = (uint32_t)crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < len - 4;) {
        size_t k = len - 4 - off > (1u << 30) ? (1u << 30) : len - 4 - off;
        got = (uint32_t)crc32(got, b + off, (uInt)k);
        off += k;
    }
    if (got != want)
        return err_set(err, "%s: checkpoint is corrupt (CRC32 %08x, stored %08x)", path,
                       got, want);
    return 0;
}

/* Reads path whole into *buf (len bytes) and its frame into f, once its
 * first bytes say it is a checkpoint of exactly its size: anything else
 * is refused before the rest is read. So is anything that is not a regular
 * file (a FIFO would wait for a writer for ever). */
static int read_file(const char *path, unsigned char **buf, size_t *len, frame *f,
                     err_msg *err)
{
    struct stat st;
    FILE *fp = afile_fopen_input(path, &st, err);
    if (!fp)
        return -1;
    size_t n = (size_t)st.st_size;
    unsigned char head[PREFIX_BYTES + HEADER_BYTES];
    size_t want = n < sizeof head ? n : sizeof head;
    size_t have = fread(head, 1, want, fp);
    unsigned char *b = NULL;
    int rc = (off_t)n != st.st_size || n > ((size_t)1 << 40)
                 ? err_set(err, "%s: too large to be a checkpoint", path)
             : ferror(fp)   ? err_set(err, "%s: read error", path)
             : have != want ? err_set(err, "%s: changed while being read", path)
                            : read_layout(path, head, have, n, f, err);
    if (rc == 0 && !(b = malloc(n)))
        rc = err_set(err, "%s: out of memory reading %zu bytes", path, n);
    if (rc == 0) {
        memcpy(b, head, have);
        size_t got = fread(b + have, 1, n - have, fp);
        if (ferror(fp))
            rc = err_set(err, "%s: read error", path);
        else if (got != n - have || fgetc(fp) != EOF)
            rc = err_set(err, "%s: changed while being read", path);
    }
    fclose(fp);
    if (rc == 0)
        rc = check_crc(path, b, n, err);
    if (rc) {
        free(b);
        return -1;
    }
    f->h = b + PREFIX_BYTES;
    *buf = b;
    *len = n;
    return 0;
}

/* The architecture from the header fields v, checked, and its parameter
 * count against the frame's. */
static int read_config(const char *path, const uint64_t *v, const frame *f, model_config *c,
                       err_msg *err)
{
    if (v[H_N_HIDDEN] < 1 || v[H_N_HIDDEN] > MODEL_MAX_HIDDEN)
        return err_set(err, "%s: bad architecture: %llu hidden layers", path,
                       (unsigned long long)v[H_N_HIDDEN]);
    for (size_t i = 0; i < MODEL_MAX_HIDDEN; i++)
        if (v[H_HIDDEN0 + i] > MODEL_MAX_WIDTH)
            return err_set(err, "%s: bad architecture: hidden width %llu", path,
                           (unsigned long long)v[H_HIDDEN0 + i]);
    if (v[H_ARCH] >= model_arch_names.n)
        return err_set(err, "%s: unknown architecture %llu in header", path,
                       (unsigned long long)v[H_ARCH]);
    if (v[H_X_DIM] > MODEL_MAX_WIDTH * 16 || v[H_Z_DIM] > MODEL_MAX_WIDTH ||
        v[H_ACT] >= model_act_names.n || v[H_LIKELIHOOD] >= model_lik_names.n ||
        v[H_N_CLASSES] > MODEL_MAX_CLASSES)
        return err_set(err, "%s: bad architecture in header", path);
    c->x_dim = (size_t)v[H_X_DIM];
    c->n_hidden = (size_t)v[H_N_HIDDEN];
    for (size_t i = 0; i < MODEL_MAX_HIDDEN; i++)
        c->hidden[i] = (size_t)v[H_HIDDEN0 + i];
    c->z_dim = (size_t)v[H_Z_DIM];
    c->act = (model_act)v[H_ACT];
    c->arch = (model_arch)v[H_ARCH];
    c->likelihood = (model_lik)v[H_LIKELIHOOD];
    c->n_classes = (size_t)v[H_N_CLASSES];
    /* The image shape; a file before version 5 held square grey images. */
    if (f->version >= 5) {
        if (v[H_HEIGHT] < 1 || v[H_HEIGHT] > MODEL_MAX_WIDTH || v[H_WIDTH] < 1 ||
            v[H_WIDTH] > MODEL_MAX_WIDTH || (v[H_CHANNELS] != 1 && v[H_CHANNELS] != 3) ||
            v[H_HEIGHT] * v[H_WIDTH] * v[H_CHANNELS] != v[H_X_DIM])
            return err_set(err, "%s: bad architecture: images of %llu x %llu x %llu are "
                           "not %llu input values", path, (unsigned long long)v[H_HEIGHT],
                           (unsigned long long)v[H_WIDTH], (unsigned long long)v[H_CHANNELS],
                           (unsigned long long)v[H_X_DIM]);
        c->height = (size_t)v[H_HEIGHT];
        c->width = (size_t)v[H_WIDTH];
        c->channels = (size_t)v[H_CHANNELS];
    }
    /* The second stochastic layer (version 7; none before): all zero, or a
     * latent size with 1 to MODEL_MAX_HIDDEN hidden widths, the rest 0. */
    if (f->version >= 7 && (v[H_Z2_DIM] | v[H_N_HIDDEN2]) != 0) {
        if (v[H_Z2_DIM] == 0 || v[H_Z2_DIM] > MODEL_MAX_WIDTH || v[H_N_HIDDEN2] < 1 ||
            v[H_N_HIDDEN2] > MODEL_MAX_HIDDEN)
            return err_set(err, "%s: bad architecture: a second stochastic layer of %llu "
                           "units and %llu hidden layers", path,
                           (unsigned long long)v[H_Z2_DIM],
                           (unsigned long long)v[H_N_HIDDEN2]);
        c->z2_dim = (size_t)v[H_Z2_DIM];
        c->n_hidden2 = (size_t)v[H_N_HIDDEN2];
    }
    for (size_t i = 0; f->version >= 7 && i < MODEL_MAX_HIDDEN; i++) {
        if (v[H_HIDDEN2_0 + i] > MODEL_MAX_WIDTH || (i >= c->n_hidden2) != (v[H_HIDDEN2_0 + i] == 0))
            return err_set(err, "%s: bad architecture: width %llu of the second stochastic "
                           "layer's hidden layer %zu", path,
                           (unsigned long long)v[H_HIDDEN2_0 + i], i + 1);
        c->hidden2[i] = (size_t)v[H_HIDDEN2_0 + i];
    }
    model_config_shape(c);
    err_msg e2;
    if (model_config_check(c, &e2))
        return err_set(err, "%s: bad architecture: %s", path, e2.text);
    model_net shape; /* counts the parameters; allocates nothing */
    if (model_layout(&shape, c, &e2))
        return err_set(err, "%s: %s", path, e2.text);
    if (shape.n_params != f->n_params)
        return err_set(err, "%s: corrupt checkpoint: %llu parameters stored, the "
                       "architecture has %zu", path, (unsigned long long)f->n_params,
                       shape.n_params);
    return 0;
}

/* The training record: the settings (each from its row's field, or, in a
 * file older than the field, the row's unused value: what that version
 * trained with), the state and the data fingerprint, each checked. */
static int read_training(const char *path, const uint64_t *v, const frame *f,
                         ckpt_train *t, err_msg *err)
{
    const unsigned char *h = f->h;
    run_settings *s = &t->set;
    *t = ckpt_train_defaults();
    for (int i = 0; i < SETTING_COUNT; i++) {
        const setting_row *r = &SETTINGS[i];
        if (f->version >= r->since && settings_from_bits(s, (setting_id)i, v[r->field]))
        {
            char names[128];
            enum_list(r->names, names, sizeof names);
            return err_set(err, "%s: corrupt checkpoint: bad %s (%s %llu, not %s)", path,
                           r->group, r->key, (unsigned long long)v[r->field], names);
        }
    }
    t->epoch = v[H_EPOCH];
    t->step = v[H_STEP];
    t->adam_t = v[H_ADAM_T];
    t->sum_rec = get_f64(h, H_SUM_REC);
    t->sum_kl = get_f64(h, H_SUM_KL);
    t->n_seen = v[H_N_SEEN];
    t->seconds = get_f64(h, H_SECONDS);
    if (get_rng(h, H_RNG_DATA, &t->rng_data) || get_rng(h, H_RNG_NOISE, &t->rng_noise))
        return err_set(err, "%s: corrupt checkpoint: bad RNG state", path);
    if (s->batch == 0 || !(s->sched.lr > 0.0) || !isfinite(s->sched.lr) ||
        !(s->beta >= 0.0) || !isfinite(s->beta) ||
        !(s->noise >= 0.0) || !isfinite(s->noise) ||
        !isfinite(t->sum_rec) || !isfinite(t->sum_kl) || !isfinite(t->seconds))
        return err_set(err, "%s: corrupt checkpoint: bad training state", path);
    /* The fingerprint: all zeros (unknown), or a data set's. */
    t->data.n = v[H_DATA_N];
    t->data.rows = v[H_DATA_ROWS];
    t->data.cols = v[H_DATA_COLS];
    if (v[H_DATA_PIXELS_CRC] > UINT32_MAX || v[H_DATA_LABELS_CRC] > UINT32_MAX ||
        (t->data.n == 0 ? (t->data.rows | t->data.cols | v[H_DATA_PIXELS_CRC] |
                           v[H_DATA_LABELS_CRC]) != 0
                        : t->data.rows == 0 || t->data.rows > MODEL_MAX_WIDTH ||
                          t->data.cols == 0 || t->data.cols > MODEL_MAX_WIDTH))
        return err_set(err, "%s: corrupt checkpoint: bad data fingerprint", path);
    t->data.pixels_crc = (uint32_t)v[H_DATA_PIXELS_CRC];
    t->data.labels_crc = (uint32_t)v[H_DATA_LABELS_CRC];
    t->best_epoch = v[H_BEST_EPOCH];
    if (f->version >= 4) {
        t->best_loss = get_f64(h, H_BEST_LOSS);
        t->sum_obj = get_f64(h, H_SUM_OBJ);
    } else {
        t->sum_obj = t->sum_rec + s->beta * t->sum_kl; /* the ELBO's */
    }
    err_msg e3;
    if (schedule_check(&s->sched, &e3))
        return err_set(err, "%s: corrupt checkpoint: bad learning-rate schedule (%s)", path,
                       e3.text);
    if (!(s->adam_beta1 >= 0.0 && s->adam_beta1 < 1.0) ||
        !(s->adam_beta2 >= 0.0 && s->adam_beta2 < 1.0) ||
        !(s->adam_eps > 0.0) || !isfinite(s->adam_eps))
        return err_set(err, "%s: corrupt checkpoint: bad optimizer settings", path);
    if (!isfinite(t->best_loss) || t->best_epoch > t->epoch ||
        (t->best_epoch == 0 && t->best_loss != 0.0) ||
        (s->valid == 0 && t->best_epoch != 0) ||
        (t->data.n != 0 && s->valid >= t->data.n))
        return err_set(err, "%s: corrupt checkpoint: bad validation state", path);
    if (s->draws < 1 || s->draws > MODEL_MAX_DRAWS || !isfinite(t->sum_obj))
        return err_set(err, "%s: corrupt checkpoint: bad training objective", path);
    return 0;
}

/* The three float arrays after the header, decoded in place (NaN and Inf
 * refused), pointed at by d. */
static int read_arrays(const char *path, unsigned char *b, const frame *f, ckpt_data *d,
                       err_msg *err)
{
    float *p = (float *)(void *)(b + PREFIX_BYTES + 8 * f->n_fields);
    size_t n = (size_t)f->n_params;
    for (int k = 0; k < 3; k++)
        if (decode_floats(p + (size_t)k * n, n))
            return err_set(err, "%s: %s contain NaN or Inf", path, ARRAY_NAMES[k]);
    d->n_params = n;
    d->params = p;
    d->adam_m = p + n;
    d->adam_v = p + 2 * n;
    return 0;
}

int ckpt_read(const char *path, ckpt_data *d, err_msg *err)
{
    memset(d, 0, sizeof *d);
    unsigned char *b = NULL;
    size_t len = 0;
    frame f = {0};
    if (read_file(path, &b, &len, &f, err))
        return -1;
    uint64_t v[H_COUNT] = {0}; /* fields a file predates read as 0 */
    for (size_t i = 0; i < f.n_fields; i++)
        v[i] = get_u64(f.h, i);
    int rc = read_config(path, v, &f, &d->cfg, err);
    if (rc == 0)
        rc = read_training(path, v, &f, &d->train, err);
    if (rc == 0)
        rc = read_arrays(path, b, &f, d, err);
    if (rc != 0) {
        free(b);
        memset(d, 0, sizeof *d);
        return -1;
    }
    d->version = f.version;
    d->buf = b;
    return 0;
}

void ckpt_data_free(ckpt_data *d)
{
    free(d->buf);
    memset(d, 0, sizeof *d);
}

int ckpt_load_model(const char *path, model_net *m, ckpt_train *t, err_msg *err)
{
    ckpt_data d;
    if (ckpt_read(path, &d, err))
        return -1;
    if (t)
        *t = d.train;
    if (model_init(m, &d.cfg, err)) {
        ckpt_data_free(&d);
        return -1;
    }
    memcpy(m->params, d.params, d.n_params * sizeof *m->params);
    ckpt_data_free(&d);
    return 0;
}
