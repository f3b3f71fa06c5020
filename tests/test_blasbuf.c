/* test_blasbuf.c - OpenBLAS's work buffers under an address-space limit:
 * the room is counted, too little is refused with a message that says
 * what to change, and a team's buffers are mapped before anything else
 * can take the room. Each case runs in a child process under its own
 * RLIMIT_AS, with an alarm: a product waiting for room for ever fails the
 * test instead of stalling it. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blasbuf.h"
#include "par.h"

/* Seconds a child may take: its products take milliseconds. */
#define CHILD_ALARM 60

/* The process's address space now (VmSize), in bytes. */
static size_t vm_size(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!fp || fscanf(fp, "%lu", &pages) != 1)
        _exit(90);
    fclose(fp);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* In the child: the address space limited to what is in use plus extra. */
static void limit_to(size_t extra)
{
    size_t lim = vm_size() + extra;
    struct rlimit rl = {lim, lim};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(91);
    alarm(CHILD_ALARM);
}

/* Runs fn in a child and fails the test unless it exits 0. Skipped under
 * ASan, whose shadow memory does not fit under an address-space limit. */
static void child_passes(int (*fn)(void))
{
#ifdef __SANITIZE_ADDRESS__
    skip();
#endif
    fflush(stderr);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn());
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (rc != 0)
        fail_msg("the child exited %d (%d: killed by the alarm)", rc, 128 + SIGALRM);
}

/* A product big enough to take a work buffer (smaller ones may not). */
enum { N = 256 };

typedef struct gemm_job {
    float *a[2], *b[2], *c[2];
} gemm_job;

static void gemm_task(void *ctx, size_t k, size_t T)
{
    (void)T;
    gemm_job *j = ctx;
    for (int rep = 0; rep < 20; rep++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, j->a[k], N,
                    j->b[k], N, 0.0f, j->c[k], N);
}

/* ===================================================================== */

static void test_no_limit_no_effect(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_AS, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY)
        skip(); /* the test runs under a limit of its own */
    assert_int_equal(blasbuf_limited(), 0);
    assert_true(blasbuf_fit() == SIZE_MAX);
    err_msg err;
    size_t before = vm_size();
    assert_int_equal(blasbuf_reserve(PAR_MAX_THREADS, &err), 0);
    assert_true(vm_size() == before); /* nothing mapped */
}

/* Room for one buffer and a half: one thread fits, two are refused with
 * the limit, the room and both ways out in the message. */
static int room_for_one(void)
{
    limit_to(BLASBUF_SLACK + BLASBUF_BYTES + BLASBUF_BYTES / 2);
    if (!blasbuf_limited() || blasbuf_fit() != 1)
        return 2;
    err_msg err;
    if (blasbuf_reserve(2, &err) == 0)
        return 3;
    if (!strstr(err.text, "ulimit -v") || !strstr(err.text, "room for 1") ||
        !strstr(err.text, "--threads 1") || !strstr(err.text, "raise the limit to at least")) {
        fprintf(stderr, "message: %s\n", err.text);
        return 4;
    }
    if (par_init(2, &err) == 0 || par_threads() != 1)
        return 5;
    if (blasbuf_reserve(1, &err) != 0) {
        fprintf(stderr, "%s\n", err.text);
        return 6;
    }
    return 0;
}

static void test_room_for_one(void **state)
{
    (void)state;
    child_passes(room_for_one);
}

/* No room for a buffer: refused, with no "--threads" way out. */
static int room_for_none(void)
{
    limit_to(BLASBUF_SLACK + BLASBUF_BYTES / 2);
    err_msg err;
    if (blasbuf_fit() != 0 || blasbuf_reserve(1, &err) == 0)
        return 2;
    if (!strstr(err.text, "room for 0") || strstr(err.text, "--threads"))
        return 3;
    return 0;
}

static void test_room_for_none(void **state)
{
    (void)state;
    child_passes(room_for_none);
}

/* A team of two under a limit, then the rest of the address space taken
 * by the program: both threads' products still run at once, in buffers
 * mapped when the team started. (Without the reservation the second
 * thread's buffer does not fit and OpenBLAS waits for ever: the alarm.) */
static int team_keeps_its_buffers(void)
{
    gemm_job j;
    for (int k = 0; k < 2; k++) {
        j.a[k] = calloc(N * N, sizeof(float));
        j.b[k] = calloc(N * N, sizeof(float));
        j.c[k] = calloc(N * N, sizeof(float));
        if (!j.a[k] || !j.b[k] || !j.c[k])
            return 2;
    }
    limit_to(BLASBUF_SLACK + 2 * BLASBUF_BYTES + BLASBUF_BYTES / 2);
    err_msg err;
    if (par_init(2, &err)) {
        fprintf(stderr, "%s\n", err.text);
        return 3;
    }
    /* Take what is left, a MiB at a time (never freed: the child ends). */
    size_t taken = 0;
    while (malloc((size_t)1 << 20))
        taken++;
    if (taken == 0 || blasbuf_fit() != 0)
        return 4;
    par_run(gemm_task, &j);
    par_shutdown();
    return 0;
}

static void test_team_keeps_its_buffers(void **state)
{
    (void)state;
    child_passes(team_keeps_its_buffers);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* As vae runs under a limit (cpu_tune_openblas): OpenBLAS loaded with
     * one thread, so no thread of its own takes a buffer while a test
     * counts them. */
    const char *t = getenv("OPENBLAS_NUM_THREADS");
    if (!t || strcmp(t, "1")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv("/proc/self/exe", argv);
        perror("test_blasbuf: cannot re-execute itself");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_limit_no_effect),
        cmocka_unit_test(test_room_for_one),
        cmocka_unit_test(test_room_for_none),
        cmocka_unit_test(test_team_keeps_its_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
