/* make_seeds.c - writes the fuzzers' seed corpus (tests/fuzz/seeds/): small
 * valid IDX files, raw and gzip, and small checkpoints of the current version,
 * so the fuzzers start from inputs that get past every check. The seeds of
 * older versions (v2-*.bin, v3-*.bin) were written by earlier vae versions
 * and are kept as they are. The image seeds are small PNGs of every kind
 * libpng's simplified API writes and JPEGs of every subsampling, baseline
 * and progressive, for vae import's decoders. Run: fuzz_make_seeds SEEDS_DIR (scripts/fuzz.sh
 * --reseed does). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>
#include <turbojpeg.h>
#include <zlib.h>

#include "ckpt.h"

static int write_raw(const char *dir, const char *name, const void *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, n, fp) != n || fclose(fp) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* members > 1 writes that many gzip members, one after another. */
static int write_gz(const char *dir, const char *name, const void *b, size_t n,
                    int members)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    remove(path);
    size_t per = n / (size_t)members;
    for (int k = 0; k < members; k++) {
        gzFile gz = gzopen(path, k ? "ab9" : "wb9");
        size_t len = k == members - 1 ? n - per * (size_t)k : per;
        if (!gz || gzwrite(gz, (const char *)b + per * (size_t)k, (unsigned)len) != (int)len ||
            gzclose(gz) != Z_OK) {
            fprintf(stderr, "make_seeds: cannot write %s\n", path);
            return -1;
        }
    }
    return 0;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static int idx_seeds(const char *dir)
{
    enum { N = 3, R = 28, C = 28 };
    static unsigned char img[16 + N * R * C], lab[8 + N], odd[16 + 2 * 3 * 4];
    be32(img, 0x803), be32(img + 4, N), be32(img + 8, R), be32(img + 12, C);
    for (size_t i = 0; i < N * R * C; i++)
        img[16 + i] = (unsigned char)((i * 7) % 251);
    be32(lab, 0x801), be32(lab + 4, N);
    for (int i = 0; i < N; i++)
        lab[8 + i] = (unsigned char)(i * 3);
    be32(odd, 0x803), be32(odd + 4, 2), be32(odd + 8, 3), be32(odd + 12, 4);
    for (int i = 0; i < 24; i++)
        odd[16 + i] = (unsigned char)(i * 11);
    return write_raw(dir, "images-3x28x28", img, sizeof img) ||
           write_raw(dir, "labels-3", lab, sizeof lab) ||
           write_raw(dir, "images-2x3x4", odd, sizeof odd) ||
           write_gz(dir, "images-3x28x28.gz", img, sizeof img, 1) ||
           write_gz(dir, "labels-3.gz", lab, sizeof lab, 1) ||
           write_gz(dir, "images-2x3x4-two-members.gz", odd, sizeof odd, 2);
}

/* A w x h PNG of format fmt (libpng's simplified API), pixels a pattern. */
static int png_seed(const char *dir, const char *name, unsigned w, unsigned h,
                    png_uint_32 fmt)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = w, im.height = h, im.format = fmt;
    size_t n = PNG_IMAGE_SIZE(im);
    unsigned char *px = malloc(n), cmap[256 * 3];
    if (!px)
        return -1;
    for (size_t i = 0; i < n; i++)
        px[i] = (unsigned char)(i * 29 + i / 7);
    for (size_t i = 0; i < sizeof cmap; i++)
        cmap[i] = (unsigned char)(i * 5);
    if (fmt & PNG_FORMAT_FLAG_COLORMAP) {
        im.colormap_entries = 16;
        for (size_t i = 0; i < n; i++)
            px[i] %= 16;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int ok = png_image_write_to_file(&im, path, 0, px, 0,
                                     fmt & PNG_FORMAT_FLAG_COLORMAP ? cmap : NULL);
    if (!ok)
        fprintf(stderr, "make_seeds: %s: %s\n", path, im.message);
    png_image_free(&im);
    free(px);
    return ok ? 0 : -1;
}

/* A w x h JPEG (TurboJPEG) of the subsampling, grey when TJSAMP_GRAY. */
static int jpeg_seed(const char *dir, const char *name, int w, int h, int samp, int flags)
{
    tjhandle tj = tjInitCompress();
    size_t n = (size_t)w * (size_t)h * 3;
    unsigned char *px = malloc(n), *jpg = NULL;
    unsigned long len = 0;
    int rc = -1;
    if (!tj || !px)
        goto done;
    for (size_t i = 0; i < n; i++)
        px[i] = (unsigned char)(i * 13 + i / 11);
    if (tjCompress2(tj, px, w, 0, h, samp == TJSAMP_GRAY ? TJPF_GRAY : TJPF_RGB, &jpg, &len,
                    samp, 80, flags) != 0) {
        fprintf(stderr, "make_seeds: %s: %s\n", name, tjGetErrorStr2(tj));
        goto done;
    }
    rc = write_raw(dir, name, jpg, len);
done:
    tjFree(jpg);
    free(px);
    if (tj)
        tjDestroy(tj);
    return rc;
}

static int image_seeds(const char *dir)
{
    return png_seed(dir, "grey-5x3.png", 5, 3, PNG_FORMAT_GRAY) ||
           png_seed(dir, "grey-alpha-4x4.png", 4, 4, PNG_FORMAT_GA) ||
           png_seed(dir, "rgb-7x2.png", 7, 2, PNG_FORMAT_RGB) ||
           png_seed(dir, "rgba-3x5.png", 3, 5, PNG_FORMAT_RGBA) ||
           png_seed(dir, "rgba16-4x3.png", 4, 3, PNG_FORMAT_LINEAR_RGB_ALPHA) ||
           png_seed(dir, "palette-6x4.png", 6, 4, PNG_FORMAT_RGB_COLORMAP) ||
           jpeg_seed(dir, "grey-8x8.jpg", 8, 8, TJSAMP_GRAY, 0) ||
           jpeg_seed(dir, "444-9x7.jpg", 9, 7, TJSAMP_444, 0) ||
           jpeg_seed(dir, "420-17x13.jpg", 17, 13, TJSAMP_420, 0) ||
           jpeg_seed(dir, "422-16x8.jpg", 16, 8, TJSAMP_422, 0) ||
           jpeg_seed(dir, "411-32x8.jpg", 32, 8, TJSAMP_411, 0) ||
           jpeg_seed(dir, "420-progressive-16x16.jpg", 16, 16, TJSAMP_420, TJFLAG_PROGRESSIVE);
}

static int ckpt_seed(const char *dir, const char *name, const model_config *cfg,
                     uint64_t step)
{
    model_net m;
    err_msg err;
    if (model_init(&m, cfg, &err)) {
        fprintf(stderr, "make_seeds: %s\n", err.text);
        return -1;
    }
    rng_state r;
    rng_seed(&r, 7);
    model_init_params(&m, &r);
    float *mom = calloc(2 * m.n_params, sizeof(float));
    if (!mom)
        return -1;
    for (size_t i = 0; i < m.n_params; i++)
        mom[i] = 0.01f * (float)(i % 5), mom[m.n_params + i] = 1e-4f * (float)(i % 3);
    ckpt_train t = ckpt_train_defaults();
    t.set.seed = 3, t.epoch = 2, t.step = step, t.adam_t = 40 + step, t.set.batch = 8;
    t.set.sched.lr = 1e-3, t.set.beta = step ? 0.5 : 1.0, t.set.binarize = step ? 2 : 0;
    t.set.noise = step ? 0.2 : 0.0, t.sum_rec = step ? 12.5 : 0.0;
    t.sum_kl = step ? 1.5 : 0.0, t.n_seen = step * 8, t.seconds = step ? 0.25 : 0.0;
    /* The mid-epoch seed trains with the staged schedule, KL warm-up and
     * Glorot init (version 4's controls); the others with the defaults. */
    if (step) {
        t.set.sched.kind = SCHEDULE_STAGED, t.set.kl_warmup = 5, t.set.init = 1;
        t.set.adam_eps = 1e-4;
        t.set.objective = 1, t.set.draws = 3, t.sum_obj = 13.5; /* the IW bound, 3 draws */
    }
    /* The training set's fingerprint (version 3); the mid-epoch seed keeps
     * it unknown (all zero), as a resumed version-2 file had it. */
    if (!step) {
        idx_fingerprint fp = {100, 2, (uint64_t)cfg->x_dim / 2, 0x1234abcdu, 0x0badf00du};
        t.data = fp;
    }
    rng_seed(&t.rng_data, 1);
    rng_seed(&t.rng_noise, 2);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = ckpt_save(path, &m, mom, mom + m.n_params, &t, &err);
    if (rc)
        fprintf(stderr, "make_seeds: %s\n", err.text);
    free(mom);
    model_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEEDS_DIR (with idx/, ckpt/ and image/ in it)\n",
                argv[0]);
        return 2;
    }
    char idx_dir[4096], ckpt_dir[4096], image_dir[4096];
    snprintf(idx_dir, sizeof idx_dir, "%s/idx", argv[1]);
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", argv[1]);
    snprintf(image_dir, sizeof image_dir, "%s/image", argv[1]);
    model_config relu = {4, 1, {3}, 2, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_config tanh2 = {6, 2, {5, 3}, 1, MODEL_ACT_TANH, MODEL_LIK_CB, 3, MODEL_ARCH_MLP};
    model_config conv = {36, 1, {2}, 2, MODEL_ACT_LEAKY, MODEL_LIK_GAUSSIAN, 0, MODEL_ARCH_CONV};
    if (idx_seeds(idx_dir) || image_seeds(image_dir) || ckpt_seed(ckpt_dir, "tiny-relu.bin", &relu, 0) ||
        ckpt_seed(ckpt_dir, "tiny-tanh-two-hidden-mid-epoch.bin", &tanh2, 3) ||
        ckpt_seed(ckpt_dir, "tiny-conv.bin", &conv, 0))
        return 1;
    return 0;
}
