/* testutil.h - small helpers shared by the cmocka tests: temp folders,
 * whole-file reads and writes, folder listings. Include after <cmocka.h>;
 * every helper fails the running test loudly instead of returning an error. */
#ifndef VAE_TESTUTIL_H
#define VAE_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#ifdef _GNU_SOURCE
#include <sched.h>
#include <sys/mount.h>
#endif
#include <fcntl.h>
#include <unistd.h>

#include "png_grid.h"

/* Creates a fresh folder from template (".../name.XXXXXX", rewritten in
 * place); returns 0, or -1 (for cmocka setup functions, which may not assert). */
static inline int tu_mkdtemp(char *tmpl)
{
    return mkdtemp(tmpl) ? 0 : -1;
}

/* Removes path and everything under it; missing paths are fine. */
static inline void tu_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[4096];
                int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                if (n > 0 && (size_t)n < sizeof sub)
                    tu_remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* A fresh folder per test: cmocka setup and teardown functions pass it in
 * *state. tu_fixture_setup(state, "name") makes /tmp/name.XXXXXX. */
typedef struct tu_fixture {
    char dir[64];
} tu_fixture;

static inline int tu_fixture_setup(void **state, const char *name)
{
    tu_fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/%s.XXXXXX", name);
    if (tu_mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

/* Removes the fixture's folder and everything in it. */
static inline int tu_fixture_teardown(void **state)
{
    tu_fixture *fx = *state;
    tu_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* out = dir "/" name; fails the test if it does not fit. */
static inline void tu_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        fail_msg("path too long: %s/%s", dir, name);
}

/* Reads the whole file; returns a malloc'd buffer with a NUL after the
 * *len bytes (len may be NULL). Fails the test if the file cannot be read. */
static inline unsigned char *tu_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap + 1);
    assert_non_null(b);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
            assert_non_null(b);
        }
        size_t got = fread(b + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp))
        fail_msg("read error on %s", path);
    fclose(fp);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* Writes len bytes to path (created or truncated). */
static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        fail_msg("cannot create %s", path);
    if (len && fwrite(data, 1, len, fp) != len)
        fail_msg("cannot write %s", path);
    if (fclose(fp) != 0)
        fail_msg("cannot close %s", path);
}

static inline int tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Asserts the file at path holds exactly len bytes equal to want. */
static inline void tu_assert_file_equals(const char *path, const void *want, size_t len)
{
    size_t n;
    unsigned char *got = tu_read_file(path, &n);
    if (n != len || memcmp(got, want, len) != 0) {
        free(got);
        fail_msg("%s changed: %zu bytes now, %zu expected (or contents differ)",
                 path, n, len);
    }
    free(got);
}

/* Asserts that files a and b hold the same bytes. */
static inline void tu_assert_same_file(const char *a, const char *b)
{
    size_t n1, n2;
    unsigned char *x = tu_read_file(a, &n1), *y = tu_read_file(b, &n2);
    int same = n1 == n2 && memcmp(x, y, n1) == 0;
    free(x);
    free(y);
    if (!same)
        fail_msg("%s and %s differ (%zu and %zu bytes)", a, b, n1, n2);
}

/* Number of entries in dir other than . and ..; the name of the first
 * entry whose name starts with '.' goes to hidden (if not NULL). */
static inline size_t tu_count_entries(const char *dir, char *hidden, size_t hidden_size)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot list %s", dir);
    size_t n = 0;
    if (hidden && hidden_size)
        hidden[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        if (hidden && e->d_name[0] == '.' && hidden[0] == '\0')
            snprintf(hidden, hidden_size, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* A grey PNG read back with libpng; fails the test unless it is w x h. */
static inline uint8_t *tu_read_png(const char *path, size_t w, size_t h)
{
    uint8_t *px;
    size_t pw, ph;
    err_msg err;
    if (png_grid_read_gray(path, &px, &pw, &ph, &err))
        fail_msg("%s", err.text);
    if (pw != w || ph != h)
        fail_msg("%s is %zux%zu, expected %zux%zu", path, pw, ph, w, h);
    return px;
}

/* Little-endian integers in a byte buffer (the checkpoint's byte order). */
static inline uint32_t tu_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline void tu_put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t tu_get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void tu_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* ------------------------------------------------------------------------ */
/* A small file system that can be filled: a tmpfs of size_kb KiB mounted on
 * the folder mnt (made if missing), in a mount namespace of the test's own
 * so that a test that dies leaves no mount behind. Returns 0, or -1 after
 * saying why when mounting is not allowed (not root, or a container without
 * CAP_SYS_ADMIN): the caller then skips its check. These need _GNU_SOURCE
 * (unshare). */
#ifdef _GNU_SOURCE
static inline int tu_mount_tmpfs(const char *mnt, size_t size_kb)
{
    static int own_namespace;
    if (!own_namespace && unshare(CLONE_NEWNS) == 0 &&
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
        own_namespace = 1;
    mkdir(mnt, 0755);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%zuk,mode=0755", size_kb);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
        print_message("skipping the full-disk check: cannot mount a tmpfs on %s (%s); "
                      "it runs as root\n", mnt, strerror(errno));
        return -1;
    }
    return 0;
}

/* Unmounts mnt (tu_mount_tmpfs) and removes the folder. */
static inline void tu_umount_tmpfs(const char *mnt)
{
    if (umount2(mnt, MNT_DETACH) != 0)
        fail_msg("cannot unmount %s: %s", mnt, strerror(errno));
    rmdir(mnt);
}

/* Fills the file system of folder dir to the last byte with dir/FILL. */
static inline void tu_fill_disk(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/FILL", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    static const char zeros[4096];
    for (size_t chunk = sizeof zeros; chunk > 0; chunk /= 2)
        while (write(fd, zeros, chunk) == (ssize_t)chunk)
            ;
    close(fd);
}
#endif

/* A Unix socket bound at path (a file that is neither read nor written);
 * returns its descriptor. */
static inline int tu_bind_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* A time limit for calls that could wait for ever (a read of a FIFO nobody
 * writes): tu_deadline(what, s) before them, tu_deadline(NULL, 0) after. If
 * they take more than s seconds the test binary exits 1 naming what, so a
 * hang fails the test instead of stalling the suite. */

static inline const char **tu_deadline_what(void)
{
    static const char *what;
    return &what;
}

static inline void tu_deadline_hit(int sig)
{
    (void)sig;
    static const char lead[] = "\nFAILED: still waiting after the time limit: ";
    const char *what = *tu_deadline_what();
    ssize_t ignored = write(2, lead, sizeof lead - 1);
    ignored = write(2, what, strlen(what));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(1);
}

static inline void tu_deadline(const char *what, unsigned seconds)
{
    alarm(0);
    *tu_deadline_what() = what;
    signal(SIGALRM, what ? tu_deadline_hit : SIG_DFL);
    if (what)
        alarm(seconds);
}

/* Fails the test if text (NUL-terminated) lacks needle; names both. */
#define tu_assert_contains(text, needle)                                        \
    do {                                                                        \
        const char *tu_t_ = (text), *tu_n_ = (needle);                          \
        if (!strstr(tu_t_, tu_n_))                                              \
            fail_msg("expected \"%s\" in:\n%s", tu_n_, tu_t_);                  \
    } while (0)

#endif
