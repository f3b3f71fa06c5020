/* lock.c - the locks of a checkpoint and of a folder (see src/io/lock.h).
 *
 * The name lock is a POSIX record lock on PATH.lock, not on the checkpoint:
 * every save replaces the checkpoint's inode (afile renames a new file over
 * it), which would leave a lock on the old one. The holder removes the lock
 * file when it is done; a taker that finds, once it holds the lock, that
 * the name now points at another file (the holder removed it meanwhile)
 * starts over, so two takers can never both hold "the" lock.
 *
 * The file lock is a flock (BSD lock) on the checkpoint's inode, so a
 * second name for the same file (a hard link) finds it held. flock, not
 * fcntl: a process loses its fcntl locks on a file when it closes any
 * descriptor of it, and the trainer reads its own checkpoint. A save makes
 * a new inode; lock_follow moves the flock onto it. Who holds a flock is
 * read from /proc/locks, for the message. */
#define _GNU_SOURCE /* flock's LOCK_* in <sys/file.h> */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"

int lock_path(char *out, size_t len, const char *path)
{
    char real[PATH_MAX + NAME_MAX + 2];
    if (paths_resolve(path, real, sizeof real) != 0)
        return -1;
    int n = snprintf(out, len, "%s.lock", real);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The whole file, for writing. */
static struct flock whole(short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return fl;
}

/* The process holding a flock on inode ino, from /proc/locks ("1: FLOCK
 * ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF"); 0 when it cannot be told. */
static long flock_holder(ino_t ino)
{
    FILE *fp = fopen("/proc/locks", "re");
    if (!fp)
        return 0;
    char line[256];
    long pid = 0;
    while (!pid && fgets(line, sizeof line, fp)) {
        char kind[16], type[16];
        long p;
        unsigned long long inode;
        if (sscanf(line, "%*s %15s %*s %15s %ld %*x:%*x:%llu", kind, type, &p, &inode) == 4 &&
            !strcmp(kind, "FLOCK") && (ino_t)inode == ino)
            pid = p;
    }
    fclose(fp);
    return pid;
}

/* flock fd without waiting. Returns 0 (held); else closes fd and returns
 * 1 when another process holds it (who: " (process N)" when known, else
 * ""), or -1 on another error (errno). */
static int try_flock(int fd, char *who, size_t size)
{
    who[0] = '\0';
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno, rc = -1;
        struct stat st;
        long pid;
        if (e == EWOULDBLOCK) {
            rc = 1;
            if (fstat(fd, &st) == 0 && (pid = flock_holder(st.st_ino)) != 0)
                snprintf(who, size, " (process %ld)", pid);
        }
        close(fd);
        errno = e;
        return rc;
    }
    return 0;
}

static const char *in_use_hint = "Wait for that run to end, or train into another --ckpt";

/* flocks the checkpoint path itself into l->file_fd when it exists (a
 * device such as /dev/null has nothing to lock). Returns 0 or -1 with err. */
static int lock_file_itself(lock_file *l, const char *path, err_msg *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? 0 : err_sys(err, errno, "%s: cannot open it to lock it", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    char who[48];
    int rc = try_flock(fd, who, sizeof who);
    if (rc < 0)
        return err_sys(err, errno, "%s: cannot lock it", path);
    if (rc > 0)
        return err_set(err, "%s is in use: another vae train%s is writing this file "
                       "under another name (a hard link to it). %s", path, who,
                       in_use_hint);
    if (l->file_fd >= 0)
        close(l->file_fd);
    l->file_fd = fd;
    return 0;
}

int lock_take(lock_file *l, const char *path, err_msg *err)
{
    l->fd = -1;
    l->file_fd = -1;
    size_t len = PATH_MAX + NAME_MAX + 8;
    l->path = malloc(len);
    if (!l->path)
        return err_set(err, "out of memory");
    if (lock_path(l->path, len, path) != 0) {
        lock_drop(l);
        return err_sys(err, errno, "%s: cannot name its lock file", path);
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            int e = errno;
            lock_drop(l);
            return err_sys(err, e, "%s: cannot create the lock file of %s", path, path);
        }
        struct flock fl = whole(F_WRLCK);
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            int e = errno;
            struct flock q = whole(F_WRLCK);
            long pid = 0;
            if ((e == EACCES || e == EAGAIN) && fcntl(fd, F_GETLK, &q) == 0 &&
                q.l_type != F_UNLCK)
                pid = (long)q.l_pid;
            close(fd);
            if (e != EACCES && e != EAGAIN) {
                err_sys(err, e, "%s: cannot lock %s", path, l->path);
                lock_drop(l);
                return -1;
            }
            if (pid == 0)
                continue; /* released in between: try again */
            lock_drop(l);
            return err_set(err, "%s is in use: another vae train (process %ld) is "
                           "writing it. %s", path, pid, in_use_hint);
        }
        /* Held; but is it still the file that carries the name? */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            /* The holder's pid, for people who look at the file. */
            char text[32];
            int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
                /* Only informative: the lock itself is held. */
            }
            l->fd = fd;
            if (lock_file_itself(l, path, err) != 0) {
                lock_drop(l);
                return -1;
            }
            return 0;
        }
        close(fd);
    }
    lock_drop(l);
    return err_set(err, "%s: cannot take the lock (the lock file keeps changing)", path);
}

int lock_follow(lock_file *l, const char *path, err_msg *err)
{
    if (l->fd < 0)
        return 0;
    struct stat held, now;
    if (l->file_fd >= 0 && fstat(l->file_fd, &held) == 0 && stat(path, &now) == 0 &&
        held.st_dev == now.st_dev && held.st_ino == now.st_ino)
        return 0; /* still the file it holds */
    return lock_file_itself(l, path, err);
}

int lock_take_folder(lock_file *l, const char *dir, const char *what, err_msg *err)
{
    l->fd = -1;
    l->file_fd = -1;
    l->path = NULL;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "%s %s: cannot open the folder to lock it", what, dir);
    char who[48];
    int rc = try_flock(fd, who, sizeof who);
    if (rc < 0)
        return err_sys(err, errno, "%s %s: cannot lock the folder", what, dir);
    if (rc > 0)
        return err_set(err, "%s %s is in use: another vae train%s writes into it. Wait "
                       "for that run to end, or give another %s", what, dir, who, what);
    l->fd = fd;
    return 0;
}

void lock_drop(lock_file *l)
{
    if (l->fd >= 0 && l->path)
        unlink(l->path); /* while still held: see the top of the file */
    if (l->fd >= 0)
        close(l->fd);
    if (l->file_fd >= 0)
        close(l->file_fd);
    free(l->path);
    l->fd = -1;
    l->file_fd = -1;
    l->path = NULL;
}
