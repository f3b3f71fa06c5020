/* test_guard.c - nothing lost in ordinary mistakes, through the vae binary:
 * no output over an input or over another output (whatever name reaches
 * the file), one training run per checkpoint (the lock), no new run over an
 * earlier one, a resume only on the run's own training data, version-2
 * checkpoints still read, and a 2-D manifold that needs no data. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt.h"
#include "testutil.h"
#include "cliutil.h"

#define SMALL "--batch", "50", "--hidden", "16", "--latent", "2", "--threads", "1"

static char work[160];  /* the clash tests' folder: snapshots cover it whole */
static char model[200]; /* work/model.bin: a trained 2-D latent model */

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-guard"))
        return -1;
    snprintf(work, sizeof work, "%s/work", dir);
    snprintf(model, sizeof model, "%s/model.bin", work);
    char out[200];
    snprintf(out, sizeof out, "%s/out", work);
    if (mkdir(work, 0755) != 0)
        return -1;
    if (run("train", "--data", data, "--ckpt", model, "--out", out, "--epochs", "1",
            SMALL, NULL) != 0) {
        fprintf(stderr, "test_guard: training the model failed:\n%s", err_text);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cli_teardown();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Snapshots: every file under a folder, its size and CRC, sorted.           */

typedef struct snap {
    char **line;
    size_t n, cap;
} snap;

static void snap_add(snap *s, const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    char line[600];
    if (S_ISDIR(st.st_mode)) {
        snprintf(line, sizeof line, "%s/", path);
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            snap_add(s, sub);
        }
        closedir(d);
    } else if (S_ISLNK(st.st_mode)) {
        snprintf(line, sizeof line, "%s -> link", path);
    } else {
        size_t len;
        unsigned char *b = tu_read_file(path, &len);
        snprintf(line, sizeof line, "%s %zu %08lx ino %lu", path, len,
                 crc32(0L, b, (uInt)len), (unsigned long)st.st_ino);
        free(b);
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->line = realloc(s->line, s->cap * sizeof *s->line);
        assert_non_null(s->line);
    }
    s->line[s->n] = strdup(line);
    assert_non_null(s->line[s->n]);
    s->n++;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static snap snap_take(const char *folder)
{
    snap s = {0};
    snap_add(&s, folder);
    qsort(s.line, s.n, sizeof *s.line, by_text);
    return s;
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->line[i]);
    free(s->line);
    memset(s, 0, sizeof *s);
}

/* Fails, naming the first difference, unless folder is as s saw it. */
static void snap_assert_same(const snap *s, const char *folder, const char *after)
{
    snap now = snap_take(folder);
    for (size_t i = 0; i < s->n || i < now.n; i++) {
        const char *a = i < s->n ? s->line[i] : "(nothing)";
        const char *b = i < now.n ? now.line[i] : "(nothing)";
        if (strcmp(a, b))
            fail_msg("after %s, %s changed:\n  before: %s\n  after:  %s", after,
                     folder, a, b);
    }
    snap_free(&now);
}

/* ------------------------------------------------------------------------ */
/* No output over an input or over another output                            */

static void w(char *buf, size_t size, const char *name)
{
    tu_join(buf, size, work, name);
}

/* The data files: the set's, seen from work/ through a symbolic link. */
static char d_train_img[256], d_train_lab[256], d_test_img[256], d_test_lab[256];

static void test_clash_table(void **state)
{
    (void)state;
    char ddir[200], sub[200], slink[200], hard[200], out[200],
        metrics[200], plot[200], lock[220], series_h[200], fresh[200], alias[200];
    w(ddir, sizeof ddir, "data");
    assert_int_equal(symlink(data, ddir), 0);
    snprintf(d_train_img, sizeof d_train_img, "%s/train-images-idx3-ubyte", ddir);
    snprintf(d_train_lab, sizeof d_train_lab, "%s/train-labels-idx1-ubyte", ddir);
    snprintf(d_test_img, sizeof d_test_img, "%s/t10k-images-idx3-ubyte", ddir);
    snprintf(d_test_lab, sizeof d_test_lab, "%s/t10k-labels-idx1-ubyte", ddir);
    w(sub, sizeof sub, "sub");
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(alias, sizeof alias, "%s/./sub/../model.bin", work);
    w(slink, sizeof slink, "link.bin");
    assert_int_equal(symlink("model.bin", slink), 0);
    w(hard, sizeof hard, "hard.bin");
    assert_int_equal(link(model, hard), 0);
    w(out, sizeof out, "out");
    w(metrics, sizeof metrics, "m.csv");
    w(plot, sizeof plot, "m.png");
    w(fresh, sizeof fresh, "fresh.bin");
    snprintf(lock, sizeof lock, "%s.lock", fresh);
    /* out/sampled-2.png as a hard link to a file named elsewhere. */
    w(series_h, sizeof series_h, "h.csv");
    tu_write_file(series_h, "keep me\n", 8);
    char member[220];
    snprintf(member, sizeof member, "%s/sampled-2.png", out);
    assert_int_equal(link(series_h, member), 0);
    char out_sampled[220], out_reconst[220];
    snprintf(out_sampled, sizeof out_sampled, "%s/sampled-3.png", out);
    snprintf(out_reconst, sizeof out_reconst, "%s/./reconst-1.png", out);

    static const char *E = NULL; /* ends an argument list */
    const struct {
        const char *args[24];
        const char *first, *second; /* both named in the message */
    } cases[] = {
        /* Each command's -o over its checkpoint, by every kind of name. */
        {{"sample", "--ckpt", model, "-o", model, E}, "-o", "--ckpt"},
        {{"sample", "--ckpt", model, "-o", alias, E}, alias, model},
        {{"sample", "--ckpt", model, "-o", slink, E}, slink, model},
        {{"sample", "--ckpt", hard, "-o", model, E}, model, hard},
        {{"reconstruct", "--ckpt", model, "--data", ddir, "-o", model, E}, "-o", "--ckpt"},
        {{"interpolate", "--ckpt", model, "--data", ddir, "-o", slink, E}, "-o", "--ckpt"},
        {{"encode", "--ckpt", model, "--data", ddir, "-o", hard, E}, "-o", "--ckpt"},
        {{"score", "--ckpt", model, "--data", ddir, "-o", model, E}, "-o", "--ckpt"},
        {{"manifold", "--ckpt", model, "-o", model, E}, "-o", "--ckpt"},
        /* ... and over the data it reads, named through a link. */
        {{"reconstruct", "--ckpt", model, "--data", ddir, "-o", d_test_img, E},
         "the test images", d_test_img},
        {{"interpolate", "--ckpt", model, "--data", data, "-o", d_test_lab, E},
         "the test labels", "t10k-labels-idx1-ubyte"},
        {{"encode", "--ckpt", model, "--data", ddir, "--split", "train", "-o",
          d_train_img, E}, "the training images", d_train_img},
        {{"score", "--ckpt", model, "--data", ddir, "--top", "3", "-o", d_test_img, E},
         "the test images", d_test_img},
        /* train: every file it writes against every other. */
        {{"train", "--data", ddir, "--ckpt", fresh, "--metrics", fresh, "--out", out, E},
         "--ckpt", "--metrics"},
        {{"train", "--data", ddir, "--ckpt", plot, "--metrics", metrics, "--out", out, E},
         "the loss plot of --metrics", plot},
        {{"train", "--data", ddir, "--ckpt", fresh, "--metrics", lock, "--out", out, E},
         "the lock file of --ckpt", lock},
        {{"train", "--data", ddir, "--ckpt", d_train_lab, "--out", out, E},
         "--ckpt", "the training labels"},
        {{"train", "--data", ddir, "--ckpt", fresh, "--metrics", d_test_img, "--out", out, E},
         "--metrics", "the test images"},
        {{"train", "--data", ddir, "--ckpt", fresh, "--out", out, "--metrics",
          out_sampled, "--epochs", "3", E}, "--out", out_sampled},
        {{"train", "--data", ddir, "--ckpt", out_reconst, "--out", out, E},
         "--out", "reconst-1.png"},
        {{"train", "--data", ddir, "--ckpt", fresh, "--out", out, "--metrics",
          series_h, "--epochs", "2", E}, "sampled-2.png", series_h},
        {{"train", "--data", ddir, "--ckpt", model, "--resume", "--epochs", "2",
          "--metrics", slink, "--out", out, E}, "--ckpt", "--metrics"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snap before = snap_take(work);
        const char *const *a = cases[i].args;
        int rc = run(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10],
                     a[11], a[12], NULL);
        char what[64];
        snprintf(what, sizeof what, "case %zu (vae %s)", i, a[0]);
        if (rc != 2)
            fail_msg("%s: exit %d, expected 2\nstderr:\n%s", what, rc, err_text);
        tu_assert_contains(err_text, cases[i].first);
        tu_assert_contains(err_text, cases[i].second);
        tu_assert_contains(err_text, "see 'vae ");
        tu_assert_contains(err_text, "the same file");
        snap_assert_same(&before, work, what);
        snap_free(&before);
    }
    /* The same commands with paths apart work: the check is not a blanket
     * refusal. Writing to a device twice destroys nothing either. */
    char fine[200];
    w(fine, sizeof fine, "fine.png");
    assert_exit(run("sample", "--ckpt", slink, "-o", fine, NULL), 0);
    assert_exit(run("reconstruct", "--ckpt", hard, "--data", ddir, "-o", fine, NULL), 0);
    assert_exit(run("sample", "--ckpt", model, "-o", "/dev/null", NULL), 0);
    assert_exit(run("train", "--data", ddir, "--ckpt", fresh, "--out", out, "--metrics",
                    metrics, "--epochs", "1", SMALL, NULL), 0);
    assert_true(tu_exists(metrics) && tu_exists(plot));
    assert_false(tu_exists(lock)); /* the lock file goes with the run */
    tu_assert_file_equals(series_h, "keep me\n", 8);
}

/* ------------------------------------------------------------------------ */
/* One writer per checkpoint                                                 */

static void test_lock(void **state)
{
    (void)state;
    char ckpt[200], lock[220], out[200];
    in_dir(ckpt, sizeof ckpt, "locked.bin");
    in_dir(out, sizeof out, "locked-out");
    snprintf(lock, sizeof lock, "%s.lock", ckpt);
    /* A long run: batches of 1, many epochs. */
    pid_t first = spawn("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs",
                        "100000", "--batch", "1", "--hidden", "16", "--latent", "2",
                        "--threads", "1", NULL);
    assert_true(wait_for_text(out_path, "epoch 1/100000", 60.0));
    /* The second run is refused at once, whichever way it starts, and says
     * who holds the file. Its own outputs go elsewhere: they must not mix. */
    char pid_text[32], out2[160], out3[200], err2[160];
    snprintf(pid_text, sizeof pid_text, "process %ld", (long)first);
    in_dir(out2, sizeof out2, "stdout2.txt");
    in_dir(err2, sizeof err2, "stderr2.txt");
    in_dir(out3, sizeof out3, "locked-out2");
    char keep_out[160], keep_err[160];
    snprintf(keep_out, sizeof keep_out, "%s", out_path);
    snprintf(keep_err, sizeof keep_err, "%s", err_path);
    snprintf(out_path, sizeof out_path, "%s", out2);
    snprintf(err_path, sizeof err_path, "%s", err2);
    const char *how[][2] = {{"--resume", "--epochs"}, {"--force", "--epochs"}};
    for (int i = 0; i < 2; i++) {
        assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out3, how[i][0],
                        how[i][1], "1", NULL), 1);
        tu_assert_contains(err_text, "is in use");
        tu_assert_contains(err_text, pid_text);
        tu_assert_contains(err_text, ckpt);
    }
    assert_false(tu_exists(out3));
    /* Readers need no lock: sampling from the run under way works. */
    char png[200];
    in_dir(png, sizeof png, "while-training.png");
    assert_exit(run("sample", "--ckpt", ckpt, "-o", png, NULL), 0);
    snprintf(out_path, sizeof out_path, "%s", keep_out);
    snprintf(err_path, sizeof err_path, "%s", keep_err);

    /* kill -9 leaves the lock file behind, but not the lock: the next run
     * starts at once, and removes the file when it ends. */
    assert_int_equal(kill(first, SIGKILL), 0);
    assert_int_equal(wait_status(first), 128 + SIGKILL);
    assert_true(tu_exists(lock));
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    char epochs[32];
    snprintf(epochs, sizeof epochs, "%llu", (unsigned long long)d.train.epoch + 1);
    ckpt_data_free(&d);
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--resume",
                    "--epochs", epochs, NULL), 0);
    assert_false(tu_exists(lock));
}

/* --ckpt a symbolic link pointed at another file while the run goes on:
 * the run keeps saving into the file the link named when it started, and
 * the other file (a finished run's checkpoint) is left as it was. */
static void test_link_retargeted_mid_run(void **state)
{
    (void)state;
    char a[200], b[200], link[200], out[200], outb[200];
    in_dir(a, sizeof a, "retarget-a.bin");
    in_dir(b, sizeof b, "retarget-b.bin");
    in_dir(link, sizeof link, "retarget-link.bin");
    in_dir(out, sizeof out, "retarget-out");
    in_dir(outb, sizeof outb, "retarget-out-b");
    assert_exit(run("train", "--data", data, "--ckpt", b, "--out", outb, "--epochs", "1",
                    SMALL, NULL), 0);
    size_t len;
    unsigned char *finished = tu_read_file(b, &len);
    assert_int_equal(symlink(a, link), 0);
    pid_t pid = spawn("train", "--data", data, "--ckpt", link, "--out", out, "--epochs", "4",
                      "--batch", "1", "--hidden", "16", "--latent", "2", "--threads", "1",
                      NULL);
    assert_true(wait_for_text(out_path, "epoch 1/4", 60.0));
    char tmp[220];
    snprintf(tmp, sizeof tmp, "%s.new", link);
    assert_int_equal(symlink(b, tmp), 0);
    assert_int_equal(rename(tmp, link), 0); /* the link now names b */
    assert_int_equal(wait_status(pid), 0);
    tu_assert_file_equals(b, finished, len); /* the finished run is whole */
    free(finished);
    ckpt_data d;
    err_msg err;
    if (ckpt_read(a, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.train.epoch, 4); /* every save went to a */
    ckpt_data_free(&d);
}

/* ------------------------------------------------------------------------ */
/* A new run never destroys an earlier one                                   */

static void test_no_run_over_another(void **state)
{
    (void)state;
    char ckpt[200], out[200], text[200];
    in_dir(ckpt, sizeof ckpt, "earlier.bin");
    in_dir(out, sizeof out, "earlier-out");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "2",
                    SMALL, NULL), 0);
    size_t len;
    unsigned char *first = tu_read_file(ckpt, &len);
    snap before = snap_take(out);
    /* Without --resume or --force: refused, with the three ways forward,
     * nothing written (checkpoint, pictures, metrics). */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "1",
                    "--seed", "5", SMALL, NULL), 2);
    tu_assert_contains(err_text, "holds a run of 2 epochs");
    tu_assert_contains(err_text, "--resume");
    tu_assert_contains(err_text, "another --ckpt");
    tu_assert_contains(err_text, "--force");
    tu_assert_file_equals(ckpt, first, len);
    snap_assert_same(&before, out, "a refused new run");
    /* A file that is not a checkpoint is not replaced either. */
    in_dir(text, sizeof text, "notes.txt");
    tu_write_file(text, "my notes\n", 9);
    assert_exit(run("train", "--data", data, "--ckpt", text, "--out", out, "--epochs", "1",
                    SMALL, NULL), 2);
    tu_assert_contains(err_text, "is not a checkpoint vae can read");
    tu_assert_file_equals(text, "my notes\n", 9);
    /* An earlier run's best model (--valid) is not replaced either, even
     * when its checkpoint is gone. */
    char fresh[200], fresh_best[200];
    in_dir(fresh, sizeof fresh, "fresh.bin");
    in_dir(fresh_best, sizeof fresh_best, "fresh.best.bin");
    tu_write_file(fresh_best, "an earlier best\n", 16);
    assert_exit(run("train", "--data", data, "--ckpt", fresh, "--out", out, "--epochs", "1",
                    "--valid", "20", SMALL, NULL), 2);
    tu_assert_contains(err_text, "holds the best epoch of an earlier run");
    tu_assert_file_equals(fresh_best, "an earlier best\n", 16);
    assert_false(tu_exists(fresh));
    /* --force with --resume contradicts itself; --new-data needs --resume. */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--resume", "--force", NULL), 2);
    tu_assert_contains(err_text, "give one of them");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--new-data", NULL), 2);
    tu_assert_contains(err_text, "--new-data applies to a resumed run");
    tu_assert_file_equals(ckpt, first, len);
    snap_assert_same(&before, out, "refused options");
    snap_free(&before);
    /* --resume continues it; --force replaces it, and says so. */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", NULL), 0);
    tu_assert_contains(out_text, "epoch 3/3");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "1",
                    "--seed", "5", "--force", SMALL, NULL), 0);
    tu_assert_contains(out_text, "--force: ");
    tu_assert_contains(out_text, "holds a run of 3 epochs; the new run replaces it");
    ckpt_data d;
    err_msg err;
    if (ckpt_read(ckpt, &d, &err))
        fail_msg("%s", err.text);
    assert_int_equal(d.train.epoch, 1);
    assert_int_equal(d.train.set.seed, 5);
    ckpt_data_free(&d);
    free(first);
}

/* ------------------------------------------------------------------------ */
/* A resumed run trains on the same data                                     */

/* folder/: a copy of the good data set, its training images or labels
 * changed by edit (NULL: none), or n_train images instead of 300. */
static void copy_data(const char *folder, void (*edit)(unsigned char *b, size_t len),
                      const char *which, size_t n_train)
{
    assert_int_equal(mkdir(folder, 0755), 0);
    const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        char from[256], to[256];
        snprintf(from, sizeof from, "%s/%s", data, names[i]);
        snprintf(to, sizeof to, "%s/%s", folder, names[i]);
        size_t len;
        unsigned char *b = tu_read_file(from, &len);
        if (edit && !strcmp(names[i], which))
            edit(b, len);
        if (i < 2 && n_train < CLI_N_TRAIN) {
            size_t head = i == 0 ? 16 : 8, per = i == 0 ? 784 : 1;
            cli_put_be32(b + 4, (uint32_t)n_train);
            len = head + n_train * per;
        }
        tu_write_file(to, b, len);
        free(b);
    }
}

static void flip_pixel(unsigned char *b, size_t len)
{
    b[len - 100] ^= 1;
}

static void swap_labels(unsigned char *b, size_t len)
{
    (void)len;
    unsigned char t = b[8];
    b[8] = b[9], b[9] = t;
}

/* "key":"value" of a JSON line, into out. */
static void json_str(const char *line, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    if (!p)
        fail_msg("no %s in %s", key, line);
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

static void test_fingerprint(void **state)
{
    (void)state;
    char ckpt[200], out[200], pixels[200], labels[200], fewer[200];
    in_dir(ckpt, sizeof ckpt, "fp.bin");
    in_dir(out, sizeof out, "fp-out");
    in_dir(pixels, sizeof pixels, "data-pixel");
    in_dir(labels, sizeof labels, "data-labels");
    in_dir(fewer, sizeof fewer, "data-fewer");
    copy_data(pixels, flip_pixel, "train-images-idx3-ubyte", CLI_N_TRAIN);
    copy_data(labels, swap_labels, "train-labels-idx1-ubyte", CLI_N_TRAIN);
    copy_data(fewer, NULL, NULL, CLI_N_TRAIN - 1);
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "1",
                    SMALL, NULL), 0);

    /* The fingerprint is the data's: count, size, and the CRC-32s of the
     * pixel and label bytes as the IDX files hold them. */
    assert_exit(run("info", "--ckpt", ckpt, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"data\":{\"images\":300,\"rows\":28,\"cols\":28,");
    char path[256], got[16], want[16];
    size_t len;
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", data);
    unsigned char *b = tu_read_file(path, &len);
    snprintf(want, sizeof want, "%08lx", crc32(0L, b + 16, (uInt)(len - 16)));
    free(b);
    json_str(out_text, "pixels_crc32", got, sizeof got);
    assert_string_equal(got, want);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", data);
    b = tu_read_file(path, &len);
    snprintf(want, sizeof want, "%08lx", crc32(0L, b + 8, (uInt)(len - 8)));
    free(b);
    json_str(out_text, "labels_crc32", got, sizeof got);
    assert_string_equal(got, want);

    /* The same data (even gzipped, through another name): accepted. */
    char gz[200];
    in_dir(gz, sizeof gz, "data-gz");
    copy_data(gz, NULL, NULL, CLI_N_TRAIN);
    snprintf(path, sizeof path, "gzip -q %s/train-images-idx3-ubyte", gz);
    assert_int_equal(system(path), 0);
    assert_exit(run("train", "--data", gz, "--ckpt", ckpt, "--out", out, "--epochs", "2",
                    "--resume", NULL), 0);

    /* Other data: refused with what differs, checkpoint unchanged. */
    unsigned char *before = tu_read_file(ckpt, &len);
    const struct { const char *folder, *says; } other[] = {
        {pixels, "as many images, but other pixels (CRC-32 "},
        {labels, "the same pixels, but other labels (CRC-32 "},
        {fewer, "it has 299 images, the run's had 300"},
    };
    for (int i = 0; i < 3; i++) {
        assert_exit(run("train", "--data", other[i].folder, "--ckpt", ckpt, "--out", out,
                        "--epochs", "3", "--resume", NULL), 1);
        tu_assert_contains(err_text, other[i].says);
        tu_assert_contains(err_text, other[i].folder);
        tu_assert_contains(err_text, "--new-data");
        tu_assert_file_equals(ckpt, before, len);
    }
    /* Other data the run cannot go on with (fewer images than its batch of
     * 128): refused, without first saying that the run goes on with it. */
    char tiny[200];
    in_dir(tiny, sizeof tiny, "data-tiny");
    copy_data(tiny, NULL, NULL, 8);
    assert_exit(run("train", "--data", tiny, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--new-data", NULL), 1);
    tu_assert_contains(err_text, "the training set has 8");
    assert_null(strstr(err_text, "goes on with other training data"));
    tu_assert_file_equals(ckpt, before, len);
    free(before);
    /* Said on purpose: it trains on, with a word, and the checkpoint takes
     * the new fingerprint: the old data is now the other data. */
    assert_exit(run("train", "--data", pixels, "--ckpt", ckpt, "--out", out, "--epochs",
                    "3", "--resume", "--new-data", NULL), 0);
    tu_assert_contains(err_text, "--new-data: the run goes on with other training data");
    tu_assert_contains(out_text, "epoch 3/3");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "4",
                    "--resume", NULL), 1);
    tu_assert_contains(err_text, "other pixels");
    assert_exit(run("train", "--data", pixels, "--ckpt", ckpt, "--out", out, "--epochs",
                    "4", "--resume", NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* Version-2 checkpoints                                                     */

static void test_version_2_checkpoint(void **state)
{
    (void)state;
    /* Written by vae 0.2.0 (format 2): 784-4-2, one epoch, seed 7. */
    char fixture[512], ckpt[200], png[200], out[200];
    snprintf(fixture, sizeof fixture, "%s/ckpt-v2-mlp.bin", VAE_TEST_DATA_DIR);
    in_dir(ckpt, sizeof ckpt, "v2.bin");
    in_dir(png, sizeof png, "v2.png");
    in_dir(out, sizeof out, "v2-out");
    size_t len;
    unsigned char *b = tu_read_file(fixture, &len);
    tu_write_file(ckpt, b, len);
    free(b);
    assert_exit(run("info", "--ckpt", ckpt, NULL), 0);
    tu_assert_contains(out_text, "format version 2");
    tu_assert_contains(out_text, "hidden 4, latent 2");
    tu_assert_contains(out_text, "1 epoch done");
    tu_assert_contains(out_text, "not recorded");
    assert_exit(run("sample", "--ckpt", ckpt, "-o", png, NULL), 0);
    assert_png_size(png, 8 * 30 + 2, 16 * 30 + 2);
    assert_exit(run("eval", "--ckpt", ckpt, "--data", data, NULL), 0);
    /* Resumed, it cannot check the data, says so, and records it from then
     * on, in the current format. */
    assert_exit(run("train", "--ckpt", ckpt, "--data", data, "--out", out, "--epochs", "2",
                    "--resume", NULL), 0);
    tu_assert_contains(err_text, "before checkpoints recorded their training data");
    assert_exit(run("info", "--ckpt", ckpt, "--json", NULL), 0);
    char version[32];
    snprintf(version, sizeof version, "\"version\":%u", CKPT_VERSION);
    tu_assert_contains(out_text, version);
    tu_assert_contains(out_text, "\"epoch\":2");
    tu_assert_contains(out_text, "\"images\":300");
}

/* ------------------------------------------------------------------------ */
/* manifold                                                                  */

static void test_manifold_2d_needs_no_data(void **state)
{
    (void)state;
    char png[200], nowhere[200], ckpt3[200], out[200];
    in_dir(png, sizeof png, "grid.png");
    in_dir(nowhere, sizeof nowhere, "no-such-folder");
    assert_exit(run("manifold", "--ckpt", model, "--data", nowhere, "--n", "5", "-o", png,
                    NULL), 0);
    assert_png_size(png, 5 * 30 + 2, 5 * 30 + 2);
    /* A 3-D latent draws the test set's map (its principal components), which needs it. */
    in_dir(ckpt3, sizeof ckpt3, "z3.bin");
    in_dir(out, sizeof out, "z3-out");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt3, "--out", out, "--epochs", "1",
                    "--batch", "50", "--hidden", "16", "--latent", "3", NULL), 0);
    assert_exit(run("manifold", "--ckpt", ckpt3, "--data", nowhere, "-o", png, NULL), 1);
    tu_assert_contains(err_text, "no-such-folder/t10k-images-idx3-ubyte: not found");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clash_table),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_link_retargeted_mid_run),
        cmocka_unit_test(test_no_run_over_another),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_version_2_checkpoint),
        cmocka_unit_test(test_manifold_2d_needs_no_data),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
