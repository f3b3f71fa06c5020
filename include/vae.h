/* vae.h - libvae: a model trained by the vae command, used from C.
 *
 * Load a checkpoint (vae train's --ckpt file, any version and kind the
 * command writes), then encode images, decode latent codes, sample, and
 * reconstruct, and score images by the negative ELBO or the
 * importance-weighted bound (the anomaly score). The numbers are the vae
 * command's: the same images and seed give what `vae encode`, `vae score`,
 * `vae sample` and `vae reconstruct` give with --threads 1, bit for bit
 * when OpenBLAS runs on one thread as the command's does (a product split
 * across OpenBLAS threads may round differently in the last digits).
 *
 * Images are row-major, channels last (a colour pixel's R, G, B together),
 * as vae's data files hold them: height * width * channels values an image
 * (vae_describe's `pixels`; vae_images), either floats in [0, 1] (VAE_F32)
 * or bytes 0..255 (VAE_U8, read as v * (1.0f / 255), the same floats). A model trained on binarized images
 * (vae_info.binarized) sees each image binarized by the fixed draws vae
 * uses for test images, the draw of image i of a call fixed by i. Arrays
 * are the caller's: the library reads its inputs and writes its outputs
 * and keeps no pointer to either.
 *
 * Errors: every call that can fail returns 0 on success and -1 on failure,
 * with a code and a message in *err (err may be NULL). The library never
 * prints, never exits, and never changes state the program owns (signal
 * handlers, the locale, the current directory, OpenBLAS's thread count).
 *
 * Threads: a loaded model is read-only; any number of threads may call the
 * library on one model at once. Each call allocates its own work space and
 * runs on the calling thread; its matrix products go through OpenBLAS with
 * the thread count the program set (OPENBLAS_NUM_THREADS, or
 * openblas_set_num_threads). A program that calls from many threads at
 * once usually wants OpenBLAS at one thread. See docs/library.md. */
#ifndef VAE_H
#define VAE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version -------------------------------------------------------------- */

/* The version this header belongs to. A minor version adds calls and
 * fields at the end of vae_info, never changes or removes one; the major
 * version is the shared library's (libvae.so.0). */
#define VAE_VERSION_MAJOR 0
#define VAE_VERSION_MINOR 4
#define VAE_VERSION_PATCH 0
#define VAE_VERSION_STRING "0.4.0"

#if defined(__GNUC__)
#define VAE_API __attribute__((visibility("default")))
#else
#define VAE_API
#endif

/* The library's version at run time, "MAJOR.MINOR.PATCH" (static storage). */
VAE_API const char *vae_version(void);

/* ---- errors --------------------------------------------------------------- */

/* What went wrong, in vae_error.code. */
typedef enum vae_status {
    VAE_OK = 0,
    VAE_EARG = 1,    /* an argument: NULL, a size, a label out of range */
    VAE_ELOAD = 2,   /* the checkpoint: missing, not a regular file, unreadable, corrupt,
                        truncated, newer, or too large for the memory */
    VAE_ENOMEM = 3   /* out of memory */
} vae_status;

/* A failed call's code and message (a sentence naming the file or the
 * argument and the problem). The caller owns it; one per thread. */
typedef struct vae_error {
    int code;          /* a vae_status */
    char message[512];
} vae_error;

/* ---- a model -------------------------------------------------------------- */

/* A loaded model (opaque). */
typedef struct vae vae;

/* What a model is. Owned by the model: valid until vae_free. */
typedef struct vae_info {
    size_t width, height, channels; /* image size: channels 1 (grey) or 3 (RGB) */
    size_t pixels;                  /* values an image: height * width * channels */
    size_t latent;                  /* the code the decoder reads (h1 with two layers) */
    size_t latent2;                 /* the second stochastic layer's size (h2), else 0 */
    size_t classes;                 /* labels of a conditional model, else 0 */
    const char *arch;               /* "mlp" or "conv" */
    const char *likelihood;         /* p(x|z): "bernoulli", "cb" or "gaussian" */
    int binarized;                  /* trained on binarized images (see vae_score) */
} vae_info;

/* Loads the model of a checkpoint written by vae train. Returns 0 and the
 * model in *out (free it with vae_free), or -1 with err, *out then NULL:
 * VAE_ELOAD when the file cannot be loaded (missing, not a regular file,
 * unreadable, corrupt, truncated, newer, or too large for the memory: the
 * message says which; a FIFO is refused at once, never waited on),
 * VAE_EARG for a NULL argument, VAE_ENOMEM for no memory for the handle. */
VAE_API int vae_load(const char *path, vae **out, vae_error *err);

/* Frees a model; NULL is a no-op. No call on it may be running. */
VAE_API void vae_free(vae *m);

/* The model's description (never NULL for a loaded model). */
VAE_API const vae_info *vae_describe(const vae *m);

/* ---- using it ------------------------------------------------------------- */

/* How images are passed. */
typedef enum vae_pixels {
    VAE_F32 = 0, /* float, 0.0 to 1.0 */
    VAE_U8 = 1   /* uint8_t, 0 to 255, read as v * (1.0f / 255) */
} vae_pixels;

/* n images the caller holds: data is n * height * width * channels values
 * of type. The size must be the model's (vae_describe). labels: a
 * conditional model's n labels (each below its classes), required;
 * ignored, and may be NULL, for any other model. The layout is fixed for
 * libvae.so.0. */
typedef struct vae_images {
    const void *data;
    vae_pixels type;
    size_t n;
    size_t width, height, channels;
    const uint8_t *labels;
} vae_images;

/* The posterior q(z|x) of the images: its means into mu and its
 * log-variances into logvar (logvar may be NULL), n rows of latent +
 * latent2 floats each: h1's, then (two stochastic layers) q(h2|h1)'s at
 * h1's mean, as vae encode's columns. Returns 0, or -1 with err. */
VAE_API int vae_encode(const vae *m, const vae_images *images, float *mu, float *logvar,
                       vae_error *err);

/* The pixel means of p(x|z) for n codes z (n rows of `latent` floats: h1
 * with two layers; labels as in vae_images) into out (n x pixels floats in
 * [0, 1]). Returns 0, or -1 with err: VAE_EARG also for a code so large
 * (|z| near FLT_MAX) that the decoder overflows float. */
VAE_API int vae_decode(const vae *m, const float *z, size_t n, const uint8_t *labels,
                       float *out, vae_error *err);

/* n draws from the model (z from the prior, p(z|y) for a conditional
 * model; h2 then h1 with two layers), decoded to pixel means in out (n x
 * pixels floats). The same seed gives the same images, and vae sample's
 * --n n --seed seed (--label y) gives these. Returns 0, or -1 with err. */
VAE_API int vae_sample(const vae *m, size_t n, uint64_t seed, const uint8_t *labels,
                       float *out, vae_error *err);

/* Each image decoded from its posterior mean: pixel means into out (n x
 * pixels floats), as the right-hand tiles of vae reconstruct. Returns 0,
 * or -1 with err. */
VAE_API int vae_reconstruct(const vae *m, const vae_images *images, float *out,
                            vae_error *err);

/* Each image's anomaly score in nats into score (n doubles): with k = 0
 * the negative ELBO, -log p(x|z) + KL(q(z|x) || p(z)) at one draw of z (vae
 * score --seed seed); with k from 1 to 1000000 the importance-weighted
 * bound on -log p(x) with k draws (vae score --iw k --seed seed), tighter
 * as k grows. The draws depend on the seed and an image's place in the
 * call. Returns 0, or -1 with err. */
VAE_API int vae_score(const vae *m, const vae_images *images, size_t k, uint64_t seed,
                      double *score, vae_error *err);

#ifdef __cplusplus
}
#endif

#endif
