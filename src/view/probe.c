/* probe.c - k-nearest-neighbour classification of latent codes through
 * sgemm distance tiles (see src/view/probe.h).
 *
 * Memory: each thread of the team holds one tile of bq x br floats
 * (256 x 2048: 2 MiB) and, per query of its block, a heap of the k best
 * (distance, index) pairs (bq x k x 8 bytes, bq lowered so that bq x k
 * stays within PROBE_HEAP_SLOTS: at most 8 MiB); all threads share the
 * n_ref + n_query squared norms. For 60000 references x 10000 queries,
 * k = 5 and two threads that is about 4.3 MiB, where the whole distance
 * matrix would be 600M floats (2.4 GB). */
#define _POSIX_C_SOURCE 200809L
#include "probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "par.h"

/* ===================================================================== */
/* Checks                                                                 */
/* ===================================================================== */

/* The points are there, finite, and labelled when need_labels. */
static int check_points(const probe_points *p, const char *what, size_t dim,
                        int need_labels, err_msg *err)
{
    if (p->n > 0 && !p->x)
        return err_set(err, "the %s have no coordinates", what);
    if (need_labels && p->n > 0 && !p->labels)
        return err_set(err, "the %s have no labels", what);
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < dim; j++)
            if (!isfinite(p->x[i * dim + j]))
                return err_set(err, "%s %zu: coordinate %zu is not finite", what, i, j);
    return 0;
}

static int check_args(const probe_points *ref, const probe_points *query, size_t dim,
                      size_t k, int need_labels, err_msg *err)
{
    if (dim == 0)
        return err_set(err, "k-NN: the points have no dimensions");
    if (k == 0)
        return err_set(err, "k-NN: k must be at least 1");
    if (k > ref->n)
        return err_set(err, "k-NN: k = %zu is more than the %zu references", k, ref->n);
    if (ref->n > UINT32_MAX)
        return err_set(err, "k-NN: %zu references, at most %u", ref->n, UINT32_MAX);
    if (query->n == 0)
        return err_set(err, "k-NN: no queries");
    if (check_points(ref, "references", dim, need_labels, err) ||
        check_points(query, "queries", dim, 0, err))
        return -1;
    return 0;
}

/* ===================================================================== */
/* The k best of each query: a max-heap on (distance, index)              */
/* ===================================================================== */

/* a comes after b in the neighbour order: farther, or as far and a later
 * reference. */
static inline int after(float da, uint32_t ia, float db, uint32_t ib)
{
    return da > db || (da == db && ia > ib);
}

/* Restores the heap below slot at (the root is the last neighbour). */
static void sift_down(float *d, uint32_t *ix, size_t n, size_t at)
{
    float dv = d[at];
    uint32_t iv = ix[at];
    for (;;) {
        size_t c = 2 * at + 1;
        if (c >= n)
            break;
        if (c + 1 < n && after(d[c + 1], ix[c + 1], d[c], ix[c]))
            c++;
        if (!after(d[c], ix[c], dv, iv))
            break;
        d[at] = d[c], ix[at] = ix[c];
        at = c;
    }
    d[at] = dv, ix[at] = iv;
}

/* Adds (dv, iv) to a heap of n < cap slots. */
static void heap_push(float *d, uint32_t *ix, size_t n, float dv, uint32_t iv)
{
    size_t at = n;
    while (at > 0) {
        size_t p = (at - 1) / 2;
        if (!after(dv, iv, d[p], ix[p]))
            break;
        d[at] = d[p], ix[at] = ix[p];
        at = p;
    }
    d[at] = dv, ix[at] = iv;
}

/* Sorts a full heap of n slots in place, nearest first (heap sort: the
 * root, the last neighbour, goes to the end). */
static void heap_sort(float *d, uint32_t *ix, size_t n)
{
    while (n > 1) {
        n--;
        float dv = d[0];
        uint32_t iv = ix[0];
        d[0] = d[n], ix[0] = ix[n];
        d[n] = dv, ix[n] = iv;
        sift_down(d, ix, n, 0);
    }
}

/* ===================================================================== */
/* The search, split over the team by query blocks                       */
/* ===================================================================== */

typedef struct knn_job {
    const probe_points *ref, *query;
    size_t dim, k, bq, br;
    const float *rnorm, *qnorm; /* squared norms */
    uint32_t *nbr;              /* outputs; any may be NULL */
    float *dist;
    uint8_t *pred;
    int failed[PAR_MAX_THREADS];
} knn_job;

/* Squared norms of n rows of dim floats, summed in double. */
static void sq_norms(const float *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < dim; j++)
            s += (double)x[i * dim + j] * x[i * dim + j];
        out[i] = (float)s;
    }
}

/* Queries [q0, q0+nq): every reference block's tile, each distance offered
 * to its query's heap; then each heap sorted and written out. */
static void knn_block(const knn_job *j, size_t q0, size_t nq, float *tile, float *hd,
                      uint32_t *hi, uint8_t *lab)
{
    size_t D = j->dim, K = j->k, n_ref = j->ref->n;
    for (size_t r0 = 0; r0 < n_ref; r0 += j->br) {
        size_t nr = n_ref - r0 < j->br ? n_ref - r0 : j->br;
        /* tile (nq x nr) = -2 Q R^T: Q is (nq x D) as stored; R is stored
         * (nr x D), one reference a row, so it enters transposed. */
        gemm(0, 1, nq, nr, D, -2.0f, j->query->x + q0 * D, D, j->ref->x + r0 * D, D,
             0.0f, tile, nr);
        for (size_t i = 0; i < nq; i++) {
            const float *row = tile + i * nr;
            float *d = hd + i * K, qn = j->qnorm[q0 + i];
            uint32_t *ix = hi + i * K;
            const float *rn = j->rnorm + r0;
            size_t jj = 0;
            /* The heap fills with the first K references ... */
            for (; jj < nr && r0 + jj < K; jj++) {
                float v = qn + rn[jj] + row[jj];
                heap_push(d, ix, r0 + jj, v > 0.0f ? v : 0.0f, (uint32_t)(r0 + jj));
            }
            /* ... then a reference replaces the last neighbour when nearer:
             * as near is not enough, its index being larger. */
            for (; jj < nr; jj++) {
                float v = qn + rn[jj] + row[jj];
                v = v > 0.0f ? v : 0.0f;
                if (v < d[0]) {
                    d[0] = v, ix[0] = (uint32_t)(r0 + jj);
                    sift_down(d, ix, K, 0);
                }
            }
        }
    }
    for (size_t i = 0; i < nq; i++) {
        float *d = hd + i * K;
        uint32_t *ix = hi + i * K;
        heap_sort(d, ix, K);
        size_t q = q0 + i;
        if (j->nbr)
            memcpy(j->nbr + q * K, ix, K * sizeof *ix);
        if (j->dist)
            memcpy(j->dist + q * K, d, K * sizeof *d);
        if (j->pred) {
            for (size_t n = 0; n < K; n++)
                lab[n] = j->ref->labels[ix[n]];
            j->pred[q] = probe_vote(lab, K);
        }
    }
}

static void knn_task(void *ctx, size_t k, size_t T)
{
    knn_job *j = ctx;
    size_t lo, hi;
    par_share(j->query->n, j->bq, k, T, &lo, &hi);
    if (lo == hi)
        return;
    size_t tile_b, heap_b; /* bytes of the tile, and of the heaps' distances */
    if (err_mul_size(j->bq * sizeof(float), j->br, &tile_b) ||
        err_mul_size(j->bq * sizeof(float), j->k, &heap_b)) {
        j->failed[k] = 1;
        return;
    }
    /* Indices take as many bytes as distances: uint32_t and float. */
    float *tile = malloc(tile_b), *hd = malloc(heap_b);
    uint32_t *hx = malloc(heap_b);
    uint8_t *lab = malloc(j->k);
    if (!tile || !hd || !hx || !lab) {
        j->failed[k] = 1;
    } else {
        for (size_t q0 = lo; q0 < hi; q0 += j->bq)
            knn_block(j, q0, hi - q0 < j->bq ? hi - q0 : j->bq, tile, hd, hx, lab);
    }
    free(tile);
    free(hd);
    free(hx);
    free(lab);
}

/* The search behind probe_neighbours and probe_classify. */
static int knn_run(const probe_points *ref, const probe_points *query, size_t dim,
                   size_t k, const probe_blocks *blocks, uint32_t *nbr, float *dist,
                   uint8_t *pred, err_msg *err)
{
    if (check_args(ref, query, dim, k, pred != NULL, err))
        return -1;
    knn_job *j = calloc(1, sizeof *j);
    float *norms = malloc((ref->n + query->n) * sizeof *norms);
    if (!j || !norms) {
        free(j);
        free(norms);
        return err_set(err, "out of memory for the k-NN of %zu queries", query->n);
    }
    j->ref = ref, j->query = query, j->dim = dim, j->k = k;
    j->bq = blocks && blocks->queries ? blocks->queries : PROBE_BLOCK_QUERIES;
    j->br = blocks && blocks->refs ? blocks->refs : PROBE_BLOCK_REFS;
    /* No block larger than its set; fewer queries a block when k is large:
     * bq x k heap slots at most PROBE_HEAP_SLOTS (but one query always). */
    if (j->bq > query->n)
        j->bq = query->n;
    if (j->br > ref->n)
        j->br = ref->n;
    if (j->bq > PROBE_HEAP_SLOTS / k)
        j->bq = k >= PROBE_HEAP_SLOTS ? 1 : PROBE_HEAP_SLOTS / k;
    j->rnorm = norms, j->qnorm = norms + ref->n;
    j->nbr = nbr, j->dist = dist, j->pred = pred;
    sq_norms(ref->x, ref->n, dim, norms);
    sq_norms(query->x, query->n, dim, norms + ref->n);
    int rc = 0;
    for (size_t i = 0; i < ref->n + query->n && rc == 0; i++)
        if (!isfinite(norms[i]))
            rc = err_set(err, "%s %zu is too far out for float distances",
                         i < ref->n ? "reference" : "query", i < ref->n ? i : i - ref->n);
    if (rc == 0)
        par_run(knn_task, j);
    for (size_t t = 0; t < PAR_MAX_THREADS; t++)
        if (j->failed[t])
            rc = err_set(err, "out of memory for the k-NN of %zu queries (k = %zu)",
                         query->n, k);
    free(norms);
    free(j);
    return rc;
}

/* ===================================================================== */
/* The API                                                                */
/* ===================================================================== */

int probe_neighbours(const probe_points *ref, const probe_points *query, size_t dim,
                     size_t k, const probe_blocks *blocks, uint32_t *nbr, float *dist,
                     err_msg *err)
{
    return knn_run(ref, query, dim, k, blocks, nbr, dist, NULL, err);
}

uint8_t probe_vote(const uint8_t *labels, size_t k)
{
    size_t count[PROBE_CLASSES] = {0}, most = 0;
    for (size_t i = 0; i < k; i++)
        if (++count[labels[i]] > most)
            most = count[labels[i]];
    /* The list is nearest first: the first label with the most votes is
     * the tied label with the nearest neighbour. */
    for (size_t i = 0; i < k; i++)
        if (count[labels[i]] == most)
            return labels[i];
    return 0; /* k == 0: no vote */
}

int probe_classify(const probe_points *ref, const probe_points *query, size_t dim,
                   size_t k, const probe_blocks *blocks, uint8_t *pred, err_msg *err)
{
    return knn_run(ref, query, dim, k, blocks, NULL, NULL, pred, err);
}

void probe_score(const uint8_t *pred, const uint8_t *truth, size_t n, probe_result *out)
{
    memset(out, 0, sizeof *out);
    out->n_query = n;
    for (size_t i = 0; i < n; i++) {
        int hit = pred[i] == truth[i];
        out->class_n[truth[i]]++;
        out->class_correct[truth[i]] += (size_t)hit;
        out->correct += (size_t)hit;
    }
    out->accuracy = n ? (double)out->correct / (double)n : 0.0;
}

int probe_knn(const probe_points *ref, const probe_points *query, size_t dim, size_t k,
              const probe_blocks *blocks, probe_result *out, err_msg *err)
{
    memset(out, 0, sizeof *out);
    if (query->n > 0 && !query->labels)
        return err_set(err, "the queries have no labels");
    uint8_t *pred = malloc(query->n ? query->n : 1);
    if (!pred)
        return err_set(err, "out of memory for %zu predictions", query->n);
    int rc = probe_classify(ref, query, dim, k, blocks, pred, err);
    if (rc == 0) {
        probe_score(pred, query->labels, query->n, out);
        out->k = k;
        out->n_ref = ref->n;
    }
    free(pred);
    return rc;
}
