/* dist.c - the ranks of an MPI run (see src/base/dist.h). Without VAE_MPI
 * every collective is the one-rank identity. */
#define _POSIX_C_SOURCE 200809L
#include "dist.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef VAE_MPI
#include <mpi.h>
#endif

static struct {
    int on; /* MPI_Init was called */
    int one_node; /* every rank on this machine */
    size_t rank, size;
    double seconds;
} world = {.size = 1};

/* Whether this process was started by mpirun (Open MPI sets
 * OMPI_COMM_WORLD_SIZE), whether or not the build has MPI. */
static int dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL;
}

void dist_slice(size_t n, size_t align, size_t q, size_t *lo, size_t *hi)
{
    if (align == 0)
        align = 1;
    size_t units = (n + align - 1) / align;
    size_t per = (units + world.size - 1) / world.size * align;
    *lo = q * per < n ? q * per : n;
    *hi = (q + 1) * per < n ? (q + 1) * per : n;
}

size_t dist_rank(void)
{
    return world.rank;
}

size_t dist_size(void)
{
    return world.size;
}

double dist_time(void)
{
    return world.seconds;
}

#ifdef VAE_MPI

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dist_init(int *argc, char ***argv, err_msg *err)
{
    if (!dist_launched() || world.on)
        return 0;
    /* Ranks wait for one another at every step. Open MPI spins while it
     * waits, unless told to yield the core: on a machine with no core to
     * spare, a spinning rank takes it from the rank everyone waits for
     * (2 ranks x 1 thread took 1.5x the time of 2 threads; yielding, the
     * same). An mpirun --mca or OMPI_MCA_ setting of the user's wins. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    /* Only thread 0 of the team calls MPI. */
    int have = 0, rank = 0, size = 1;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &have) != MPI_SUCCESS)
        return err_set(err, "MPI_Init failed (started by mpirun)");
    world.on = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    world.rank = (size_t)rank;
    world.size = (size_t)size;
    if (world.size > DIST_MAX_RANKS)
        return err_set(err, "%zu ranks: at most %d", world.size, DIST_MAX_RANKS);
    /* The ranks that can share memory with this one: all of them? */
    MPI_Comm node;
    int node_size = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
    const char *shm = getenv("VAE_MPI_SHM");
    world.one_node = node_size == size && !(shm && !strcmp(shm, "0"));
    if (have < MPI_THREAD_FUNNELED)
        return err_set(err, "this MPI gives no thread support (MPI_THREAD_FUNNELED): "
                       "the thread team needs it");
    return 0;
}

void dist_finalize(void)
{
    if (world.on)
        MPI_Finalize();
    world.on = 0;
}

void dist_abort(int code)
{
    if (world.on && world.size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
}

/* The collectives are no-ops for one rank, so a plain run pays nothing. */
#define ONE_RANK() (!world.on || world.size < 2)

void dist_allgather_doubles(double *buf, size_t n)
{
    if (ONE_RANK())
        return;
    double t0 = now_s();
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)n, MPI_DOUBLE,
                  MPI_COMM_WORLD);
    world.seconds += now_s() - t0;
}

/* Starts sending (or receiving) per runs of len floats, n apart, from (or
 * into) at, to (or from) peer; *nreq counts the requests. */
static void post(int send, float *at, size_t per, size_t len, size_t n, size_t peer,
                 MPI_Datatype *type, MPI_Request *req, int *nreq)
{
    if (len == 0)
        return;
    MPI_Type_vector((int)per, (int)len, (int)n, MPI_FLOAT, &type[*nreq]);
    MPI_Type_commit(&type[*nreq]);
    if (send)
        MPI_Isend(at, 1, type[*nreq], (int)peer, 0, MPI_COMM_WORLD, &req[*nreq]);
    else
        MPI_Irecv(at, 1, type[*nreq], (int)peer, 0, MPI_COMM_WORLD, &req[*nreq]);
    (*nreq)++;
}

void dist_to_owners(float *buf, size_t n, size_t per, size_t align)
{
    if (ONE_RANK() || per == 0)
        return;
    double t0 = now_s();
    size_t me = world.rank, lo, hi;
    MPI_Request req[2 * DIST_MAX_RANKS];
    MPI_Datatype type[2 * DIST_MAX_RANKS];
    int nreq = 0;
    dist_slice(n, align, me, &lo, &hi);
    for (size_t q = 0; q < world.size; q++) {
        size_t qlo, qhi;
        dist_slice(n, align, q, &qlo, &qhi);
        if (q == me)
            continue;
        /* Rank q's slice of my per blocks, and my slice of q's, into place. */
        post(1, buf + me * per * n + qlo, per, qhi - qlo, n, q, type, req, &nreq);
        post(0, buf + q * per * n + lo, per, hi - lo, n, q, type, req, &nreq);
    }
    MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE);
    for (int i = 0; i < nreq; i++)
        MPI_Type_free(&type[i]);
    world.seconds += now_s() - t0;
}

void dist_from_owners(float *buf, size_t n, size_t align)
{
    if (ONE_RANK())
        return;
    double t0 = now_s();
    int count[DIST_MAX_RANKS], at[DIST_MAX_RANKS];
    for (size_t q = 0; q < world.size; q++) {
        size_t lo, hi;
        dist_slice(n, align, q, &lo, &hi);
        count[q] = (int)(hi - lo);
        at[q] = (int)lo;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, count, at, MPI_FLOAT,
                   MPI_COMM_WORLD);
    world.seconds += now_s() - t0;
}

void dist_gather_ranges(void *buf, size_t elem, size_t lo, size_t hi)
{
    if (ONE_RANK())
        return;
    double t0 = now_s();
    unsigned long long mine[2] = {lo, hi}, all[2 * DIST_MAX_RANKS];
    MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG,
                  MPI_COMM_WORLD);
    /* Offsets from the lowest range's start: an int holds the ranges'
     * bytes (a batch's), not their distance from buf (a whole data set's). */
    unsigned long long base = all[0];
    for (size_t q = 1; q < world.size; q++)
        base = all[2 * q] < base ? all[2 * q] : base;
    int count[DIST_MAX_RANKS], at[DIST_MAX_RANKS];
    for (size_t q = 0; q < world.size; q++) {
        count[q] = (int)((all[2 * q + 1] - all[2 * q]) * elem);
        at[q] = (int)((all[2 * q] - base) * elem);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, (char *)buf + base * elem, count,
                   at, MPI_BYTE, MPI_COMM_WORLD);
    world.seconds += now_s() - t0;
}

void dist_sum_floats(float *buf, size_t n)
{
    if (ONE_RANK())
        return;
    double t0 = now_s();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    world.seconds += now_s() - t0;
}

int dist_any(int flag)
{
    if (ONE_RANK())
        return flag != 0;
    int v = flag != 0, any = 0;
    MPI_Allreduce(&v, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any;
}

void dist_barrier(void)
{
    if (!ONE_RANK())
        MPI_Barrier(MPI_COMM_WORLD);
}

struct dist_shared {
    MPI_Win win;
    void *base;
};

int dist_one_node(void)
{
    return world.on && world.one_node;
}

dist_shared *dist_shared_alloc(size_t bytes, err_msg *err)
{
    if (!dist_one_node())
        return err_set(err, "the ranks are not all on one machine"), NULL;
    dist_shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return err_set(err, "out of memory"), NULL;
    /* Rank 0 holds it all; the others map rank 0's part. */
    void *mine = NULL;
    MPI_Aint size = world.rank == 0 ? (MPI_Aint)bytes : 0, got = 0;
    int unit = 0;
    if (MPI_Win_allocate_shared(size, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &mine,
                                &sh->win) != MPI_SUCCESS) {
        free(sh);
        return err_set(err, "cannot share %zu bytes between the ranks", bytes), NULL;
    }
    MPI_Win_shared_query(sh->win, 0, &got, &unit, &sh->base);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, sh->win);
    if (world.rank == 0)
        memset(sh->base, 0, bytes);
    dist_shared_sync(sh);
    return sh;
}

void *dist_shared_base(const dist_shared *sh)
{
    return sh->base;
}

void dist_shared_sync(dist_shared *sh)
{
    double t0 = now_s();
    MPI_Win_sync(sh->win);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Win_sync(sh->win);
    world.seconds += now_s() - t0;
}

void dist_shared_free(dist_shared *sh)
{
    if (!sh)
        return;
    MPI_Win_unlock_all(sh->win);
    MPI_Win_free(&sh->win);
    free(sh);
}

#else /* one rank: the identity */

int dist_init(int *argc, char ***argv, err_msg *err)
{
    (void)argc, (void)argv;
    if (dist_launched() && strcmp(getenv("OMPI_COMM_WORLD_SIZE"), "1") != 0)
        return err_set(err, "started by mpirun, but this vae was built without MPI: "
                       "install libopenmpi-dev (scripts/deps.sh) and build again");
    return 0;
}

void dist_finalize(void) {}

void dist_abort(int code)
{
    (void)code;
}

void dist_allgather_doubles(double *buf, size_t n)
{
    (void)buf, (void)n;
}

void dist_to_owners(float *buf, size_t n, size_t per, size_t align)
{
    (void)buf, (void)n, (void)per, (void)align;
}

void dist_from_owners(float *buf, size_t n, size_t align)
{
    (void)buf, (void)n, (void)align;
}

void dist_gather_ranges(void *buf, size_t elem, size_t lo, size_t hi)
{
    (void)buf, (void)elem, (void)lo, (void)hi;
}

void dist_sum_floats(float *buf, size_t n)
{
    (void)buf, (void)n;
}

int dist_any(int flag)
{
    return flag != 0;
}

void dist_barrier(void) {}

int dist_one_node(void)
{
    return 0;
}

dist_shared *dist_shared_alloc(size_t bytes, err_msg *err)
{
    (void)bytes;
    return err_set(err, "built without MPI: no memory shared between ranks"), NULL;
}

void *dist_shared_base(const dist_shared *sh)
{
    (void)sh;
    return NULL;
}

void dist_shared_sync(dist_shared *sh)
{
    (void)sh;
}

void dist_shared_free(dist_shared *sh)
{
    (void)sh;
}

#endif
