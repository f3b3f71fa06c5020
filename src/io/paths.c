/* paths.c - no output over an input or over another output (see
 * src/io/paths.h).
 *
 * Two names are one file when stat() finds the same device and inode (hard
 * and symbolic links, any spelling of an existing file), or when their
 * canonical names agree: realpath() of the file, or for a file not yet
 * there, realpath() of its folder plus its base name (two outputs that do
 * not exist yet). */
#define _DEFAULT_SOURCE
#include "paths.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a name refers to. */
typedef struct ident {
    int exists;          /* stat() found it */
    int special;         /* it exists and is not a regular file */
    mode_t type;         /* S_IFMT bits of an existing file */
    dev_t dev;
    ino_t ino;
    char name[2 * PATH_MAX]; /* canonical name */
} ident;

/* folder (as written) and base of path; base points into path. */
static const char *split_path(const char *path, char *folder, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(folder, len, ".");
        return path;
    }
    if (slash == path)
        snprintf(folder, len, "/");
    else
        snprintf(folder, len, "%.*s", (int)(slash - path), path);
    return slash + 1;
}

int paths_check_folder(const char *what, const char *path, err_msg *err)
{
    char folder[PATH_MAX];
    split_path(path, folder, sizeof folder);
    struct stat st;
    if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(err, "%s %s: folder %s does not exist", what, path, folder);
    if (access(folder, W_OK | X_OK) != 0)
        return err_sys(err, errno, "%s %s: cannot write in folder %s", what, path, folder);
    return 0;
}

/* The canonical name of a folder: realpath(), or the name as given when it
 * does not resolve (then nothing can be written there anyway). */
static void canon_folder(const char *folder, char *out)
{
    if (!realpath(folder, out))
        snprintf(out, PATH_MAX, "%s", folder);
}

static void identify(const char *path, ident *id)
{
    memset(id, 0, sizeof *id);
    struct stat st;
    if (stat(path, &st) == 0) {
        id->exists = 1;
        id->special = !S_ISREG(st.st_mode);
        id->type = st.st_mode & S_IFMT;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
    }
    /* A name that reaches no file yet: where a write would land, through
     * a dangling link too. */
    if (realpath(path, id->name) || paths_resolve(path, id->name, sizeof id->name) == 0)
        return;
    char folder[PATH_MAX], canon[PATH_MAX];
    const char *base = split_path(path, folder, sizeof folder);
    canon_folder(folder, canon);
    snprintf(id->name, sizeof id->name, "%s/%s", strcmp(canon, "/") ? canon : "", base);
}

static int same_file(const ident *a, const ident *b)
{
    if (a->exists && b->exists && a->dev == b->dev && a->ino == b->ino)
        return 1;
    return strcmp(a->name, b->name) == 0;
}

/* Whether base is PREFIX N SUFFIX with N in the series' range. */
static int in_series(const paths_entry *s, const char *base)
{
    size_t lp = strlen(s->prefix), ls = strlen(s->suffix), lb = strlen(base);
    if (lb <= lp + ls || strncmp(base, s->prefix, lp) != 0 ||
        strcmp(base + lb - ls, s->suffix) != 0)
        return 0;
    size_t n = 0;
    for (const char *p = base + lp; p < base + lb - ls; p++) {
        if (*p < '0' || *p > '9' || n > ((size_t)-1 - 9) / 10)
            return 0;
        n = n * 10 + (size_t)(*p - '0');
    }
    /* "sampled-03.png" is not a name the series writes. */
    if (base[lp] == '0' && lb - ls - lp > 1)
        return 0;
    return n >= s->lo && n <= s->hi;
}

/* The member of series s that is file f, if any, into base (2 * PATH_MAX). */
static int series_hit(const paths_entry *s, const ident *f, char *base)
{
    char canon[PATH_MAX], folder[PATH_MAX];
    canon_folder(s->path, canon);
    const char *fb = split_path(f->name, folder, sizeof folder);
    if (!strcmp(folder, canon) && in_series(s, fb)) {
        snprintf(base, 2 * PATH_MAX, "%s", fb);
        return 1;
    }
    if (!f->exists)
        return 0;
    /* An existing member may be a hard link to f. */
    DIR *d = opendir(s->path);
    if (!d)
        return 0;
    int hit = 0;
    struct dirent *e;
    while (!hit && (e = readdir(d)) != NULL) {
        if (!in_series(s, e->d_name))
            continue;
        char member[PATH_MAX + NAME_MAX + 2];
        snprintf(member, sizeof member, "%s/%s", s->path, e->d_name);
        struct stat st;
        if (stat(member, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino) {
            snprintf(base, 2 * PATH_MAX, "%s", e->d_name);
            hit = 1;
        }
    }
    closedir(d);
    return hit;
}

/* The message for entries a and b (shown as a_name, b_name), one file. */
static int clash(const paths_entry *a, const char *a_name, const paths_entry *b,
                 const char *b_name, err_msg *err)
{
    if (a->mode == PATHS_READ) { /* the writer first */
        const paths_entry *t = a;
        a = b, b = t;
        const char *tn = a_name;
        a_name = b_name, b_name = tn;
    }
    if (b->mode == PATHS_READ)
        return err_set(err, "%s %s would write over %s %s, which this command reads "
                       "(they are the same file); give %s another path", a->what,
                       a_name, b->what, b_name, a->what);
    return err_set(err, "%s %s and %s %s are the same file, which this command "
                   "would write twice; give one of them another path", a->what,
                   a_name, b->what, b_name);
}

/* ------------------------------------------------------------------------ */
/* What may be written: a regular file or a device (/dev/null), written in
 * place. A FIFO would stall the command until some process reads it (and
 * a stalled write cannot save a run that is asked to stop); a socket or a
 * folder cannot be written at all. */

static const char *unwritable(mode_t type)
{
    switch (type) {
    case S_IFIFO: return "a FIFO (named pipe), which would stall vae until some "
                         "process reads it";
    case S_IFSOCK: return "a socket, which vae cannot write";
    case S_IFDIR: return "a folder";
    default: return NULL;
    }
}

/* A descriptor the command was given (/dev/stdout, /dev/fd/N): a pipe
 * there has its reader already, as "vae sample -o /dev/stdout | less". */
static int inherited(const char *path)
{
    return !strncmp(path, "/dev/std", 8) || !strncmp(path, "/dev/fd/", 8) ||
           !strncmp(path, "/proc/self/fd/", 14);
}

/* Folders of the system's, where a device written in place may be but no
 * file of ours belongs: a file beside /dev/full would be /dev/full.csv.
 * /dev/shm is a folder of files like any other. */
static const char *system_folder(const char *canon)
{
    static const char *const roots[] = {"/dev", "/proc", "/sys"};
    if (!strcmp(canon, "/dev/shm") || !strncmp(canon, "/dev/shm/", 9))
        return NULL;
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
        size_t n = strlen(roots[i]);
        if (!strncmp(canon, roots[i], n) && (canon[n] == '\0' || canon[n] == '/'))
            return roots[i];
    }
    return NULL;
}

/* Why a PATHS_PAIRED file cannot have a file beside it, into why (size
 * bytes), or NULL (a FIFO, a socket or a folder is unwritable's to say).
 * The name as given counts: a device by that name has no "beside", while a
 * link to one in a folder of files is written through, its pair beside the
 * link. */
static const char *unpairable(const char *path, char *why, size_t size)
{
    char folder[PATH_MAX], canon[PATH_MAX];
    const char *base = split_path(path, folder, sizeof folder);
    struct stat st;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return "not a file name";
    if (lstat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
        return "a device";
    canon_folder(folder, canon);
    const char *root = system_folder(folder);
    if (!root && !(root = system_folder(canon)))
        return NULL;
    snprintf(why, size, "in %s", root);
    return why;
}

static int check_writable(const paths_entry *e, const ident *id, err_msg *err)
{
    char in[16];
    const char *why = e->mode == PATHS_PAIRED ? unpairable(e->path, in, sizeof in) : NULL;
    if (why)
        return err_set(err, "%s %s is %s, and this command writes a second file beside "
                       "it; give the name of a regular file", e->what, e->path, why);
    if (id->type == S_IFIFO && inherited(e->path))
        return 0;
    why = unwritable(id->type);
    if (!why || (e->mode == PATHS_UPDATE && id->type == S_IFDIR))
        return 0; /* a folder to update: its reader says it is no checkpoint */
    return err_set(err, "%s %s is %s; give the name of a file to write", e->what,
                   e->path, why);
}

/* A series' folder must be a folder (or not exist yet), and no member of it
 * that exists may be unwritable. */
static int check_series(const paths_entry *s, err_msg *err)
{
    struct stat st;
    if (stat(s->path, &st) != 0)
        return 0; /* made when the command writes */
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "%s %s is not a folder; give a folder (made if missing)",
                       s->what, s->path);
    DIR *d = opendir(s->path);
    if (!d)
        return 0; /* unreadable: writing there will say why */
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!in_series(s, e->d_name))
            continue;
        char member[PATH_MAX + NAME_MAX + 2];
        snprintf(member, sizeof member, "%s/%s", s->path, e->d_name);
        const char *why = stat(member, &st) == 0 ? unwritable(st.st_mode & S_IFMT) : NULL;
        if (why)
            rc = err_set(err, "%s: %s, which this command writes, is %s; move it away",
                         s->what, member, why);
    }
    closedir(d);
    return rc;
}

/* ------------------------------------------------------------------------ */

int paths_resolve(const char *path, char *out, size_t size)
{
    char cur[PATH_MAX];
    if ((size_t)snprintf(cur, sizeof cur, "%s", path) >= sizeof cur) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* Follow the last name's links, dangling ones too (a write creates
     * their target); the kernel's limit of 40 hops. */
    struct stat st;
    int hops = 0;
    while (lstat(cur, &st) == 0 && S_ISLNK(st.st_mode)) {
        char target[PATH_MAX], folder[PATH_MAX];
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n < 0)
            return -1;
        if (++hops > 40) {
            errno = ELOOP;
            return -1;
        }
        target[n] = '\0';
        split_path(cur, folder, sizeof folder);
        int len = target[0] == '/' ? snprintf(cur, sizeof cur, "%s", target)
                                   : snprintf(cur, sizeof cur, "%s/%s", folder, target);
        if (len < 0 || (size_t)len >= sizeof cur) {
            errno = ENAMETOOLONG;
            return -1;
        }
    }
    /* The folder by its canonical name, so every spelling gives one name. */
    char folder[PATH_MAX], canon[PATH_MAX];
    const char *base = split_path(cur, folder, sizeof folder);
    canon_folder(folder, canon);
    int len = snprintf(out, size, "%s/%s", strcmp(canon, "/") ? canon : "", base);
    if (len < 0 || (size_t)len >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

void paths_add(paths_list *l, const char *what, const char *path, paths_mode mode)
{
    if (!path || l->n == PATHS_MAX)
        return;
    paths_entry e = {what, path, mode, NULL, NULL, 0, 0};
    l->e[l->n++] = e;
}

void paths_add_series(paths_list *l, const char *what, const char *folder,
                      const char *prefix, const char *suffix, size_t lo, size_t hi)
{
    if (!folder || l->n == PATHS_MAX)
        return;
    paths_entry e = {what, folder, PATHS_WRITE, prefix, suffix, lo, hi};
    l->e[l->n++] = e;
}

int paths_check(const paths_list *l, err_msg *err)
{
    /* A handful of entries: identify each once, compare every pair. */
    ident *id = malloc(PATHS_MAX * sizeof *id);
    if (!id)
        return err_set(err, "out of memory");
    for (size_t i = 0; i < l->n; i++)
        if (!l->e[i].prefix)
            identify(l->e[i].path, &id[i]);
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++)
        if (l->e[i].mode != PATHS_READ)
            rc = l->e[i].prefix ? check_series(&l->e[i], err)
                                : check_writable(&l->e[i], &id[i], err);
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        for (size_t j = i + 1; j < l->n && rc == 0; j++) {
            const paths_entry *a = &l->e[i], *b = &l->e[j];
            if (a->mode == PATHS_READ && b->mode == PATHS_READ)
                continue;
            if (a->prefix && b->prefix)
                continue; /* series differ by their prefixes */
            if (a->prefix || b->prefix) {
                const paths_entry *s = a->prefix ? a : b, *f = a->prefix ? b : a;
                const ident *fi = &id[a->prefix ? j : i];
                char base[2 * PATH_MAX], member[4 * PATH_MAX];
                if (fi->special || !series_hit(s, fi, base))
                    continue;
                snprintf(member, sizeof member, "%s/%s", s->path, base);
                rc = clash(s, member, f, f->path, err);
                continue;
            }
            if (id[i].special || id[j].special || !same_file(&id[i], &id[j]))
                continue;
            rc = clash(a, a->path, b, b->path, err);
        }
    }
    free(id);
    return rc;
}
