/* par.h - a small process-wide pool of worker threads for the elementwise
 * loops (Adam, the per-pixel loss), so they use the cores OpenBLAS uses for
 * the GEMMs. Work is split into contiguous chunks, so results do not depend
 * on the number of threads. Without par_init everything runs serially. */
#ifndef VAE_PAR_H
#define VAE_PAR_H

#include <stddef.h>

#include "err.h"

/* Work on the half-open range [begin, end). */
typedef void (*par_fn)(void *ctx, size_t begin, size_t end);

/* Starts threads-1 workers (the caller is the first thread). Returns 0, or
 * -1 with err. Calling it again first stops the old pool. */
int par_init(size_t threads, err_msg *err);

/* Threads in the pool, the caller included (1 without a pool). */
size_t par_threads(void);

/* Runs fn over [0, n) split into one chunk per thread, each chunk a
 * multiple of grain long (but the last); returns when all are done. */
void par_for(size_t n, size_t grain, par_fn fn, void *ctx);

/* Stops and joins the workers. */
void par_shutdown(void);

#endif
