/* idx_write.h - IDX files out, written atomically through afile (a failed
 * write leaves no half-written file, and an old file whole).
 *
 * Grey images are the standard idx3 file (magic 0x00000803, then n, rows,
 * cols as big-endian uint32, then the pixels image by image, row-major).
 * Colour images are idx4 (magic 0x00000804, then n, rows, cols, channels),
 * each pixel's channels together: R, G, B per pixel, rows top to bottom.
 * Labels are idx1 (magic 0x00000801, then n, then one byte each). */
#ifndef VAE_IDX_WRITE_H
#define VAE_IDX_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Writes n images of rows x cols x channels bytes (channels 1: idx3; 3:
 * idx4, interleaved) to path. Every dimension must be 1 to 2^32 - 1.
 * Returns 0, or -1 with err naming path. */
int idx_write_images(const char *path, const uint8_t *px, size_t n, size_t rows,
                     size_t cols, size_t channels, err_msg *err);

/* Writes n labels (n from 1 to 2^32 - 1) as an idx1 file at path.
 * Returns 0, or -1 with err naming path. */
int idx_write_labels(const char *path, const uint8_t *labels, size_t n, err_msg *err);

#endif
