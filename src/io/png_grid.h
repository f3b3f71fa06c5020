/* png_grid.h - PNG output through libpng's simplified API (png_image),
 * written atomically through afile. Grids follow torchvision's save_image:
 * ncol tiles a row, pad pixels of black between and around tiles, value v
 * in [0,1] stored as clamp(v * 255 + 0.5, 0, 255). */
#ifndef VAE_PNG_GRID_H
#define VAE_PNG_GRID_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Writes an 8-bit image: channels 1 (gray) or 3 (RGB), rows of width *
 * channels bytes. Returns 0, or -1 with err naming path. */
int png_grid_write_pixels(const char *path, const uint8_t *px, size_t width,
                          size_t height, int channels, err_msg *err);

/* Writes n gray tiles of h x w floats in [0,1] (tile-major, row-major) as a
 * grid of ncol columns with pad pixels of padding. Returns 0, or -1 with err. */
int png_grid_write(const char *path, const float *tiles, size_t n, size_t h,
                   size_t w, size_t ncol, size_t pad, err_msg *err);

/* png_grid_write for tiles of channels 1 (grey) or 3 (RGB, each pixel's
 * three values together: h x w x 3 floats a tile). Returns 0, or -1 with err. */
int png_grid_write_color(const char *path, const float *tiles, size_t n, size_t h,
                         size_t w, int channels, size_t ncol, size_t pad, err_msg *err);

/* Reads a PNG as 8-bit gray (RGB is converted). On success *px is malloc'd
 * (caller frees). Returns 0, or -1 with err. Used by tests and tools. */
int png_grid_read_gray(const char *path, uint8_t **px, size_t *width,
                       size_t *height, err_msg *err);

#endif
