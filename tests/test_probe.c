/* test_probe.c - the k-NN probe of the latent means: neighbours against a
 * brute-force double-precision search (ties, k = 1 and k = n_ref, blocks
 * smaller than the data, queries equal to references), the vote's tie
 * rule, per-class counts, sgemm rounding on well-separated points, the
 * team and the memory bound; and `vae probe` through the binary on a small
 * generated data set: the line, the JSON, and its errors. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "par.h"
#include "probe.h"
#include "rng.h"
#include "testutil.h"
#include "cliutil.h"

/* ===================================================================== */
/* A brute-force reference                                                */
/* ===================================================================== */

typedef struct cand {
    double d;
    uint32_t i;
} cand;

static int by_cand(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->d != b->d)
        return a->d < b->d ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* The k nearest references of every query in double precision, by
 * (distance, index): indices into nbr, squared distances into dist. */
static void brute_knn(const float *ref, size_t n_ref, const float *q, size_t n_q,
                      size_t dim, size_t k, uint32_t *nbr, double *dist)
{
    cand *c = malloc(n_ref * sizeof *c);
    assert_non_null(c);
    for (size_t a = 0; a < n_q; a++) {
        for (size_t r = 0; r < n_ref; r++) {
            double s = 0.0;
            for (size_t j = 0; j < dim; j++) {
                double t = (double)q[a * dim + j] - ref[r * dim + j];
                s += t * t;
            }
            c[r].d = s, c[r].i = (uint32_t)r;
        }
        qsort(c, n_ref, sizeof *c, by_cand);
        for (size_t n = 0; n < k; n++) {
            nbr[a * k + n] = c[n].i;
            if (dist)
                dist[a * k + n] = c[n].d;
        }
    }
    free(c);
}

/* n x dim points, each coordinate a whole number in [-3, 3]: every
 * distance is exact in float whatever the order of the sums, and many are
 * equal (the tie rule decides). */
static float *grid_points(size_t n, size_t dim, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    float *x = malloc(n * dim * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n * dim; i++)
        x[i] = (float)rng_below(&r, 7) - 3.0f;
    return x;
}

static float *normal_points(size_t n, size_t dim, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    float *x = malloc(n * dim * sizeof *x);
    assert_non_null(x);
    rng_normal(&r, x, n * dim);
    return x;
}

static void knn_ok(const probe_points *ref, const probe_points *q, size_t dim, size_t k,
                   const probe_blocks *b, uint32_t *nbr, float *dist)
{
    err_msg err;
    if (probe_neighbours(ref, q, dim, k, b, nbr, dist, &err))
        fail_msg("probe_neighbours: %s", err.text);
}

/* ===================================================================== */
/* Neighbours                                                             */
/* ===================================================================== */

/* Whole-number points: the neighbours and distances are exactly the
 * brute force's, ties included, for every k and every blocking. */
static void test_exact_with_ties(void **state)
{
    (void)state;
    enum { NR = 97, NQ = 41, DIM = 3 };
    float *ref = grid_points(NR, DIM, 1), *qx = grid_points(NQ, DIM, 2);
    /* Queries equal to references, and a reference repeated: a distance of
     * 0, twice. */
    memcpy(qx + 0 * DIM, ref + 10 * DIM, DIM * sizeof *qx);
    memcpy(qx + 7 * DIM, ref + 96 * DIM, DIM * sizeof *qx);
    memcpy(ref + 50 * DIM, ref + 10 * DIM, DIM * sizeof *ref);
    probe_points R = {ref, NULL, NR}, Q = {qx, NULL, NQ};
    const size_t ks[] = {1, 2, 5, 17, NR - 1, NR};
    const probe_blocks blocks[] = {{0, 0}, {1, 1}, {7, 10}, {5, 96}, {NQ, NR}, {64, 1000}};
    uint32_t *want = malloc(NQ * NR * sizeof *want), *got = malloc(NQ * NR * sizeof *got);
    double *want_d = malloc(NQ * NR * sizeof *want_d);
    float *got_d = malloc(NQ * NR * sizeof *got_d);
    assert_true(want && got && want_d && got_d);
    size_t ties = 0;
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++) {
        size_t k = ks[a];
        brute_knn(ref, NR, qx, NQ, DIM, k, want, want_d);
        for (size_t i = 0; i + 1 < NQ * k; i++)
            ties += (i + 1) % k != 0 && want_d[i] == want_d[i + 1];
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
            knn_ok(&R, &Q, DIM, k, &blocks[b], got, got_d);
            for (size_t i = 0; i < NQ * k; i++)
                if (got[i] != want[i] || (double)got_d[i] != want_d[i])
                    fail_msg("k %zu, blocks %zux%zu: query %zu, neighbour %zu is %u at "
                             "%g, brute force says %u at %g", k, blocks[b].queries,
                             blocks[b].refs, i / k, i % k, got[i], (double)got_d[i],
                             want[i], want_d[i]);
        }
    }
    /* The queries equal to a reference: it first, at distance 0; the
     * repeated reference right after (the lower index first). */
    knn_ok(&R, &Q, DIM, 3, NULL, got, got_d);
    assert_int_equal(got[0], 10);
    assert_int_equal(got[1], 50);
    assert_true(got_d[0] == 0.0f && got_d[1] == 0.0f);
    assert_int_equal(got[7 * 3], 96);
    assert_true(got_d[7 * 3] == 0.0f);
    printf("  %zu equal distances among consecutive neighbours, all ordered by index\n",
           ties);
    assert_true(ties > 100); /* the test does test ties */
    free(ref), free(qx), free(want), free(got), free(want_d), free(got_d);
}

/* Continuous points: every neighbour's true distance is the brute force's
 * distance at that rank (to float rounding), and where the brute force's
 * distances are apart, the very same reference. */
static void test_random_against_double(void **state)
{
    (void)state;
    enum { NR = 300, NQ = 60, DIM = 8 };
    float *ref = normal_points(NR, DIM, 3), *qx = normal_points(NQ, DIM, 4);
    memcpy(qx + 5 * DIM, ref + 123 * DIM, DIM * sizeof *qx); /* a query on a reference */
    probe_points R = {ref, NULL, NR}, Q = {qx, NULL, NQ};
    uint32_t *want = malloc(NQ * NR * sizeof *want), *got = malloc(NQ * NR * sizeof *got);
    double *want_d = malloc(NQ * NR * sizeof *want_d);
    float *got_d = malloc(NQ * NR * sizeof *got_d);
    assert_true(want && got && want_d && got_d);
    const size_t ks[] = {1, 5, NR};
    const probe_blocks b = {16, 37};
    double worst = 0.0;
    for (size_t a = 0; a < 3; a++) {
        size_t k = ks[a];
        brute_knn(ref, NR, qx, NQ, DIM, k, want, want_d);
        knn_ok(&R, &Q, DIM, k, &b, got, got_d);
        for (size_t q = 0; q < NQ; q++) {
            uint8_t seen[NR] = {0};
            for (size_t n = 0; n < k; n++) {
                size_t i = q * k + n;
                assert_true(got[i] < NR && !seen[got[i]]);
                seen[got[i]] = 1;
                double true_d = 0.0;
                for (size_t j = 0; j < DIM; j++) {
                    double t = (double)qx[q * DIM + j] - ref[got[i] * DIM + j];
                    true_d += t * t;
                }
                double err = fabs(true_d - want_d[i]);
                worst = fmax(worst, err);
                assert_true(err < 1e-4);
                assert_true(fabs((double)got_d[i] - want_d[i]) < 1e-4);
                int apart = (n == 0 || want_d[i] - want_d[i - 1] > 1e-4) &&
                            (n + 1 == k || want_d[i + 1] - want_d[i] > 1e-4);
                if (apart && got[i] != want[i])
                    fail_msg("k %zu: query %zu, neighbour %zu is %u, brute force says %u",
                             k, q, n, got[i], want[i]);
            }
        }
    }
    knn_ok(&R, &Q, DIM, 1, &b, got, got_d);
    assert_int_equal(got[5], 123);
    assert_true(got_d[5] >= 0.0f && got_d[5] < 1e-5f);
    printf("  largest distance error %.3g\n", worst);
    free(ref), free(qx), free(want), free(got), free(want_d), free(got_d);
}

/* Points far from the origin (squared norms near 2e4, so ||q||^2 + ||r||^2
 * - 2 q.r cancels about 4 digits of float's 7) but apart from each other
 * by at least 1: the neighbours are the brute force's, every one. */
static void test_rounding_well_separated(void **state)
{
    (void)state;
    enum { NR = 400, NQ = 200, DIM = 20 };
    rng_state r;
    rng_seed(&r, 5);
    float *ref = malloc(NR * DIM * sizeof *ref), *qx = malloc(NQ * DIM * sizeof *qx);
    assert_true(ref && qx);
    /* References: a grid of spacing 4 in the first dimensions, jittered by
     * at most 0.5, offset 30 in every coordinate. */
    for (size_t i = 0; i < NR; i++)
        for (size_t j = 0; j < DIM; j++) {
            float cell = j < 3 ? 4.0f * (float)((i >> (3 * j)) & 7) : 0.0f;
            ref[i * DIM + j] = 30.0f + cell + (rng_uniform(&r) - 0.5f) *
                                                  (j < 3 ? 1.0f : 0.2f);
        }
    /* Queries: near a reference (within 0.05 a coordinate), so the nearest
     * is clear by far; the rest of the order is set by the grid. */
    for (size_t q = 0; q < NQ; q++) {
        size_t at = rng_below(&r, NR);
        for (size_t j = 0; j < DIM; j++)
            qx[q * DIM + j] = ref[at * DIM + j] + 0.1f * (rng_uniform(&r) - 0.5f);
    }
    probe_points R = {ref, NULL, NR}, Q = {qx, NULL, NQ};
    uint32_t want[NQ * 2], got[NQ];
    double want_d[NQ * 2];
    float got_d[NQ];
    brute_knn(ref, NR, qx, NQ, DIM, 2, want, want_d);
    probe_blocks b = {32, 64};
    knn_ok(&R, &Q, DIM, 1, &b, got, got_d);
    double worst = 0.0, gap = INFINITY;
    for (size_t q = 0; q < NQ; q++) {
        if (got[q] != want[2 * q])
            fail_msg("query %zu: nearest %u, brute force says %u", q, got[q], want[2 * q]);
        worst = fmax(worst, fabs((double)got_d[q] - want_d[2 * q]));
        gap = fmin(gap, want_d[2 * q + 1] - want_d[2 * q]);
    }
    /* The float formula's error is real (cancellation) but far below the
     * gaps between first and second neighbours. */
    printf("  largest squared-distance error %.3g; smallest gap to the second "
           "neighbour %.3g\n", worst, gap);
    assert_true(worst > 0.0 && worst < 0.01 * gap);
    free(ref), free(qx);
}

/* Results do not depend on the team: 3 threads give the neighbours of 1. */
static void test_team(void **state)
{
    (void)state;
    enum { NR = 500, NQ = 333, DIM = 6, K = 7 };
    float *ref = normal_points(NR, DIM, 6), *qx = normal_points(NQ, DIM, 7);
    probe_points R = {ref, NULL, NR}, Q = {qx, NULL, NQ};
    static uint32_t one[NQ * K], three[NQ * K];
    probe_blocks b = {10, 128};
    knn_ok(&R, &Q, DIM, K, &b, one, NULL);
    err_msg err;
    assert_int_equal(par_init(3, &err), 0);
    knn_ok(&R, &Q, DIM, K, &b, three, NULL);
    par_shutdown();
    assert_memory_equal(one, three, sizeof one);
    free(ref), free(qx);
}

/* ===================================================================== */
/* Votes and scores                                                       */
/* ===================================================================== */

static void test_vote(void **state)
{
    (void)state;
    /* The most frequent label. */
    assert_int_equal(probe_vote((const uint8_t[]){4, 7, 7, 4, 7}, 5), 7);
    assert_int_equal(probe_vote((const uint8_t[]){9}, 1), 9);
    /* A tie: the tied label with the nearest neighbour (first in the list). */
    assert_int_equal(probe_vote((const uint8_t[]){3, 1, 1, 3, 2}, 5), 3);
    assert_int_equal(probe_vote((const uint8_t[]){2, 1, 1, 3, 3}, 5), 1);
    assert_int_equal(probe_vote((const uint8_t[]){5, 6, 7, 8}, 4), 5);
    /* The nearest alone is outvoted. */
    assert_int_equal(probe_vote((const uint8_t[]){0, 1, 1}, 3), 1);
    /* Any byte is a label. */
    assert_int_equal(probe_vote((const uint8_t[]){255, 200, 255}, 3), 255);
}

static void test_score_per_class(void **state)
{
    (void)state;
    const uint8_t truth[] = {0, 0, 1, 1, 1, 2, 9, 9};
    const uint8_t pred[] = {0, 1, 1, 1, 0, 2, 3, 9};
    probe_result r;
    probe_score(pred, truth, 8, &r);
    assert_int_equal(r.n_query, 8);
    assert_int_equal(r.correct, 5);
    assert_true(r.accuracy == 5.0 / 8.0);
    assert_int_equal(r.class_n[0], 2);
    assert_int_equal(r.class_correct[0], 1);
    assert_int_equal(r.class_n[1], 3);
    assert_int_equal(r.class_correct[1], 2);
    assert_int_equal(r.class_n[2], 1);
    assert_int_equal(r.class_correct[2], 1);
    assert_int_equal(r.class_n[3], 0); /* predicted, never true */
    assert_int_equal(r.class_n[9], 2);
    assert_int_equal(r.class_correct[9], 1);
}

/* probe_knn end to end on labelled grid points against the brute force's
 * neighbours voted by hand: accuracy and every class's counts. */
static void test_knn_accuracy(void **state)
{
    (void)state;
    enum { NR = 120, NQ = 90, DIM = 2, K = 4 };
    float *ref = grid_points(NR, DIM, 8), *qx = grid_points(NQ, DIM, 9);
    uint8_t rl[NR], ql[NQ];
    /* Labels from the quadrant, so the vote is mostly right; a few flipped. */
    for (size_t i = 0; i < NR; i++)
        rl[i] = (uint8_t)((ref[2 * i] >= 0) * 2 + (ref[2 * i + 1] >= 0) + (i % 13 == 0 ? 5 : 0));
    for (size_t i = 0; i < NQ; i++)
        ql[i] = (uint8_t)((qx[2 * i] >= 0) * 2 + (qx[2 * i + 1] >= 0));
    probe_points R = {ref, rl, NR}, Q = {qx, ql, NQ};
    uint32_t nbr[NQ * K];
    brute_knn(ref, NR, qx, NQ, DIM, K, nbr, NULL);
    probe_result want = {0};
    for (size_t q = 0; q < NQ; q++) {
        /* The vote by hand: counts, then the first label (nearest first)
         * with the highest count. */
        int count[16] = {0}, most = 0, label = -1;
        for (size_t n = 0; n < K; n++)
            most = ++count[rl[nbr[q * K + n]]] > most ? count[rl[nbr[q * K + n]]] : most;
        for (size_t n = 0; n < K && label < 0; n++)
            if (count[rl[nbr[q * K + n]]] == most)
                label = rl[nbr[q * K + n]];
        want.class_n[ql[q]]++;
        want.class_correct[ql[q]] += label == ql[q];
        want.correct += label == ql[q];
    }
    probe_result got;
    err_msg err;
    probe_blocks b = {8, 16};
    if (probe_knn(&R, &Q, DIM, K, &b, &got, &err))
        fail_msg("%s", err.text);
    printf("  accuracy %.4f (%zu of %d)\n", got.accuracy, got.correct, NQ);
    assert_int_equal(got.k, K);
    assert_int_equal(got.n_ref, NR);
    assert_int_equal(got.n_query, NQ);
    assert_int_equal(got.correct, want.correct);
    assert_true(got.accuracy == (double)want.correct / NQ);
    assert_memory_equal(got.class_n, want.class_n, sizeof got.class_n);
    assert_memory_equal(got.class_correct, want.class_correct, sizeof got.class_correct);
    assert_true(got.accuracy > 0.5 && got.accuracy < 1.0);
    free(ref), free(qx);
}

/* ===================================================================== */
/* Errors and memory                                                      */
/* ===================================================================== */

static void expect_error(int rc, const err_msg *err, const char *what)
{
    assert_int_equal(rc, -1);
    tu_assert_contains(err->text, what);
}

static void test_library_errors(void **state)
{
    (void)state;
    float ref[6] = {0, 1, 2, 3, 4, 5}, qx[2] = {1, 1};
    uint8_t lab[3] = {0, 1, 2};
    probe_points R = {ref, lab, 3}, Q = {qx, lab, 1};
    uint32_t nbr[3];
    uint8_t pred[1];
    probe_result res;
    err_msg err;
    expect_error(probe_neighbours(&R, &Q, 2, 0, NULL, nbr, NULL, &err), &err,
                 "k must be at least 1");
    expect_error(probe_neighbours(&R, &Q, 2, 4, NULL, nbr, NULL, &err), &err,
                 "k = 4 is more than the 3 references");
    expect_error(probe_neighbours(&R, &Q, 0, 1, NULL, nbr, NULL, &err), &err,
                 "no dimensions");
    probe_points none = {qx, lab, 0};
    expect_error(probe_neighbours(&R, &none, 2, 1, NULL, nbr, NULL, &err), &err,
                 "no queries");
    probe_points unlabelled = {ref, NULL, 3};
    expect_error(probe_classify(&unlabelled, &Q, 2, 1, NULL, pred, &err), &err,
                 "the references have no labels");
    probe_points q_unlabelled = {qx, NULL, 1};
    expect_error(probe_knn(&R, &q_unlabelled, 2, 1, NULL, &res, &err), &err,
                 "the queries have no labels");
    ref[3] = NAN;
    expect_error(probe_neighbours(&R, &Q, 2, 1, NULL, nbr, NULL, &err), &err,
                 "references 1: coordinate 1 is not finite");
    ref[3] = 3e30f; /* finite, but its square is not */
    expect_error(probe_neighbours(&R, &Q, 2, 1, NULL, nbr, NULL, &err), &err,
                 "reference 1 is too far out");
    ref[3] = 3;
    qx[0] = INFINITY;
    expect_error(probe_neighbours(&R, &Q, 2, 1, NULL, nbr, NULL, &err), &err,
                 "queries 0: coordinate 0 is not finite");
    qx[0] = 1;
    /* Unlabelled references are fine for neighbours alone. */
    knn_ok(&unlabelled, &Q, 2, 3, NULL, nbr, NULL);
    assert_int_equal(nbr[0], 0);
}

/* The MNIST shape, 60000 references x 10000 queries, would need 2.4 GB as
 * one distance matrix. In a child whose address space may grow by 64 MB
 * only, a search of that shape (fewer queries, for the time) succeeds. */
static void test_memory_bound(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* ASan's shadow memory does not fit under an address-space limit */
#endif
    enum { NR = 60000, NQ = 1024, DIM = 20 };
    float *ref = normal_points(NR, DIM, 10), *qx = normal_points(NQ, DIM, 11);
    uint8_t *rl = calloc(NR, 1), *ql = calloc(NQ, 1);
    assert_true(rl && ql);
    for (size_t i = 0; i < NR; i++)
        rl[i] = (uint8_t)(i % 10);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The address space now, from /proc/self/statm (pages), plus 64 MB. */
        FILE *fp = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (!fp || fscanf(fp, "%lu", &pages) != 1)
            _exit(3);
        fclose(fp);
        rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20);
        struct rlimit rl_as = {lim, lim};
        if (setrlimit(RLIMIT_AS, &rl_as) != 0)
            _exit(4);
        /* Even a tenth of the whole matrix must not fit. */
        if (malloc((size_t)NR * NQ * sizeof(float)) != NULL)
            _exit(5);
        probe_points R = {ref, rl, NR}, Q = {qx, ql, NQ};
        probe_result res;
        err_msg err;
        if (probe_knn(&R, &Q, DIM, PROBE_DEFAULT_K, NULL, &res, &err)) {
            fprintf(stderr, "probe_knn: %s\n", err.text);
            _exit(6);
        }
        _exit(res.n_query == NQ ? 0 : 7);
    }
    int rc = wait_status(pid);
    if (rc != 0)
        fail_msg("the child exited %d", rc);
    free(ref), free(qx), free(rl), free(ql);
}

/* ===================================================================== */
/* Through the binary                                                     */
/* ===================================================================== */

/* A data set the latent space can separate: label c is a vertical bar at
 * column 4 + 2c or 5 + 2c, of random brightness, on faint noise. */
static void write_bars(const char *folder, const char *split, size_t n, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    size_t img_len = 16 + n * 784, lab_len = 8 + n;
    unsigned char *img = calloc(img_len, 1), *lab = calloc(lab_len, 1);
    assert_true(img && lab);
    cli_put_be32(img, 0x803);
    cli_put_be32(img + 4, (uint32_t)n);
    cli_put_be32(img + 8, 28);
    cli_put_be32(img + 12, 28);
    cli_put_be32(lab, 0x801);
    cli_put_be32(lab + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        unsigned char *px = img + 16 + i * 784;
        size_t c = rng_below(&r, 10), x = 4 + 2 * c + rng_below(&r, 2);
        lab[8 + i] = (unsigned char)c;
        for (size_t p = 0; p < 784; p++)
            px[p] = (unsigned char)rng_below(&r, 30);
        unsigned char v = (unsigned char)(160 + rng_below(&r, 96));
        for (size_t y = 3 + rng_below(&r, 3); y < 25; y++)
            px[y * 28 + x] = v;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", folder, split);
    tu_write_file(path, img, img_len);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", folder, split);
    tu_write_file(path, lab, lab_len);
    free(img);
    free(lab);
}

static char bars[128];                       /* the data set above */
static char model[160], cmodel[160], conv[160]; /* trained on it */

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-probe"))
        return -1;
    snprintf(bars, sizeof bars, "%s/bars", dir);
    if (mkdir(bars, 0755) != 0)
        return -1;
    write_bars(bars, "train", CLI_N_TRAIN, 21);
    write_bars(bars, "t10k", CLI_N_TEST, 22);
    snprintf(model, sizeof model, "%s/model.bin", dir);
    snprintf(cmodel, sizeof cmodel, "%s/cmodel.bin", dir);
    snprintf(conv, sizeof conv, "%s/conv.bin", dir);
    char out[160];
    snprintf(out, sizeof out, "%s/out", dir);
#define BARS "--data", bars, "--out", out, "--epochs", "2", "--batch", "30", "--threads", "2"
    if (run("train", BARS, "--lr", "0.005", "--hidden", "64", "--latent", "4", "--ckpt",
            model, NULL) != 0 ||
        run("train", BARS, "--lr", "0.005", "--hidden", "64", "--latent", "4",
            "--conditional", "--ckpt", cmodel, NULL) != 0 ||
        run("train", BARS, "--lr", "0.003", "--arch", "conv", "--hidden", "4,8,16",
            "--latent", "4", "--ckpt", conv, NULL) != 0) {
        fprintf(stderr, "test_probe: training failed:\n%s", err_text ? err_text : "");
        return -1;
    }
#undef BARS
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

/* The accuracy in percent from the line of `vae probe`, checking its form. */
static double probe_line(const char *k)
{
    char head[96];
    snprintf(head, sizeof head, "k-NN accuracy (k = %s, %d references, %d queries): ", k,
             CLI_N_TRAIN, CLI_N_TEST);
    if (strncmp(out_text, head, strlen(head)) != 0)
        fail_msg("expected a line starting '%s', got '%s'", head, out_text);
    char *end;
    double pct = strtod(out_text + strlen(head), &end);
    assert_true(*end == '%');
    assert_non_null(strstr(end, "s]\n"));
    const char *nl = strchr(out_text, '\n');
    assert_true(nl && nl[1] == '\0'); /* one line */
    assert_true(pct >= 0.0 && pct <= 100.0);
    return pct;
}

/* Checks one JSON object of `vae probe --json` and returns its accuracy:
 * the counts, and each label's accuracy adding up to the whole's. */
static double probe_json(double k)
{
    const char *t = out_text;
    size_t len = strlen(t);
    assert_true(len > 2 && t[0] == '{' && t[len - 2] == '}' && t[len - 1] == '\n');
    assert_ptr_equal(strchr(t, '\n'), t + len - 1);
    int depth = 0;
    for (const char *p = t; *p; p++) {
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    double acc = json_num(t, "accuracy"); /* the first "accuracy" is the whole's */
    assert_true(json_num(t, "k") == k);
    assert_true(json_num(t, "n_ref") == CLI_N_TRAIN);
    assert_true(json_num(t, "n_query") == CLI_N_TEST);
    double correct = json_num(t, "correct");
    assert_true(fabs(acc - correct / CLI_N_TEST) < 1e-6);
    assert_true(json_num(t, "seconds") >= 0.0 && json_num(t, "knn_seconds") >= 0.0 &&
                json_num(t, "encode_seconds") >= 0.0);
    const char *p = strstr(t, "\"per_class\":[");
    assert_non_null(p);
    double n_sum = 0.0, correct_sum = 0.0;
    for (int c = 0; c < 10; c++) {
        char want[32];
        snprintf(want, sizeof want, "{\"label\":%d,", c);
        p = strstr(p, want);
        assert_non_null(p);
        double n = json_num(p, "n"), a = json_num(p, "accuracy");
        n_sum += n;
        if (n > 0) {
            assert_true(a >= 0.0 && a <= 1.0);
            correct_sum += a * n;
        } else {
            assert_non_null(strstr(p, "\"accuracy\":null"));
        }
        p++;
    }
    assert_true(n_sum == CLI_N_TEST);
    assert_true(fabs(correct_sum - correct) < 1e-3);
    return acc;
}

static void test_binary(void **state)
{
    (void)state;
    assert_exit(run("probe", "--ckpt", model, "--data", bars, NULL), 0);
    double pct = probe_line("5");
    printf("  %s", out_text);
    /* Bars 2 columns apart: a 4-D latent trained 2 epochs tells most apart. */
    assert_true(pct > 50.0);
    assert_exit(run("probe", "--ckpt", model, "--data", bars, "--json", NULL), 0);
    double acc = probe_json(5);
    assert_true(fabs(100.0 * acc - pct) < 0.006);
    /* The team does not change it. */
    assert_exit(run("probe", "--ckpt", model, "--data", bars, "--json", "--threads", "1",
                    NULL), 0);
    assert_true(json_num(out_text, "accuracy") == acc);
    /* k = n_ref: every training image votes; the labels are nearly even,
     * so the most frequent in the training set wins, whatever the query. */
    assert_exit(run("probe", "--ckpt", model, "--data", bars, "--k", "300", "--json", NULL),
                0);
    double all = probe_json(300);
    assert_exit(run("probe", "--ckpt", model, "--data", bars, "--k", "1", NULL), 0);
    double one = probe_line("1");
    printf("  k = 1: %.2f%%, k = 300: %.2f%%\n", one, 100.0 * all);
    assert_true(all < 0.25); /* one label for all: its share of the test set */

    /* A conditional model (each image encoded with its own label) and the
     * conv VAE. */
    assert_exit(run("probe", "--ckpt", cmodel, "--data", bars, NULL), 0);
    printf("  conditional: %s", out_text);
    probe_line("5");
    assert_exit(run("probe", "--ckpt", conv, "--data", bars, "--k", "3", NULL), 0);
    printf("  conv: %s", out_text);
    probe_line("3");
    assert_exit(run("probe", "--ckpt", conv, "--data", bars, "--k", "3", "--json", NULL), 0);
    probe_json(3);

    /* The help documents k's default and the tie rule. */
    assert_exit(run("probe", "--help", NULL), 0);
    tu_assert_contains(out_text, "--k K");
    tu_assert_contains(out_text, "default 5");
    tu_assert_contains(out_text, "tie");
    assert_exit(run("--help", NULL), 0);
    tu_assert_contains(out_text, "probe");
}

/* The binary's accuracy is the library's on the means `vae encode` writes
 * (to the CSV's 6 digits: a near tie may go the other way). */
static void test_binary_matches_encode(void **state)
{
    (void)state;
    char csv[2][160];
    in_dir(csv[0], sizeof csv[0], "train.csv");
    in_dir(csv[1], sizeof csv[1], "test.csv");
    assert_exit(run("encode", "--ckpt", model, "--data", bars, "--split", "train", "-o",
                    csv[0], NULL), 0);
    assert_exit(run("encode", "--ckpt", model, "--data", bars, "-o", csv[1], NULL), 0);
    enum { Z = 4 };
    float mu[2][CLI_N_TRAIN * Z];
    uint8_t lab[2][CLI_N_TRAIN];
    size_t n[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        char *text = (char *)tu_read_file(csv[s], NULL);
        for (char *line = strchr(text, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
            unsigned idx, label;
            float *m = mu[s] + n[s] * Z;
            assert_int_equal(sscanf(line, "%u,%u,%f,%f,%f,%f", &idx, &label, &m[0], &m[1],
                                    &m[2], &m[3]), 6);
            assert_int_equal(idx, n[s]);
            lab[s][n[s]++] = (uint8_t)label;
        }
        free(text);
    }
    assert_int_equal(n[0], CLI_N_TRAIN);
    assert_int_equal(n[1], CLI_N_TEST);
    probe_points R = {mu[0], lab[0], n[0]}, Q = {mu[1], lab[1], n[1]};
    probe_result res;
    err_msg err;
    if (probe_knn(&R, &Q, Z, 5, NULL, &res, &err))
        fail_msg("%s", err.text);
    assert_exit(run("probe", "--ckpt", model, "--data", bars, "--json", NULL), 0);
    double got = json_num(out_text, "correct");
    printf("  vae probe: %.0f correct; the library on encode's CSV: %zu\n", got, res.correct);
    assert_true(fabs(got - (double)res.correct) <= 2.0);
}

static void test_binary_errors(void **state)
{
    (void)state;
    char path[256], folder[160];
    /* Usage errors: exit 2, nothing on stdout. */
    struct {
        const char *k, *msg;
    } bad_k[] = {
        {"0", "--k: must be at least 1, not 0"},
        {"301", "--k 301: more than the 300 training images"},
        {"99999999999", "--k: 99999999999 is too large"},
        {"x", "--k: 'x' is not a whole number"},
    };
    for (size_t i = 0; i < sizeof bad_k / sizeof *bad_k; i++) {
        assert_exit(run("probe", "--ckpt", model, "--data", bars, "--k", bad_k[i].k, NULL), 2);
        tu_assert_contains(err_text, bad_k[i].msg);
        assert_string_equal(out_text, "");
    }
    printf("  %s", err_text);
    assert_exit(run("probe", "--ckpt", model, "--data", bars, "--iw", "3", NULL), 2);
    tu_assert_contains(err_text, "unknown option '--iw'");
    /* Other commands keep --k's own range. */
    assert_exit(run("train", "--data", bars, "--k", "5001", NULL), 2);
    tu_assert_contains(err_text, "--k: 5001 is too large (at most 5000)");

    /* A missing checkpoint. */
    in_dir(path, sizeof path, "no-such.bin");
    assert_exit(run("probe", "--ckpt", path, "--data", bars, NULL), 1);
    tu_assert_contains(err_text, "no-such.bin");
    tu_assert_contains(err_text, "No such file");
    assert_string_equal(out_text, "");

    /* Data: no test images; no training labels; images of another size. */
    const char *files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    struct {
        const char *name, *file, *msg;
    } cases[] = {
        {"no-test", "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte: not found"},
        {"no-labels", "train-labels-idx1-ubyte", "has no label file"},
        {"big", "t10k-images-idx3-ubyte",
         "the model takes 28x28 grey images, but the test images are 32x32 grey"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        in_dir(folder, sizeof folder, cases[c].name);
        assert_int_equal(mkdir(folder, 0755), 0);
        for (size_t f = 0; f < 4; f++) {
            char from[256];
            size_t len;
            tu_join(from, sizeof from, bars, files[f]);
            tu_join(path, sizeof path, folder, files[f]);
            unsigned char *b = tu_read_file(from, &len);
            if (strcmp(files[f], cases[c].file) != 0) {
                tu_write_file(path, b, len);
            } else if (!strcmp(cases[c].name, "big")) {
                size_t total = 16 + CLI_N_TEST * 1024;
                unsigned char *img = calloc(total, 1);
                assert_non_null(img);
                memcpy(img, b, 16);
                cli_put_be32(img + 8, 32);
                cli_put_be32(img + 12, 32);
                tu_write_file(path, img, total);
                free(img);
            }
            free(b);
        }
        assert_exit(run("probe", "--ckpt", model, "--data", folder, NULL), 1);
        tu_assert_contains(err_text, cases[c].msg);
        assert_string_equal(out_text, "");
        printf("  %s", err_text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_with_ties),
        cmocka_unit_test(test_random_against_double),
        cmocka_unit_test(test_rounding_well_separated),
        cmocka_unit_test(test_team),
        cmocka_unit_test(test_vote),
        cmocka_unit_test(test_score_per_class),
        cmocka_unit_test(test_knn_accuracy),
        cmocka_unit_test(test_library_errors),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_binary_matches_encode),
        cmocka_unit_test(test_binary_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
