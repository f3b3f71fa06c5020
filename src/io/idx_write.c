/* idx_write.c - IDX image and label files out (see src/io/idx_write.h).
 * The header is checked first, so a bad size writes nothing; the bytes go
 * through afile, whose commit reports any write error and leaves no temp
 * file behind. */
#define _POSIX_C_SOURCE 200809L
#include "idx_write.h"

#include <stdio.h>

#include "afile.h"
#include "idx.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes the header (magic, then ndims big-endian dimensions) and len bytes
 * of body to path. The loader refuses a dimension of 0, so it is refused
 * here too. */
static int write_idx(const char *path, uint32_t magic, const size_t *dims,
                     unsigned ndims, const uint8_t *body, size_t len, err_msg *err)
{
    uint8_t hdr[4 + 4 * 4];
    put_be32(hdr, magic);
    for (unsigned i = 0; i < ndims; i++) {
        if (dims[i] == 0 || dims[i] > UINT32_MAX)
            return err_set(err, "%s: dimension %u is %zu; IDX takes 1 to %lu", path,
                           i, dims[i], (unsigned long)UINT32_MAX);
        put_be32(hdr + 4 + 4 * i, (uint32_t)dims[i]);
    }
    afile f;
    if (afile_open(&f, path, err) != 0)
        return -1;
    /* A short fwrite sets the stream's error flag; afile_commit reports it. */
    if (fwrite(hdr, 1, 4 + 4 * (size_t)ndims, f.fp) == 4 + 4 * (size_t)ndims && len > 0)
        fwrite(body, 1, len, f.fp);
    return afile_commit(&f, err);
}

int idx_write_images(const char *path, const uint8_t *px, size_t n, size_t rows,
                     size_t cols, size_t channels, err_msg *err)
{
    if (channels != 1 && channels != 3)
        return err_set(err, "%s: channels must be 1 (grey) or 3 (RGB), not %zu", path,
                       channels);
    size_t dims[4] = {n, rows, cols, channels}, len = 1;
    for (unsigned i = 0; i < 4; i++)
        if (err_mul_size(len, dims[i], &len) != 0)
            return err_set(err, "%s: %zu images of %zux%zux%zu overflow size_t", path, n,
                           rows, cols, channels);
    if (channels == 1)
        return write_idx(path, IDX_MAGIC_IMAGES, dims, 3, px, len, err);
    return write_idx(path, IDX_MAGIC_IMAGES4, dims, 4, px, len, err);
}

int idx_write_labels(const char *path, const uint8_t *labels, size_t n, err_msg *err)
{
    return write_idx(path, IDX_MAGIC_LABELS, &n, 1, labels, n, err);
}
