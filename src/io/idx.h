/* idx.h - MNIST-format IDX image and label files, raw or gzip-compressed.
 *
 * Images stay uint8 in memory (60000 x 784 bytes for MNIST); callers scale
 * them to [0,1] per batch. Grey images are idx3 (n, rows, cols); colour
 * images idx4 (n, rows, cols, 3), each pixel's R, G, B bytes together
 * (channels last, as the IDX order of dimensions says), and the model sees
 * an image as those rows * cols * channels bytes in file order. Labels are
 * optional: a folder without label files is an unlabelled set. Every
 * header field is validated against the file's real size before anything
 * is allocated. */
#ifndef VAE_IDX_H
#define VAE_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define IDX_MAGIC_IMAGES 0x00000803u  /* unsigned byte, 3 dimensions: grey */
#define IDX_MAGIC_IMAGES4 0x00000804u /* unsigned byte, 4 dimensions: colour */
#define IDX_MAGIC_LABELS 0x00000801u  /* unsigned byte, 1 dimension */
#define IDX_ROWS 28 /* MNIST's image size, the default model's */
#define IDX_COLS 28
#define IDX_MAX_SIDE 65536 /* largest accepted image height or width */

/* One split of a data set: n images of rows x cols x channels bytes and n
 * labels. */
typedef struct idx_set {
    size_t n;         /* number of images (= number of labels) */
    size_t rows;      /* image height in pixels */
    size_t cols;      /* image width in pixels */
    uint8_t *images;  /* n * rows * cols * channels bytes, image-major, row-major */
    uint8_t *labels;  /* n bytes */
    size_t channels;  /* 1 (grey) or 3 (RGB, each pixel's three bytes together); 0: 1 */
    size_t n_classes; /* 1 + the largest label; 0: no label file (all labels 0) */
    /* Or the images as floats in [0,1] (n * rows * cols * channels, as
     * images), read instead of images when non-NULL: a library caller's
     * own arrays (include/vae.h), never a file's. */
    const float *values;
} idx_set;

/* Reads an idx3 (grey: *channels 1) or idx4 (n, rows, cols, channels 1 or
 * 3) image file at exactly path (gzip if it starts with 1f 8b). On success
 * *data is malloc'd (caller frees). Returns 0, or -1 with err. */
int idx_read_images(const char *path, uint8_t **data, size_t *n, size_t *rows,
                    size_t *cols, size_t *channels, err_msg *err);

/* Reads an idx1 label file at exactly path (gzip if it starts with 1f 8b).
 * On success *data is malloc'd (caller frees). Returns 0, or -1 with err. */
int idx_read_labels(const char *path, uint8_t **data, size_t *n, err_msg *err);

#define IDX_PATH_MAX 4096 /* longest path idx_split_paths builds */

/* The two files idx_load reads for split of dir: SPLIT-images-idx3-ubyte
 * (or, if there is none, SPLIT-images-idx4-ubyte) and
 * SPLIT-labels-idx1-ubyte, each the raw file if it exists, else its ".gz"
 * twin. images and labels hold IDX_PATH_MAX bytes; labels is "" when there
 * is no label file. Returns 0, or -1 with err when the images are missing
 * (the message says where to get data). */
int idx_split_paths(const char *dir, const char *split, char *images, char *labels,
                    err_msg *err);

/* Loads split "train" or "t10k" from dir: the files of idx_split_paths.
 * Requires equal counts; without a label file every label is 0 and
 * set->n_classes is 0. Returns 0, or -1 with err (set is left empty). */
int idx_load(idx_set *set, const char *dir, const char *split, err_msg *err);

/* How bytes become the model's inputs in [0,1]: intensities v/255, or
 * binary pixels drawn from Bernoulli(v/255) (to 1/65536), the draws fixed
 * by key and the image's index, so they do not depend on batch or thread. */
typedef struct idx_view {
    int binarize; /* 0: v/255; 1: Bernoulli draws */
    uint64_t key;
} idx_view;

/* Copies images idx[0..B) of set (or start..start+B when idx is NULL) into
 * out (B x rows*cols*channels floats) as view says (NULL: v/255; a set of
 * values: the values, or their Bernoulli draws, the same draws a byte v
 * gets when the value is v/255). */
void idx_gather(const idx_set *set, const uint32_t *idx, size_t start,
                size_t B, const idx_view *view, float *out);

/* What a data set is, in 40 bytes: counts, image size and CRC-32s (zlib's)
 * of its pixel bytes and label bytes in file order. A checkpoint keeps its
 * training set's, so a resumed run can tell other data from its own. */
typedef struct idx_fingerprint {
    uint64_t n, rows, cols; /* n = 0: unknown (a checkpoint that predates them) */
    uint32_t pixels_crc, labels_crc;
} idx_fingerprint;

/* The fingerprint of set. */
idx_fingerprint idx_fingerprint_of(const idx_set *set);

/* Whether b, the data at hand, differs from a, a run's; if so, what
 * differs, in words ("it has 10000 images, the run's had 60000"), into why
 * (why_len bytes). Returns 1 when they differ, else 0. */
int idx_fingerprint_differs(const idx_fingerprint *a, const idx_fingerprint *b,
                            char *why, size_t why_len);

/* The channels of set's images: set->channels, or 1 when it is 0. */
size_t idx_channels(const idx_set *set);

/* Bytes of one image of set: rows * cols * channels. */
size_t idx_image_bytes(const idx_set *set);

/* Frees what idx_load allocated and zeroes the struct; safe on a zeroed set. */
void idx_free(idx_set *set);

#endif
