/* gemm.c - cblas_sgemm wrapper with a shape-and-operand trace for the
 * benchmark's sgemm floor. */
#include "gemm.h"

#include <cblas.h>
#include <stdlib.h>

typedef struct gemm_call {
    int ta, tb;
    size_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_call;

/* Each thread of the team records and replays its own calls; only the
 * benchmark turns tracing on. */
static _Thread_local struct {
    int on, oom;
    gemm_call *calls;
    size_t n, cap;
} trace;

static void trace_record(const gemm_call *c)
{
    if (trace.n == trace.cap) {
        size_t cap = trace.cap ? trace.cap * 2 : 1024;
        gemm_call *p = realloc(trace.calls, cap * sizeof *p);
        if (!p) {
            trace.oom = 1;
            return;
        }
        trace.calls = p;
        trace.cap = cap;
    }
    trace.calls[trace.n++] = *c;
}

static void run(const gemm_call *c)
{
    cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans,
                c->tb ? CblasTrans : CblasNoTrans, (blasint)c->M, (blasint)c->N,
                (blasint)c->K, c->alpha, c->A, (blasint)c->lda, c->B,
                (blasint)c->ldb, c->beta, c->C, (blasint)c->ldc);
}

void gemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
          const float *A, size_t lda, const float *B, size_t ldb,
          float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    if (K == 0) { /* no products: C = beta C, which BLAS leaves to the caller */
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    gemm_call c = {ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
    if (trace.on)
        trace_record(&c);
    run(&c);
}

void gemm_trace_start(void)
{
    trace.n = 0;
    trace.oom = 0;
    trace.on = 1;
}

size_t gemm_trace_stop(void)
{
    trace.on = 0;
    return trace.n;
}

int gemm_trace_replay(err_msg *err)
{
    if (trace.oom)
        return err_set(err, "gemm trace: out of memory while recording");
    for (size_t i = 0; i < trace.n; i++)
        run(&trace.calls[i]);
    return 0;
}

double gemm_trace_flops(void)
{
    double f = 0.0;
    for (size_t i = 0; i < trace.n; i++)
        f += 2.0 * (double)trace.calls[i].M * (double)trace.calls[i].N *
             (double)trace.calls[i].K;
    return f;
}

void gemm_trace_free(void)
{
    free(trace.calls);
    trace.calls = NULL;
    trace.n = trace.cap = 0;
    trace.on = trace.oom = 0;
}
