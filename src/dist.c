/* dist.c - the ranks of an MPI run (see include/dist.h). Without VAE_MPI
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
    size_t rank, size;
    double seconds;
} world = {0, 0, 1, 0.0};

int dist_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL;
}

int dist_built(void)
{
#ifdef VAE_MPI
    return 1;
#else
    return 0;
#endif
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

void dist_time_reset(void)
{
    world.seconds = 0.0;
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

/* In place: rank r's n elements of type at buf + r*n to every rank. */
static void allgather(void *buf, size_t n, MPI_Datatype type)
{
    if (ONE_RANK())
        return;
    double t0 = now_s();
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)n, type, MPI_COMM_WORLD);
    world.seconds += now_s() - t0;
}

void dist_allgather_floats(float *buf, size_t n)
{
    allgather(buf, n, MPI_FLOAT);
}

void dist_allgather_doubles(double *buf, size_t n)
{
    allgather(buf, n, MPI_DOUBLE);
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

void dist_bcast(void *buf, size_t bytes)
{
    if (ONE_RANK())
        return;
    /* In pieces of at most 1 GiB: the count is an int. */
    for (size_t at = 0; at < bytes; at += (size_t)1 << 30) {
        size_t len = bytes - at < ((size_t)1 << 30) ? bytes - at : (size_t)1 << 30;
        MPI_Bcast((char *)buf + at, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

void dist_barrier(void)
{
    if (!ONE_RANK())
        MPI_Barrier(MPI_COMM_WORLD);
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

void dist_allgather_floats(float *buf, size_t n)
{
    (void)buf, (void)n;
}

void dist_allgather_doubles(double *buf, size_t n)
{
    (void)buf, (void)n;
}

void dist_sum_floats(float *buf, size_t n)
{
    (void)buf, (void)n;
}

int dist_any(int flag)
{
    return flag != 0;
}

void dist_bcast(void *buf, size_t bytes)
{
    (void)buf, (void)bytes;
}

void dist_barrier(void) {}

#endif
