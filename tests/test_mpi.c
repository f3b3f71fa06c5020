/* test_mpi.c - vae train across MPI ranks, through the binary under mpirun
 * ($VAE_MPIRUN): 2 ranks of 1 thread write the checkpoint of one process
 * with 2 threads byte for byte (the MLP and the conv VAE), 2 ranks of 2
 * threads that of one process with 4, through shared memory and through
 * MPI messages; only rank 0 prints; a SIGTERM to
 * one rank stops all after the same step with one whole checkpoint that
 * resumes to the uninterrupted run's bytes; a rank killed mid-run ends the
 * job (no hang) and leaves the last checkpoint whole; vae eval across ranks
 * prints one process's numbers, with --iw too, and vae score and encode
 * write its bytes; commands that do not split their work yet refuse more
 * than one rank. Built only with MPI. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

/* Images for the runs that are stopped: at batch 4 an epoch is 250 steps,
 * so a signal sent when epoch 1 is reported lands inside epoch 2. */
#define STOP_N 1000
static char stop_data[160];

/* mpirun -np 2, as root too (CI), on a machine with fewer free cores;
 * the same with VAE_MPI_SHM=0 (MPI messages instead of shared memory). */
static const char *two_ranks[8], *two_ranks_msg[8];
/* What same_as_threads runs its ranks with. */
static const char *const *ranks_prefix = two_ranks;

static int group_setup(void **state)
{
    (void)state;
    const char *mpirun = getenv("VAE_MPIRUN");
    if (!mpirun || !*mpirun) {
        fprintf(stderr, "test_mpi: VAE_MPIRUN must name mpirun (CTest sets it)\n");
        return -1;
    }
    const char *argv[] = {mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2",
                          NULL};
    memcpy(two_ranks, argv, sizeof argv);
    const char *msg[] = {mpirun, "--allow-run-as-root", "--oversubscribe", "-x",
                         "VAE_MPI_SHM=0", "-np", "2", NULL};
    memcpy(two_ranks_msg, msg, sizeof msg);
    if (cli_setup("vae-test-mpi"))
        return -1;
    snprintf(stop_data, sizeof stop_data, "%s/data-stop", dir);
    if (mkdir(stop_data, 0755) != 0)
        return -1;
    write_split(stop_data, "train", STOP_N, 5);
    write_split(stop_data, "t10k", 20, 6);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

/* Lines of text (each ended by '\n'). */
static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* Trains 2 epochs on the small data set with extra args twice: one process
 * of `threads` threads into NAME-1.bin, and 2 ranks of threads/2 threads
 * into NAME-2.bin; the checkpoints must be the same bytes and the epochs'
 * losses the same numbers, and only rank 0 may print. */
static void same_as_threads(const char *name, const char *threads, const char *half,
                            const char *a1, const char *a2, const char *a3,
                            const char *a4)
{
    char c1[256], c2[256], o1[256], o2[256], f1[64], f2[64], d1[64], d2[64];
    snprintf(f1, sizeof f1, "%s-1.bin", name);
    snprintf(f2, sizeof f2, "%s-2.bin", name);
    snprintf(d1, sizeof d1, "%s-out-1", name);
    snprintf(d2, sizeof d2, "%s-out-2", name);
    in_dir(c1, sizeof c1, f1);
    in_dir(c2, sizeof c2, f2);
    in_dir(o1, sizeof o1, d1);
    in_dir(o2, sizeof o2, d2);
    cli_prefix = NULL;
    assert_exit(run("train", "--data", data, "--ckpt", c1, "--out", o1, "--epochs", "2",
                    "--threads", threads, "--json", a1, a2, a3, a4, NULL), 0);
    char *lines1 = strdup(out_text);
    cli_prefix = ranks_prefix;
    int rc = run("train", "--data", data, "--ckpt", c2, "--out", o2, "--epochs", "2",
                 "--threads", half, "--json", a1, a2, a3, a4, NULL);
    cli_prefix = NULL;
    assert_exit(rc, 0);
    tu_assert_same_file(c1, c2);
    /* Rank 0 alone prints: one JSON line an epoch, not one a rank. */
    if (count_lines(out_text) != 2)
        fail_msg("expected 2 epoch lines from rank 0 alone, got:\n%s", out_text);
    const char *keys[] = {"train_loss", "train_rec", "train_kl", "test_loss", "test_kl"};
    const char *l1 = lines1, *l2 = out_text;
    for (int e = 0; e < 2; e++) {
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (json_num(l1, keys[k]) != json_num(l2, keys[k]))
                fail_msg("epoch %d %s: %.9g with threads, %.9g across ranks", e + 1,
                         keys[k], json_num(l1, keys[k]), json_num(l2, keys[k]));
        l1 = strchr(l1, '\n') + 1;
        l2 = strchr(l2, '\n') + 1;
    }
    free(lines1);
    /* Rank 0's files only, and all of them. */
    char png[320];
    snprintf(png, sizeof png, "%s/sampled-2.png", o2);
    assert_true(tu_exists(png));
    snprintf(png, sizeof png, "%s/index.html", o2);
    assert_true(tu_exists(png));
}

/* The default MLP, batch 128 (the rows plan with 2 threads); 300 images:
 * the last batch of 44 is split 22 + 22. */
static void test_mlp_two_ranks_equal_two_threads(void **state)
{
    (void)state;
    same_as_threads("mlp", "2", "1", NULL, NULL, NULL, NULL);
}

/* The conv VAE: BatchNorm's batch statistics summed across the ranks. */
static void test_conv_two_ranks_equal_two_threads(void **state)
{
    (void)state;
    same_as_threads("conv", "2", "1", "--arch", "conv", "--hidden", "8,16");
}

/* The importance-weighted bound with K = 3 draws and the DReG estimator. */
static void test_iwae_dreg_two_ranks_equal_two_threads(void **state)
{
    (void)state;
    same_as_threads("dreg", "2", "1", "--objective=iwae", "--k=3", "--estimator=dreg", NULL);
}

/* Two stochastic layers (every image's draws of both layers from the
 * stream in image order, whichever rank takes it). */
static void test_two_layers_two_ranks_equal_two_threads(void **state)
{
    (void)state;
    same_as_threads("twolayers", "2", "1", "--latent=4,2", "--hidden=32/8", "--act=tanh",
                    NULL);
}

/* Teams inside ranks: 2 x 2 threads against 4 threads, batch 256 (rows). */
static void test_two_ranks_of_two_equal_four_threads(void **state)
{
    (void)state;
    same_as_threads("four", "4", "2", "--batch", "256", NULL, NULL);
}

/* The same through MPI messages (the path between machines): the slices
 * of the gradient shares sent to their owners, the parameters gathered. */
static void test_messages_equal_threads(void **state)
{
    (void)state;
    ranks_prefix = two_ranks_msg;
    same_as_threads("msg", "2", "1", NULL, NULL, NULL, NULL);
    same_as_threads("msg4", "4", "2", "--batch", "256", NULL, NULL);
    ranks_prefix = two_ranks;
}

/* The vae processes mpirun started, in order: its children. */
static size_t rank_pids(pid_t mpirun, pid_t *out, size_t max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)mpirun, (int)mpirun);
    char *text = (char *)tu_read_file(path, NULL);
    size_t n = 0;
    for (char *p = text, *end; n < max; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        out[n++] = (pid_t)v;
    }
    free(text);
    return n;
}

/* Waits up to limit_s for pid; returns its status as wait_status, or -1 if
 * it is still running then (it is killed). */
static int wait_limited(pid_t pid, double limit_s)
{
    for (double waited = 0.0; waited < limit_s; waited += 0.05) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    wait_status(pid);
    return -1;
}

#define STOP_ARGS "--data", stop_data, "--batch", "4", "--hidden", "32", "--latent", \
                  "2", "--threads", "1", "--json"

/* SIGTERM to rank 1 only: every rank stops after the same step, rank 0
 * saves the exact state, and a 2-rank resume ends with the bytes of the
 * run that was never stopped. */
static void test_signal_to_one_rank_stops_all_and_resumes(void **state)
{
    (void)state;
    char whole[256], part[256], o1[256], o2[256];
    in_dir(whole, sizeof whole, "stop-whole.bin");
    in_dir(part, sizeof part, "stop-part.bin");
    in_dir(o1, sizeof o1, "stop-out-1");
    in_dir(o2, sizeof o2, "stop-out-2");
    cli_prefix = two_ranks;
    assert_exit(run("train", STOP_ARGS, "--ckpt", whole, "--out", o1, "--epochs", "3",
                    NULL), 0);
    pid_t mp = spawn("train", STOP_ARGS, "--ckpt", part, "--out", o2, "--epochs", "3",
                     NULL);
    if (!wait_for_text(out_path, "\"epoch\":1,", 300.0)) {
        kill(mp, SIGKILL);
        wait_status(mp);
        cli_prefix = NULL;
        fail_msg("epoch 1 never reported");
    }
    pid_t ranks[4];
    size_t n = rank_pids(mp, ranks, 4);
    assert_int_equal(n, 2);
    assert_int_equal(kill(ranks[1], SIGTERM), 0);
    int rc = wait_limited(mp, 120.0);
    read_outputs();
    cli_prefix = NULL;
    assert_exit(rc, 128 + SIGTERM);
    assert_non_null(strstr(err_text, "the exact state is saved"));
    ckpt_data d;
    err_msg err;
    if (ckpt_read(part, &d, &err))
        fail_msg("%s", err.text);
    /* Stopped inside epoch 2 (or, on a slow machine, a later one). */
    assert_true(d.train.epoch >= 1 && d.train.epoch < 3);
    ckpt_data_free(&d);
    cli_prefix = two_ranks;
    rc = run("train", "--resume", "--data", stop_data, "--threads", "1", "--ckpt", part,
             "--out", o2, "--epochs", "3", "--json", NULL);
    cli_prefix = NULL;
    assert_exit(rc, 0);
    tu_assert_same_file(whole, part);
}

/* kill -9 of one rank mid-run: mpirun ends the job (no rank waits forever
 * in a collective) with a non-zero status, and the checkpoint on disk is
 * the last whole one. */
static void test_killed_rank_ends_job_checkpoint_whole(void **state)
{
    (void)state;
    char ck[256], o[256];
    in_dir(ck, sizeof ck, "killed.bin");
    in_dir(o, sizeof o, "killed-out");
    cli_prefix = two_ranks;
    pid_t mp = spawn("train", STOP_ARGS, "--ckpt", ck, "--out", o, "--epochs", "50",
                     NULL);
    cli_prefix = NULL;
    if (!wait_for_text(out_path, "\"epoch\":1,", 300.0)) {
        kill(mp, SIGKILL);
        wait_status(mp);
        fail_msg("epoch 1 never reported");
    }
    pid_t ranks[4];
    assert_int_equal(rank_pids(mp, ranks, 4), 2);
    assert_int_equal(kill(ranks[1], SIGKILL), 0);
    int rc = wait_limited(mp, 120.0);
    read_outputs();
    if (rc == -1)
        fail_msg("the job still ran 120 s after a rank was killed");
    assert_true(rc != 0);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ck, &d, &err))
        fail_msg("the checkpoint is not whole: %s", err.text);
    assert_true(d.train.epoch >= 1);
    ckpt_data_free(&d);
}

/* vae eval across 2 ranks of 1 thread prints the numbers of one process
 * with 2 threads, for the MLP and the conv VAE (trained above), with a
 * batch that splits evenly and one that leaves a short last batch. */
static void test_eval_two_ranks_equal_two_threads(void **state)
{
    (void)state;
    const char *models[] = {"mlp-1.bin", "conv-1.bin"}, *batches[] = {"50", "7"};
    const char *keys[] = {"test_loss", "test_rec", "test_kl", "n"};
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 2; b++) {
            char ck[256];
            in_dir(ck, sizeof ck, models[i]);
            assert_exit(run("eval", "--data", data, "--ckpt", ck, "--threads", "2",
                            "--batch", batches[b], "--json", NULL), 0);
            char *one = strdup(out_text);
            cli_prefix = two_ranks;
            int rc = run("eval", "--data", data, "--ckpt", ck, "--threads", "1",
                         "--batch", batches[b], "--json", NULL);
            cli_prefix = NULL;
            assert_exit(rc, 0);
            assert_int_equal(count_lines(out_text), 1); /* rank 0 alone */
            for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
                if (!(json_num(one, keys[k]) == json_num(out_text, keys[k])))
                    fail_msg("%s, batch %s, %s: %.9g in one process, %.9g across ranks",
                             models[i], batches[b], keys[k], json_num(one, keys[k]),
                             json_num(out_text, keys[k]));
            free(one);
        }
}

/* vae eval --iw across 2 ranks of 1 thread prints the bound of one
 * process with 2 threads: each image's draws are seeded by its index, the
 * ranks take the images the 2 threads take (a per-image value depends on
 * how images are grouped into sgemm calls: with 1 thread the last digits
 * differ), and the values are added in image order. The MLP and the conv
 * VAE. */
static void test_eval_iw_two_ranks_equal_two_threads(void **state)
{
    (void)state;
    const char *models[] = {"mlp-1.bin", "conv-1.bin"}, *iw[] = {"50", "3"};
    const char *keys[] = {"iw_nll", "test_loss"};
    for (int i = 0; i < 2; i++) {
        char ck[256];
        in_dir(ck, sizeof ck, models[i]);
        assert_exit(run("eval", "--data", data, "--ckpt", ck, "--threads", "2", "--iw",
                        iw[i], "--json", NULL), 0);
        char *one = strdup(out_text);
        cli_prefix = two_ranks;
        int rc = run("eval", "--data", data, "--ckpt", ck, "--threads", "1", "--iw", iw[i],
                     "--json", NULL);
        cli_prefix = NULL;
        assert_exit(rc, 0);
        assert_int_equal(count_lines(out_text), 1); /* rank 0 alone */
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (!(json_num(one, keys[k]) == json_num(out_text, keys[k])))
                fail_msg("%s, %s: %.9g in one process, %.9g across ranks", models[i],
                         keys[k], json_num(one, keys[k]), json_num(out_text, keys[k]));
        free(one);
    }
}

/* vae encode, vae score, --top and --iw across 2 ranks of 1 thread
 * write the bytes of one process with 2 threads (rank 0 writes; the ranks
 * compute the shares the threads would and gather each batch's rows). */
static void test_score_encode_two_ranks_same_bytes(void **state)
{
    (void)state;
    const char *models[] = {"mlp-1.bin", "conv-1.bin"};
    const char *cmds[][4] = {{"encode", "--split", "test", "latents.csv"},
                             {"score", "--seed", "3", "scores.csv"},
                             {"score", "--top", "8", "worst.png"},
                             {"score", "--iw", "4", "bounds.csv"}};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 4; c++) {
            char ck[256], one[256], ranks[256], name[64];
            in_dir(ck, sizeof ck, models[i]);
            snprintf(name, sizeof name, "one-%d-%s", i, cmds[c][3]);
            in_dir(one, sizeof one, name);
            snprintf(name, sizeof name, "ranks-%d-%s", i, cmds[c][3]);
            in_dir(ranks, sizeof ranks, name);
            assert_exit(run(cmds[c][0], "--data", data, "--ckpt", ck, "--threads", "2",
                            cmds[c][1], cmds[c][2], "-o", one, NULL), 0);
            cli_prefix = two_ranks;
            int rc = run(cmds[c][0], "--data", data, "--ckpt", ck, "--threads", "1",
                         cmds[c][1], cmds[c][2], "-o", ranks, NULL);
            cli_prefix = NULL;
            assert_exit(rc, 0);
            assert_int_equal(count_lines(out_text), 1); /* rank 0 alone */
            tu_assert_same_file(one, ranks);
        }
}

/* What does not split its work across ranks yet refuses to run twice. */
/* vae bench across 2 ranks: each round, and the time rank 0 spent in the
 * collectives, in text and JSON; and bench --iw refuses ranks. */
static void test_bench_two_ranks(void **state)
{
    (void)state;
    cli_prefix = two_ranks;
    int rc = run("bench", "--data", data, "--threads", "1", "--epochs", "2", "--batch", "50",
                 "--hidden", "32", "--latent", "4", NULL);
    int rc_json = rc ? rc : run("bench", "--data", data, "--threads", "1", "--epochs", "1",
                                "--batch", "50", "--hidden", "32", "--latent", "4", "--json",
                                NULL);
    char *json = rc_json ? NULL : strdup(out_text);
    int rc_iw = run("bench", "--data", data, "--threads", "1", "--iw", "3", NULL);
    cli_prefix = NULL;
    assert_int_equal(rc, 0);
    assert_int_equal(rc_json, 0);
    assert_non_null(json);
    tu_assert_contains(json, "{\"round\":1,\"ranks\":2,\"allreduce_ms_per_step\":");
    assert_true(json_num(json, "allreduce_ms_per_step") >= 0.0);
    free(json);
    assert_true(rc_iw != 0);
    tu_assert_contains(err_text, "'vae bench' (without --iw)");
}

static void test_other_commands_refuse_ranks(void **state)
{
    (void)state;
    char ck[256];
    in_dir(ck, sizeof ck, "mlp-1.bin");
    cli_prefix = two_ranks;
    int rc = run("info", "--ckpt", ck, NULL);
    cli_prefix = NULL;
    assert_true(rc != 0);
    /* The list comes from the command table. */
    assert_non_null(strstr(err_text, "only 'vae train', 'vae eval', 'vae encode', 'vae score' "
                                     "and 'vae bench' (without --iw) split their work"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_two_ranks_equal_two_threads),
        cmocka_unit_test(test_conv_two_ranks_equal_two_threads),
        cmocka_unit_test(test_iwae_dreg_two_ranks_equal_two_threads),
        cmocka_unit_test(test_two_layers_two_ranks_equal_two_threads),
        cmocka_unit_test(test_two_ranks_of_two_equal_four_threads),
        cmocka_unit_test(test_messages_equal_threads),
        cmocka_unit_test(test_eval_two_ranks_equal_two_threads),
        cmocka_unit_test(test_eval_iw_two_ranks_equal_two_threads),
        cmocka_unit_test(test_score_encode_two_ranks_same_bytes),
        cmocka_unit_test(test_bench_two_ranks),
        cmocka_unit_test(test_signal_to_one_rank_stops_all_and_resumes),
        cmocka_unit_test(test_killed_rank_ends_job_checkpoint_whole),
        cmocka_unit_test(test_other_commands_refuse_ranks),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
