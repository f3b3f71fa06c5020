/* import.c - a folder of images into an IDX data set (see src/io/import.h
 * and docs/import.md).
 *
 * Order of work: check the output folder (nothing is decoded to be thrown
 * away at the end), list the input (sorted, so the result does not depend
 * on readdir's order), decode every image to RGB with alpha composited,
 * bring it to one size, pick the channels, split, and only then write:
 * into a staging folder beside the output, swapped in whole at the end
 * (afolder.c), so a kill at any moment leaves the old data set or the new.
 * The decoder is picked by the file's first bytes, not its name: a PNG named
 * .jpg is read all the same. No setjmp anywhere: libpng's simplified API
 * reports in image.message, TurboJPEG in tjGetErrorStr2. */
#define _POSIX_C_SOURCE 200809L
#include "import.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <stb/stb_image_resize.h>

#include "afile.h"
#include "afolder.h"
#include "idx_write.h"
#include "rng.h"

import_opts import_defaults(void)
{
    import_opts o;
    memset(&o, 0, sizeof o);
    o.background = 255;
    o.test_fraction = 0.1;
    o.seed = 1;
    o.max_pixels = IMPORT_DEFAULT_MAX_PIXELS;
    return o;
}

/* ===================================================================== */
/* The output folder                                                      */
/* ===================================================================== */

/* Every file an import may write, grey or colour, with labels or without,
 * and the .gz twins of the IDX files, which the loader would read in place
 * of a missing raw file: what makes the folder a data set. An import
 * replaces them all; the folder's other files are kept. */
static const char *const SET_FILES[] = {
    "train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
    "t10k-images-idx3-ubyte",  "t10k-images-idx3-ubyte.gz",
    "train-images-idx4-ubyte", "train-images-idx4-ubyte.gz",
    "t10k-images-idx4-ubyte",  "t10k-images-idx4-ubyte.gz",
    "train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz",
    "t10k-labels-idx1-ubyte",  "t10k-labels-idx1-ubyte.gz",
    "labels.txt",              NULL,
};

/* The tag of the hidden folders an import builds beside OUT:
 * .OUT.vae-import-XXXXXX (afolder.h). */
#define STAGE_TAG "vae-import"

/* a "/" b (c appended when not NULL), malloc'd; NULL when out of memory. */
static char *join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = malloc(la + 1 + lb + lc + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb);
    if (c)
        memcpy(s + la + 1 + lb, c, lc);
    s[la + 1 + lb + lc] = '\0';
    return s;
}

int import_check_out(const char *out, int force, err_msg *err)
{
    struct stat st;
    if (stat(out, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return err_sys(err, errno, "cannot use %s", out);
    }
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "%s exists and is not a folder", out);
    if (force)
        return 0;
    for (const char *const *name = SET_FILES; *name; name++) {
        char *p = join(out, *name, NULL);
        if (!p)
            return err_set(err, "out of memory");
        int e = lstat(p, &st) == 0;
        free(p);
        if (e)
            return err_set(err, "%s/%s exists: give --force to replace the data set in %s, "
                           "or choose another folder", out, *name, out);
    }
    return 0;
}

/* ===================================================================== */
/* Listing the input                                                      */
/* ===================================================================== */

typedef struct found {
    char *path; /* as opened: DIR/class/.../name */
    int label;  /* class index, 0 for a flat folder */
} found;

typedef struct listing {
    found *f;
    size_t n, cap;
    char **classes; /* folder names, label order */
    size_t n_classes;
    size_t n_other;
    char first_other[IMPORT_NAME_LEN];
} listing;

static void listing_free(listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->f[i].path);
    free(l->f);
    for (size_t i = 0; i < l->n_classes; i++)
        free(l->classes[i]);
    free(l->classes);
    memset(l, 0, sizeof *l);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

/* A folder, following symbolic links; a dangling link is a file. */
static int is_folder(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The entries of folder but "." and those starting with '.', sorted
 * bytewise. Returns 0, or -1 with err. */
static int list_folder(const char *folder, char ***names, size_t *n, err_msg *err)
{
    DIR *d = opendir(folder);
    if (!d)
        return err_sys(err, errno, "cannot read the folder %s", folder);
    char **v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (len == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv)
                goto oom;
            v = nv;
        }
        if (!(v[len] = strdup(e->d_name)))
            goto oom;
        len++;
        errno = 0;
    }
    if (errno != 0) {
        err_sys(err, errno, "cannot read the folder %s", folder);
        closedir(d);
        free_names(v, len);
        return -1;
    }
    closedir(d);
    if (len)
        qsort(v, len, sizeof *v, by_name);
    *names = v;
    *n = len;
    return 0;
oom:
    closedir(d);
    free_names(v, len);
    return err_set(err, "out of memory listing %s", folder);
}

/* Takes path (malloc'd) as an image of label. */
static int add_image(listing *l, char *path, int label, err_msg *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        found *nf = realloc(l->f, cap * sizeof *nf);
        if (!nf) {
            free(path);
            return err_set(err, "out of memory listing the images");
        }
        l->f = nf;
        l->cap = cap;
    }
    l->f[l->n].path = path;
    l->f[l->n].label = label;
    l->n++;
    return 0;
}

static void note_other(listing *l, const char *path)
{
    if (l->n_other++ == 0)
        snprintf(l->first_other, sizeof l->first_other, "%s", path);
}

/* Every image below folder, depth folders down, as label. */
static int walk(listing *l, const char *folder, int label, int depth, err_msg *err)
{
    char **names;
    size_t n;
    if (list_folder(folder, &names, &n, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = join(folder, names[i], NULL);
        if (!p) {
            rc = err_set(err, "out of memory listing %s", folder);
        } else if (is_folder(p)) {
            if (depth >= IMPORT_MAX_DEPTH)
                rc = err_set(err, "%s: more than %d folders deep below its class folder "
                             "(a symbolic link loop?)", p, IMPORT_MAX_DEPTH);
            else
                rc = walk(l, p, label, depth + 1, err);
            free(p);
        } else if (is_image_name(names[i])) {
            rc = add_image(l, p, label, err);
        } else {
            note_other(l, p);
            free(p);
        }
    }
    free_names(names, n);
    return rc;
}

/* Lists dir: class folders, or a flat folder of images. */
static int list_input(listing *l, const char *dir, err_msg *err)
{
    memset(l, 0, sizeof *l);
    struct stat st;
    if (stat(dir, &st) != 0)
        return err_sys(err, errno, "cannot read %s", dir);
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "%s is not a folder", dir);
    char **names;
    size_t n;
    if (list_folder(dir, &names, &n, err) != 0)
        return -1;
    int rc = 0;
    size_t n_dirs = 0;
    char *first_image = NULL;
    uint8_t *folder = calloc(n ? n : 1, 1);
    if (!folder) {
        free_names(names, n);
        return err_set(err, "out of memory listing %s", dir);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = join(dir, names[i], NULL);
        if (!p) {
            rc = err_set(err, "out of memory listing %s", dir);
            break;
        }
        folder[i] = (uint8_t)is_folder(p);
        n_dirs += folder[i];
        if (!folder[i] && !first_image && is_image_name(names[i]))
            first_image = p;
        else
            free(p);
    }
    if (rc == 0 && n_dirs > 0 && first_image)
        rc = err_set(err, "%s: an image beside class folders; put it in one of them (or "
                     "import a folder of images only, for a data set without labels)",
                     first_image);
    if (rc == 0 && n_dirs > IMPORT_MAX_CLASSES)
        rc = err_set(err, "%s has %zu class folders; at most %d classes fit (one byte "
                     "a label)", dir, n_dirs, IMPORT_MAX_CLASSES);
    free(first_image);
    if (rc == 0 && n_dirs > 0 && !(l->classes = calloc(n_dirs, sizeof *l->classes)))
        rc = err_set(err, "out of memory listing %s", dir);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = join(dir, names[i], NULL);
        if (!p) {
            rc = err_set(err, "out of memory listing %s", dir);
        } else if (folder[i]) {
            /* labels.txt has one name a line. */
            if (strchr(names[i], '\n'))
                rc = err_set(err, "%s: a class folder whose name holds a line break", p);
            else if (!(l->classes[l->n_classes] = strdup(names[i])))
                rc = err_set(err, "out of memory listing %s", dir);
            else
                rc = walk(l, p, (int)l->n_classes++, 0, err);
            free(p);
        } else if (is_image_name(names[i])) {
            rc = add_image(l, p, 0, err);
        } else {
            note_other(l, p);
            free(p);
        }
    }
    free(folder);
    free_names(names, n);
    if (rc == 0 && l->n == 0)
        rc = err_set(err, "%s: no images (files ending in .png, .jpg or .jpeg)%s%s%s", dir,
                     l->n_other ? "; skipped " : "", l->n_other ? l->first_other : "",
                     l->n_other > 1 ? " and others" : "");
    if (rc != 0)
        listing_free(l);
    return rc;
}

/* ===================================================================== */
/* Decoding                                                               */
/* ===================================================================== */

/* The whole file, malloc'd; a FIFO or other non-regular file is refused. */
static int read_whole(const char *path, uint8_t **buf, size_t *len, err_msg *err)
{
    struct stat st;
    FILE *fp = afile_fopen_input(path, &st, err);
    if (!fp)
        return -1;
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fclose(fp);
        return err_set(err, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = fread(b, 1, n, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || got != n) {
        free(b);
        return err_set(err, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Alpha a of colour c over the grey level bg, in stored (sRGB) values:
 * round((c a + bg (255 - a)) / 255). */
static uint8_t over(unsigned c, unsigned a, unsigned bg)
{
    return (uint8_t)((c * a + bg * (255u - a) + 127u) / 255u);
}

/* The pixel limit, checked on the declared size before any pixel is
 * decoded: a file of a few hundred KB can declare 20000 x 20000. */
static int check_pixels(const char *name, uint64_t w, uint64_t h, uint64_t max_pixels,
                        err_msg *err)
{
    if (w == 0 || h == 0)
        return err_set(err, "%s: an image of %llux%llu pixels", name, (unsigned long long)w,
                       (unsigned long long)h);
    /* w and h are below 2^32 (PNG) or 2^16 (JPEG): w * h cannot overflow. */
    if (w * h > max_pixels)
        return err_set(err, "%s: %llux%llu pixels, above the limit of %llu (--max-pixels N "
                       "raises it)", name, (unsigned long long)w, (unsigned long long)h,
                       (unsigned long long)max_pixels);
    return 0;
}

/* libpng, any PNG (grey, palette, 16-bit, tRNS) read as 8-bit RGBA, then
 * composited into *rgb (w x h x 3, malloc'd). 16-bit samples are taken
 * as encoded values (v / 257), as 8-bit ones are, not as linear light;
 * libpng still converts a file whose gAMA chunk says another encoding to
 * sRGB's. */
static int decode_png(const char *name, const uint8_t *data, size_t len, uint8_t bg,
                      uint64_t max_pixels, uint8_t **rgb, size_t *w, size_t *h,
                      err_msg *err)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    /* Reads the chunks before the pixels only: the size is known here. */
    if (!png_image_begin_read_from_memory(&im, data, len)) {
        err_set(err, "%s: %s", name, im.message);
        png_image_free(&im);
        return -1;
    }
    if (check_pixels(name, im.width, im.height, max_pixels, err) != 0) {
        png_image_free(&im);
        return -1;
    }
    im.format = PNG_FORMAT_RGBA;
    im.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    size_t npx, nbytes;
    if (err_mul_size(im.width, im.height, &npx) != 0 || err_mul_size(npx, 4, &nbytes) != 0 ||
        (size_t)im.width * 4 > (size_t)INT32_MAX) {
        png_image_free(&im);
        return err_set(err, "%s: an image of %ux%u is too large", name, im.width, im.height);
    }
    uint8_t *px = malloc(nbytes);
    if (!px) {
        png_image_free(&im);
        return err_set(err, "%s: out of memory for %ux%u", name, im.width, im.height);
    }
    if (!png_image_finish_read(&im, NULL, px, 0, NULL)) {
        err_set(err, "%s: %s", name, im.message);
        png_image_free(&im);
        free(px);
        return -1;
    }
    /* In place: pixel i's 3 bytes land at or before where its 4 were read. */
    for (size_t i = 0; i < npx; i++) {
        unsigned r = px[4 * i], g = px[4 * i + 1], b = px[4 * i + 2], a = px[4 * i + 3];
        px[3 * i] = over(r, a, bg);
        px[3 * i + 1] = over(g, a, bg);
        px[3 * i + 2] = over(b, a, bg);
    }
    *rgb = px;
    *w = im.width;
    *h = im.height;
    png_image_free(&im);
    return 0;
}

/* TurboJPEG, any JPEG it reads (grey or colour, any subsampling) as RGB,
 * with a handle of its own: a handle that failed on one file can fail the
 * next, so none is shared. A warning (a truncated or damaged file) stops
 * the decoding and fails: the pixels it would leave are not the image's;
 * so does a progressive file of more than 500 scans (TJFLAG_LIMITSCANS),
 * which can take minutes for a few KB. */
static int decode_jpeg(const char *name, const uint8_t *data, size_t len,
                       uint64_t max_pixels, uint8_t **rgb, size_t *w, size_t *h,
                       err_msg *err)
{
    if (len > ULONG_MAX)
        return err_set(err, "%s: %zu bytes, too large a JPEG", name, len);
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return err_set(err, "%s: TurboJPEG: %s", name, tjGetErrorStr2(NULL));
    const int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
    int width = 0, height = 0, subsamp = -1, colorspace = -1, rc = -1;
    uint8_t *px = NULL;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &width, &height, &subsamp,
                            &colorspace) != 0) {
        err_set(err, "%s: %s", name, tjGetErrorStr2(tj));
        goto done;
    }
    if (width <= 0 || height <= 0) {
        err_set(err, "%s: a JPEG header of %dx%d pixels (cut short or damaged)", name, width,
                height);
        goto done;
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        err_set(err, "%s: a CMYK JPEG, which vae import does not read (save it as RGB or "
                "grey)", name);
        goto done;
    }
    if (check_pixels(name, (uint64_t)width, (uint64_t)height, max_pixels, err) != 0)
        goto done;
    size_t nbytes;
    if (err_mul_size((size_t)width * 3, (size_t)height, &nbytes) != 0) {
        err_set(err, "%s: a JPEG of %dx%d is too large", name, width, height);
        goto done;
    }
    if (!(px = malloc(nbytes))) {
        err_set(err, "%s: out of memory for %dx%d", name, width, height);
        goto done;
    }
    if (tjDecompress2(tj, data, (unsigned long)len, px, width, 0, height, TJPF_RGB,
                      flags) != 0) {
        err_set(err, "%s: %s", name, tjGetErrorStr2(tj));
        goto done;
    }
    *rgb = px;
    px = NULL;
    *w = (size_t)width;
    *h = (size_t)height;
    rc = 0;
done:
    free(px);
    tjDestroy(tj);
    return rc;
}

int import_decode_memory(const uint8_t *data, size_t len, const char *name, uint8_t bg,
                         uint64_t max_pixels, uint8_t **rgb, size_t *w, size_t *h,
                         err_msg *err)
{
    if (len >= 8 && png_sig_cmp(data, 0, 8) == 0)
        return decode_png(name, data, len, bg, max_pixels, rgb, w, h, err);
    if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(name, data, len, max_pixels, rgb, w, h, err);
    return err_set(err, "%s: neither a PNG nor a JPEG file (%zu bytes)", name, len);
}

/* One image file as RGB (malloc'd). */
static int decode_file(const char *path, const import_opts *o, uint8_t **rgb, size_t *w,
                       size_t *h, err_msg *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (read_whole(path, &data, &len, err) != 0)
        return -1;
    int rc = import_decode_memory(data, len, path, o->background, o->max_pixels, rgb, w, h,
                                  err);
    free(data);
    return rc;
}

/* ===================================================================== */
/* The split                                                              */
/* ===================================================================== */

int import_split(const uint8_t *labels, size_t n, size_t n_classes, double f,
                 uint64_t seed, uint8_t *is_test, size_t *n_test, err_msg *err)
{
    if (n > UINT32_MAX)
        return err_set(err, "%zu images; the split takes at most %lu", n,
                       (unsigned long)UINT32_MAX);
    if (!labels || n_classes == 0)
        n_classes = 1;
    uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return err_set(err, "out of memory for the split of %zu images", n);
    rng_state r;
    rng_seed(&r, seed);
    memset(is_test, 0, n);
    size_t total = 0;
    /* Class by class in label order, each from the same stream. */
    for (size_t c = 0; c < n_classes; c++) {
        size_t nc = 0;
        for (size_t i = 0; i < n; i++)
            if (!labels || labels[i] == c)
                idx[nc++] = (uint32_t)i;
        if (nc == 0)
            continue;
        /* Round half up; a class keeps one training image at least. */
        size_t t = (size_t)floor(f * (double)nc + 0.5);
        if (t > nc - 1)
            t = nc - 1;
        rng_shuffle(&r, idx, nc);
        for (size_t k = 0; k < t; k++)
            is_test[idx[k]] = 1;
        total += t;
    }
    free(idx);
    *n_test = total;
    return 0;
}

/* ===================================================================== */
/* The import                                                             */
/* ===================================================================== */

/* BT.601 luma in stored values, as PIL's convert("L"): round(0.299 R +
 * 0.587 G + 0.114 B); R = G = B = v gives v. */
static uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
}

static int write_labels_txt(const char *path, char *const *classes, size_t n,
                            err_msg *err)
{
    afile f;
    if (afile_open(&f, path, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        fprintf(f.fp, "%s\n", classes[i]);
    return afile_commit(&f, err);
}

/* The images of one split, in order[0..n): pixels and labels gathered. */
typedef struct split_out {
    const char *name; /* "train" or "t10k" */
    uint32_t *order;
    size_t n;
} split_out;

static int write_split(const char *out, const split_out *sp, const uint8_t *px,
                       const uint8_t *labels, size_t img_bytes, const import_summary *s,
                       err_msg *err)
{
    uint8_t *buf = malloc(sp->n * img_bytes), *lab = malloc(sp->n);
    char name[64];
    int rc = 0;
    if (!buf || !lab) {
        rc = err_set(err, "out of memory for the %s split", sp->name);
        goto done;
    }
    for (size_t k = 0; k < sp->n; k++) {
        memcpy(buf + k * img_bytes, px + (size_t)sp->order[k] * img_bytes, img_bytes);
        lab[k] = labels[sp->order[k]];
    }
    snprintf(name, sizeof name, "%s-images-idx%d-ubyte", sp->name, s->channels == 1 ? 3 : 4);
    char *p = join(out, name, NULL);
    if (!p) {
        rc = err_set(err, "out of memory");
        goto done;
    }
    rc = idx_write_images(p, buf, sp->n, s->height, s->width, s->channels, err);
    free(p);
    if (rc == 0 && s->n_classes > 0) {
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte", sp->name);
        if (!(p = join(out, name, NULL))) {
            rc = err_set(err, "out of memory");
            goto done;
        }
        rc = idx_write_labels(p, lab, sp->n, err);
        free(p);
    }
done:
    free(buf);
    free(lab);
    return rc;
}

int import_run(const char *dir, const char *out, const import_opts *o,
               import_summary *s, err_msg *err)
{
    memset(s, 0, sizeof *s);
    if (!(o->test_fraction > 0.0 && o->test_fraction < 1.0))
        return err_set(err, "the test fraction must be above 0 and below 1, not %g",
                       o->test_fraction);
    if (o->channels != 0 && o->channels != 1 && o->channels != 3)
        return err_set(err, "channels must be auto (0), 1 or 3, not %d", o->channels);
    if ((o->width == 0) != (o->height == 0) || o->width > IMPORT_MAX_SIDE ||
        o->height > IMPORT_MAX_SIDE)
        return err_set(err, "a size of %zux%zu: width and height go from 1 to %d",
                       o->width, o->height, IMPORT_MAX_SIDE);
    if (o->max_pixels == 0)
        return err_set(err, "the pixel limit must be at least 1");
    if (import_check_out(out, o->force, err) != 0)
        return -1;
    /* The new data set is built in a staging folder beside out and swapped
     * in whole at the end; nothing in out changes before. */
    afolder af;
    if (afolder_open(&af, out, STAGE_TAG, SET_FILES, err) != 0)
        return -1;

    listing l;
    if (list_input(&l, dir, err) != 0) {
        afolder_abort(&af);
        return -1;
    }
    s->n_classes = l.n_classes;
    s->n_other = l.n_other;
    snprintf(s->first_other, sizeof s->first_other, "%s", l.first_other);

    int rc = -1;
    uint8_t *px = NULL, *labels = NULL, *is_test = NULL;
    uint32_t *order = NULL;
    size_t *per_class = NULL;
    const char *ref = NULL; /* the first image: the others' size must be its */
    size_t ref_w = 0, ref_h = 0, W = o->width, H = o->height, img_rgb = 0, n = 0;
    int all_grey = 1;
    labels = malloc(l.n);
    per_class = calloc(l.n_classes ? l.n_classes : 1, sizeof *per_class);
    if (!labels || !per_class) {
        err_set(err, "out of memory for %zu images", l.n);
        goto done;
    }

    for (size_t i = 0; i < l.n; i++) {
        const char *path = l.f[i].path;
        uint8_t *rgb = NULL;
        size_t w = 0, h = 0;
        if (decode_file(path, o, &rgb, &w, &h, err) != 0) {
            if (!o->skip_broken)
                goto done;
            if (s->n_broken++ == 0)
                snprintf(s->first_broken, sizeof s->first_broken, "%s", path);
            if (o->warn)
                o->warn(o->warn_ctx, err->text);
            continue;
        }
        if (!ref) {
            ref = path, ref_w = w, ref_h = h;
            if (W == 0)
                W = w, H = h;
            /* Room for every image listed: at most l.n of them. */
            size_t all;
            if (err_mul_size(W * H, 3, &img_rgb) != 0 || err_mul_size(img_rgb, l.n, &all) != 0 ||
                !(px = malloc(all))) {
                free(rgb);
                err_set(err, "out of memory for %zu images of %zux%zu", l.n, W, H);
                goto done;
            }
        }
        uint8_t *dst = px + n * img_rgb;
        if (w == W && h == H) {
            memcpy(dst, rgb, img_rgb);
        } else if (o->width == 0) {
            free(rgb);
            err_set(err, "%s is %zux%zu but %s is %zux%zu; give --size WxH to resize "
                    "them all", ref, ref_w, ref_h, path, w, h);
            goto done;
        } else if (!stbir_resize_uint8(rgb, (int)w, (int)h, 0, dst, (int)W, (int)H, 0, 3)) {
            free(rgb);
            err_set(err, "%s: resizing %zux%zu to %zux%zu failed (out of memory)", path, w,
                    h, W, H);
            goto done;
        }
        free(rgb);
        for (size_t k = 0; k < W * H && all_grey; k++)
            all_grey = dst[3 * k] == dst[3 * k + 1] && dst[3 * k] == dst[3 * k + 2];
        labels[n] = (uint8_t)l.f[i].label;
        per_class[l.f[i].label]++;
        n++;
    }
    if (n == 0) {
        err_set(err, "%s: none of its %zu images could be read (the first: %s)", dir, l.n,
                s->first_broken);
        goto done;
    }
    for (size_t c = 0; c < l.n_classes; c++)
        if (per_class[c] == 0) {
            err_set(err, "%s/%s: a class folder without %simages", dir, l.classes[c],
                    s->n_broken ? "readable " : "");
            goto done;
        }

    /* Channels: grey bytes are any channel (auto, all grey) or the luma. */
    size_t C = o->channels ? (size_t)o->channels : all_grey ? 1 : 3;
    if (C == 1)
        for (size_t k = 0; k < n * W * H; k++)
            px[k] = all_grey ? px[3 * k] : luma(px + 3 * k);
    s->n_images = n;
    s->width = W, s->height = H, s->channels = C;

    size_t n_test;
    if (!(is_test = malloc(n)) || !(order = malloc(n * sizeof *order))) {
        err_set(err, "out of memory for the split of %zu images", n);
        goto done;
    }
    if (import_split(l.n_classes ? labels : NULL, n, l.n_classes, o->test_fraction, o->seed,
                     is_test, &n_test, err) != 0)
        goto done;
    if (n_test == 0) {
        /* Each class keeps an image for training: a class of one gives none. */
        size_t largest = l.n_classes ? 0 : n;
        for (size_t c = 0; c < l.n_classes; c++) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                k += labels[i] == c;
            largest = k > largest ? k : largest;
        }
        if (largest < 2)
            err_set(err, "no test images: every class has one image (%zu images), which "
                    "stays for training; give classes of two images or more", n);
        else
            err_set(err, "no test images: a test fraction of %g rounds to 0 in every class "
                    "(%zu images); give a larger --test-fraction", o->test_fraction, n);
        goto done;
    }
    s->n_test = n_test;
    s->n_train = n - n_test;
    /* Each split in a seeded order, so its first images are of mixed
     * classes (vae reconstruct shows the first test images). */
    split_out sp[2] = {{"train", order, s->n_train}, {"t10k", order + s->n_train, n_test}};
    size_t kt = 0, ke = 0;
    for (size_t i = 0; i < n; i++)
        order[is_test[i] ? s->n_train + ke++ : kt++] = (uint32_t)i;
    rng_state r;
    rng_seed(&r, rng_mix(o->seed, 1));
    rng_shuffle(&r, sp[0].order, sp[0].n);
    rng_shuffle(&r, sp[1].order, sp[1].n);

    for (int k = 0; k < 2; k++)
        if (write_split(af.stage, &sp[k], px, labels, W * H * C, s, err) != 0)
            goto done;
    if (l.n_classes > 0) {
        char *p = join(af.stage, "labels.txt", NULL);
        if (!p) {
            err_set(err, "out of memory");
            goto done;
        }
        int bad = write_labels_txt(p, l.classes, l.n_classes, err);
        free(p);
        if (bad)
            goto done;
    }
    rc = afolder_commit(&af, err);
done:
    if (rc != 0)
        afolder_abort(&af);
    free(px);
    free(labels);
    free(per_class);
    free(is_test);
    free(order);
    listing_free(&l);
    return rc;
}
