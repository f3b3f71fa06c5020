/* fuzz_image.c - libFuzzer harness for vae import's decoders
 * (import_decode_memory in src/io/import.c: PNG through libpng's simplified
 * API, JPEG through TurboJPEG, picked by the first bytes). A decode either
 * succeeds with w x h x 3 bytes of pixels, within the pixel limit, or fails
 * with a message that names the input. The limit here is 2^20 pixels, not
 * import's 2^24: the fuzzer makes many small files that declare a large
 * size, and each of those would cost 64 MB and a long decode at 2^24 while
 * finding nothing the smaller limit does not.
 *
 * libpng and libjpeg-turbo are the system's, not built with coverage, so the
 * fuzzer is guided by vae's code alone and mutates blindly inside them.
 * Most blind mutations of a PNG break a chunk's CRC, which libpng refuses
 * before looking further; so each PNG chunk's CRC is made right again
 * before the decode, and the mutations reach the chunks' contents. And
 * each outcome (an error message with its numbers left out, or a decoded
 * size class) bumps a counter of its own in libFuzzer's extra counters, so
 * an input that reaches a new error path inside a library is kept too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "import.h"

#define FUZZ_MAX_PIXELS ((uint64_t)1 << 20)

/* Where the harness reads every byte it got, so the reads stay. */
static volatile uint8_t sink;

/* libFuzzer reads counters in this section as coverage (without libFuzzer,
 * in the replay runner, it is an array like any other). */
#define N_OUTCOMES 512
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t outcomes[N_OUTCOMES];

/* FNV-1a of text without its digits, into one of the outcome counters. */
static void note_outcome(const char *text, size_t extra)
{
    uint32_t h = 2166136261u ^ (uint32_t)extra;
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9')
            h = (h ^ (uint8_t)*p) * 16777619u;
    outcomes[h % N_OUTCOMES]++;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* If b is a PNG: every whole chunk's CRC (of its type and data) rewritten. */
static void fix_png_crcs(uint8_t *b, size_t n)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(b, sig, 8) != 0)
        return;
    for (size_t at = 8; at + 12 <= n;) {
        uint32_t len = be32(b + at);
        if (len > n - at - 12)
            break;
        uLong crc = crc32(0L, b + at + 4, (uInt)len + 4);
        uint8_t *c = b + at + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_png_crcs(copy, size);
    err_msg err;
    err.text[0] = '\0';
    uint8_t *rgb = NULL;
    size_t w = 0, h = 0;
    /* The background from the input's length: both composite paths run. */
    uint8_t bg = size % 2 ? 0 : 255;
    if (import_decode_memory(copy, size, "input", bg, FUZZ_MAX_PIXELS, &rgb, &w, &h,
                             &err) == 0) {
        if (w == 0 || h == 0 || (uint64_t)w * h > FUZZ_MAX_PIXELS)
            abort(); /* the limit was not kept */
        /* Touch every byte promised: ASan checks the size. */
        for (size_t i = 0; i < w * h * 3; i++)
            sink ^= rgb[i];
        free(rgb);
        /* The size class: which power of 2 w and h are below. */
        note_outcome("decoded", (size_t)(64 - __builtin_clzll(w)) * 64 +
                                    (size_t)(64 - __builtin_clzll(h)));
    } else if (strncmp(err.text, "input: ", 7) != 0) {
        abort(); /* a failure must say why, naming the file */
    } else {
        note_outcome(err.text, 0);
    }
    free(copy);
    return 0;
}
