/* blasbuf.h - room for OpenBLAS's work buffers under an address-space
 * limit (ulimit -v, RLIMIT_AS).
 *
 * Each OpenBLAS matrix product takes a work buffer from a table of them; a
 * buffer is mapped (BLASBUF_BYTES) the first time that many products run
 * at once and stays mapped. When the mapping fails, OpenBLAS 0.3.21 retries
 * for ever (OpenMathLib/OpenBLAS#5289): the caller hangs, and so does exit,
 * which waits for OpenBLAS's threads. So, under a limit, vae loads OpenBLAS
 * with one thread (cpu_tune_openblas) and, before its team runs, checks
 * that a buffer for each thread fits and maps them while nothing else has
 * taken the room. Without a limit none of this does anything. */
#ifndef VAE_BLASBUF_H
#define VAE_BLASBUF_H

#include <stddef.h>

#include "err.h"

/* One buffer: BUFFER_SIZE (32 << 22) of Debian's OpenBLAS 0.3.21 on x86-64,
 * as strace shows its mmap calls. */
#define BLASBUF_BYTES ((size_t)128 << 20)

/* Address space kept free beside the buffers, for the mappings a first
 * product makes besides its buffer. */
#define BLASBUF_SLACK ((size_t)16 << 20)

/* 1 when the process has a finite address-space limit, else 0. */
int blasbuf_limited(void);

/* How many threads' buffers fit in the address space left now: SIZE_MAX
 * without a limit. */
size_t blasbuf_fit(void);

/* Under a limit: checks that threads buffers fit and maps them, so that
 * that many products at once never need another. Returns 0, or -1 with
 * err (naming the limit, the room and what to change). */
int blasbuf_reserve(size_t threads, err_msg *err);

#endif
