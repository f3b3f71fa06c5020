/* test_recovery.c - faults during training, through the vae binary: SIGINT
 * and SIGTERM save the exact state and resume to the bit-identical end; a
 * second signal quits at once; kill -9 at any moment leaves the old or the
 * new checkpoint, whole; a non-finite loss stops with the epoch and step
 * and keeps the last good checkpoint. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "testutil.h"
#include "cliutil.h"

/* 3000 images at batch 1: an epoch is thousands of steps, so a signal sent
 * when epoch 1 is reported lands in the middle of epoch 2. */
#define BIG_N 3000
static char big[160];

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-recovery"))
        return -1;
    snprintf(big, sizeof big, "%s/data-big", dir);
    if (mkdir(big, 0755) != 0)
        return -1;
    write_split(big, "train", BIG_N, 3);
    write_split(big, "t10k", 10, 4);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    nanosleep(&ts, NULL);
}

#define BIG_ARGS "--data", big, "--batch", "1", "--hidden", "32", "--latent", \
                 "2", "--epochs", "3", "--threads", "1"

/* Trains the straight 3-epoch run once: what every interrupted run must
 * end as. */
static char straight[160];

static void straight_run(void)
{
    if (tu_exists(straight))
        return;
    char out[160];
    in_dir(straight, sizeof straight, "straight.bin");
    in_dir(out, sizeof out, "straight-out");
    assert_exit(run("train", BIG_ARGS, "--out", out, "--ckpt", straight, NULL), 0);
}

/* Starts the run, signals it with sig once epoch 1 is reported, and checks
 * the exit status, the message and the checkpoint saved mid-epoch 2; then
 * resumes it and checks it ends bit-identical to the straight run. */
static void interrupt_and_resume(int sig, const char *name, int want_exit)
{
    straight_run();
    char out[160], ckpt[160];
    snprintf(out, sizeof out, "%s/%s-out", dir, name);
    snprintf(ckpt, sizeof ckpt, "%s/%s.bin", dir, name);
    pid_t pid = spawn("train", BIG_ARGS, "--out", out, "--ckpt", ckpt, NULL);
    assert_true(wait_for_text(out_path, "epoch 1/3", 60.0));
    assert_int_equal(kill(pid, sig), 0);
    int rc = wait_status(pid);
    read_outputs();
    assert_exit(rc, want_exit);
    char said[64];
    snprintf(said, sizeof said, "interrupted by %s", name);
    tu_assert_contains(err_text, said);
    tu_assert_contains(err_text, "stopping after this step");
    /* The command printed is the one a user must give to go on the same
     * way: the resume below runs it. */
    char again[800];
    snprintf(again, sizeof again,
             "Continue with: vae train --resume --ckpt %s --epochs 3 --data %s --out %s "
             "--threads 1\n", ckpt, big, out);
    tu_assert_contains(err_text, again);

    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    printf("  %s: saved at epoch %llu, step %llu of %d\n", name,
           (unsigned long long)d.train.epoch + 1, (unsigned long long)d.train.step, BIG_N);
    assert_int_equal(d.train.epoch, 1);
    assert_true(d.train.step > 0 && d.train.step < BIG_N);
    assert_int_equal(d.train.n_seen, d.train.step);
    ckpt_data_free(&d);

    /* Resume with no settings but the ones a user must give again. */
    assert_exit(run("train", "--resume", "--ckpt", ckpt, "--epochs", "3", "--data", big,
                    "--out", out, "--threads", "1", NULL), 0);
    tu_assert_contains(out_text, "epoch 2/3");
    tu_assert_contains(out_text, "epoch 3/3");
    tu_assert_same_file(straight, ckpt);
}

static void test_sigint(void **state)
{
    (void)state;
    interrupt_and_resume(SIGINT, "SIGINT", 130);
}

static void test_sigterm(void **state)
{
    (void)state;
    interrupt_and_resume(SIGTERM, "SIGTERM", 143);
}

/* The terminal closed (nohup not given): saved as on Ctrl-C. */
static void test_sighup(void **state)
{
    (void)state;
    interrupt_and_resume(SIGHUP, "SIGHUP", 129);
}

/* A CPU time limit's soft end (ulimit -t, a batch system's): saved. */
static void test_sigxcpu(void **state)
{
    (void)state;
    interrupt_and_resume(SIGXCPU, "SIGXCPU", 152);
}

/* ulimit -t 1 (the hard limit a minute on): a second of CPU time. */
static void cpu_second(void)
{
    cli_set_limit(RLIMIT_CPU, 1, 60);
}

/* Under a real CPU time limit, the kernel's SIGXCPU each second past the
 * soft end does not cut the save short: the run stops with its exact
 * state, mid-run, and says how to go on. */
static void test_cpu_time_limit(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "cpu-limit-out");
    in_dir(ckpt, sizeof ckpt, "cpu-limit.bin");
    assert_exit(run_with(cpu_second, "train", "--data", big, "--batch", "1", "--hidden", "32",
                         "--latent", "2", "--epochs", "1000", "--threads", "1", "--out", out,
                         "--ckpt", ckpt, NULL), 152);
    tu_assert_contains(err_text, "interrupted by SIGXCPU; the exact state is saved");
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    assert_true(d.train.epoch < 1000);
    ckpt_data_free(&d);
}

/* path's inode, or 0 if there is none: each checkpoint save renames a new
 * file over the old one. */
static ino_t ino_of(const char *path)
{
    struct stat st;
    return stat(path, &st) ? 0 : st.st_ino;
}

/* Waits up to a minute (a loaded machine starts runs slowly) for path to
 * exist as another file than the one whose inode is before (0: any);
 * fails if it does not. */
static void wait_for_new(const char *path, ino_t before)
{
    for (int i = 0; i < 60000; i++) {
        ino_t now = ino_of(path);
        if (now && now != before)
            return;
        sleep_ms(1.0);
    }
    fail_msg("%s: not made within a minute", path);
}

/* A second signal does not wait for the step: the process ends by the
 * signal, and whatever checkpoint is on disk is whole. */
static void test_second_signal_quits(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "twice-out");
    in_dir(ckpt, sizeof ckpt, "twice.bin");
    /* A big model: one step is long enough for both signals to land in it. */
    pid_t pid = spawn("train", "--data", big, "--batch", "3000", "--hidden",
                      "4096,4096", "--epochs", "3", "--threads", "1", "--out", out,
                      "--ckpt", ckpt, NULL);
    /* The run makes its output folder once its signal handlers are in,
     * before it loads the data: wait for that (a loaded machine starts
     * slowly), then for the first step to be under way. */
    wait_for_new(out, 0);
    sleep_ms(300);
    assert_int_equal(kill(pid, SIGINT), 0);
    sleep_ms(50);
    assert_int_equal(kill(pid, SIGINT), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    read_outputs();
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGINT)
        fail_msg("expected death by SIGINT, got status 0x%x\nstderr:\n%s", st, err_text);
    tu_assert_contains(err_text, "again to quit at once");
    if (tu_exists(ckpt)) {
        ckpt_data d;
        err_msg err;
        if (ckpt_read(ckpt, &d, &err))
            fail_msg("%s", err.text);
        ckpt_data_free(&d);
    }
}

/* kill -9 at many moments of a run that saves often (every epoch is a few
 * milliseconds), each a random 0-100 ms after the run's first save of its
 * own, so that every kill lands while it trains and saves, however slowly
 * the machine starts it: each time, the checkpoint is there and whole, and
 * so is every PNG. A resume then finishes the run. */
static void test_kill9_leaves_whole_checkpoint(void **state)
{
    (void)state;
    char out[160], ckpt[160], path[320];
    in_dir(out, sizeof out, "kill9-out");
    in_dir(ckpt, sizeof ckpt, "kill9.bin");
    rng_state r;
    rng_seed(&r, 42);
    int whole = 0;
    for (int round = 0; round < 20; round++) {
        pid_t pid;
        ino_t before = ino_of(ckpt);
        if (!tu_exists(ckpt))
            pid = spawn("train", "--data", data, "--out", out, "--ckpt", ckpt,
                        "--epochs", "1000", "--batch", "100", "--hidden", "32",
                        "--latent", "2", "--threads", "2", NULL);
        else
            pid = spawn("train", "--data", data, "--out", out, "--ckpt", ckpt,
                        "--epochs", "1000", "--resume", "--threads", "2", NULL);
        wait_for_new(ckpt, before);
        sleep_ms((double)rng_below(&r, 100));
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(wait_status(pid), 128 + SIGKILL);
        if (!tu_exists(ckpt))
            fail_msg("after kill -9 number %d: %s is gone", round + 1, ckpt);
        ckpt_data d;
        err_msg err;
        if (ckpt_read(ckpt, &d, &err))
            fail_msg("after kill -9 number %d: %s", round + 1, err.text);
        unsigned long long e = d.train.epoch;
        ckpt_data_free(&d);
        whole++;
        /* The grids of the saved epoch are there, and the next epoch's, if
         * written before the kill, are whole too. */
        snprintf(path, sizeof path, "%s/sampled-%llu.png", out, e);
        assert_png_size(path, 242, 482);
        snprintf(path, sizeof path, "%s/reconst-%llu.png", out, e);
        assert_png_size(path, 242, 242);
        snprintf(path, sizeof path, "%s/sampled-%llu.png", out, e + 1);
        if (tu_exists(path))
            assert_png_size(path, 242, 482);
    }
    char hidden[256];
    tu_count_entries(out, hidden, sizeof hidden);
    printf("  20 kills, the checkpoint was there and whole after %d; a temp file "
           "left behind: %s\n", whole, hidden[0] ? hidden : "none");
    assert_int_equal(whole, 20);
    ckpt_data d;
    err_msg err;
    assert_int_equal(ckpt_read(ckpt, &d, &err), 0);
    char more[32];
    snprintf(more, sizeof more, "%llu", (unsigned long long)d.train.epoch + 2);
    ckpt_data_free(&d);
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", ckpt,
                    "--epochs", more, "--resume", NULL), 0);
}

/* Trains one epoch into ckpt and out (in the scratch folder, names ckpt_name
 * and out_name), then sets every weight of the output layer to w, keeping
 * everything else: a run about to blow up. */
static void blown_up_run(const char *ckpt_name, const char *out_name, float w, char *ckpt,
                         char *out)
{
    in_dir(out, 160, out_name);
    in_dir(ckpt, 160, ckpt_name);
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", ckpt,
                    "--epochs", "1", "--batch", "100", "--hidden", "32",
                    "--latent", "2", NULL), 0);
    ckpt_data d;
    model_net m;
    cli_ckpt_load(ckpt, &m, &d);
    cli_set_output_weights(&m, w);
    /* ckpt_save itself refuses what the reader would: an Inf moment, with
     * its own return value, and the file is left as it was. */
    size_t n;
    unsigned char *before = tu_read_file(ckpt, &n);
    float *v = malloc(d.n_params * sizeof *v);
    assert_non_null(v);
    memcpy(v, d.adam_v, d.n_params * sizeof *v);
    v[d.n_params - 1] = INFINITY;
    err_msg err;
    assert_int_equal(ckpt_save(ckpt, &m, d.adam_m, v, &d.train, &err), CKPT_NONFINITE);
    tu_assert_contains(err.text, "not written: the Adam second moments hold NaN or Inf");
    tu_assert_file_equals(ckpt, before, n);
    free(before);
    free(v);
    cli_ckpt_store(ckpt, &m, &d);
}

/* The loss turns non-finite: training stops with the epoch and step and a
 * hint, exit 1, and the last good checkpoint is kept byte for byte. */
static void test_nonfinite_loss(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    blown_up_run("nan.bin", "nan-out", 3e38f, ckpt, out);
    size_t n;
    unsigned char *before = tu_read_file(ckpt, &n);

    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", ckpt,
                    "--epochs", "2", "--resume", NULL), 1);
    tu_assert_contains(err_text, "epoch 2, step 1: the loss is not finite");
    tu_assert_contains(err_text, "the last good checkpoint is kept in");
    tu_assert_file_equals(ckpt, before, n);

    /* A new run that diverges before its first save speaks of no
     * checkpoint of its own, and leaves no --out folder it made; with
     * --force the earlier run's checkpoint is still there, untouched. */
    char fresh[160], fresh_out[160];
    in_dir(fresh, sizeof fresh, "nan-new.bin");
    in_dir(fresh_out, sizeof fresh_out, "nan-new-out");
    assert_exit(run("train", "--data", data, "--out", fresh_out, "--ckpt", fresh,
                    "--epochs", "1", "--lr", "1e6", NULL), 1);
    tu_assert_contains(err_text, "before its first save: this run wrote no checkpoint");
    assert_null(strstr(err_text, "last good checkpoint"));
    assert_false(tu_exists(fresh));
    assert_false(tu_exists(fresh_out));
    assert_exit(run("train", "--data", data, "--out", fresh_out, "--ckpt", ckpt,
                    "--epochs", "1", "--lr", "1e6", "--force", NULL), 1);
    tu_assert_contains(err_text, "this run wrote no checkpoint");
    tu_assert_file_equals(ckpt, before, n);
    assert_false(tu_exists(fresh_out));
    free(before);
}

/* The loss stays finite but Adam's second moments overflow (gradients
 * past 1e19 square to Inf): the state the reader would refuse is never
 * saved; training stops as diverged, the last good checkpoint kept byte for
 * byte. */
static void test_nonfinite_state(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    blown_up_run("inf.bin", "inf-out", 1e30f, ckpt, out);
    size_t n;
    unsigned char *before = tu_read_file(ckpt, &n);
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", ckpt,
                    "--epochs", "2", "--resume", NULL), 1);
    tu_assert_contains(err_text, "epoch 2: the Adam second moments are no longer finite: "
                                 "training diverged and stopped; the last good checkpoint "
                                 "is kept in");
    tu_assert_file_equals(ckpt, before, n);
    free(before);
}

/* A checkpoint (its CRC right) whose mid-epoch position cannot be this
 * data's: more steps done than an epoch has, or steps without images. The
 * resume is refused by name and the file left as it was. */
static void test_bad_position(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "pos-out");
    in_dir(ckpt, sizeof ckpt, "pos.bin");
    assert_exit(run("train", "--data", data, "--out", out, "--ckpt", ckpt, "--epochs", "1",
                    "--batch", "100", "--hidden", "16", "--latent", "2", NULL), 0);
    const uint64_t cases[2][2] = {{1000000, 0}, {2, 0}}; /* step, images seen */
    for (size_t c = 0; c < 2; c++) {
        ckpt_data d;
        model_net m;
        cli_ckpt_load(ckpt, &m, &d);
        d.train.step = cases[c][0];
        d.train.n_seen = cases[c][1];
        cli_ckpt_store(ckpt, &m, &d);
        size_t n;
        unsigned char *before = tu_read_file(ckpt, &n);
        assert_exit(run("train", "--data", data, "--out", out, "--ckpt", ckpt, "--epochs",
                        "2", "--resume", NULL), 1);
        tu_assert_contains(err_text, "corrupt checkpoint");
        tu_assert_contains(err_text, "steps of an epoch done");
        tu_assert_file_equals(ckpt, before, n);
        free(before);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_nonfinite_state),
        cmocka_unit_test(test_bad_position),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_sighup),
        cmocka_unit_test(test_sigxcpu),
        cmocka_unit_test(test_cpu_time_limit),
        cmocka_unit_test(test_second_signal_quits),
        cmocka_unit_test(test_kill9_leaves_whole_checkpoint),
        cmocka_unit_test(test_nonfinite_loss),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
