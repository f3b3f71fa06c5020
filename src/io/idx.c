/* idx.c - MNIST-format IDX files, raw or gzip (see src/io/idx.h).
 *
 * An IDX file is a 4-byte magic (0, 0, data type, number of dimensions),
 * one big-endian uint32 per dimension, then the data. We only read unsigned
 * bytes (type 0x08): idx3 images (n, rows, cols), idx4 images (n, rows,
 * cols, channels: colour, channels last) and idx1 labels (n).
 *
 * Every file goes through an idx_src, which hides whether the bytes come
 * straight from disk or out of zlib's inflate. The parser reads the header,
 * checks it against what the file can possibly hold, allocates the data
 * buffer once and fills it in place, then insists the file ends there. */
#define _POSIX_C_SOURCE 200809L

#include "idx.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "afile.h"
#include "rng.h"

#define IDX_HEADER_MAX 20 /* magic + 4 dimensions */

/* deflate cannot expand data by more than 1032:1 (zlib FAQ), so a gzip
 * file of c bytes inflates to at most about 1032 * c bytes. That lets a
 * gzip header's claim be refused before anything is allocated. */
#define IDX_GZIP_MAX_RATIO 1032

/* ---------------------------------------------------------------------- */
/* Byte sources: a raw file, or a gzip file inflated on the fly            */

typedef struct idx_src {
    const char *path;
    int fd;           /* raw files: open until idx_src_close */
    size_t file_size; /* bytes on disk */
    size_t consumed;  /* raw: bytes read so far */
    int is_gzip;
    uint8_t *gz;      /* gzip: the whole compressed file */
    z_stream zs;
    int zs_live;      /* inflateInit2 succeeded */
    int gz_done;      /* the last gzip member has ended */
} idx_src;

static int read_fully(int fd, uint8_t *buf, size_t len, size_t *got)
{
    size_t total = 0;
    while (total < len) {
        size_t want = len - total;
        if (want > (size_t)SSIZE_MAX)
            want = (size_t)SSIZE_MAX;
        ssize_t r = read(fd, buf + total, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *got = total;
            return -1;
        }
        if (r == 0)
            break;
        total += (size_t)r;
    }
    *got = total;
    return 0;
}

static void src_close(idx_src *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->zs_live)
        inflateEnd(&s->zs);
    free(s->gz);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

static int src_open(idx_src *s, const char *path, err_msg *err)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    /* A regular file only: a FIFO would wait for a writer for ever. */
    struct stat st;
    s->fd = afile_open_input(path, &st, err);
    if (s->fd < 0)
        return -1;
    if (st.st_size == 0) {
        src_close(s);
        return err_set(err, "%s: file is empty (0 bytes)", path);
    }
    if ((uintmax_t)st.st_size > SIZE_MAX) {
        src_close(s);
        return err_set(err, "%s: file is too large for this machine", path);
    }
    s->file_size = (size_t)st.st_size;

    uint8_t sig[2];
    size_t got = 0;
    if (read_fully(s->fd, sig, 2, &got) != 0) {
        int e = errno;
        src_close(s);
        return err_sys(err, e, "%s: read error", path);
    }
    if (got < 2 || sig[0] != 0x1f || sig[1] != 0x8b) {
        /* Raw: rewind so the parser sees the file from its first byte. */
        if (lseek(s->fd, 0, SEEK_SET) != 0) {
            int e = errno;
            src_close(s);
            return err_sys(err, e, "%s: cannot seek", path);
        }
        return 0;
    }

    /* gzip: slurp the compressed bytes, then inflate from memory. */
    s->is_gzip = 1;
    s->gz = malloc(s->file_size);
    if (!s->gz) {
        src_close(s);
        return err_set(err, "%s: out of memory reading %zu bytes", path, s->file_size);
    }
    memcpy(s->gz, sig, 2);
    if (read_fully(s->fd, s->gz + 2, s->file_size - 2, &got) != 0) {
        int e = errno;
        src_close(s);
        return err_sys(err, e, "%s: read error", path);
    }
    if (got != s->file_size - 2) {
        src_close(s);
        return err_set(err, "%s: file shrank while being read", path);
    }
    close(s->fd);
    s->fd = -1;

    /* 16 + MAX_WBITS: expect a gzip wrapper and check its CRC and length. */
    if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) {
        src_close(s);
        return err_set(err, "%s: cannot initialise zlib", path);
    }
    s->zs_live = 1;
    s->zs.next_in = s->gz;
    return 0;
}

/* Offset in the compressed file of the next byte inflate will read. */
static size_t gz_offset(const idx_src *s)
{
    return (size_t)(s->zs.next_in - s->gz);
}

/* Inflates up to len bytes into buf; *got < len only at the end of the
 * last gzip member. Concatenated members (as `cat a.gz b.gz` makes) are
 * one stream, as gzip itself treats them. */
static int gz_read(idx_src *s, uint8_t *buf, size_t len, size_t *got, err_msg *err)
{
    size_t total = 0;
    while (total < len && !s->gz_done) {
        size_t out_left = len - total;
        size_t in_left = s->file_size - gz_offset(s);
        s->zs.next_out = buf + total;
        s->zs.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        s->zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        uInt out_before = s->zs.avail_out;
        int ret = inflate(&s->zs, Z_NO_FLUSH);
        total += out_before - s->zs.avail_out;

        if (ret == Z_STREAM_END) {
            /* Another member follows only if the next bytes are 1f 8b;
             * anything else is left for src_finish to report. */
            size_t pos = gz_offset(s);
            if (s->file_size - pos >= 2 && s->gz[pos] == 0x1f && s->gz[pos + 1] == 0x8b)
                inflateReset(&s->zs);
            else
                s->gz_done = 1;
            continue;
        }
        if (ret == Z_DATA_ERROR)
            return err_set(err, "%s: corrupt gzip stream: %s", s->path,
                           s->zs.msg ? s->zs.msg : "invalid data");
        if (ret == Z_NEED_DICT)
            return err_set(err, "%s: corrupt gzip stream: needs a preset dictionary", s->path);
        if (ret == Z_MEM_ERROR)
            return err_set(err, "%s: out of memory inflating", s->path);
        /* Z_BUF_ERROR with room to write means inflate wants input that
         * the file does not have: it ends in the middle of the stream. */
        if (ret == Z_BUF_ERROR && gz_offset(s) == s->file_size)
            return err_set(err, "%s: truncated gzip stream (the %zu-byte file ends "
                           "before the compressed data does)", s->path, s->file_size);
        if (ret != Z_OK && ret != Z_BUF_ERROR)
            return err_set(err, "%s: zlib error %d", s->path, ret);
    }
    *got = total;
    return 0;
}

/* Reads up to len bytes; *got < len only at the end of the data. */
static int src_read(idx_src *s, uint8_t *buf, size_t len, size_t *got, err_msg *err)
{
    *got = 0;
    if (s->is_gzip)
        return gz_read(s, buf, len, got, err);
    if (read_fully(s->fd, buf, len, got) != 0)
        return err_sys(err, errno, "%s: read error", s->path);
    s->consumed += *got;
    return 0;
}

/* Largest number of data bytes the file could still deliver. */
static size_t src_capacity(const idx_src *s)
{
    if (!s->is_gzip)
        return s->file_size - s->consumed;
    if (s->file_size > SIZE_MAX / IDX_GZIP_MAX_RATIO)
        return SIZE_MAX;
    return s->file_size * IDX_GZIP_MAX_RATIO;
}

/* After the data the header describes, the file must end. */
static int src_finish(idx_src *s, size_t data_bytes, err_msg *err)
{
    if (!s->is_gzip) {
        size_t extra = s->file_size - s->consumed;
        if (extra > 0)
            return err_set(err, "%s: trailing garbage: %zu extra bytes after the "
                           "%zu bytes of data the header describes",
                           s->path, extra, data_bytes);
        return 0;
    }

    /* Inflate whatever is left (this also checks the gzip CRC and length),
     * counting extra bytes up to a cap: a stream of gigabytes of zeros
     * after the data is refused without inflating them all. */
    uint8_t scratch[16384];
    const size_t cap = (size_t)1 << 20;
    size_t extra = 0, got;
    do {
        if (gz_read(s, scratch, sizeof scratch, &got, err) != 0)
            return -1;
        extra += got;
    } while (got == sizeof scratch && extra <= cap);
    if (extra > cap)
        return err_set(err, "%s: trailing garbage: more than %zu extra bytes after the "
                       "%zu bytes of data the header describes", s->path, cap, data_bytes);
    if (extra > 0)
        return err_set(err, "%s: trailing garbage: %zu extra bytes after the "
                       "%zu bytes of data the header describes",
                       s->path, extra, data_bytes);
    size_t rest = s->file_size - gz_offset(s);
    if (rest > 0)
        return err_set(err, "%s: trailing garbage: %zu extra bytes after the end "
                       "of the gzip stream", s->path, rest);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The IDX parser                                                          */

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* What a file is read as: images (idx3, or idx4 with channels last) or
 * labels (idx1). */
typedef enum idx_kind { KIND_IMAGES, KIND_LABELS } idx_kind;

static const char *kind_name(idx_kind k)
{
    return k == KIND_IMAGES ? "idx3 or idx4 images" : "idx1 labels";
}

static int is_magic_of(uint32_t magic, idx_kind k)
{
    if (k == KIND_LABELS)
        return magic == IDX_MAGIC_LABELS;
    return magic == IDX_MAGIC_IMAGES || magic == IDX_MAGIC_IMAGES4;
}

/* Checks the magic m for kind k; on success *ndims is its dimension count. */
static int check_magic(const char *path, const uint8_t *m, idx_kind k, unsigned *ndims,
                       err_msg *err)
{
    uint32_t found = be32(m);
    idx_kind other = k == KIND_IMAGES ? KIND_LABELS : KIND_IMAGES;
    const char *want = k == KIND_IMAGES ? "0x00000803 or 0x00000804" : "0x00000801";
    if (is_magic_of(found, k)) {
        *ndims = m[3];
        return 0;
    }
    if (is_magic_of(found, other))
        return err_set(err, "%s: wrong magic 0x%08x, expected %s (%s): this is an %s "
                       "file; are the image and label files swapped?",
                       path, (unsigned)found, want, kind_name(k), kind_name(other));
    if (m[0] == 0 && m[1] == 0 && m[2] == 0x08)
        return err_set(err, "%s: wrong number of dimensions: magic 0x%08x says %u, "
                       "expected %s (%s)", path, (unsigned)found, (unsigned)m[3],
                       k == KIND_IMAGES ? "3 or 4" : "1", kind_name(k));
    if (m[0] == 0 && m[1] == 0 && (m[2] == 0x09 || (m[2] >= 0x0b && m[2] <= 0x0e)))
        return err_set(err, "%s: wrong magic 0x%08x, expected %s (%s): data type 0x%02x "
                       "is not unsigned bytes (0x08)", path, (unsigned)found, want,
                       kind_name(k), (unsigned)m[2]);
    return err_set(err, "%s: wrong magic 0x%08x, expected %s (%s): not an IDX file",
                   path, (unsigned)found, want, kind_name(k));
}

/* Reads an IDX file of unsigned bytes of kind k into dims[0..*ndims):
 * dims[0] is the item count; the data is the product of all dims. */
static int idx_read(const char *path, idx_kind k, size_t *dims, unsigned *ndims,
                    uint8_t **data, err_msg *err)
{
    const char *noun = k == KIND_IMAGES ? "images" : "labels";
    uint8_t hdr[IDX_HEADER_MAX];
    uint8_t *buf = NULL;
    size_t got = 0;
    idx_src s;

    if (src_open(&s, path, err) != 0)
        return -1;

    if (src_read(&s, hdr, 4, &got, err) != 0)
        goto fail;
    if (got == 0) {
        err_set(err, "%s: file is empty%s", path,
                s.is_gzip ? " (the gzip stream holds 0 bytes)" : "");
        goto fail;
    }
    if (got < 4) {
        err_set(err, "%s: truncated header: %zu bytes, an %s header needs %d", path, got,
                kind_name(k), k == KIND_IMAGES ? 16 : 8);
        goto fail;
    }
    if (check_magic(path, hdr, k, ndims, err) != 0)
        goto fail;
    size_t header_len = 4 + 4 * (size_t)*ndims;
    if (src_read(&s, hdr + 4, header_len - 4, &got, err) != 0)
        goto fail;
    if (got < header_len - 4) {
        err_set(err, "%s: truncated header: %zu bytes, an idx%u %s header needs %zu",
                path, 4 + got, *ndims, noun, header_len);
        goto fail;
    }

    size_t data_bytes = 1;
    for (unsigned i = 0; i < *ndims; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0) {
            if (i == 0)
                err_set(err, "%s: header says 0 %s", path, noun);
            else if (i < 3)
                err_set(err, "%s: header says the images are %zux%zu, a size of 0",
                        path, (size_t)be32(hdr + 8), (size_t)be32(hdr + 12));
            else
                err_set(err, "%s: header says the images have 0 channels", path);
            goto fail;
        }
        if (err_mul_size(data_bytes, dims[i], &data_bytes) != 0) {
            if (*ndims > 1)
                err_set(err, "%s: header dimensions %zu x %zu x %zu%s overflow size_t",
                        path, (size_t)be32(hdr + 4), (size_t)be32(hdr + 8),
                        (size_t)be32(hdr + 12), *ndims == 4 ? " x channels" : "");
            else
                err_set(err, "%s: header count %zu overflows size_t", path, dims[0]);
            goto fail;
        }
    }

    /* Check the claim against the file before trusting it with malloc. */
    size_t cap = src_capacity(&s);
    if (data_bytes > cap) {
        if (s.is_gzip)
            err_set(err, "%s: header says %zu %s (%zu bytes), more than a %zu-byte gzip "
                    "file can hold (at most %zu bytes)",
                    path, dims[0], noun, data_bytes, s.file_size, cap);
        else
            err_set(err, "%s: truncated: header says %zu %s (%zu bytes) but the file has "
                    "%zu bytes of data", path, dims[0], noun, data_bytes, cap);
        goto fail;
    }

    buf = malloc(data_bytes);
    if (!buf) {
        err_set(err, "%s: out of memory for %zu bytes of %s", path, data_bytes, noun);
        goto fail;
    }
    if (src_read(&s, buf, data_bytes, &got, err) != 0)
        goto fail;
    if (got < data_bytes) {
        err_set(err, "%s: truncated: header says %zu %s (%zu bytes) but the file has "
                "%zu bytes of data", path, dims[0], noun, data_bytes, got);
        goto fail;
    }
    if (src_finish(&s, data_bytes, err) != 0)
        goto fail;

    src_close(&s);
    *data = buf;
    return 0;

fail:
    free(buf);
    src_close(&s);
    return -1;
}

int idx_read_images(const char *path, uint8_t **data, size_t *n, size_t *rows,
                    size_t *cols, size_t *channels, err_msg *err)
{
    size_t dims[4];
    unsigned nd = 0;
    *data = NULL;
    *n = *rows = *cols = *channels = 0;
    if (idx_read(path, KIND_IMAGES, dims, &nd, data, err) != 0)
        return -1;
    size_t c = nd == 4 ? dims[3] : 1;
    if (c != 1 && c != 3) {
        free(*data);
        *data = NULL;
        return err_set(err, "%s: the images have %zu channels; vae reads 1 (grey) or 3 "
                       "(RGB)", path, c);
    }
    if (dims[1] > IDX_MAX_SIDE || dims[2] > IDX_MAX_SIDE) {
        free(*data);
        *data = NULL;
        return err_set(err, "%s: the images are %zux%zu; vae reads at most %dx%d", path,
                       dims[1], dims[2], IDX_MAX_SIDE, IDX_MAX_SIDE);
    }
    *n = dims[0];
    *rows = dims[1];
    *cols = dims[2];
    *channels = c;
    return 0;
}

int idx_read_labels(const char *path, uint8_t **data, size_t *n, err_msg *err)
{
    size_t dims[1];
    unsigned nd = 0;
    *data = NULL;
    *n = 0;
    if (idx_read(path, KIND_LABELS, dims, &nd, data, err) != 0)
        return -1;
    *n = dims[0];
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Loading a split                                                         */

/* Builds dir/SPLIT-KIND into out, or its ".gz" twin, whichever exists (the
 * raw file wins if both do). Returns 1 if one exists (or cannot be told
 * apart from existing: the reader then reports the problem), 0 if neither
 * does (out holds the raw name), -1 with err if the path is too long. */
static int find_file(char *out, size_t out_len, const char *dir, const char *split,
                     const char *kind, err_msg *err)
{
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    const char *sep = dir[dlen - 1] == '/' ? "" : "/";
    int w = snprintf(out, out_len, "%.*s%s%s-%s", (int)dlen, dir, sep, split, kind);
    if (w < 0 || (size_t)w + 3 >= out_len)
        return err_set(err, "%s: data directory path is too long", dir);

    struct stat st;
    if (stat(out, &st) == 0 || errno != ENOENT)
        return 1;
    memcpy(out + w, ".gz", 4);
    if (stat(out, &st) == 0 || errno != ENOENT)
        return 1;
    out[w] = '\0';
    return 0;
}

int idx_split_paths(const char *dir, const char *split, char *images, char *labels,
                    err_msg *err)
{
    if (!split || (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0))
        return err_set(err, "unknown split '%s', expected train or t10k",
                       split ? split : "(null)");
    if (!dir || !*dir)
        dir = ".";
    /* Grey images are idx3, colour ones idx4; the idx3 name wins. */
    char other[IDX_PATH_MAX];
    int has3 = find_file(images, IDX_PATH_MAX, dir, split, "images-idx3-ubyte", err);
    if (has3 < 0)
        return -1;
    if (!has3) {
        int has4 = find_file(other, IDX_PATH_MAX, dir, split, "images-idx4-ubyte", err);
        if (has4 < 0)
            return -1;
        if (!has4)
            return err_set(err, "%s: not found (nor %s.gz, nor an idx4 file of colour "
                           "images); run scripts/fetch_data.sh, vae import, or pass "
                           "--data DIR", images, images);
        memcpy(images, other, IDX_PATH_MAX);
    }
    int hasl = find_file(labels, IDX_PATH_MAX, dir, split, "labels-idx1-ubyte", err);
    if (hasl < 0)
        return -1;
    if (!hasl)
        labels[0] = '\0';
    return 0;
}

int idx_load(idx_set *set, const char *dir, const char *split, err_msg *err)
{
    char ipath[IDX_PATH_MAX], lpath[IDX_PATH_MAX];
    size_t n_labels = 0;
    memset(set, 0, sizeof *set);
    if (idx_split_paths(dir, split, ipath, lpath, err) != 0)
        return -1;

    if (idx_read_images(ipath, &set->images, &set->n, &set->rows, &set->cols,
                        &set->channels, err) != 0)
        goto fail;
    if (!lpath[0]) {
        /* No label file: an unlabelled set (a flat vae import). */
        set->labels = calloc(set->n, 1);
        if (!set->labels) {
            err_set(err, "%s: out of memory for %zu labels", ipath, set->n);
            goto fail;
        }
        return 0;
    }
    if (idx_read_labels(lpath, &set->labels, &n_labels, err) != 0)
        goto fail;
    if (n_labels != set->n) {
        err_set(err, "count mismatch: %s has %zu images but %s has %zu labels",
                ipath, set->n, lpath, n_labels);
        goto fail;
    }
    for (size_t i = 0; i < n_labels; i++)
        if (set->labels[i] >= set->n_classes)
            set->n_classes = (size_t)set->labels[i] + 1;
    return 0;

fail:
    idx_free(set);
    return -1;
}

/* zlib's crc32 takes at most 4 GiB a call. */
static uint32_t crc_of(const uint8_t *p, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (len > 0) {
        size_t k = len > (1u << 30) ? (1u << 30) : len;
        crc = crc32(crc, p, (uInt)k);
        p += k;
        len -= k;
    }
    return (uint32_t)crc;
}

idx_fingerprint idx_fingerprint_of(const idx_set *set)
{
    idx_fingerprint f = {set->n, set->rows, set->cols, 0, 0};
    f.pixels_crc = crc_of(set->images, set->n * idx_image_bytes(set));
    f.labels_crc = crc_of(set->labels, set->n);
    return f;
}

int idx_fingerprint_differs(const idx_fingerprint *a, const idx_fingerprint *b,
                            char *why, size_t why_len)
{
    if (a->n != b->n)
        snprintf(why, why_len, "it has %llu images, the run's had %llu",
                 (unsigned long long)b->n, (unsigned long long)a->n);
    else if (a->rows != b->rows || a->cols != b->cols)
        snprintf(why, why_len, "its images are %llux%llu, the run's were %llux%llu",
                 (unsigned long long)b->rows, (unsigned long long)b->cols,
                 (unsigned long long)a->rows, (unsigned long long)a->cols);
    else if (a->pixels_crc != b->pixels_crc)
        snprintf(why, why_len, "as many images, but other pixels (CRC-32 %08x, the "
                 "run's %08x)", (unsigned)b->pixels_crc, (unsigned)a->pixels_crc);
    else if (a->labels_crc != b->labels_crc)
        snprintf(why, why_len, "the same pixels, but other labels (CRC-32 %08x, the "
                 "run's %08x)", (unsigned)b->labels_crc, (unsigned)a->labels_crc);
    else
        return 0;
    return 1;
}

size_t idx_channels(const idx_set *set)
{
    return set->channels ? set->channels : 1;
}

size_t idx_image_bytes(const idx_set *set)
{
    return set->rows * set->cols * idx_channels(set);
}

void idx_free(idx_set *set)
{
    if (!set)
        return;
    free(set->images);
    free(set->labels);
    memset(set, 0, sizeof *set);
}

/* Image k binarized by view into dst (D pixels), from its bytes src or
 * (src NULL) its values v in [0,1]: a pixel is on when a 16-bit uniform w
 * has w * 255 < b * 65536 for a byte b, i.e. with probability b/255 to
 * 1/65536, or w < v * 65536 for a value v; four draws per 64 bits. For v
 * = b * (1/255) in float, as bytes are read, the two tests agree for
 * every b and w (tests/test_idx.c tries all 256 x 65536): b * 65536 / 255
 * is at least 1/255 from an integer unless 255 divides b, and v * 65536 is
 * a few float roundings from it. */
static void binarize(const uint8_t *src, const float *v, size_t D, const idx_view *view,
                     size_t k, float *dst)
{
    rng_state r;
    rng_seed(&r, rng_mix(view->key, k));
    uint64_t bits = 0;
    for (size_t p = 0; p < D; p++) {
        if (p % 4 == 0)
            bits = rng_u64(&r);
        uint32_t w = (uint32_t)(bits & 0xffff);
        bits >>= 16;
        int on = src ? w * 255u < (uint32_t)src[p] * 65536u : (float)w < v[p] * 65536.0f;
        dst[p] = on ? 1.0f : 0.0f;
    }
}

void idx_gather(const idx_set *set, const uint32_t *idx, size_t start,
                size_t B, const idx_view *view, float *out)
{
    size_t D = idx_image_bytes(set);
    const float scale = 1.0f / 255.0f;
    for (size_t i = 0; i < B; i++) {
        size_t k = idx ? idx[i] : start + i;
        float *dst = out + i * D;
        const uint8_t *src = set->values ? NULL : set->images + k * D;
        const float *v = set->values ? set->values + k * D : NULL;
        if (view && view->binarize)
            binarize(src, v, D, view, k, dst);
        else if (v)
            memcpy(dst, v, D * sizeof *dst);
        else
            for (size_t p = 0; p < D; p++)
                dst[p] = (float)src[p] * scale;
    }
}
