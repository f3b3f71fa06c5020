/* test_plot.c - running gnuplot: quoting, a chart drawn to its size, a
 * failing script, and gnuplot missing from PATH (the message names it and
 * says how to install it; no PNG or temp file is left either way). */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "png_grid.h"
#include "testutil.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/vae-test-plot-XXXXXX");
    return tu_mkdtemp(dir);
}

static int teardown(void **state)
{
    (void)state;
    tu_remove_tree(dir);
    return 0;
}

static void test_quote(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(plot_quote(out, sizeof out, "it's a/b.csv"), 0);
    assert_string_equal(out, "'it''s a/b.csv'");
    assert_int_equal(plot_quote(out, sizeof out, ""), 0);
    assert_string_equal(out, "''");
    assert_int_equal(plot_quote(out, 8, "too long a name"), -1);
}

static void test_draw(void **state)
{
    (void)state;
    char png[128];
    err_msg err;
    tu_join(png, sizeof png, dir, "it's.png");
    if (plot_png(png, 300, 200, "set title 'x squared'\nplot x**2 title 'x^2'\n", "test chart",
                 &err))
        fail_msg("%s", err.text);
    uint8_t *px;
    size_t w, h;
    assert_int_equal(png_grid_read_gray(png, &px, &w, &h, &err), 0);
    assert_true(w == 300 && h == 200);
    free(px);
    /* A script gnuplot refuses: an error, and nothing written. */
    tu_join(png, sizeof png, dir, "bad.png");
    assert_int_equal(plot_png(png, 300, 200, "plot no_such_function(x)\n", "test chart", &err),
                     -1);
    tu_assert_contains(err.text, "gnuplot failed drawing");
    tu_assert_contains(err.text, "bad.png");
    assert_false(tu_exists(png));
    assert_int_equal(tu_count_entries(dir, NULL, 0), 1);
}

static void test_missing(void **state)
{
    (void)state;
    assert_int_equal(plot_gnuplot_found(), 1); /* scripts/deps.sh installs it */
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    char png[128], empty[128];
    err_msg err;
    tu_join(png, sizeof png, dir, "missing.png");
    tu_join(empty, sizeof empty, dir, "no-programs");
    mkdir(empty, 0755);
    setenv("PATH", empty, 1);
    int found = plot_gnuplot_found();
    int rc = plot_png(png, 300, 200, "plot x\n", "test chart", &err);
    if (path)
        setenv("PATH", path, 1);
    else
        unsetenv("PATH");
    free(path);
    assert_int_equal(found, 0);
    assert_int_equal(rc, -1);
    tu_assert_contains(err.text, "gnuplot not found: no test chart in ");
    tu_assert_contains(err.text, "missing.png (" PLOT_INSTALL_HINT ")");
    assert_false(tu_exists(png));
    rmdir(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_missing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
