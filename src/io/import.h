/* import.h - a folder of PNG and JPEG images into an IDX data set that
 * the other commands read (vae import; docs/import.md).
 *
 * DIR holds either one sub-folder per class (label i is the i-th folder name
 * in bytewise strcmp order; images anywhere below it) or only image files
 * (no labels). Names starting with '.' are ignored. Files ending in .png,
 * .jpg or .jpeg (any case) are images; other files are skipped and counted.
 * Alpha is composited over a grey background; the images become grey or RGB
 * bytes of one size; a seeded stratified split makes the training and test
 * files. The library never prints and never exits. */
#ifndef VAE_IMPORT_H
#define VAE_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define IMPORT_MAX_CLASSES (UINT8_MAX + 1) /* one byte a label */
#define IMPORT_MAX_DEPTH 32    /* folders below a class folder */
#define IMPORT_MAX_SIDE 65535  /* --size's largest width or height */
#define IMPORT_NAME_LEN 256    /* room for a file named in the summary */
/* The default pixel limit of one image, 16 Mi pixels (4096 x 4096): 64 MiB
 * as the RGBA libpng writes, enough for a 12-megapixel photo or a 4K frame,
 * and small enough that a file declaring a huge size (a few hundred KB can
 * declare 20000 x 20000, 1.6 GB) is refused before it costs more. */
#define IMPORT_DEFAULT_MAX_PIXELS ((uint64_t)1 << 24)
#define IMPORT_MAX_MAX_PIXELS ((uint64_t)1 << 40) /* --max-pixels' largest value */

/* ------------------------------------------------------------------------ */
/* Settings and results                                                     */

typedef struct import_opts {
    int channels;          /* 0: auto (1 if every pixel has R = G = B), 1 or 3 */
    uint8_t background;    /* grey level alpha is composited over (255 white) */
    size_t width, height;  /* resize every image to this; 0: all must agree */
    double test_fraction;  /* in (0, 1): round(F * n) of each class are test images */
    uint64_t seed;         /* of the split and of the files' order */
    int skip_broken;       /* an image that fails to decode is skipped, not fatal */
    int force;             /* replace the data set already in the output folder */
    uint64_t max_pixels;   /* an image of more pixels (width x height, as its
                              header declares them) is broken: refused before
                              it is decoded */
    /* Told about each skipped broken image ("DIR/a.png: message"); may be NULL. */
    void (*warn)(void *ctx, const char *msg);
    void *warn_ctx;
} import_opts;

typedef struct import_summary {
    size_t n_images, n_train, n_test;
    size_t width, height, channels;
    size_t n_classes;                  /* 0: a flat folder, no labels */
    size_t n_other;                    /* files that are not images, skipped */
    char first_other[IMPORT_NAME_LEN]; /* the first of them (path under DIR) */
    size_t n_broken;                   /* images skipped by skip_broken */
    char first_broken[IMPORT_NAME_LEN];
} import_summary;

/* The defaults: channels auto, white background, no resizing, test
 * fraction 0.1, seed 1, broken images fatal, no replacing, a pixel limit
 * of IMPORT_DEFAULT_MAX_PIXELS. */
import_opts import_defaults(void);

/* ------------------------------------------------------------------------ */
/* The steps                                                                */

/* Returns 0 when writing a data set into out replaces nothing: out is
 * missing, or holds none of the IDX files (raw or .gz) nor labels.txt.
 * With force, existing ones are fine. Else -1 with err naming one. */
int import_check_out(const char *out, int force, err_msg *err);

/* The stratified split of n images with labels[i] < n_classes (labels
 * NULL: one class): class c of n_c images gets t_c = round(f * n_c), at most
 * n_c - 1, test images, drawn by a shuffle seeded with seed. is_test[i]
 * (n bytes) gets 1 for a test image, else 0; *n_test their count. Returns 0,
 * or -1 with err (n above 2^32 - 1, out of memory). */
int import_split(const uint8_t *labels, size_t n, size_t n_classes, double f,
                 uint64_t seed, uint8_t *is_test, size_t *n_test, err_msg *err);

/* One PNG or JPEG file's bytes (the decoder picked by the first bytes, not
 * the name) as RGB: *rgb gets w x h x 3 bytes (malloc'd), alpha composited
 * over the grey level bg. The declared width x height is checked against
 * max_pixels before any pixel is decoded; each call has decoder state of its
 * own, so one broken file does not touch the next. name is for messages.
 * Returns 0, or -1 with err starting "name: ". import_run reads every
 * image through it. */
int import_decode_memory(const uint8_t *data, size_t len, const char *name, uint8_t bg,
                         uint64_t max_pixels, uint8_t **rgb, size_t *w, size_t *h,
                         err_msg *err);

/* The whole import: reads dir, writes the data set into out (created with
 * its parents if missing; symbolic links resolved), fills s. Returns 0, or
 * -1 with err naming the file at fault. The data set is replaced whole or
 * not at all, also when the process is killed: it is built in a hidden
 * folder beside out and swapped in (afolder.h); the other files in out are
 * kept, a sub-folder in out is refused. A failure leaves out as it was. */
int import_run(const char *dir, const char *out, const import_opts *o,
               import_summary *s, err_msg *err);

#endif
