/* cpu.c - cpuid against openblas_get_corename() (see src/base/cpu.h). */
#define _POSIX_C_SOURCE 200809L
#include "cpu.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "blasbuf.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HAVE_CPUID 1
#endif

/* Set in the environment of the re-executed process so it never loops, and
 * so --version can say the core was chosen by vae. */
#define REEXEC_MARK "VAE_OPENBLAS_REEXEC"

/* Set, with OPENBLAS_NUM_THREADS=1, when vae re-executed itself under an
 * address-space limit: the number of threads OpenBLAS had started. */
#define THREADS_MARK "VAE_OPENBLAS_THREADS"

#ifdef HAVE_CPUID
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

const char *cpu_best_core(void)
{
#ifdef HAVE_CPUID
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return NULL;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx)
        return NULL;
    unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* OS saves SSE and AVX state */
        return NULL;
    unsigned b7 = 0, c7 = 0, d7 = 0, a7 = 0;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    int avx2 = (b7 >> 5) & 1;
    /* SkylakeX kernels use AVX-512 F, CD, BW, DQ and VL, and need the OS to
     * save the opmask and upper ZMM state (XCR0 bits 5-7). */
    int avx512 = ((b7 >> 16) & 1) && ((b7 >> 17) & 1) && ((b7 >> 28) & 1) &&
                 ((b7 >> 30) & 1) && ((b7 >> 31) & 1) && (xcr0 & 0xe6) == 0xe6;
    if (avx512 && avx2 && fma)
        return "SkylakeX";
    if (avx2 && fma)
        return "Haswell";
    return "Sandybridge";
#else
    return NULL;
#endif
}

const char *cpu_openblas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

int cpu_core_rank(const char *name)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
    static const char *const avx2[] = {"haswell", "zen", "skylake", "broadwell"};
    for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
        if (!strcasecmp(name, avx512[i]))
            return 3;
    for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
        if (!strcasecmp(name, avx2[i]))
            return 2;
    if (!strcasecmp(name, "sandybridge"))
        return 1;
    return 0;
}

const char *cpu_core_to_force(const char *detected, const char *best)
{
    if (!best || !detected || cpu_core_rank(detected) >= cpu_core_rank(best))
        return NULL;
    return best;
}

/* Takes back what tune_core set. */
static void undo_core(void)
{
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARK);
}

/* Takes back what tune_threads set: OPENBLAS_NUM_THREADS as old had it
 * (NULL: unset). */
static void undo_threads(const char *old)
{
    unsetenv(THREADS_MARK);
    if (old)
        setenv("OPENBLAS_NUM_THREADS", old, 1);
    else
        unsetenv("OPENBLAS_NUM_THREADS");
}

/* Sets OPENBLAS_CORETYPE to the best core when OpenBLAS picked a weaker
 * one and the user set none. Returns 1 when it set it, else 0. */
static int tune_core(void)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv(REEXEC_MARK))
        return 0;
    /* The tests stand in a weak detection for the one this machine gets. */
    const char *detected = getenv(CPU_TEST_DETECTED_ENV);
    if (!detected || !*detected)
        detected = cpu_openblas_core();
    const char *force = cpu_core_to_force(detected, cpu_best_core());
    if (!force)
        return 0;
    if (setenv("OPENBLAS_CORETYPE", force, 1) || setenv(REEXEC_MARK, detected, 1)) {
        undo_core();
        return 0;
    }
    return 1;
}

/* Under an address-space limit, sets OPENBLAS_NUM_THREADS=1 when OpenBLAS
 * started threads of its own when it loaded (each maps a work buffer, and
 * one whose mapping fails retries for ever: blasbuf.h). vae never uses
 * them: its team runs OpenBLAS one thread a call (par.h). THREADS_MARK
 * keeps their number, the default team size. *old gets the user's
 * OPENBLAS_NUM_THREADS (a copy, or NULL), for undo_threads. Returns 1 when
 * it set it. */
static int tune_threads(char **old)
{
    *old = NULL;
    int n = openblas_get_num_threads();
    if (getenv(THREADS_MARK) || n <= 1 || !blasbuf_limited())
        return 0;
    const char *user = getenv("OPENBLAS_NUM_THREADS");
    *old = user ? strdup(user) : NULL;
    char num[24];
    snprintf(num, sizeof num, "%d", n);
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0 && setenv(THREADS_MARK, num, 1) == 0)
        return 1;
    undo_threads(*old);
    return 0;
}

void cpu_tune_openblas(char **argv)
{
    char *old_threads;
    int core = tune_core(), threads = tune_threads(&old_threads);
    if (core || threads)
        execv("/proc/self/exe", argv);
    /* No exec, or it failed: carry on as loaded (the slow kernels rather
     * than not at all), the environment as it was for the programs vae
     * starts. */
    if (core)
        undo_core();
    if (threads)
        undo_threads(old_threads);
    free(old_threads);
}

size_t cpu_default_threads(void)
{
    const char *mark = getenv(THREADS_MARK);
    char *end;
    unsigned long n = mark ? strtoul(mark, &end, 10) : 0;
    if (mark && *mark && !*end && n >= 1)
        return (size_t)n;
    int k = openblas_get_num_threads();
    return k < 1 ? 1 : (size_t)k;
}

void cpu_describe(char *buf, size_t len)
{
    const char *mark = getenv(REEXEC_MARK);
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *best = cpu_best_core();
    if (mark)
        snprintf(buf, len, "OpenBLAS core %s (chosen by vae: OpenBLAS detected %s, "
                 "the CPU supports %s)", cpu_openblas_core(), mark, best ? best : "?");
    else if (user)
        snprintf(buf, len, "OpenBLAS core %s (OPENBLAS_CORETYPE=%s set by the user)",
                 cpu_openblas_core(), user);
    else
        snprintf(buf, len, "OpenBLAS core %s (detected by OpenBLAS; best for "
                 "this CPU: %s)", cpu_openblas_core(), best ? best : "n/a");
}
