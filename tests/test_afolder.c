/* test_afolder.c - a folder's contents replaced whole (src/io/afolder.c).
 *
 * Covered: a new folder (its missing parents made, and removed again by an
 * abort), an existing one swapped (kept files linked, replaced ones and
 * afile temp files dropped, mode kept), the staging folder's name and lock,
 * leftovers of a killed process removed (a file only there put back) while
 * a live process's are left alone, a second writer refused, sub-folders
 * refused, symbolic links resolved, and the root refused. The kill -9 test
 * of the whole import is in test_import.c. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afolder.h"
#include "testutil.h"

static const char *const REPLACED[] = {"data.bin", "labels.txt", NULL};
#define TAG "t-swap"

/* fx->dir/name into buf. */
static const char *at(char *buf, size_t size, void **state, const char *name)
{
    tu_fixture *fx = *state;
    tu_join(buf, size, fx->dir, name);
    return buf;
}

static void write_text(const char *folder, const char *name, const char *text)
{
    char path[512];
    tu_join(path, sizeof path, folder, name);
    tu_write_file(path, text, strlen(text));
}

static void assert_text(const char *folder, const char *name, const char *text)
{
    char path[512];
    tu_join(path, sizeof path, folder, name);
    tu_assert_file_equals(path, text, strlen(text));
}

/* The entries of the fixture folder starting with '.': none expected. */
static void assert_no_hidden(void **state)
{
    tu_fixture *fx = *state;
    char hidden[256];
    tu_count_entries(fx->dir, hidden, sizeof hidden);
    if (hidden[0])
        fail_msg("%s/%s is left", fx->dir, hidden);
}

static void test_new_folder(void **state)
{
    char out[512], top[512];
    err_msg err;
    afolder f;
    at(out, sizeof out, state, "a/b/out");
    at(top, sizeof top, state, "a");
    /* Aborted: nothing of it stays, its parents neither. */
    assert_int_equal(afolder_open(&f, out, TAG, REPLACED, &err), 0);
    tu_assert_contains(f.stage, "/a/b/.out." TAG "-");
    write_text(f.stage, "data.bin", "new");
    afolder_abort(&f);
    assert_false(tu_exists(top));
    /* Committed: the folder appears whole, with mkdir's mode. */
    assert_int_equal(afolder_open(&f, out, TAG, REPLACED, &err), 0);
    write_text(f.stage, "data.bin", "new");
    assert_false(tu_exists(out));
    assert_int_equal(afolder_commit(&f, &err), 0);
    assert_text(out, "data.bin", "new");
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    mode_t mask = umask(022);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0777 & ~mask);
    assert_int_equal(tu_count_entries(out, NULL, 0), 1);
    at(top, sizeof top, state, "a/b");
    tu_count_entries(top, top, sizeof top);
    assert_string_equal(top, ""); /* no hidden folder beside it */
}

static void test_swap(void **state)
{
    char out[512];
    err_msg err;
    afolder f;
    at(out, sizeof out, state, "out");
    assert_int_equal(mkdir(out, 0750), 0);
    write_text(out, "data.bin", "old");
    write_text(out, "labels.txt", "old");
    write_text(out, ".data.bin.tmp.AbCdEf", "a temp file an older afile left");
    /* afile's own name for it now (".NAME.tmp.PID.XXXXXX"), of a writer
     * killed: was kept as the user's file, in every new set after it. */
    write_text(out, ".labels.txt.tmp.4242.AbCdEf", "a temp file afile left");
    write_text(out, "README.md", "mine");
    char path[512];
    tu_join(path, sizeof path, out, "link");
    assert_int_equal(symlink("README.md", path), 0);
    struct stat before, after;
    tu_join(path, sizeof path, out, "README.md");
    assert_int_equal(stat(path, &before), 0);

    assert_int_equal(afolder_open(&f, out, TAG, REPLACED, &err), 0);
    write_text(f.stage, "data.bin", "new");
    /* Until the commit the folder is as it was. */
    assert_text(out, "data.bin", "old");
    assert_int_equal(afolder_commit(&f, &err), 0);
    assert_text(out, "data.bin", "new");
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino); /* the same file, linked */
    tu_join(path, sizeof path, out, "link");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* data.bin, README.md, link: labels.txt and the temp files dropped. */
    assert_int_equal(tu_count_entries(out, NULL, 0), 3);
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    assert_no_hidden(state);

    /* A read-only folder: built writable, given its mode at the end. */
    assert_int_equal(chmod(out, 0555), 0);
    assert_int_equal(afolder_open(&f, out, TAG, REPLACED, &err), 0);
    write_text(f.stage, "data.bin", "newer");
    assert_int_equal(afolder_commit(&f, &err), 0);
    assert_text(out, "data.bin", "newer");
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0555);
    assert_int_equal(chmod(out, 0755), 0);
}

static void test_leftovers(void **state)
{
    char out[512], left[512], live[512], path[512];
    err_msg err;
    afolder f;
    at(out, sizeof out, state, "out");
    assert_int_equal(mkdir(out, 0755), 0);
    write_text(out, "README.md", "mine");
    /* A killed process's: removed, its user file put back. */
    at(left, sizeof left, state, ".out." TAG "-Zz9Zz9");
    assert_int_equal(mkdir(left, 0755), 0);
    write_text(left, "data.bin", "half");
    write_text(left, "README.md", "an older link");
    write_text(left, "only-here.txt", "keep");
    /* Not of this folder's name pattern: left alone. */
    at(path, sizeof path, state, ".out." TAG "-toolong1");
    assert_int_equal(mkdir(path, 0755), 0);
    /* A live process's (locked): left alone. */
    at(live, sizeof live, state, ".out." TAG "-LiVe00");
    assert_int_equal(mkdir(live, 0755), 0);
    int fd = open(live, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);

    assert_int_equal(afolder_open(&f, out, TAG, REPLACED, &err), 0);
    assert_false(tu_exists(left));
    assert_true(tu_exists(live));
    assert_true(tu_exists(path));
    assert_text(out, "only-here.txt", "keep");
    assert_text(out, "README.md", "mine");
    /* A second writer of the same folder is refused while f holds it. */
    afolder g;
    assert_int_equal(afolder_open(&g, out, TAG, REPLACED, &err), -1);
    tu_assert_contains(err.text, "/out is locked by another process replacing it");
    afolder_abort(&f);
    close(fd);
    rmdir(live);
    rmdir(path);
    assert_no_hidden(state);
}

static void test_refused(void **state)
{
    char out[512], path[512], real[512];
    err_msg err;
    afolder f;
    at(out, sizeof out, state, "out");
    assert_int_equal(mkdir(out, 0755), 0);
    tu_join(path, sizeof path, out, "sub");
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(afolder_open(&f, out, TAG, REPLACED, &err), -1);
    tu_assert_contains(err.text, "/out/sub is a folder");
    assert_no_hidden(state);
    rmdir(path);

    /* A symbolic link: the folder it names is replaced, the link stays. */
    at(path, sizeof path, state, "via");
    assert_int_equal(symlink(out, path), 0);
    assert_int_equal(afolder_open(&f, path, TAG, REPLACED, &err), 0);
    assert_non_null(realpath(out, real));
    assert_string_equal(f.target, real);
    write_text(f.stage, "data.bin", "new");
    assert_int_equal(afolder_commit(&f, &err), 0);
    assert_text(out, "data.bin", "new");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    unlink(path);

    /* A dangling link, a file, the root. */
    at(real, sizeof real, state, "gone");
    assert_int_equal(symlink(real, path), 0);
    assert_int_equal(afolder_open(&f, path, TAG, REPLACED, &err), -1);
    tu_assert_contains(err.text, "a symbolic link to a folder that does not exist");
    unlink(path);
    write_text(out, "file", "x");
    tu_join(path, sizeof path, out, "file");
    assert_int_equal(afolder_open(&f, path, TAG, REPLACED, &err), -1);
    tu_assert_contains(err.text, "exists and is not a folder");
    assert_int_equal(afolder_open(&f, "/", TAG, REPLACED, &err), -1);
    tu_assert_contains(err.text, "the root folder cannot be replaced");
    assert_no_hidden(state);
}

static int setup(void **state)
{
    return tu_fixture_setup(state, "test_afolder");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_folder, setup, tu_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_swap, setup, tu_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_leftovers, setup, tu_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, tu_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
