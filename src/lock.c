/* lock.c - the checkpoint's lock file (see include/lock.h).
 *
 * A POSIX record lock on PATH.lock, not on the checkpoint itself: every
 * save replaces the checkpoint's inode (afile renames a new file over it),
 * which would leave a lock on the old one. The holder removes the lock file
 * when it is done; a taker that finds, once it holds the lock, that the
 * name now points at another file (the holder removed it meanwhile) starts
 * over, so two takers can never both hold "the" lock. */
#define _POSIX_C_SOURCE 200809L
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lock_path(char *out, size_t len, const char *path)
{
    int n = snprintf(out, len, "%s.lock", path);
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

int lock_take(lock_file *l, const char *path, err_msg *err)
{
    l->fd = -1;
    size_t len = strlen(path) + 6;
    l->path = malloc(len);
    if (!l->path)
        return err_set(err, "out of memory");
    lock_path(l->path, len, path);
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
                           "writing it. Wait for that run to end, or train into "
                           "another --ckpt", path, pid);
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
            return 0;
        }
        close(fd);
    }
    lock_drop(l);
    return err_set(err, "%s: cannot take the lock (the lock file keeps changing)", path);
}

void lock_drop(lock_file *l)
{
    if (l->fd >= 0 && l->path) {
        unlink(l->path); /* while still held: see the top of the file */
        close(l->fd);
    }
    free(l->path);
    l->fd = -1;
    l->path = NULL;
}
