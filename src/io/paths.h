/* paths.h - the files a command reads and writes, checked before anything
 * runs: no write may land on a file the command reads or on another file it
 * writes, whatever name reaches it (symbolic and hard links, "./", "..",
 * another spelling of the same folder). */
#ifndef VAE_PATHS_H
#define VAE_PATHS_H

#include <stddef.h>

#include "err.h"

#define PATHS_MAX 16

typedef enum paths_mode {
    PATHS_READ,   /* only read */
    PATHS_WRITE,  /* written (created or replaced; the CLI keeps it off checkpoints
                     and data files) */
    PATHS_UPDATE, /* read, then replaced by its own next version (a resumed checkpoint) */
    PATHS_REPLACE, /* written over whatever it holds (a new run's checkpoint, which
                      its command guards itself) */
    PATHS_PAIRED  /* written, with a second file beside it named after it (the
                     latent map's CSV beside -o): a file's name in a folder of
                     files, never a device's or one in /dev, /proc or /sys */
} paths_mode;

/* One file, or a numbered series of files in a folder. */
typedef struct paths_entry {
    const char *what;   /* how the user knows it: "--ckpt", "-o", "the training images" */
    const char *path;   /* the file; for a series, the folder */
    paths_mode mode;
    /* A series: folder/PREFIX N SUFFIX for N in [lo, hi] (prefix NULL: one file). */
    const char *prefix, *suffix;
    size_t lo, hi;
} paths_entry;

typedef struct paths_list {
    paths_entry e[PATHS_MAX];
    size_t n;
} paths_list;

/* Adds one file; a NULL path is skipped. Silently ignores more than
 * PATHS_MAX entries (callers add a handful). */
void paths_add(paths_list *l, const char *what, const char *path, paths_mode mode);

/* Adds the files folder/PREFIX N SUFFIX, N = lo..hi, all written. */
void paths_add_series(paths_list *l, const char *what, const char *folder,
                      const char *prefix, const char *suffix, size_t lo, size_t hi);

/* Returns 0 when every written file can be written without stalling and
 * none is another entry's file; else -1 with err naming them: a written
 * file that is a FIFO, a socket or a folder ("-o pipe is a FIFO ..."), a
 * PATHS_PAIRED file that is a device or has no folder of files to hold the
 * file beside it ("-o /dev/full is a device ..."), a series whose folder
 * is not a folder, or one file twice ("-o keep.bin
 * would write over --ckpt keep.bin, which this command reads ..."). Two
 * reads of one file are fine; so are devices (/dev/null, a terminal),
 * which are written in place and which writing does not destroy. */
int paths_check(const paths_list *l, err_msg *err);

/* Whether a file can be created as path before anything runs: its folder
 * exists, is a folder, and this process may write in it. Returns 0, or -1
 * with err naming what ("--metrics nodir/m.csv: folder nodir does not
 * exist"). */
int paths_check_folder(const char *what, const char *path, err_msg *err);

/* The file a write to path lands on, into out (size bytes): the links of
 * its last name followed (a dangling link gives the file it would create),
 * its folder canonical (realpath; as given when it does not exist), so
 * "run/../vae.bin", a symlink to it and "vae.bin" give one name. Returns
 * 0, or -1 with errno (ELOOP, ENAMETOOLONG). */
int paths_resolve(const char *path, char *out, size_t size);

#endif
