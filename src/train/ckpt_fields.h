/* ckpt_fields.h - the checkpoint's header: its 8-byte fields, in file
 * order, each version's count (docs/checkpoint.md is the format). ckpt.c
 * reads and writes them; a setting's row (settings.c) names its own. */
#ifndef VAE_CKPT_FIELDS_H
#define VAE_CKPT_FIELDS_H

#include "model.h"

/* Header fields, in file order; each is 8 bytes. */
enum {
    H_ARCH, H_X_DIM, H_N_HIDDEN, H_HIDDEN0, H_Z_DIM = H_HIDDEN0 + MODEL_MAX_HIDDEN,
    H_ACT, H_LIKELIHOOD, H_N_CLASSES, H_N_PARAMS,
    H_SEED, H_EPOCH, H_STEP, H_ADAM_T, H_BATCH, H_LR, H_BETA, H_BINARIZE, H_NOISE,
    H_RNG_DATA, H_RNG_NOISE = H_RNG_DATA + 6, H_SUM_REC = H_RNG_NOISE + 6,
    H_SUM_KL, H_N_SEEN, H_SECONDS,
    H_COUNT_V2, /* version 2 ends here; version 3 adds the data fingerprint */
    H_DATA_N = H_COUNT_V2, H_DATA_ROWS, H_DATA_COLS, H_DATA_PIXELS_CRC,
    H_DATA_LABELS_CRC,
    H_COUNT_V3, /* version 4 adds the training controls */
    H_SCHED = H_COUNT_V3, H_WARMUP, H_HORIZON, H_EVERY, H_GAMMA, H_KL_WARMUP,
    H_ADAM_BETA1, H_ADAM_BETA2, H_ADAM_EPS, H_INIT, H_VALID_N, H_BEST_EPOCH,
    H_BEST_LOSS, H_OBJECTIVE, H_DRAWS, H_SUM_OBJ,
    H_COUNT_V4, /* version 5 adds the image shape */
    H_HEIGHT = H_COUNT_V4, H_WIDTH, H_CHANNELS,
    H_COUNT_V5, /* version 6 adds the gradient estimator */
    H_ESTIMATOR = H_COUNT_V5,
    H_COUNT_V6, /* version 7 adds the second stochastic layer */
    H_Z2_DIM = H_COUNT_V6, H_N_HIDDEN2, H_HIDDEN2_0,
    H_COUNT = H_HIDDEN2_0 + MODEL_MAX_HIDDEN
};
#endif
