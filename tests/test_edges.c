/* test_edges.c - the file system's edges, through the vae binary: outputs
 * that are not regular files (a FIFO, a socket, /dev/full, a device with a
 * CSV to go beside it), inputs that are not regular files (a FIFO, a
 * socket), standard output that fails (a full disk, a closed pipe), a
 * checkpoint reached through a symbolic link, a hard link or "..", two runs
 * into one --out folder, and a disk that fills while a checkpoint is
 * written. Every run has a time limit: a hang fails the test instead of
 * stalling it. */
#define _GNU_SOURCE /* unshare, for the tmpfs */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "testutil.h"
#include "cliutil.h"

#define LIMIT_S 60.0 /* far above any run here; only a hang reaches it */
#define REFUSE_LIMIT_S 15.0 /* a run that only refuses an input, on a busy machine */

static char model[160]; /* a model of 2 epochs, trained in setup */

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    nanosleep(&ts, NULL);
}

/* A run left in the background by the test under way (0: none): a test
 * that fails before it ends it leaves it to kill_background. */
static pid_t background;

/* Reaps run pid (what: how the message names it) and reads its outputs;
 * returns its exit code, or 128 + signal. A run still going after limit_s
 * seconds is killed and fails the test. */
static int wait_limited(pid_t pid, const char *what, double limit_s)
{
    for (double waited = 0.0;; waited += 5.0) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || waited > limit_s * 1000.0) {
            if (r != pid) {
                kill(pid, SIGKILL);
                wait_status(pid);
            }
            if (pid == background)
                background = 0; /* reaped: its pid may name another process now */
            read_outputs();
            if (r != pid)
                fail_msg("vae %s hung (killed after %.0f s)\nstderr:\n%s", what, limit_s,
                         err_text);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(5.0);
    }
}

/* wait_limited with the time limit of a run that does some work. */
static int wait_within(pid_t pid, const char *what)
{
    return wait_limited(pid, what, LIMIT_S);
}

/* run_with(), failing the test if the run takes more than LIMIT_S. */
static int run_within(cli_child_fn child, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(child, first, ap);
    va_end(ap);
    return wait_within(pid, first);
}

/* run(), failing the test if the run takes more than REFUSE_LIMIT_S. */
static int run_briefly(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(NULL, first, ap);
    va_end(ap);
    return wait_limited(pid, first, REFUSE_LIMIT_S);
}

/* spawn() with child() called in the child before exec. */
static pid_t spawn_with(cli_child_fn child, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_v(child, first, ap);
    va_end(ap);
    background = pid;
    return pid;
}

/* Per-test teardown: a failed test's background run must not outlive it. */
static int kill_background(void **state)
{
    (void)state;
    if (background > 0) {
        kill(background, SIGKILL);
        kill(background, SIGCONT);
        waitpid(background, NULL, 0);
    }
    background = 0;
    return 0;
}

/* The epoch a checkpoint holds (fails the test if it does not read). */
static unsigned long long epoch_of(const char *ckpt)
{
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    unsigned long long e = d.train.epoch;
    ckpt_data_free(&d);
    return e;
}

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-edges"))
        return -1;
    snprintf(model, sizeof model, "%s/model.bin", dir);
    char out[160];
    snprintf(out, sizeof out, "%s/model-out", dir);
    return run("train", "--data", data, "--ckpt", model, "--out", out, "--epochs", "2",
               "--hidden", "32", "--latent", "2", "--batch", "100", NULL) == 0
               ? 0
               : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Outputs that are not regular files                                       */

/* A FIFO nobody reads, as each output: refused at once (exit 2), before
 * an epoch is spent; today's runs waited for a reader for ever. */
static void test_fifo_outputs(void **state)
{
    (void)state;
    char fifo[160], ckpt[160], out[160], member[200];
    in_dir(fifo, sizeof fifo, "pipe");
    in_dir(ckpt, sizeof ckpt, "fifo.bin");
    in_dir(out, sizeof out, "fifo-out");
    assert_int_equal(mkfifo(fifo, 0644), 0);

    assert_exit(run_within(NULL, "sample", "--ckpt", model, "-o", fifo, NULL), 2);
    tu_assert_contains(err_text, "-o");
    tu_assert_contains(err_text, "is a FIFO");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", fifo, "--out", out,
                           "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "--ckpt");
    tu_assert_contains(err_text, "is a FIFO");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--metrics", fifo, "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "--metrics");
    tu_assert_contains(err_text, "is a FIFO");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", fifo,
                           "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "--out");
    tu_assert_contains(err_text, "not a folder");
    /* A FIFO where the run would write its first grid. */
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(member, sizeof member, "%s/sampled-1.png", out);
    assert_int_equal(mkfifo(member, 0644), 0);
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "sampled-1.png");
    tu_assert_contains(err_text, "is a FIFO");
    assert_false(tu_exists(ckpt)); /* no epoch was spent */
    unlink(member);
    rmdir(out);
    unlink(fifo);
}

/* A pipe the command was given (-o /dev/stdout in a pipeline) has its
 * reader: it is written, not refused as a named FIFO is, and only the data
 * goes down it (the command's text goes to standard error): byte for byte
 * the file -o writes. */
static void test_stdout_pipe_as_output(void **state)
{
    (void)state;
    const char *cmds[2] = {"sample --n 8", "export"};
    const char *names[2] = {"piped.png", "piped.safetensors"};
    for (int i = 0; i < 2; i++) {
        char piped[160], direct[176], said[176], cmd[1024];
        in_dir(piped, sizeof piped, names[i]);
        snprintf(direct, sizeof direct, "%s.direct", piped);
        snprintf(said, sizeof said, "%s.stderr", piped);
        snprintf(cmd, sizeof cmd, "'%s' %s --ckpt '%s' -o /dev/stdout 2>'%s' | cat > '%s'",
                 vae_bin, cmds[i], model, said, piped);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "'%s' %s --ckpt '%s' -o '%s' >/dev/null", vae_bin, cmds[i],
                 model, direct);
        assert_int_equal(system(cmd), 0);
        size_t n;
        unsigned char *want = tu_read_file(direct, &n);
        assert_true(n > 100);
        tu_assert_file_equals(piped, want, n);
        free(want);
        char *text = (char *)tu_read_file(said, NULL);
        tu_assert_contains(text, "wrote /dev/fd/");
        free(text);
    }
}

/* In the child: standard output closed, as "vae ... >&-". */
static void close_stdout(void)
{
    close(STDOUT_FILENO);
}

/* Started with standard output closed: no file vae opens becomes it (the
 * lock file took the progress lines, and the run said nothing and exited
 * 0); the run stops with its state saved and says why, exit 1. */
static void test_closed_stdout(void **state)
{
    (void)state;
    char ckpt[160], out[160], lock[176];
    in_dir(ckpt, sizeof ckpt, "closed-stdout.bin");
    in_dir(out, sizeof out, "closed-stdout-out");
    snprintf(lock, sizeof lock, "%s.lock", ckpt);
    assert_exit(run_with(close_stdout, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                         "--epochs", "2", "--batch", "100", "--hidden", "16", "--latent", "2",
                         NULL), 1);
    tu_assert_contains(err_text, "standard output failed");
    tu_assert_contains(err_text, "the exact state is saved in");
    if (tu_exists(lock)) {
        char *text = (char *)tu_read_file(lock, NULL);
        assert_null(strstr(text, "epoch"));
        free(text);
    }
    assert_exit(run_with(close_stdout, "info", "--ckpt", ckpt, NULL), 1);
    tu_assert_contains(err_text, "cannot write standard output");
}

static void test_socket_output(void **state)
{
    (void)state;
    char sock[160], out[160];
    in_dir(sock, sizeof sock, "sock");
    in_dir(out, sizeof out, "sock-out");
    int fd = tu_bind_socket(sock);
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", sock, "--out", out,
                           "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "is a socket");
    assert_exit(run_within(NULL, "encode", "--ckpt", model, "--data", data, "-o", sock,
                           NULL), 2);
    tu_assert_contains(err_text, "is a socket");
    close(fd);
    unlink(sock);
    assert_false(tu_exists(out));
}

/* /dev/full as --metrics: the first epoch's row fails before its
 * checkpoint is saved: exit 1 naming it, nothing left behind. */
static void test_metrics_on_dev_full(void **state)
{
    (void)state;
    char ckpt[160], out[160];
    in_dir(ckpt, sizeof ckpt, "full-metrics.bin");
    in_dir(out, sizeof out, "full-metrics-out");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--metrics", "/dev/full", "--epochs", "3", "--hidden", "32",
                           "--latent", "2", NULL), 1);
    tu_assert_contains(err_text, "/dev/full");
    tu_assert_contains(err_text, "No space left on device");
    /* An epoch's row is written before its checkpoint: epoch 1 was not
     * saved, and the failed new run left nothing behind. */
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--epochs", "3", "--hidden", "32", "--latent", "2", NULL), 0);
    assert_int_equal(epoch_of(ckpt), 3);
}

/* A --metrics file in a folder that is not there, or where nothing can
 * be written: refused before training (exit 2), so no checkpoint or --out
 * folder appears. */
static void test_metrics_folder_missing(void **state)
{
    (void)state;
    char ckpt[160], out[160], csv[200], ro[160];
    in_dir(ckpt, sizeof ckpt, "nofolder.bin");
    in_dir(out, sizeof out, "nofolder-out");
    in_dir(csv, sizeof csv, "no-such-folder/m.csv");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--metrics", csv, "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "no-such-folder does not exist");
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
    /* A read-only file system (a tmpfs remounted read-only) when one can be
     * mounted here. */
    in_dir(ro, sizeof ro, "ro");
    if (tu_mount_tmpfs(ro, 64) != 0)
        return;
    int ok = mount(NULL, ro, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0;
    if (ok) {
        tu_join(csv, sizeof csv, ro, "m.csv");
        assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                               "--metrics", csv, "--epochs", "1", NULL), 2);
        tu_assert_contains(err_text, "cannot write in folder");
        assert_false(tu_exists(ckpt));
        assert_false(tu_exists(out));
        /* --out there but read-only: refused before an epoch is spent (it
         * failed at the epoch's first picture). */
        assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", ro,
                               "--epochs", "1", NULL), 1);
        tu_assert_contains(err_text, "cannot write in the folder");
        assert_false(tu_exists(ckpt));
        /* --ckpt in it: refused as --metrics is. */
        char in_ro[200];
        tu_join(in_ro, sizeof in_ro, ro, "x.bin");
        assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", in_ro, "--out", out,
                               "--epochs", "1", NULL), 2);
        tu_assert_contains(err_text, "--ckpt ");
        tu_assert_contains(err_text, "cannot write in folder");
        assert_false(tu_exists(out));
    }
    tu_umount_tmpfs(ro);
    /* --ckpt in a folder that is not there: refused before anything. */
    char nowhere[200];
    in_dir(nowhere, sizeof nowhere, "no-such-folder/x.bin");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", nowhere, "--out", out,
                           "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "no-such-folder does not exist");
    assert_false(tu_exists(out));
}

/* ------------------------------------------------------------------------ */
/* Inputs that are not regular files                                        */

/* The last run refused the input path, which is what ("a FIFO"): exit 1 at
 * once, a message naming it, nothing on standard output. */
static void expect_input_refused(int rc, const char *path, const char *what)
{
    assert_exit(rc, 1);
    tu_assert_contains(err_text, path);
    tu_assert_contains(err_text, what);
    tu_assert_contains(err_text, "not a regular file");
    assert_string_equal(out_text, "");
}

/* A data set with both splits in folder (dir/name), whose file bad is a
 * FIFO. */
static void data_with_fifo(char *folder, size_t size, const char *name, const char *bad)
{
    char path[256];
    in_dir(folder, size, name);
    assert_int_equal(mkdir(folder, 0755), 0);
    write_split(folder, "train", CLI_N_TRAIN, 1);
    write_split(folder, "t10k", CLI_N_TEST, 2);
    tu_join(path, sizeof path, folder, bad);
    unlink(path);
    if (strstr(bad, ".gz")) { /* only the .gz twin, so the reader takes it */
        path[strlen(path) - 3] = '\0';
        assert_int_equal(unlink(path), 0);
        tu_join(path, sizeof path, folder, bad);
    }
    assert_int_equal(mkfifo(path, 0644), 0);
}

/* A FIFO nobody writes, as a checkpoint or a data file to read: refused at
 * once (exit 1) naming it; the readers used to wait for a writer for ever. */
static void test_fifo_inputs(void **state)
{
    (void)state;
    char fifo[160], png[160], st[160], folder[160], ckpt[160], out[160];
    in_dir(fifo, sizeof fifo, "in-pipe.bin");
    in_dir(png, sizeof png, "never.png");
    in_dir(st, sizeof st, "never.safetensors");
    assert_int_equal(mkfifo(fifo, 0644), 0);

    expect_input_refused(run_briefly("info", "--ckpt", fifo, NULL), fifo, "is a FIFO");
    expect_input_refused(run_briefly("sample", "--ckpt", fifo, "-o", png, NULL), fifo,
                         "is a FIFO");
    expect_input_refused(run_briefly("eval", "--ckpt", fifo, "--data", data, NULL), fifo,
                         "is a FIFO");
    expect_input_refused(run_briefly("export", "--ckpt", fifo, "-o", st, NULL), fifo,
                         "is a FIFO");
    assert_false(tu_exists(png));
    assert_false(tu_exists(st));

    /* In --data: the test images raw, the training labels gzipped. */
    data_with_fifo(folder, sizeof folder, "fifo-data", "t10k-images-idx3-ubyte");
    expect_input_refused(run_briefly("eval", "--ckpt", model, "--data", folder, NULL),
                         "t10k-images-idx3-ubyte", "is a FIFO");
    data_with_fifo(folder, sizeof folder, "fifo-gz-data", "train-labels-idx1-ubyte.gz");
    in_dir(ckpt, sizeof ckpt, "fifo-data.bin");
    in_dir(out, sizeof out, "fifo-data-out");
    expect_input_refused(run_briefly("train", "--data", folder, "--ckpt", ckpt, "--out", out,
                                     "--epochs", "1", NULL),
                         "train-labels-idx1-ubyte.gz", "is a FIFO");
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
    unlink(fifo);
}

/* A socket as --ckpt to read: refused by what it is (opening one fails
 * with "No such device or address", which says nothing of the file). */
static void test_socket_input(void **state)
{
    (void)state;
    char sock[160];
    in_dir(sock, sizeof sock, "in-sock");
    int fd = tu_bind_socket(sock);
    expect_input_refused(run_briefly("info", "--ckpt", sock, NULL), sock, "is a socket");
    close(fd);
    unlink(sock);
}

/* vae manifold's latent map is two files, the PNG (-o) and its points as
 * CSV beside it, replaced together or not at all: a PNG that cannot be
 * written (-o a link to /dev/full) leaves the old CSV as it was and no
 * temp file. A device as -o has no "beside" (it made /dev/full.csv): a
 * usage error naming -o, before anything is written. */
static void test_manifold_pair_on_dev_full(void **state)
{
    (void)state;
    char ckpt[160], out[160], sub[160], png[200], csv[200], hidden[256];
    in_dir(ckpt, sizeof ckpt, "map3.bin");
    in_dir(out, sizeof out, "map3-out");
    in_dir(sub, sizeof sub, "map-pair");
    tu_join(png, sizeof png, sub, "m.png");
    tu_join(csv, sizeof csv, sub, "m.csv");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--epochs", "1", "--hidden", "32", "--latent", "3", NULL), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(symlink("/dev/full", png), 0);
    tu_write_file(csv, "KEEP\n", 5);
    assert_exit(run_within(NULL, "manifold", "--ckpt", ckpt, "--data", data, "-o", png,
                           NULL), 1);
    tu_assert_contains(err_text, "cannot write");
    tu_assert_contains(err_text, "No space left on device");
    tu_assert_file_equals(csv, "KEEP\n", 5);
    assert_int_equal(tu_count_entries(sub, hidden, sizeof hidden), 2);
    assert_string_equal(hidden, "");

    assert_exit(run_within(NULL, "manifold", "--ckpt", ckpt, "--data", data, "-o",
                           "/dev/full", NULL), 2);
    tu_assert_contains(err_text, "-o /dev/full is a device");
    assert_false(tu_exists("/dev/full.csv"));
    assert_exit(run_within(NULL, "manifold", "--ckpt", ckpt, "--data", data, "-o",
                           "/dev/vae-test-map.png", NULL), 2);
    tu_assert_contains(err_text, "-o /dev/vae-test-map.png is in /dev");
    assert_false(tu_exists("/dev/vae-test-map.csv"));
    assert_false(tu_exists("/dev/vae-test-map.png"));
}

/* ------------------------------------------------------------------------ */
/* Standard output that fails                                               */

static void stdout_to_dev_full(void)
{
    int fd = open("/dev/full", O_WRONLY);
    if (fd < 0 || dup2(fd, 1) < 0)
        _exit(95);
}

/* A pipe whose reader is gone (as after "vae ... | head -1"). */
static void stdout_to_closed_pipe(void)
{
    int p[2];
    if (pipe(p) != 0 || dup2(p[1], 1) < 0)
        _exit(95);
    close(p[0]);
    close(p[1]);
}

static void expect_stdout_error(cli_child_fn child, const char *why)
{
    assert_exit(run_within(child, "info", "--ckpt", model, NULL), 1);
    tu_assert_contains(err_text, "cannot write standard output");
    tu_assert_contains(err_text, why);
    assert_exit(run_within(child, "eval", "--ckpt", model, "--data", data, NULL), 1);
    tu_assert_contains(err_text, "cannot write standard output");
    assert_exit(run_within(child, "encode", "--ckpt", model, "--data", data, NULL), 1);
    tu_assert_contains(err_text, "cannot write standard output");
    assert_exit(run_within(child, "--help", NULL), 1);
    tu_assert_contains(err_text, why);
}

static void test_stdout_full(void **state)
{
    (void)state;
    expect_stdout_error(stdout_to_dev_full, "No space left on device");
}

static void test_stdout_closed(void **state)
{
    (void)state;
    expect_stdout_error(stdout_to_closed_pipe, "Broken pipe");
}

/* Training whose reports cannot be written stops as a signal would: the
 * exact state saved, exit 1 with the reason, and a resume goes on. */
static void test_train_stdout_fails(void **state)
{
    (void)state;
    cli_child_fn how[2] = {stdout_to_dev_full, stdout_to_closed_pipe};
    for (int i = 0; i < 2; i++) {
        char ckpt[160], out[160];
        in_dir(ckpt, sizeof ckpt, i ? "pipe-closed.bin" : "stdout-full.bin");
        in_dir(out, sizeof out, i ? "pipe-closed-out" : "stdout-full-out");
        assert_exit(run_within(how[i], "train", "--data", data, "--ckpt", ckpt, "--out",
                               out, "--epochs", "50", "--hidden", "32", "--latent", "2",
                               NULL), 1);
        tu_assert_contains(err_text, "standard output failed");
        tu_assert_contains(err_text, "the exact state is saved");
        unsigned long long e = epoch_of(ckpt);
        assert_true(e >= 1 && e < 50);
        assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                               "--epochs", "3", "--resume", NULL), 0);
    }
}

/* A pipe nobody reads, kept open: once it is full, writes wait. */
static int stalled[2];

static void stdout_to_stalled_pipe(void)
{
    if (dup2(stalled[1], 1) < 0)
        _exit(95);
}

/* SIGTERM while training waits to write its report: the run is saved. */
static void test_signal_during_stalled_write(void **state)
{
    (void)state;
    char ckpt[160], out[160];
    in_dir(ckpt, sizeof ckpt, "stalled.bin");
    in_dir(out, sizeof out, "stalled-out");
    assert_int_equal(pipe(stalled), 0);
    /* A small pipe (4 pages) fills in a few dozen epochs. */
    int cap = fcntl(stalled[1], F_SETPIPE_SZ, 4 * 4096);
    assert_true(cap >= 4 * 4096);
    pid_t pid = spawn_with(stdout_to_stalled_pipe, "train", "--data", data, "--ckpt", ckpt,
                           "--out", out, "--epochs", "100000", "--hidden", "32", "--latent",
                           "2", "--json", NULL);
    /* Full: every page of the pipe in use (what poll calls not writable). */
    int queued = 0;
    for (int i = 0; i < 60000 && queued <= cap - 4096; i++) {
        sleep_ms(1.0);
        assert_int_equal(ioctl(stalled[0], FIONREAD, &queued), 0);
    }
    assert_true(queued > cap - 4096);
    sleep_ms(200.0); /* the next report is waiting */
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_exit(wait_within(pid, "train, after SIGTERM,"), 128 + SIGTERM);
    close(stalled[0]);
    close(stalled[1]);
    tu_assert_contains(err_text, "the exact state is saved");
    assert_true(epoch_of(ckpt) >= 1);
}

/* ------------------------------------------------------------------------ */
/* A checkpoint through any name                                            */

/* Resuming through a symbolic link updates the file it points to; the link
 * stays a link. */
static void test_resume_through_symlink(void **state)
{
    (void)state;
    char real[160], link[160], out[160];
    in_dir(real, sizeof real, "real.bin");
    in_dir(link, sizeof link, "link.bin");
    in_dir(out, sizeof out, "link-out");
    size_t n;
    unsigned char *b = tu_read_file(model, &n);
    tu_write_file(real, b, n);
    free(b);
    assert_int_equal(symlink("real.bin", link), 0);
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", link, "--out", out,
                           "--epochs", "3", "--resume", NULL), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(epoch_of(real), 3);
    /* A run with a validation split keeps its best epoch beside the file
     * the link points to, whichever name resumes it. */
    char vreal[160], vlink[160], vbest[160], lbest[160];
    in_dir(vreal, sizeof vreal, "valid-real.bin");
    in_dir(vlink, sizeof vlink, "valid-link.bin");
    in_dir(vbest, sizeof vbest, "valid-real.best.bin");
    in_dir(lbest, sizeof lbest, "valid-link.best.bin");
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", vreal, "--out", out,
                           "--epochs", "1", "--valid", "50", "--hidden", "32", NULL), 0);
    assert_int_equal(symlink("valid-real.bin", vlink), 0);
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", vlink, "--out", out,
                           "--epochs", "3", "--resume", NULL), 0);
    assert_true(tu_exists(vbest));
    assert_false(tu_exists(lbest));
    char hidden[256];
    tu_count_entries(dir, hidden, sizeof hidden);
    assert_string_equal(hidden, "");
}

/* Whether /proc/locks shows a flock on the file at path. */
static int flocked(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    FILE *fp = fopen("/proc/locks", "r");
    assert_non_null(fp);
    char line[256];
    int found = 0;
    unsigned long long ino;
    while (!found && fgets(line, sizeof line, fp))
        found = strstr(line, "FLOCK") &&
                sscanf(line, "%*s %*s %*s %*s %*d %*x:%*x:%llu", &ino) == 1 &&
                ino == (unsigned long long)st.st_ino;
    fclose(fp);
    return found;
}

/* Holds a run stopped (SIGSTOP) after its first save, at a moment when it
 * holds the lock of the checkpoint file now under its name (not between a
 * save's rename and the lock's move to the new file). */
static pid_t held_run(const char *ckpt, const char *out)
{
    pid_t pid = spawn_with(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--epochs", "100000", "--hidden", "32", "--latent", "2", NULL);
    for (int i = 0; i < 60000 && !tu_exists(ckpt); i++)
        sleep_ms(1.0);
    if (!tu_exists(ckpt))
        fail_msg("%s: not saved within a minute", ckpt);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(kill(pid, SIGSTOP), 0);
        sleep_ms(20.0); /* stopped for sure */
        if (flocked(ckpt))
            return pid;
        kill(pid, SIGCONT);
        sleep_ms(1.0);
    }
    fail_msg("%s: never found locked", ckpt);
    return pid;
}

static void end_run(pid_t pid)
{
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    wait_status(pid);
    background = 0;
}

/* Two outputs that are one file through a link whose target does not
 * exist yet (a write follows it): CKPT.best.bin -> CKPT for a new run with
 * --valid is a usage error naming both, and nothing is written. */
static void test_dangling_link_clash(void **state)
{
    (void)state;
    char ckpt[160], best[160], out[160];
    in_dir(ckpt, sizeof ckpt, "dangle.bin");
    in_dir(best, sizeof best, "dangle.best.bin");
    in_dir(out, sizeof out, "dangle-out");
    assert_int_equal(symlink("dangle.bin", best), 0);
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--valid", "20", "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "are the same file, which this command would write twice");
    tu_assert_contains(err_text, "dangle.best.bin");
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
    unlink(best);
}

/* While a run holds its checkpoint, a second run is refused by any other
 * name of that file: a symlink, a path through "..", a hard link. */
static void test_one_writer_by_any_name(void **state)
{
    (void)state;
    char ckpt[160], out[160], other_out[160], sym[160], dotdot[200], hard[160], sub[160];
    in_dir(ckpt, sizeof ckpt, "held.bin");
    in_dir(out, sizeof out, "held-out");
    in_dir(other_out, sizeof other_out, "second-out");
    in_dir(sym, sizeof sym, "held-link.bin");
    in_dir(hard, sizeof hard, "held-hard.bin");
    in_dir(sub, sizeof sub, "sub");
    mkdir(sub, 0755);
    snprintf(dotdot, sizeof dotdot, "%s/../held.bin", sub);
    pid_t pid = held_run(ckpt, out);
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "process %ld", (long)pid);

    assert_int_equal(symlink("held.bin", sym), 0);
    assert_int_equal(link(ckpt, hard), 0);
    const char *names[3] = {sym, dotdot, hard};
    for (int i = 0; i < 3; i++) {
        assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", names[i], "--out",
                               other_out, "--epochs", "100000", "--resume", NULL), 1);
        tu_assert_contains(err_text, "is in use");
        tu_assert_contains(err_text, pid_text);
    }
    end_run(pid);
    /* Once it is gone, the same names work. */
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", sym, "--out",
                           other_out, "--epochs", "2", "--resume", NULL), 0);
    unlink(hard);
}

/* Two runs into one --out folder (by two spellings of it): the second is
 * refused, naming the first. */
static void test_one_run_per_out_folder(void **state)
{
    (void)state;
    char ckpt[160], ckpt2[160], out[160], out_link[160];
    in_dir(ckpt, sizeof ckpt, "out-first.bin");
    in_dir(ckpt2, sizeof ckpt2, "out-second.bin");
    in_dir(out, sizeof out, "shared-out");
    in_dir(out_link, sizeof out_link, "shared-out-link");
    pid_t pid = held_run(ckpt, out);
    assert_int_equal(symlink("shared-out", out_link), 0);
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "process %ld", (long)pid);
    const char *outs[2] = {out, out_link};
    for (int i = 0; i < 2; i++) {
        assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt2, "--out",
                               outs[i], "--epochs", "2", NULL), 1);
        tu_assert_contains(err_text, "is in use");
        tu_assert_contains(err_text, pid_text);
        assert_false(tu_exists(ckpt2));
    }
    end_run(pid);
    unlink(out_link);
}

/* ------------------------------------------------------------------------ */
/* A full disk                                                              */

/* The file system fills while a resumed run saves: exit 1 naming the
 * checkpoint, which is as it was; no temp file is left. */
static void test_full_disk_checkpoint(void **state)
{
    (void)state;
    char mnt[160], ckpt[200], out[200];
    in_dir(mnt, sizeof mnt, "small");
    if (tu_mount_tmpfs(mnt, 2048) != 0)
        skip();
    tu_join(ckpt, sizeof ckpt, mnt, "vae.bin");
    tu_join(out, sizeof out, mnt, "out");
    size_t n;
    unsigned char *b = tu_read_file(model, &n);
    tu_write_file(ckpt, b, n);
    tu_fill_disk(mnt);
    assert_exit(run_within(NULL, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                           "--epochs", "4", "--resume", NULL), 1);
    tu_assert_contains(err_text, "No space left on device");
    tu_assert_file_equals(ckpt, b, n);
    free(b);
    char hidden[256];
    tu_count_entries(mnt, hidden, sizeof hidden);
    assert_string_equal(hidden, "");
    tu_umount_tmpfs(mnt);
}

/* ------------------------------------------------------------------------ */
/* An address-space limit (ulimit -v)                                       */

/* Seconds a limited run may take: OpenBLAS waiting for room for ever
 * ends in the alarm (exit 128 + SIGALRM) instead of a stalled test. */
#define LIMITED_ALARM 60

/* 100 MiB: vae loads, but no OpenBLAS work buffer (128 MiB) fits. */
static void limit_100_mib(void)
{
    cli_set_limit(RLIMIT_AS, (rlim_t)100 << 20, (rlim_t)100 << 20);
    alarm(LIMITED_ALARM);
}

/* 260 MiB: with vae's 40-110 MiB in use, one buffer fits, two do not. */
static void limit_260_mib(void)
{
    cli_set_limit(RLIMIT_AS, (rlim_t)260 << 20, (rlim_t)260 << 20);
    alarm(LIMITED_ALARM);
}

/* The tests' OpenBLAS starts a thread of its own (OPENBLAS_NUM_THREADS=2),
 * whose work buffer did not fit: it waited for room for ever, and every
 * command, --version too, hung at exit waiting for it. vae now loads
 * OpenBLAS with one thread under a limit; a command that multiplies
 * matrices says how much room it needs, and exits 1. */
static void test_small_address_limit(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* ASan's shadow memory does not fit under an address-space limit */
#endif
    assert_exit(run_with(limit_100_mib, "--version", NULL), 0);
    tu_assert_contains(out_text, "vae ");
    assert_exit(run_with(limit_100_mib, "info", "--ckpt", model, NULL), 0);
    char png[160];
    in_dir(png, sizeof png, "limited.png");
    assert_exit(run_with(limit_100_mib, "sample", "--ckpt", model, "-o", png, NULL), 1);
    tu_assert_contains(err_text, "the address-space limit (ulimit -v) is 100 MiB");
    tu_assert_contains(err_text, "raise the limit to at least");
    assert_null(strstr(err_text, "--threads"));
    assert_false(tu_exists(png));
}

/* Room for one thread's buffer: the default team (two threads here) runs
 * one, with a warning; --threads 2 is refused and told of --threads 1; a
 * training runs to its checkpoint. */
static void test_address_limit_for_one_thread(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip();
#endif
    char png[160], ckpt[160], out[160];
    in_dir(png, sizeof png, "limited-1.png");
    assert_exit(run_with(limit_260_mib, "sample", "--ckpt", model, "-o", png, NULL), 0);
    tu_assert_contains(err_text, "room for OpenBLAS's work buffers of 1 thread: running 1, not 2");
    assert_true(tu_exists(png));
    assert_exit(run_with(limit_260_mib, "sample", "--ckpt", model, "-o", png, "--threads", "2",
                         NULL), 1);
    tu_assert_contains(err_text, "there is room for 1");
    tu_assert_contains(err_text, "give --threads 1");
    in_dir(ckpt, sizeof ckpt, "limited.bin");
    in_dir(out, sizeof out, "limited-out");
    assert_exit(run_with(limit_260_mib, "train", "--data", data, "--ckpt", ckpt, "--out", out,
                         "--epochs", "1", "--hidden", "32", "--latent", "2", "--threads", "1",
                         NULL), 0);
    assert_int_equal(epoch_of(ckpt), 1);
}

/* ------------------------------------------------------------------------ */
/* A small stack limit (ulimit -s)                                          */

/* ulimit -Ss 256: a soft limit of 256 KiB, the hard one unlimited. */
static void soft_stack_256_kib(void)
{
    cli_set_limit(RLIMIT_STACK, (rlim_t)256 << 10, RLIM_INFINITY);
}

/* ulimit -s 256: soft and hard. */
static void stack_256_kib(void)
{
    cli_set_limit(RLIMIT_STACK, (rlim_t)256 << 10, (rlim_t)256 << 10);
}

/* A training under a 256 KiB stack limit crashed (SIGSEGV, exit 139) in
 * its first epoch's chart. vae raises the soft limit, for its threads
 * too, and refuses, naming the limits, when the hard limit is too low. */
static void test_small_stack_limit(void **state)
{
    (void)state;
    char ckpt[160], out[160];
    in_dir(ckpt, sizeof ckpt, "small-stack.bin");
    in_dir(out, sizeof out, "small-stack-out");
    assert_exit(run_with(soft_stack_256_kib, "train", "--data", data, "--ckpt", ckpt, "--out",
                         out, "--epochs", "1", "--hidden", "32", "--latent", "2", "--threads",
                         "2", NULL), 0);
    assert_int_equal(epoch_of(ckpt), 1);
    assert_exit(run_with(stack_256_kib, "eval", "--ckpt", model, "--data", data, NULL), 1);
    tu_assert_contains(err_text, "the stack size limit (ulimit -s) is 256 KiB");
    tu_assert_contains(err_text, "raise the hard limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_outputs),
        cmocka_unit_test(test_stdout_pipe_as_output),
        cmocka_unit_test(test_closed_stdout),
        cmocka_unit_test(test_socket_output),
        cmocka_unit_test(test_metrics_on_dev_full),
        cmocka_unit_test(test_metrics_folder_missing),
        cmocka_unit_test(test_fifo_inputs),
        cmocka_unit_test(test_socket_input),
        cmocka_unit_test(test_manifold_pair_on_dev_full),
        cmocka_unit_test(test_stdout_full),
        cmocka_unit_test(test_stdout_closed),
        cmocka_unit_test(test_train_stdout_fails),
        cmocka_unit_test_teardown(test_signal_during_stalled_write, kill_background),
        cmocka_unit_test(test_resume_through_symlink),
        cmocka_unit_test(test_dangling_link_clash),
        cmocka_unit_test_teardown(test_one_writer_by_any_name, kill_background),
        cmocka_unit_test_teardown(test_one_run_per_out_folder, kill_background),
        cmocka_unit_test(test_full_disk_checkpoint),
        cmocka_unit_test(test_small_address_limit),
        cmocka_unit_test(test_address_limit_for_one_thread),
        cmocka_unit_test(test_small_stack_limit),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
