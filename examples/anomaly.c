/* anomaly.c - libvae's example: the images of an IDX file that a model finds
 * least likely by vae_score (the negative ELBO; with -k K the importance-
 * weighted bound with K draws), highest first, printed as "index score".
 *
 *   anomaly [-k K] MODEL.bin IMAGES-idx3-ubyte [TOP]   (idx4: colour; TOP 10)
 *   cc -O2 anomaly.c -o anomaly $(pkg-config --cflags --libs vae)
 * or with CMake: examples/CMakeLists.txt (find_package(vae)). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vae.h>

/* An IDX header field: 32 bits, big-endian. */
static size_t be32(const unsigned char *p)
{
    return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

/* The IDX file at path, read whole (free it), its images in *im, or NULL with
 * a message: 0, 0, 8 (bytes), 3 dimensions (4: colour), then n, rows, cols
 * (and channels), which must be the model's, and n images to the end. */
static unsigned char *read_images(const char *path, const vae_info *info, vae_images *im)
{
    FILE *f = fopen(path, "rb");
    long len = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *b = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)len + 1) : NULL;
    size_t size = b ? fread(b, 1, (size_t)len, f) : 0;
    size_t head = size >= 4 ? 4 + 4 * (size_t)b[3] : 0; /* header bytes, if an IDX file */
    const char *why = NULL;
    if (!b || size != (size_t)len)
        why = f ? "cannot read it" : strerror(errno);
    else if (size < 16 || memcmp(b, "\0\0\x08", 3) || (b[3] != 3 && b[3] != 4) || size < head)
        why = "not an idx3 or idx4 image file";
    else if (be32(b + 8) != info->height || be32(b + 12) != info->width ||
             (b[3] == 4 ? be32(b + 16) : 1) != info->channels)
        why = "its images are not the model's height x width x channels (vae info)";
    else if (be32(b + 4) != (size - head) / info->pixels || (size - head) % info->pixels)
        why = "its size is not what its header's image count says";
    if (f)
        fclose(f);
    if (why) {
        fprintf(stderr, "anomaly: %s: %s\n", path, why);
        free(b);
        return NULL;
    }
    *im = (vae_images){.data = b + head, .type = VAE_U8, .n = be32(b + 4),
                       .width = info->width, .height = info->height,
                       .channels = info->channels}; /* labels: none */
    return b;
}

int main(int argc, char **argv)
{
    size_t k = 0, top = 10;
    char nul = 0, *end = &nul; /* where strtoul stopped: at the end if all digits */
    if (argc > 3 && !strcmp(argv[1], "-k"))
        k = strtoul(argv[2], &end, 10), argc -= 2, argv += 2;
    if (argc == 4 && !*end)
        top = strtoul(argv[3], &end, 10);
    if (*end || argc < 3 || argc > 4 || top == 0) {
        fprintf(stderr, "usage: anomaly [-k K] MODEL.bin IMAGES-idx3-ubyte [TOP]\n");
        return 2;
    }
    vae *m = NULL;
    vae_error err;
    if (vae_load(argv[1], &m, &err) != 0) {
        fprintf(stderr, "anomaly: %s\n", err.message);
        return 1;
    }
    vae_images im;
    unsigned char *file = read_images(argv[2], vae_describe(m), &im);
    double *score = file ? malloc(im.n * sizeof *score + 1) : NULL;
    int rc = 1;
    if (file && !score) {
        fprintf(stderr, "anomaly: out of memory for %zu scores\n", im.n);
    } else if (score && vae_score(m, &im, k, 1, score, &err) != 0) {
        fprintf(stderr, "anomaly: %s\n", err.message);
    } else if (score) {
        /* The TOP highest, a pass each (ties: the lower index); printed is spent. */
        for (size_t t = 0; t < im.n && t < top; t++) {
            size_t best = 0;
            for (size_t i = 1; i < im.n; i++)
                best = score[i] > score[best] ? i : best;
            printf("%zu %.6f\n", best, score[best]);
            score[best] = -INFINITY;
        }
        rc = 0;
    }
    free(score);
    free(file);
    vae_free(m);
    return rc;
}
