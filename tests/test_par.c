/* test_par.c - the thread team: every thread runs each job once, shares
 * tile the range exactly, and bad sizes are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>

#include "par.h"

static void test_share_tiles_range(void **state)
{
    (void)state;
    const size_t ns[] = {0, 1, 2, 7, 16, 100, 1000, 652824};
    const size_t aligns[] = {1, 16};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
            for (size_t T = 1; T <= 5; T++) {
                size_t next = 0, n = ns[i];
                for (size_t k = 0; k < T; k++) {
                    size_t lo, hi;
                    par_share(n, aligns[a], k, T, &lo, &hi);
                    assert_true(lo <= hi);
                    if (lo < hi) {
                        assert_int_equal(lo, next); /* contiguous, in order */
                        assert_int_equal(lo % aligns[a], 0);
                        next = hi;
                    } else {
                        assert_int_equal(hi, n); /* empty shares only at the end */
                    }
                }
                assert_int_equal(next, n);
            }
    /* Even split: 128 images over 2 threads is 64 + 64. */
    size_t lo, hi;
    par_share(128, 1, 1, 2, &lo, &hi);
    assert_true(lo == 64 && hi == 128);
}

typedef struct count_job {
    atomic_int runs[PAR_MAX_THREADS];
    atomic_int total;
    size_t seen_T;
} count_job;

static void count_task(void *ctx, size_t k, size_t T)
{
    count_job *j = ctx;
    atomic_fetch_add(&j->runs[k], 1);
    atomic_fetch_add(&j->total, 1);
    j->seen_T = T;
}

static void test_run_every_thread_once(void **state)
{
    (void)state;
    err_msg err;
    for (size_t T = 1; T <= 4; T++) {
        assert_int_equal(par_init(T, &err), 0);
        assert_int_equal(par_threads(), T);
        for (int rep = 0; rep < 200; rep++) {
            count_job j;
            memset(&j, 0, sizeof j);
            par_run(count_task, &j);
            /* par_run returns only once every thread is done */
            assert_int_equal(atomic_load(&j.total), (int)T);
            for (size_t k = 0; k < T; k++)
                assert_int_equal(atomic_load(&j.runs[k]), 1);
            assert_int_equal(j.seen_T, T);
        }
    }
    par_shutdown();
    assert_int_equal(par_threads(), 1);
}

static void test_bad_sizes(void **state)
{
    (void)state;
    err_msg err;
    assert_int_equal(par_init(0, &err), -1);
    assert_non_null(strstr(err.text, "0 threads"));
    assert_int_equal(par_init(PAR_MAX_THREADS + 1, &err), -1);
    assert_non_null(strstr(err.text, "need 1 to"));
    assert_int_equal(par_threads(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_tiles_range),
        cmocka_unit_test(test_run_every_thread_once),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
