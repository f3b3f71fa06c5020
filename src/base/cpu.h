/* cpu.h - make OpenBLAS run the kernels this CPU supports.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels when the
 * library loads; on CPUs newer than it knows it falls back to "Prescott"
 * (SSE3), ~5x slower than its SkylakeX kernels. The choice can only be
 * changed by OPENBLAS_CORETYPE before the library loads, so the tool sets
 * it and re-executes itself once. A user's own OPENBLAS_CORETYPE wins. The
 * same re-exec loads OpenBLAS with one thread under an address-space limit. */
#ifndef VAE_CPU_H
#define VAE_CPU_H

#include <stddef.h>

/* The best OpenBLAS core this CPU and OS support ("SkylakeX", "Haswell",
 * "Sandybridge"), or NULL when none of those applies. */
const char *cpu_best_core(void);

/* OpenBLAS's current core name (e.g. "Prescott"). */
const char *cpu_openblas_core(void);

/* How much of the x86 vector hardware an OpenBLAS core's kernels use:
 * 3 AVX-512 (SkylakeX, Cooperlake, ...), 2 AVX2, 1 AVX, 0 anything else. */
int cpu_core_rank(const char *name);

/* The core to force when OpenBLAS detected `detected` on a CPU whose best
 * core is `best`: best when detected ranks lower, else NULL. */
const char *cpu_core_to_force(const char *detected, const char *best);

/* Test hook: when set, cpu_tune_openblas takes its value as the core
 * OpenBLAS detected, so the re-exec path runs on any machine. */
#define CPU_TEST_DETECTED_ENV "VAE_TEST_DETECTED_CORE"

/* If OPENBLAS_CORETYPE is unset and OpenBLAS picked a core weaker than
 * cpu_best_core(), sets OPENBLAS_CORETYPE; under an address-space limit,
 * if OpenBLAS started threads of its own, sets OPENBLAS_NUM_THREADS=1
 * (see blasbuf.h). Either way it then re-executes /proc/self/exe with argv,
 * once. Returns only when no re-exec was needed or it failed. */
void cpu_tune_openblas(char **argv);

/* The team size when --threads is not given: the threads OpenBLAS starts
 * when it loads (one a core, or OPENBLAS_NUM_THREADS), also in a process
 * cpu_tune_openblas loaded with one. */
size_t cpu_default_threads(void);

/* One line for --version: the core in use and how it was chosen. */
void cpu_describe(char *buf, size_t len);

#endif
