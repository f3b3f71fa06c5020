/* blasbuf.c - OpenBLAS's work buffers under an address-space limit (see
 * src/base/blasbuf.h). */
#define _POSIX_C_SOURCE 200809L
#include "blasbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

/* OpenBLAS's own buffer table (exported by libopenblas, declared only in
 * its internal common.h): taking a buffer maps it if no free one is mapped,
 * and giving it back keeps it mapped. Weak, so that another BLAS without
 * them links and the reservation is skipped. */
extern void *blas_memory_alloc(int procpos) __attribute__((weak));
extern void blas_memory_free(void *buffer) __attribute__((weak));

/* The soft address-space limit in bytes, or 0 without one. */
static size_t address_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    return rl.rlim_cur > SIZE_MAX ? SIZE_MAX : (size_t)rl.rlim_cur;
}

/* The process's address space now (VmSize), in bytes; 0 if unknown. */
static size_t address_used(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    int ok = fp && fscanf(fp, "%lu", &pages) == 1;
    if (fp)
        fclose(fp);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (size_t)pages * (size_t)page : 0;
}

int blasbuf_limited(void)
{
    return address_limit() != 0;
}

/* How many buffers fit under limit with used bytes in use. */
static size_t fit_in(size_t limit, size_t used)
{
    if (used + BLASBUF_SLACK >= limit)
        return 0;
    return (limit - used - BLASBUF_SLACK) / BLASBUF_BYTES;
}

size_t blasbuf_fit(void)
{
    size_t limit = address_limit();
    return limit ? fit_in(limit, address_used()) : SIZE_MAX;
}

int blasbuf_reserve(size_t threads, err_msg *err)
{
    size_t limit = address_limit();
    if (!limit)
        return 0;
    size_t used = address_used(), fit = fit_in(limit, used);
    if (threads > fit) {
        size_t mib = (size_t)1 << 20;
        size_t need = used + threads * BLASBUF_BYTES + BLASBUF_SLACK;
        char fewer[48] = "";
        if (fit >= 1)
            snprintf(fewer, sizeof fewer, " or give --threads %zu", fit);
        return err_set(err, "the address-space limit (ulimit -v) is %zu MiB, %zu MiB of it in "
                       "use: OpenBLAS needs a %zu MiB work buffer for each thread, %zu here, and "
                       "there is room for %zu (short of room, OpenBLAS would wait for ever); "
                       "raise the limit to at least %zu MiB%s", limit / mib, used / mib,
                       BLASBUF_BYTES / mib, threads, fit,
                       (need + mib - 1) / mib, fewer);
    }
    if (!blas_memory_alloc || !blas_memory_free)
        return 0;
    /* Taken all at once, so that each is a buffer of its own. */
    void **taken = calloc(threads, sizeof *taken);
    if (!taken)
        return err_set(err, "out of memory for %zu threads", threads);
    for (size_t k = 0; k < threads; k++)
        taken[k] = blas_memory_alloc(0);
    for (size_t k = 0; k < threads; k++)
        if (taken[k])
            blas_memory_free(taken[k]);
    free(taken);
    return 0;
}
