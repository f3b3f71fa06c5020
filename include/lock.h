/* lock.h - one writer per checkpoint: an advisory lock (fcntl F_SETLK) on
 * PATH.lock, held for a whole training run. The kernel drops it when the
 * process ends, however it ends (kill -9 included), so a stale lock file
 * never blocks the next run. */
#ifndef VAE_LOCK_H
#define VAE_LOCK_H

#include "err.h"

typedef struct lock_file {
    int fd;       /* -1 when not held */
    char *path;   /* PATH.lock */
} lock_file;

/* PATH.lock into out (len bytes); returns 0, or -1 when it does not fit. */
int lock_path(char *out, size_t len, const char *path);

/* Takes the lock for path (creating PATH.lock). Returns 0; or -1 with err:
 * another process holds it ("... is in use by process N"), or the lock
 * file cannot be made. */
int lock_take(lock_file *l, const char *path, err_msg *err);

/* Removes the lock file and releases the lock; safe on a zeroed struct or
 * one lock_take failed on. */
void lock_drop(lock_file *l);

#endif
