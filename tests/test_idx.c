/* test_idx.c - IDX reader: raw and gzip round trips, idx_load's file
 * lookup, and one test per malformed input with its exact error text.
 *
 * Every test writes its own small IDX files into a fresh mkdtemp folder,
 * which the teardown removes; no network and no MNIST needed. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "idx.h"
#include "testutil.h"

/* ---------------------------------------------------------------------- */
/* Fixtures: a temp folder per test                                        */

typedef struct fixture {
    char dir[64];
    char path[512]; /* scratch for tpath() */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/test_idx.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p); /* the directory-instead-of-file test */
        }
        closedir(d);
    }
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

static const char *tpath(fixture *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    return f->path;
}

/* ---------------------------------------------------------------------- */
/* Building IDX files                                                      */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Deterministic pixels: noisy enough that deflate cannot shrink them to
 * nothing, so flipping compressed bytes really breaks the stream. */
static uint8_t pixel(size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u + 12345u;
    x ^= x >> 15;
    return (uint8_t)(x & 0x3f) + (uint8_t)(i % 7);
}

/* idx3 file: magic, n, rows, cols, then data_len bytes of pixel(i).
 * data_len may differ from n*rows*cols to build broken files. */
/* An IDX file: magic, the nd dimensions, then data_len bytes pixel(i). */
static uint8_t *make_idx(uint32_t magic, const uint32_t *dims, size_t nd, size_t data_len,
                         size_t *len)
{
    size_t head = 4 + 4 * nd;
    *len = head + data_len;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, magic);
    for (size_t i = 0; i < nd; i++)
        put_be32(b + 4 + 4 * i, dims[i]);
    for (size_t i = 0; i < data_len; i++)
        b[head + i] = pixel(i);
    return b;
}

static uint8_t *make_idx3(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                          size_t data_len, size_t *len)
{
    const uint32_t dims[3] = {n, rows, cols};
    return make_idx(magic, dims, 3, data_len, len);
}

/* An idx4 file of n images of rows x cols x ch bytes, pixel(i) each. */
static uint8_t *make_idx4(uint32_t n, uint32_t rows, uint32_t cols, uint32_t ch,
                          size_t *len)
{
    const uint32_t dims[4] = {n, rows, cols, ch};
    return make_idx(IDX_MAGIC_IMAGES4, dims, 4, (size_t)n * rows * cols * ch, len);
}

static uint8_t *make_images(uint32_t n, size_t *len)
{
    return make_idx3(IDX_MAGIC_IMAGES, n, 28, 28, (size_t)n * 784, len);
}

/* idx1 file with labels i % 10. */
static uint8_t *make_labels(uint32_t n, size_t *len)
{
    *len = 8 + n;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, IDX_MAGIC_LABELS);
    put_be32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = (uint8_t)(i % 10);
    return b;
}

static void write_raw(const char *path, const uint8_t *b, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (len > 0)
        assert_int_equal(fwrite(b, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void write_gz(const char *path, const uint8_t *b, size_t len)
{
    gzFile gz = gzopen(path, "wb9");
    assert_non_null(gz);
    if (len > 0)
        assert_int_equal(gzwrite(gz, b, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long sz = ftell(fp);
    assert_true(sz >= 0);
    rewind(fp);
    uint8_t *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, fp), (size_t)sz);
    fclose(fp);
    *len = (size_t)sz;
    return b;
}

/* Writes raw images/labels of n items as NAME in the fixture folder. */
static void put_images(fixture *f, const char *name, uint32_t n, int gz)
{
    size_t len;
    uint8_t *b = make_images(n, &len);
    (gz ? write_gz : write_raw)(tpath(f, name), b, len);
    free(b);
}

static void put_labels(fixture *f, const char *name, uint32_t n, int gz)
{
    size_t len;
    uint8_t *b = make_labels(n, &len);
    (gz ? write_gz : write_raw)(tpath(f, name), b, len);
    free(b);
}

/* ---------------------------------------------------------------------- */
/* Assertions on failures                                                  */

#define assert_has(text, needle)                                               \
    do {                                                                       \
        if (!strstr((text), (needle)))                                         \
            fail_msg("expected \"%s\" in error: %s", (needle), (text));        \
    } while (0)

/* idx_read_images must fail on path with an error naming the file and
 * containing phrase; outputs must come back empty. */
static void expect_images_error(const char *path, const char *phrase)
{
    err_msg err = {{0}};
    uint8_t *data = (uint8_t *)&err; /* poison: must be reset to NULL */
    size_t n = 99, rows = 99, cols = 99, chans = 99;
    assert_int_equal(idx_read_images(path, &data, &n, &rows, &cols, &chans, &err), -1);
    assert_int_equal(chans, 0);
    assert_null(data);
    assert_int_equal(n, 0);
    assert_int_equal(rows, 0);
    assert_int_equal(cols, 0);
    assert_has(err.text, path);
    assert_has(err.text, phrase);
}

static void expect_labels_error(const char *path, const char *phrase)
{
    err_msg err = {{0}};
    uint8_t *data = (uint8_t *)&err;
    size_t n = 99;
    assert_int_equal(idx_read_labels(path, &data, &n, &err), -1);
    assert_null(data);
    assert_int_equal(n, 0);
    assert_has(err.text, path);
    assert_has(err.text, phrase);
}

static void assert_set_empty(const idx_set *s)
{
    assert_int_equal(s->n, 0);
    assert_int_equal(s->rows, 0);
    assert_int_equal(s->cols, 0);
    assert_null(s->images);
    assert_null(s->labels);
}

/* idx_load must fail with phrase (and the optional name) in the error. */
static void expect_load_error(fixture *f, const char *split, const char *phrase,
                              const char *name)
{
    idx_set s;
    err_msg err = {{0}};
    memset(&s, 0xab, sizeof s); /* idx_load must zero it even on failure */
    assert_int_equal(idx_load(&s, f->dir, split, &err), -1);
    assert_set_empty(&s);
    assert_has(err.text, phrase);
    if (name)
        assert_has(err.text, name);
}

/* ---------------------------------------------------------------------- */
/* Reading good files                                                      */

static void test_raw_and_gzip_read_identically(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *src = make_images(7, &len);
    write_raw(tpath(f, "a"), src, len);
    write_gz(tpath(f, "a.gz"), src, len);

    uint8_t *raw = NULL, *gz = NULL;
    size_t n1, r1, c1, n2, r2, c2, chans;
    err_msg err = {{0}};
    assert_int_equal(idx_read_images(tpath(f, "a"), &raw, &n1, &r1, &c1, &chans, &err), 0);
    assert_int_equal(idx_read_images(tpath(f, "a.gz"), &gz, &n2, &r2, &c2, &chans, &err), 0);
    assert_int_equal(n1, 7);
    assert_int_equal(r1, 28);
    assert_int_equal(c1, 28);
    assert_int_equal(n2, n1);
    assert_int_equal(r2, r1);
    assert_int_equal(c2, c1);
    assert_memory_equal(raw, src + 16, 7 * 784);
    assert_memory_equal(gz, src + 16, 7 * 784);
    free(raw);
    free(gz);
    free(src);

    uint8_t *lsrc = make_labels(13, &len);
    write_raw(tpath(f, "l"), lsrc, len);
    write_gz(tpath(f, "l.gz"), lsrc, len);
    size_t m1, m2;
    assert_int_equal(idx_read_labels(tpath(f, "l"), &raw, &m1, &err), 0);
    assert_int_equal(idx_read_labels(tpath(f, "l.gz"), &gz, &m2, &err), 0);
    assert_int_equal(m1, 13);
    assert_int_equal(m2, 13);
    assert_memory_equal(raw, lsrc + 8, 13);
    assert_memory_equal(gz, lsrc + 8, 13);
    free(raw);
    free(gz);
    free(lsrc);
}

static void test_non_square_images_read(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *src = make_idx3(IDX_MAGIC_IMAGES, 3, 5, 4, 60, &len);
    write_raw(tpath(f, "a"), src, len);
    uint8_t *data = NULL;
    size_t n, rows, cols, chans;
    err_msg err = {{0}};
    /* The reader takes any size. */
    assert_int_equal(idx_read_images(tpath(f, "a"), &data, &n, &rows, &cols, &chans, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(rows, 5);
    assert_int_equal(cols, 4);
    assert_memory_equal(data, src + 16, 60);
    free(data);
    free(src);
}

static void test_concatenated_gzip_members(void **state)
{
    fixture *f = *state;
    size_t len, l1, l2;
    uint8_t *src = make_images(2, &len);
    /* Split the file in two gzip members, as `cat a.gz b.gz` would. */
    write_gz(tpath(f, "p1.gz"), src, 1000);
    write_gz(tpath(f, "p2.gz"), src + 1000, len - 1000);
    uint8_t *g1 = slurp(tpath(f, "p1.gz"), &l1);
    uint8_t *g2 = slurp(tpath(f, "p2.gz"), &l2);
    uint8_t *cat = malloc(l1 + l2);
    assert_non_null(cat);
    memcpy(cat, g1, l1);
    memcpy(cat + l1, g2, l2);
    write_raw(tpath(f, "cat.gz"), cat, l1 + l2);

    uint8_t *data = NULL;
    size_t n, rows, cols, chans;
    err_msg err = {{0}};
    assert_int_equal(idx_read_images(tpath(f, "cat.gz"), &data, &n, &rows, &cols, &chans, &err), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(data, src + 16, 2 * 784);
    free(data);
    free(cat);
    free(g1);
    free(g2);
    free(src);
}

/* ---------------------------------------------------------------------- */
/* idx_load                                                                */

static void check_loaded(const idx_set *s, size_t n)
{
    assert_int_equal(s->n, n);
    assert_int_equal(s->rows, IDX_ROWS);
    assert_int_equal(s->cols, IDX_COLS);
    assert_non_null(s->images);
    assert_non_null(s->labels);
    for (size_t i = 0; i < n * 784; i++)
        assert_int_equal(s->images[i], pixel(i));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->labels[i], i % 10);
}

static void test_load_finds_raw_and_gz(void **state)
{
    fixture *f = *state;
    idx_set s;
    err_msg err = {{0}};

    /* train: images raw, labels gzip; t10k: both gzip. */
    put_images(f, "train-images-idx3-ubyte", 12, 0);
    put_labels(f, "train-labels-idx1-ubyte.gz", 12, 1);
    put_images(f, "t10k-images-idx3-ubyte.gz", 5, 1);
    put_labels(f, "t10k-labels-idx1-ubyte.gz", 5, 1);

    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    check_loaded(&s, 12);
    idx_free(&s);
    assert_set_empty(&s);

    /* A trailing slash on the folder is fine. */
    char dir_slash[80];
    snprintf(dir_slash, sizeof dir_slash, "%s/", f->dir);
    assert_int_equal(idx_load(&s, dir_slash, "t10k", &err), 0);
    check_loaded(&s, 5);
    idx_free(&s);
    assert_set_empty(&s);
    idx_free(&s); /* safe twice */
}

static void test_load_prefers_raw_over_gz(void **state)
{
    fixture *f = *state;
    idx_set s;
    err_msg err = {{0}};
    put_images(f, "train-images-idx3-ubyte", 4, 0);
    put_images(f, "train-images-idx3-ubyte.gz", 3, 1);
    put_labels(f, "train-labels-idx1-ubyte", 4, 0);
    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    assert_int_equal(s.n, 4);
    idx_free(&s);
}

static void test_load_missing_names_both_paths(void **state)
{
    fixture *f = *state;
    char raw[128], gz[128];
    snprintf(raw, sizeof raw, "%s/train-images-idx3-ubyte", f->dir);
    snprintf(gz, sizeof gz, "%s/train-images-idx3-ubyte.gz", f->dir);
    expect_load_error(f, "train", raw, gz);
    expect_load_error(f, "train", "not found", "scripts/fetch_data.sh");
    expect_load_error(f, "train", "--data", NULL);

    expect_load_error(f, "train", "idx4", "vae import");
}

/* Images without a label file: an unlabelled set, every label 0. */
static void test_load_without_labels(void **state)
{
    fixture *f = *state;
    put_images(f, "train-images-idx3-ubyte", 2, 0);
    idx_set s;
    err_msg err = {{0}};
    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.n_classes, 0);
    assert_int_equal(s.channels, 1);
    assert_int_equal(s.labels[0], 0);
    assert_int_equal(s.labels[1], 0);
    idx_free(&s);
    char images[IDX_PATH_MAX], labels[IDX_PATH_MAX];
    assert_int_equal(idx_split_paths(f->dir, "train", images, labels, &err), 0);
    assert_non_null(strstr(images, "train-images-idx3-ubyte"));
    assert_string_equal(labels, "");
}

static void test_load_rejects_unknown_split(void **state)
{
    fixture *f = *state;
    expect_load_error(f, "valid", "unknown split 'valid'", NULL);
}

/* Any size loads; idx4 files hold colour images, channels last. */
static void test_load_any_size_and_colour(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *b = make_idx3(IDX_MAGIC_IMAGES, 3, 5, 7, 3 * 5 * 7, &len);
    write_raw(tpath(f, "train-images-idx3-ubyte"), b, len);
    free(b);
    put_labels(f, "train-labels-idx1-ubyte", 3, 0);
    idx_set s;
    err_msg err = {{0}};
    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    assert_int_equal(s.rows, 5);
    assert_int_equal(s.cols, 7);
    assert_int_equal(s.channels, 1);
    assert_int_equal(s.n_classes, 3); /* labels 0, 1, 2 */
    assert_int_equal(idx_image_bytes(&s), 35);
    idx_free(&s);

    /* The same folder with an idx4 file instead: 3 colour images of 4x6. */
    remove(tpath(f, "train-images-idx3-ubyte"));
    b = make_idx4(3, 4, 6, 3, &len);
    write_gz(tpath(f, "train-images-idx4-ubyte.gz"), b, len);
    free(b);
    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    assert_int_equal(s.rows, 4);
    assert_int_equal(s.cols, 6);
    assert_int_equal(s.channels, 3);
    assert_int_equal(idx_image_bytes(&s), 72);
    for (size_t i = 0; i < 3 * 72; i++)
        assert_int_equal(s.images[i], pixel(i));
    /* Gathered as the model sees it: each image's bytes in file order. */
    float x[72];
    idx_gather(&s, NULL, 2, 1, NULL, x);
    for (size_t i = 0; i < 72; i++)
        assert_true(x[i] == (float)pixel(2 * 72 + i) * (1.0f / 255.0f));
    idx_fingerprint fp = idx_fingerprint_of(&s);
    idx_free(&s);

    /* An idx3 file, if there is one, wins over the idx4 one. */
    b = make_idx3(IDX_MAGIC_IMAGES, 3, 4, 18, 3 * 72, &len);
    write_raw(tpath(f, "train-images-idx3-ubyte"), b, len);
    free(b);
    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    assert_int_equal(s.channels, 1);
    assert_int_equal(s.cols, 18);
    idx_fingerprint fp3 = idx_fingerprint_of(&s);
    char why[160];
    assert_int_equal(idx_fingerprint_differs(&fp, &fp3, why, sizeof why), 1);
    idx_free(&s);
    remove(tpath(f, "train-images-idx3-ubyte"));

    /* Channels other than 1 or 3 are refused, with the file named. */
    b = make_idx4(3, 4, 6, 2, &len);
    write_raw(tpath(f, "train-images-idx4-ubyte"), b, len);
    free(b);
    expect_load_error(f, "train", "2 channels", "train-images-idx4-ubyte");
    b = make_idx4(3, 4, 6, 0, &len);
    write_raw(tpath(f, "train-images-idx4-ubyte"), b, len);
    free(b);
    expect_load_error(f, "train", "0 channels", NULL);
}

static void test_load_count_mismatch(void **state)
{
    fixture *f = *state;
    put_images(f, "train-images-idx3-ubyte", 5, 0);
    put_labels(f, "train-labels-idx1-ubyte.gz", 4, 1);
    expect_load_error(f, "train", "train-images-idx3-ubyte has 5 images", NULL);
    expect_load_error(f, "train", "train-labels-idx1-ubyte.gz has 4 labels", NULL);
}

/* Labels are bytes: any value is a class; n_classes is 1 + the largest. */
static void test_load_labels_up_to_255(void **state)
{
    fixture *f = *state;
    size_t len;
    put_images(f, "train-images-idx3-ubyte", 6, 0);
    uint8_t *b = make_labels(6, &len);
    b[8 + 5] = 255;
    write_raw(tpath(f, "train-labels-idx1-ubyte"), b, len);
    idx_set s;
    err_msg err = {{0}};
    assert_int_equal(idx_load(&s, f->dir, "train", &err), 0);
    assert_int_equal(s.n_classes, 256);
    assert_int_equal(s.labels[5], 255);
    idx_free(&s);
    free(b);
}

static void test_load_reports_bad_file(void **state)
{
    fixture *f = *state;
    /* A broken image file found by idx_load gets the reader's error. */
    write_raw(tpath(f, "t10k-images-idx3-ubyte"), (const uint8_t *)"\0\0\x08", 3);
    put_labels(f, "t10k-labels-idx1-ubyte", 1, 0);
    expect_load_error(f, "t10k", "truncated header", "t10k-images-idx3-ubyte");
}

/* ---------------------------------------------------------------------- */
/* One test per malformation                                               */

static void test_missing_file(void **state)
{
    fixture *f = *state;
    expect_images_error(tpath(f, "nope"), strerror(ENOENT));
    expect_labels_error(tpath(f, "nope.gz"), strerror(ENOENT));
}

static void test_directory_instead_of_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(tpath(f, "sub"), 0700), 0);
    expect_images_error(tpath(f, "sub"), "is a directory");
    /* And through idx_load. */
    assert_int_equal(mkdir(tpath(f, "train-images-idx3-ubyte"), 0700), 0);
    put_labels(f, "train-labels-idx1-ubyte", 1, 0);
    expect_load_error(f, "train", "is a directory", "train-images-idx3-ubyte");
}

/* A FIFO nobody writes, raw or as the .gz twin: refused at once, not
 * waited on. */
static void test_fifo_instead_of_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkfifo(tpath(f, "pipe"), 0644), 0);
    tu_deadline("idx_read of a FIFO", 10);
    expect_images_error(tpath(f, "pipe"), "is a FIFO (named pipe), not a regular file");
    expect_labels_error(tpath(f, "pipe"), "is a FIFO (named pipe), not a regular file");
    /* And through idx_load, which finds the .gz name. */
    assert_int_equal(mkfifo(tpath(f, "t10k-images-idx3-ubyte.gz"), 0644), 0);
    put_labels(f, "t10k-labels-idx1-ubyte", 1, 0);
    expect_load_error(f, "t10k", "is a FIFO", "t10k-images-idx3-ubyte.gz");
    tu_deadline(NULL, 0);
}

static void test_empty_file(void **state)
{
    fixture *f = *state;
    write_raw(tpath(f, "e"), NULL, 0);
    expect_images_error(tpath(f, "e"), "empty");
    expect_labels_error(tpath(f, "e"), "empty");
    write_gz(tpath(f, "e.gz"), NULL, 0); /* a valid gzip of nothing */
    expect_images_error(tpath(f, "e.gz"), "empty");
}

static void test_truncated_header(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *b = make_images(1, &len);
    write_raw(tpath(f, "h"), b, 10); /* magic + 6 of the 12 dimension bytes */
    expect_images_error(tpath(f, "h"), "truncated header: 10 bytes, an idx3 images header needs 16");
    write_raw(tpath(f, "h"), b, 2); /* not even the magic */
    expect_images_error(tpath(f, "h"), "truncated header: 2 bytes");
    write_gz(tpath(f, "h.gz"), b, 15);
    expect_images_error(tpath(f, "h.gz"), "truncated header: 15 bytes");
    free(b);

    b = make_labels(3, &len);
    write_raw(tpath(f, "l"), b, 7);
    expect_labels_error(tpath(f, "l"), "truncated header: 7 bytes, an idx1 labels header needs 8");
    free(b);
}

static void test_wrong_magic(void **state)
{
    fixture *f = *state;
    put_labels(f, "labels", 4, 0);
    put_images(f, "images", 1, 0);
    /* Swapped files get a hint. */
    expect_images_error(tpath(f, "labels"),
                        "wrong magic 0x00000801, expected 0x00000803 or 0x00000804 (idx3 or idx4 images)");
    expect_images_error(tpath(f, "labels"), "swapped");
    expect_labels_error(tpath(f, "images"),
                        "wrong magic 0x00000803, expected 0x00000801 (idx1 labels)");
    expect_labels_error(tpath(f, "images"), "swapped");

    /* Not IDX at all. */
    write_raw(tpath(f, "html"), (const uint8_t *)"<html>not data</html>", 21);
    expect_images_error(tpath(f, "html"), "wrong magic 0x3c68746d, expected 0x00000803");
    expect_images_error(tpath(f, "html"), "not an IDX file");

    /* IDX, but float data. */
    size_t len;
    uint8_t *b = make_idx3(0x00000d03u, 1, 28, 28, 784, &len);
    write_raw(tpath(f, "float"), b, len);
    expect_images_error(tpath(f, "float"), "data type 0x0d is not unsigned bytes");
    free(b);
}

static void test_wrong_number_of_dimensions(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *b = make_idx3(0x00000802u, 1, 28, 28, 784, &len);
    write_raw(tpath(f, "d2"), b, len);
    expect_images_error(tpath(f, "d2"), "wrong number of dimensions: magic 0x00000802 says 2, expected 3");
    expect_labels_error(tpath(f, "d2"), "wrong number of dimensions: magic 0x00000802 says 2, expected 1");
    free(b);
}

static void test_zero_counts(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *b = make_idx3(IDX_MAGIC_IMAGES, 0, 28, 28, 0, &len);
    write_raw(tpath(f, "z"), b, len);
    expect_images_error(tpath(f, "z"), "header says 0 images");
    free(b);
    b = make_idx3(IDX_MAGIC_IMAGES, 2, 28, 0, 0, &len);
    write_raw(tpath(f, "z"), b, len);
    expect_images_error(tpath(f, "z"), "images are 28x0, a size of 0");
    free(b);
    b = make_labels(0, &len);
    write_gz(tpath(f, "z.gz"), b, len);
    expect_labels_error(tpath(f, "z.gz"), "header says 0 labels");
    free(b);
}

static void test_dimension_product_overflows(void **state)
{
    fixture *f = *state;
    size_t len;
    /* 2^32-1 cubed overflows a 64-bit size_t; a reader that multiplies
     * unchecked would wrap around and allocate some wrong size. */
    uint8_t *b = make_idx3(IDX_MAGIC_IMAGES, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 784, &len);
    write_raw(tpath(f, "o"), b, len);
    expect_images_error(tpath(f, "o"),
                        "header dimensions 4294967295 x 4294967295 x 4294967295 overflow size_t");
    write_gz(tpath(f, "o.gz"), b, len);
    expect_images_error(tpath(f, "o.gz"), "overflow size_t");
    free(b);
}

static void test_count_exceeds_file_size(void **state)
{
    fixture *f = *state;
    size_t len;
    /* 4e9 images of 784 bytes is 3.1 TB: reading must refuse before
     * malloc (under ASan such a malloc aborts the test outright; without
     * it the error would be "out of memory", not this). */
    uint8_t *b = make_idx3(IDX_MAGIC_IMAGES, 4000000000u, 28, 28, 784, &len);
    write_raw(tpath(f, "big"), b, len);
    expect_images_error(tpath(f, "big"),
                        "truncated: header says 4000000000 images (3136000000000 bytes) "
                        "but the file has 784 bytes of data");
    write_gz(tpath(f, "big.gz"), b, len);
    expect_images_error(tpath(f, "big.gz"),
                        "header says 4000000000 images (3136000000000 bytes), more than a");
    expect_images_error(tpath(f, "big.gz"), "gzip file can hold");
    free(b);

    b = make_labels(5, &len);
    put_be32(b + 4, 0xFFFFFFFFu);
    write_raw(tpath(f, "bigl"), b, len);
    expect_labels_error(tpath(f, "bigl"),
                        "truncated: header says 4294967295 labels (4294967295 bytes) "
                        "but the file has 5 bytes of data");
    free(b);
}

static void test_truncated_data(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *b = make_idx3(IDX_MAGIC_IMAGES, 3, 28, 28, 1960, &len); /* 2.5 images */
    write_raw(tpath(f, "t"), b, len);
    expect_images_error(tpath(f, "t"),
                        "truncated: header says 3 images (2352 bytes) but the file has "
                        "1960 bytes of data");
    /* The same inside a complete gzip stream. */
    write_gz(tpath(f, "t.gz"), b, len);
    expect_images_error(tpath(f, "t.gz"),
                        "truncated: header says 3 images (2352 bytes) but the file has "
                        "1960 bytes of data");
    free(b);

    b = make_labels(9, &len);
    write_raw(tpath(f, "tl"), b, len - 1);
    expect_labels_error(tpath(f, "tl"),
                        "truncated: header says 9 labels (9 bytes) but the file has 8 bytes");
    free(b);
}

static void test_corrupt_gzip(void **state)
{
    fixture *f = *state;
    size_t len, glen;
    uint8_t *b = make_images(4, &len);
    write_gz(tpath(f, "c.gz"), b, len);
    uint8_t *g = slurp(tpath(f, "c.gz"), &glen);
    assert_true(glen > 200);
    for (size_t i = glen / 2; i < glen / 2 + 8; i++)
        g[i] ^= 0x5a;
    write_raw(tpath(f, "c.gz"), g, glen);
    expect_images_error(tpath(f, "c.gz"), "corrupt gzip stream: ");

    /* A bad CRC alone (last 8 bytes are CRC32 and length) is caught too:
     * the reader inflates to the very end even after it has its data. */
    free(g);
    write_gz(tpath(f, "c.gz"), b, len);
    g = slurp(tpath(f, "c.gz"), &glen);
    g[glen - 8] ^= 0xff;
    write_raw(tpath(f, "c.gz"), g, glen);
    expect_images_error(tpath(f, "c.gz"), "corrupt gzip stream: incorrect data check");
    free(g);
    free(b);
}

static void test_truncated_gzip(void **state)
{
    fixture *f = *state;
    size_t len, glen;
    uint8_t *b = make_images(4, &len);
    write_gz(tpath(f, "t.gz"), b, len);
    uint8_t *g = slurp(tpath(f, "t.gz"), &glen);
    write_raw(tpath(f, "t.gz"), g, glen / 2);
    expect_images_error(tpath(f, "t.gz"), "truncated gzip stream");
    /* Only the trailer missing: all data is there, but the CRC is not. */
    write_raw(tpath(f, "t.gz"), g, glen - 4);
    expect_images_error(tpath(f, "t.gz"), "truncated gzip stream");
    /* Just the gzip signature. */
    write_raw(tpath(f, "t.gz"), g, 2);
    expect_images_error(tpath(f, "t.gz"), "truncated gzip stream");
    free(g);
    free(b);
}

static void test_trailing_garbage_raw(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *b = make_images(2, &len);
    uint8_t *b2 = realloc(b, len + 7);
    assert_non_null(b2);
    memset(b2 + len, 0, 7);
    write_raw(tpath(f, "g"), b2, len + 7);
    expect_images_error(tpath(f, "g"), "trailing garbage: 7 extra bytes");
    free(b2);

    b = make_labels(3, &len);
    b2 = realloc(b, len + 1);
    assert_non_null(b2);
    b2[len] = 1;
    write_raw(tpath(f, "gl"), b2, len + 1);
    expect_labels_error(tpath(f, "gl"), "trailing garbage: 1 extra bytes");
    free(b2);
}

static void test_trailing_garbage_after_gzip(void **state)
{
    fixture *f = *state;
    size_t len, glen;
    uint8_t *b = make_images(2, &len);
    write_gz(tpath(f, "g.gz"), b, len);
    uint8_t *g = slurp(tpath(f, "g.gz"), &glen);
    uint8_t *g2 = realloc(g, glen + 5);
    assert_non_null(g2);
    memcpy(g2 + glen, "junk\n", 5);
    write_raw(tpath(f, "g.gz"), g2, glen + 5);
    expect_images_error(tpath(f, "g.gz"),
                        "trailing garbage: 5 extra bytes after the end of the gzip stream");
    free(g2);

    /* Extra bytes inside the stream, after the data the header describes. */
    uint8_t *b2 = realloc(b, len + 100);
    assert_non_null(b2);
    memset(b2 + len, 7, 100);
    write_gz(tpath(f, "g.gz"), b2, len + 100);
    expect_images_error(tpath(f, "g.gz"), "trailing garbage: 100 extra bytes after the 1568 bytes");
    /* Megabytes of them: refused once past 1 MiB, not inflated to the end
     * (a gigabyte of zeros took seconds). */
    size_t big = (size_t)8 << 20;
    uint8_t *b3 = realloc(b2, len + big);
    assert_non_null(b3);
    memset(b3 + len, 0, big);
    write_gz(tpath(f, "g.gz"), b3, len + big);
    expect_images_error(tpath(f, "g.gz"),
                        "trailing garbage: more than 1048576 extra bytes after the 1568 bytes");
    free(b3);
}

/* Gathering: intensities v/255, or binary pixels drawn from Bernoulli(v/255)
 * that depend only on the key and the image. */
static void test_gather_views(void **state)
{
    (void)state;
    enum { N = 64, D = 784 };
    static uint8_t images[N * D], labels[N];
    for (size_t i = 0; i < N * D; i++)
        images[i] = (uint8_t)(i % 256);
    idx_set set = {N, 28, 28, images, labels};
    static float plain[N * D], a[N * D], b[N * D], c[N * D];
    idx_gather(&set, NULL, 0, N, NULL, plain);
    for (size_t i = 0; i < N * D; i++)
        assert_true(plain[i] == (float)images[i] * (1.0f / 255.0f));
    idx_view v1 = {1, 42}, v2 = {1, 43};
    idx_gather(&set, NULL, 0, N, &v1, a);
    /* The same images in another order and batch: the same pixels. */
    uint32_t order[N];
    for (size_t i = 0; i < N; i++)
        order[i] = (uint32_t)(N - 1 - i);
    idx_gather(&set, order, 0, N, &v1, b);
    for (size_t i = 0; i < N; i++)
        assert_memory_equal(a + (N - 1 - i) * D, b + i * D, D * sizeof(float));
    idx_gather(&set, NULL, 0, N, &v2, c);
    assert_true(memcmp(a, c, sizeof a) != 0); /* another key, other draws */
    /* Binary, never on where v = 0, always where v = 255, and on about
     * v/255 of the time: 196 pixels per value over the 64 images. */
    size_t on[256] = {0};
    for (size_t i = 0; i < N * D; i++) {
        assert_true(a[i] == 0.0f || a[i] == 1.0f);
        on[images[i]] += a[i] == 1.0f;
    }
    assert_int_equal(on[0], 0);
    assert_int_equal(on[255], (N * D) / 256);
    size_t total_on = 0;
    for (int v = 0; v < 256; v++)
        total_on += on[v];
    double want = 0.0;
    for (int v = 0; v < 256; v++)
        want += (double)v / 255.0 * (double)(N * D / 256);
    printf("  %zu pixels on, %.1f expected\n", total_on, want);
    assert_true(fabs((double)total_on - want) < 4.0 * sqrt(want));
}

/* A set of float values b * (1/255) gathers as the bytes b do, as
 * intensities and binarized: the two tests of a pixel agree for every byte
 * and every 16-bit draw, and the gathers agree pixel for pixel. */
static void test_gather_values_as_bytes(void **state)
{
    (void)state;
    size_t disagree = 0;
    for (uint32_t v = 0; v < 256; v++) {
        float x = (float)v * (1.0f / 255.0f);
        for (uint32_t w = 0; w < 65536; w++)
            disagree += ((float)w < x * 65536.0f) != (w * 255u < v * 65536u);
    }
    assert_int_equal(disagree, 0);
    enum { N = 64, D = 784 };
    static uint8_t images[N * D], labels[N];
    static float values[N * D], a[N * D], b[N * D];
    for (size_t i = 0; i < N * D; i++) {
        images[i] = (uint8_t)((i * 7) % 256);
        values[i] = (float)images[i] * (1.0f / 255.0f);
    }
    idx_set bytes = {N, 28, 28, images, labels}, floats = bytes;
    floats.images = NULL, floats.values = values;
    idx_gather(&bytes, NULL, 0, N, NULL, a);
    idx_gather(&floats, NULL, 0, N, NULL, b);
    assert_memory_equal(a, b, sizeof a);
    for (uint64_t key = 0; key < 200; key++) {
        idx_view v = {1, key};
        idx_gather(&bytes, NULL, 0, N, &v, a);
        idx_gather(&floats, NULL, 0, N, &v, b);
        assert_memory_equal(a, b, sizeof a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        cmocka_unit_test(test_gather_views),
        cmocka_unit_test(test_gather_values_as_bytes),
        T(test_raw_and_gzip_read_identically),
        T(test_non_square_images_read),
        T(test_concatenated_gzip_members),
        T(test_load_finds_raw_and_gz),
        T(test_load_prefers_raw_over_gz),
        T(test_load_missing_names_both_paths),
        T(test_load_rejects_unknown_split),
        T(test_load_any_size_and_colour),
        T(test_load_without_labels),
        T(test_load_count_mismatch),
        T(test_load_labels_up_to_255),
        T(test_load_reports_bad_file),
        T(test_missing_file),
        T(test_directory_instead_of_file),
        T(test_fifo_instead_of_file),
        T(test_empty_file),
        T(test_truncated_header),
        T(test_wrong_magic),
        T(test_wrong_number_of_dimensions),
        T(test_zero_counts),
        T(test_dimension_product_overflows),
        T(test_count_exceeds_file_size),
        T(test_truncated_data),
        T(test_corrupt_gzip),
        T(test_truncated_gzip),
        T(test_trailing_garbage_raw),
        T(test_trailing_garbage_after_gzip),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
