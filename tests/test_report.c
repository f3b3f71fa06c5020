/* test_report.c - the run's page, OUT/index.html: escaping, every epoch
 * in the table, the settings from the checkpoint, and end to end through
 * the vae binary ($VAE_BIN): every href and src of the page names a file
 * in OUT (the link check), none is absolute or on the web; without
 * gnuplot the page says so instead of linking a missing picture; a page
 * that cannot be written is a warning, and the run and its checkpoint go
 * on. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "metrics.h"
#include "plot.h"
#include "png_grid.h"
#include "report.h"
#include "testutil.h"
#include "cliutil.h"

/* ------------------------------------------------------------------------ */
/* Reading the page                                                         */

/* Occurrences of needle in text. */
static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A URL's %XX escapes decoded into out. */
static void url_decode(char *out, size_t size, const char *url, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < size; i++) {
        unsigned v;
        if (url[i] == '%' && i + 2 < len && sscanf(url + i + 1, "%2x", &v) == 1) {
            out[k++] = (char)v;
            i += 2;
        } else {
            out[k++] = url[i];
        }
    }
    out[k] = '\0';
}

/* The link check: every href="..." and src="..." of the page in folder
 * names a regular file in that folder, by a relative path without "..",
 * and none is absolute or on the web. Returns the number of links. */
static size_t check_links(const char *folder, const char *page)
{
    static const char *const attrs[] = {"href=\"", "src=\""};
    size_t links = 0;
    for (int a = 0; a < 2; a++)
        for (const char *p = page; (p = strstr(p, attrs[a])) != NULL;) {
            p += strlen(attrs[a]);
            const char *end = strchr(p, '"');
            assert_non_null(end);
            char url[512], path[1024];
            url_decode(url, sizeof url, p, (size_t)(end - p));
            if (url[0] == '/' || strstr(url, "://") || !strncmp(url, "http", 4) ||
                strstr(url, "..") || strchr(url, ':') || url[0] == '\0')
                fail_msg("link \"%s\" is not a relative path in the folder", url);
            const char *name = !strncmp(url, "./", 2) ? url + 2 : url;
            tu_join(path, sizeof path, folder, name);
            struct stat st;
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                fail_msg("link \"%s\": no file %s", url, path);
            links++;
            p = end;
        }
    return links;
}

/* Every element the page opens it closes, and it is one HTML5 document
 * without script. */
static void check_structure(const char *page)
{
    static const char *const tags[] = {"table", "tr", "div", "figure", "p", "details",
                                       "h1", "h2", "a", "thead", "tbody"};
    if (strncmp(page, "<!DOCTYPE html>\n<html lang=\"en\">", 32) != 0)
        fail_msg("no HTML5 doctype at the start");
    assert_int_equal(count(page, "</html>"), 1);
    assert_int_equal(count(page, "<script"), 0);
    assert_int_equal(count(page, "javascript:"), 0);
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        char open1[32], open2[32], close[32];
        snprintf(open1, sizeof open1, "<%s>", tags[i]);
        snprintf(open2, sizeof open2, "<%s ", tags[i]);
        snprintf(close, sizeof close, "</%s>", tags[i]);
        size_t opens = count(page, open1) + count(page, open2);
        if (opens != count(page, close))
            fail_msg("<%s>: %zu opened, %zu closed", tags[i], opens, count(page, close));
    }
}

static char *read_page(const char *folder)
{
    char path[256];
    tu_join(path, sizeof path, folder, REPORT_PAGE);
    return (char *)tu_read_file(path, NULL);
}

/* ------------------------------------------------------------------------ */
/* Escaping                                                                 */

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(report_escape(out, sizeof out, "a<b>&\"c'd"), 0);
    assert_string_equal(out, "a&lt;b&gt;&amp;&quot;c&#39;d");
    assert_int_equal(report_escape(out, sizeof out, "plain text/1.png"), 0);
    assert_string_equal(out, "plain text/1.png");
    assert_int_equal(report_escape(out, sizeof out, ""), 0);
    assert_string_equal(out, "");
    /* "&amp;" needs 6 bytes with its NUL: 5 do not do, and out is "". */
    assert_int_equal(report_escape(out, 5, "&"), -1);
    assert_string_equal(out, "");
    assert_int_equal(report_escape(out, 6, "&"), 0);
    assert_string_equal(out, "&amp;");
    assert_int_equal(report_escape(out, 3, "abc"), -1);
}

/* ------------------------------------------------------------------------ */
/* The page, written by the library                                         */

/* A small checkpoint at path (the settings the page shows). */
static void write_ckpt(const char *path, uint64_t valid_n)
{
    model_config cfg = {784, 1, {16}, 3, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_net m;
    err_msg err;
    if (model_init(&m, &cfg, &err))
        fail_msg("%s", err.text);
    float *zeros = calloc(m.n_params, sizeof *zeros);
    assert_non_null(zeros);
    ckpt_train t = ckpt_train_defaults();
    t.set.seed = 77;
    t.set.batch = 32;
    t.set.sched.lr = 0.002;
    t.set.valid = valid_n;
    t.set.draws = 1;
    rng_seed(&t.rng_data, 1);
    rng_seed(&t.rng_noise, 2);
    if (ckpt_save(path, &m, zeros, zeros, &t, &err))
        fail_msg("%s", err.text);
    free(zeros);
    model_free(&m);
}

/* Epochs 1..n into csv, with the validation columns; the lowest
 * validation loss at epoch best. */
static void write_epochs(const char *csv, size_t n, size_t best)
{
    metrics mt;
    err_msg err;
    if (metrics_open(&mt, csv, 0, 1, &err))
        fail_msg("%s", err.text);
    for (size_t e = 1; e <= n; e++) {
        metrics_row r = {e, 200.0 - (double)e, 150.0, 50.0, 190.0, 140.0, 50.0, 1.5, 1e4,
                         e == best ? 100.0 : 180.0 + (double)e, 130.0, 50.0};
        if (metrics_add(&mt, &r, &err))
            fail_msg("%s", err.text);
    }
    metrics_close(&mt);
}

/* A 28 x 28 grey PNG at folder/name. */
static void write_png(const char *folder, const char *name)
{
    char path[256];
    float tile[784] = {0};
    err_msg err;
    tu_join(path, sizeof path, folder, name);
    if (png_grid_write(path, tile, 1, 28, 28, 1, 0, &err))
        fail_msg("%s", err.text);
}

static void test_page_lists_every_epoch(void **state)
{
    tu_fixture *fx = *state;
    enum { N = 25, BEST = 17 };
    char out[128], csv[160], ckpt[160], name[32];
    tu_join(out, sizeof out, fx->dir, "out");
    assert_int_equal(mkdir(out, 0755), 0);
    tu_join(csv, sizeof csv, out, "metrics.csv");
    tu_join(ckpt, sizeof ckpt, fx->dir, "run<1>&.bin");
    write_ckpt(ckpt, 500);
    write_epochs(csv, N, BEST);
    /* The grids of some epochs only: the page links what is there. */
    for (size_t e = 10; e <= N; e++) {
        snprintf(name, sizeof name, "sampled-%zu.png", e);
        write_png(out, name);
    }
    write_png(out, "reconst-25.png");

    report r;
    report_run run = {out, ckpt, csv, "data <&> \"x\"", 30, 3};
    report_init(&r, &run);
    err_msg err;
    /* The run's model and settings, and its CSV, as the run holds them. */
    ckpt_data d;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    report_set_model(&r, &d.cfg, &d.train, d.n_params);
    ckpt_data_free(&d);
    size_t csv_len;
    char *csv_text = (char *)tu_read_file(csv, &csv_len);
    if (report_write(&r, REPORT_RUNNING, csv_text, csv_len, &err))
        fail_msg("%s", err.text);
    free(csv_text);
    char *page = read_page(out);
    check_structure(page);
    /* Every epoch a row, newest first, the best one marked. */
    const char *at = page;
    for (size_t e = N; e >= 1; e--) {
        char cell[64];
        snprintf(cell, sizeof cell, "%s><td>%zu</td>", e == BEST ? " class=\"best\"" : "",
                 e);
        const char *p = strstr(at, cell);
        if (!p)
            fail_msg("epoch %zu: no row \"<tr%s\" after the previous", e, cell);
        at = p;
    }
    assert_int_equal(count(page, "<tr><td>") + count(page, "<tr class=\"best\"><td>"), N);
    tu_assert_contains(page, "100.00 (best)");
    tu_assert_contains(page, "Training: 25 of 30 epochs done.");
    tu_assert_contains(page, "lowest loss at epoch 17");
    /* The settings are the checkpoint's; outside strings escaped. */
    tu_assert_contains(page, "hidden 16, latent 3, tanh");
    /* Every setting the run uses, one row each, as its table row shows it. */
    tu_assert_contains(page, "<th>learning rate</th><td>0.002</td>");
    tu_assert_contains(page, "<th>schedule</th><td>constant</td>");
    tu_assert_contains(page, "<th>seed</th><td>77</td>");
    ckpt_train shown = ckpt_train_defaults();
    shown.set.seed = 77, shown.set.batch = 32, shown.set.sched.lr = 0.002;
    shown.set.valid = 500;
    for (int i = 0; i < SETTING_COUNT; i++) {
        const setting_row *row = &SETTINGS[i];
        char v[64], want[160];
        settings_format(&shown.set, (setting_id)i, 0, v, sizeof v);
        snprintf(want, sizeof want, "<th>%s</th><td>%s%s%s</td>", row->label, v,
                 row->unit ? " " : "", row->unit ? row->unit : "");
        if (settings_applies(&shown.set, (setting_id)i) != (strstr(page, want) != NULL))
            fail_msg("the page %s \"%s\"", strstr(page, want) ? "shows" : "lacks", want);
    }
    tu_assert_contains(page, "data &lt;&amp;&gt; &quot;x&quot;");
    tu_assert_contains(page, "run&lt;1&gt;&amp;.bin");
    assert_null(strstr(page, "data <&>"));
    assert_null(strstr(page, "run<1>"));
    /* The latest epoch big, earlier ones linked; missing files never. */
    tu_assert_contains(page, "<img src=\"sampled-25.png\" width=\"56\" height=\"56\"");
    tu_assert_contains(page, "<img src=\"reconst-25.png\"");
    tu_assert_contains(page, "<a href=\"sampled-10.png\">10</a>");
    assert_null(strstr(page, "sampled-9.png"));
    assert_null(strstr(page, "reconst-24.png"));
    /* Thumbnails of the last REPORT_THUMBS earlier epochs only. */
    assert_int_equal(count(page, "width=\"14\" height=\"14\""), REPORT_THUMBS);
    tu_assert_contains(page, "The latent map is drawn when training finishes.");
    tu_assert_contains(page, "<a href=\"metrics.csv\">metrics.csv</a>");
    check_links(out, page);
    free(page);
}

/* A metrics CSV outside OUT: the page draws its own copy in OUT, and
 * still links only files in OUT. A page over a folder fails with err. */
static void test_curve_outside_and_failure(void **state)
{
    tu_fixture *fx = *state;
    char out[128], csv[160], ckpt[160];
    tu_join(out, sizeof out, fx->dir, "out");
    assert_int_equal(mkdir(out, 0755), 0);
    tu_join(csv, sizeof csv, fx->dir, "elsewhere.csv");
    tu_join(ckpt, sizeof ckpt, fx->dir, "missing.bin");
    write_epochs(csv, 3, 2);
    report r;
    report_run run = {out, ckpt, csv, NULL, 3, 1};
    report_init(&r, &run);
    err_msg err;
    size_t csv_len;
    char *csv_text = (char *)tu_read_file(csv, &csv_len);
    if (report_write(&r, REPORT_STOPPED, csv_text, csv_len, &err))
        fail_msg("%s", err.text);
    char *page = read_page(out);
    check_structure(page);
    tu_assert_contains(page, "Stopped after epoch 3 of 3");
    tu_assert_contains(page, "<a href=\"loss.csv\">loss.csv</a>");
    if (plot_gnuplot_found())
        tu_assert_contains(page, "<img src=\"loss.png\"");
    else
        tu_assert_contains(page, "No loss curve: it is drawn by gnuplot");
    /* No model given: the page says it is not known yet. */
    tu_assert_contains(page, "model</th><td>not known yet:");
    assert_null(strstr(page, "elsewhere"));
    assert_true(check_links(out, page) >= 1);
    free(page);

    /* The page's name taken by a folder: an error naming it; the rest of
     * OUT untouched. */
    char taken[192];
    tu_join(taken, sizeof taken, out, REPORT_PAGE);
    assert_int_equal(rename(taken, csv), 0);
    assert_int_equal(mkdir(taken, 0755), 0);
    assert_int_equal(report_write(&r, REPORT_RUNNING, csv_text, csv_len, &err), -1);
    tu_assert_contains(err.text, REPORT_PAGE);
    free(csv_text);
}

/* ------------------------------------------------------------------------ */
/* End to end: vae train                                                    */

/* vae train, 2 epochs of a small model into folder/NAME-out and
 * folder/NAME.bin; returns the exit status. */
static int train_small(const char *name, const char *latent, cli_child_fn child)
{
    char out[192], ckpt[192], o[64], c[64];
    snprintf(o, sizeof o, "%s-out", name);
    snprintf(c, sizeof c, "%s.bin", name);
    in_dir(out, sizeof out, o);
    in_dir(ckpt, sizeof ckpt, c);
    return run_with(child, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                    "--epochs", "2", "--batch", "50", "--hidden", "32", "--latent",
                    latent, "--threads", "1", NULL);
}

static void test_train_page_links(void **state)
{
    (void)state;
    char out[192];
    assert_exit(train_small("links", "4", NULL), 0);
    tu_assert_contains(out_text, "/index.html");
    in_dir(out, sizeof out, "links-out");
    char *page = read_page(out);
    check_structure(page);
    tu_assert_contains(page, "Finished: 2 of 2 epochs.");
    /* What a 2-epoch run links: its grids, the curve and its CSV, the
     * latent map and its points. */
    static const char *const want[] = {
        "src=\"sampled-2.png\"", "src=\"reconst-2.png\"", "src=\"sampled-1.png\"",
        "href=\"reconst-1.png\"", "src=\"metrics.png\"", "href=\"metrics.csv\"",
        "src=\"latent.png\"", "href=\"latent.csv\""};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        tu_assert_contains(page, want[i]);
    size_t links = check_links(out, page);
    printf("  %zu links, each a file in the folder\n", links);
    assert_true(links >= 12);
    tu_assert_contains(page, "first two principal components");
    assert_string_equal(err_text, "");
    /* The active units at the end: vae eval's count for the final model. */
    char ckpt[192], want_units[96];
    in_dir(ckpt, sizeof ckpt, "links.bin");
    assert_exit(run("eval", "--ckpt", ckpt, "--data", data, "--active-units", "--json",
                    "--threads", "1", NULL), 0);
    const char *au = strstr(out_text, "\"active_units\":[");
    assert_non_null(au);
    snprintf(want_units, sizeof want_units, "Active units: %d of 4 (",
             atoi(au + strlen("\"active_units\":[")));
    tu_assert_contains(page, want_units);
    free(page);

    /* A 2-D latent: the grid of decodings, as vae manifold draws it. */
    assert_exit(train_small("twod", "2", NULL), 0);
    in_dir(out, sizeof out, "twod-out");
    page = read_page(out);
    tu_assert_contains(page, "The 2-D latent space: 20 x 20 decodings");
    check_links(out, page);
    free(page);
    char png[256];
    tu_join(png, sizeof png, out, REPORT_LATENT_PNG);
    assert_png_size(png, 20 * 28 + 21 * 2, 20 * 28 + 21 * 2);
}

static void no_gnuplot(void)
{
    setenv("PATH", "/nonexistent", 1);
}

/* Without gnuplot: no curve and no latent map, each said on the page (and
 * warned about), and no link to either. */
static void test_train_page_without_gnuplot(void **state)
{
    (void)state;
    char out[192];
    assert_exit(train_small("nognuplot", "4", no_gnuplot), 0);
    in_dir(out, sizeof out, "nognuplot-out");
    char *page = read_page(out);
    check_structure(page);
    tu_assert_contains(page, "No loss curve: it is drawn by gnuplot, which is not on PATH");
    tu_assert_contains(page, "No latent map: the latent map is drawn by gnuplot");
    assert_null(strstr(page, "metrics.png"));
    assert_null(strstr(page, "latent.png"));
    check_links(out, page);
    free(page);
    tu_assert_contains(err_text, "warning: the latent map is drawn by gnuplot");
}

/* The page's name a link into a folder that is not there: each epoch's
 * page fails, the run warns once and goes on to the end, and its
 * checkpoint is whole. (A folder in its place is refused at the start.) */
static void test_train_page_failure_warns(void **state)
{
    (void)state;
    char out[192], taken[256], ckpt[192];
    in_dir(out, sizeof out, "fail-out");
    assert_int_equal(mkdir(out, 0755), 0);
    tu_join(taken, sizeof taken, out, REPORT_PAGE);
    assert_int_equal(mkdir(taken, 0755), 0);
    assert_exit(train_small("fail", "4", NULL), 2);
    tu_assert_contains(err_text, "is a folder");
    assert_int_equal(rmdir(taken), 0);
    assert_int_equal(symlink("no-such-folder/page.html", taken), 0);
    assert_exit(train_small("fail", "4", NULL), 0);
    tu_assert_contains(err_text, "vae train: warning:");
    tu_assert_contains(err_text, "no-such-folder does not exist");
    assert_int_equal(count(err_text, "warning:"), 1);
    tu_assert_contains(out_text, "epoch 2/2");
    in_dir(ckpt, sizeof ckpt, "fail.bin");
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.train.epoch, 2);
    ckpt_data_free(&d);
}

static int group_setup(void **state)
{
    (void)state;
    return cli_setup("vae-test-report");
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

static int setup(void **state)
{
    return tu_fixture_setup(state, "vae-test-report-page");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test_setup_teardown(test_page_lists_every_epoch, setup,
                                        tu_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_curve_outside_and_failure, setup,
                                        tu_fixture_teardown),
        cmocka_unit_test(test_train_page_links),
        cmocka_unit_test(test_train_page_without_gnuplot),
        cmocka_unit_test(test_train_page_failure_warns),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
