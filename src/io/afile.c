/* afile.c - files in and out whole (see src/io/afile.h).
 *
 * Regular targets: an unnamed file (O_TMPFILE) in the target's folder,
 * write, fflush, fsync, link it as ".NAME.tmp.PID.XXXXXX", close, rename
 * over the target, fsync the folder. rename(2) within one folder is atomic,
 * so readers see the old file or the new one; and a process killed while
 * it writes leaves nothing behind, since the file has no name until it is
 * whole. Where O_TMPFILE or /proc is missing, the temp name is made at once
 * with mkstemp instead. Either way the next writer of NAME removes temp
 * files of writers that no longer run. A symbolic link is followed: its
 * target is replaced, the link stays. Anything else that exists (a device)
 * is written in place: renaming over /dev/full would replace the device
 * node with a regular file.
 *
 * Why f->fp is a fopencookie stream and not fdopen: glibc drops a buffer it
 * failed to write and keeps only the error flag, so by the time of commit the
 * errno of the failed write(2) (ENOSPC, EDQUOT, EIO, EFBIG) is gone. The
 * cookie records the first write error so commit can name it.
 *
 * Inputs: stat before open, so a socket (which open refuses with ENXIO, a
 * message that says nothing of the file) or a device is never opened; then
 * open with O_NONBLOCK and fstat, so a FIFO put in the file's place since
 * is opened without waiting for a writer, and refused. */
#define _GNU_SOURCE /* fopencookie; implies _POSIX_C_SOURCE 200809L */
#include "afile.h"

#include "paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio_ext.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Between a target's name and the writer's process id in a temp name. */
#define TEMP_MARK ".tmp."
/* The most of NAME a temp name keeps: ".NAME.tmp.PID.XXXXXX" must stay
 * within NAME_MAX for a file name of NAME_MAX bytes (a PID of up to 20
 * digits). */
#define TEMP_BASE_MAX (NAME_MAX - 1 - (int)(sizeof TEMP_MARK - 1) - 20 - 7)

/* ------------------------------------------------------------------------ */
/* The stream's sink: a file descriptor and the first error writing to it.
 * It shares one allocation with the target path, and f->path points at its
 * path member, so commit finds the sink from f alone (afile.h has no room
 * for it, and a cookie cannot be read back from a FILE). */

typedef struct afile_sink {
    int fd;
    int werr;    /* errno of the first failed write(2), or 0 */
    int unnamed; /* fd is an O_TMPFILE file, linked at commit as tmp_path */
    char path[]; /* the target, NUL-terminated; f->path points here */
} afile_sink;

static afile_sink *sink_of(const afile *f)
{
    return (afile_sink *)(void *)(f->path - offsetof(afile_sink, path));
}

static ssize_t sink_write(void *cookie, const char *buf, size_t size)
{
    afile_sink *s = cookie;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(s->fd, buf + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO; /* write(2) of n > 0 bytes never returns 0 */
            if (s->werr == 0)
                s->werr = errno;
            break; /* a short count sets the stream's error flag */
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

/* The descriptor is closed by commit/abort, not by fclose, so commit can
 * fsync between flushing and closing and check close(2) itself. */
static int sink_close(void *cookie)
{
    (void)cookie;
    return 0;
}

static FILE *sink_stream(afile_sink *s)
{
    cookie_io_functions_t io = {.read = NULL, .write = sink_write, .seek = NULL,
                                .close = sink_close};
    return fopencookie(s, "w", io);
}

/* ------------------------------------------------------------------------ */

static void afile_clear(afile *f)
{
    f->fp = NULL;
    f->path = NULL;
    f->tmp_path = NULL;
}

/* Frees the strings (and the sink with the path) and clears f. */
static void afile_release(afile *f)
{
    if (f->path)
        free(sink_of(f));
    free(f->tmp_path);
    afile_clear(f);
}

/* mkstemp gives 0600; the file should look like one fopen would create,
 * minus write for group and others. umask(2) can only be read by setting it,
 * so set it back at once. */
static mode_t new_file_mode(void)
{
    mode_t mask = umask(022);
    umask(mask);
    return 0644 & ~mask;
}

/* ".NAME.tmp.PID.XXXXXX" in the folder of path (NAME cut to TEMP_BASE_MAX
 * bytes); NULL if path has no file name (empty, or ends with '/') or on
 * allocation failure (errno says which). The writer's process id in the
 * name tells a later writer of the same file whether a leftover is a live
 * writer's or a dead one's. */
static char *temp_name_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0; /* keeps the '/' */
    const char *base = path + dir_len;
    if (*base == '\0') {
        errno = EISDIR;
        return NULL;
    }
    char suffix[48];
    snprintf(suffix, sizeof suffix, "%s%ld.XXXXXX", TEMP_MARK, (long)getpid());
    size_t len = dir_len + 1 + strlen(base) + strlen(suffix) + 1;
    char *tmp = malloc(len);
    if (!tmp)
        return NULL;
    snprintf(tmp, len, "%.*s.%.*s%s", (int)dir_len, path, TEMP_BASE_MAX, base, suffix);
    return tmp;
}

/* Whose temp file name is while writing base (see temp_name_for): its
 * writer's process id; 0 for ".BASE.tmp.XXXXXX", of versions before the
 * PID was in the name; -1 when it is not one. */
static long temp_writer(const char *name, const char *base)
{
    size_t lb = strlen(base), lm = strlen(TEMP_MARK);
    if (lb > TEMP_BASE_MAX)
        lb = TEMP_BASE_MAX;
    if (name[0] != '.' || strncmp(name + 1, base, lb) != 0 ||
        strncmp(name + 1 + lb, TEMP_MARK, lm) != 0)
        return -1;
    const char *p = name + 1 + lb + lm;
    if (*p < '0' || *p > '9')
        return strlen(p) == 6 ? 0 : -1;
    char *end;
    long pid = strtol(p, &end, 10);
    return *end == '.' && strlen(end + 1) == 6 ? pid : -1;
}

int afile_is_temp_of(const char *name, const char *base)
{
    return temp_writer(name, base) >= 0;
}

static char *folder_of(const char *path);

/* Removes what writers of path killed before they finished left: temp
 * files ".NAME.tmp.PID.XXXXXX" of processes that no longer run. Only the
 * window between naming a whole temp file and renaming it leaves one
 * where O_TMPFILE works; where it does not, every kill -9 mid-write does. */
static void sweep_leftovers(const char *path)
{
    char *dir = folder_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        long pid = temp_writer(e->d_name, base);
        struct stat st;
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* not ours, or its writer may still be at work */
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
    free(dir);
}

/* The folder of path, malloc'd ("." for a bare name); NULL when out of memory. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* An unnamed file in the folder of path, or -1 when the file system (or
 * the kernel) has no O_TMPFILE, or /proc is not there to link it later. */
static int open_unnamed(const char *path)
{
#ifdef O_TMPFILE
    if (access("/proc/self/fd", X_OK) != 0)
        return -1;
    char *dir = folder_of(path);
    if (!dir)
        return -1;
    int fd;
    do
        fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, new_file_mode());
    while (fd < 0 && errno == EINTR);
    free(dir);
    return fd;
#else
    (void)path;
    return -1;
#endif
}

/* Gives the unnamed file fd the name tmpl, its trailing XXXXXX replaced by
 * letters not yet taken. Returns 0, or -1 with errno. */
static int link_unnamed(int fd, char *tmpl)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static atomic_uint counter; /* shared by threads naming files at once */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    char *x = tmpl + strlen(tmpl) - 6;
    for (int attempt = 0; attempt < 1000; attempt++) {
        unsigned long v = (unsigned long)getpid() * 2654435761u +
                          (unsigned long)atomic_fetch_add(&counter, 1u) * 40503u + (unsigned long)attempt;
        for (int i = 0; i < 6; i++, v /= 36)
            x[i] = abc[v % 36];
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmpl, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

/* The error for a file that cannot be created beside path: says what is
 * wrong with the folder when that is the cause. Returns -1. */
static int folder_error(const char *path, int e, err_msg *err)
{
    char *dir = folder_of(path);
    if (!dir)
        return err_set(err, "%s: out of memory", path);
    struct stat st;
    int rc;
    if (stat(dir, &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
        rc = err_set(err, "cannot write %s: folder %s does not exist", path, dir);
    else if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        rc = err_set(err, "cannot write %s: %s is not a folder", path, dir);
    else if (e == EACCES || e == EPERM || e == EROFS)
        rc = err_sys(err, e, "cannot write %s: folder %s is not writable", path, dir);
    else
        rc = err_sys(err, e, "cannot write %s: cannot create a file in %s", path, dir);
    free(dir);
    return rc;
}

int afile_open(afile *f, const char *path, err_msg *err)
{
    afile_clear(f);

    /* Through a symbolic link, the file it points to is replaced and the
     * link stays a link (a rename over the link's name would replace it).
     * A link to a device or a pipe (/dev/stdout) is written in place. */
    struct stat st;
    char real[PATH_MAX + NAME_MAX + 2];
    int special = stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
    if (!special && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        if (paths_resolve(path, real, sizeof real) != 0)
            return err_sys(err, errno, "cannot write %s: cannot follow the link", path);
        path = real;
    }

    int exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        return folder_error(path, errno, err);
    if (exists && S_ISDIR(st.st_mode))
        return err_set(err, "%s is a directory", path);

    size_t path_len = strlen(path);
    afile_sink *s = malloc(sizeof *s + path_len + 1);
    if (!s)
        return err_set(err, "%s: out of memory", path);
    memcpy(s->path, path, path_len + 1);
    s->fd = -1;
    s->werr = 0;
    s->unnamed = 0;

    char *tmp = NULL;
    if (exists && !S_ISREG(st.st_mode)) {
        /* A device: write in place, never rename over it. Opened without
         * blocking: a FIFO (refused by paths_check, but one may appear
         * since) fails at once with ENXIO when nobody reads it, and its
         * writes fail rather than wait, so a stop is never held up. */
        do
            s->fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NONBLOCK);
        while (s->fd < 0 && errno == EINTR);
        if (s->fd < 0) {
            int e = errno;
            free(s);
            if (e == ENXIO)
                return err_set(err, "cannot write %s: no process reads it", path);
            return err_sys(err, e, "cannot open %s", path);
        }
        /* Open: a FIFO has its reader (paths_check refused named ones:
         * this is one the command was given, /dev/stdout). Writes wait
         * for the reader as they would in any pipeline. */
        fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) & ~O_NONBLOCK);
    } else {
        sweep_leftovers(path);
        tmp = temp_name_for(path);
        if (!tmp) {
            int e = errno;
            free(s);
            if (e == EISDIR)
                return err_set(err, "%s is not a file name", path);
            return err_set(err, "%s: out of memory", path);
        }
        s->fd = open_unnamed(path);
        if (s->fd >= 0)
            s->unnamed = 1;
        else
            s->fd = mkstemp(tmp);
        if (s->fd < 0) {
            int e = errno;
            free(tmp);
            free(s);
            return folder_error(path, e, err);
        }
        if (!s->unnamed && fchmod(s->fd, new_file_mode()) != 0) {
            int e = errno;
            close(s->fd);
            unlink(tmp);
            free(tmp);
            free(s);
            return err_sys(err, e, "cannot set the mode of a temp file beside %s", path);
        }
    }

    FILE *fp = sink_stream(s);
    if (!fp) {
        int e = errno;
        close(s->fd);
        if (tmp && !s->unnamed)
            unlink(tmp);
        free(tmp);
        free(s);
        return err_sys(err, e, "cannot open a stream for %s", path);
    }
    f->fp = fp;
    f->path = s->path;
    f->tmp_path = tmp;
    return 0;
}

/* fsync fails with EINVAL (or ENOTSUP) on objects that cannot be synced,
 * such as /dev/null, pipes and terminals: nothing is lost there. */
static int fsync_failed(int fd)
{
    if (fsync(fd) == 0)
        return 0;
    return errno != EINVAL && errno != ENOTSUP;
}

/* Makes the rename durable. A folder we may not open (say mode 0300) or a
 * file system that cannot sync folders is no write error. */
static int sync_folder_of(const char *path, err_msg *err)
{
    char *dir = folder_of(path);
    if (!dir)
        return err_set(err, "%s: out of memory", path);

    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != EACCES && errno != EPERM)
            rc = err_sys(err, errno, "cannot open folder %s to sync %s", dir, path);
    } else {
        if (fsync_failed(fd))
            rc = err_sys(err, errno, "cannot sync folder %s after writing %s", dir, path);
        close(fd);
    }
    free(dir);
    return rc;
}

int afile_finish(afile *f, err_msg *err)
{
    if (!f->path) {
        afile_abort(f);
        return err_set(err, "afile_finish: file is not open");
    }
    if (!f->fp)
        return 0; /* finished already */
    afile_sink *s = sink_of(f);
    const char *path = f->path;
    int rc = 0;

    /* 1. Push the buffer to the descriptor; any write that ever failed counts. */
    if (fflush(f->fp) != 0 || ferror(f->fp) || s->werr != 0) {
        int e = s->werr ? s->werr : errno ? errno : EIO;
        rc = err_sys(err, e, "cannot write %s", path);
    }
    /* 2. The stream holds no data now; fclose only frees it. */
    if (fclose(f->fp) != 0 && rc == 0)
        rc = err_sys(err, errno, "cannot write %s", path);
    f->fp = NULL;
    /* 3. Data on disk before the rename makes it visible. */
    if (rc == 0 && fsync_failed(s->fd))
        rc = err_sys(err, errno, "cannot sync %s", path);
    /* An unnamed file gets its temp name only now that it is whole. */
    if (rc == 0 && s->unnamed) {
        if (link_unnamed(s->fd, f->tmp_path) != 0)
            rc = err_sys(err, errno, "cannot write %s", path);
        else
            s->unnamed = 0;
    }
    /* 4. NFS and others report delayed write errors at close. */
    if (close(s->fd) != 0 && rc == 0 && errno != EINTR)
        rc = err_sys(err, errno, "cannot write %s", path);
    s->fd = -1;

    if (rc != 0) {
        if (f->tmp_path && !s->unnamed) /* an unnamed file vanishes with its descriptor */
            unlink(f->tmp_path);         /* the old target is untouched */
        afile_release(f);
    }
    return rc;
}

/* 5. Renames finished f's temp file over its target (nothing to do for a
 * target written in place); on failure the temp file is removed and the
 * target untouched. Does not release f. */
static int rename_over(afile *f, err_msg *err)
{
    if (!f->tmp_path || rename(f->tmp_path, f->path) == 0)
        return 0;
    int rc = err_sys(err, errno, "cannot replace %s", f->path);
    unlink(f->tmp_path);
    return rc;
}

/* 6. The rename made durable, for a file that was renamed. */
static int sync_renamed(const afile *f, err_msg *err)
{
    return f->tmp_path ? sync_folder_of(f->path, err) : 0;
}

int afile_commit(afile *f, err_msg *err)
{
    if (afile_finish(f, err))
        return -1;
    int rc = rename_over(f, err);
    if (rc == 0)
        rc = sync_renamed(f, err);
    afile_release(f);
    return rc;
}

int afile_commit_pair(afile *a, afile *b, err_msg *err)
{
    /* Every write error shows here, before either target changes. */
    if (afile_finish(a, err)) {
        afile_abort(b);
        return -1;
    }
    if (afile_finish(b, err)) {
        afile_abort(a);
        return -1;
    }
    int rc = rename_over(a, err);
    if (rc != 0) {
        afile_abort(b);
        return rc;
    }
    if (rename_over(b, err) != 0) {
        err_msg why = *err;
        rc = err_set(err, "%s (%s was replaced already)", why.text, a->path);
    }
    if (rc == 0)
        rc = sync_renamed(a, err);
    if (rc == 0)
        rc = sync_renamed(b, err);
    afile_release(a);
    afile_release(b);
    return rc;
}

int afile_write_errno(const afile *f)
{
    return f->path ? sink_of(f)->werr : 0;
}

void afile_abort(afile *f)
{
    if (f->fp) {
        __fpurge(f->fp); /* discard, do not write, what is still buffered */
        fclose(f->fp);
    }
    int unnamed = f->path && sink_of(f)->unnamed;
    if (f->path && sink_of(f)->fd >= 0)
        close(sink_of(f)->fd);
    if (f->tmp_path && !unnamed)
        unlink(f->tmp_path);
    afile_release(f);
}

/* ------------------------------------------------------------------------ */
/* Reading an input                                                         */

/* What a file that is not a regular file is, for the message. */
static const char *kind_of(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "a special file";
    }
}

static int refuse_input(const char *path, mode_t mode, err_msg *err)
{
    return err_set(err, "%s: is %s, not a regular file", path, kind_of(mode));
}

int afile_open_input(const char *path, struct stat *st, err_msg *err)
{
    struct stat own;
    if (!st)
        st = &own;
    if (stat(path, st) != 0)
        return err_sys(err, errno, "%s", path);
    if (!S_ISREG(st->st_mode))
        return refuse_input(path, st->st_mode, err);
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return err_sys(err, errno, "%s", path);
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return err_sys(err, e, "%s", path);
    }
    if (!S_ISREG(st->st_mode)) { /* replaced since the stat */
        close(fd);
        return refuse_input(path, st->st_mode, err);
    }
    /* A regular file's reads never wait anyway; clear the flag so the
     * descriptor is an ordinary one. */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return err_sys(err, e, "%s", path);
    }
    return fd;
}

FILE *afile_fopen_input(const char *path, struct stat *st, err_msg *err)
{
    int fd = afile_open_input(path, st, err);
    if (fd < 0)
        return NULL;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int e = errno;
        close(fd);
        err_sys(err, e, "%s", path);
    }
    return fp;
}
