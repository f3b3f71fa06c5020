/* test_lib.c - libvae through its public header alone: every call on every
 * kind of model against the vae command's output for the same images and
 * seeds (encode and score CSVs, sample and reconstruct PNGs, eval's loss),
 * every error path, and four threads sharing one model.
 *
 * The group trains seven small models with $VAE_BIN on generated data
 * (bars on 28 x 28 and 10 x 16 grey images, 8 x 8 colour ones) and takes
 * a checkpoint vae 0.2 wrote (format 2), then each test compares the
 * library's numbers with the command's, printed as the command prints
 * them. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <math.h>
#include <png.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vae.h"

int openblas_get_num_threads(void); /* OpenBLAS's: the calls must leave it alone */

#define N_TRAIN 200
#define N_TEST 40
#define SEED 7
#define IW_K 5

static const char *vae_bin;
static char dir[64];

/* The data sets: name, height, width, channels. */
typedef struct shape {
    const char *name;
    size_t rows, cols, ch;
} shape;

static const shape SHAPES[] = {{"grey", 28, 28, 1}, {"colour", 8, 8, 3}, {"wide", 10, 16, 1}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

/* A model kind: its data set (SHAPES), train options (NULL: the version-2
 * checkpoint of tests/data, written by vae 0.2) and what it is. */
typedef struct kind {
    const char *name;
    const char *args;
    int data;
    size_t latent, latent2, classes;
    const char *arch, *likelihood;
} kind;

static const kind KINDS[] = {
    {"mlp", "--hidden 32 --latent 4", 0, 4, 0, 0, "mlp", "bernoulli"},
    {"conditional", "--hidden 32 --latent 3 --conditional --likelihood gaussian", 0, 3, 0, 10,
     "mlp", "gaussian"},
    {"binarized", "--hidden 32 --latent 4 --binarize dynamic --likelihood cb", 0, 4, 0, 0,
     "mlp", "cb"},
    {"conv", "--arch conv --hidden 4,8 --latent 4", 0, 4, 0, 0, "conv", "bernoulli"},
    {"two-layer", "--hidden 32/16 --latent 6,3", 0, 6, 3, 0, "mlp", "bernoulli"},
    {"colour", "--hidden 32 --latent 4", 1, 4, 0, 0, "mlp", "bernoulli"},
    {"wide", "--hidden 32 --latent 4", 2, 4, 0, 0, "mlp", "bernoulli"},
    {"version-2", NULL, 0, 2, 0, 0, "mlp", "bernoulli"},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

/* The test images of each data set, as the files hold them. */
static uint8_t *test_px[N_SHAPES], *test_labels[N_SHAPES];

/* ---- helpers -------------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    rewind(fp);
    unsigned char *b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, fp), *len);
    b[*len] = 0;
    fclose(fp);
    return b;
}

/* One split of n images of shape sh: a bright bar each, vertical or
 * horizontal at a random place, labels 0-9 in turn. Keeps the bytes in
 * *px and *labels when asked. */
static void write_split(const char *folder, const char *split, size_t n, const shape *sh,
                        uint64_t seed, uint8_t **px, uint8_t **labels)
{
    size_t R = sh->rows, C = sh->cols, ch = sh->ch, D = R * C * ch, hdr = ch == 1 ? 16 : 20;
    size_t side = R < C ? R : C;
    unsigned char *img = calloc(hdr + n * D, 1), *lab = calloc(8 + n, 1);
    assert_true(img && lab);
    put_be32(img, ch == 1 ? 0x803 : 0x804);
    put_be32(img + 4, (uint32_t)n);
    put_be32(img + 8, (uint32_t)R);
    put_be32(img + 12, (uint32_t)C);
    if (ch == 3)
        put_be32(img + 16, 3);
    put_be32(lab, 0x801);
    put_be32(lab + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = img + hdr + i * D;
        lab[8 + i] = (unsigned char)(i % 10);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t pos = 1 + (seed >> 33) % (side - 3), vertical = i % 2;
        for (size_t k = 1; k + 1 < side; k++)
            for (size_t c = 0; c < ch; c++) {
                size_t y = vertical ? k : pos, x = vertical ? pos : k;
                p[(y * C + x) * ch + c] = (unsigned char)(255 - 40 * c);
                p[(y * C + x + 1) * ch + c] = (unsigned char)(90 + (seed >> 40) % 160);
            }
    }
    char path[256];
    snprintf(path, sizeof path, "%s/%s-images-idx%d-ubyte", folder, split, ch == 1 ? 3 : 4);
    write_file(path, img, hdr + n * D);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", folder, split);
    write_file(path, lab, 8 + n);
    if (px) {
        *px = malloc(n * D);
        *labels = malloc(n);
        memcpy(*px, img + hdr, n * D);
        memcpy(*labels, lab + 8, n);
    }
    free(img);
    free(lab);
}

/* Runs $VAE_BIN with the arguments (a printf format); stdout to OUT in
 * dir. Returns its exit status. */
static int vae_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int vae_run(const char *fmt, ...)
{
    char args[1024], cmd[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s > OUT 2> ERR", dir, vae_bin, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *data_of(const kind *k)
{
    return SHAPES[k->data].name;
}

static void ckpt_of(const kind *k, char *out, size_t size)
{
    snprintf(out, size, "%s/%s.bin", dir, k->name);
}

/* The test images of kind k as vae_images (U8). */
static vae_images images_of(const kind *k)
{
    const shape *sh = &SHAPES[k->data];
    vae_images im = {test_px[k->data], VAE_U8, N_TEST, sh->cols, sh->rows, sh->ch,
                     test_labels[k->data]};
    return im;
}

static vae *load(const kind *k)
{
    char path[160];
    ckpt_of(k, path, sizeof path);
    vae *m = NULL;
    vae_error err;
    if (vae_load(path, &m, &err))
        fail_msg("vae_load %s: %s", path, err.message);
    return m;
}

/* Field f (0-based) of each data row of a CSV in dir, into out[row]. */
static size_t csv_column(const char *name, size_t f, char out[][32], size_t max)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len, rows = 0;
    char *text = (char *)read_file(path, &len), *save = NULL;
    char *line = strtok_r(text, "\n", &save); /* the header */
    while ((line = strtok_r(NULL, "\n", &save)) && rows < max) {
        char *p = line;
        for (size_t i = 0; i < f && p; i++)
            p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        assert_non_null(p);
        size_t n = strcspn(p, ",");
        assert_true(n < 32);
        memcpy(out[rows], p, n);
        out[rows++][n] = 0;
    }
    free(text);
    return rows;
}

/* save_image's byte of a pixel mean (as the command's PNG grids). */
static uint8_t to_byte(float v)
{
    float x = v * 255.0f + 0.5f;
    return !(x > 0.0f) ? 0 : x >= 255.0f ? 255 : (uint8_t)x;
}

/* Checks that tile t of a PNG grid (8 a row, 2 pixels apart) in dir shows
 * the pixel means want (w x h x ch). */
static void assert_tile(const char *png, size_t n_tiles, size_t t, const float *want,
                        size_t w, size_t h, size_t ch)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, png);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&im, path));
    im.format = ch == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    size_t cols = n_tiles < 8 ? n_tiles : 8;
    assert_int_equal(im.width, 2 + cols * (w + 2));
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    assert_true(png_image_finish_read(&im, NULL, px, 0, NULL));
    size_t y0 = 2 + t / 8 * (h + 2), x0 = 2 + t % 8 * (w + 2), stride = im.width * ch;
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w * ch; x++) {
            uint8_t got = px[(y0 + y) * stride + x0 * ch + x], exp = to_byte(want[(y * w) * ch + x]);
            if (got != exp)
                fail_msg("%s tile %zu (%zu,%zu): the command drew %u, the library %u", png, t,
                         y, x, got, exp);
        }
    free(px);
}

/* ---- fixture -------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    vae_bin = getenv("VAE_BIN");
    if (!vae_bin || vae_bin[0] != '/') {
        fprintf(stderr, "test_lib: set VAE_BIN to the vae binary's absolute path (ctest does)\n");
        return -1;
    }
    strcpy(dir, "/tmp/test_lib.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char sub[128];
    for (size_t c = 0; c < N_SHAPES; c++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, SHAPES[c].name);
        mkdir(sub, 0755);
        write_split(sub, "train", N_TRAIN, &SHAPES[c], 11, NULL, NULL);
        write_split(sub, "t10k", N_TEST, &SHAPES[c], 12, &test_px[c], &test_labels[c]);
    }
    for (size_t i = 0; i < N_KINDS; i++) {
        const kind *k = &KINDS[i];
        if (!k->args) { /* a copy of the fixture */
            char from[256], to[160];
            size_t len;
            snprintf(from, sizeof from, "%s/ckpt-v2-mlp.bin", VAE_TEST_DATA_DIR);
            ckpt_of(k, to, sizeof to);
            unsigned char *b = read_file(from, &len);
            write_file(to, b, len);
            free(b);
            continue;
        }
        if (vae_run("train --data %s --epochs 2 --batch 32 --threads 1 --seed 3 --ckpt %s.bin "
                    "--out %s.out %s", data_of(k), k->name, k->name, k->args)) {
            fprintf(stderr, "test_lib: training the %s model failed (see %s/ERR)\n", k->name,
                    dir);
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return -1;
    for (size_t c = 0; c < N_SHAPES; c++)
        free(test_px[c]), free(test_labels[c]);
    return 0;
}

/* ---- every call against the command --------------------------------------- */

static void check_kind(const kind *k)
{
    vae *m = load(k);
    const vae_info *f = vae_describe(m);
    const shape *sh = &SHAPES[k->data];
    size_t ch = sh->ch, D = sh->rows * sh->cols * ch;
    assert_int_equal(f->width, sh->cols);
    assert_int_equal(f->height, sh->rows);
    assert_int_equal(f->channels, ch);
    assert_int_equal(f->pixels, D);
    assert_int_equal(f->latent, k->latent);
    assert_int_equal(f->latent2, k->latent2);
    assert_int_equal(f->classes, k->classes);
    assert_string_equal(f->arch, k->arch);
    assert_string_equal(f->likelihood, k->likelihood);
    assert_int_equal(f->binarized, k->args && strstr(k->args, "--binarize") != NULL);
    vae_images im = images_of(k);
    vae_error err;
    size_t W = f->latent + f->latent2;
    float *mu = malloc(N_TEST * W * sizeof *mu), *lv = malloc(N_TEST * W * sizeof *lv);
    float *rec = malloc(N_TEST * D * sizeof *rec), *out = malloc(N_TEST * D * sizeof *out);
    double *score = malloc(N_TEST * sizeof *score), *iw = malloc(N_TEST * sizeof *iw);
    static char col[N_TEST][32];
    char want[32];

    /* encode: vae encode's columns, as it prints them (%.6g). */
    assert_int_equal(vae_encode(m, &im, mu, lv, &err), 0);
    assert_int_equal(vae_run("encode --ckpt %s.bin --data %s --threads 1 -o enc.csv", k->name,
                             data_of(k)), 0);
    for (size_t j = 0; j < 2 * W; j++) {
        /* columns: h1 mu, h1 logvar, h2 mu, h2 logvar */
        size_t lat = f->latent, in_h2 = j >= 2 * lat, jj = in_h2 ? j - 2 * lat : j;
        size_t Z = in_h2 ? f->latent2 : lat, is_lv = jj >= Z, d = (in_h2 ? lat : 0) + jj % Z;
        assert_int_equal(csv_column("enc.csv", 2 + j, col, N_TEST), N_TEST);
        for (size_t i = 0; i < N_TEST; i++) {
            snprintf(want, sizeof want, "%.6g", (double)(is_lv ? lv : mu)[i * W + d]);
            if (strcmp(col[i], want))
                fail_msg("%s: encode image %zu column %zu: command %s, library %s", k->name,
                         i, j, col[i], want);
        }
    }

    /* score: the negative ELBO, and the bound with IW_K draws. */
    assert_int_equal(vae_score(m, &im, 0, SEED, score, &err), 0);
    assert_int_equal(vae_run("score --ckpt %s.bin --data %s --threads 1 --seed %d -o sc.csv",
                             k->name, data_of(k), SEED), 0);
    assert_int_equal(csv_column("sc.csv", 2, col, N_TEST), N_TEST);
    for (size_t i = 0; i < N_TEST; i++) {
        snprintf(want, sizeof want, "%.6f", score[i]);
        if (strcmp(col[i], want))
            fail_msg("%s: score %zu: command %s, library %s", k->name, i, col[i], want);
    }
    assert_int_equal(vae_score(m, &im, IW_K, SEED, iw, &err), 0);
    assert_int_equal(vae_run("score --ckpt %s.bin --data %s --threads 1 --seed %d --iw %d "
                             "-o iw.csv", k->name, data_of(k), SEED, IW_K), 0);
    assert_int_equal(csv_column("iw.csv", 2, col, N_TEST), N_TEST);
    for (size_t i = 0; i < N_TEST; i++) {
        snprintf(want, sizeof want, "%.6f", iw[i]);
        if (strcmp(col[i], want))
            fail_msg("%s: iw score %zu: command %s, library %s", k->name, i, col[i], want);
    }

    /* eval's loss is the mean negative ELBO, its bound the mean bound. */
    assert_int_equal(vae_run("eval --ckpt %s.bin --data %s --threads 1 --seed %d --iw %d "
                             "--json", k->name, data_of(k), SEED, IW_K), 0);
    char outp[160];
    snprintf(outp, sizeof outp, "%s/OUT", dir);
    size_t len;
    char *json = (char *)read_file(outp, &len);
    char *p = strstr(json, "\"test_loss\":");
    assert_non_null(p);
    double loss = strtod(p + 12, NULL), mean = 0.0, iw_mean = 0.0;
    assert_non_null(p = strstr(json, "\"iw_nll\":"));
    double bound = strtod(p + 9, NULL);
    for (size_t i = 0; i < N_TEST; i++) {
        mean += score[i] / N_TEST;
        iw_mean += iw[i] / N_TEST;
    }
    free(json);
    if (!(fabs(loss - mean) <= 2e-6) || !(fabs(bound - iw_mean) <= 2e-6))
        fail_msg("%s: eval's loss %.6f and bound %.6f, the library's mean scores %.6f and "
                 "%.6f", k->name, loss, bound, mean, iw_mean);

    /* reconstruct: the right-hand tiles of vae reconstruct. */
    assert_int_equal(vae_reconstruct(m, &im, rec, &err), 0);
    assert_int_equal(vae_run("reconstruct --ckpt %s.bin --data %s --threads 1 --n 8 -o rec.png",
                             k->name, data_of(k)), 0);
    for (size_t i = 0; i < 8; i++)
        assert_tile("rec.png", 16, 2 * i + 1, rec + i * D, sh->cols, sh->rows, ch);

    /* decode of the posterior means is the reconstruction: bit for bit for
     * the MLP; the conv encoder's products round by the batch (vae_encode
     * takes 128 images at a time, vae_reconstruct 32), so its codes, and
     * pixels, differ in the last digits. */
    float *z = malloc(N_TEST * f->latent * sizeof *z);
    for (size_t i = 0; i < N_TEST; i++)
        memcpy(z + i * f->latent, mu + i * W, f->latent * sizeof *z);
    assert_int_equal(vae_decode(m, z, N_TEST, im.labels, out, &err), 0);
    double worst = 0.0;
    for (size_t i = 0; i < N_TEST * D; i++)
        worst = fmax(worst, fabs((double)out[i] - rec[i]));
    if (strcmp(f->arch, "conv") == 0)
        assert_true(worst < 1e-4);
    else
        assert_memory_equal(out, rec, N_TEST * D * sizeof *out);
    free(z);

    /* sample: vae sample's grid (one label for a conditional model). */
    uint8_t labels[16];
    memset(labels, 2, sizeof labels);
    assert_int_equal(vae_sample(m, 16, 5, labels, out, &err), 0);
    assert_int_equal(vae_run("sample --ckpt %s.bin --n 16 --seed 5 %s -o samp.png", k->name,
                             f->classes ? "--label 2" : ""), 0);
    for (size_t i = 0; i < 16; i++)
        assert_tile("samp.png", 16, i, out + i * D, sh->cols, sh->rows, ch);
    float *again = malloc(16 * D * sizeof *again);
    assert_int_equal(vae_sample(m, 16, 5, labels, again, &err), 0);
    assert_memory_equal(again, out, 16 * D * sizeof *out);
    free(again);

    /* Floats v * (1/255) are the bytes v, in every call that reads images. */
    float *x = malloc(N_TEST * D * sizeof *x), *mu2 = malloc(N_TEST * W * sizeof *mu2);
    double *s2 = malloc(N_TEST * sizeof *s2);
    for (size_t i = 0; i < N_TEST * D; i++)
        x[i] = (float)test_px[k->data][i] * (1.0f / 255.0f);
    vae_images fim = im;
    fim.data = x, fim.type = VAE_F32;
    assert_int_equal(vae_encode(m, &fim, mu2, NULL, &err), 0);
    assert_memory_equal(mu2, mu, N_TEST * W * sizeof *mu);
    assert_int_equal(vae_score(m, &fim, 0, SEED, s2, &err), 0);
    assert_memory_equal(s2, score, N_TEST * sizeof *s2);
    assert_int_equal(vae_score(m, &fim, IW_K, SEED, s2, &err), 0);
    assert_memory_equal(s2, iw, N_TEST * sizeof *s2);
    assert_int_equal(vae_reconstruct(m, &fim, out, &err), 0);
    assert_memory_equal(out, rec, N_TEST * D * sizeof *out);
    print_message("%s: encode, score (k 0 and %d), eval, reconstruct, decode and sample "
                  "match the command\n", k->name, IW_K);
    free(x), free(mu2), free(s2);
    free(mu), free(lv), free(rec), free(out), free(score), free(iw);
    vae_free(m);
}

static void test_mlp(void **state) { (void)state; check_kind(&KINDS[0]); }
static void test_conditional(void **state) { (void)state; check_kind(&KINDS[1]); }
static void test_binarized(void **state) { (void)state; check_kind(&KINDS[2]); }
static void test_conv(void **state) { (void)state; check_kind(&KINDS[3]); }
static void test_two_layer(void **state) { (void)state; check_kind(&KINDS[4]); }
static void test_colour(void **state) { (void)state; check_kind(&KINDS[5]); }
static void test_wide(void **state) { (void)state; check_kind(&KINDS[6]); }
static void test_version_2(void **state) { (void)state; check_kind(&KINDS[7]); }

/* ---- errors ---------------------------------------------------------------- */

/* The last call failed with code and a message containing text. */
static void assert_failed(int rc, const vae_error *err, int code, const char *text)
{
    assert_int_equal(rc, -1);
    if (err->code != code || !strstr(err->message, text))
        fail_msg("expected code %d and \"%s\", got %d \"%s\"", code, text, err->code,
                 err->message);
}

static void test_load_errors(void **state)
{
    (void)state;
    vae *m = (vae *)&m;
    vae_error err;
    assert_failed(vae_load("/nonexistent/model.bin", &m, &err), &err, VAE_ELOAD,
                  "/nonexistent/model.bin");
    assert_null(m);
    assert_failed(vae_load(NULL, &m, &err), &err, VAE_EARG, "path is NULL");
    assert_failed(vae_load("x", NULL, &err), &err, VAE_EARG, "out is NULL");
    assert_int_equal(vae_load("/nonexistent/model.bin", &m, NULL), -1); /* err may be NULL */

    /* Corrupt and truncated copies of a good checkpoint. */
    char good[160], bad[160];
    ckpt_of(&KINDS[0], good, sizeof good);
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    size_t len;
    unsigned char *b = read_file(good, &len);
    b[0] ^= 0xff; /* the magic */
    write_file(bad, b, len);
    assert_failed(vae_load(bad, &m, &err), &err, VAE_ELOAD, bad);
    b[0] ^= 0xff;
    b[len / 2] ^= 0x55; /* a parameter: the checksum */
    write_file(bad, b, len);
    assert_failed(vae_load(bad, &m, &err), &err, VAE_ELOAD, bad);
    b[len / 2] ^= 0x55;
    size_t cuts[] = {0, 10, len / 3, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(bad, b, cuts[i]);
        assert_failed(vae_load(bad, &m, &err), &err, VAE_ELOAD, bad);
        assert_null(m);
    }
    /* A FIFO nobody writes: refused at once (should it wait, SIGALRM ends
     * the test binary, a failure rather than a hang). */
    char fifo[160];
    snprintf(fifo, sizeof fifo, "%s/pipe.bin", dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    alarm(10);
    assert_failed(vae_load(fifo, &m, &err), &err, VAE_ELOAD, "not a regular file");
    alarm(0);
    assert_non_null(strstr(err.message, fifo));
    assert_null(m);
    unlink(fifo);
    /* A 2 GiB file (sparse) is refused from its first bytes, not read into
     * memory first: not a checkpoint, or a checkpoint's header with the
     * wrong size. */
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    long peak = ru.ru_maxrss; /* KiB */
    for (int with_header = 0; with_header < 2; with_header++) {
        FILE *fp = fopen(bad, "wb");
        assert_non_null(fp);
        if (with_header)
            assert_int_equal(fwrite(b, 1, 4096, fp), 4096);
        assert_int_equal(fclose(fp), 0);
        assert_int_equal(truncate(bad, (off_t)1 << 31), 0);
        assert_failed(vae_load(bad, &m, &err), &err, VAE_ELOAD,
                      with_header ? "truncated or corrupt checkpoint (2147483648 bytes"
                                  : "not a vae checkpoint");
        assert_null(m);
    }
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    if (ru.ru_maxrss - peak > 256 * 1024)
        fail_msg("loading a 2 GiB non-checkpoint raised the peak memory by %ld KiB",
                 ru.ru_maxrss - peak);
    write_file(bad, b, len);
    assert_int_equal(vae_load(bad, &m, &err), 0);
    assert_int_equal(err.code, VAE_OK);
    vae_free(m);
    free(b);
    vae_free(NULL);
    assert_null(vae_describe(NULL));
    assert_non_null(vae_version());
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", VAE_VERSION_MAJOR, VAE_VERSION_MINOR, VAE_VERSION_PATCH);
    assert_string_equal(vae_version(), v);
    assert_string_equal(VAE_VERSION_STRING, v);
}

static void test_call_errors(void **state)
{
    (void)state;
    vae *m = load(&KINDS[0]), *c = load(&KINDS[1]);
    vae_error err;
    vae_images im = images_of(&KINDS[0]), bad;
    size_t D = vae_describe(m)->pixels;
    float mu[N_TEST * 4], *out = malloc(N_TEST * D * sizeof *out), z[4] = {0};
    double s[N_TEST];

    assert_failed(vae_encode(NULL, &im, mu, NULL, &err), &err, VAE_EARG, "model is NULL");
    assert_failed(vae_encode(m, NULL, mu, NULL, &err), &err, VAE_EARG, "images is NULL");
    assert_failed(vae_encode(m, &im, NULL, NULL, &err), &err, VAE_EARG, "mu is NULL");
    bad = im, bad.data = NULL;
    assert_failed(vae_score(m, &bad, 0, 1, s, &err), &err, VAE_EARG, "images->data is NULL");
    bad = im, bad.width = 27;
    assert_failed(vae_reconstruct(m, &bad, out, &err), &err, VAE_EARG,
                  "the images are 27 x 28 x 1");
    bad = im, bad.channels = 3;
    assert_failed(vae_score(m, &bad, 0, 1, s, &err), &err, VAE_EARG, "model's are 28 x 28 x 1");
    bad = im, bad.type = (vae_pixels)7;
    assert_failed(vae_encode(m, &bad, mu, NULL, &err), &err, VAE_EARG, "neither VAE_F32");
    float *x = calloc(N_TEST * D, sizeof *x);
    x[3 * D + 5] = 1.5f;
    bad = im, bad.data = x, bad.type = VAE_F32;
    assert_failed(vae_score(m, &bad, 0, 1, s, &err), &err, VAE_EARG, "image 3, value 5 is 1.5");
    x[3 * D + 5] = NAN;
    assert_failed(vae_encode(m, &bad, mu, NULL, &err), &err, VAE_EARG, "image 3, value 5");
    free(x);
    bad = im, bad.n = SIZE_MAX / 2;
    assert_failed(vae_score(m, &bad, 0, 1, s, &err), &err, VAE_EARG, "are too many");
    assert_failed(vae_sample(m, SIZE_MAX / 4, 1, NULL, out, &err), &err, VAE_EARG,
                  "are too many");
    assert_failed(vae_score(m, &im, 1000001, 1, s, &err), &err, VAE_EARG, "at most 1000000");
    assert_failed(vae_score(m, &im, 0, 1, NULL, &err), &err, VAE_EARG, "score is NULL");
    assert_failed(vae_reconstruct(m, &im, NULL, &err), &err, VAE_EARG, "out is NULL");
    assert_failed(vae_decode(m, NULL, 1, NULL, out, &err), &err, VAE_EARG, "z is NULL");
    assert_failed(vae_decode(m, z, 1, NULL, NULL, &err), &err, VAE_EARG, "out is NULL");
    assert_failed(vae_decode(m, z, SIZE_MAX / 2, NULL, out, &err), &err, VAE_EARG,
                  "are too many");
    /* Codes that would fit in memory, whose images would not: refused
     * before z (4 floats here) is read past its end. */
    assert_failed(vae_decode(m, z, SIZE_MAX / (4 * D) + 1, NULL, out, &err), &err, VAE_EARG,
                  "images are too many");
    assert_failed(vae_sample(m, SIZE_MAX / (4 * D) + 1, 1, NULL, out, &err), &err, VAE_EARG,
                  "samples are too many");
    /* Finite codes at the end of float's range overflow the decoder: an
     * error, not NaN pixels. */
    float huge[4] = {FLT_MAX, -FLT_MAX, FLT_MAX, -FLT_MAX};
    assert_failed(vae_decode(m, huge, 1, NULL, out, &err), &err, VAE_EARG,
                  "code 0 is too large to decode");
    z[2] = INFINITY;
    assert_failed(vae_decode(m, z, 1, NULL, out, &err), &err, VAE_EARG,
                  "code 0, value 2 is not a finite number");
    assert_failed(vae_sample(m, 4, 1, NULL, NULL, &err), &err, VAE_EARG, "out is NULL");
    assert_failed(vae_sample(NULL, 4, 1, NULL, out, &err), &err, VAE_EARG, "model is NULL");

    /* A conditional model needs its labels, each in range. */
    vae_images ci = images_of(&KINDS[1]);
    bad = ci, bad.labels = NULL;
    assert_failed(vae_encode(c, &bad, mu, NULL, &err), &err, VAE_EARG, "labels is NULL");
    uint8_t labels[N_TEST];
    memcpy(labels, ci.labels, N_TEST);
    labels[7] = 10;
    bad = ci, bad.labels = labels;
    assert_failed(vae_score(c, &bad, 3, 1, s, &err), &err, VAE_EARG,
                  "label 10 of image 7 is out of range: the model knows labels 0 to 9");
    assert_failed(vae_sample(c, 4, 1, NULL, out, &err), &err, VAE_EARG, "labels is NULL");
    z[2] = 0.0f;
    assert_failed(vae_decode(c, z, 1, labels + 7, out, &err), &err, VAE_EARG, "label 10");
    /* An unconditional model ignores labels; n = 0 does nothing. */
    im.labels = labels;
    assert_int_equal(vae_score(m, &im, 0, 1, s, &err), 0);
    im.n = 0, im.data = NULL;
    assert_int_equal(vae_score(m, &im, 0, 1, s, &err), 0);
    assert_int_equal(vae_sample(m, 0, 1, NULL, out, NULL), 0);
    free(out);
    vae_free(m);
    vae_free(c);
}

/* ---- the program's state --------------------------------------------------- */

/* What a host program owns: its signal handlers, locale, current directory
 * and OpenBLAS's thread count. */
typedef struct host_state {
    struct sigaction sig[4];
    char locale[256], cwd[512];
    int blas_threads;
} host_state;

static const int SIGNALS[4] = {SIGINT, SIGTERM, SIGPIPE, SIGHUP};

static void read_state(host_state *h)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sigaction(SIGNALS[i], NULL, &h->sig[i]), 0);
    snprintf(h->locale, sizeof h->locale, "%s", setlocale(LC_ALL, NULL));
    assert_non_null(getcwd(h->cwd, sizeof h->cwd));
    h->blas_threads = openblas_get_num_threads();
}

/* Every call, on every kind, leaves the program's state as it was. */
static void test_host_state_untouched(void **state)
{
    (void)state;
    host_state before, after;
    read_state(&before);
    for (size_t i = 0; i < N_KINDS; i++) {
        vae *m = load(&KINDS[i]);
        const vae_info *f = vae_describe(m);
        vae_images im = images_of(&KINDS[i]);
        size_t W = f->latent + f->latent2;
        float *mu = malloc(N_TEST * W * sizeof *mu), *out = malloc(N_TEST * f->pixels * 4);
        double score[N_TEST];
        vae_error err;
        assert_int_equal(vae_encode(m, &im, mu, NULL, &err), 0);
        assert_int_equal(vae_reconstruct(m, &im, out, &err), 0);
        assert_int_equal(vae_score(m, &im, 3, 1, score, &err), 0);
        assert_int_equal(vae_sample(m, 4, 1, im.labels, out, &err), 0);
        assert_int_equal(vae_decode(m, mu, 1, im.labels, out, &err), 0); /* h1 leads a row */
        free(mu), free(out);
        vae_free(m);
    }
    read_state(&after);
    for (int i = 0; i < 4; i++) {
        assert_true(after.sig[i].sa_handler == before.sig[i].sa_handler);
        assert_int_equal(after.sig[i].sa_flags, before.sig[i].sa_flags);
    }
    assert_string_equal(after.locale, before.locale);
    assert_string_equal(after.cwd, before.cwd);
    assert_int_equal(after.blas_threads, before.blas_threads);
}

/* ---- threads --------------------------------------------------------------- */

typedef struct job {
    const vae *m;
    const vae_images *im;
    size_t W, D;
    float *mu, *rec;
    double *score, *iw;
    int rc;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    vae_error err;
    for (int r = 0; r < 3; r++) /* a few rounds, so calls overlap */
        j->rc |= vae_encode(j->m, j->im, j->mu, NULL, &err) |
                 vae_score(j->m, j->im, 0, SEED, j->score, &err) |
                 vae_score(j->m, j->im, IW_K, SEED, j->iw, &err) |
                 vae_reconstruct(j->m, j->im, j->rec, &err);
    return NULL;
}

static job make_job(const vae *m, const vae_images *im)
{
    const vae_info *f = vae_describe(m);
    job j = {m, im, f->latent + f->latent2, f->pixels, NULL, NULL, NULL, NULL, 0};
    j.mu = malloc(N_TEST * j.W * sizeof *j.mu);
    j.rec = malloc(N_TEST * j.D * sizeof *j.rec);
    j.score = malloc(N_TEST * sizeof *j.score);
    j.iw = malloc(N_TEST * sizeof *j.iw);
    return j;
}

static void free_job(job *j)
{
    free(j->mu), free(j->rec), free(j->score), free(j->iw);
}

static void test_threads(void **state)
{
    (void)state;
    for (size_t kk = 0; kk < N_KINDS; kk += 3) { /* the MLP and the conv VAE */
        vae *m = load(&KINDS[kk]);
        vae_images im = images_of(&KINDS[kk]);
        int blas_threads = openblas_get_num_threads();
        job seq = make_job(m, &im), par[4];
        worker(&seq);
        assert_int_equal(seq.rc, 0);
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            par[i] = make_job(m, &im);
            assert_int_equal(pthread_create(&t[i], NULL, worker, &par[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            assert_int_equal(pthread_join(t[i], NULL), 0);
            assert_int_equal(par[i].rc, 0);
            assert_memory_equal(par[i].mu, seq.mu, N_TEST * seq.W * sizeof *seq.mu);
            assert_memory_equal(par[i].rec, seq.rec, N_TEST * seq.D * sizeof *seq.rec);
            assert_memory_equal(par[i].score, seq.score, N_TEST * sizeof *seq.score);
            assert_memory_equal(par[i].iw, seq.iw, N_TEST * sizeof *seq.iw);
            free_job(&par[i]);
        }
        free_job(&seq);
        vae_free(m);
        assert_int_equal(openblas_get_num_threads(), blas_threads);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The command runs OpenBLAS on one thread, and a product split across
     * OpenBLAS threads rounds otherwise: the library gives the command's
     * numbers at one thread, so the test runs there. */
    const char *bt = getenv("OPENBLAS_NUM_THREADS");
    if (!bt || strcmp(bt, "1") != 0) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "test_lib: cannot re-execute itself with OPENBLAS_NUM_THREADS=1\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp),         cmocka_unit_test(test_conditional),
        cmocka_unit_test(test_binarized),   cmocka_unit_test(test_conv),
        cmocka_unit_test(test_two_layer),   cmocka_unit_test(test_colour),
        cmocka_unit_test(test_wide),        cmocka_unit_test(test_version_2),
        cmocka_unit_test(test_load_errors), cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_host_state_untouched), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
