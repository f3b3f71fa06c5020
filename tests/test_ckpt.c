/* test_ckpt.c - the vae.bin checkpoint: bit-exact round trips, byte-identical
 * rewrites, every flipped byte caught, and every way a file can be wrong
 * (truncated, foreign, newer, NaN, inconsistent, unreadable, unwritable). */
#define _GNU_SOURCE /* mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt.h"
#include "png_grid.h"
#include "rng.h"
#include "model.h"
#include "testutil.h"

/* The layout of version 7 (docs/checkpoint.md), restated here on purpose:
 * if the writer moves a field, these tests must notice. Version 6 is the
 * same without the last 6 fields (the second stochastic layer), version 5
 * without the one before them too (the gradient estimator), version 4
 * without the 3 before it too (the image shape), version 3 without the
 * 16 before them too (the training controls), version 2 without the five
 * before those (the data fingerprint). */
#define OFF_VERSION 8
#define OFF_HEADER_SIZE 12
#define OFF_HEADER 16
#define HEADER_FIELDS 68
#define HEADER_FIELDS_V6 62
#define HEADER_FIELDS_V5 61
#define HEADER_FIELDS_V4 58
#define HEADER_FIELDS_V3 42
#define HEADER_FIELDS_V2 37
#define OFF_BODY (OFF_HEADER + 8 * HEADER_FIELDS) /* 560 */
enum {
    F_ARCH = 0, F_X_DIM = 1, F_N_HIDDEN = 2, F_HIDDEN0 = 3, F_Z_DIM = 7, F_ACT = 8,
    F_LIKELIHOOD = 9, F_N_CLASSES = 10, F_N_PARAMS = 11, F_SEED = 12, F_EPOCH = 13,
    F_STEP = 14, F_ADAM_T = 15, F_BATCH = 16, F_LR = 17, F_BETA = 18,
    F_BINARIZE = 19, F_NOISE = 20, F_RNG_DATA = 21, F_RNG_NOISE = 27,
    F_SUM_REC = 33, F_SUM_KL = 34, F_N_SEEN = 35, F_SECONDS = 36,
    F_DATA_N = 37, F_DATA_ROWS = 38, F_DATA_COLS = 39, F_DATA_PIXELS_CRC = 40,
    F_DATA_LABELS_CRC = 41, F_SCHED = 42, F_WARMUP = 43, F_HORIZON = 44, F_EVERY = 45,
    F_GAMMA = 46, F_KL_WARMUP = 47, F_ADAM_BETA1 = 48, F_ADAM_BETA2 = 49,
    F_ADAM_EPS = 50, F_INIT = 51, F_VALID_N = 52, F_BEST_EPOCH = 53, F_BEST_LOSS = 54,
    F_OBJECTIVE = 55, F_DRAWS = 56, F_SUM_OBJ = 57, F_HEIGHT = 58, F_WIDTH = 59,
    F_CHANNELS = 60, F_ESTIMATOR = 61, F_Z2_DIM = 62, F_N_HIDDEN2 = 63, F_HIDDEN2_0 = 64
};

/* ------------------------------------------------------------------------ */
/* Fixture: a fresh folder per test, removed afterwards. */

typedef tu_fixture fixture;

static int setup(void **state)
{
    return tu_fixture_setup(state, "test_ckpt");
}

static int teardown(void **state)
{
    return tu_fixture_teardown(state);
}

/* ------------------------------------------------------------------------ */
/* A model with its optimizer and training state, all non-trivial. */

typedef struct saved {
    model_net m;
    float *adam_m, *adam_v;
    ckpt_train t;
} saved;

static model_config config(size_t x_dim, size_t n_hidden, const size_t *hidden,
                         size_t z_dim, model_act act, model_lik lik, size_t classes)
{
    model_config c;
    memset(&c, 0, sizeof c); /* padding too, so memcmp compares fields only */
    c.x_dim = x_dim;
    c.n_hidden = n_hidden;
    for (size_t i = 0; i < n_hidden; i++)
        c.hidden[i] = hidden[i];
    c.z_dim = z_dim;
    c.act = act;
    c.likelihood = lik;
    c.n_classes = classes;
    return c;
}

static model_config cfg_small(void) /* 784-16-4, ReLU */
{
    const size_t h[] = {16};
    return config(784, 1, h, 4, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0);
}

/* 784-24-12-6, tanh, continuous Bernoulli, conditional on 10 labels */
static model_config cfg_deep(void)
{
    const size_t h[] = {24, 12};
    return config(784, 2, h, 6, MODEL_ACT_TANH, MODEL_LIK_CB, 10);
}

static model_config cfg_tiny(void) /* 8-3-2: small enough to flip every bit */
{
    const size_t h[] = {3};
    return config(8, 1, h, 2, MODEL_ACT_RELU, MODEL_LIK_GAUSSIAN, 0);
}

/* Distinct values of every kind a float can finitely hold: negative zero,
 * subnormals, the extremes, and a spread of ordinary values. */
static float odd_float(size_t i, float scale)
{
    switch (i) {
    case 0: return -0.0f;
    case 1: return FLT_MIN / 8.0f; /* subnormal */
    case 2: return FLT_MAX;
    case 3: return -FLT_MAX;
    default: return scale * sinf((float)i * 0.7f) + 1e-6f * (float)i;
    }
}

static void make_saved(saved *s, const model_config *cfg, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    err_msg err;
    if (model_init(&s->m, cfg, &err))
        fail_msg("model_init: %s", err.text);
    rng_state r;
    rng_seed(&r, seed);
    model_init_params(&s->m, &r);
    size_t n = s->m.n_params;
    s->adam_m = malloc(n * sizeof(float));
    s->adam_v = malloc(n * sizeof(float));
    assert_non_null(s->adam_m);
    assert_non_null(s->adam_v);
    for (size_t i = 0; i < n; i++) {
        s->adam_m[i] = odd_float(i, 0.01f);
        s->adam_v[i] = 1e-9f * (float)(i + 1) + (float)seed * 1e-12f;
    }
    ckpt_train *t = &s->t;
    *t = ckpt_train_defaults();
    t->set.seed = 0xdeadbeefcafebabeULL ^ seed;
    t->epoch = 3;
    t->step = 5;
    t->adam_t = 12345;
    t->set.batch = 32;
    t->set.sched.lr = 1.25e-3;
    t->set.beta = 0.1;
    t->set.binarize = 2;
    t->set.noise = 0.3;
    rng_seed(&t->rng_data, seed + 11);
    rng_seed(&t->rng_noise, seed + 22);
    float tmp[3];
    rng_normal(&t->rng_data, tmp, 1);  /* odd counts leave a spare normal */
    rng_normal(&t->rng_noise, tmp, 3);
    assert_int_equal(t->rng_data.has_spare, 1);
    assert_int_equal(t->rng_noise.has_spare, 1);
    assert_true(t->rng_data.spare != t->rng_noise.spare);
    t->sum_rec = 12345.678901234567;
    t->sum_kl = 321.0 / 3.0;
    t->n_seen = 160;
    t->seconds = 1.0 / 7.0;
    idx_fingerprint fp = {60000, 28, 27, 0x89abcdefu, 0x01234567u};
    t->data = fp;
    /* Training controls other than the defaults, each distinct. */
    t->set.sched.kind = SCHEDULE_COSINE;
    t->set.sched.lr = t->set.sched.lr; /* the reader restores it from lr */
    t->set.sched.warmup = 2;
    t->set.sched.horizon = 40;
    t->set.kl_warmup = 3;
    t->set.adam_beta1 = 0.8;
    t->set.adam_beta2 = 0.99;
    t->set.adam_eps = 1e-6;
    t->set.init = 1;
    t->set.valid = 1000;
    t->best_epoch = 2;
    t->best_loss = 99.5;
    t->set.objective = 1;
    t->set.draws = 7;
    t->sum_obj = 12000.25;
}

static void free_saved(saved *s)
{
    model_free(&s->m);
    free(s->adam_m);
    free(s->adam_v);
    memset(s, 0, sizeof *s);
}

static void save_ok(const char *path, const saved *s)
{
    err_msg err = {{0}};
    if (ckpt_save(path, &s->m, s->adam_m, s->adam_v, &s->t, &err))
        fail_msg("ckpt_save %s: %s", path, err.text);
}

static size_t file_size_for(size_t n_params)
{
    return OFF_BODY + 12 * n_params + 4;
}

/* ------------------------------------------------------------------------ */
/* Raw file surgery: patch a field, then (optionally) make the CRC right so
 * only the patched field is wrong. */

static void fix_crc(unsigned char *b, size_t len)
{
    uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4));
    tu_put_le32(b + len - 4, (uint32_t)crc);
}

static void patch_field(unsigned char *b, size_t len, size_t field, uint64_t v)
{
    tu_put_le64(b + OFF_HEADER + 8 * field, v);
    fix_crc(b, len);
}

static void patch_field_f64(unsigned char *b, size_t len, size_t field, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    patch_field(b, len, field, v);
}

static void patch_float(unsigned char *b, size_t len, size_t index, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    tu_put_le32(b + OFF_BODY + 4 * index, v);
    fix_crc(b, len);
}

/* Asserts ckpt_read(path) fails with a message naming path and containing
 * want (and want2 if non-NULL), and leaves d empty. */
static void expect_read_fails(const char *path, const char *want, const char *want2)
{
    ckpt_data d;
    memset(&d, 0x5a, sizeof d);
    err_msg err = {{0}};
    if (ckpt_read(path, &d, &err) == 0) {
        ckpt_data_free(&d);
        fail_msg("ckpt_read %s succeeded; expected an error with \"%s\"", path, want);
    }
    assert_null(d.buf);
    ckpt_data_free(&d); /* safe after a failure */
    tu_assert_contains(err.text, path);
    tu_assert_contains(err.text, want);
    if (want2)
        tu_assert_contains(err.text, want2);
}

/* Writes the good file with one header field changed (CRC fixed) and
 * expects ckpt_read to reject it with want in the message. */
static void expect_field_rejected(const char *path, const unsigned char *good,
                                  size_t len, size_t field, uint64_t v,
                                  const char *want)
{
    unsigned char *b = malloc(len);
    assert_non_null(b);
    memcpy(b, good, len);
    patch_field(b, len, field, v);
    tu_write_file(path, b, len);
    free(b);
    expect_read_fails(path, want, NULL);
}

/* ------------------------------------------------------------------------ */
/* Round trips */

static void assert_round_trip(const char *path, const saved *s)
{
    save_ok(path, s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((size_t)st.st_size, file_size_for(s->m.n_params));

    ckpt_data d;
    err_msg err = {{0}};
    if (ckpt_read(path, &d, &err))
        fail_msg("ckpt_read: %s", err.text);
    assert_int_equal(d.n_params, s->m.n_params);
    assert_memory_equal(&d.cfg, &s->m.cfg, sizeof d.cfg);
    size_t bytes = d.n_params * sizeof(float);
    assert_memory_equal(d.params, s->m.params, bytes);
    assert_memory_equal(d.adam_m, s->adam_m, bytes);
    assert_memory_equal(d.adam_v, s->adam_v, bytes);

    /* Field by field first (a readable failure), then every bit. */
    const ckpt_train *a = &d.train, *b = &s->t;
    assert_int_equal(a->set.seed, b->set.seed);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->adam_t, b->adam_t);
    assert_int_equal(a->set.batch, b->set.batch);
    assert_memory_equal(&a->set.sched.lr, &b->set.sched.lr, sizeof a->set.sched.lr);
    assert_memory_equal(&a->set.beta, &b->set.beta, sizeof a->set.beta);
    assert_int_equal(a->set.binarize, b->set.binarize);
    assert_memory_equal(&a->set.noise, &b->set.noise, sizeof a->set.noise);
    assert_memory_equal(&a->rng_data, &b->rng_data, sizeof a->rng_data);
    assert_memory_equal(&a->rng_noise, &b->rng_noise, sizeof a->rng_noise);
    assert_memory_equal(&a->sum_rec, &b->sum_rec, sizeof a->sum_rec);
    assert_memory_equal(&a->sum_kl, &b->sum_kl, sizeof a->sum_kl);
    assert_int_equal(a->n_seen, b->n_seen);
    assert_memory_equal(&a->seconds, &b->seconds, sizeof a->seconds);
    assert_memory_equal(&a->data, &b->data, sizeof a->data);
    assert_memory_equal(&a->set.sched, &b->set.sched, sizeof a->set.sched);
    assert_int_equal(a->set.kl_warmup, b->set.kl_warmup);
    assert_true(a->set.adam_beta1 == b->set.adam_beta1 && a->set.adam_beta2 == b->set.adam_beta2 &&
                a->set.adam_eps == b->set.adam_eps);
    assert_int_equal(a->set.init, b->set.init);
    assert_int_equal(a->set.valid, b->set.valid);
    assert_int_equal(a->best_epoch, b->best_epoch);
    assert_true(a->best_loss == b->best_loss);
    assert_int_equal(a->set.objective, b->set.objective);
    assert_int_equal(a->set.draws, b->set.draws);
    assert_memory_equal(&a->sum_obj, &b->sum_obj, sizeof a->sum_obj);
    assert_int_equal(d.version, CKPT_VERSION);
    assert_memory_equal(a, b, sizeof *a);

    /* A restored RNG draws what the original would have. */
    rng_state r1 = a->rng_noise, r2 = b->rng_noise;
    float x1[5], x2[5];
    rng_normal(&r1, x1, 5);
    rng_normal(&r2, x2, 5);
    assert_memory_equal(x1, x2, sizeof x1);
    ckpt_data_free(&d);
    assert_null(d.buf);
}

static void test_round_trip_relu(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 1);
    assert_int_equal(s.m.n_params, 784 * 16 + 16 + 16 * 8 + 8 + 4 * 16 + 16 + 16 * 784 + 784);
    assert_round_trip(path, &s);
    /* Nothing but the checkpoint is left in the folder (no temp files). */
    assert_int_equal(tu_count_entries(fx->dir, NULL, 0), 1);
    free_saved(&s);
}

static void test_round_trip_tanh_two_hidden(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "deep.bin");
    saved s;
    model_config c = cfg_deep();
    make_saved(&s, &c, 2);
    /* A fresh step-0 state and an RNG without a spare round-trip too. */
    assert_round_trip(path, &s);
    s.t.step = 0;
    s.t.n_seen = 0;
    s.t.sum_rec = s.t.sum_kl = s.t.seconds = 0.0;
    rng_seed(&s.t.rng_data, 99);
    assert_int_equal(s.t.rng_data.has_spare, 0);
    assert_round_trip(path, &s);
    free_saved(&s);
}

static void test_header_fields_at_documented_offsets(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    saved s;
    model_config c = cfg_deep();
    make_saved(&s, &c, 3);
    save_ok(path, &s);
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    assert_memory_equal(b, CKPT_MAGIC, 8);
    assert_int_equal(tu_get_le32(b + OFF_VERSION), CKPT_VERSION);
    assert_int_equal(tu_get_le32(b + OFF_HEADER_SIZE), 8 * HEADER_FIELDS);
    const unsigned char *h = b + OFF_HEADER;
    assert_int_equal(tu_get_le64(h + 8 * F_ARCH), 0);
    assert_int_equal(tu_get_le64(h + 8 * F_X_DIM), 784);
    assert_int_equal(tu_get_le64(h + 8 * F_HEIGHT), 28);
    assert_int_equal(tu_get_le64(h + 8 * F_WIDTH), 28);
    assert_int_equal(tu_get_le64(h + 8 * F_CHANNELS), 1);
    assert_int_equal(tu_get_le64(h + 8 * F_N_HIDDEN), 2);
    assert_int_equal(tu_get_le64(h + 8 * F_HIDDEN0), 24);
    assert_int_equal(tu_get_le64(h + 8 * (F_HIDDEN0 + 1)), 12);
    assert_int_equal(tu_get_le64(h + 8 * (F_HIDDEN0 + 2)), 0);
    assert_int_equal(tu_get_le64(h + 8 * (F_HIDDEN0 + 3)), 0);
    assert_int_equal(tu_get_le64(h + 8 * F_Z_DIM), 6);
    assert_int_equal(tu_get_le64(h + 8 * F_ACT), MODEL_ACT_TANH);
    assert_int_equal(tu_get_le64(h + 8 * F_LIKELIHOOD), MODEL_LIK_CB);
    assert_int_equal(tu_get_le64(h + 8 * F_N_CLASSES), 10);
    assert_int_equal(tu_get_le64(h + 8 * F_BINARIZE), 2);
    assert_int_equal(tu_get_le64(h + 8 * F_N_PARAMS), s.m.n_params);
    assert_int_equal(tu_get_le64(h + 8 * F_SEED), s.t.set.seed);
    assert_int_equal(tu_get_le64(h + 8 * F_EPOCH), 3);
    assert_int_equal(tu_get_le64(h + 8 * F_STEP), 5);
    assert_int_equal(tu_get_le64(h + 8 * F_ADAM_T), 12345);
    assert_int_equal(tu_get_le64(h + 8 * F_BATCH), 32);
    assert_int_equal(tu_get_le64(h + 8 * F_RNG_DATA), s.t.rng_data.s[0]);
    assert_int_equal(tu_get_le64(h + 8 * (F_RNG_DATA + 5)), 1);
    assert_int_equal(tu_get_le64(h + 8 * F_RNG_NOISE), s.t.rng_noise.s[0]);
    assert_int_equal(tu_get_le64(h + 8 * F_N_SEEN), 160);
    assert_int_equal(tu_get_le64(h + 8 * F_DATA_N), 60000);
    assert_int_equal(tu_get_le64(h + 8 * F_DATA_ROWS), 28);
    assert_int_equal(tu_get_le64(h + 8 * F_DATA_COLS), 27);
    assert_int_equal(tu_get_le64(h + 8 * F_DATA_PIXELS_CRC), 0x89abcdefu);
    assert_int_equal(tu_get_le64(h + 8 * F_DATA_LABELS_CRC), 0x01234567u);
    assert_int_equal(tu_get_le64(h + 8 * F_SCHED), SCHEDULE_COSINE);
    assert_int_equal(tu_get_le64(h + 8 * F_WARMUP), 2);
    assert_int_equal(tu_get_le64(h + 8 * F_HORIZON), 40);
    assert_int_equal(tu_get_le64(h + 8 * F_EVERY), 0);
    assert_int_equal(tu_get_le64(h + 8 * F_KL_WARMUP), 3);
    assert_int_equal(tu_get_le64(h + 8 * F_INIT), 1);
    assert_int_equal(tu_get_le64(h + 8 * F_VALID_N), 1000);
    assert_int_equal(tu_get_le64(h + 8 * F_BEST_EPOCH), 2);
    assert_int_equal(tu_get_le64(h + 8 * F_OBJECTIVE), 1);
    assert_int_equal(tu_get_le64(h + 8 * F_DRAWS), 7);
    const struct { size_t field; double want; } f64s[] = {
        {F_GAMMA, 1.0}, {F_ADAM_BETA1, 0.8}, {F_ADAM_BETA2, 0.99}, {F_ADAM_EPS, 1e-6},
        {F_BEST_LOSS, 99.5}, {F_SUM_OBJ, 12000.25}};
    for (size_t i = 0; i < 6; i++) {
        uint64_t bits = tu_get_le64(h + 8 * f64s[i].field);
        double d;
        memcpy(&d, &bits, 8);
        assert_true(d == f64s[i].want);
    }
    double lr, secs;
    uint64_t v = tu_get_le64(h + 8 * F_LR);
    memcpy(&lr, &v, 8);
    v = tu_get_le64(h + 8 * F_SECONDS);
    memcpy(&secs, &v, 8);
    assert_true(lr == s.t.set.sched.lr);
    assert_true(secs == s.t.seconds);
    double beta, noise;
    v = tu_get_le64(h + 8 * F_BETA);
    memcpy(&beta, &v, 8);
    v = tu_get_le64(h + 8 * F_NOISE);
    memcpy(&noise, &v, 8);
    assert_true(beta == s.t.set.beta && noise == s.t.set.noise);
    float p0;
    uint32_t u = tu_get_le32(b + OFF_BODY);
    memcpy(&p0, &u, 4);
    assert_true(p0 == s.m.params[0]);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4));
    assert_int_equal(tu_get_le32(b + len - 4), (uint32_t)crc);
    free(b);
    free_saved(&s);
}

static void test_save_twice_identical(void **state)
{
    fixture *fx = *state;
    char a[256], b[256];
    tu_join(a, sizeof a, fx->dir, "a.bin");
    tu_join(b, sizeof b, fx->dir, "b.bin");
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 4);
    save_ok(a, &s);
    save_ok(b, &s);
    size_t la, lb;
    unsigned char *ba = tu_read_file(a, &la);
    unsigned char *bb = tu_read_file(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    /* Over itself: same bytes again, still one file each. */
    save_ok(a, &s);
    tu_assert_file_equals(a, ba, la);
    assert_int_equal(tu_count_entries(fx->dir, NULL, 0), 2);
    free(ba);
    free(bb);
    free_saved(&s);
}

static void test_save_replaces_old_checkpoint(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    saved s1, s2;
    model_config c1 = cfg_deep(), c2 = cfg_small();
    make_saved(&s1, &c1, 5);
    make_saved(&s2, &c2, 6);
    save_ok(path, &s1);
    assert_round_trip(path, &s2); /* a different, smaller model over it */
    free_saved(&s1);
    free_saved(&s2);
}

/* ------------------------------------------------------------------------ */
/* Corruption */

/* What ckpt_read must say when the byte at off was changed. */
static const char *expected_for_offset(size_t off)
{
    if (off < 8)
        return "not a vae checkpoint";
    if (off < OFF_HEADER_SIZE)
        return "version";
    return "corrupt";
}

/* Flips byte off of the file at path (open as fd) with mask, reads, expects
 * a failure, and restores the byte. */
static void flip_and_expect(int fd, const char *path, size_t off, unsigned char mask)
{
    unsigned char orig, bad;
    assert_int_equal(pread(fd, &orig, 1, (off_t)off), 1);
    bad = orig ^ mask;
    assert_int_equal(pwrite(fd, &bad, 1, (off_t)off), 1);
    ckpt_data d;
    err_msg err = {{0}};
    if (ckpt_read(path, &d, &err) == 0) {
        ckpt_data_free(&d);
        fail_msg("byte %zu ^ 0x%02x (0x%02x -> 0x%02x) was not detected", off,
                 mask, orig, bad);
    }
    const char *want = expected_for_offset(off);
    if (!strstr(err.text, want) || !strstr(err.text, path))
        fail_msg("byte %zu ^ 0x%02x: expected \"%s\" and the path in: %s", off,
                 mask, want, err.text);
    assert_int_equal(pwrite(fd, &orig, 1, (off_t)off), 1);
}

static void test_every_bit_flip_detected_tiny(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "tiny.bin");
    saved s;
    model_config c = cfg_tiny();
    make_saved(&s, &c, 7);
    save_ok(path, &s);
    size_t len;
    unsigned char *good = tu_read_file(path, &len);
    assert_int_equal(len, file_size_for(s.m.n_params));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    for (size_t off = 0; off < len; off++) {
        for (int bit = 0; bit < 8; bit++)
            flip_and_expect(fd, path, off, (unsigned char)(1u << bit));
        flip_and_expect(fd, path, off, 0xff);
    }
    close(fd);
    /* Every flip was undone: the file reads again. */
    tu_assert_file_equals(path, good, len);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(path, &d, &err))
        fail_msg("restored file: %s", err.text);
    ckpt_data_free(&d);
    free(good);
    free_saved(&s);
}

static void test_byte_flips_detected_mnist_size(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 8);
    save_ok(path, &s);
    size_t len = file_size_for(s.m.n_params), n = s.m.n_params;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    size_t checked = 0;
    for (size_t off = 0; off < len; off++) {
        /* Every byte of the prefix, header and CRC; the first and last
         * byte of each float array; and every 97th byte between. */
        int edge = off < OFF_BODY || off >= len - 4 ||
                   off == OFF_BODY + 4 * n || off == OFF_BODY + 8 * n ||
                   off == OFF_BODY + 4 * n - 1 || off == OFF_BODY + 8 * n - 1 ||
                   off == OFF_BODY + 12 * n - 1;
        if (!edge && off % 97 != 0)
            continue;
        flip_and_expect(fd, path, off, 0xff);
        flip_and_expect(fd, path, off, (unsigned char)(1u << (off % 8)));
        checked++;
    }
    close(fd);
    assert_true(checked > 3000);
    free_saved(&s);
}

static void test_truncated(void **state)
{
    fixture *fx = *state;
    char path[256], cut[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    tu_join(cut, sizeof cut, fx->dir, "cut.bin");
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 9);
    save_ok(path, &s);
    size_t len;
    unsigned char *b = tu_read_file(path, &len);
    static const struct { size_t len; const char *want; } cases[] = {
        {0, "bad magic"}, {7, "bad magic"},
        {8, "truncated"}, {19, "truncated"}, {20, "truncated"},
        {OFF_BODY - 1, "truncated"}, {OFF_BODY, "truncated"},
        {OFF_BODY + 4, "truncated"}, {OFF_BODY + 1000, "truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_write_file(cut, b, cases[i].len);
        expect_read_fails(cut, cases[i].want, NULL);
    }
    /* Near the end the CRC or the size check catches it; "truncated" in
     * either case since the size no longer fits n_params. */
    const size_t tails[] = {len - 1, len - 3, len - 4, len - 5, len - 12};
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        tu_write_file(cut, b, tails[i]);
        expect_read_fails(cut, "truncated", NULL);
    }
    /* One byte too many is as wrong as one too few. */
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, b, len);
    longer[len] = 0;
    tu_write_file(cut, longer, len + 1);
    expect_read_fails(cut, "corrupt", NULL);
    free(longer);
    free(b);
    free_saved(&s);
}

static void test_not_a_checkpoint(void **state)
{
    fixture *fx = *state;
    char png[256], txt[256], zero[256];
    tu_join(png, sizeof png, fx->dir, "picture.png");
    tu_join(txt, sizeof txt, fx->dir, "notes.txt");
    tu_join(zero, sizeof zero, fx->dir, "empty.bin");
    uint8_t px[16 * 8];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 7);
    err_msg err;
    if (png_grid_write_pixels(png, px, 16, 8, 1, &err))
        fail_msg("%s", err.text);
    expect_read_fails(png, "not a vae checkpoint", NULL);
    const char *text = "epoch 1/15  train 164.20\nthis is not a checkpoint at all, but long enough\n";
    tu_write_file(txt, text, strlen(text));
    expect_read_fails(txt, "not a vae checkpoint", NULL);
    tu_write_file(zero, "", 0);
    expect_read_fails(zero, "not a vae checkpoint", NULL);
    expect_read_fails("/dev/null", "not a regular file", NULL);
}

/* The good file of cfg_small, its length, and a scratch path beside it. */
typedef struct good_file {
    saved s;
    unsigned char *b;
    size_t len;
    char path[256];
} good_file;

static void good_file_make(good_file *g, const fixture *fx, const model_config *c)
{
    make_saved(&g->s, c, 10);
    char orig[256];
    tu_join(orig, sizeof orig, fx->dir, "good.bin");
    save_ok(orig, &g->s);
    g->b = tu_read_file(orig, &g->len);
    tu_join(g->path, sizeof g->path, fx->dir, "patched.bin");
}

static void good_file_free(good_file *g)
{
    free(g->b);
    free_saved(&g->s);
}

static void test_newer_version(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    tu_put_le32(g.b + OFF_VERSION, CKPT_VERSION + 1);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "newer", "upgrade");
    tu_put_le32(g.b + OFF_VERSION, 0xffffffffu);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "newer", NULL);
    tu_put_le32(g.b + OFF_VERSION, 0);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "unknown checkpoint version 0", NULL);
    /* Restoring the version (CRC fixed again) makes it a good file. */
    tu_put_le32(g.b + OFF_VERSION, CKPT_VERSION);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    ckpt_data_free(&d);
    good_file_free(&g);
}

/* An older file: the current file cut to the first `fields` header fields,
 * with that version and header size, CRC made right. */
static unsigned char *as_version(const unsigned char *b4, size_t len4, uint32_t version,
                                 size_t fields, size_t *len)
{
    size_t cut = 8 * (HEADER_FIELDS - fields);
    unsigned char *b = malloc(len4 - cut);
    assert_non_null(b);
    size_t head_end = OFF_HEADER + 8 * fields;
    memcpy(b, b4, head_end);
    memcpy(b + head_end, b4 + head_end + cut, len4 - head_end - cut);
    *len = len4 - cut;
    tu_put_le32(b + OFF_VERSION, version);
    tu_put_le32(b + OFF_HEADER_SIZE, (uint32_t)(8 * fields));
    fix_crc(b, *len);
    return b;
}

/* What an older file must read as: the saved state with the fields that
 * version lacks at what they mean by default. */
static ckpt_train older_state(const ckpt_train *t, uint32_t version)
{
    ckpt_train want = *t, def = ckpt_train_defaults();
    want.set.sched = def.set.sched;
    want.set.sched.lr = t->set.sched.lr;
    want.set.kl_warmup = def.set.kl_warmup;
    want.set.adam_beta1 = def.set.adam_beta1, want.set.adam_beta2 = def.set.adam_beta2;
    want.set.adam_eps = def.set.adam_eps;
    want.set.init = def.set.init;
    want.set.valid = 0, want.best_epoch = 0, want.best_loss = 0.0;
    want.set.objective = 0, want.set.draws = 1, want.set.estimator = MODEL_EST_STANDARD;
    want.sum_obj = t->sum_rec + t->set.beta * t->sum_kl;
    if (version == 2)
        memset(&want.data, 0, sizeof want.data);
    return want;
}

static void test_reads_version_3(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    size_t len3;
    unsigned char *b = as_version(g.b, g.len, 3, HEADER_FIELDS_V3, &len3);
    tu_write_file(g.path, b, len3);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.version, 3);
    assert_int_equal(d.train.data.n, 60000); /* kept: version 3 had it */
    assert_int_equal(d.train.set.sched.kind, SCHEDULE_CONSTANT);
    assert_true(d.train.set.adam_eps == 1e-8);
    ckpt_train want = older_state(&g.s.t, 3);
    assert_memory_equal(&d.train, &want, sizeof want);
    assert_memory_equal(d.params, g.s.m.params, d.n_params * sizeof(float));
    ckpt_data_free(&d);
    tu_put_le32(b + OFF_HEADER_SIZE, 8 * HEADER_FIELDS);
    fix_crc(b, len3);
    tu_write_file(g.path, b, len3);
    expect_read_fails(g.path, "header size 544, expected 336 for version 3", NULL);
    free(b);
    good_file_free(&g);
}

/* Version 4: the image shape is not stored; a square x_dim reads as a
 * square grey image. */
static void test_reads_version_4(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    size_t len4;
    unsigned char *b = as_version(g.b, g.len, 4, HEADER_FIELDS_V4, &len4);
    tu_write_file(g.path, b, len4);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.version, 4);
    assert_int_equal(d.cfg.height, 28);
    assert_int_equal(d.cfg.width, 28);
    assert_int_equal(d.cfg.channels, 1);
    assert_memory_equal(&d.train, &g.s.t, sizeof d.train);
    assert_memory_equal(d.params, g.s.m.params, d.n_params * sizeof(float));
    ckpt_data_free(&d);
    free(b);
    good_file_free(&g);
}

/* Two stochastic layers: the second layer's size and widths round-trip;
 * damaged, they are refused; cut to version 6 the file is one layer's
 * header with the wrong parameter count, refused. */
static void test_round_trip_two_layers(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "two.bin");
    saved s;
    const size_t h[] = {24, 12};
    model_config c = config(784, 2, h, 6, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0);
    c.z2_dim = 3, c.n_hidden2 = 2, c.hidden2[0] = 5, c.hidden2[1] = 4;
    make_saved(&s, &c, 2);
    assert_round_trip(path, &s); /* the whole config, bit for bit */
    size_t len;
    unsigned char *good = tu_read_file(path, &len);
    const unsigned char *hd = good + OFF_HEADER;
    assert_int_equal(tu_get_le64(hd + 8 * F_Z2_DIM), 3);
    assert_int_equal(tu_get_le64(hd + 8 * F_N_HIDDEN2), 2);
    assert_int_equal(tu_get_le64(hd + 8 * F_HIDDEN2_0), 5);
    assert_int_equal(tu_get_le64(hd + 8 * (F_HIDDEN2_0 + 1)), 4);
    assert_int_equal(tu_get_le64(hd + 8 * (F_HIDDEN2_0 + 2)), 0);
    const char *bad = "second stochastic layer";
    expect_field_rejected(path, good, len, F_Z2_DIM, 0, bad);      /* widths, no layer */
    expect_field_rejected(path, good, len, F_N_HIDDEN2, 0, bad);
    expect_field_rejected(path, good, len, F_N_HIDDEN2, 5, bad);
    expect_field_rejected(path, good, len, F_HIDDEN2_0 + 1, 0, bad); /* a used width 0 */
    expect_field_rejected(path, good, len, F_HIDDEN2_0 + 2, 7, bad); /* an unused one set */
    expect_field_rejected(path, good, len, F_Z2_DIM, 4, "parameters stored");
    size_t len6;
    unsigned char *b6 = as_version(good, len, 6, HEADER_FIELDS_V6, &len6);
    tu_write_file(path, b6, len6);
    expect_read_fails(path, "parameters stored", NULL);
    free(b6);
    free(good);
    free_saved(&s);
}

/* Version 5: no gradient estimator field; it reads as the standard one
 * (every version-5 run trained with it), the rest as written. */
static void test_reads_version_5(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    /* The field of version 6 set, then cut: what is left must not show it. */
    unsigned char *h = g.b + OFF_HEADER;
    tu_put_le64(h + 8 * F_ESTIMATOR, MODEL_EST_DREG);
    fix_crc(g.b, g.len);
    size_t len5;
    unsigned char *b = as_version(g.b, g.len, 5, HEADER_FIELDS_V5, &len5);
    assert_int_equal(len5, g.len - 8 * (HEADER_FIELDS - HEADER_FIELDS_V5));
    tu_write_file(g.path, b, len5);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.version, 5);
    assert_int_equal(d.train.set.estimator, MODEL_EST_STANDARD);
    assert_memory_equal(&d.train, &g.s.t, sizeof d.train);
    ckpt_data_free(&d);
    /* The same bytes as version 6 read the estimator. */
    tu_write_file(g.path, g.b, g.len);
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.train.set.estimator, MODEL_EST_DREG);
    ckpt_data_free(&d);
    free(b);
    good_file_free(&g);
}

/* A version-5 shape that is not x_dim values, or has 2 channels: refused. */
static void test_rejects_bad_image_shape(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    unsigned char *h = g.b + OFF_HEADER;
    tu_put_le64(h + 8 * F_WIDTH, 27);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "images of 28 x 27 x 1 are not 784 input values", NULL);
    tu_put_le64(h + 8 * F_WIDTH, 14);
    tu_put_le64(h + 8 * F_CHANNELS, 2);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "images of 28 x 14 x 2", NULL);
    /* 28 x 28 x 1 as 14 x 56 x 1: a valid other shape of the same x_dim. */
    tu_put_le64(h + 8 * F_HEIGHT, 14);
    tu_put_le64(h + 8 * F_WIDTH, 56);
    tu_put_le64(h + 8 * F_CHANNELS, 1);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.cfg.height, 14);
    assert_int_equal(d.cfg.width, 56);
    ckpt_data_free(&d);
    good_file_free(&g);
}

static void test_reads_version_2(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    size_t len2;
    unsigned char *b = as_version(g.b, g.len, 2, HEADER_FIELDS_V2, &len2);
    tu_write_file(g.path, b, len2);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("%s", err.text);
    /* Everything but the fingerprint, which version 2 did not have. */
    assert_int_equal(d.version, 2);
    assert_int_equal(d.train.data.n, 0);
    assert_int_equal(d.train.data.pixels_crc, 0);
    ckpt_train want = older_state(&g.s.t, 2);
    assert_memory_equal(&d.train, &want, sizeof want);
    assert_memory_equal(&d.cfg, &g.s.m.cfg, sizeof d.cfg);
    assert_memory_equal(d.params, g.s.m.params, d.n_params * sizeof(float));
    assert_memory_equal(d.adam_v, g.s.adam_v, d.n_params * sizeof(float));
    ckpt_data_free(&d);
    /* Each version has its own header size: 2 with 488 bytes, 5 with 296,
     * are damage. */
    tu_put_le32(b + OFF_HEADER_SIZE, 8 * HEADER_FIELDS);
    fix_crc(b, len2);
    tu_write_file(g.path, b, len2);
    expect_read_fails(g.path, "header size 544, expected 296", NULL);
    tu_put_le32(g.b + OFF_HEADER_SIZE, 8 * HEADER_FIELDS_V2);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "header size 296, expected 544", NULL);
    /* Version 1 never existed as this format. */
    tu_put_le32(b + OFF_HEADER_SIZE, 8 * HEADER_FIELDS_V2);
    tu_put_le32(b + OFF_VERSION, 1);
    fix_crc(b, len2);
    tu_write_file(g.path, b, len2);
    expect_read_fails(g.path, "unknown checkpoint version 1", NULL);
    free(b);
    good_file_free(&g);
}

static void test_bad_fingerprint(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    const char *bad = "bad data fingerprint";
    expect_field_rejected(g.path, g.b, g.len, F_DATA_ROWS, 0, bad);
    expect_field_rejected(g.path, g.b, g.len, F_DATA_COLS, 65537, bad);
    expect_field_rejected(g.path, g.b, g.len, F_DATA_PIXELS_CRC, (uint64_t)UINT32_MAX + 1, bad);
    expect_field_rejected(g.path, g.b, g.len, F_DATA_LABELS_CRC, (uint64_t)1 << 63, bad);
    /* Unknown (n = 0) means all zero: a count of 0 beside a CRC is damage. */
    expect_field_rejected(g.path, g.b, g.len, F_DATA_N, 0, bad);
    unsigned char *b = malloc(g.len);
    assert_non_null(b);
    memcpy(b, g.b, g.len);
    for (size_t f = F_DATA_N; f <= F_DATA_LABELS_CRC; f++)
        tu_put_le64(b + OFF_HEADER + 8 * f, 0);
    fix_crc(b, g.len);
    tu_write_file(g.path, b, g.len);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("an all-zero fingerprint is 'unknown', and fine: %s", err.text);
    assert_int_equal(d.train.data.n, 0);
    ckpt_data_free(&d);
    free(b);
    good_file_free(&g);
}

static void test_bad_controls(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    const char *sched = "bad learning-rate schedule", *opt = "bad optimizer settings";
    expect_field_rejected(g.path, g.b, g.len, F_SCHED, 4, sched);
    expect_field_rejected(g.path, g.b, g.len, F_HORIZON, 2, sched); /* = warm-up */
    expect_field_rejected(g.path, g.b, g.len, F_INIT, 2, opt);
    const struct { size_t field; double v; const char *want; } bad[] = {
        {F_ADAM_BETA1, 1.0, opt}, {F_ADAM_BETA1, -0.1, opt}, {F_ADAM_BETA2, NAN, opt},
        {F_ADAM_EPS, 0.0, opt}, {F_ADAM_EPS, INFINITY, opt},
    };
    unsigned char *b = malloc(g.len);
    assert_non_null(b);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(b, g.b, g.len);
        patch_field_f64(b, g.len, bad[i].field, bad[i].v);
        tu_write_file(g.path, b, g.len);
        expect_read_fails(g.path, bad[i].want, NULL);
    }
    /* A step schedule needs a decay every N >= 1 epochs by a factor in (0, 1]. */
    memcpy(b, g.b, g.len);
    patch_field(b, g.len, F_SCHED, SCHEDULE_STEP);
    patch_field(b, g.len, F_EVERY, 10);
    patch_field_f64(b, g.len, F_GAMMA, 0.5);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, sched, NULL); /* still a cosine's warm-up and horizon */
    patch_field(b, g.len, F_WARMUP, 0);
    patch_field(b, g.len, F_HORIZON, 0);
    patch_field(b, g.len, F_EVERY, 0);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, sched, NULL);
    patch_field(b, g.len, F_EVERY, 10);
    patch_field_f64(b, g.len, F_GAMMA, 1.5);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, sched, NULL);
    patch_field_f64(b, g.len, F_GAMMA, 0.5);
    tu_write_file(g.path, b, g.len);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(g.path, &d, &err))
        fail_msg("a good step schedule: %s", err.text);
    assert_int_equal(d.train.set.sched.kind, SCHEDULE_STEP);
    ckpt_data_free(&d);
    /* The validation state: a best epoch not yet trained, one without a
     * validation set, a loss without an epoch, all the data held out. */
    const char *val = "bad validation state";
    expect_field_rejected(g.path, g.b, g.len, F_BEST_EPOCH, 4, val);
    expect_field_rejected(g.path, g.b, g.len, F_VALID_N, 0, val);
    expect_field_rejected(g.path, g.b, g.len, F_VALID_N, 60000, val);
    memcpy(b, g.b, g.len);
    patch_field(b, g.len, F_BEST_EPOCH, 0);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, val, NULL);
    patch_field_f64(b, g.len, F_BEST_LOSS, 0.0);
    tu_write_file(g.path, b, g.len);
    if (ckpt_read(g.path, &d, &err))
        fail_msg("no best epoch yet: %s", err.text);
    ckpt_data_free(&d);
    memcpy(b, g.b, g.len);
    patch_field_f64(b, g.len, F_BEST_LOSS, NAN);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, val, NULL);
    /* The objective: 0 or 1, 1 to 5000 draws, a finite sum. */
    const char *objv = "bad training objective";
    expect_field_rejected(g.path, g.b, g.len, F_OBJECTIVE, 2, objv);
    expect_field_rejected(g.path, g.b, g.len, F_DRAWS, 0, objv);
    expect_field_rejected(g.path, g.b, g.len, F_DRAWS, 5001, objv);
    expect_field_rejected(g.path, g.b, g.len, F_ESTIMATOR, 3, objv);
    memcpy(b, g.b, g.len);
    patch_field_f64(b, g.len, F_SUM_OBJ, INFINITY);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, objv, NULL);
    free(b);
    good_file_free(&g);
}

static void test_header_size_wrong(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    tu_put_le32(g.b + OFF_HEADER_SIZE, 8 * HEADER_FIELDS + 8);
    fix_crc(g.b, g.len);
    tu_write_file(g.path, g.b, g.len);
    expect_read_fails(g.path, "header size", NULL);
    good_file_free(&g);
}

static void test_nan_or_inf_values(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    size_t n = g.s.m.n_params;
    static const struct { size_t array; const char *what; } where[] = {
        {0, "parameters"}, {1, "Adam first moments"}, {2, "Adam second moments"},
    };
    const float bad[] = {NAN, INFINITY, -INFINITY};
    unsigned char *b = malloc(g.len);
    assert_non_null(b);
    for (size_t w = 0; w < 3; w++) {
        for (size_t k = 0; k < 3; k++) {
            /* First, middle and last value of the array. */
            size_t idx = w * n + (k == 0 ? 0 : k == 1 ? n / 2 : n - 1);
            memcpy(b, g.b, g.len);
            patch_float(b, g.len, idx, bad[k]);
            tu_write_file(g.path, b, g.len);
            expect_read_fails(g.path, "NaN or Inf", where[w].what);
        }
    }
    /* Without the CRC fixed, the CRC catches it first. */
    memcpy(b, g.b, g.len);
    float nan = NAN;
    memcpy(b + OFF_BODY, &nan, 4);
    tu_write_file(g.path, b, g.len);
    expect_read_fails(g.path, "CRC", NULL);
    free(b);
    good_file_free(&g);
}

static void test_architecture_mismatch(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    /* Each header value is self-consistent in size and CRC, but wrong. */
    expect_field_rejected(g.path, g.b, g.len, F_HIDDEN0, 17, "architecture has");
    expect_field_rejected(g.path, g.b, g.len, F_Z_DIM, 5, "architecture has");
    expect_field_rejected(g.path, g.b, g.len, F_X_DIM, 783, "are not 783 input values");
    expect_field_rejected(g.path, g.b, g.len, F_N_CLASSES, 10, "architecture has");
    good_file_free(&g);
}

static void test_bad_architecture_values(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    expect_field_rejected(g.path, g.b, g.len, F_N_HIDDEN, 0, "hidden layers");
    expect_field_rejected(g.path, g.b, g.len, F_N_HIDDEN, MODEL_MAX_HIDDEN + 1, "hidden layers");
    expect_field_rejected(g.path, g.b, g.len, F_N_HIDDEN, 2, "bad architecture"); /* hidden[1] = 0 */
    expect_field_rejected(g.path, g.b, g.len, F_HIDDEN0, 0, "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_HIDDEN0, MODEL_MAX_WIDTH + 1, "hidden width");
    expect_field_rejected(g.path, g.b, g.len, F_HIDDEN0 + 3, UINT64_MAX, "hidden width");
    expect_field_rejected(g.path, g.b, g.len, F_ACT, 3, "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_ARCH, 2, "unknown architecture 2");
    /* The same header as a conv model has other parameters. */
    expect_field_rejected(g.path, g.b, g.len, F_ARCH, 1, "architecture has");
    expect_field_rejected(g.path, g.b, g.len, F_CHANNELS, 3, "28 x 28 x 3");
    expect_field_rejected(g.path, g.b, g.len, F_HEIGHT, 0, "images of 0 x 28");
    expect_field_rejected(g.path, g.b, g.len, F_LIKELIHOOD, 3, "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_N_CLASSES, MODEL_MAX_CLASSES + 1,
                          "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_Z_DIM, 0, "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_Z_DIM, UINT64_MAX, "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_X_DIM, 0, "bad architecture");
    expect_field_rejected(g.path, g.b, g.len, F_X_DIM, UINT64_MAX, "bad architecture");
    /* n_params that disagrees with the file size. */
    expect_field_rejected(g.path, g.b, g.len, F_N_PARAMS, g.s.m.n_params + 1, "truncated or corrupt");
    expect_field_rejected(g.path, g.b, g.len, F_N_PARAMS, g.s.m.n_params - 1, "truncated or corrupt");
    expect_field_rejected(g.path, g.b, g.len, F_N_PARAMS, 0, "truncated or corrupt");
    expect_field_rejected(g.path, g.b, g.len, F_N_PARAMS, UINT64_MAX, "truncated or corrupt");
    good_file_free(&g);
}

static void test_bad_training_state(void **state)
{
    fixture *fx = *state;
    good_file g;
    model_config c = cfg_small();
    good_file_make(&g, fx, &c);
    unsigned char *b = malloc(g.len);
    assert_non_null(b);
    /* An all-zero xoshiro state would draw zeros forever. */
    for (size_t rng = F_RNG_DATA; rng <= F_RNG_NOISE; rng += F_RNG_NOISE - F_RNG_DATA) {
        memcpy(b, g.b, g.len);
        for (size_t i = 0; i < 4; i++)
            tu_put_le64(b + OFF_HEADER + 8 * (rng + i), 0);
        fix_crc(b, g.len);
        tu_write_file(g.path, b, g.len);
        expect_read_fails(g.path, "bad RNG state", NULL);
        expect_field_rejected(g.path, g.b, g.len, rng + 4, (uint64_t)UINT32_MAX + 1, "bad RNG state");
        expect_field_rejected(g.path, g.b, g.len, rng + 5, 2, "bad RNG state");
    }
    expect_field_rejected(g.path, g.b, g.len, F_BATCH, 0, "bad training state");
    expect_field_rejected(g.path, g.b, g.len, F_BINARIZE, 3, "bad training state");
    const double bad_beta[] = {-0.5, NAN, INFINITY};
    for (size_t i = 0; i < 3; i++) {
        for (int f = 0; f < 2; f++) {
            memcpy(b, g.b, g.len);
            patch_field_f64(b, g.len, f ? F_NOISE : F_BETA, bad_beta[i]);
            tu_write_file(g.path, b, g.len);
            expect_read_fails(g.path, "bad training state", NULL);
        }
    }
    const double bad_lr[] = {0.0, -1e-3, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_lr / sizeof *bad_lr; i++) {
        memcpy(b, g.b, g.len);
        patch_field_f64(b, g.len, F_LR, bad_lr[i]);
        tu_write_file(g.path, b, g.len);
        expect_read_fails(g.path, "bad training state", NULL);
    }
    const size_t sums[] = {F_SUM_REC, F_SUM_KL, F_SECONDS};
    for (size_t i = 0; i < 3; i++) {
        memcpy(b, g.b, g.len);
        patch_field_f64(b, g.len, sums[i], NAN);
        tu_write_file(g.path, b, g.len);
        expect_read_fails(g.path, "bad training state", NULL);
        memcpy(b, g.b, g.len);
        patch_field_f64(b, g.len, sums[i], -INFINITY);
        tu_write_file(g.path, b, g.len);
        expect_read_fails(g.path, "bad training state", NULL);
    }
    free(b);
    good_file_free(&g);
}

/* ------------------------------------------------------------------------ */
/* Paths that cannot be read or written */

static void test_read_directory(void **state)
{
    fixture *fx = *state;
    expect_read_fails(fx->dir, "not a regular file", NULL);
}

/* A FIFO nobody writes (and a socket): refused at once, not waited on. */
static void test_read_fifo(void **state)
{
    fixture *fx = *state;
    char fifo[256], sock[256];
    tu_join(fifo, sizeof fifo, fx->dir, "pipe.bin");
    tu_join(sock, sizeof sock, fx->dir, "sock.bin");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    int fd = tu_bind_socket(sock);
    tu_deadline("ckpt_read of a FIFO", 10);
    expect_read_fails(fifo, "is a FIFO", "not a regular file");
    expect_read_fails(sock, "is a socket", "not a regular file");
    tu_deadline(NULL, 0);
    close(fd);
    unlink(fifo);
    unlink(sock);
}

static void test_read_missing(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "no-such.bin");
    expect_read_fails(path, "No such file", NULL);
    tu_join(path, sizeof path, fx->dir, "no-such-folder/vae.bin");
    expect_read_fails(path, "No such file", NULL);
}

static void test_save_into_missing_folder(void **state)
{
    fixture *fx = *state;
    char folder[256], path[256];
    tu_join(folder, sizeof folder, fx->dir, "missing");
    tu_join(path, sizeof path, folder, "vae.bin");
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 11);
    err_msg err = {{0}};
    assert_int_equal(ckpt_save(path, &s.m, s.adam_m, s.adam_v, &s.t, &err), -1);
    tu_assert_contains(err.text, path);
    tu_assert_contains(err.text, "does not exist");
    assert_false(tu_exists(folder));
    assert_int_equal(tu_count_entries(fx->dir, NULL, 0), 0);
    free_saved(&s);
}

static void test_save_onto_directory(void **state)
{
    fixture *fx = *state;
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 12);
    err_msg err = {{0}};
    assert_int_equal(ckpt_save(fx->dir, &s.m, s.adam_m, s.adam_v, &s.t, &err), -1);
    tu_assert_contains(err.text, fx->dir);
    tu_assert_contains(err.text, "directory");
    assert_int_equal(tu_count_entries(fx->dir, NULL, 0), 0);
    free_saved(&s);
}

static void test_save_dev_full(void **state)
{
    (void)state;
    saved s;
    model_config c = cfg_small();
    make_saved(&s, &c, 13);
    err_msg err = {{0}};
    assert_int_equal(ckpt_save("/dev/full", &s.m, s.adam_m, s.adam_v, &s.t, &err), -1);
    tu_assert_contains(err.text, "/dev/full");
    tu_assert_contains(err.text, "No space left");
    /* A tiny model fits in one stdio buffer: the error surfaces at commit. */
    saved t;
    model_config ct = cfg_tiny();
    make_saved(&t, &ct, 14);
    memset(&err, 0, sizeof err);
    assert_int_equal(ckpt_save("/dev/full", &t.m, t.adam_m, t.adam_v, &t.t, &err), -1);
    tu_assert_contains(err.text, "No space left");
    free_saved(&t);
    free_saved(&s);
}

/* Saves s over path in a child whose file size limit is limit bytes, so the
 * write fails part way; returns the child's message through msg. */
static int save_with_size_limit(const char *path, const saved *s, rlim_t limit,
                                char *msg, size_t msg_size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN); /* write(2) fails with EFBIG instead */
        struct rlimit lim = {limit, limit};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(3);
        err_msg err = {{0}};
        int rc = ckpt_save(path, &s->m, s->adam_m, s->adam_v, &s->t, &err);
        ssize_t w = write(fds[1], err.text, strlen(err.text));
        (void)w;
        _exit(rc == 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < msg_size && (r = read(fds[0], msg + n, msg_size - 1 - n)) > 0)
        n += (size_t)r;
    msg[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("save child died with signal %d", WTERMSIG(status));
    assert_int_not_equal(WEXITSTATUS(status), 3);
    return WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_failed_save_keeps_old_checkpoint(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    saved old, next;
    model_config c1 = cfg_tiny(), c2 = cfg_small();
    make_saved(&old, &c1, 15);
    make_saved(&next, &c2, 16);
    save_ok(path, &old);
    size_t len;
    unsigned char *before = tu_read_file(path, &len);
    /* Fails in the header, then in the first stdio buffer, then far in. */
    const rlim_t limits[] = {100, 5000, 200000};
    for (size_t i = 0; i < 3; i++) {
        char msg[ERR_MSG_LEN + 1];
        assert_int_equal(save_with_size_limit(path, &next, limits[i], msg, sizeof msg), -1);
        tu_assert_contains(msg, path);
        tu_assert_contains(msg, "File too large");
        tu_assert_file_equals(path, before, len);
        char hidden[256];
        assert_int_equal(tu_count_entries(fx->dir, hidden, sizeof hidden), 1);
        if (hidden[0])
            fail_msg("temp file %s left behind", hidden);
    }
    /* And the old checkpoint still reads as the old model. */
    ckpt_data d;
    err_msg err;
    if (ckpt_read(path, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.n_params, old.m.n_params);
    ckpt_data_free(&d);
    /* The limit itself is what failed: without it the same save works. */
    char msg[ERR_MSG_LEN + 1];
    assert_int_equal(save_with_size_limit(path, &next, RLIM_INFINITY, msg, sizeof msg), 0);
    assert_int_equal(ckpt_read(path, &d, &err), 0);
    assert_int_equal(d.n_params, next.m.n_params);
    ckpt_data_free(&d);
    free(before);
    free_saved(&old);
    free_saved(&next);
}

static void test_load_model(void **state)
{
    fixture *fx = *state;
    char path[256];
    tu_join(path, sizeof path, fx->dir, "vae.bin");
    saved s;
    model_config c = cfg_deep();
    make_saved(&s, &c, 17);
    save_ok(path, &s);
    model_net m;
    err_msg err = {{0}};
    ckpt_train t;
    if (ckpt_load_model(path, &m, &t, &err))
        fail_msg("%s", err.text);
    assert_memory_equal(&t, &s.t, sizeof t);
    assert_memory_equal(&m.cfg, &s.m.cfg, sizeof m.cfg);
    assert_int_equal(m.n_params, s.m.n_params);
    assert_int_equal(m.n_layers, s.m.n_layers);
    assert_memory_equal(m.layer, s.m.layer, sizeof m.layer);
    assert_memory_equal(m.params, s.m.params, m.n_params * sizeof(float));
    model_free(&m);

    /* Failure: an error naming the file, and nothing to free. */
    char missing[256];
    tu_join(missing, sizeof missing, fx->dir, "missing.bin");
    memset(&m, 0, sizeof m);
    assert_int_equal(ckpt_load_model(missing, &m, NULL, &err), -1);
    tu_assert_contains(err.text, missing);
    tu_assert_contains(err.text, "No such file");
    assert_null(m.params);
    free_saved(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_round_trip_relu),
        T(test_round_trip_tanh_two_hidden),
        T(test_header_fields_at_documented_offsets),
        T(test_save_twice_identical),
        T(test_save_replaces_old_checkpoint),
        T(test_every_bit_flip_detected_tiny),
        T(test_byte_flips_detected_mnist_size),
        T(test_truncated),
        T(test_not_a_checkpoint),
        T(test_newer_version),
        T(test_header_size_wrong),
        T(test_reads_version_2),
        T(test_reads_version_4),
        T(test_reads_version_5),
        T(test_round_trip_two_layers),
        T(test_rejects_bad_image_shape),
        T(test_reads_version_3),
        T(test_bad_controls),
        T(test_bad_fingerprint),
        T(test_nan_or_inf_values),
        T(test_architecture_mismatch),
        T(test_bad_architecture_values),
        T(test_bad_training_state),
        T(test_read_directory),
        T(test_read_fifo),
        T(test_read_missing),
        T(test_save_into_missing_folder),
        T(test_save_onto_directory),
        T(test_save_dev_full),
        T(test_failed_save_keeps_old_checkpoint),
        T(test_load_model),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
