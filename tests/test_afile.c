/* test_afile.c - atomic replacement: content, temp files, errors, devices;
 * inputs opened as regular files only. */
#define _GNU_SOURCE /* mkdtemp, setresuid */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "afile.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Fixture: a fresh folder under /tmp per test, removed afterwards. */

typedef tu_fixture fixture;

static int setup(void **state)
{
    return tu_fixture_setup(state, "test_afile");
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

/* Reads a whole small file into buf (NUL-terminated); returns its length. */
static size_t slurp(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, size - 1, fp);
    assert_int_equal(ferror(fp), 0);
    fclose(fp);
    buf[n] = '\0';
    return n;
}

/* Number of entries in dir other than . and ..; the name of the last one
 * seen goes to last (if not NULL). */
static size_t count_entries(const char *dir, char *last, size_t last_size)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (last)
            snprintf(last, last_size, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* Asserts that dir holds exactly one entry, named name. */
static void assert_only_entry(const char *dir, const char *name)
{
    char last[256] = "";
    assert_int_equal(count_entries(dir, last, sizeof last), 1);
    assert_string_equal(last, name);
}

static void write_file(const char *path, const char *text)
{
    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), 0);
    assert_true(fputs(text, f.fp) >= 0);
    if (afile_commit(&f, &err) != 0)
        fail_msg("commit %s: %s", path, err.text);
}

/* ------------------------------------------------------------------------ */
/* Tests */

static void test_commit_creates_file(void **state)
{
    fixture *fx = *state;
    char path[256], name[256] = "";
    join(path, sizeof path, fx->dir, "out.txt");

    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), 0);
    assert_non_null(f.fp);
    assert_string_equal(f.path, path);
    assert_non_null(f.tmp_path);
    /* While open, the new file has no name (O_TMPFILE): the folder is
     * empty. Where O_TMPFILE is missing, a hidden temp file stands beside
     * the target. Either way the target does not exist yet. */
    size_t n = count_entries(fx->dir, name, sizeof name);
    printf("  while writing, the folder holds %zu entries%s%s\n", n,
           n ? ": " : "", name);
    if (n == 1) {
        assert_memory_equal(name, ".out.txt.tmp.", strlen(".out.txt.tmp."));
        assert_int_equal(strlen(name), strlen(".out.txt.tmp.XXXXXX"));
    } else {
        assert_int_equal(n, 0);
    }
    assert_int_equal(access(path, F_OK), -1);

    fputs("hello\n", f.fp);
    if (afile_commit(&f, &err) != 0)
        fail_msg("commit: %s", err.text);
    assert_null(f.fp);
    assert_null(f.path);
    assert_null(f.tmp_path);

    char buf[64];
    assert_int_equal(slurp(path, buf, sizeof buf), 6);
    assert_string_equal(buf, "hello\n");
    assert_only_entry(fx->dir, "out.txt");
}

static void test_relative_path(void **state)
{
    fixture *fx = *state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx->dir), 0);
    write_file("rel.txt", "relative");
    assert_int_equal(chdir(cwd), 0);

    char path[256], buf[64];
    join(path, sizeof path, fx->dir, "rel.txt");
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "relative");
    assert_only_entry(fx->dir, "rel.txt");
}

static void test_abort_keeps_old(void **state)
{
    fixture *fx = *state;
    char path[256], buf[64];
    join(path, sizeof path, fx->dir, "out.txt");
    write_file(path, "old");

    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), 0);
    fputs("new content", f.fp);
    fflush(f.fp);
    afile_abort(&f);
    assert_null(f.fp);
    assert_null(f.tmp_path);

    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "old");
    assert_only_entry(fx->dir, "out.txt");
}

/* A writer killed before commit (kill -9, a crash) leaves the old file
 * and nothing else: the new file has no name until it is whole. */
static void test_killed_writer_leaves_nothing(void **state)
{
    fixture *fx = *state;
    char path[256], buf[64];
    join(path, sizeof path, fx->dir, "out.txt");
    write_file(path, "old");
    /* Without O_TMPFILE here, afile falls back to a named temp file, which
     * a kill leaves behind: then there is nothing to check. */
    int probe = open(fx->dir, O_TMPFILE | O_WRONLY, 0600);
    if (probe < 0) {
        printf("  no O_TMPFILE in %s: %s\n", fx->dir, strerror(errno));
        skip();
    }
    close(probe);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        afile f;
        err_msg err;
        if (afile_open(&f, path, &err))
            _exit(2);
        for (int i = 0; i < 1 << 16; i++)
            fputs("new content ", f.fp);
        fflush(f.fp);
        _exit(0); /* no commit, no abort: as if killed */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "old");
    assert_only_entry(fx->dir, "out.txt");
}

static void test_second_commit_replaces(void **state)
{
    fixture *fx = *state;
    char path[256], buf[64];
    join(path, sizeof path, fx->dir, "out.txt");

    write_file(path, "first version, long");
    struct stat st1, st2;
    assert_int_equal(stat(path, &st1), 0);
    write_file(path, "second");
    assert_int_equal(stat(path, &st2), 0);

    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "second"); /* replaced, not overwritten in place */
    assert_true(st1.st_ino != st2.st_ino);
    assert_only_entry(fx->dir, "out.txt");
}

static void test_missing_folder(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "nope/out.txt");

    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), -1);
    assert_null(f.fp);
    assert_null(f.path);
    assert_null(f.tmp_path);
    assert_non_null(strstr(err.text, path));
    assert_non_null(strstr(err.text, "does not exist"));
    assert_int_equal(count_entries(fx->dir, NULL, 0), 0);
}

static void test_folder_is_a_file(void **state)
{
    fixture *fx = *state;
    char file[256], path[256];
    join(file, sizeof file, fx->dir, "file");
    join(path, sizeof path, fx->dir, "file/out.txt");
    write_file(file, "x");

    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), -1);
    assert_non_null(strstr(err.text, path));
    assert_non_null(strstr(err.text, "is not a folder"));
    assert_only_entry(fx->dir, "file");
}

static void test_target_is_directory(void **state)
{
    fixture *fx = *state;
    char path[256], slashed[256];
    join(path, sizeof path, fx->dir, "sub");
    join(slashed, sizeof slashed, fx->dir, "missing/");
    assert_int_equal(mkdir(path, 0755), 0);

    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), -1);
    assert_non_null(strstr(err.text, path));
    assert_non_null(strstr(err.text, "is a directory"));
    assert_null(f.fp);

    /* No file name at all. */
    memset(&err, 0, sizeof err);
    assert_int_equal(afile_open(&f, slashed, &err), -1);
    assert_non_null(strstr(err.text, slashed));

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_only_entry(fx->dir, "sub");
}

/* Opens path and writes err.text to fd; exit status 0 if open failed. Run in
 * a child that may have dropped root. */
static void open_in_child(const char *path, int fd)
{
    afile f;
    err_msg err = {{0}};
    int rc = afile_open(&f, path, &err);
    if (rc == 0)
        afile_abort(&f);
    ssize_t w = write(fd, err.text, strlen(err.text));
    (void)w;
    _exit(rc == -1 ? 0 : 1);
}

static void test_read_only_folder(void **state)
{
    fixture *fx = *state;
    char ro[256], path[256];
    join(ro, sizeof ro, fx->dir, "ro");
    join(path, sizeof path, ro, "out.txt");
    assert_int_equal(mkdir(ro, 0755), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    /* Root ignores permissions: drop to nobody in a child, which needs to
     * reach ro through the 0700 fixture folder. */
    int as_root = geteuid() == 0;
    if (as_root)
        assert_int_equal(chmod(fx->dir, 0755), 0);

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (as_root && (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
                        setresuid(65534, 65534, 65534) != 0))
            _exit(2);
        open_in_child(path, pfd[1]);
    }
    close(pfd[1]);
    char text[ERR_MSG_LEN + 1] = "";
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], text + got, sizeof text - 1 - got)) > 0)
        got += (size_t)r;
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2)
        skip(); /* cannot drop root here */
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(text, path));
    assert_non_null(strstr(text, "Permission denied"));
    assert_int_equal(count_entries(ro, NULL, 0), 0);
}

/* A commit that fails while writing the temp file (here: over the file size
 * limit, EFBIG) removes the temp file and keeps the old target. */
static void test_failed_commit_keeps_old(void **state)
{
    fixture *fx = *state;
    char path[256], buf[64];
    join(path, sizeof path, fx->dir, "out.txt");
    write_file(path, "old");

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The limit is per process: set it in a child only. */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {.rlim_cur = 1000, .rlim_max = 1000};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(2);
        afile f;
        err_msg err = {{0}};
        if (afile_open(&f, path, &err) != 0)
            _exit(3);
        for (int i = 0; i < 1000; i++)
            fputs("new new new new new new new\n", f.fp);
        int rc = afile_commit(&f, &err);
        int named = strstr(err.text, path) != NULL &&
                    strstr(err.text, "File too large") != NULL;
        _exit(rc == -1 && named ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "old");
    assert_only_entry(fx->dir, "out.txt");
}

/* The target turns into a directory before commit: rename fails, the temp
 * file goes, the directory stays. */
static void test_failed_rename_removes_temp(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "out");

    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), 0);
    fputs("data", f.fp);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(afile_commit(&f, &err), -1);
    assert_non_null(strstr(err.text, path));
    assert_null(f.fp);
    assert_null(f.tmp_path);
    afile_abort(&f); /* harmless after commit */

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_only_entry(fx->dir, "out");
}

/* Two files that go together: a finished file can be read under its temp
 * name while the target is old; a failed write of the second (through a
 * link to /dev/full) leaves the first target old too, and no temp file;
 * when both are written, both are replaced. */
static void test_commit_pair(void **state)
{
    fixture *fx = *state;
    char csv[256], png[256], buf[64];
    join(csv, sizeof csv, fx->dir, "m.csv");
    join(png, sizeof png, fx->dir, "m.png");
    write_file(csv, "KEEP");
    assert_int_equal(symlink("/dev/full", png), 0);

    afile a, b;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&a, csv, &err), 0);
    fputs("new points", a.fp);
    if (afile_finish(&a, &err) != 0)
        fail_msg("finish: %s", err.text);
    assert_null(a.fp);
    assert_int_equal(slurp(a.tmp_path, buf, sizeof buf), 10);
    assert_string_equal(buf, "new points");
    slurp(csv, buf, sizeof buf);
    assert_string_equal(buf, "KEEP");
    assert_int_equal(afile_open(&b, png, &err), 0);
    fputs("picture", b.fp);
    assert_int_equal(afile_commit_pair(&b, &a, &err), -1);
    tu_assert_contains(err.text, "No space left on device");
    assert_null(a.path);
    assert_null(b.path);
    slurp(csv, buf, sizeof buf);
    assert_string_equal(buf, "KEEP");
    assert_int_equal(count_entries(fx->dir, NULL, 0), 2); /* m.csv, the link */

    unlink(png);
    assert_int_equal(afile_open(&a, csv, &err), 0);
    assert_int_equal(afile_open(&b, png, &err), 0);
    fputs("new points", a.fp);
    fputs("picture", b.fp);
    if (afile_commit_pair(&b, &a, &err) != 0)
        fail_msg("commit_pair: %s", err.text);
    slurp(csv, buf, sizeof buf);
    assert_string_equal(buf, "new points");
    slurp(png, buf, sizeof buf);
    assert_string_equal(buf, "picture");
    assert_int_equal(count_entries(fx->dir, NULL, 0), 2);
}

static void assert_dev_full_still_device(void)
{
    struct stat st;
    assert_int_equal(stat("/dev/full", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

static void test_dev_full(void **state)
{
    (void)state;
    static char big[64 * 1024];
    memset(big, 'x', sizeof big);

    /* Large: the write fails inside fwrite, long before commit. */
    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, "/dev/full", &err), 0);
    assert_null(f.tmp_path); /* in place: never rename over a device */
    fwrite(big, 1, sizeof big, f.fp);
    errno = 0; /* commit must not rely on errno left by the failed write */
    assert_int_equal(afile_commit(&f, &err), -1);
    assert_non_null(strstr(err.text, "/dev/full"));
    assert_non_null(strstr(err.text, "No space left on device"));
    assert_dev_full_still_device();

    /* Small: the write fails when commit flushes. */
    memset(&err, 0, sizeof err);
    assert_int_equal(afile_open(&f, "/dev/full", &err), 0);
    fputs("x", f.fp);
    assert_int_equal(afile_commit(&f, &err), -1);
    assert_non_null(strstr(err.text, "No space left on device"));
    assert_dev_full_still_device();
}

static void test_dev_null(void **state)
{
    (void)state;
    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, "/dev/null", &err), 0);
    assert_null(f.tmp_path);
    fputs("discarded", f.fp);
    if (afile_commit(&f, &err) != 0) /* fsync's EINVAL is no error */
        fail_msg("commit /dev/null: %s", err.text);
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

/* Through a symbolic link (relative, and one to a file not there yet),
 * the file it points to is written; the link stays a link. */
static void test_through_symlink(void **state)
{
    fixture *fx = *state;
    char real[256], sub[256], link[256], buf[64];
    join(sub, sizeof sub, fx->dir, "sub");
    assert_int_equal(mkdir(sub, 0755), 0);
    join(real, sizeof real, sub, "real.bin");
    join(link, sizeof link, fx->dir, "link.bin");
    assert_int_equal(symlink("sub/real.bin", link), 0);
    write_file(link, "first"); /* dangling: creates sub/real.bin */
    write_file(link, "second");
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    slurp(real, buf, sizeof buf);
    assert_string_equal(buf, "second");
    assert_only_entry(sub, "real.bin");
    assert_int_equal(count_entries(fx->dir, NULL, 0), 2); /* sub and the link */
}

/* A link that leads round in a circle: an error naming it, nothing made. */
static void test_symlink_loop(void **state)
{
    fixture *fx = *state;
    char a[256], b[256];
    join(a, sizeof a, fx->dir, "a");
    join(b, sizeof b, fx->dir, "b");
    assert_int_equal(symlink("b", a), 0);
    assert_int_equal(symlink("a", b), 0);
    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, a, &err), -1);
    tu_assert_contains(err.text, "cannot follow the link");
    tu_assert_contains(err.text, "Too many levels of symbolic links");
    assert_int_equal(count_entries(fx->dir, NULL, 0), 2);
}

/* A temp file a killed writer left (its process gone) is removed by the
 * next write of the same file; a live writer's is not. */
static void test_sweeps_dead_writers_temp(void **state)
{
    fixture *fx = *state;
    char path[256], dead[256], live[256], other[256], name[128];
    join(path, sizeof path, fx->dir, "x.png");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0); /* pid now names no process */
    snprintf(name, sizeof name, ".x.png.tmp.%ld.abc123", (long)pid);
    join(dead, sizeof dead, fx->dir, name);
    snprintf(name, sizeof name, ".x.png.tmp.%ld.abc123", (long)getppid());
    join(live, sizeof live, fx->dir, name);
    snprintf(name, sizeof name, ".y.png.tmp.%ld.abc123", (long)pid);
    join(other, sizeof other, fx->dir, name);
    tu_write_file(dead, "half", 4);
    tu_write_file(live, "half", 4);
    tu_write_file(other, "half", 4);
    write_file(path, "whole");
    assert_false(tu_exists(dead));
    assert_true(tu_exists(live));  /* its writer may still finish */
    assert_true(tu_exists(other)); /* another file's */
}

/* A name of NAME_MAX bytes, which the file system takes: written, though
 * ".NAME.tmp.PID.XXXXXX" would not fit (its temp name keeps only the
 * name's first bytes), and nothing else is left in the folder. */
static void test_longest_name(void **state)
{
    fixture *fx = *state;
    char base[NAME_MAX + 1], path[NAME_MAX + 256];
    memset(base, 's', NAME_MAX - 4);
    memcpy(base + NAME_MAX - 4, ".png", 5);
    join(path, sizeof path, fx->dir, base);
    write_file(path, "whole");
    tu_assert_file_equals(path, "whole", 5);
    char last[NAME_MAX + 1] = "";
    assert_int_equal(count_entries(fx->dir, last, sizeof last), 1);
    assert_string_equal(last, base);
}

/* A message longer than an err_msg keeps its head and its end: the cause
 * strerror gives, the last words, the file's own name. */
static void test_long_message_keeps_its_end(void **state)
{
    fixture *fx = *state;
    char path[2048];
    size_t n = (size_t)snprintf(path, sizeof path, "%s/", fx->dir);
    while (n + 12 < 1200)
        n += (size_t)snprintf(path + n, sizeof path - n, "deep-folder/");
    snprintf(path + n, sizeof path - n, "last.png");
    afile f;
    err_msg err;
    assert_int_equal(afile_open(&f, path, &err), -1);
    assert_true(strlen(err.text) < sizeof err.text);
    assert_non_null(strstr(err.text, " ... "));
    tu_assert_contains(err.text, "cannot write ");
    size_t len = strlen(err.text), want = strlen("does not exist");
    assert_true(len > want && !strcmp(err.text + len - want, "does not exist"));
    err_sys(&err, ENOSPC, "cannot write %s", path);
    tu_assert_contains(err.text, "deep-folder/last.png: No space left on device");
}

/* A FIFO nobody reads: an error at once, not a wait for a reader. */
static void test_fifo_does_not_block(void **state)
{
    fixture *fx = *state;
    char path[256];
    join(path, sizeof path, fx->dir, "pipe");
    assert_int_equal(mkfifo(path, 0644), 0);
    afile f;
    err_msg err = {{0}};
    assert_int_equal(afile_open(&f, path, &err), -1);
    tu_assert_contains(err.text, "no process reads it");
}

/* ------------------------------------------------------------------------ */
/* Inputs */

/* afile_open_input and afile_fopen_input on path both fail at once with a
 * message naming path and saying want. */
static void expect_input_refused(const char *path, const char *want)
{
    err_msg err = {{0}};
    struct stat st;
    tu_deadline("afile_open_input of a file that is not regular", 10);
    assert_int_equal(afile_open_input(path, &st, &err), -1);
    tu_assert_contains(err.text, path);
    tu_assert_contains(err.text, want);
    memset(&err, 0, sizeof err);
    assert_null(afile_fopen_input(path, NULL, &err));
    tu_deadline(NULL, 0);
    tu_assert_contains(err.text, path);
    tu_assert_contains(err.text, want);
}

/* A regular file: a blocking, close-on-exec descriptor and its size. */
static void test_input_regular(void **state)
{
    fixture *fx = *state;
    char path[256], buf[16];
    join(path, sizeof path, fx->dir, "in.txt");
    write_file(path, "twelve bytes");
    struct stat st;
    err_msg err = {{0}};
    int fd = afile_open_input(path, &st, &err);
    if (fd < 0)
        fail_msg("%s", err.text);
    assert_int_equal(st.st_size, 12);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(read(fd, buf, sizeof buf), 12);
    close(fd);
    FILE *fp = afile_fopen_input(path, NULL, &err);
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof buf, fp), 12);
    fclose(fp);
}

/* A FIFO nobody writes, a socket, a device, a folder: refused by what they
 * are, without waiting; a missing file by its errno. */
static void test_input_not_regular(void **state)
{
    fixture *fx = *state;
    char fifo[256], sock[256], missing[256];
    join(fifo, sizeof fifo, fx->dir, "pipe");
    join(sock, sizeof sock, fx->dir, "sock");
    join(missing, sizeof missing, fx->dir, "missing");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    expect_input_refused(fifo, "is a FIFO (named pipe), not a regular file");

    int fd = tu_bind_socket(sock);
    expect_input_refused(sock, "is a socket, not a regular file");
    close(fd);

    expect_input_refused("/dev/null", "is a character device, not a regular file");
    expect_input_refused("/dev/zero", "is a character device, not a regular file");
    expect_input_refused(fx->dir, "is a directory, not a regular file");
    expect_input_refused(missing, strerror(ENOENT));
}

static void test_mode(void **state)
{
    fixture *fx = *state;
    char a[256], b[256];
    join(a, sizeof a, fx->dir, "a");
    join(b, sizeof b, fx->dir, "b");
    struct stat st;

    mode_t old = umask(022);
    write_file(a, "a");
    umask(077);
    write_file(b, "b");
    umask(old);

    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(stat(b, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_creates_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_commit_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_is_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_is_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_rename_removes_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_pair, setup, teardown),
        cmocka_unit_test(test_dev_full),
        cmocka_unit_test(test_dev_null),
        cmocka_unit_test_setup_teardown(test_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_through_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweeps_dead_writers_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_keeps_its_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_longest_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_not_regular, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
