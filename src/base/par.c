/* par.c - the thread team (see src/base/par.h).
 *
 * A job is published by bumping a generation counter. Workers spin for the
 * next job for a while (a training step publishes two jobs a few hundred
 * microseconds apart) and then sleep on a condition variable, so an idle
 * team costs nothing. No other threads compete for the cores: OpenBLAS is
 * single-threaded while a team exists. */
#define _POSIX_C_SOURCE 200809L
#include "par.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "blasbuf.h"

/* Pause instructions a worker spins for the next job before it sleeps:
 * some milliseconds, longer than the gaps inside a training epoch. */
#define SPIN_ROUNDS 100000

/* Pause instructions a thread spins at a barrier (or the caller for the
 * end of a job) before it starts yielding its core: some microseconds. */
#define BARRIER_SPINS 4000

static struct {
    size_t threads;
    pthread_t tid[PAR_MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint gen;     /* bumped once per job */
    unsigned start_gen;  /* gen when the workers were started */
    atomic_uint pending; /* workers still running the current job */
    atomic_int quit;
    par_task fn;
    void *ctx;
    atomic_uint bar_count; /* threads at the barrier */
    atomic_uint bar_gen;   /* bumped each time all have arrived */
} team = {.threads = 1, .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until the generation differs from seen or the team quits. */
static unsigned wait_for_job(unsigned seen)
{
    unsigned g;
    for (int spins = 0; spins < SPIN_ROUNDS; spins++) {
        g = atomic_load_explicit(&team.gen, memory_order_acquire);
        if (g != seen || atomic_load(&team.quit))
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&team.lock);
    while ((g = atomic_load(&team.gen)) == seen && !atomic_load(&team.quit))
        pthread_cond_wait(&team.wake, &team.lock);
    pthread_mutex_unlock(&team.lock);
    return g;
}

static void *worker(void *arg)
{
    size_t k = (size_t)(uintptr_t)arg;
    /* Not the current gen: a job may already have been published by the
     * time this thread first runs. */
    unsigned seen = team.start_gen;
    for (;;) {
        seen = wait_for_job(seen);
        if (atomic_load(&team.quit))
            return NULL;
        team.fn(team.ctx, k, team.threads);
        atomic_fetch_sub_explicit(&team.pending, 1, memory_order_release);
    }
}

void par_shutdown(void)
{
    if (team.threads <= 1)
        return;
    pthread_mutex_lock(&team.lock);
    atomic_store(&team.quit, 1);
    pthread_cond_broadcast(&team.wake);
    pthread_mutex_unlock(&team.lock);
    for (size_t k = 1; k < team.threads; k++)
        pthread_join(team.tid[k], NULL);
    team.threads = 1;
    atomic_store(&team.quit, 0);
}

int par_init(size_t threads, err_msg *err)
{
    par_shutdown();
    if (threads < 1 || threads > PAR_MAX_THREADS)
        return err_set(err, "%zu threads: need 1 to %d", threads, PAR_MAX_THREADS);
    openblas_set_num_threads(1);
    /* Each thread's products need a work buffer of their own. */
    if (blasbuf_reserve(threads, err))
        return -1;
    team.threads = threads;
    team.start_gen = atomic_load(&team.gen);
    for (size_t k = 1; k < threads; k++) {
        int rc = pthread_create(&team.tid[k], NULL, worker, (void *)(uintptr_t)k);
        if (rc) {
            team.threads = k;
            par_shutdown();
            return err_sys(err, rc, "cannot start worker thread %zu", k);
        }
    }
    return 0;
}

size_t par_threads(void)
{
    return team.threads;
}

void par_run(par_task fn, void *ctx)
{
    if (team.threads <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    team.fn = fn;
    team.ctx = ctx;
    atomic_store(&team.pending, (unsigned)(team.threads - 1));
    pthread_mutex_lock(&team.lock);
    atomic_fetch_add_explicit(&team.gen, 1, memory_order_release);
    pthread_cond_broadcast(&team.wake);
    pthread_mutex_unlock(&team.lock);
    fn(ctx, 0, team.threads);
    for (unsigned spins = 0;
         atomic_load_explicit(&team.pending, memory_order_acquire) != 0; spins++) {
        if (spins < BARRIER_SPINS)
            cpu_relax();
        else
            sched_yield();
    }
}

void par_barrier(void)
{
    if (team.threads <= 1)
        return;
    /* The generation is read before arriving: it can only move once every
     * thread has arrived, this one included. */
    unsigned gen = atomic_load_explicit(&team.bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&team.bar_count, 1, memory_order_acq_rel) + 1 ==
        team.threads) {
        atomic_store_explicit(&team.bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&team.bar_gen, 1, memory_order_release);
        return;
    }
    /* Spin (a step's barriers are microseconds apart), then yield the core:
     * on a machine with more busy threads than cores, the thread everyone
     * waits for may be the one that needs it. */
    for (unsigned spins = 0;
         atomic_load_explicit(&team.bar_gen, memory_order_acquire) == gen; spins++) {
        if (spins < BARRIER_SPINS)
            cpu_relax();
        else
            sched_yield();
    }
}

void par_share(size_t n, size_t align, size_t k, size_t T, size_t *begin,
               size_t *end)
{
    if (align == 0)
        align = 1;
    size_t units = (n + align - 1) / align;
    size_t per = (units + T - 1) / T * align;
    size_t lo = k * per, hi = lo + per;
    *begin = lo < n ? lo : n;
    *end = hi < n ? hi : n;
}
