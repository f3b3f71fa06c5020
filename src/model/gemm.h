/* gemm.h - the one place the model calls cblas_sgemm (row-major), with an
 * optional trace of every call's shape so the benchmark can replay exactly
 * the same GEMMs alone and measure the floor an epoch cannot beat. */
#ifndef VAE_GEMM_H
#define VAE_GEMM_H

#include <stddef.h>

#include "err.h"

/* C(MxN) = alpha * op(A) op(B) + beta * C, row-major; ta/tb: 0 = as stored,
 * 1 = transposed. lda/ldb/ldc are row strides as stored. */
void gemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
          const float *A, size_t lda, const float *B, size_t ldb,
          float beta, float *C, size_t ldc);

/* The trace functions act on the calling thread's own trace. */

/* Starts recording the shape of every gemm() call (drops an old trace). */
void gemm_trace_start(void);

/* Stops recording; returns the number of calls recorded. */
size_t gemm_trace_stop(void);

/* Replays the recorded calls (none is fine), same shapes, flags and
 * operands (the buffers recorded must still be alive; their contents are
 * overwritten). Returns 0, or -1 with err if the trace ran out of memory. */
int gemm_trace_replay(err_msg *err);

/* Total floating point operations (2*M*N*K summed) of the recorded calls. */
double gemm_trace_flops(void);

/* Frees the trace. */
void gemm_trace_free(void);

#endif
