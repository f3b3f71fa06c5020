/* test_metrics.c - the per-epoch CSV: rows in order, rewritten whole after
 * each epoch, a resumed run keeping its earlier epochs and no others; and
 * the loss curve drawn from it. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "metrics.h"
#include "png_grid.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/vae-test-metrics-XXXXXX");
    return tu_mkdtemp(dir);
}

static int teardown(void **state)
{
    (void)state;
    tu_remove_tree(dir);
    return 0;
}

static metrics_row row(size_t e)
{
    metrics_row r = {e, 200.0 - e, 150.0 - e, 50.0, 190.0 - e, 140.0 - e, 50.0, 0.5, 1e5,
                     0.0, 0.0, 0.0};
    return r;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void test_rows_and_resume(void **state)
{
    (void)state;
    char path[128];
    tu_join(path, sizeof path, dir, "m.csv");
    metrics mt;
    err_msg err;
    assert_int_equal(metrics_open(&mt, path, 0, 0, &err), 0);
    metrics_row zero = {0};
    assert_int_equal(metrics_add(&mt, &zero, &err), 0);
    metrics_close(&mt);
    /* A fresh run starts the file over. */
    assert_int_equal(metrics_open(&mt, path, 0, 0, &err), 0);
    for (size_t e = 1; e <= 4; e++) {
        metrics_row r = row(e);
        assert_int_equal(metrics_add(&mt, &r, &err), 0);
    }
    metrics_close(&mt);
    char *text = (char *)tu_read_file(path, NULL);
    assert_int_equal(count_lines(text), 5);
    tu_assert_contains(text, METRICS_HEADER "\n1,199.000000,149.000000,50.000000,");
    tu_assert_contains(text, "\n4,196.000000,");
    free(text);
    /* Resuming after epoch 2 keeps epochs 1 and 2, then goes on. */
    assert_int_equal(metrics_open(&mt, path, 2, 0, &err), 0);
    metrics_row r = row(3);
    r.train_loss = 777.0;
    assert_int_equal(metrics_add(&mt, &r, &err), 0);
    metrics_close(&mt);
    text = (char *)tu_read_file(path, NULL);
    assert_int_equal(count_lines(text), 4);
    tu_assert_contains(text, "\n3,777.000000,");
    assert_null(strstr(text, "\n4,"));
    free(text);
    /* Someone else's CSV is not kept. */
    tu_write_file(path, "a,b\n1,2\n", 8);
    assert_int_equal(metrics_open(&mt, path, 5, 0, &err), 0);
    assert_int_equal(metrics_add(&mt, &r, &err), 0);
    metrics_close(&mt);
    text = (char *)tu_read_file(path, NULL);
    assert_int_equal(count_lines(text), 2);
    free(text);
}

static void test_write_errors(void **state)
{
    (void)state;
    char path[160];
    tu_join(path, sizeof path, dir, "no-such-folder/m.csv");
    metrics mt;
    err_msg err;
    assert_int_equal(metrics_open(&mt, path, 0, 0, &err), 0);
    metrics_row r = row(1);
    assert_int_equal(metrics_add(&mt, &r, &err), -1);
    tu_assert_contains(err.text, "does not exist");
    metrics_close(&mt);
    assert_int_equal(metrics_open(&mt, "/dev/full", 0, 0, &err), 0);
    assert_int_equal(metrics_add(&mt, &r, &err), -1);
    tu_assert_contains(err.text, "/dev/full");
    metrics_close(&mt);
}

static void test_png_path(void **state)
{
    (void)state;
    char *p = metrics_png_path("out/metrics.csv");
    assert_string_equal(p, "out/metrics.png");
    free(p);
    p = metrics_png_path("loss");
    assert_string_equal(p, "loss.png");
    free(p);
}

/* gnuplot draws the curve (the test needs it: scripts/deps.sh installs
 * it); a missing CSV is gnuplot's error, reported, with no PNG left. */
static void test_plot(void **state)
{
    (void)state;
    char csv[128], png[128], bad[128];
    tu_join(csv, sizeof csv, dir, "plot.csv");
    tu_join(png, sizeof png, dir, "plot.png");
    tu_join(bad, sizeof bad, dir, "missing.csv");
    metrics mt;
    err_msg err;
    assert_int_equal(metrics_open(&mt, csv, 0, 0, &err), 0);
    for (size_t e = 1; e <= 3; e++) {
        metrics_row r = row(e);
        assert_int_equal(metrics_add(&mt, &r, &err), 0);
    }
    metrics_close(&mt);
    if (metrics_plot(csv, png, 0, &err))
        fail_msg("%s", err.text);
    uint8_t *px;
    size_t w, h;
    assert_int_equal(png_grid_read_gray(png, &px, &w, &h, &err), 0);
    assert_true(w == 800 && h == 500);
    free(px);
    char out[128];
    tu_join(out, sizeof out, dir, "never.png");
    assert_int_equal(metrics_plot(bad, out, 0, &err), -1);
    tu_assert_contains(err.text, "gnuplot failed");
    assert_false(tu_exists(out));
    /* A CSV gnuplot would wait on for ever (--metrics /dev/stdout into a
     * pipe, a FIFO): refused at once, gnuplot never started. */
    char fifo[128];
    tu_join(fifo, sizeof fifo, dir, "plot.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    tu_deadline("metrics_plot of a FIFO", 10);
    assert_int_equal(metrics_plot(fifo, out, 0, &err), -1);
    tu_deadline(NULL, 0);
    tu_assert_contains(err.text, "is not a regular file: no loss curve is drawn from it");
    assert_false(tu_exists(out));
    unlink(fifo);
}

/* With a validation set: three more columns, kept on resume; a CSV of the
 * other shape is not resumed into; the plot draws the validation curve
 * (its pixels differ from the same plot without it). */
static void test_valid_columns(void **state)
{
    (void)state;
    char csv[128], png[128], png0[128];
    tu_join(csv, sizeof csv, dir, "valid.csv");
    tu_join(png, sizeof png, dir, "valid.png");
    tu_join(png0, sizeof png0, dir, "novalid.png");
    metrics mt;
    err_msg err;
    assert_int_equal(metrics_open(&mt, csv, 0, 1, &err), 0);
    for (size_t e = 1; e <= 3; e++) {
        metrics_row r = row(e);
        r.valid_loss = 180.0 - (double)e, r.valid_rec = 130.0, r.valid_kl = 50.0 - (double)e;
        assert_int_equal(metrics_add(&mt, &r, &err), 0);
    }
    metrics_close(&mt);
    char *text = (char *)tu_read_file(csv, NULL);
    tu_assert_contains(text, METRICS_HEADER_VALID "\n1,");
    tu_assert_contains(text, ",100000.0,179.000000,130.000000,49.000000\n2,");
    free(text);
    /* Resumed after 2 epochs, with validation: rows 1-2 kept. */
    assert_int_equal(metrics_open(&mt, csv, 2, 1, &err), 0);
    metrics_close(&mt);
    assert_int_equal(metrics_open(&mt, csv, 2, 1, &err), 0);
    metrics_row r = row(3);
    assert_int_equal(metrics_add(&mt, &r, &err), 0);
    metrics_close(&mt);
    text = (char *)tu_read_file(csv, NULL);
    assert_non_null(strstr(text, "\n2,"));
    free(text);
    /* The same file read as a run without validation: not resumed into. */
    assert_int_equal(metrics_open(&mt, csv, 2, 0, &err), 0);
    r = row(1);
    assert_int_equal(metrics_add(&mt, &r, &err), 0);
    metrics_close(&mt);
    text = (char *)tu_read_file(csv, NULL);
    assert_null(strstr(text, "valid_loss"));
    assert_null(strstr(text, "\n2,"));
    free(text);
    /* The plot with and without the validation curve. */
    assert_int_equal(metrics_open(&mt, csv, 0, 1, &err), 0);
    for (size_t e = 1; e <= 3; e++) {
        metrics_row v = row(e);
        v.valid_loss = 170.0 - 5.0 * (double)e;
        assert_int_equal(metrics_add(&mt, &v, &err), 0);
    }
    metrics_close(&mt);
    if (metrics_plot(csv, png, 1, &err) || metrics_plot(csv, png0, 0, &err))
        fail_msg("%s", err.text);
    uint8_t *a, *b;
    size_t w, h, w0, h0;
    assert_int_equal(png_grid_read_gray(png, &a, &w, &h, &err), 0);
    assert_int_equal(png_grid_read_gray(png0, &b, &w0, &h0, &err), 0);
    assert_true(w == w0 && h == h0);
    assert_true(memcmp(a, b, w * h) != 0);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_resume),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_png_path),
        cmocka_unit_test(test_plot),
        cmocka_unit_test(test_valid_columns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
