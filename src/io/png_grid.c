/* png_grid.c - PNG grids through libpng's simplified API (see
 * src/io/png_grid.h). No setjmp: libpng reports failures in image.message.
 * Writes go through afile, so a failed write leaves the old file whole. */
#define _POSIX_C_SOURCE 200809L
#include "png_grid.h"

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afile.h"

/* libpng refuses wider or taller images (png_check_IHDR's user limits, also
 * on write); checking first avoids allocating a buffer libpng would reject. */
#ifdef PNG_USER_WIDTH_MAX
#define PNG_GRID_MAX_WIDTH ((size_t)PNG_USER_WIDTH_MAX)
#else
#define PNG_GRID_MAX_WIDTH ((size_t)PNG_UINT_31_MAX)
#endif
#ifdef PNG_USER_HEIGHT_MAX
#define PNG_GRID_MAX_HEIGHT ((size_t)PNG_USER_HEIGHT_MAX)
#else
#define PNG_GRID_MAX_HEIGHT ((size_t)PNG_UINT_31_MAX)
#endif

/* ------------------------------------------------------------------------ */

/* torchvision's save_image: mul(255), add(0.5), clamp(0, 255), to uint8 (a
 * truncation), in float32. NaN fails both comparisons and becomes 0. */
static uint8_t float_to_byte(float v)
{
    float x = v * 255.0f + 0.5f;
    if (!(x > 0.0f))
        return 0;
    if (x >= 255.0f)
        return 255;
    return (uint8_t)x;
}

static int check_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

/* Checks an image size libpng can write; its rows of width * channels bytes
 * must also fit png_int_32, the type of row_stride. */
static int check_image_size(const char *path, size_t width, size_t height,
                            int channels, err_msg *err)
{
    if (width == 0 || height == 0)
        return err_set(err, "%s: empty image (%zu x %zu)", path, width, height);
    if (width > PNG_GRID_MAX_WIDTH || height > PNG_GRID_MAX_HEIGHT ||
        width * (size_t)channels > (size_t)INT32_MAX)
        return err_set(err, "%s: image of %zu x %zu is larger than PNG writing allows "
                       "(%zu x %zu)", path, width, height, PNG_GRID_MAX_WIDTH,
                       PNG_GRID_MAX_HEIGHT);
    return 0;
}

/* ------------------------------------------------------------------------ */

int png_grid_write_pixels(const char *path, const uint8_t *px, size_t width,
                          size_t height, int channels, err_msg *err)
{
    if (channels != 1 && channels != 3)
        return err_set(err, "%s: channels must be 1 (gray) or 3 (RGB), not %d",
                       path, channels);
    if (!px)
        return err_set(err, "%s: no pixels to write", path);
    if (check_image_size(path, width, height, channels, err) != 0)
        return -1;

    afile f;
    if (afile_open(&f, path, err) != 0)
        return -1;

    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    png_int_32 stride = (png_int_32)(width * (size_t)channels);
    if (!png_image_write_to_stdio(&image, f.fp, 0, px, stride, NULL)) {
        fflush(f.fp); /* so a write error still in the buffer is seen */
        int e = afile_write_errno(&f);
        if (e)
            err_sys(err, e, "cannot write %s", path);
        else
            err_set(err, "cannot write %s: %s", path, image.message);
        png_image_free(&image);
        afile_abort(&f);
        return -1;
    }
    png_image_free(&image);
    return afile_commit(&f, err);
}

int png_grid_write(const char *path, const float *tiles, size_t n, size_t h,
                   size_t w, size_t ncol, size_t pad, err_msg *err)
{
    return png_grid_write_color(path, tiles, n, h, w, 1, ncol, pad, err);
}

int png_grid_write_color(const char *path, const float *tiles, size_t n, size_t h,
                         size_t w, int channels, size_t ncol, size_t pad, err_msg *err)
{
    if (channels != 1 && channels != 3)
        return err_set(err, "%s: %d channels: a grid is grey (1) or RGB (3)", path,
                       channels);
    if (n == 0 || h == 0 || w == 0 || ncol == 0)
        return err_set(err, "%s: grid needs n, h, w and ncol > 0 (n %zu, h %zu, "
                       "w %zu, ncol %zu)", path, n, h, w, ncol);
    if (!tiles)
        return err_set(err, "%s: no tiles to write", path);

    /* make_grid: xmaps tiles a row, ymaps rows; pad before every tile and
     * after the last one, in both directions. */
    size_t xmaps = ncol < n ? ncol : n;
    size_t ymaps = n / xmaps + (n % xmaps != 0);
    size_t tile_px, all_px, cell_w, cell_h, width, height, npx;
    size_t C = (size_t)channels;
    if (err_mul_size(h, w * C, &tile_px) != 0 || err_mul_size(n, tile_px, &all_px) != 0 ||
        check_add(w, pad, &cell_w) != 0 || check_add(h, pad, &cell_h) != 0 ||
        err_mul_size(xmaps, cell_w, &width) != 0 || check_add(width, pad, &width) != 0 ||
        err_mul_size(ymaps, cell_h, &height) != 0 || check_add(height, pad, &height) != 0 ||
        err_mul_size(width * C, height, &npx) != 0)
        return err_set(err, "%s: grid of %zu tiles of %zu x %zu (ncol %zu, pad %zu) "
                       "overflows size_t", path, n, h, w, ncol, pad);
    if (check_image_size(path, width, height, channels, err) != 0)
        return -1;

    uint8_t *px = calloc(npx, 1); /* padding and empty slots stay 0 */
    if (!px)
        return err_set(err, "%s: out of memory for a %zu x %zu grid", path, width, height);
    for (size_t k = 0; k < n; k++) {
        size_t x0 = (k % xmaps) * cell_w + pad;
        size_t y0 = (k / xmaps) * cell_h + pad;
        const float *tile = tiles + k * tile_px;
        for (size_t y = 0; y < h; y++) {
            uint8_t *row = px + ((y0 + y) * width + x0) * C;
            for (size_t x = 0; x < w * C; x++)
                row[x] = float_to_byte(tile[y * w * C + x]);
        }
    }
    int rc = png_grid_write_pixels(path, px, width, height, channels, err);
    free(px);
    return rc;
}

/* png_grid_read_gray from fp, the open file path. */
static int read_gray_from(FILE *fp, const char *path, uint8_t **px, size_t *width,
                          size_t *height, err_msg *err)
{
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_stdio(&image, fp)) {
        err_set(err, "cannot read %s: %s", path, image.message);
        png_image_free(&image);
        return -1;
    }
    image.format = PNG_FORMAT_GRAY;

    size_t w = image.width, h = image.height, npx;
    if (w > (size_t)INT32_MAX || err_mul_size(w, h, &npx) != 0) {
        png_image_free(&image);
        return err_set(err, "cannot read %s: image of %zu x %zu is too large", path, w, h);
    }
    /* With background NULL, alpha is composited onto the buffer: start black. */
    uint8_t *buf = calloc(npx ? npx : 1, 1);
    if (!buf) {
        png_image_free(&image);
        return err_set(err, "cannot read %s: out of memory for %zu x %zu", path, w, h);
    }
    if (!png_image_finish_read(&image, NULL, buf, (png_int_32)w, NULL)) {
        err_set(err, "cannot read %s: %s", path, image.message);
        png_image_free(&image);
        free(buf);
        return -1;
    }
    png_image_free(&image);
    *px = buf;
    *width = w;
    *height = h;
    return 0;
}

int png_grid_read_gray(const char *path, uint8_t **px, size_t *width,
                       size_t *height, err_msg *err)
{
    FILE *fp = afile_fopen_input(path, NULL, err); /* a FIFO would wait for ever */
    if (!fp)
        return -1;
    int rc = read_gray_from(fp, path, px, width, height, err);
    fclose(fp);
    return rc;
}
