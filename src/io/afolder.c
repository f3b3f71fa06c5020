/* afolder.c - a folder's contents replaced whole (see src/io/afolder.h).
 *
 * Why a swap of folders and not of files: each file can be replaced
 * atomically (afile.c), but a set of files cannot; a process killed between
 * two renames leaves some new files beside some old ones. Exchanging two
 * folders is one step of the file system (renameat2 with RENAME_EXCHANGE,
 * Linux 3.15; ext4, xfs, btrfs, tmpfs and others), so readers and a crash
 * see one folder or the other. Where the file system refuses it (EINVAL,
 * ENOSYS), the commit fails with that said and the folder untouched: a
 * fallback of two renames would leave a moment with no folder at all.
 *
 * The order of a commit: files written (each fsynced by afile), the kept
 * files linked, the staging folder fsynced, the exchange, the parent
 * fsynced, then the old contents removed. Everything but the exchange may
 * be cut short by a kill; what it leaves is a hidden folder of this tool's
 * name, which the next afolder_open of the folder removes. */
#define _GNU_SOURCE /* renameat2, RENAME_EXCHANGE */
#include "afolder.h"

#include "afile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAGE_SUFFIX_LEN 6 /* mkdtemp's XXXXXX */

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

/* Whether name is one of the caller's replaced names, or an afile temp
 * file of one: not kept, and removed from leftovers. */
static int is_replaced(const afolder *f, const char *name)
{
    for (const char *const *r = f->replaced; *r; r++)
        if (!strcmp(name, *r) || afile_is_temp_of(name, *r))
            return 1;
    return 0;
}

/* The prefix of this folder's staging folders: ".NAME.TAG-". */
static char *stage_prefix(const char *name, const char *tag)
{
    size_t n = strlen(name) + strlen(tag) + 4;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, ".%s.%s-", name, tag);
    return p;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b);
    return p;
}

/* A listing of the folder open as fd, from its first entry: a dup of fd
 * shares its position, which an earlier listing left at the end. NULL with
 * errno on failure. */
static DIR *list_fd(int fd)
{
    int dfd = dup(fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        errno = e;
        return NULL;
    }
    rewinddir(d);
    return d;
}

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */

/* Opens the folder at dirfd/name and takes its lock without waiting.
 * Returns the descriptor; -1 with errno EWOULDBLOCK when another process
 * holds it, or another errno. */
static int open_locked(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------------ */
/* Removing old contents and leftovers                                      */

/* Empties and removes the hidden folder parent/hidden, which holds old
 * contents (after a swap) or unfinished new ones (before it): the replaced
 * files and the links of kept ones go; a file of the user's that the
 * folder (target_fd, -1 if missing) no longer has is put back into it, so
 * nothing of theirs is lost. The folder must be locked by the caller. */
static int remove_hidden(const afolder *f, int hidden_fd, const char *hidden, err_msg *err)
{
    DIR *d = list_fd(hidden_fd);
    if (!d)
        return err_sys(err, errno, "cannot read %s/%s", f->parent, hidden);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        struct stat st;
        int in_target = f->target_fd >= 0 &&
                        fstatat(f->target_fd, n, &st, AT_SYMLINK_NOFOLLOW) == 0;
        /* Only here: the user's, saved into the folder while a process
         * replaced it. Linked back (linkat never replaces a file) before
         * this name goes; if that fails, it stays here and says so. */
        if (f->target_fd >= 0 && !in_target && !is_replaced(f, n) &&
            linkat(hidden_fd, n, f->target_fd, n, 0) != 0) {
            rc = err_sys(err, errno, "cannot put %s/%s/%s back into %s", f->parent, hidden,
                         n, f->target);
            break;
        }
        if (unlinkat(hidden_fd, n, 0) != 0 && errno != ENOENT)
            rc = err_sys(err, errno, "cannot remove %s/%s/%s", f->parent, hidden, n);
    }
    if (rc == 0 && errno != 0)
        rc = err_sys(err, errno, "cannot read %s/%s", f->parent, hidden);
    closedir(d);
    if (rc == 0 && unlinkat(f->parent_fd, hidden, AT_REMOVEDIR) != 0)
        rc = err_sys(err, errno, "cannot remove %s/%s", f->parent, hidden);
    return rc;
}

/* Removes every unlocked ".NAME.TAG-XXXXXX" folder in the parent: what a
 * killed process left. A locked one is a live process's, and stays. */
static int remove_leftovers(const afolder *f, const char *prefix, err_msg *err)
{
    DIR *d = list_fd(f->parent_fd);
    if (!d)
        return err_sys(err, errno, "cannot read %s", f->parent);
    size_t lp = strlen(prefix);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, lp) || strlen(e->d_name + lp) != STAGE_SUFFIX_LEN)
            continue;
        int fd = open_locked(f->parent_fd, e->d_name);
        if (fd < 0) {
            if (errno == EWOULDBLOCK || errno == ENOENT)
                continue;
            rc = err_sys(err, errno, "cannot remove %s/%s, left by a killed import",
                         f->parent, e->d_name);
            break;
        }
        rc = remove_hidden(f, fd, e->d_name, err);
        close(fd);
    }
    closedir(d);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */

/* mkdir -p of path's parents; each one made is added to f->made (as an
 * absolute path, so abort removes exactly those). */
static int make_parents(afolder *f, const char *path, err_msg *err)
{
    char *p = strdup(path);
    if (!p)
        return err_set(err, "out of memory");
    int rc = 0;
    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) == 0) {
            char **m = realloc(f->made, (f->n_made + 1) * sizeof *m);
            if (m)
                f->made = m;
            if (!m || !(m[f->n_made] = realpath(p, NULL)))
                rc = err_set(err, "out of memory");
            else
                f->n_made++;
        } else if (errno != EEXIST) {
            rc = err_sys(err, errno, "cannot create %s", p);
        }
        *s = '/';
    }
    free(p);
    return rc;
}

/* path's final folder as parent + name, symbolic links resolved; *exists
 * says whether it is there. */
static int resolve(afolder *f, const char *path, int *exists, err_msg *err)
{
    char *copy = strdup(path);
    if (!copy)
        return err_set(err, "out of memory");
    for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
        copy[n - 1] = '\0'; /* "out/" is "out" */
    struct stat st;
    *exists = lstat(copy, &st) == 0;
    if (!*exists && errno != ENOENT) {
        err_sys(err, errno, "cannot use %s", path);
        free(copy);
        return -1;
    }
    if (!*exists && make_parents(f, copy, err) != 0) {
        free(copy);
        return -1;
    }
    /* A new folder: its parent resolved, its own name as given. */
    char *slash = strrchr(copy, '/');
    const char *base = *exists ? NULL : slash ? slash + 1 : copy;
    if (base && (!strcmp(base, ".") || !strcmp(base, ".."))) {
        err_set(err, "cannot use %s: it ends in %s", path, base);
        free(copy);
        return -1;
    }
    if (!*exists && slash)
        *slash = '\0';
    char *real = realpath(*exists ? copy : slash ? (slash == copy ? "/" : copy) : ".", NULL);
    if (!real) {
        int e = errno;
        free(copy);
        if (e == ENOENT && *exists)
            return err_set(err, "%s is a symbolic link to a folder that does not exist",
                           path);
        return err_sys(err, e, "cannot resolve %s", path);
    }
    if (*exists && (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))) {
        free(real);
        free(copy);
        return err_set(err, "%s exists and is not a folder", path);
    }
    char *full = base ? path_join(real, base) : real;
    if (base)
        free(real);
    free(copy);
    if (!full)
        return err_set(err, "out of memory");
    f->target = full;
    char *last = strrchr(full, '/');
    if (last == full && full[1] == '\0')
        return err_set(err, "%s: the root folder cannot be replaced", path);
    f->name = strdup(last + 1);
    f->parent = last == full ? strdup("/") : strndup(full, (size_t)(last - full));
    if (!f->name || !f->parent)
        return err_set(err, "out of memory");
    return 0;
}

/* Goes over the folder's entries: a sub-folder is refused (a folder cannot
 * be hard-linked); with link, every kept entry is hard-linked into the
 * staging folder (flags 0: a symbolic link as the link, not its target). */
static int walk_kept(const afolder *f, int link, err_msg *err)
{
    DIR *d = list_fd(f->target_fd);
    if (!d)
        return err_sys(err, errno, "cannot read %s", f->target);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        struct stat st;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        if (fstatat(f->target_fd, n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
            rc = err_set(err, "%s/%s is a folder: %s is replaced whole, its files kept, but "
                         "a folder in it cannot be carried over in the same step; move it "
                         "out", f->target, n, f->target);
        else if (link && !is_replaced(f, n) && linkat(f->target_fd, n, f->stage_fd, n, 0) != 0)
            rc = err_sys(err, errno, "cannot keep %s/%s in the new contents (a hard link "
                         "into %s)", f->target, n, f->stage);
    }
    if (rc == 0 && errno != 0)
        rc = err_sys(err, errno, "cannot read %s", f->target);
    closedir(d);
    return rc;
}

/* Locks the existing folder: opened, locked, and checked to be still the
 * folder at its path (another import may have swapped it meanwhile). */
static int lock_target(afolder *f, err_msg *err)
{
    for (int tries = 0; tries < 10; tries++) {
        int fd = open_locked(f->parent_fd, f->name);
        if (fd < 0) {
            if (errno == EWOULDBLOCK)
                return err_set(err, "%s is locked by another process replacing it "
                               "(another vae import?); wait for it to end", f->target);
            return err_sys(err, errno, "cannot open %s", f->target);
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && fstatat(f->parent_fd, f->name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            f->target_fd = fd;
            return 0;
        }
        close(fd);
    }
    return err_set(err, "%s keeps changing; is another program replacing it?", f->target);
}

/* The staging folder: made (mkdtemp: mode 0700 while it is built) and
 * locked. */
static int make_stage(afolder *f, const char *prefix, err_msg *err)
{
    char *tmpl = malloc(strlen(f->parent) + strlen(prefix) + STAGE_SUFFIX_LEN + 2);
    if (!tmpl)
        return err_set(err, "out of memory");
    sprintf(tmpl, "%s/%sXXXXXX", strcmp(f->parent, "/") ? f->parent : "", prefix);
    if (!mkdtemp(tmpl)) {
        err_sys(err, errno, "cannot create a staging folder in %s (the new contents of "
                "%s are built beside it, then swapped in)", f->parent, f->target);
        free(tmpl);
        return -1;
    }
    f->stage = tmpl;
    if ((f->stage_fd = open_locked(f->parent_fd, strrchr(tmpl, '/') + 1)) < 0)
        return err_sys(err, errno, "cannot open %s", f->stage);
    return 0;
}

int afolder_open(afolder *f, const char *path, const char *tag,
                 const char *const *replaced, err_msg *err)
{
    memset(f, 0, sizeof *f);
    f->parent_fd = f->target_fd = f->stage_fd = -1;
    f->replaced = replaced;
    int exists = 0;
    char *prefix = NULL;
    if (resolve(f, path, &exists, err) != 0)
        goto fail;
    f->parent_fd = open(f->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->parent_fd < 0) {
        err_sys(err, errno, "cannot open %s", f->parent);
        goto fail;
    }
    if (exists && (lock_target(f, err) != 0 || walk_kept(f, 0, err) != 0))
        goto fail;
    if (!(prefix = stage_prefix(f->name, tag))) {
        err_set(err, "out of memory");
        goto fail;
    }
    if (remove_leftovers(f, prefix, err) != 0 || make_stage(f, prefix, err) != 0)
        goto fail;
    free(prefix);
    return 0;
fail:
    free(prefix);
    afolder_abort(f);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Committing                                                               */

static int swap_in(const afolder *f, const char *stage_name, err_msg *err)
{
    if (f->target_fd < 0) {
        /* A new folder: one rename; one that appeared meanwhile is not
         * replaced (RENAME_NOREPLACE), or not if it holds anything. */
        int r = renameat2(f->parent_fd, stage_name, f->parent_fd, f->name, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS))
            r = renameat(f->parent_fd, stage_name, f->parent_fd, f->name);
        if (r != 0)
            return err_sys(err, errno, "cannot rename %s to %s", f->stage, f->target);
        return 0;
    }
    if (renameat2(f->parent_fd, stage_name, f->parent_fd, f->name, RENAME_EXCHANGE) == 0)
        return 0;
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
        return err_sys(err, errno, "%s: its file system cannot swap two folders in one step "
                       "(renameat2 RENAME_EXCHANGE), which replacing the contents whole "
                       "needs; write to a new folder, or to a local file system (ext4, xfs, "
                       "btrfs, tmpfs)", f->target);
    return err_sys(err, errno, "cannot swap %s with %s", f->stage, f->target);
}

/* The staging folder given the folder's mode and owner, or, for a new
 * folder, what mkdir would give; last, as a read-only mode would stop the
 * writing. */
static int give_mode(const afolder *f, err_msg *err)
{
    struct stat st;
    mode_t mode;
    if (f->target_fd >= 0) {
        if (fstat(f->target_fd, &st) != 0)
            return err_sys(err, errno, "cannot read the mode of %s", f->target);
        if (fchown(f->stage_fd, st.st_uid, st.st_gid) != 0) {
            /* Not ours to give away: the folder becomes ours, as a new file is. */
        }
        mode = st.st_mode & 07777;
    } else {
        mode_t mask = umask(022);
        umask(mask);
        mode = 0777 & ~mask;
    }
    if (fchmod(f->stage_fd, mode) != 0)
        return err_sys(err, errno, "cannot set the mode of %s", f->stage);
    return 0;
}

int afolder_commit(afolder *f, err_msg *err)
{
    const char *stage_name = strrchr(f->stage, '/') + 1;
    if ((f->target_fd >= 0 && walk_kept(f, 1, err) != 0) || give_mode(f, err) != 0 ||
        (fsync(f->stage_fd) != 0 && err_sys(err, errno, "cannot sync %s", f->stage)) ||
        swap_in(f, stage_name, err) != 0) {
        afolder_abort(f);
        return -1;
    }
    /* In place: from here on the folder holds the new contents. */
    int rc = 0;
    if (fsync(f->parent_fd) != 0)
        rc = err_sys(err, errno, "cannot sync %s", f->parent);
    if (f->target_fd >= 0 && rc == 0) {
        /* stage_name is the old contents now, and target_fd locks them;
         * the folder's new contents are stage_fd's. */
        int old_fd = f->target_fd;
        f->target_fd = f->stage_fd;
        rc = remove_hidden(f, old_fd, stage_name, err);
        f->target_fd = old_fd;
        if (rc == 0 && fsync(f->parent_fd) != 0)
            rc = err_sys(err, errno, "cannot sync %s", f->parent);
    }
    /* Nothing of ours is left to remove on release. */
    for (size_t i = 0; i < f->n_made; i++)
        free(f->made[i]);
    f->n_made = 0;
    free(f->stage);
    f->stage = NULL;
    afolder_abort(f);
    return rc;
}

void afolder_abort(afolder *f)
{
    if (f->stage && f->stage_fd >= 0) {
        err_msg ignored;
        int target_fd = f->target_fd;
        f->target_fd = -1; /* nothing in it is the user's: remove it all */
        remove_hidden(f, f->stage_fd, strrchr(f->stage, '/') + 1, &ignored);
        f->target_fd = target_fd;
    } else if (f->stage) {
        rmdir(f->stage);
    }
    /* The parents made, deepest first; one that is not empty stays. */
    for (size_t i = f->n_made; i-- > 0;) {
        rmdir(f->made[i]);
        free(f->made[i]);
    }
    if (f->stage_fd >= 0)
        close(f->stage_fd);
    if (f->target_fd >= 0)
        close(f->target_fd);
    if (f->parent_fd >= 0)
        close(f->parent_fd);
    free(f->stage);
    free(f->target);
    free(f->parent);
    free(f->name);
    free(f->made);
    memset(f, 0, sizeof *f);
    f->parent_fd = f->target_fd = f->stage_fd = -1;
}
