/* test_plot.c - running gnuplot: quoting, a chart drawn to its size, a
 * failing script, and gnuplot missing from PATH (the message names it and
 * says how to install it; no PNG or temp file is left either way); a full
 * disk, a gnuplot that exits 0 with a broken picture, and a process killed
 * while gnuplot draws: the old picture stays, and no temp file appears. */
#define _GNU_SOURCE /* unshare, for the tmpfs */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

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

static const char chart[] = "plot x**2 title 'x^2'\n";
static const char other_chart[] = "plot sin(x) title 'sin'\n";

/* A full disk: the write fails with ENOSPC, the old chart stays whole. */
static void test_full_disk(void **state)
{
    (void)state;
    char mnt[128], png[160];
    err_msg err;
    tu_join(mnt, sizeof mnt, dir, "small");
    if (tu_mount_tmpfs(mnt, 512) != 0)
        skip();
    tu_join(png, sizeof png, mnt, "metrics.png");
    if (plot_png(png, 300, 200, chart, "test chart", &err))
        fail_msg("%s", err.text);
    size_t old_len;
    unsigned char *old = tu_read_file(png, &old_len);
    tu_fill_disk(mnt);
    assert_int_equal(plot_png(png, 300, 200, other_chart, "test chart", &err), -1);
    tu_assert_contains(err.text, "No space left on device");
    tu_assert_contains(err.text, "metrics.png");
    tu_assert_file_equals(png, old, old_len);
    assert_int_equal(tu_count_entries(mnt, NULL, 0), 2); /* the chart and FILL */
    free(old);
    tu_umount_tmpfs(mnt);
}

/* A gnuplot that exits 0 having written a cut-off PNG (as a full disk
 * did to it) must not replace the chart. */
static void test_broken_picture(void **state)
{
    (void)state;
    char png[128], bin[128], fake[160], script[512];
    err_msg err;
    tu_join(png, sizeof png, dir, "loss.png");
    if (plot_png(png, 300, 200, chart, "test chart", &err))
        fail_msg("%s", err.text);
    size_t old_len;
    unsigned char *old = tu_read_file(png, &old_len);
    tu_join(bin, sizeof bin, dir, "fakebin");
    mkdir(bin, 0755);
    tu_join(fake, sizeof fake, bin, "gnuplot");
    /* The first 1000 bytes of a real chart, then a clean exit. */
    snprintf(script, sizeof script, "#!/bin/sh\ncat >/dev/null\nhead -c 1000 '%s'\nexit 0\n",
             png);
    tu_write_file(fake, script, strlen(script));
    chmod(fake, 0755);
    char *path = strdup(getenv("PATH"));
    char fake_path[4096];
    snprintf(fake_path, sizeof fake_path, "%s:%s", bin, path);
    setenv("PATH", fake_path, 1);
    int rc = plot_png(png, 300, 200, other_chart, "test chart", &err);
    setenv("PATH", path, 1);
    free(path);
    assert_int_equal(rc, -1);
    tu_assert_contains(err.text, "gnuplot gave no whole 300x200 PNG for");
    tu_assert_file_equals(png, old, old_len);
    free(old);
    tu_remove_tree(bin);
    unlink(png);
}

/* A process killed while gnuplot draws leaves nothing in the folder:
 * gnuplot writes to a pipe, not to a temp file there. */
static void test_killed(void **state)
{
    (void)state;
    char sub[128], png[160];
    tu_join(sub, sizeof sub, dir, "killed");
    mkdir(sub, 0755);
    tu_join(png, sizeof png, sub, "metrics.png");
    srand((unsigned)time(NULL));
    for (int i = 0; i < 10; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            err_msg err;
            _exit(plot_png(png, 800, 500, chart, "test chart", &err) ? 1 : 0);
        }
        struct timespec ts = {0, (long)(rand() % 40) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ts.tv_sec = 1; /* time for an orphaned gnuplot to finish (it cannot write) */
        ts.tv_nsec = 0;
        nanosleep(&ts, NULL);
        char hidden[256];
        size_t n = tu_count_entries(sub, hidden, sizeof hidden);
        int rewritten = hidden[0] != '\0';
        if (rewritten) {
            /* Killed in the instant between naming the whole temp file and
             * renaming it: the next write of the chart removes it. */
            err_msg err;
            if (plot_png(png, 300, 200, chart, "test chart", &err))
                fail_msg("%s", err.text);
            n = tu_count_entries(sub, hidden, sizeof hidden);
            if (hidden[0])
                fail_msg("kill %d: the next write left %s in %s", i, hidden, sub);
            printf("  kill %d landed between naming and renaming; the next write "
                   "removed the temp file\n", i);
        }
        if (n == 1 && tu_exists(png)) { /* a whole chart, this run's or the next */
            free(tu_read_png(png, rewritten ? 300 : 800, rewritten ? 200 : 500));
            unlink(png);
            continue;
        }
        if (n != 0)
            fail_msg("kill %d left %zu entries in %s", i, n, sub);
    }
    rmdir(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_broken_picture),
        cmocka_unit_test(test_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
