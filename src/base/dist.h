/* dist.h - the ranks of an MPI run: `mpirun -np R vae train ...` starts R
 * processes, each with its own thread team (par.h), that split every batch
 * between them (shard.h). Built without MPI (no VAE_MPI), or started
 * without mpirun, a process is rank 0 of 1 and every call here is a no-op
 * or a copy: MPI_Init is never called then.
 *
 * Only the caller's thread (thread 0 of the team) calls these. The
 * collectives must be called by every rank, in the same order. A failed
 * collective, or a rank that dies, ends the whole job (Open MPI's default
 * error handler, MPI_ERRORS_ARE_FATAL): the other ranks never hang. */
#ifndef VAE_DIST_H
#define VAE_DIST_H

#include <stddef.h>

#include "err.h"

/* Elements one collective moves per rank at most (MPI counts are ints). */
#define DIST_MAX_COUNT 2147483647u

/* Ranks in a job at most. */
#define DIST_MAX_RANKS 64

/* ===================================================================== */
/* Lifecycle                                                              */
/* ===================================================================== */

/* Joins the job if started by mpirun; else nothing (rank 0 of 1). Returns
 * 0, or -1 with err (started by mpirun but built without MPI, or MPI_Init
 * failed). */
int dist_init(int *argc, char ***argv, err_msg *err);

/* This process's rank, 0 .. dist_size()-1. */
size_t dist_rank(void);

/* Ranks in the job (1 without mpirun). */
size_t dist_size(void);

/* Leaves the job cleanly (every rank must call it); no-op for one rank. */
void dist_finalize(void);

/* Ends every rank of the job with code (MPI_Abort); for one rank, returns. */
void dist_abort(int code);

/* ===================================================================== */
/* Collectives (every rank, same order, n <= DIST_MAX_COUNT)              */
/* ===================================================================== */

/* In place: rank r's n doubles at buf + r*n go to every rank. */
void dist_allgather_doubles(double *buf, size_t n);

/* Rank q's slice of a buffer of n: [*lo, *hi), par_share's split of n into
 * dist_size() parts, multiples of align long (16: no two ranks' slices
 * share a cache line). */
void dist_slice(size_t n, size_t align, size_t q, size_t *lo, size_t *hi);

/* Blocks to the slices' owners: buf holds dist_size() * per blocks of n
 * floats (block b at b*n; rank r computed blocks r*per .. r*per+per-1).
 * Afterwards rank r's slice (dist_slice(n, align, r)) of every block holds
 * the values of the rank that computed the block; outside it, other
 * ranks' blocks are unchanged. */
void dist_to_owners(float *buf, size_t n, size_t per, size_t align);

/* Each rank's slice of buf (n floats, dist_slice(n, align, .)) to every
 * rank, in place. */
void dist_from_owners(float *buf, size_t n, size_t align);

/* Every rank's elements [lo, hi) of buf (elem bytes each; each rank
 * passes its own range, the ranges apart) to every rank, in place: a
 * gather, no arithmetic, so the bits arrive unchanged (-0.0 too). The
 * bytes from the lowest range's start to the highest's end are at most
 * DIST_MAX_COUNT (wherever in buf they are). */
void dist_gather_ranges(void *buf, size_t elem, size_t lo, size_t hi);

/* Elementwise sum of buf over the ranks, in place, the same on every rank.
 * MPI fixes no order of the additions: exact only where at most one rank
 * holds a non-zero value (a gather in disguise), which is how it is used. */
void dist_sum_floats(float *buf, size_t n);

/* Whether flag is non-zero on any rank (the same answer on every rank). */
int dist_any(int flag);

/* ===================================================================== */
/* Memory shared by the ranks of one machine                              */
/* ===================================================================== */

/* A buffer every rank maps (an MPI shared-memory window). */
typedef struct dist_shared dist_shared;

/* Whether every rank runs on this machine, so dist_shared_alloc works;
 * VAE_MPI_SHM=0 in the environment says no (messages are then used). */
int dist_one_node(void);

/* A buffer of bytes every rank sees (zeroed), with dist_one_node(); every
 * rank calls it. Returns it, or NULL with err. */
dist_shared *dist_shared_alloc(size_t bytes, err_msg *err);

/* The buffer's first byte in this process. */
void *dist_shared_base(const dist_shared *sh);

/* Returns once every rank has called it, every rank's writes to sh before
 * it visible to every rank's reads after it. */
void dist_shared_sync(dist_shared *sh);

/* Frees the buffer (every rank calls it); NULL is a no-op. */
void dist_shared_free(dist_shared *sh);

/* Returns once every rank has called it. */
void dist_barrier(void);

/* Seconds this process has spent in the collectives above (the
 * allgathers of a training step; vae bench reports the difference over
 * its steps). */
double dist_time(void);

#endif
