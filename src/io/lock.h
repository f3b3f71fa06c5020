/* lock.h - one writer per checkpoint and per output folder, held for a
 * whole training run. The kernel drops every lock when the process ends,
 * however it ends (kill -9 included), so a stale lock file never blocks the
 * next run.
 *
 * A checkpoint is locked by its name and by its file: an fcntl lock on
 * PATH.lock beside the name the write lands on (links followed, the folder
 * canonical, so a symlink or "run/../vae.bin" finds the same lock), and a
 * flock on the checkpoint file itself, which a hard link shares. A folder
 * is locked by a flock on the folder. */
#ifndef VAE_LOCK_H
#define VAE_LOCK_H

#include "err.h"

typedef struct lock_file {
    int fd;       /* the lock file (or the folder); -1 when not held */
    int file_fd;  /* the checkpoint file, flocked; -1 when none */
    char *path;   /* PATH.lock, or NULL for a folder's lock */
} lock_file;

/* An empty lock, safe to drop. */
#define LOCK_NONE {-1, -1, NULL}

/* The lock file's name for path (PATH.lock beside the file a write to path
 * lands on) into out (len bytes); returns 0, or -1 when it does not fit. */
int lock_path(char *out, size_t len, const char *path);

/* Takes the lock of checkpoint path (creating its lock file). Returns 0;
 * or -1 with err: another process holds it, under this name or another
 * ("... is in use: another vae train (process N) is writing it"), or the
 * lock file cannot be made. */
int lock_take(lock_file *l, const char *path, err_msg *err);

/* After a save replaced the checkpoint (a new file under the name), moves
 * the file's lock to it. Returns 0, or -1 with err when another process
 * holds the new file (a hard link made to it meanwhile). */
int lock_follow(lock_file *l, const char *path, err_msg *err);

/* Takes the lock of folder dir for a run writing into it; what names the
 * folder in messages ("--out"). Returns 0; or -1 with err: another process
 * holds it ("--out DIR is in use: another vae train (process N) writes
 * into it"), or the folder cannot be opened. */
int lock_take_folder(lock_file *l, const char *dir, const char *what, err_msg *err);

/* Releases the locks (removing the lock file); safe on LOCK_NONE or a lock
 * that lock_take failed on. */
void lock_drop(lock_file *l);

#endif
