/* par.h - the thread team. Training is data-parallel: each of T threads
 * runs the model on its share of a batch with single-threaded sgemm calls,
 * then each applies Adam to its share of the parameters. The team owns the
 * cores, so par_init makes OpenBLAS single-threaded: two pools of spinning
 * threads on the same cores would fight over them. Work is split into
 * contiguous shares that do not depend on timing, so a run is reproducible
 * for a given T. Without par_init everything runs on the caller (T = 1). */
#ifndef VAE_PAR_H
#define VAE_PAR_H

#include <stddef.h>

#include "err.h"

#define PAR_MAX_THREADS 64

/* One thread's part of a job: k is the thread (0 is the caller), T the team. */
typedef void (*par_task)(void *ctx, size_t k, size_t T);

/* Starts threads-1 workers (the caller is thread 0) and sets OpenBLAS to one
 * thread; under an address-space limit, first maps a work buffer of
 * OpenBLAS's for each thread (blasbuf_reserve). Returns 0, or -1 with err.
 * Calling it again first stops the old team. */
int par_init(size_t threads, err_msg *err);

/* Threads in the team, the caller included (1 without a team). */
size_t par_threads(void);

/* Runs fn(ctx, k, T) on every thread k of the team; returns when all are done. */
void par_run(par_task fn, void *ctx);

/* Inside a par_run task: waits until every thread of the team has called
 * it (as often). All T threads must call it, or none. No-op for one thread. */
void par_barrier(void);

/* Share k of T of [0, n): contiguous, each (but the last non-empty one) a
 * multiple of align long; trailing shares may be empty (*begin == *end). */
void par_share(size_t n, size_t align, size_t k, size_t T, size_t *begin,
               size_t *end);

/* Stops and joins the workers. */
void par_shutdown(void);

#endif
