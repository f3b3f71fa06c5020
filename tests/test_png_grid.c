/* test_png_grid.c - grid layout and rounding as torchvision's save_image,
 * pixel round trips, and every error path of the PNG writer and reader. */
#define _GNU_SOURCE /* mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "png_grid.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Fixture: a fresh folder under /tmp per test, removed afterwards (flat). */

typedef tu_fixture fixture;

static int setup(void **state)
{
    return tu_fixture_setup(state, "test_png_grid");
}

static int teardown(void **state)
{
    return tu_fixture_teardown(state);
}

/* ------------------------------------------------------------------------ */
/* Helpers */

static void join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Reads a whole file; *size gets its length. Caller frees. */
static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long len = ftell(fp);
    assert_true(len >= 0);
    rewind(fp);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *size = (size_t)len;
    return buf;
}

static void read_gray_ok(const char *path, uint8_t **px, size_t *w, size_t *h)
{
    err_msg err = {{0}};
    if (png_grid_read_gray(path, px, w, h, &err) != 0)
        fail_msg("read %s: %s", path, err.text);
}

/* Every bad call must fail, name the path, and create nothing. */
static void assert_failed(int rc, const err_msg *err, const char *path)
{
    assert_int_equal(rc, -1);
    if (!strstr(err->text, path))
        fail_msg("error does not name %s: \"%s\"", path, err->text);
    assert_int_equal(access(path, F_OK), -1);
}

/* ------------------------------------------------------------------------ */
/* Grid layout and pixel values */

static void test_grid_3_tiles(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "grid.png");

    /* Three 2x2 tiles, ncol 2, pad 2: two rows, the fourth slot empty. */
    const float tiles[3 * 4] = {
        /* tile 0: ends and midpoints; 0.5 -> 127.5 + 0.5 = 128, not 127 */
        0.0f, 1.0f, 0.5f, 0.25f,
        /* tile 1: x.4 rounds down, x.6 rounds up */
        0.4f / 255.0f, 0.6f / 255.0f, 127.4f / 255.0f, 127.6f / 255.0f,
        /* tile 2: clamped, NaN -> 0, 254.9 truncates */
        -1.0f, 2.0f, NAN, 254.4f / 255.0f,
    };
    err_msg err = {{0}};
    if (png_grid_write(path, tiles, 3, 2, 2, 2, 2, &err) != 0)
        fail_msg("write: %s", err.text);

    /* width = 2 * (2 + 2) + 2, height = 2 * (2 + 2) + 2 */
    static const uint8_t want[10 * 10] = {
        0, 0, 0,   0,   0, 0,   0,   0, 0, 0,
        0, 0, 0,   0,   0, 0,   0,   0, 0, 0,
        0, 0, 0,   255, 0, 0,   0,   1, 0, 0,
        0, 0, 128, 64,  0, 0,   127, 128, 0, 0,
        0, 0, 0,   0,   0, 0,   0,   0, 0, 0,
        0, 0, 0,   0,   0, 0,   0,   0, 0, 0,
        0, 0, 0,   255, 0, 0,   0,   0, 0, 0,
        0, 0, 0,   254, 0, 0,   0,   0, 0, 0,
        0, 0, 0,   0,   0, 0,   0,   0, 0, 0,
        0, 0, 0,   0,   0, 0,   0,   0, 0, 0,
    };
    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 10);
    assert_int_equal(h, 10);
    for (size_t i = 0; i < 100; i++)
        if (px[i] != want[i])
            fail_msg("pixel (x %zu, y %zu) is %u, want %u", i % 10, i / 10,
                     (unsigned)px[i], (unsigned)want[i]);
    free(px);
}

/* The sample grid the CLI writes: 128 MNIST digits, 8 a row. */
static void test_grid_128_mnist(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "samples.png");

    const size_t n = 128, side = 28, ncol = 8, pad = 2, cell = side + pad;
    float *tiles = malloc(n * side * side * sizeof *tiles);
    assert_non_null(tiles);
    /* Tile k is all (k + 1) / 255, but for pixel (y 3, x 5) which is 1. */
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < side * side; i++)
            tiles[k * side * side + i] = i == 3 * side + 5 ? 1.0f : (float)(k + 1) / 255.0f;
    err_msg err = {{0}};
    if (png_grid_write(path, tiles, n, side, side, ncol, pad, &err) != 0)
        fail_msg("write: %s", err.text);
    free(tiles);

    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 242); /* 8 * 30 + 2 */
    assert_int_equal(h, 482); /* 16 * 30 + 2 */
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            size_t cx = x % cell, cy = y % cell;
            uint8_t expect = 0; /* padding */
            if (cx >= pad && cy >= pad && x < w - pad && y < h - pad) {
                size_t k = (y / cell) * ncol + x / cell;
                expect = cy - pad == 3 && cx - pad == 5 ? 255 : (uint8_t)(k + 1);
            }
            if (px[y * w + x] != expect)
                fail_msg("pixel (x %zu, y %zu) is %u, want %u", x, y,
                         (unsigned)px[y * w + x], (unsigned)expect);
        }
    free(px);
}

/* Fewer tiles than ncol: one row of n tiles, as make_grid's min(nrow, n). */
static void test_grid_ncol_above_n(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "row.png");
    const float tiles[3] = {1.0f, 1.0f, 1.0f}; /* three 1x1 tiles */
    err_msg err = {{0}};
    if (png_grid_write(path, tiles, 3, 1, 1, 8, 1, &err) != 0)
        fail_msg("write: %s", err.text);

    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 7); /* 3 * (1 + 1) + 1 */
    assert_int_equal(h, 3);
    const uint8_t want[7 * 3] = {0, 0, 0, 0, 0, 0, 0,
                                 0, 255, 0, 255, 0, 255, 0,
                                 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(px, want, sizeof want);
    free(px);
}

/* pad 0: tiles touch, nothing around them. */
static void test_grid_no_pad(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "nopad.png");
    const float tiles[3] = {1.0f, 0.5f, 0.25f};
    err_msg err = {{0}};
    if (png_grid_write(path, tiles, 3, 1, 1, 2, 0, &err) != 0)
        fail_msg("write: %s", err.text);

    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 2);
    assert_int_equal(h, 2);
    const uint8_t want[4] = {255, 128, 64, 0};
    assert_memory_equal(px, want, sizeof want);
    free(px);
}

/* ------------------------------------------------------------------------ */
/* Raw pixels */

static void test_gray_pixels_round_trip(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "gray.png");
    uint8_t src[5 * 3];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 17);
    err_msg err = {{0}};
    if (png_grid_write_pixels(path, src, 5, 3, 1, &err) != 0)
        fail_msg("write: %s", err.text);

    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 5);
    assert_int_equal(h, 3);
    assert_memory_equal(px, src, sizeof src);
    free(px);
}

static void test_rgb_round_trip(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "rgb.png");
    /* 3 x 2 pixels: red, green, blue / white, black, gray */
    const uint8_t src[2 * 3 * 3] = {255, 0, 0,     0, 255, 0, 0, 0, 255,
                                    255, 255, 255, 0, 0, 0,   90, 90, 90};
    err_msg err = {{0}};
    if (png_grid_write_pixels(path, src, 3, 2, 3, &err) != 0)
        fail_msg("write: %s", err.text);

    /* Read back as RGB with libpng directly: the file really is RGB. */
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&image, path));
    assert_int_equal(image.width, 3);
    assert_int_equal(image.height, 2);
    assert_true(image.format & PNG_FORMAT_FLAG_COLOR);
    assert_false(image.format & PNG_FORMAT_FLAG_ALPHA);
    image.format = PNG_FORMAT_RGB;
    uint8_t got[sizeof src];
    assert_int_equal(PNG_IMAGE_SIZE(image), sizeof got);
    assert_true(png_image_finish_read(&image, NULL, got, 0, NULL));
    png_image_free(&image);
    assert_memory_equal(got, src, sizeof src);

    /* And through the gray reader: converted, same size; white, black and
     * gray map to themselves. */
    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 3);
    assert_int_equal(h, 2);
    assert_int_equal(px[3], 255);
    assert_int_equal(px[4], 0);
    assert_int_equal(px[5], 90);
    free(px);
}

/* ------------------------------------------------------------------------ */
/* Errors */

static void test_missing_folder(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "nope/grid.png");
    const float tile[1] = {0.5f};
    const uint8_t pixel[1] = {7};
    err_msg err = {{0}};
    assert_failed(png_grid_write(path, tile, 1, 1, 1, 1, 0, &err), &err, path);
    assert_non_null(strstr(err.text, "does not exist"));
    memset(&err, 0, sizeof err);
    assert_failed(png_grid_write_pixels(path, pixel, 1, 1, 1, &err), &err, path);
    assert_int_equal(count_entries(fx->dir), 0);
}

static void test_dev_full(void **state)
{
    (void)state;
    const float tiles[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    err_msg err = {{0}};
    assert_int_equal(png_grid_write("/dev/full", tiles, 1, 2, 2, 1, 2, &err), -1);
    assert_non_null(strstr(err.text, "/dev/full"));
    /* the cause, not libpng's bare "Write Error" */
    assert_non_null(strstr(err.text, "No space left on device"));
    struct stat st;
    assert_int_equal(stat("/dev/full", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

/* A write that fails halfway (over the file size limit, in a child) leaves
 * the old PNG byte for byte, and no temp file. */
static void test_failed_write_keeps_old(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "grid.png");
    const float old_tiles[4] = {0.0f, 0.25f, 0.5f, 1.0f};
    err_msg err = {{0}};
    if (png_grid_write(path, old_tiles, 1, 2, 2, 1, 2, &err) != 0)
        fail_msg("write: %s", err.text);
    size_t old_size = 0;
    unsigned char *old = slurp(path, &old_size);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Noise that deflate cannot squeeze under the 2000-byte limit. */
        const size_t n = 16, side = 28;
        float *tiles = malloc(n * side * side * sizeof *tiles);
        if (!tiles)
            _exit(3);
        uint32_t s = 12345;
        for (size_t i = 0; i < n * side * side; i++) {
            s = s * 1664525u + 1013904223u;
            tiles[i] = (float)(s >> 8) / 16777216.0f;
        }
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {.rlim_cur = 2000, .rlim_max = 2000};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(2);
        err_msg cerr = {{0}};
        int rc = png_grid_write(path, tiles, n, side, side, 4, 2, &cerr);
        free(tiles);
        _exit(rc == -1 && strstr(cerr.text, path) ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    size_t now_size = 0;
    unsigned char *now = slurp(path, &now_size);
    assert_int_equal(now_size, old_size);
    assert_memory_equal(now, old, old_size);
    assert_int_equal(count_entries(fx->dir), 1);
    free(now);
    free(old);

    /* Bad arguments over an existing file leave it too. */
    assert_int_equal(png_grid_write(path, old_tiles, 0, 2, 2, 1, 2, &err), -1);
    uint8_t *px = NULL;
    size_t w = 0, h = 0;
    read_gray_ok(path, &px, &w, &h);
    assert_int_equal(w, 6);
    assert_int_equal(px[2 * 6 + 3], 64);
    free(px);
}

static void test_bad_args(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "bad.png");
    const float tiles[4] = {0};
    const uint8_t pixels[12] = {0};
    const size_t big = SIZE_MAX / 2;
    err_msg err;

#define BAD(call)                                  \
    do {                                           \
        memset(&err, 0, sizeof err);               \
        assert_failed((call), &err, path);         \
    } while (0)
    BAD(png_grid_write(path, tiles, 0, 2, 2, 1, 0, &err));   /* n */
    BAD(png_grid_write(path, tiles, 1, 2, 2, 0, 0, &err));   /* ncol */
    BAD(png_grid_write(path, tiles, 1, 0, 2, 1, 0, &err));   /* h */
    BAD(png_grid_write(path, tiles, 1, 2, 0, 1, 0, &err));   /* w */
    BAD(png_grid_write(path, NULL, 1, 2, 2, 1, 0, &err));    /* tiles */
    BAD(png_grid_write(path, tiles, 1, big, big, 1, 2, &err)); /* h * w */
    BAD(png_grid_write(path, tiles, 2, big, 1, 1, 2, &err)); /* n * h * w */
    BAD(png_grid_write(path, tiles, 1, 1, SIZE_MAX, 1, 2, &err)); /* w + pad */
    BAD(png_grid_write(path, tiles, 1, 1, 1, 1, SIZE_MAX, &err)); /* pad */
    BAD(png_grid_write(path, tiles, 1, 1, 1, 1, SIZE_MAX / 2, &err)); /* width */
    BAD(png_grid_write(path, tiles, 1, 1, 2000000, 1, 0, &err)); /* > libpng limit */
    BAD(png_grid_write_pixels(path, pixels, 2, 2, 2, &err)); /* channels */
    BAD(png_grid_write_pixels(path, pixels, 2, 2, 0, &err));
    BAD(png_grid_write_pixels(path, pixels, 1, 1, 4, &err));
    BAD(png_grid_write_pixels(path, pixels, 0, 2, 1, &err)); /* width 0 */
    BAD(png_grid_write_pixels(path, pixels, 2, 0, 1, &err)); /* height 0 */
    BAD(png_grid_write_pixels(path, NULL, 2, 2, 1, &err));
    BAD(png_grid_write_pixels(path, pixels, SIZE_MAX, 1, 3, &err));
    BAD(png_grid_write_pixels(path, pixels, 1, SIZE_MAX, 1, &err));
#undef BAD
    assert_int_equal(count_entries(fx->dir), 0);
}

static void test_read_errors(void **state)
{
    fixture *fx = *state;
    char text[256], missing[256], truncated[256];
    join(text, sizeof text, fx->dir, "notes.png");
    join(missing, sizeof missing, fx->dir, "missing.png");
    join(truncated, sizeof truncated, fx->dir, "truncated.png");

    FILE *fp = fopen(text, "wb");
    assert_non_null(fp);
    fputs("this is not a PNG file\n", fp);
    fclose(fp);

    /* A valid PNG cut after its header. */
    const float tiles[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    err_msg err = {{0}};
    if (png_grid_write(truncated, tiles, 1, 2, 2, 1, 2, &err) != 0)
        fail_msg("write: %s", err.text);
    assert_int_equal(truncate(truncated, 40), 0);

    const char *paths[3] = {text, missing, truncated};
    for (int i = 0; i < 3; i++) {
        uint8_t *px = NULL;
        size_t w = 99, h = 99;
        memset(&err, 0, sizeof err);
        assert_int_equal(png_grid_read_gray(paths[i], &px, &w, &h, &err), -1);
        if (!strstr(err.text, paths[i]))
            fail_msg("error does not name %s: \"%s\"", paths[i], err.text);
        assert_null(px);
        assert_int_equal(w, 99);
        assert_int_equal(h, 99);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grid_3_tiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grid_128_mnist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grid_ncol_above_n, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grid_no_pad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gray_pixels_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rgb_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_folder, setup, teardown),
        cmocka_unit_test(test_dev_full),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
