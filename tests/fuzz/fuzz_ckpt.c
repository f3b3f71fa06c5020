/* fuzz_ckpt.c - libFuzzer harness for the checkpoint reader (src/io/ckpt.c).
 * Each input is read twice: as it is, and with its last 4 bytes replaced
 * by the right CRC-32, so the fuzzer also gets past the checksum into the
 * header, architecture and value checks. A read either succeeds with a
 * model that initialises from it, or fails with a message. */
#define _GNU_SOURCE /* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ckpt.h"
#include "fuzz_file.h"

static void read_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    if (!path)
        return;
    ckpt_data d;
    err_msg err;
    err.text[0] = '\0';
    if (ckpt_read(path, &d, &err) != 0) {
        if (err.text[0] == '\0')
            abort(); /* a failure must say why */
        return;
    }
    /* What 'vae sample' does next: a model of that shape, its parameters. */
    model_net m;
    if (model_init(&m, &d.cfg, &err) != 0)
        abort(); /* ckpt_read accepted an architecture model_init refuses */
    if (m.n_params != d.n_params)
        abort();
    memcpy(m.params, d.params, d.n_params * sizeof(float));
    volatile float sink = d.adam_m[d.n_params - 1] + d.adam_v[d.n_params - 1];
    (void)sink;
    model_free(&m);
    ckpt_data_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_one(data, size);
    if (size < 8 || size > (1u << 24))
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    uint32_t crc = (uint32_t)crc32(0L, fixed, (uInt)(size - 4));
    for (int i = 0; i < 4; i++)
        fixed[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    read_one(fixed, size);
    free(fixed);
    return 0;
}
