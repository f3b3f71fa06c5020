/* par.c - the worker pool (see include/par.h).
 *
 * A job is published by bumping a generation counter. Workers spin briefly
 * for the next job (jobs come every few hundred microseconds during a
 * step) and then sleep on a condition variable, so they never compete
 * with OpenBLAS's threads during a long GEMM. */
#define _POSIX_C_SOURCE 200809L
#include "par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PAR_MAX_THREADS 64
#define SPIN_ROUNDS 2000 /* pause instructions (tens of us) before sleeping */

static struct {
    size_t threads;
    pthread_t tid[PAR_MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint gen;       /* bumped once per job */
    atomic_uint pending;   /* workers still running the current job */
    atomic_int quit;
    par_fn fn;
    void *ctx;
    size_t n, grain;
} pool = {.threads = 1, .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER};

/* Thread k's chunk of [0, n): equal shares rounded up to grain. */
static void chunk(size_t k, size_t *b, size_t *e)
{
    size_t T = pool.threads, g = pool.grain;
    size_t units = (pool.n + g - 1) / g;
    size_t per = (units + T - 1) / T;
    size_t lo = k * per * g, hi = (k + 1) * per * g;
    *b = lo < pool.n ? lo : pool.n;
    *e = hi < pool.n ? hi : pool.n;
}

static void *worker(void *arg)
{
    size_t k = (size_t)(uintptr_t)arg;
    unsigned seen = atomic_load(&pool.gen);
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen &&
               !atomic_load(&pool.quit)) {
            if (++spins < SPIN_ROUNDS) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            pthread_mutex_lock(&pool.lock);
            while (atomic_load(&pool.gen) == seen && !atomic_load(&pool.quit))
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        if (atomic_load(&pool.quit))
            return NULL;
        seen = g;
        size_t b, e;
        chunk(k, &b, &e);
        if (b < e)
            pool.fn(pool.ctx, b, e);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
}

void par_shutdown(void)
{
    if (pool.threads <= 1)
        return;
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.quit, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (size_t k = 1; k < pool.threads; k++)
        pthread_join(pool.tid[k], NULL);
    pool.threads = 1;
    atomic_store(&pool.quit, 0);
}

int par_init(size_t threads, err_msg *err)
{
    par_shutdown();
    if (threads < 1)
        threads = 1;
    if (threads > PAR_MAX_THREADS)
        threads = PAR_MAX_THREADS;
    pool.threads = threads;
    for (size_t k = 1; k < threads; k++) {
        int rc = pthread_create(&pool.tid[k], NULL, worker, (void *)(uintptr_t)k);
        if (rc) {
            pool.threads = k;
            par_shutdown();
            return err_sys(err, rc, "cannot start worker thread %zu", k);
        }
    }
    return 0;
}

size_t par_threads(void)
{
    return pool.threads;
}

void par_for(size_t n, size_t grain, par_fn fn, void *ctx)
{
    if (grain == 0)
        grain = 1;
    if (pool.threads <= 1 || n <= grain) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.grain = grain;
    atomic_store(&pool.pending, (unsigned)(pool.threads - 1));
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    size_t b, e;
    chunk(0, &b, &e);
    if (b < e)
        fn(ctx, b, e);
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) != 0) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}
