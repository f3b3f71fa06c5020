/* export.h - a model's weights in the safetensors format, for PyTorch and
 * the other frameworks that read it (scripts/vae_torch.py loads it).
 *
 * The file: an 8-byte little-endian header length N, N bytes of JSON
 * (padded with spaces so the data starts 8-byte aligned), then the tensors'
 * bytes, little-endian and contiguous, in the order the header lists them.
 * The header maps each tensor's name to its dtype, shape and data_offsets
 * [begin, end) (relative to the end of the header); "__metadata__" holds
 * the architecture as strings (latent2 and hidden2 only for a model of
 * two stochastic layers, so one-layer files are as before). Tensor names
 * are the state_dict keys of the modules in scripts/vae_torch.py:
 *
 *   MLP   encoder.{2i}.weight/bias    encoder hidden layer i (Linear; an
 *                                     activation sits at 2i+1)
 *         head.weight/bias            [mu | logvar]
 *         decoder.{2j}.weight/bias    decoder layer j, the last the output
 *         prior.0 / prior.2 .weight/bias   conditional only: p(z | y)
 *         encoder2.{2i}.weight/bias   two stochastic layers only: q(h2|h1),
 *                                     hidden layer i (from h1 = z)
 *         head2.weight/bias           [mu2 | logvar2] of h2
 *         decoder2.{2j}.weight/bias   p(h1|h2), layer j from h2; the last
 *                                     (j = n_hidden2) its head [mu | logvar]
 *                                     of h1
 *   conv  encoder.{3i}.weight/bias    Conv2d of block i (3i+1 the activation)
 *         encoder.{3i+2}.weight/bias/running_mean/running_var/
 *               num_batches_tracked  its BatchNorm2d
 *         head.weight/bias            Linear F -> [mu | logvar]
 *         decoder_input.weight/bias   Linear z -> F
 *         decoder.{3j}...             ConvTranspose2d j and its BatchNorm2d
 *                                     (the last block has none)
 *
 * Every tensor is F32 but num_batches_tracked, an I64 scalar (PyTorch's
 * type) holding the training steps taken, the number of times training
 * moved the running averages. */
#ifndef VAE_EXPORT_H
#define VAE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

/* Two tensors per linear layer, seven per conv block: at least the most
 * either architecture has (the MLP of two stochastic layers, four networks
 * of MODEL_MAX_HIDDEN hidden layers and a head or output each: 2 x
 * MODEL_MAX_LAYERS = 40; the conv VAE: 7 x (MODEL_MAX_BLOCKS - 1) for the
 * blocks, the last bare, + 2 + 4 = 55). test_export checks both. */
#define EXPORT_MAX_TENSORS (2 * MODEL_MAX_LAYERS + 7 * MODEL_MAX_BLOCKS)
#define EXPORT_NAME_LEN 48

typedef enum export_dtype { EXPORT_F32 = 0, EXPORT_I64 = 1 } export_dtype;

/* One tensor of the file: where its values are in m->params (F32), or its
 * value (an I64 scalar). */
typedef struct export_tensor {
    char name[EXPORT_NAME_LEN];
    export_dtype dtype;
    size_t ndim;     /* 0 for a scalar */
    size_t shape[4];
    size_t count;    /* elements: the product of shape (1 for a scalar) */
    size_t off;      /* F32: index of the first value in m->params */
    int64_t value;   /* I64: the scalar */
} export_tensor;

/* What the file records besides the parameters. */
typedef struct export_info {
    const char *vae_version; /* "0.4.0" */
    uint64_t epochs;         /* completed training epochs */
    uint64_t steps;          /* training steps taken (BatchNorm's num_batches_tracked) */
    /* The run's settings that go into the metadata, as text (the caller
     * picks and formats them: cli from the settings table); n_meta pairs. */
    const char *const *meta_keys;
    const char *const *meta_values;
    size_t n_meta;
} export_info;

/* Lists m's tensors in file order into t (EXPORT_MAX_TENSORS entries).
 * Returns how many. */
size_t export_tensors(const model_net *m, const export_info *info, export_tensor *t);

/* The header of m's file: the JSON, space-padded so 8 + *len is a
 * multiple of 8, malloc'd into *json with a NUL after its *len bytes; and
 * the number of data bytes that follow it, into *data_len. Returns 0, or -1
 * with err (out of memory). */
int export_header(const model_net *m, const export_info *info, char **json,
                  size_t *len, size_t *data_len, err_msg *err);

/* Writes m's weights to path as safetensors, atomically (afile): the old
 * file stays if anything fails. Returns 0, or -1 with err naming path. */
int export_write(const char *path, const model_net *m, const export_info *info,
                 err_msg *err);

#endif
