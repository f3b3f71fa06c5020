/* test_errors.c - bad input through the vae binary: every malformed data
 * file, damaged checkpoint, bad option and failing output gets a message
 * that names the file or option and the problem, exit status 1 (2 for
 * usage errors), never a signal, and nothing written or changed. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt.h"
#include "testutil.h"
#include "cliutil.h"

static char model[160]; /* a small trained model: --hidden 32 --latent 2 */

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-errors"))
        return -1;
    snprintf(model, sizeof model, "%s/model.bin", dir);
    char out[160];
    snprintf(out, sizeof out, "%s/model-out", dir);
    if (run("train", "--data", data, "--ckpt", model, "--out", out, "--epochs", "1",
            "--batch", "50", "--hidden", "32", "--latent", "2", NULL) != 0) {
        fprintf(stderr, "test_errors: training the model failed:\n%s", err_text);
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
/* IDX files                                                                */

/* An IDX header: magic then the dimensions, big-endian. */
static size_t idx_header(unsigned char *h, uint32_t magic, const uint32_t *dims,
                         size_t ndims)
{
    cli_put_be32(h, magic);
    for (size_t i = 0; i < ndims; i++)
        cli_put_be32(h + 4 + 4 * i, dims[i]);
    return 4 + 4 * ndims;
}

/* Writes len bytes gzip-compressed to path. */
static void write_gz(const char *path, const unsigned char *b, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, b, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

/* A fresh copy of the good data set in folder NAME; returns its path. */
static const char *copy_data(char *folder, size_t size, const char *name)
{
    in_dir(folder, size, name);
    assert_int_equal(mkdir(folder, 0755), 0);
    const char *files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (size_t i = 0; i < 4; i++) {
        char from[256], to[256];
        size_t n;
        tu_join(from, sizeof from, data, files[i]);
        tu_join(to, sizeof to, folder, files[i]);
        unsigned char *b = tu_read_file(from, &n);
        tu_write_file(to, b, n);
        free(b);
    }
    return folder;
}

/* Runs train and eval on folder, whose file `bad` is broken: both must exit
 * 1 naming that file and saying what, and train must write nothing. */
static void expect_data_error(const char *folder, const char *bad, const char *what)
{
    char path[256], ckpt[256], out[256];
    tu_join(path, sizeof path, folder, bad);
    tu_join(ckpt, sizeof ckpt, folder, "never.bin");
    tu_join(out, sizeof out, folder, "never-out");
    assert_exit(run("train", "--data", folder, "--ckpt", ckpt, "--out", out,
                    "--epochs", "1", NULL), 1);
    tu_assert_contains(err_text, bad);
    tu_assert_contains(err_text, what);
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
    if (!strncmp(bad, "t10k", 4)) {
        assert_exit(run("eval", "--data", folder, "--ckpt", model, NULL), 1);
        tu_assert_contains(err_text, bad);
        tu_assert_contains(err_text, what);
        assert_string_equal(out_text, "");
    }
    /* probe reads both splits. */
    assert_exit(run("probe", "--data", folder, "--ckpt", model, NULL), 1);
    tu_assert_contains(err_text, bad);
    tu_assert_contains(err_text, what);
    assert_string_equal(out_text, "");
    printf("  %-26s %s", bad, err_text);
}

static void test_idx_errors(void **state)
{
    (void)state;
    char folder[160], path[256];
    unsigned char b[64];
    const uint32_t d28[3] = {CLI_N_TEST, 28, 28};
    size_t n, len;
    unsigned char *good;

    copy_data(folder, sizeof folder, "idx-missing");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    unlink(path);
    expect_data_error(folder, "t10k-images-idx3-ubyte", "not found (nor ");

    copy_data(folder, sizeof folder, "idx-empty");
    tu_join(path, sizeof path, folder, "train-labels-idx1-ubyte");
    tu_write_file(path, "", 0);
    expect_data_error(folder, "train-labels-idx1-ubyte", "file is empty");

    copy_data(folder, sizeof folder, "idx-short-header");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    len = idx_header(b, 0x803, d28, 3);
    tu_write_file(path, b, 10);
    expect_data_error(folder, "t10k-images-idx3-ubyte", "truncated header");

    copy_data(folder, sizeof folder, "idx-short-data");
    tu_join(path, sizeof path, folder, "train-images-idx3-ubyte");
    good = tu_read_file(path, &n);
    tu_write_file(path, good, n - 784 * 10);
    free(good);
    expect_data_error(folder, "train-images-idx3-ubyte", "truncated: header says 300 images");

    copy_data(folder, sizeof folder, "idx-magic");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    good = tu_read_file(path, &n);
    memcpy(good, "PK\x03\x04", 4);
    tu_write_file(path, good, n);
    free(good);
    expect_data_error(folder, "t10k-images-idx3-ubyte", "wrong magic");

    /* A label file where the images should be. */
    copy_data(folder, sizeof folder, "idx-swapped");
    tu_join(path, sizeof path, folder, "t10k-labels-idx1-ubyte");
    good = tu_read_file(path, &n);
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    tu_write_file(path, good, n);
    free(good);
    expect_data_error(folder, "t10k-images-idx3-ubyte", "wrong magic");

    copy_data(folder, sizeof folder, "idx-ndims");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    good = tu_read_file(path, &n);
    good[3] = 2; /* 0x0802: two dimensions */
    tu_write_file(path, good, n);
    free(good);
    expect_data_error(folder, "t10k-images-idx3-ubyte", "wrong number of dimensions");

    /* 32x32 images, a valid file: said, not guessed at. */
    copy_data(folder, sizeof folder, "idx-32x32");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    {
        const uint32_t d32[3] = {CLI_N_TEST, 32, 32};
        size_t hl = idx_header(b, 0x803, d32, 3), total = hl + CLI_N_TEST * 1024;
        unsigned char *img = calloc(total, 1);
        assert_non_null(img);
        memcpy(img, b, hl);
        tu_write_file(path, img, total);
        free(img);
    }
    expect_data_error(folder, "t10k-images-idx3-ubyte", "images are 32x32");

    copy_data(folder, sizeof folder, "idx-counts");
    tu_join(path, sizeof path, folder, "train-labels-idx1-ubyte");
    good = tu_read_file(path, &n);
    cli_put_be32(good + 4, CLI_N_TRAIN - 10);
    tu_write_file(path, good, n - 10);
    free(good);
    expect_data_error(folder, "train-labels-idx1-ubyte", "count mismatch");
    tu_assert_contains(err_text, "300 images");
    tu_assert_contains(err_text, "290 labels");

    copy_data(folder, sizeof folder, "idx-overflow");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    {
        const uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
        len = idx_header(b, 0x803, huge, 3);
        tu_write_file(path, b, len);
    }
    expect_data_error(folder, "t10k-images-idx3-ubyte", "overflow");

    copy_data(folder, sizeof folder, "idx-too-many");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    {
        const uint32_t many[3] = {1000000, 28, 28};
        len = idx_header(b, 0x803, many, 3);
        unsigned char img[16 + 784];
        memset(img, 0, sizeof img);
        memcpy(img, b, len);
        tu_write_file(path, img, sizeof img);
    }
    expect_data_error(folder, "t10k-images-idx3-ubyte", "header says 1000000 images");

    /* Gzip: a flipped byte in the compressed stream, and a cut one. */
    copy_data(folder, sizeof folder, "idx-gz-corrupt");
    tu_join(path, sizeof path, folder, "t10k-images-idx3-ubyte");
    good = tu_read_file(path, &n);
    unlink(path);
    strcat(path, ".gz");
    write_gz(path, good, n);
    free(good);
    good = tu_read_file(path, &n);
    for (size_t i = n / 2; i < n / 2 + 8; i++)
        good[i] ^= 0x5a;
    tu_write_file(path, good, n);
    expect_data_error(folder, "t10k-images-idx3-ubyte.gz", "corrupt gzip stream");
    tu_write_file(path, good, n / 2 + 1);
    free(good);
    expect_data_error(folder, "t10k-images-idx3-ubyte.gz", "truncated gzip stream");

    copy_data(folder, sizeof folder, "idx-trailing");
    tu_join(path, sizeof path, folder, "train-labels-idx1-ubyte");
    good = tu_read_file(path, &n);
    good = realloc(good, n + 5);
    assert_non_null(good);
    memcpy(good + n, "extra", 5);
    tu_write_file(path, good, n + 5);
    free(good);
    expect_data_error(folder, "train-labels-idx1-ubyte", "trailing garbage: 5 extra bytes");


    copy_data(folder, sizeof folder, "idx-directory");
    tu_join(path, sizeof path, folder, "t10k-labels-idx1-ubyte");
    unlink(path);
    assert_int_equal(mkdir(path, 0755), 0);
    expect_data_error(folder, "t10k-labels-idx1-ubyte", "is a directory");

    /* --data naming a file, and a folder that is not there. */
    tu_join(path, sizeof path, data, "train-images-idx3-ubyte");
    assert_exit(run("eval", "--data", path, "--ckpt", model, NULL), 1);
    tu_assert_contains(err_text, path);
    in_dir(path, sizeof path, "no-such-data");
    assert_exit(run("eval", "--data", path, "--ckpt", model, NULL), 1);
    tu_assert_contains(err_text, "no-such-data/t10k-images-idx3-ubyte: not found");
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                              */

/* Every command that reads --ckpt refuses bad: exit 1, what names the
 * problem, and no output file. */
static void expect_ckpt_error(const char *bad, const char *what)
{
    char png[160], out[160];
    in_dir(png, sizeof png, "never.png");
    in_dir(out, sizeof out, "never-out");
    assert_exit(run("sample", "--ckpt", bad, "-o", png, NULL), 1);
    tu_assert_contains(err_text, bad);
    tu_assert_contains(err_text, what);
    printf("  %s", err_text);
    assert_exit(run("reconstruct", "--ckpt", bad, "--data", data, "-o", png, NULL), 1);
    tu_assert_contains(err_text, what);
    assert_exit(run("eval", "--ckpt", bad, "--data", data, NULL), 1);
    tu_assert_contains(err_text, what);
    assert_string_equal(out_text, "");
    assert_exit(run("probe", "--ckpt", bad, "--data", data, NULL), 1);
    tu_assert_contains(err_text, what);
    assert_string_equal(out_text, "");
    assert_false(tu_exists(png));
    /* Resuming from it fails too, and leaves it as it was. */
    size_t n0, n1;
    struct stat st;
    int regular = stat(bad, &st) == 0 && S_ISREG(st.st_mode);
    unsigned char *before = regular ? tu_read_file(bad, &n0) : NULL;
    assert_exit(run("train", "--ckpt", bad, "--data", data, "--out", out, "--epochs",
                    "9", "--resume", NULL), 1);
    tu_assert_contains(err_text, what);
    assert_false(tu_exists(out));
    if (before) {
        unsigned char *after = tu_read_file(bad, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(before, after, n0);
        free(after);
        free(before);
    }
}

/* The model checkpoint with parameter i set to v in its bytes, the CRC
 * made right, as path: what ckpt_save itself refuses to write. */
static void save_with_param(const char *path, size_t i, float v)
{
    size_t n;
    unsigned char *b = tu_read_file(model, &n);
    size_t at = 16 + tu_get_le32(b + 12) + 4 * i; /* magic, version, header size */
    assert_true(at + 4 + 4 <= n);
    memcpy(b + at, &v, 4);
    tu_put_le32(b + n - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4)));
    tu_write_file(path, b, n);
    free(b);
}

static void test_checkpoint_errors(void **state)
{
    (void)state;
    char bad[160];
    size_t n;
    unsigned char *good = tu_read_file(model, &n);

    in_dir(bad, sizeof bad, "missing.bin");
    expect_ckpt_error(bad, "No such file");

    in_dir(bad, sizeof bad, "empty.bin");
    tu_write_file(bad, "", 0);
    expect_ckpt_error(bad, "not a vae checkpoint");

    in_dir(bad, sizeof bad, "text.bin");
    tu_write_file(bad, "these are not the weights you are looking for\n", 46);
    expect_ckpt_error(bad, "not a vae checkpoint");

    in_dir(bad, sizeof bad, "newer.bin");
    unsigned char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, good, n);
    b[8] = CKPT_VERSION + 1; /* a version from the future */
    tu_write_file(bad, b, n);
    expect_ckpt_error(bad, "newer than this vae reads");
    tu_assert_contains(err_text, "upgrade vae");

    in_dir(bad, sizeof bad, "half.bin");
    tu_write_file(bad, good, n / 2);
    expect_ckpt_error(bad, "truncated");

    /* A flipped byte anywhere: in the header, the parameters, the Adam
     * moments, the CRC itself. */
    const size_t where[] = {20, 100, 300, n / 2, n - 100, n - 1};
    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        memcpy(b, good, n);
        b[where[i]] ^= 0x04;
        snprintf(bad, sizeof bad, "%s/flip-%zu.bin", dir, where[i]);
        tu_write_file(bad, b, n);
        expect_ckpt_error(bad, "corrupt");
    }
    free(b);

    in_dir(bad, sizeof bad, "nan.bin");
    save_with_param(bad, 1000, NAN);
    expect_ckpt_error(bad, "parameters contain NaN or Inf");
    in_dir(bad, sizeof bad, "inf.bin");
    save_with_param(bad, 0, -INFINITY);
    expect_ckpt_error(bad, "parameters contain NaN or Inf");

    in_dir(bad, sizeof bad, "a-folder.bin");
    assert_int_equal(mkdir(bad, 0755), 0);
    expect_ckpt_error(bad, "not a regular file");
    free(good);
}

/* An architecture other than the one the command asks for. */
static void test_checkpoint_architecture(void **state)
{
    (void)state;
    char out[160], other[160];
    in_dir(out, sizeof out, "arch-out");
    in_dir(other, sizeof other, "arch.bin");
    size_t n;
    unsigned char *good = tu_read_file(model, &n);
    tu_write_file(other, good, n);
    free(good);
    assert_exit(run("train", "--ckpt", other, "--data", data, "--out", out,
                    "--epochs", "3", "--resume", "--hidden", "64", NULL), 2);
    tu_assert_contains(err_text, other);
    tu_assert_contains(err_text, "--hidden given other than");
    assert_exit(run("train", "--ckpt", other, "--data", data, "--out", out,
                    "--epochs", "3", "--resume", "--latent", "3", "--act", "tanh",
                    NULL), 2);
    tu_assert_contains(err_text, "--latent given other than");
    assert_false(tu_exists(out));

    /* A model for other images than 28x28: it samples its own 10x10
     * images, and refuses MNIST's. */
    model_config cfg = {100, 1, {8}, 2, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_net m;
    err_msg err;
    assert_int_equal(model_init(&m, &cfg, &err), 0);
    rng_state r;
    rng_seed(&r, 1);
    model_init_params(&m, &r);
    float *mom = calloc(2 * m.n_params, sizeof(float));
    ckpt_train t = ckpt_train_defaults();
    t.set.batch = 10, t.set.sched.lr = 1e-3, t.set.beta = 1.0;
    rng_seed(&t.rng_data, 1);
    rng_seed(&t.rng_noise, 2);
    assert_int_equal(ckpt_save(other, &m, mom, mom + m.n_params, &t, &err), 0);
    free(mom);
    model_free(&m);
    char png[160];
    in_dir(png, sizeof png, "arch.png");
    assert_exit(run("sample", "--ckpt", other, "-o", png, "--n", "4", NULL), 0);
    assert_true(tu_exists(png));
    assert_exit(run("probe", "--ckpt", other, "--data", data, NULL), 1);
    tu_assert_contains(err_text, "takes 10x10 grey images, but the training images are "
                                 "28x28 grey");
    tu_assert_contains(err_text, "train-images-idx3-ubyte");
    assert_exit(run("eval", "--ckpt", other, "--data", data, NULL), 1);
    tu_assert_contains(err_text, "but the test images are 28x28 grey");
    assert_exit(run("train", "--ckpt", other, "--data", data, "--out", out,
                    "--epochs", "3", "--resume", NULL), 1);
    tu_assert_contains(err_text, "the model takes 10x10 grey images, but the training "
                                 "images are 28x28");
    assert_false(tu_exists(out));
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

static void test_option_errors(void **state)
{
    (void)state;
    struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"train", "--epochs", "0"}, "--epochs: must be at least 1, not 0"},
        {{"train", "--epochs", "-1"}, "--epochs: '-1' is not a whole number >= 1"},
        {{"eval", "--iw", "-1"}, "--iw: '-1' is not a whole number >= 1"},
        {{"train", "--seed", "x"}, "--seed: 'x' is not a whole number >= 0"},
        {{"train", "--epochs", "2.5"}, "--epochs: '2.5' is not a whole number"},
        {{"train", "--epochs", ""}, "--epochs: '' is not a whole number"},
        {{"train", "--epochs", "99999999999999999999"}, "--epochs: 99999999999999999999 is too large"},
        {{"train", "--batch", "0"}, "--batch: must be at least 1"},
        {{"train", "--batch", "4294967296"}, "--batch: 4294967296 is too large"},
        {{"train", "--lr", "-0.1"}, "--lr: -0.1 must be above 0"},
        {{"train", "--lr", "nan"}, "--lr: 'nan' is not a number"},
        {{"train", "--lr", "inf"}, "--lr: 'inf' is not a number"},
        {{"train", "--lr", "1e-3x"}, "--lr: '1e-3x' is not a number"},
        {{"train", "--seed", "-5"}, "--seed: '-5' is not a whole number"},
        {{"train", "--threads", "0"}, "--threads: must be at least 1"},
        {{"train", "--threads", "100000"}, "--threads: 100000 is too large"},
        {{"train", "--hidden", "0"}, "--hidden: must be at least 1"},
        {{"train", "--hidden", "400,"}, "--hidden: '400,' is not a list of widths"},
        {{"train", "--hidden", "1,2,3,4,5"}, "--hidden: at most 4 layers"},
        {{"train", "--hidden", "9999999"}, "--hidden: 9999999 is too large"},
        {{"train", "--latent", "0"}, "--latent: must be at least 1"},
        {{"train", "--latent", "100000"}, "--latent: 100000 is too large"},
        {{"train", "--act", "gelu"}, "--act: 'gelu' is not relu, tanh or leaky"},
        {{"train", "--arch", "rnn"}, "--arch: 'rnn' is not mlp or conv"},
        {{"train", "--likelihood", "poisson"}, "--likelihood: 'poisson' is not bernoulli, cb or gaussian"},
        {{"train", "--binarize", "yes"}, "--binarize: 'yes' is not none, static or dynamic"},
        {{"train", "--beta", "-1"}, "--beta: -1 must be at least 0"},
        {{"train", "--noise", "11"}, "--noise: 11 is too large (at most 10)"},
        {{"train", "--arch", "conv", "--hidden", "1,2,3,4,5"}, "--hidden: at most 4 layers"},
        {{"encode", "--split", "valid"}, "--split: 'valid' is not train or test"},
        {{"score", "--top", "0"}, "--top: must be at least 1"},
        {{"probe", "--k", "0"}, "--k: must be at least 1, not 0"},
        {{"probe", "--k", "-5"}, "--k: '-5' is not a whole number"},
        {{"traverse", "--steps", "1"}, "--steps: must be at least 2, not 1"},
        {{"traverse", "--top", "0"}, "--top: must be at least 1, not 0"},
        {{"traverse", "--from", "-1"}, "--from: '-1' is not a whole number"},
        {{"sample", "--n", "0"}, "--n: must be at least 1, not 0"},
        {{"sample", "--n", "1000000000"}, "--n: 1000000000 is too large"},
        {{"sample", "-o"}, "--output needs a value"},
        /* An empty path names no file; as a folder it was the current one. */
        {{"sample", "-o", ""}, "--output: an empty path"},
        {{"encode", "--output="}, "--output: an empty path"},
        {{"eval", "--ckpt", ""}, "--ckpt: an empty path"},
        {{"eval", "--ckpt="}, "--ckpt: an empty path"},
        {{"eval", "--data", ""}, "--data: an empty path"},
        {{"train", "--out", ""}, "--out: an empty path"},
        {{"train", "--metrics", ""}, "--metrics: an empty path"},
        {{"import", "folder", "-o", ""}, "--output: an empty path"},
        {{"import", ""}, "DIR: an empty path"},
        {{"sample", "--resume"}, "unknown option '--resume'"},
        {{"train", "-x"}, "unknown option '-x'"},
        {{"train", "--epochs", "3", "--epochs", "4"}, "--epochs given twice"},
        {{"reconstruct", "extra"}, "unexpected argument 'extra'"},
        {{"train", "--schedule", "linear"}, "--schedule: 'linear' is not constant, staged, cosine or step"},
        {{"train", "--lr-every", "0"}, "--lr-every: must be at least 1"},
        {{"train", "--lr-gamma", "0"}, "--lr-gamma: 0 must be above 0"},
        {{"train", "--lr-gamma", "1.5"}, "--lr-gamma: 1.5 is too large (at most 1)"},
        {{"train", "--adam-beta1", "1"}, "--adam-beta1: must be below 1, not 1"},
        {{"train", "--adam-beta2", "-0.5"}, "--adam-beta2: -0.5 must be at least 0"},
        {{"train", "--adam-eps", "0"}, "--adam-eps: 0 must be above 0"},
        {{"train", "--init", "he"}, "--init: 'he' is not torch or glorot"},
        {{"train", "--kl-warmup", "-3"}, "--kl-warmup: '-3' is not a whole number"},
        {{"train", "--schedule", "cosine", "--warmup", "15"},
         "--warmup 15: the cosine schedule's warm-up must be shorter than the run (15 epochs)"},
        {{"train", "--warmup", "2"}, "--warmup applies to --schedule cosine"},
        {{"train", "--schedule", "staged", "--lr-gamma", "0.5"},
         "--lr-gamma applies to --schedule step"},
        {{"train", "--objective", "iwae", "--kl-warmup", "2"},
         "--kl-warmup applies to --objective elbo"},
        {{"bench", "--ckpt", "x.bin"}, "--ckpt applies to bench --iw"},
        {{"bench", "--iw", "5", "--epochs", "4"},
         "--epochs: bench --iw times the bound of a model, and trains nothing (drop it)"},
        {{"bench", "--iw", "5", "--plan", "units"}, "--plan: bench --iw times the bound"},
        {{"bench", "--valid", "3"}, "unknown option '--valid'"},
        {{"bench", "--iw", "5", "--ckpt", "x.bin", "--conditional"},
         "give no model options (--hidden, --latent, ...) with it"},
        {{"bench", "--data", data, "--batch", "100000"},
         "--batch 100000: the training set has"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char **a = cases[i].args;
        assert_exit(run(a[0], a[1], a[2], a[3], a[4], a[5], NULL), 2);
        tu_assert_contains(err_text, cases[i].msg);
        assert_string_equal(out_text, "");
    }
    assert_exit(run("--verbose", NULL), 2);
    tu_assert_contains(err_text, "unknown command '--verbose'");
    /* A path too long for the files a run writes: a usage error at once,
     * not a failure after an epoch's work. */
    char longest[4200];
    size_t n = 0;
    while (n + 3 < 4100)
        n += (size_t)snprintf(longest + n, sizeof longest - n, "ab/");
    const char *opts[3] = {"--out", "--ckpt", "--metrics"};
    for (int i = 0; i < 3; i++) {
        assert_exit(run("train", "--data", data, opts[i], longest, "--epochs", "1", NULL), 2);
        tu_assert_contains(err_text, opts[i]);
        tu_assert_contains(err_text, "too long for the files the run writes");
    }
}

/* vae traverse on bad input: a test image or a number of rows the data or
 * the model does not have, missing files, -o over an input. Each exits 1
 * (2 for usage errors) with a message naming the problem, and writes
 * nothing. */
static void test_traverse_errors(void **state)
{
    (void)state;
    char png[160], missing[160];
    in_dir(png, sizeof png, "traverse-never.png");
    struct {
        const char *args[8];
        int status;
        const char *msg;
    } cases[] = {
        {{"--from", "100"}, 2, "--from 100: the test set has images 0 to 99"},
        {{"--top", "3"}, 2, "has 2 latent dimensions"},
        {{"--steps", "1001"}, 2, "--steps: 1001 is too large"},
        {{"--data", "/nonexistent-vae-data"}, 1, "/nonexistent-vae-data"},
        {{"--ckpt", in_dir(missing, sizeof missing, "no-such.bin")}, 1, "no-such.bin"},
        {{"--label", "3"}, 2, "unknown option '--label'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char **a = cases[i].args;
        const char *ckpt = strcmp(a[0], "--ckpt") ? model : a[1];
        const char *folder = strcmp(a[0], "--data") ? data : a[1];
        int skip = !strcmp(a[0], "--ckpt") || !strcmp(a[0], "--data");
        assert_exit(run("traverse", "--ckpt", ckpt, "--data", folder, "-o", png,
                        skip ? NULL : a[0], a[1], NULL), cases[i].status);
        tu_assert_contains(err_text, cases[i].msg);
        assert_string_equal(out_text, "");
        assert_false(tu_exists(png));
    }
    /* -o over the checkpoint or the test set: refused before anything is
     * read, the input left as it was. */
    char img[256];
    tu_join(img, sizeof img, data, "t10k-images-idx3-ubyte");
    size_t n_model, n_img;
    unsigned char *before = tu_read_file(model, &n_model), *before_img = tu_read_file(img, &n_img);
    assert_exit(run("traverse", "--ckpt", model, "--data", data, "-o", model, NULL), 2);
    tu_assert_contains(err_text, "the same file");
    tu_assert_contains(err_text, "--ckpt");
    assert_exit(run("traverse", "--ckpt", model, "--data", data, "-o", img, NULL), 2);
    tu_assert_contains(err_text, "the test images");
    tu_assert_file_equals(model, before, n_model);
    tu_assert_file_equals(img, before_img, n_img);
    free(before);
    free(before_img);
    /* A folder that is not there for the PNG: after the work, exit 1. */
    in_dir(png, sizeof png, "no-such-folder/t.png");
    assert_exit(run("traverse", "--ckpt", model, "--data", data, "-o", png, NULL), 1);
    tu_assert_contains(err_text, "no-such-folder does not exist");
}

/* Sizes that would not fit in memory are refused, not attempted. */
static void test_too_large_for_memory(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "huge-out");
    in_dir(ckpt, sizeof ckpt, "huge.bin");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out,
                    "--hidden", "65536,65536,65536,65536", "--epochs", "1", NULL), 1);
    tu_assert_contains(err_text, "parameters");
    tu_assert_contains(err_text, "GB");
    /* 3.3e9 parameters: 65 GB to train, 13 GB to allocate (so malloc
     * alone would not refuse it on a machine of 24 GB). */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if ((double)pages * (double)page < 60e9) {
        assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out,
                        "--hidden", "40000,40000", "--epochs", "1", NULL), 1);
        tu_assert_contains(err_text, "more than this machine's");
    }
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
}

/* A model whose output weights are finite but huge (1e36): its test loss
 * overflows float. eval --json says null for it (JSON has no Inf), exit 0,
 * and the text form says inf. */
static void test_json_nonfinite(void **state)
{
    (void)state;
    char path[160];
    in_dir(path, sizeof path, "overflow.bin");
    ckpt_data d;
    model_net m;
    cli_ckpt_load(model, &m, &d);
    cli_set_output_weights(&m, 1e36f);
    cli_ckpt_store(path, &m, &d);
    assert_exit(run("eval", "--ckpt", path, "--data", data, "--json", NULL), 0);
    tu_assert_contains(out_text, "{\"test_loss\":null,\"test_rec\":null,");
    assert_null(strstr(out_text, "inf"));
    assert_null(strstr(out_text, "nan"));
    assert_exit(run("eval", "--ckpt", path, "--data", data, NULL), 0);
    tu_assert_contains(out_text, "test loss inf");
}

/* More threads than cores: allowed (bits as on a bigger machine), with a
 * warning that says why it is slow; as many as the cores: no warning. */
static void test_threads_above_cores(void **state)
{
    (void)state;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char more[32], same[32];
    snprintf(more, sizeof more, "%ld", cores + 1);
    snprintf(same, sizeof same, "%ld", cores);
    assert_exit(run("eval", "--ckpt", model, "--data", data, "--threads", more, NULL), 0);
    tu_assert_contains(err_text, "warning: --threads");
    tu_assert_contains(err_text, "more than the");
    assert_exit(run("eval", "--ckpt", model, "--data", data, "--threads", same, NULL), 0);
    assert_null(strstr(err_text, "warning"));
}

/* A picture or a CSV never goes over a checkpoint or a data file, even one
 * the command does not read: another run's checkpoint, the training images
 * of a command that reads the test set. Exit 2, the file as it was. */
static void test_output_over_precious(void **state)
{
    (void)state;
    char other[160], img[256];
    in_dir(other, sizeof other, "other-run.bin");
    size_t n;
    unsigned char *b = tu_read_file(model, &n);
    tu_write_file(other, b, n);
    free(b);
    assert_exit(run("sample", "--ckpt", model, "-o", other, NULL), 2);
    tu_assert_contains(err_text, "holds a vae checkpoint, which this command would write over");
    tu_assert_same_file(model, other);
    tu_join(img, sizeof img, data, "train-images-idx3-ubyte");
    unsigned char *before = tu_read_file(img, &n);
    assert_exit(run("score", "--ckpt", model, "--data", data, "-o", img, NULL), 2);
    tu_assert_contains(err_text, "holds IDX data");
    tu_assert_file_equals(img, before, n);
    free(before);
}

/* The address space a vae process may have: 4 GB. */
static void limit_address_space(void)
{
    cli_set_limit(RLIMIT_AS, (rlim_t)4 << 30, (rlim_t)4 << 30);
}

/* --batch far above the test set's size: eval sizes its passes by the set
 * (100 images), not by a million (which would need more than 4 GB). */
static void test_eval_batch_above_set(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* ASan's shadow memory does not fit under an address-space limit */
#endif
    assert_exit(run_with(limit_address_space, "eval", "--ckpt", model, "--data", data,
                         "--batch", "1048576", NULL), 0);
    tu_assert_contains(out_text, "on 100 images");
}

/* A conditional model evaluates on the test labels: a test set without
 * them is refused before training (it was evaluated as all label 0). */
static void test_conditional_needs_test_labels(void **state)
{
    (void)state;
    char half[160], from[256], to[256], ckpt[160], out[160];
    in_dir(half, sizeof half, "no-test-labels");
    in_dir(ckpt, sizeof ckpt, "cond.bin");
    in_dir(out, sizeof out, "cond-out");
    assert_int_equal(mkdir(half, 0755), 0);
    static const char *const files[3] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte"};
    for (int i = 0; i < 3; i++) {
        size_t n;
        tu_join(from, sizeof from, data, files[i]);
        tu_join(to, sizeof to, half, files[i]);
        unsigned char *b = tu_read_file(from, &n);
        tu_write_file(to, b, n);
        free(b);
    }
    assert_exit(run("train", "--data", half, "--ckpt", ckpt, "--out", out, "--epochs", "1",
                    "--conditional", "--hidden", "16", NULL), 1);
    tu_assert_contains(err_text, "the test set has no label file");
    tu_assert_contains(err_text, half); /* the data is named, not --batch or --hidden */
    assert_null(strstr(err_text, "--batch"));
    assert_false(tu_exists(ckpt));
    assert_false(tu_exists(out));
}

/* ------------------------------------------------------------------------ */
/* Outputs                                                                  */


static void test_output_errors(void **state)
{
    (void)state;
    char png[160], path[256];
    in_dir(png, sizeof png, "keep.png");

    assert_exit(run("sample", "--ckpt", model, "-o", "/dev/full", NULL), 1);
    tu_assert_contains(err_text, "cannot write /dev/full: No space left on device");

    in_dir(path, sizeof path, "no-such-folder/x.png");
    assert_exit(run("sample", "--ckpt", model, "-o", path, NULL), 1);
    tu_assert_contains(err_text, "no-such-folder does not exist");

    tu_join(path, sizeof path, model, "x.png");
    assert_exit(run("sample", "--ckpt", model, "-o", path, NULL), 1);
    tu_assert_contains(err_text, "is not a folder");

    assert_exit(run("reconstruct", "--ckpt", model, "--data", data, "-o", dir, NULL), 2);
    tu_assert_contains(err_text, "is a folder");

    /* A folder others may read but not write (the tool runs as nobody,
     * from a copy of the binary in the scratch folder: the build tree may
     * sit where nobody may not go, say a 0700 temp folder). */
    char ro[160], bin_copy[160];
    in_dir(ro, sizeof ro, "read-only");
    assert_int_equal(mkdir(ro, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0); /* nobody must reach it */
    in_dir(bin_copy, sizeof bin_copy, "vae-copy");
    size_t bin_len;
    unsigned char *bin = tu_read_file(vae_bin, &bin_len);
    tu_write_file(bin_copy, bin, bin_len);
    free(bin);
    assert_int_equal(chmod(bin_copy, 0755), 0);
    const char *real_bin = vae_bin;
    vae_bin = bin_copy;
    tu_join(path, sizeof path, ro, "x.png");
    char ckpt_copy[160];
    in_dir(ckpt_copy, sizeof ckpt_copy, "world-readable.bin");
    size_t n;
    unsigned char *b = tu_read_file(model, &n);
    tu_write_file(ckpt_copy, b, n);
    free(b);
    chmod(ckpt_copy, 0644);
    assert_exit(run_with(drop_root, "sample", "--ckpt", ckpt_copy, "-o", path, NULL), 1);
    tu_assert_contains(err_text, "read-only is not writable");
    vae_bin = real_bin;

    /* The disk fills while the PNG is written: the old file stays. */
    tu_write_file(png, "old picture", 11);
    *cli_fsize_limit() = 1000;
    assert_exit(run_with(limit_file_size, "sample", "--ckpt", model, "--n", "128",
                         "-o", png, NULL), 1);
    tu_assert_contains(err_text, "File too large");
    tu_assert_file_equals(png, "old picture", 11);

    /* ... and while the checkpoint is written: the old checkpoint stays. */
    char ckpt[160], out[160];
    in_dir(ckpt, sizeof ckpt, "full-disk.bin");
    in_dir(out, sizeof out, "full-disk-out");
    b = tu_read_file(model, &n);
    tu_write_file(ckpt, b, n);
    /* A limit that lets the PNG grids through, not the checkpoint. */
    *cli_fsize_limit() = 200000;
    assert_true(n > *cli_fsize_limit());
    assert_exit(run_with(limit_file_size, "train", "--ckpt", ckpt, "--data", data,
                         "--out", out, "--epochs", "2", "--resume", NULL), 1);
    tu_assert_contains(err_text, ckpt);
    tu_assert_contains(err_text, "File too large");
    tu_assert_file_equals(ckpt, b, n);
    free(b);

    /* No temp file is left anywhere, and no --out folder the failed run
     * made (it wrote nothing into it). */
    char hidden[256];
    tu_count_entries(dir, hidden, sizeof hidden);
    assert_string_equal(hidden, "");
    assert_false(tu_exists(out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_checkpoint_errors),
        cmocka_unit_test(test_checkpoint_architecture),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_traverse_errors),
        cmocka_unit_test(test_too_large_for_memory),
        cmocka_unit_test(test_eval_batch_above_set),
        cmocka_unit_test(test_json_nonfinite),
        cmocka_unit_test(test_threads_above_cores),
        cmocka_unit_test(test_output_over_precious),
        cmocka_unit_test(test_conditional_needs_test_labels),
        cmocka_unit_test(test_output_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
