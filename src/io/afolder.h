/* afolder.h - a folder's contents replaced whole: the new contents are
 * built in a hidden staging folder beside it, on the same file system, and
 * swapped in with one renameat2(RENAME_EXCHANGE). A process killed at any
 * moment (kill -9 included) leaves the old contents or the new ones in the
 * folder, never a mix. The user's other files in the folder are kept: they
 * are hard-linked into the new contents just before the swap.
 *
 * The staging folder is PARENT/.NAME.TAG-XXXXXX (TAG the caller's, say
 * "vae-import"); after the swap the old contents are under that name until
 * they are removed. A killed process leaves such a folder behind; the next
 * afolder_open of the same folder removes it (putting back into the folder
 * any file of the user's found only there). Each folder in use is locked
 * (flock), so a live process's folders are never taken for leftovers, and a
 * second process replacing the same folder is refused. */
#ifndef VAE_AFOLDER_H
#define VAE_AFOLDER_H

#include "err.h"

typedef struct afolder {
    char *stage;      /* the staging folder: write the new contents here */
    char *target;     /* the folder, symbolic links resolved */
    char *parent;     /* target's parent folder */
    char *name;       /* target's last component */
    char **made;      /* the parents afolder_open created, shallowest first */
    size_t n_made;
    const char *const *replaced; /* the caller's list (see afolder_open) */
    int parent_fd, target_fd, stage_fd; /* -1 when not open; target_fd is
                                           -1 for a folder that is new */
} afolder;

/* Starts replacing the folder at path: resolves symbolic links (the link
 * stays, its target's contents are replaced), creates the missing parents
 * of a new folder, locks the folder, removes what killed processes left
 * (see above), and makes the staging folder f->stage. replaced lists
 * (NULL-terminated) the names of files in the folder that the new contents
 * replace or drop; every other file is kept. A folder holding a sub-folder
 * is refused (a folder cannot be hard-linked, and moving it would not be
 * one step with the swap). Returns 0, or -1 with err. */
int afolder_open(afolder *f, const char *path, const char *tag,
                 const char *const *replaced, err_msg *err);

/* Hard-links the kept files into the staging folder, fsyncs it, swaps it
 * with the folder (or renames it into place when the folder is new), fsyncs
 * the parent, and removes the old contents. Returns 0; or -1 with err:
 * before the swap the folder is untouched and the staging folder removed
 * (a file system without RENAME_EXCHANGE is such an error); after it the
 * new contents are in place and err says what of the old was not removed.
 * Always releases f. */
int afolder_commit(afolder *f, err_msg *err);

/* Removes the staging folder and the parents afolder_open made, leaving the
 * folder untouched; releases f. Safe on a zeroed struct. */
void afolder_abort(afolder *f);

#endif
