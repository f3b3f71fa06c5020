/* afile.h - files in and out whole.
 *
 * Out: atomic file replacement: write a temp file beside the target,
 * flush, fsync, rename over the target, fsync the folder. A crash or a
 * failed write at any moment leaves either the old file or the new one,
 * whole, and no temp file that outlives the next write of the same file.
 * Through a symbolic link the file it points to is replaced; the link
 * stays. Targets that are not regular files (say /dev/full) are written in
 * place, without blocking, with every write error reported.
 *
 * In: a file the user names (a checkpoint, a data file, an image) is opened
 * only if it is a regular file; a FIFO, a socket, a device or a folder is
 * refused at once, never waited on or read. */
#ifndef VAE_AFILE_H
#define VAE_AFILE_H

#include <stdio.h>
#include <sys/stat.h>

#include "err.h"

typedef struct afile {
    FILE *fp;         /* write here between afile_open and commit/abort */
    char *path;       /* the target */
    char *tmp_path;   /* the temp file, or NULL when writing in place */
} afile;

/* Opens a temp file beside path for writing. Returns 0, or -1 with err
 * (names the path: missing folder, not writable, ...). */
int afile_open(afile *f, const char *path, err_msg *err);

/* Flushes, fsyncs and closes, then renames the temp file over the target.
 * Returns 0, or -1 with err; on failure the temp file is removed and the
 * old target is untouched. Always releases f. */
int afile_commit(afile *f, err_msg *err);

/* The first half of a commit: flushes, fsyncs and closes the temp file and
 * gives it its name, f->tmp_path, where another program may read it (a
 * target written in place is read at f->path). afile_commit then renames
 * it; afile_abort removes it. Returns 0, or -1 with err (every write error
 * shows here); on failure the temp file is removed, the old target is
 * untouched and f is released. */
int afile_finish(afile *f, err_msg *err);

/* Commits two files that go together (a picture and the data it shows):
 * both are finished before either is renamed, so a failed write of either
 * leaves both targets untouched and no temp file. Then a, then b, is
 * renamed: only a failure of b's rename itself (its folder changed under
 * us) can leave a replaced and b not, and err says so. Returns 0, or -1
 * with err. Always releases both. */
int afile_commit_pair(afile *a, afile *b, err_msg *err);

/* errno of the first write to f that failed (ENOSPC, EIO, ...), or 0. For
 * callers whose writer reports a failure without its cause (libpng). */
int afile_write_errno(const afile *f);

/* Closes and removes the temp file, leaving the target untouched. */
void afile_abort(afile *f);

/* Whether name (a file in a folder) is a temp file afile names while
 * writing base there (".BASE.tmp.PID.XXXXXX", or ".BASE.tmp.XXXXXX" of
 * older versions), whose writer may have been killed: not a file of the
 * folder's own. */
int afile_is_temp_of(const char *name, const char *base);

/* ------------------------------------------------------------------------ */
/* Reading an input                                                         */

/* Opens path to read, a regular file only, without blocking on the way:
 * "PATH: is a FIFO (named pipe), not a regular file" (or a socket, a
 * device, a directory). Returns a descriptor (blocking, close-on-exec)
 * with *st its fstat (st may be NULL), or -1 with err naming path. */
int afile_open_input(const char *path, struct stat *st, err_msg *err);

/* afile_open_input as a stream ("rb"); fclose it. NULL with err on failure. */
FILE *afile_fopen_input(const char *path, struct stat *st, err_msg *err);

#endif
