/* test_import.c - vae import (src/io/import.c, src/io/idx_write.c, src/cli/cmd_import.c).
 *
 * Folders of images are generated here (PNG through libpng's simplified
 * API, JPEG through TurboJPEG's compressor), imported, and the IDX files
 * read back: magic, dimensions and every byte. Covered: class folders
 * (labels in byte order, labels.txt, counts), the split (sizes by the rule,
 * disjoint, the same for a seed), a flat folder, grey and colour PNGs,
 * alpha over either background, JPEG, mixed sizes refused and --size,
 * broken images fatal or skipped (a FIFO named as an image among them),
 * other files counted, the 256-class limit, an existing data set kept
 * without --force, grey output through the existing idx_load; and the
 * binary's options, messages and exit codes.
 * Safety: each image its own decoder (a broken and a 10-byte JPEG among good
 * ones), the pixel limit checked from the header (a PNG bomb refused, the
 * child's peak memory measured; --max-pixels); the data set replaced whole
 * (kill -9 at moments spread over an import --force, then every file
 * compared with the old and the new set; leftovers removed by the next
 * import; the user's files kept, sub-folders refused, symbolic links). */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "idx.h"
#include "idx_write.h"
#include "import.h"
#include "testutil.h"
#include "cliutil.h"

/* ------------------------------------------------------------------------ */
/* Making input folders                                                     */

/* dir/name, made fresh (with its parents); into buf. */
static const char *fresh(char *buf, size_t size, const char *name)
{
    in_dir(buf, size, name);
    tu_remove_tree(buf);
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", buf);
    for (char *s = tmp + strlen(dir) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(tmp, 0755);
            *s = '/';
        }
    assert_int_equal(mkdir(buf, 0755), 0);
    return buf;
}

/* A test's folders: dir/name/in, made fresh, and dir/name/out, not made
 * (import creates it); each into 256 bytes. */
static void make_case(const char *name, char *in, char *out)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/in", name);
    fresh(in, 256, sub);
    snprintf(sub, sizeof sub, "%s/out", name);
    in_dir(out, 256, sub);
    tu_remove_tree(out);
}

/* folder/name (sub-folders of name made as needed) into buf. */
static const char *under(char *buf, size_t size, const char *folder, const char *name)
{
    tu_join(buf, size, folder, name);
    for (char *s = buf + strlen(folder) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(buf, 0755);
            *s = '/';
        }
    return buf;
}

/* A PNG of w x h pixels of channels 1 (grey), 3 (RGB) or 4 (RGBA). */
static void write_png(const char *path, size_t w, size_t h, int channels,
                      const uint8_t *px)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB
                                                                : PNG_FORMAT_RGBA;
    if (!png_image_write_to_file(&im, path, 0, px, 0, NULL))
        fail_msg("cannot write %s: %s", path, im.message);
    png_image_free(&im);
}

/* A grey PNG of one value everywhere but pixel 0, which holds id (so each
 * image can be told apart in the output). */
static void write_grey_id(const char *path, size_t w, size_t h, uint8_t id)
{
    uint8_t *px = malloc(w * h);
    assert_non_null(px);
    memset(px, 77, w * h);
    px[0] = id;
    write_png(path, w, h, 1, px);
    free(px);
}

/* n grey images of w x h in folder, named by fmt (a printf format of k,
 * k = 0..n-1), image k's pixel 0 holding first_id + k. */
static void write_ids(const char *folder, const char *fmt, int n, size_t w, size_t h,
                      int first_id)
{
    char name[64], path[512];
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, fmt, k);
        write_grey_id(under(path, sizeof path, folder, name), w, h, (uint8_t)(first_id + k));
    }
}

/* A JPEG (quality 95) of w x h pixels of TurboJPEG pixel format pf
 * (TJPF_GRAY: one byte a pixel; TJPF_RGB: three; TJPF_CMYK: four). */
static void write_jpeg_as(const char *path, int w, int h, const uint8_t *px, int pf)
{
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpg = NULL;
    unsigned long len = 0;
    if (tjCompress2(tj, px, w, 0, h, pf, &jpg, &len,
                    pf == TJPF_GRAY ? TJSAMP_GRAY : TJSAMP_444, 95, 0) != 0)
        fail_msg("tjCompress2: %s", tjGetErrorStr2(tj));
    tu_write_file(path, jpg, len);
    tjFree(jpg);
    tjDestroy(tj);
}

/* A JPEG of w x h RGB pixels, or grey when grey is set. */
static void write_jpeg(const char *path, int w, int h, const uint8_t *px, int grey)
{
    write_jpeg_as(path, w, h, px, grey ? TJPF_GRAY : TJPF_RGB);
}

/* ------------------------------------------------------------------------ */
/* Reading the output                                                       */

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct idx_file {
    uint32_t magic;
    uint32_t dims[4];
    size_t ndims;
    uint8_t *raw; /* the whole file */
    uint8_t *body;
    size_t body_len;
} idx_file;

/* Reads folder/name: the magic gives the dimension count; the body must be
 * exactly their product. */
static idx_file read_idx(const char *folder, const char *name)
{
    char path[512];
    tu_join(path, sizeof path, folder, name);
    idx_file f;
    memset(&f, 0, sizeof f);
    size_t len;
    f.raw = tu_read_file(path, &len);
    assert_true(len >= 8);
    f.magic = be32_at(f.raw);
    f.ndims = f.magic & 0xff;
    assert_true(f.ndims >= 1 && f.ndims <= 4);
    assert_true(len >= 4 + 4 * f.ndims);
    size_t want = 1;
    for (size_t i = 0; i < f.ndims; i++) {
        f.dims[i] = be32_at(f.raw + 4 + 4 * i);
        want *= f.dims[i];
    }
    f.body = f.raw + 4 + 4 * f.ndims;
    f.body_len = len - 4 - 4 * f.ndims;
    if (f.body_len != want)
        fail_msg("%s: %zu bytes after the header, dimensions say %zu", path, f.body_len,
                 want);
    return f;
}

static void assert_dims(const idx_file *f, uint32_t magic, size_t ndims, uint32_t d0,
                        uint32_t d1, uint32_t d2, uint32_t d3)
{
    assert_int_equal(f->magic, magic);
    assert_int_equal(f->ndims, ndims);
    uint32_t want[4] = {d0, d1, d2, d3};
    for (size_t i = 0; i < ndims; i++)
        assert_int_equal(f->dims[i], want[i]);
}

/* Messages import_run's warn callback got, one a line. */
static char warned[4096];

static void collect_warning(void *ctx, const char *msg)
{
    (void)ctx;
    size_t n = strlen(warned);
    snprintf(warned + n, sizeof warned - n, "%s\n", msg);
}

/* import_run that must succeed. */
static import_summary import_ok(const char *in, const char *out, const import_opts *o)
{
    import_summary s;
    err_msg err;
    if (import_run(in, out, o, &s, &err) != 0)
        fail_msg("import_run failed: %s", err.text);
    return s;
}

/* import_run that must fail with msg in its message. */
static void import_fails(const char *in, const char *out, const import_opts *o,
                         const char *msg)
{
    import_summary s;
    err_msg err;
    assert_int_equal(import_run(in, out, o, &s, &err), -1);
    tu_assert_contains(err.text, msg);
}

/* import_run with skip_broken that must succeed with n_images read and
 * n_broken skipped, first (a name) the first of them and warned about; the
 * warnings are left in warned. */
static void import_skipping(const char *in, const char *out, import_opts *o,
                            size_t n_images, size_t n_broken, const char *first)
{
    warned[0] = '\0';
    o->skip_broken = 1;
    o->warn = collect_warning;
    import_summary s = import_ok(in, out, o);
    assert_int_equal(s.n_images, n_images);
    assert_int_equal(s.n_broken, n_broken);
    tu_assert_contains(s.first_broken, first);
    tu_assert_contains(warned, first);
}

/* ------------------------------------------------------------------------ */
/* The IDX writer                                                           */

static void test_idx_write(void **state)
{
    (void)state;
    char out[256], path[512];
    fresh(out, sizeof out, "idx_write");
    uint8_t px[2 * 3 * 5], lab[2] = {7, 200};
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 9);
    err_msg err;

    /* Grey: idx3, read back by the loader's own reader. */
    tu_join(path, sizeof path, out, "g");
    assert_int_equal(idx_write_images(path, px, 2, 3, 5, 1, &err), 0);
    uint8_t *back;
    size_t n, rows, cols, chans;
    assert_int_equal(idx_read_images(path, &back, &n, &rows, &cols, &chans, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows, 3);
    assert_int_equal(cols, 5);
    assert_int_equal(chans, 1);
    assert_memory_equal(back, px, sizeof px);
    free(back);

    /* Colour: idx4 of N, H, W, 3, bytes as given. */
    tu_join(path, sizeof path, out, "c");
    assert_int_equal(idx_write_images(path, px, 2, 1, 5, 3, &err), 0);
    idx_file f = read_idx(out, "c");
    assert_dims(&f, 0x804, 4, 2, 1, 5, 3);
    assert_memory_equal(f.body, px, sizeof px);
    free(f.raw);
    /* ... and by the loader's reader, as 3 channels. */
    assert_int_equal(idx_read_images(path, &back, &n, &rows, &cols, &chans, &err), 0);
    assert_int_equal(rows, 1);
    assert_int_equal(cols, 5);
    assert_int_equal(chans, 3);
    assert_memory_equal(back, px, sizeof px);
    free(back);

    tu_join(path, sizeof path, out, "l");
    assert_int_equal(idx_write_labels(path, lab, 2, &err), 0);
    assert_int_equal(idx_read_labels(path, &back, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(back, lab, 2);
    free(back);

    /* Refused before anything is written. */
    tu_join(path, sizeof path, out, "none");
    assert_int_equal(idx_write_images(path, px, 0, 3, 5, 1, &err), -1);
    tu_assert_contains(err.text, "dimension 0 is 0");
    assert_int_equal(idx_write_images(path, px, 1, 3, 5, 2, &err), -1);
    tu_assert_contains(err.text, "channels must be 1");
    assert_false(tu_exists(path));
    tu_join(path, sizeof path, out, "no-folder/x");
    assert_int_equal(idx_write_labels(path, lab, 2, &err), -1);
    tu_assert_contains(err.text, "no-folder");
}

/* ------------------------------------------------------------------------ */
/* Class folders and the split                                              */

/* Class folders "b" (10 images, 2 of them a folder down), "a" (5), "C" (1):
 * byte order makes C label 0, a 1, b 2. Image k's pixel 0 is k. Plus a
 * notes.txt in b, and upper-case extensions. */
static void make_classes(const char *in)
{
    char path[512];
    write_ids(in, "b/deep/x%d.png", 2, 4, 3, 1);
    write_ids(in, "b/i%d.PNG", 8, 4, 3, 3);
    write_ids(in, "a/%d.png", 5, 4, 3, 11);
    write_grey_id(under(path, sizeof path, in, "C/only.png"), 4, 3, 16);
    tu_write_file(under(path, sizeof path, in, "b/notes.txt"), "hi", 2);
}

/* Per source id (pixel 0 of each image): the split it landed in (1 train,
 * 2 test) and its label; fails if an id appears twice. */
static void collect_ids(const char *out, int *where, int *label)
{
    static const char *const splits[2] = {"train", "t10k"};
    for (int s = 0; s < 2; s++) {
        char name[64];
        snprintf(name, sizeof name, "%s-images-idx3-ubyte", splits[s]);
        idx_file im = read_idx(out, name);
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte", splits[s]);
        idx_file lb = read_idx(out, name);
        assert_dims(&im, 0x803, 3, lb.dims[0], 3, 4, 0);
        assert_dims(&lb, 0x801, 1, im.dims[0], 0, 0, 0);
        for (size_t i = 0; i < im.dims[0]; i++) {
            uint8_t id = im.body[i * 12];
            if (where[id])
                fail_msg("image %u is in the output twice", id);
            where[id] = s + 1;
            label[id] = lb.body[i];
            assert_int_equal(im.body[i * 12 + 5], 77); /* the rest of the image */
        }
        free(im.raw);
        free(lb.raw);
    }
}

static void test_class_folders(void **state)
{
    (void)state;
    char in[256], out[256], out2[256], out3[256];
    make_case("classes", in, out);
    make_classes(in);
    import_opts o = import_defaults();
    o.test_fraction = 0.2;
    import_summary s = import_ok(in, out, &o);
    assert_int_equal(s.n_images, 16);
    assert_int_equal(s.n_classes, 3);
    assert_int_equal(s.width, 4);
    assert_int_equal(s.height, 3);
    assert_int_equal(s.channels, 1);
    /* round(0.2 x 10) + round(0.2 x 5) + round(0.2 x 1) = 2 + 1 + 0. */
    assert_int_equal(s.n_test, 3);
    assert_int_equal(s.n_train, 13);
    assert_int_equal(s.n_other, 1);
    tu_assert_contains(s.first_other, "b/notes.txt");

    char path[512];
    tu_join(path, sizeof path, out, "labels.txt");
    tu_assert_file_equals(path, "C\na\nb\n", 6);

    /* Every image once; labels by folder; the split's sizes per class. */
    int where[32] = {0}, label[32] = {0}, test_of[3] = {0};
    collect_ids(out, where, label);
    for (int id = 1; id <= 16; id++) {
        assert_true(where[id] != 0);
        int want = id <= 10 ? 2 : id <= 15 ? 1 : 0;
        assert_int_equal(label[id], want);
        test_of[want] += where[id] == 2;
    }
    assert_int_equal(test_of[0], 0);
    assert_int_equal(test_of[1], 1);
    assert_int_equal(test_of[2], 2);

    /* The same seed gives the same files; another seed another choice. */
    in_dir(out2, sizeof out2, "classes/out2");
    import_ok(in, out2, &o);
    static const char *const files[] = {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte",
                                        "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"};
    for (size_t i = 0; i < 4; i++) {
        char a[512], b[512];
        tu_join(a, sizeof a, out, files[i]);
        tu_join(b, sizeof b, out2, files[i]);
        tu_assert_same_file(a, b);
    }
    in_dir(out3, sizeof out3, "classes/out3");
    o.seed = 2;
    import_ok(in, out3, &o);
    int where3[32] = {0}, label3[32] = {0}, moved = 0;
    collect_ids(out3, where3, label3);
    for (int id = 1; id <= 16; id++)
        moved += where3[id] != where[id];
    assert_true(moved > 0);
}

static void test_split_rule(void **state)
{
    (void)state;
    /* Classes of 1, 2, 3, 10 and 21 images, interleaved. */
    static const size_t sizes[5] = {1, 2, 3, 10, 21};
    uint8_t labels[37], is_test[37];
    size_t n = 0;
    for (size_t r = 0; n < 37; r++)
        for (uint8_t c = 0; c < 5; c++)
            if (r < sizes[c])
                labels[n++] = c;
    err_msg err;
    size_t n_test, got[5];
    /* F = 0.5: round half up, at most n_c - 1: 0, 1, 2, 5, 11. */
    assert_int_equal(import_split(labels, n, 5, 0.5, 7, is_test, &n_test, &err), 0);
    memset(got, 0, sizeof got);
    for (size_t i = 0; i < n; i++)
        got[labels[i]] += is_test[i];
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 1);
    assert_int_equal(got[2], 2);
    assert_int_equal(got[3], 5);
    assert_int_equal(got[4], 11);
    assert_int_equal(n_test, 19);
    /* F = 0.99: every class but keeps one training image. */
    assert_int_equal(import_split(labels, n, 5, 0.99, 7, is_test, &n_test, &err), 0);
    assert_int_equal(n_test, 0 + 1 + 2 + 9 + 20);
    /* No labels: one class of all of them. */
    assert_int_equal(import_split(NULL, n, 0, 0.25, 7, is_test, &n_test, &err), 0);
    assert_int_equal(n_test, 9); /* round(9.25) */
    /* Seeded: the same seed the same choice, another seed another. */
    uint8_t again[37];
    assert_int_equal(import_split(labels, n, 5, 0.5, 7, is_test, &n_test, &err), 0);
    assert_int_equal(import_split(labels, n, 5, 0.5, 7, again, &n_test, &err), 0);
    assert_memory_equal(is_test, again, n);
    assert_int_equal(import_split(labels, n, 5, 0.5, 8, again, &n_test, &err), 0);
    assert_memory_not_equal(is_test, again, n);
}

static void test_flat_folder(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("flat", in, out);
    write_ids(in, "f%d.png", 10, 4, 3, 1);
    tu_write_file(under(path, sizeof path, in, "README"), "x", 1);
    tu_write_file(under(path, sizeof path, in, ".hidden.png"), "x", 1); /* ignored */
    import_opts o = import_defaults();
    o.test_fraction = 0.3;
    import_summary s = import_ok(in, out, &o);
    assert_int_equal(s.n_classes, 0);
    assert_int_equal(s.n_images, 10);
    assert_int_equal(s.n_test, 3);
    assert_int_equal(s.n_other, 1);
    tu_assert_contains(s.first_other, "README");
    idx_file tr = read_idx(out, "train-images-idx3-ubyte");
    idx_file te = read_idx(out, "t10k-images-idx3-ubyte");
    assert_dims(&tr, 0x803, 3, 7, 3, 4, 0);
    assert_dims(&te, 0x803, 3, 3, 3, 4, 0);
    free(tr.raw);
    free(te.raw);
    /* No labels: no label files, no labels.txt; the loader reads an
     * unlabelled set. */
    assert_int_equal(tu_count_entries(out, NULL, 0), 2);
    idx_set set;
    err_msg err;
    if (idx_load(&set, out, "train", &err) != 0)
        fail_msg("idx_load: %s", err.text);
    assert_int_equal(set.n, 7);
    assert_int_equal(set.rows, 3);
    assert_int_equal(set.cols, 4);
    assert_int_equal(set.n_classes, 0);
    idx_free(&set);
}

/* 28x28 grey images in two classes load with the existing idx_load, pixel
 * for pixel. */
static void test_grey_loads(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("mnist", in, out);
    uint8_t px[784];
    for (int k = 0; k < 12; k++) {
        for (int i = 0; i < 784; i++)
            px[i] = (uint8_t)(i * 3 + k);
        char name[32];
        snprintf(name, sizeof name, "%s/%02d.png", k % 2 ? "odd" : "even", k);
        write_png(under(path, sizeof path, in, name), 28, 28, 1, px);
    }
    import_opts o = import_defaults();
    o.test_fraction = 0.34; /* 2 of each class's 6 */
    import_ok(in, out, &o);
    idx_set train, test;
    err_msg err;
    if (idx_load(&train, out, "train", &err) != 0 || idx_load(&test, out, "t10k", &err) != 0)
        fail_msg("idx_load: %s", err.text);
    assert_int_equal(train.n, 8);
    assert_int_equal(test.n, 4);
    for (size_t i = 0; i < test.n; i++) {
        int k = test.images[i * 784]; /* pixel 0 is k */
        assert_int_equal(test.labels[i], k % 2 ? 1 : 0); /* "even" < "odd" */
        for (int j = 0; j < 784; j++)
            assert_int_equal(test.images[i * 784 + j], (uint8_t)(j * 3 + k));
    }
    idx_free(&train);
    idx_free(&test);
}

/* ------------------------------------------------------------------------ */
/* Pixels: colour, grey, alpha, JPEG                                        */

/* One image file imported: a flat folder of two copies of it, F = 0.5, so
 * the test split holds it once. Returns the test images file, read. */
static idx_file import_one(const char *name, const char *file_name, const void *bytes,
                           size_t len, import_opts *o, import_summary *s)
{
    char in[256], out[256], path[512], copy[64];
    make_case(name, in, out);
    snprintf(copy, sizeof copy, "copy-%s", file_name);
    tu_write_file(under(path, sizeof path, in, file_name), bytes, len);
    tu_write_file(under(path, sizeof path, in, copy), bytes, len);
    o->test_fraction = 0.5;
    *s = import_ok(in, out, o);
    return read_idx(out, s->channels == 1 ? "t10k-images-idx3-ubyte"
                                          : "t10k-images-idx4-ubyte");
}

/* A PNG file's bytes (written, then read). */
static unsigned char *png_bytes(const char *name, size_t w, size_t h, int channels,
                                const uint8_t *px, size_t *len)
{
    char path[512];
    in_dir(path, sizeof path, name);
    write_png(path, w, h, channels, px);
    unsigned char *b = tu_read_file(path, len);
    unlink(path);
    return b;
}

/* A 16-bit RGB PNG of w x h pixels, each sample v[i] (big-endian in the
 * file, as PNG stores it), with no gAMA or sRGB chunk: what most tools
 * write. libpng's low-level writer, as the simplified one writes 16-bit
 * files as linear (gAMA 1.0). */
static unsigned char *png16_bytes(const char *name, size_t w, size_t h, const uint16_t *v,
                                  size_t *len)
{
    char path[512];
    in_dir(path, sizeof path, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_true(png && info);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 16, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t row[6 * 16];
    assert_true(w <= 16);
    for (size_t y = 0; y < h; y++) {
        for (size_t i = 0; i < 3 * w; i++) {
            row[2 * i] = (uint8_t)(v[y * 3 * w + i] >> 8);
            row[2 * i + 1] = (uint8_t)(v[y * 3 * w + i] & 0xff);
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(fp), 0);
    unsigned char *b = tu_read_file(path, len);
    unlink(path);
    return b;
}

static void test_colour_png(void **state)
{
    (void)state;
    /* 3 x 2 RGB: red, green, blue / white, black, (10, 20, 30). */
    static const uint8_t rgb[18] = {255, 0, 0, 0, 255, 0, 0, 0, 255,
                                    255, 255, 255, 0, 0, 0, 10, 20, 30};
    size_t len;
    unsigned char *png = png_bytes("c.png", 3, 2, 3, rgb, &len);
    import_opts o = import_defaults();
    import_summary s;
    idx_file f = import_one("colour", "c.png", png, len, &o, &s);
    assert_int_equal(s.channels, 3);
    assert_dims(&f, 0x804, 4, 1, 2, 3, 3); /* N, H, W, C */
    assert_memory_equal(f.body, rgb, 18); /* HWC, rows top to bottom */
    free(f.raw);
    /* The loader reads it as one colour image of 2 x 3. */
    {
        char out[256];
        idx_set set;
        err_msg err;
        in_dir(out, sizeof out, "colour/out"); /* the folder import_one wrote */
        if (idx_load(&set, out, "t10k", &err) != 0)
            fail_msg("idx_load: %s", err.text);
        assert_int_equal(set.rows, 2);
        assert_int_equal(set.cols, 3);
        assert_int_equal(set.channels, 3);
        assert_memory_equal(set.images, rgb, 18);
        idx_free(&set);
    }

    /* --channels 1: BT.601 luma, round(0.299 R + 0.587 G + 0.114 B). */
    o = import_defaults();
    o.channels = 1;
    f = import_one("colour1", "c.png", png, len, &o, &s);
    assert_dims(&f, 0x803, 3, 1, 2, 3, 0);
    static const uint8_t luma[6] = {76, 150, 29, 255, 0, 18};
    assert_memory_equal(f.body, luma, 6);
    free(f.raw);
    free(png);

    /* Colour pixels with R = G = B only: auto picks grey, the value as is. */
    static const uint8_t greyish[18] = {9, 9, 9, 200, 200, 200, 0, 0, 0,
                                        1, 1, 1, 255, 255, 255, 128, 128, 128};
    png = png_bytes("g.png", 3, 2, 3, greyish, &len);
    o = import_defaults();
    f = import_one("greyish", "g.png", png, len, &o, &s);
    assert_int_equal(s.channels, 1);
    static const uint8_t want[6] = {9, 200, 0, 1, 255, 128};
    assert_memory_equal(f.body, want, 6);
    free(f.raw);
    /* --channels 3 of a grey PNG: R = G = B. */
    static const uint8_t g1[2] = {40, 250};
    free(png);
    png = png_bytes("g1.png", 2, 1, 1, g1, &len);
    o = import_defaults();
    o.channels = 3;
    f = import_one("grey3", "g1.png", png, len, &o, &s);
    static const uint8_t g3[6] = {40, 40, 40, 250, 250, 250};
    assert_dims(&f, 0x804, 4, 1, 1, 2, 3);
    assert_memory_equal(f.body, g3, 6);
    free(f.raw);
    free(png);

    /* 16 bits a sample without gamma information: the stored values, to 8
     * bits (v / 257), not taken as linear light and encoded to sRGB
     * (0x8080 became 186). */
    static const uint16_t v16[6] = {0x8080, 0x4040, 0xc0c0, 0xffff, 0x0000, 0x0a0a};
    png = png16_bytes("c16.png", 2, 1, v16, &len);
    o = import_defaults();
    f = import_one("colour16", "c16.png", png, len, &o, &s);
    static const uint8_t want16[6] = {128, 64, 192, 255, 0, 10};
    assert_dims(&f, 0x804, 4, 1, 1, 2, 3);
    assert_memory_equal(f.body, want16, 6);
    free(f.raw);
    free(png);
}

static void test_alpha(void **state)
{
    (void)state;
    /* RGBA: black at alpha 128, colour at alpha 0, red opaque, (100, 150,
     * 200) at alpha 64. */
    static const uint8_t rgba[16] = {0, 0, 0, 128, 200, 100, 50, 0,
                                     255, 0, 0, 255, 100, 150, 200, 64};
    size_t len;
    unsigned char *png = png_bytes("a.png", 4, 1, 4, rgba, &len);
    import_opts o = import_defaults();
    import_summary s;
    idx_file f = import_one("alpha-white", "a.png", png, len, &o, &s);
    /* round((c a + 255 (255 - a)) / 255): 127; 255; c; 216, 229, 241. */
    static const uint8_t white[12] = {127, 127, 127, 255, 255, 255,
                                      255, 0, 0, 216, 229, 241};
    assert_int_equal(s.channels, 3);
    assert_memory_equal(f.body, white, 12);
    free(f.raw);
    o = import_defaults();
    o.background = 0;
    f = import_one("alpha-black", "a.png", png, len, &o, &s);
    static const uint8_t black[12] = {0, 0, 0, 0, 0, 0, 255, 0, 0, 25, 38, 50};
    assert_memory_equal(f.body, black, 12);
    free(f.raw);
    free(png);
}

static void test_jpeg(void **state)
{
    (void)state;
    /* 16 x 16: four 8 x 8 blocks of one colour each (JPEG keeps flat
     * blocks almost exactly). */
    static const uint8_t colours[4][3] = {{200, 40, 40}, {40, 160, 60}, {30, 60, 220},
                                          {240, 240, 240}};
    uint8_t rgb[16 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            memcpy(rgb + 3 * (y * 16 + x), colours[(y / 8) * 2 + x / 8], 3);
    char path[512];
    in_dir(path, sizeof path, "j.jpg");
    write_jpeg(path, 16, 16, rgb, 0);
    size_t len;
    unsigned char *jpg = tu_read_file(path, &len);
    import_opts o = import_defaults();
    import_summary s;
    idx_file f = import_one("jpeg", "p.JPEG", jpg, len, &o, &s);
    assert_int_equal(s.channels, 3);
    assert_dims(&f, 0x804, 4, 1, 16, 16, 3);
    int worst = 0;
    for (size_t i = 0; i < sizeof rgb; i++) {
        int d = abs((int)f.body[i] - (int)rgb[i]);
        worst = d > worst ? d : worst;
    }
    if (worst > 6)
        fail_msg("JPEG pixels differ by up to %d (tolerance 6)", worst);
    free(f.raw);
    free(jpg);

    /* A grey JPEG: one channel out. */
    uint8_t grey[64];
    for (int i = 0; i < 64; i++)
        grey[i] = (uint8_t)(i < 32 ? 50 : 180);
    write_jpeg(path, 8, 8, grey, 1);
    jpg = tu_read_file(path, &len);
    o = import_defaults();
    f = import_one("jpeg-grey", "g.jpg", jpg, len, &o, &s);
    assert_int_equal(s.channels, 1);
    for (int i = 0; i < 64; i++)
        assert_true(abs((int)f.body[i] - (int)grey[i]) <= 6);
    free(f.raw);
    free(jpg);
}

/* ------------------------------------------------------------------------ */
/* Sizes                                                                    */

static void test_sizes(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("sizes", in, out);
    uint8_t *px = malloc(48 * 48 * 3);
    assert_non_null(px);
    memset(px, 77, 48 * 48);
    write_png(under(path, sizeof path, in, "a.png"), 48, 48, 1, px);
    write_png(under(path, sizeof path, in, "b.png"), 32, 32, 1, px);
    import_opts o = import_defaults();
    o.test_fraction = 0.5;
    import_fails(in, out, &o, "a.png is 48x48 but ");
    import_fails(in, out, &o, "b.png is 32x32; give --size WxH to resize them all");
    assert_false(tu_exists(out));

    /* --size: every image that size; a constant colour stays that colour. */
    for (int i = 0; i < 48 * 48; i++) {
        px[3 * i] = 10;
        px[3 * i + 1] = 200;
        px[3 * i + 2] = 30;
    }
    write_png(under(path, sizeof path, in, "c.png"), 48, 48, 3, px);
    write_png(under(path, sizeof path, in, "d.png"), 20, 30, 3, px);
    o.width = 24;
    o.height = 16;
    import_summary s = import_ok(in, out, &o);
    assert_int_equal(s.n_images, 4);
    assert_int_equal(s.channels, 3);
    static const char *const names[2] = {"train-images-idx4-ubyte", "t10k-images-idx4-ubyte"};
    for (int k = 0; k < 2; k++) {
        idx_file f = read_idx(out, names[k]);
        assert_dims(&f, 0x804, 4, 2, 16, 24, 3);
        for (size_t i = 0; i < f.body_len; i += 3) {
            int grey = f.body[i] == 77 && f.body[i + 1] == 77 && f.body[i + 2] == 77;
            int colour = f.body[i] == 10 && f.body[i + 1] == 200 && f.body[i + 2] == 30;
            if (!grey && !colour)
                fail_msg("%s: pixel %zu is (%u, %u, %u), neither of the constant colours",
                         names[k], i / 3, f.body[i], f.body[i + 1], f.body[i + 2]);
        }
        free(f.raw);
    }
    free(px);
}

/* ------------------------------------------------------------------------ */
/* Files that are not images, broken images                                 */

static void test_broken(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("broken", in, out);
    write_ids(in, "ok%d.png", 4, 4, 3, 0);
    /* A truncated PNG: a good one cut after its header. */
    size_t len;
    in_dir(path, sizeof path, "broken/in/ok0.png");
    unsigned char *good = tu_read_file(path, &len);
    tu_write_file(under(path, sizeof path, in, "cut.png"), good, 40);
    free(good);
    import_opts o = import_defaults();
    o.test_fraction = 0.25;
    import_fails(in, out, &o, "cut.png: ");
    assert_false(tu_exists(out));

    tu_remove_tree(path);
    tu_write_file(under(path, sizeof path, in, "text.jpg"), "not a picture", 13);
    import_fails(in, out, &o, "text.jpg: neither a PNG nor a JPEG file");

    /* A JPEG cut short: TurboJPEG's message. */
    tu_remove_tree(path);
    uint8_t rgb[16 * 16 * 3];
    memset(rgb, 99, sizeof rgb);
    in_dir(path, sizeof path, "broken/whole.jpg");
    write_jpeg(path, 16, 16, rgb, 0);
    unsigned char *jpg = tu_read_file(path, &len);
    tu_write_file(under(path, sizeof path, in, "half.jpg"), jpg, len / 2);
    free(jpg);
    import_fails(in, out, &o, "half.jpg: ");

    /* A CMYK JPEG: refused by name (TurboJPEG said only "Unsupported color
     * conversion request"); half.jpg waits aside meanwhile. */
    char aside[512], cmyk_path[512];
    in_dir(aside, sizeof aside, "broken/half.jpg.aside");
    assert_int_equal(rename(path, aside), 0);
    uint8_t cmyk[8 * 8 * 4];
    memset(cmyk, 40, sizeof cmyk);
    write_jpeg_as(under(cmyk_path, sizeof cmyk_path, in, "cmyk.jpg"), 8, 8, cmyk, TJPF_CMYK);
    import_fails(in, out, &o, "cmyk.jpg: a CMYK JPEG, which vae import does not read");
    assert_int_equal(unlink(cmyk_path), 0);
    assert_int_equal(rename(aside, path), 0);

    /* --skip-broken: skipped with a warning naming it. */
    import_skipping(in, out, &o, 4, 1, "half.jpg");
}

/* A FIFO named as an image: an error naming it at once (skipped with
 * --skip-broken), not a wait for a writer. */
static void test_fifo_image(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("fifo", in, out);
    write_ids(in, "ok%d.png", 4, 4, 3, 0);
    assert_int_equal(mkfifo(under(path, sizeof path, in, "pipe.png"), 0644), 0);
    import_opts o = import_defaults();
    o.test_fraction = 0.25;
    tu_deadline("vae import of a FIFO named as an image", 20);
    import_fails(in, out, &o, "pipe.png: is a FIFO (named pipe), not a regular file");
    assert_false(tu_exists(out));
    import_skipping(in, out, &o, 4, 1, "pipe.png");
    tu_deadline(NULL, 0);
}

static void test_layout_errors(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("layout", in, out);
    import_opts o = import_defaults();
    import_fails(in, out, &o, "no images (files ending in .png, .jpg or .jpeg)");
    write_grey_id(under(path, sizeof path, in, "cat/1.png"), 2, 2, 1);
    write_grey_id(under(path, sizeof path, in, "cat/2.png"), 2, 2, 2);
    write_grey_id(under(path, sizeof path, in, "stray.png"), 2, 2, 3);
    import_fails(in, out, &o, "stray.png: an image beside class folders");
    tu_remove_tree(path);
    assert_int_equal(mkdir(under(path, sizeof path, in, "dog"), 0755), 0);
    tu_write_file(under(path, sizeof path, in, "dog/readme.md"), "x", 1);
    import_fails(in, out, &o, "dog: a class folder without images");
    in_dir(path, sizeof path, "layout/in/dog");
    import_fails(path, out, &o, "dog: no images");
    write_grey_id(under(path, sizeof path, in, "dog/1.png"), 2, 2, 4);
    /* 2 and 1 images, F = 0.1: no test image anywhere. */
    import_fails(in, out, &o, "no test images");
    in_dir(path, sizeof path, "layout/missing");
    import_fails(path, out, &o, "cannot read");
    assert_false(tu_exists(out));
}

static void test_class_limit(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("limit", in, out);
    /* 256 classes of 2 images: labels 0..255 all used. */
    for (int c = 0; c < 256; c++)
        for (int k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, "c%03d/%d.png", c, k);
            write_grey_id(under(path, sizeof path, in, name), 1, 1, (uint8_t)c);
        }
    import_opts o = import_defaults();
    o.test_fraction = 0.5;
    import_summary s = import_ok(in, out, &o);
    assert_int_equal(s.n_classes, 256);
    assert_int_equal(s.n_test, 256);
    idx_file lb = read_idx(out, "t10k-labels-idx1-ubyte");
    idx_file im = read_idx(out, "t10k-images-idx3-ubyte");
    for (size_t i = 0; i < 256; i++)
        assert_int_equal(lb.body[i], im.body[i]); /* folder c's images are value c */
    free(lb.raw);
    free(im.raw);
    /* One more is refused. */
    write_grey_id(under(path, sizeof path, in, "c256/0.png"), 1, 1, 0);
    o.force = 1;
    import_fails(in, out, &o, "has 257 class folders; at most 256 classes");
}

static void test_existing_output(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    fresh(in, sizeof in, "exist/in");
    fresh(out, sizeof out, "exist/out");
    write_ids(in, "x/%d.png", 4, 2, 2, 0);
    tu_write_file(under(path, sizeof path, out, "t10k-labels-idx1-ubyte.gz"), "old", 3);
    import_opts o = import_defaults();
    o.test_fraction = 0.25;
    err_msg err;
    assert_int_equal(import_check_out(out, 0, &err), -1);
    tu_assert_contains(err.text, "t10k-labels-idx1-ubyte.gz exists: give --force");
    import_fails(in, out, &o, "t10k-labels-idx1-ubyte.gz exists");
    tu_assert_file_equals(path, "old", 3);
    assert_int_equal(tu_count_entries(out, NULL, 0), 1);

    /* --force: written, and the stale .gz (which the loader would read for
     * a missing raw file) and a colour set's files removed. */
    tu_write_file(under(path, sizeof path, out, "train-images-idx4-ubyte"), "old", 3);
    o.force = 1;
    import_ok(in, out, &o);
    assert_false(tu_exists(path));
    in_dir(path, sizeof path, "exist/out/t10k-labels-idx1-ubyte.gz");
    assert_false(tu_exists(path));
    assert_int_equal(tu_count_entries(out, NULL, 0), 5); /* 4 IDX + labels.txt */

    /* A file where the folder should be. */
    in_dir(path, sizeof path, "exist/out/labels.txt");
    assert_int_equal(import_check_out(path, 1, &err), -1);
    tu_assert_contains(err.text, "is not a folder");
}

/* ------------------------------------------------------------------------ */
/* The binary                                                               */

static void test_cli(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("cli", in, out);
    make_classes(in);

    assert_exit(run("--help", NULL), 0);
    tu_assert_contains(out_text, "  import ");
    assert_exit(run("import", "--help", NULL), 0);
    tu_assert_contains(out_text, "usage: vae import DIR [options]");
    static const char *const opts[] = {"-o, --output FILE", "--size WxH",
                                       "--channels auto|1|3", "--background white|black",
                                       "--test-fraction F", "--seed N", "--skip-broken",
                                       "--max-pixels N", "--force", "--json"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        tu_assert_contains(out_text, opts[i]);

    assert_exit(run("import", in, "-o", out, "--test-fraction", "0.2", NULL), 0);
    tu_assert_contains(out_text, "imported 16 images, 4x3x1, 3 classes: 13 train, 3 test, "
                       "1 other file skipped (first: ");
    tu_assert_contains(out_text, "b/notes.txt");
    tu_join(path, sizeof path, out, "labels.txt");
    tu_assert_file_equals(path, "C\na\nb\n", 6);

    /* Again: the data set is there (exit 2, names --force); then --force. */
    assert_exit(run("import", in, "-o", out, NULL), 2);
    tu_assert_contains(err_text, "exists: give --force");
    assert_exit(run("import", in, "-o", out, "--force", "--json", "--seed", "3",
                    "--test-fraction", "0.2", "--size", "8x6", "--channels", "3",
                    "--background", "black", NULL), 0);
    assert_true(json_num(out_text, "images") == 16);
    assert_true(json_num(out_text, "width") == 8);
    assert_true(json_num(out_text, "height") == 6);
    assert_true(json_num(out_text, "channels") == 3);
    assert_true(json_num(out_text, "classes") == 3);
    assert_true(json_num(out_text, "train") == 13);
    assert_true(json_num(out_text, "test") == 3);
    assert_true(json_num(out_text, "skipped") == 1);
    assert_true(json_num(out_text, "broken") == 0);
    idx_file f = read_idx(out, "t10k-images-idx4-ubyte");
    assert_dims(&f, 0x804, 4, 3, 6, 8, 3);
    free(f.raw);
    in_dir(path, sizeof path, "cli/out/t10k-images-idx3-ubyte");
    assert_false(tu_exists(path));
    /* A file name that is not UTF-8 (any bytes are a name): valid JSON
     * still, the bad byte as U+FFFD. */
    tu_write_file(under(path, sizeof path, in, "a/\xff.txt"), "x", 1);
    assert_exit(run("import", in, "-o", out, "--force", "--json", "--test-fraction", "0.2",
                    NULL), 0);
    tu_assert_contains(out_text, "a/\\ufffd.txt\"");
    assert_null(strchr(out_text, 0xff));
    assert_int_equal(unlink(path), 0);

    /* Broken: fatal with the name (exit 1), or skipped with a warning. */
    tu_write_file(under(path, sizeof path, in, "a/zz.png"), "junk", 4);
    assert_exit(run("import", in, "-o", out, "--force", NULL), 1);
    tu_assert_contains(err_text, "vae import: ");
    tu_assert_contains(err_text, "a/zz.png: ");
    assert_exit(run("import", in, "-o", out, "--force", "--skip-broken", "--test-fraction",
                    "0.2", NULL), 0);
    tu_assert_contains(err_text, "vae import: warning: skipping ");
    tu_assert_contains(err_text, "a/zz.png: ");
    tu_assert_contains(out_text, "imported 16 images");
    tu_assert_contains(out_text, "1 broken image skipped (first: ");
}

/* Colour through every command: a generated folder of 10 x 6 RGB images in
 * three classes (a red, green or blue bar), imported, then trained on by the
 * MLP (also conditional) and the conv VAE; sample and reconstruct write RGB
 * grids of 10 x 6 tiles; info names the shape; probe classifies; a flat
 * import (no labels) trains, and what needs labels says so. */
static void test_colour_end_to_end(void **state)
{
    (void)state;
    char in[256], out[256], path[512], ckpt[512], runs[512], png[512];
    make_case("e2e", in, out);
    static const char *const cls[3] = {"blue", "green", "red"};
    uint8_t px[6 * 10 * 3];
    for (int k = 0; k < 60; k++) {
        int c = k % 3;
        memset(px, 20, sizeof px);
        for (int y = 0; y < 6; y++) {
            int x = 1 + (k / 3) % 8;
            px[(y * 10 + x) * 3 + (2 - c)] = 250; /* blue: B, green: G, red: R */
        }
        char name[64];
        snprintf(name, sizeof name, "%s/%02d.png", cls[c], k);
        write_png(under(path, sizeof path, in, name), 10, 6, 3, px);
    }
    assert_exit(run("import", in, "-o", out, "--test-fraction", "0.2", NULL), 0);
    tu_assert_contains(out_text, "imported 60 images, 10x6x3, 3 classes: 48 train, 12 test");
    in_dir(runs, sizeof runs, "e2e/runs");
    mkdir(runs, 0777);
    static const char *const archs[3][4] = {{"--arch", "mlp", "--hidden", "32"},
                                            {"--arch", "conv", "--hidden", "4,8"},
                                            {"--conditional", "--hidden", "32", "--act"}};
    for (int a = 0; a < 3; a++) {
        char name[32];
        snprintf(name, sizeof name, "m%d.bin", a);
        tu_join(ckpt, sizeof ckpt, runs, name);
        snprintf(name, sizeof name, "out%d", a);
        tu_join(path, sizeof path, runs, name);
        assert_exit(run("train", "--data", out, "--ckpt", ckpt, "--out", path, "--epochs",
                        "2", "--batch", "8", "--latent", "3", archs[a][0], archs[a][1],
                        archs[a][2], archs[a][3], a == 2 ? "tanh" : NULL, NULL), 0);
        assert_exit(run("info", "--ckpt", ckpt, NULL), 0);
        tu_assert_contains(out_text, "10x6 RGB images (180 values)");
        tu_join(png, sizeof png, runs, "s.png");
        assert_exit(run("sample", "--ckpt", ckpt, "--n", "3", "-o", png, NULL), 0);
        /* A conditional model shows a column a label: 3 columns here. */
        size_t tiles_x = 3, tiles_y = a == 2 ? 1 : 1;
        png_image im;
        memset(&im, 0, sizeof im);
        im.version = PNG_IMAGE_VERSION;
        assert_true(png_image_begin_read_from_file(&im, png));
        assert_int_equal(im.width, 2 + tiles_x * 12);
        assert_int_equal(im.height, 2 + tiles_y * 8);
        assert_true(im.format & PNG_FORMAT_FLAG_COLOR);
        png_image_free(&im);
        tu_join(png, sizeof png, runs, "r.png");
        assert_exit(run("reconstruct", "--ckpt", ckpt, "--data", out, "--n", "4", "-o", png,
                        NULL), 0);
        assert_exit(run("eval", "--ckpt", ckpt, "--data", out, NULL), 0);
        if (a == 0) {
            assert_exit(run("probe", "--ckpt", ckpt, "--data", out, "--k", "3", NULL), 0);
            tu_assert_contains(out_text, "12 queries");
        }
    }
    /* A label the conditional model does not know. */
    assert_exit(run("sample", "--ckpt", ckpt, "--label", "3", NULL), 2);
    tu_assert_contains(err_text, "knows labels 0 to 2");

    /* Flat: the same images without class folders. */
    char flat[256], fout[256];
    make_case("e2e-flat", flat, fout);
    for (int k = 0; k < 20; k++) {
        memset(px, (uint8_t)(10 * k), sizeof px);
        px[0] = 255; /* colour */
        char name[32];
        snprintf(name, sizeof name, "%02d.png", k);
        write_png(under(path, sizeof path, flat, name), 10, 6, 3, px);
    }
    assert_exit(run("import", flat, "-o", fout, NULL), 0);
    tu_join(ckpt, sizeof ckpt, runs, "flat.bin");
    tu_join(path, sizeof path, runs, "flat-out");
    assert_exit(run("train", "--data", fout, "--ckpt", ckpt, "--out", path, "--epochs", "1",
                    "--batch", "6", "--hidden", "16", "--latent", "2", NULL), 0);
    assert_exit(run("probe", "--ckpt", ckpt, "--data", fout, NULL), 1);
    tu_assert_contains(err_text, "has no label file");
    /* traverse says the image has no label, not "label 0". */
    char tpng[256];
    tu_join(tpng, sizeof tpng, runs, "flat-traverse.png");
    assert_exit(run("traverse", "--ckpt", ckpt, "--data", fout, "-o", tpng, NULL), 0);
    tu_assert_contains(out_text, "(test image 0 (unlabelled): ");
    assert_exit(run("traverse", "--ckpt", ckpt, "--data", fout, "-o", tpng, "--json", NULL),
                0);
    tu_assert_contains(out_text, "{\"image\":0,\"label\":null,");
    tu_join(ckpt, sizeof ckpt, runs, "flat-c.bin");
    assert_exit(run("train", "--data", fout, "--ckpt", ckpt, "--out", path, "--epochs", "1",
                    "--conditional", NULL), 1);
    tu_assert_contains(err_text, "no label file");
    assert_false(tu_exists(ckpt));
    /* A model of 10 x 6 colour images refuses grey data of the same size. */
    tu_join(ckpt, sizeof ckpt, runs, "m0.bin");
    char grey[256], gout[256];
    make_case("e2e-grey", grey, gout);
    write_ids(grey, "g%d.png", 10, 10, 6, 1);
    assert_exit(run("import", grey, "-o", gout, NULL), 0);
    assert_exit(run("eval", "--ckpt", ckpt, "--data", gout, NULL), 1);
    tu_assert_contains(err_text, "the model takes 10x6 colour images, but the test images "
                                 "are 10x6 grey");
}

static void test_cli_errors(void **state)
{
    (void)state;
    char in[256], out[256];
    make_case("cli-err", in, out);
    struct {
        const char *opt, *value, *msg;
    } bad[] = {
        {"--size", "0x5", "--size: '0x5': width and height go from 1 to 65535"},
        {"--size", "5", "--size: '5' is not WxH"},
        {"--size", "5x", "--size: '5x' is not WxH"},
        {"--size", "70000x5", "width and height go from 1 to 65535"},
        {"--test-fraction", "2", "--test-fraction: must be above 0 and below 1, not 2"},
        {"--test-fraction", "0", "must be above 0 and below 1, not 0"},
        {"--test-fraction", "1", "must be above 0 and below 1, not 1"},
        {"--test-fraction", "x", "--test-fraction: 'x' is not a number"},
        {"--channels", "2", "--channels: '2' is not auto, 1 or 3"},
        {"--background", "red", "--background: 'red' is not white or black"},
        {"--seed", "-1", "--seed: '-1' is not a whole number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_exit(run("import", in, "-o", out, bad[i].opt, bad[i].value, NULL), 2);
        tu_assert_contains(err_text, bad[i].msg);
        tu_assert_contains(err_text, "(see 'vae import --help')");
    }
    assert_exit(run("import", "-o", out, NULL), 2);
    tu_assert_contains(err_text, "the folder of images is missing");
    assert_exit(run("import", in, NULL), 2);
    tu_assert_contains(err_text, "-o OUT is required");
    assert_exit(run("import", in, in, "-o", out, NULL), 2);
    tu_assert_contains(err_text, "unexpected argument");
    assert_exit(run("import", in, "-o", out, "--epochs", "3", NULL), 2);
    tu_assert_contains(err_text, "unknown option '--epochs'");
    /* Runs, and fails (exit 1): an empty folder, a missing one. */
    assert_exit(run("import", in, "-o", out, NULL), 1);
    tu_assert_contains(err_text, "no images");
    char missing[256];
    in_dir(missing, sizeof missing, "cli-err/missing");
    assert_exit(run("import", missing, "-o", out, NULL), 1);
    tu_assert_contains(err_text, "cannot read");
    tu_assert_contains(err_text, "cli-err/missing");
    assert_false(tu_exists(out));
    /* Other commands still take no positional argument. */
    assert_exit(run("eval", in, NULL), 2);
    tu_assert_contains(err_text, "unexpected argument");
    /* One image a class: none can go to the test files, whatever the
     * fraction, and the message says why; DIR as -o (by another name). */
    write_ids(in, "a/%d.png", 1, 4, 4, 1);
    write_ids(in, "b/%d.png", 1, 4, 4, 2);
    assert_exit(run("import", in, "-o", out, "--test-fraction", "0.99", NULL), 1);
    tu_assert_contains(err_text, "every class has one image (2 images), which stays for "
                                 "training; give classes of two images or more");
    assert_false(tu_exists(out));
    char same[300];
    snprintf(same, sizeof same, "%s/../in", in);
    assert_exit(run("import", in, "-o", same, NULL), 2);
    tu_assert_contains(err_text, "is DIR, the folder of images being imported");
    /* A folder inside DIR, there or not yet (the next import of DIR would
     * take it for a class folder): refused, nothing made. */
    const char *inside[2] = {"%s/a", "%s/new/deeper/set"};
    for (int i = 0; i < 2; i++) {
        char path[320];
        snprintf(path, sizeof path, inside[i], in);
        assert_exit(run("import", in, "-o", path, NULL), 2);
        tu_assert_contains(err_text, "is inside DIR");
    }
    snprintf(same, sizeof same, "%s/new", in);
    assert_false(tu_exists(same));
}

/* ------------------------------------------------------------------------ */
/* Each image its own decoder                                               */

/* A broken JPEG and a 10-byte one among good ones: each is its own failure,
 * and the good JPEGs after them still decode (one shared TurboJPEG handle
 * used to carry a broken file's state into every later one). */
static void test_jpeg_each_alone(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("jpeg-alone", in, out);
    uint8_t rgb[16 * 16 * 3];
    for (int k = 0; k < 6; k++) {
        memset(rgb, 30 + 30 * k, sizeof rgb);
        rgb[0] = (uint8_t)(200 - k); /* colour, so the output is RGB */
        char name[32];
        snprintf(name, sizeof name, "%c%d.jpg", k < 2 ? 'a' : 'd', k);
        write_jpeg(under(path, sizeof path, in, name), 16, 16, rgb, 0);
    }
    /* b-broken.jpg: a good JPEG whose entropy-coded data is cut and
     * followed by garbage; c-tiny.jpg: 10 bytes, the start of a header. */
    size_t len;
    in_dir(path, sizeof path, "jpeg-alone/in/a0.jpg");
    unsigned char *jpg = tu_read_file(path, &len);
    for (size_t i = len / 2; i < len; i++)
        jpg[i] = (uint8_t)(i * 37);
    tu_write_file(under(path, sizeof path, in, "b-broken.jpg"), jpg, len);
    free(jpg);
    static const uint8_t tiny[10] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F'};
    tu_write_file(under(path, sizeof path, in, "c-tiny.jpg"), tiny, sizeof tiny);

    import_opts o = import_defaults();
    o.test_fraction = 0.34;
    import_fails(in, out, &o, "b-broken.jpg: ");
    assert_false(tu_exists(out));

    import_skipping(in, out, &o, 6, 2, "b-broken.jpg");
    tu_assert_contains(warned, "c-tiny.jpg: ");
    assert_null(strstr(warned, "/d"));

    /* The tiny one alone is broken too, by name, not by what came before. */
    in_dir(path, sizeof path, "jpeg-alone/in/b-broken.jpg");
    unlink(path);
    o = import_defaults();
    o.test_fraction = 0.34;
    o.force = 1;
    import_fails(in, out, &o, "c-tiny.jpg: ");
}

/* ------------------------------------------------------------------------ */
/* The pixel limit                                                          */

/* A grey 8-bit PNG of w x h zeros, its rows deflated one by one, so a
 * 20000 x 20000 one (400 MB of pixels) is a file of some 400 KB that is
 * never whole in memory here. */
static void write_zero_png(const char *path, uint32_t w, uint32_t h)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng failed writing %s", path);
    png_init_io(png, fp);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_filter(png, 0, PNG_FILTER_NONE);
    png_set_compression_level(png, 9);
    png_write_info(png, info);
    uint8_t *row = calloc(w, 1);
    assert_non_null(row);
    for (uint32_t y = 0; y < h; y++)
        png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    assert_int_equal(fclose(fp), 0);
}

/* Runs vae to the end like run(), and its peak resident memory in KiB
 * (of that child alone: wait4, not RUSAGE_CHILDREN, which would count the
 * largest of every earlier child too). */
static int run_peak(long *peak_kib, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(NULL, first, ap);
    va_end(ap);
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            fail_msg("wait4: %s", strerror(errno));
    read_outputs();
    *peak_kib = ru.ru_maxrss;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A PNG declaring 20000 x 20000 (1.6 GB as RGBA) is refused from its header,
 * with or without --size, before its pixels take memory; a JPEG header
 * declaring 60000 x 60000 the same. */
static void test_bomb(void **state)
{
    (void)state;
    char in[256], out[256], path[512], base[256];
    make_case("bomb", in, out);
    write_ids(in, "ok%d.png", 3, 4, 4, 1);
    /* The peak of an import of the good images alone: what the binary
     * takes anyway (more under ASan). The bomb may add at most 64 MiB. */
    long peak, limit;
    in_dir(base, sizeof base, "bomb/base");
    assert_exit(run_peak(&peak, "import", in, "-o", base, "--test-fraction", "0.34", NULL), 0);
    limit = peak + 64 * 1024;
    printf("an import of 3 small images alone: peak memory %ld KiB\n", peak);
    write_zero_png(under(path, sizeof path, in, "bomb.png"), 20000, 20000);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size < 1000000);
    static const char *const sizes[2][2] = {{NULL, NULL}, {"--size", "4x4"}};
    for (int k = 0; k < 2; k++) {
        assert_exit(run_peak(&peak, "import", in, "-o", out, sizes[k][0], sizes[k][1], NULL),
                    1);
        tu_assert_contains(err_text, "bomb.png: 20000x20000 pixels, above the limit of "
                                     "16777216 (--max-pixels N raises it)");
        printf("bomb.png (%ld bytes, 20000x20000)%s: refused, peak memory %ld KiB\n",
               (long)st.st_size, k ? " with --size 4x4" : "", peak);
        if (peak > limit)
            fail_msg("peak memory %ld KiB refusing the bomb; at most %ld expected", peak,
                     limit);
        assert_false(tu_exists(out));
        /* --skip-broken skips it, and imports the others. */
        assert_exit(run_peak(&peak, "import", in, "-o", out, "--skip-broken",
                             "--test-fraction", "0.34", "--force", sizes[k][0], sizes[k][1],
                             NULL), 0);
        tu_assert_contains(err_text, "warning: skipping ");
        tu_assert_contains(err_text, "bomb.png: 20000x20000 pixels");
        tu_assert_contains(out_text, "imported 3 images");
        assert_true(peak <= limit);
        tu_remove_tree(out);
    }
    unlink(path);

    /* A JPEG whose frame header says 60000 x 60000. */
    uint8_t rgb[16 * 16 * 3];
    memset(rgb, 90, sizeof rgb);
    in_dir(path, sizeof path, "bomb/small.jpg");
    write_jpeg(path, 16, 16, rgb, 0);
    size_t len;
    unsigned char *jpg = tu_read_file(path, &len);
    int patched = 0;
    for (size_t i = 2; i + 8 < len && !patched; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) { /* SOF0: len, precision, h, w */
            jpg[i + 5] = 0xea, jpg[i + 6] = 0x60, jpg[i + 7] = 0xea, jpg[i + 8] = 0x60;
            patched = 1;
        }
    assert_true(patched);
    tu_write_file(under(path, sizeof path, in, "huge.jpg"), jpg, len);
    free(jpg);
    assert_exit(run_peak(&peak, "import", in, "-o", out, "--force", NULL), 1);
    tu_assert_contains(err_text, "huge.jpg: 60000x60000 pixels, above the limit of 16777216 "
                                 "(--max-pixels N raises it)");
    assert_true(peak <= limit);
}

/* --max-pixels moves the limit: 4100 x 4100 (16810000 pixels) is above the
 * default, refused at 16809999 and read at 16810000. */
static void test_max_pixels(void **state)
{
    (void)state;
    char in[256], out[256], path[512];
    make_case("max-pixels", in, out);
    write_zero_png(under(path, sizeof path, in, "a.png"), 4100, 4100);
    write_zero_png(under(path, sizeof path, in, "b.png"), 4100, 4100);
    assert_exit(run("import", in, "-o", out, "--size", "4x4", NULL), 1);
    tu_assert_contains(err_text, "a.png: 4100x4100 pixels, above the limit of 16777216 "
                                 "(--max-pixels N raises it)");
    assert_exit(run("import", in, "-o", out, "--size", "4x4", "--max-pixels", "16809999",
                    "--test-fraction", "0.5", NULL), 1);
    tu_assert_contains(err_text, "above the limit of 16809999 (--max-pixels N raises it)");
    assert_false(tu_exists(out));
    assert_exit(run("import", in, "-o", out, "--size", "4x4", "--max-pixels", "16810000",
                    "--test-fraction", "0.5", NULL), 0);
    tu_assert_contains(out_text, "imported 2 images, 4x4x1");
    assert_exit(run("import", in, "-o", out, "--max-pixels", "0", NULL), 2);
    tu_assert_contains(err_text, "--max-pixels");

    /* The library: the same limit in import_opts. */
    import_opts o = import_defaults();
    assert_int_equal(o.max_pixels, 16777216);
    o.width = o.height = 4;
    o.test_fraction = 0.5;
    o.force = 1;
    import_fails(in, out, &o, "a.png: 4100x4100 pixels, above the limit of 16777216");
    o.max_pixels = 4100 * 4100;
    import_ok(in, out, &o);
}

/* ------------------------------------------------------------------------ */
/* The data set replaced whole                                              */

#define SNAP_MAX 16

/* A folder's entries (all regular files), names sorted, with their bytes. */
typedef struct folder_snap {
    size_t n;
    char names[SNAP_MAX][64];
    unsigned char *bytes[SNAP_MAX];
    size_t len[SNAP_MAX];
} folder_snap;

static int by_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void snap_take(folder_snap *s, const char *folder)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir(folder);
    if (!d)
        fail_msg("cannot list %s", folder);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (s->n == SNAP_MAX)
            fail_msg("%s: more than %d entries", folder, SNAP_MAX);
        snprintf(s->names[s->n++], sizeof s->names[0], "%.63s", e->d_name);
    }
    closedir(d);
    qsort(s->names, s->n, sizeof s->names[0], by_str);
    for (size_t i = 0; i < s->n; i++) {
        char path[512];
        tu_join(path, sizeof path, folder, s->names[i]);
        s->bytes[i] = tu_read_file(path, &s->len[i]);
    }
}

static void snap_free(folder_snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->bytes[i]);
    memset(s, 0, sizeof *s);
}

static int snap_equal(const folder_snap *a, const folder_snap *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->names[i], b->names[i]) || a->len[i] != b->len[i] ||
            memcmp(a->bytes[i], b->bytes[i], a->len[i]))
            return 0;
    return 1;
}

/* The snapshot's files written into folder (made fresh). */
static void snap_put(const folder_snap *s, const char *folder)
{
    tu_remove_tree(folder);
    assert_int_equal(mkdir(folder, 0755), 0);
    for (size_t i = 0; i < s->n; i++) {
        char path[512];
        tu_join(path, sizeof path, folder, s->names[i]);
        tu_write_file(path, s->bytes[i], s->len[i]);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* kill -9 at moments spread over a whole vae import --force: each time the
 * folder holds the old data set or the new one, whole (every file's bytes,
 * and the user's README.md in both), never a mix; the next import removes
 * whatever a killed one left beside it. The new set is colour (idx4 files)
 * and another split, so every file of it differs from the old grey one. */
static void test_kill_midway(void **state)
{
    (void)state;
    char in[256], out[256], parent[256], old_ref[256], new_ref[256], path[512];
    make_case("kill", in, out);
    in_dir(parent, sizeof parent, "kill");
    in_dir(old_ref, sizeof old_ref, "kill/old-ref");
    in_dir(new_ref, sizeof new_ref, "kill/new-ref");
    /* 1200 flat 64 x 64 grey images in two classes: quick to decode, and
     * 5 to 15 MB to write, so the kills land in the writing too. */
    uint8_t *px = malloc(64 * 64);
    assert_non_null(px);
    for (int k = 0; k < 1200; k++) {
        memset(px, (uint8_t)(k * 7), 64 * 64);
        px[0] = (uint8_t)k;
        px[1] = (uint8_t)(k >> 8);
        char name[32];
        snprintf(name, sizeof name, "%s/%04d.png", k % 2 ? "odd" : "even", k);
        write_png(under(path, sizeof path, in, name), 64, 64, 1, px);
    }
    free(px);
    assert_exit(run("import", in, "-o", old_ref, NULL), 0);
    assert_exit(run("import", in, "-o", new_ref, "--channels", "3", "--seed", "2", NULL), 0);
    tu_write_file(under(path, sizeof path, old_ref, "README.md"), "mine\n", 5);
    tu_write_file(under(path, sizeof path, new_ref, "README.md"), "mine\n", 5);
    folder_snap olds, news, got;
    snap_take(&olds, old_ref);
    snap_take(&news, new_ref);
    assert_int_equal(olds.n, 6); /* 4 IDX files, labels.txt, README.md */
    /* How long the import to be killed takes whole: the old set replaced. */
    snap_put(&olds, out);
    double t0 = now_s();
    assert_exit(run("import", in, "-o", out, "--force", "--channels", "3", "--seed", "2",
                    NULL), 0);
    double took = now_s() - t0;

    rng_state r;
    rng_seed(&r, 23);
    int n_old = 0, n_new = 0, n_left = 0, k = 0;
    /* 20 kills, then (a machine busier than when took was measured makes
     * every import slower) later and later ones until both ends were seen. */
    for (; k < 20 || ((n_old == 0 || n_new == 0) && k < 40); k++) {
        snap_put(&olds, out);
        /* Spread over 5% to 125% of an import's time, jittered; then on
         * from there, half as late again each time. */
        double at = k < 20 ? took * (0.05 + 1.2 * ((double)k + (double)rng_uniform(&r)) / 20.0)
                           : took * 1.25 * pow(1.5, (double)(k - 19));
        pid_t pid = spawn("import", in, "-o", out, "--force", "--channels", "3", "--seed",
                          "2", NULL);
        struct timespec ts = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int rc = wait_status(pid);
        snap_take(&got, out);
        int is_old = snap_equal(&got, &olds), is_new = snap_equal(&got, &news);
        if (!is_old && !is_new) {
            char list[1024] = "";
            for (size_t i = 0; i < got.n; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), " %s (%zu bytes)",
                         got.names[i], got.len[i]);
            fail_msg("killed at %.3f s of %.3f s (exit %d): %s holds neither the old set "
                     "nor the new one, whole:%s", at, took, rc, out, list);
        }
        n_old += is_old;
        n_new += is_new;
        char hidden[256];
        tu_count_entries(parent, hidden, sizeof hidden);
        n_left += hidden[0] != '\0';
        snap_free(&got);
    }
    printf("%d kills over %.3f s imports: %d left the old set, %d the new set; "
           "%d left a hidden folder beside it\n", k, took, n_old, n_new, n_left);
    assert_true(n_old > 0 && n_new > 0);

    /* An import run to the end: the new set, and nothing beside it. */
    snap_put(&olds, out);
    assert_exit(run("import", in, "-o", out, "--force", "--channels", "3", "--seed", "2",
                    NULL), 0);
    snap_take(&got, out);
    assert_true(snap_equal(&got, &news));
    snap_free(&got);
    char hidden[256];
    tu_count_entries(parent, hidden, sizeof hidden);
    if (hidden[0])
        fail_msg("%s/%s is left after a whole import", parent, hidden);
    snap_free(&olds);
    snap_free(&news);
}

/* The folder swap around the edges: the user's other files kept, a
 * symbolic link followed, sub-folders refused, leftovers of a killed import
 * removed (a file of the user's found only there put back), a failing
 * import changing nothing, a second import at once refused. */
static void test_swap_edges(void **state)
{
    (void)state;
    char in[256], out[256], parent[256], path[512], hidden[256];
    make_case("swap", in, out);
    in_dir(parent, sizeof parent, "swap");
    write_ids(in, "x/%d.png", 4, 2, 2, 0);
    import_opts o = import_defaults();
    o.test_fraction = 0.25;
    import_ok(in, out, &o);
    tu_write_file(under(path, sizeof path, out, "README.md"), "mine\n", 5);
    tu_write_file(under(path, sizeof path, out, ".notes"), "n", 1);
    assert_int_equal(symlink("README.md", under(path, sizeof path, out, "link")), 0);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);

    /* --force: the user's files stay (the same file, linked), nothing beside. */
    o.force = 1;
    o.seed = 5;
    import_ok(in, out, &o);
    tu_join(path, sizeof path, out, "README.md");
    tu_assert_file_equals(path, "mine\n", 5);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    tu_join(path, sizeof path, out, "link");
    tu_assert_file_equals(path, "mine\n", 5);
    assert_int_equal(tu_count_entries(out, NULL, 0), 8);
    assert_int_equal(tu_count_entries(parent, hidden, sizeof hidden), 2);
    assert_string_equal(hidden, "");

    /* Leftovers of a killed import: one holding a stale IDX file and one
     * holding a file of the user's that is nowhere else. */
    char left[512];
    tu_join(left, sizeof left, parent, ".out.vae-import-AbC123");
    assert_int_equal(mkdir(left, 0755), 0);
    tu_write_file(under(path, sizeof path, left, "train-images-idx3-ubyte"), "old", 3);
    tu_write_file(under(path, sizeof path, left, "only-here.txt"), "keep", 4);
    import_ok(in, out, &o);
    assert_false(tu_exists(left));
    tu_join(path, sizeof path, out, "only-here.txt");
    tu_assert_file_equals(path, "keep", 4);
    unlink(path);

    /* A symbolic link: its target gets the new set, the link stays. */
    char real[256], link_path[512];
    fresh(real, sizeof real, "swap/real");
    tu_join(link_path, sizeof link_path, parent, "via-link");
    assert_int_equal(symlink(real, link_path), 0);
    import_ok(in, link_path, &o);
    struct stat st;
    assert_int_equal(lstat(link_path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(tu_count_entries(real, NULL, 0), 5);
    tu_count_entries(parent, hidden, sizeof hidden);
    assert_string_equal(hidden, "");

    /* A sub-folder: refused before anything is decoded, nothing moved. */
    assert_int_equal(mkdir(under(path, sizeof path, out, "runs"), 0755), 0);
    import_fails(in, out, &o, "/runs is a folder");
    assert_int_equal(tu_count_entries(out, NULL, 0), 9);
    rmdir(path);

    /* A failing import: the folder as it was, nothing beside it. */
    folder_snap was, now;
    snap_take(&was, out);
    tu_write_file(under(path, sizeof path, in, "x/zz.png"), "junk", 4);
    import_fails(in, out, &o, "zz.png: ");
    snap_take(&now, out);
    assert_true(snap_equal(&was, &now));
    snap_free(&now);
    snap_free(&was);
    tu_count_entries(parent, hidden, sizeof hidden);
    assert_string_equal(hidden, "");
    unlink(path);

    /* A new folder whose parents are missing: a failing import leaves none
     * of them. */
    char deep[512];
    in_dir(deep, sizeof deep, "swap/new1/new2/out");
    tu_write_file(under(path, sizeof path, in, "x/zz.png"), "junk", 4);
    import_fails(in, deep, &o, "zz.png: ");
    in_dir(path, sizeof path, "swap/new1");
    assert_false(tu_exists(path));
    in_dir(path, sizeof path, "swap/in/x/zz.png");
    unlink(path);
    import_ok(in, deep, &o);
    assert_int_equal(tu_count_entries(deep, NULL, 0), 5);

    /* Another import into the folder at the same time: refused. */
    int fd = open(out, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    import_fails(in, out, &o, "/out is locked by another process replacing it");
    close(fd);
    import_ok(in, out, &o);
}

static int group_setup(void **state)
{
    (void)state;
    return cli_setup("test_import");
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_write),
        cmocka_unit_test(test_class_folders),
        cmocka_unit_test(test_split_rule),
        cmocka_unit_test(test_flat_folder),
        cmocka_unit_test(test_grey_loads),
        cmocka_unit_test(test_colour_png),
        cmocka_unit_test(test_alpha),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_broken),
        cmocka_unit_test(test_fifo_image),
        cmocka_unit_test(test_layout_errors),
        cmocka_unit_test(test_class_limit),
        cmocka_unit_test(test_existing_output),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_colour_end_to_end),
        cmocka_unit_test(test_jpeg_each_alone),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_max_pixels),
        cmocka_unit_test(test_kill_midway),
        cmocka_unit_test(test_swap_edges),
    };
    /* TEST_FILTER=pattern runs only the tests whose names match it. */
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
