/* probe.h - how well a latent space separates the classes: k-nearest-
 * neighbour classification of points (posterior means) by Euclidean
 * distance, the references voting with their labels.
 *
 * Distances go through sgemm, ||q||^2 + ||r||^2 - 2 q.r, the cross term a
 * block of queries times a block of references at a time, so memory stays
 * bounded whatever the set sizes. Query blocks are split across the thread
 * team (par.h); the result does not depend on the team size or the blocks.
 *
 * Order and ties: neighbours are ordered by distance, then by reference
 * index (the lower first). The vote goes to the label most neighbours
 * have; among labels tied for most, to the one with the nearest neighbour. */
#ifndef VAE_PROBE_H
#define VAE_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ===================================================================== */
/* Sizes                                                                  */
/* ===================================================================== */

#define PROBE_DEFAULT_K 5        /* neighbours that vote, unless told */
#define PROBE_CLASSES (UINT8_MAX + 1) /* labels are bytes */
#define PROBE_BLOCK_QUERIES 256  /* queries a distance tile holds */
#define PROBE_BLOCK_REFS 2048    /* references a distance tile holds */
#define PROBE_HEAP_SLOTS (1u << 20) /* neighbour slots a thread keeps at once */

/* n points of dim floats each, row-major, and their labels (NULL where
 * none are needed: the references of probe_neighbours). */
typedef struct probe_points {
    const float *x;        /* n x dim */
    const uint8_t *labels; /* n, or NULL */
    size_t n;
} probe_points;

/* Block sizes of the distance tiles; 0 (or a NULL struct) takes the
 * defaults above. Small blocks are for tests: the result is the same. */
typedef struct probe_blocks {
    size_t queries, refs;
} probe_blocks;

/* What probe_score counts. */
typedef struct probe_result {
    size_t k, n_ref, n_query;
    size_t correct;                      /* queries given their own label */
    double accuracy;                     /* correct / n_query */
    size_t class_n[PROBE_CLASSES];       /* queries of each true label */
    size_t class_correct[PROBE_CLASSES]; /* of those, given their own label */
} probe_result;

/* ===================================================================== */
/* Neighbours and votes                                                   */
/* ===================================================================== */

/* The k nearest references of every query, nearest first (see above for
 * ties): their indices into nbr (n_query x k) and, if dist is not NULL,
 * their squared distances into dist (n_query x k; computed through sgemm,
 * so to float rounding, and never below 0). Returns 0, or -1 with err
 * (k of 0 or above ref->n, dim of 0, no queries, a non-finite coordinate,
 * more than 2^32 - 1 references, out of memory). */
int probe_neighbours(const probe_points *ref, const probe_points *query, size_t dim,
                     size_t k, const probe_blocks *blocks, uint32_t *nbr, float *dist,
                     err_msg *err);

/* The label of the vote of k neighbours whose labels are given nearest
 * first: the most frequent; among the tied, the first in the list. */
uint8_t probe_vote(const uint8_t *labels, size_t k);

/* Every query's predicted label into pred (n_query): the vote of its k
 * nearest references, which need labels. Returns 0, or -1 with err (as
 * probe_neighbours, or references without labels). */
int probe_classify(const probe_points *ref, const probe_points *query, size_t dim,
                   size_t k, const probe_blocks *blocks, uint8_t *pred, err_msg *err);

/* Counts the n predictions against the true labels into out (zeroed
 * first; its k, n_ref and n_query are the caller's to fill). */
void probe_score(const uint8_t *pred, const uint8_t *truth, size_t n, probe_result *out);

/* probe_classify then probe_score: the queries need labels too. Returns 0,
 * or -1 with err. */
int probe_knn(const probe_points *ref, const probe_points *query, size_t dim, size_t k,
              const probe_blocks *blocks, probe_result *out, err_msg *err);

#endif
