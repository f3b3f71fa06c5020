/* fuzz_idx.c - libFuzzer harness for the IDX parser (src/io/idx.c): every
 * input is read as an idx3 image file and as an idx1 label file, raw or,
 * if it starts with 1f 8b, through inflate. A parse either succeeds with
 * buffers of the size the header gives, or fails with a message. */
#define _GNU_SOURCE /* memfd_create */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "idx.h"
#include "fuzz_file.h"

/* Where the harness reads every byte it got, so the reads stay. */
static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    if (!path)
        return 0;
    err_msg err;
    uint8_t *buf = NULL;
    size_t n, rows, cols, chans;
    err.text[0] = '\0';
    if (idx_read_images(path, &buf, &n, &rows, &cols, &chans, &err) == 0) {
        /* Touch every byte the header promised: ASan checks the size. */
        for (size_t i = 0; i < n * rows * cols * chans; i++)
            sink ^= buf[i];
        free(buf);
    } else if (err.text[0] == '\0') {
        abort(); /* a failure must say why */
    }
    err.text[0] = '\0';
    if (idx_read_labels(path, &buf, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            sink ^= buf[i];
        free(buf);
    } else if (err.text[0] == '\0') {
        abort();
    }
    return 0;
}
