/* test_family.c - the VAE family through the vae binary, on generated
 * data: each likelihood, beta, binarization, denoising, the conditional
 * VAE, and the commands that use a model (sample --label/--grid,
 * interpolate, traverse, encode, score, manifold, eval --iw, bench --iw). */
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
#include <unistd.h>

#include "ckpt.h"
#include "pca.h"
#include "png_grid.h"
#include "show.h"
#include "testutil.h"
#include "cliutil.h"

/* Models trained once for the group: conditional with a 4-D latent, and
 * unconditional with a 2-D one. */
static char cvae[160], vae2[160];

#define SMALL "--data", data, "--batch", "30", "--lr", "0.005", "--hidden", "48", \
              "--threads", "2"

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-family"))
        return -1;
    snprintf(cvae, sizeof cvae, "%s/cvae.bin", dir);
    snprintf(vae2, sizeof vae2, "%s/vae2.bin", dir);
    char out[160];
    snprintf(out, sizeof out, "%s/setup-out", dir);
    if (run("train", SMALL, "--epochs", "6", "--latent", "4", "--conditional", "--ckpt",
            cvae, "--out", out, NULL) != 0 ||
        run("train", SMALL, "--epochs", "6", "--latent", "2", "--ckpt", vae2, "--out", out,
            NULL) != 0) {
        fprintf(stderr, "test_family: training failed:\n%s", err_text ? err_text : "");
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

/* The last JSON line of out_text. */
static const char *last_line(void)
{
    size_t n = strlen(out_text);
    while (n > 0 && out_text[n - 1] == '\n')
        out_text[--n] = '\0';
    const char *p = strrchr(out_text, '\n');
    return p ? p + 1 : out_text;
}

static void read_ckpt(const char *path, ckpt_data *d)
{
    err_msg err;
    if (ckpt_read(path, d, &err))
        fail_msg("%s", err.text);
}

/* ------------------------------------------------------------------------ */

static void test_likelihoods_and_beta(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "lik-out");
    in_dir(ckpt, sizeof ckpt, "lik.bin");
    const char *liks[] = {"bernoulli", "cb", "gaussian"};
    double test_rec[3];
    for (int i = 0; i < 3; i++) {
        assert_exit(run("train", SMALL, "--epochs", "6", "--latent", "3", "--likelihood", liks[i],
                        "--beta", "0.5", "--json", "--force", "--ckpt", ckpt, "--out", out,
                        NULL), 0);
        const char *l = last_line();
        char want[64];
        snprintf(want, sizeof want, "\"likelihood\":\"%s\"", liks[i]);
        tu_assert_contains(l, want);
        tu_assert_contains(l, "\"beta\":0.5");
        double rec = json_num(l, "train_rec"), kl = json_num(l, "train_kl");
        assert_true(fabs(json_num(l, "train_objective") - (rec + 0.5 * kl)) < 1e-4);
        assert_true(fabs(json_num(l, "train_loss") - (rec + kl)) < 1e-4);
        /* train_bce only where rec is a cross-entropy */
        assert_true((strstr(l, "train_bce") != NULL) == (i == 0));
        test_rec[i] = json_num(l, "test_rec");
        printf("  %s: %s\n", liks[i], l);
        /* Stored: the other commands need not be told. */
        ckpt_data d;
        read_ckpt(ckpt, &d);
        assert_int_equal(d.cfg.likelihood, i);
        assert_true(d.train.set.beta == 0.5);
        ckpt_data_free(&d);
        assert_exit(run("eval", "--ckpt", ckpt, "--data", data, "--json", NULL), 0);
        snprintf(want, sizeof want, "\"likelihood\":\"%s\"", liks[i]);
        tu_assert_contains(out_text, want);
    }
    /* The Gaussian's -log p holds its constant: 784/2 log(pi) = 448.7 nats. */
    assert_true(test_rec[2] > 448.7);
    /* The continuous Bernoulli's normaliser makes -log p smaller than the BCE. */
    assert_true(test_rec[1] < test_rec[0]);
}

static void test_binarize_and_noise(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "bin-out");
    in_dir(ckpt, sizeof ckpt, "bin.bin");
    const char *modes[] = {"static", "dynamic"};
    for (int i = 0; i < 2; i++) {
        assert_exit(run("train", SMALL, "--latent", "3", "--binarize", modes[i],
                        "--noise", "0.2", "--epochs", "2", "--json", "--force", "--ckpt",
                        ckpt, "--out", out, NULL), 0);
        ckpt_data d;
        read_ckpt(ckpt, &d);
        assert_int_equal(d.train.set.binarize, (uint64_t)i + 1);
        assert_true(d.train.set.noise == 0.2);
        ckpt_data_free(&d);
        /* eval sees the binarized test set train evaluated on. */
        double train_test = json_num(last_line(), "test_loss");
        assert_exit(run("eval", "--ckpt", ckpt, "--data", data, "--json", NULL), 0);
        double eval_test = json_num(out_text, "test_loss");
        printf("  %s: train's test loss %.4f, eval's %.4f\n", modes[i], train_test, eval_test);
        assert_true(fabs(eval_test - train_test) < 1e-3 * train_test);
    }
    /* A resumed run keeps these settings. */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs",
                    "3", "--resume", "--binarize", "none", NULL), 2);
    tu_assert_contains(err_text, "--binarize given other than");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs",
                    "3", "--resume", "--noise", "0.1", NULL), 2);
    tu_assert_contains(err_text, "--noise given other than");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs",
                    "3", "--resume", "--beta", "2", NULL), 2);
    tu_assert_contains(err_text, "--beta given other than");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs",
                    "3", "--resume", "--threads", "2", NULL), 0);
}

static void test_conditional_sampling(void **state)
{
    (void)state;
    char png[160];
    in_dir(png, sizeof png, "grid.png");
    /* One column per label: 10 columns, 100 images by default. */
    assert_exit(run("sample", "--ckpt", cvae, "--grid", "-o", png, NULL), 0);
    assert_png_size(png, 10 * 30 + 2, 10 * 30 + 2);
    assert_exit(run("sample", "--ckpt", cvae, "--grid", "--n", "15", "-o", png, NULL), 0);
    assert_png_size(png, 10 * 30 + 2, 2 * 30 + 2);
    assert_exit(run("sample", "--ckpt", cvae, "--label", "3", "--n", "16", "-o", png, NULL), 0);
    assert_png_size(png, 8 * 30 + 2, 2 * 30 + 2);
    assert_exit(run("sample", "--ckpt", cvae, "--label", "3", "--grid", "-o", png, NULL), 2);
    tu_assert_contains(err_text, "--label and --grid");
    /* Not for an unconditional model. */
    assert_exit(run("sample", "--ckpt", vae2, "--label", "3", "-o", png, NULL), 2);
    tu_assert_contains(err_text, "is not conditional");
    assert_exit(run("sample", "--ckpt", vae2, "--grid", "-o", png, NULL), 2);
    assert_exit(run("sample", "--ckpt", cvae, "--label", "10", NULL), 2);
    tu_assert_contains(err_text, "--label 10: the model in");
    tu_assert_contains(err_text, "knows labels 0 to 9");
    assert_exit(run("sample", "--ckpt", cvae, "--label", "256", NULL), 2);
    tu_assert_contains(err_text, "--label: 256 is too large (at most 255)");
}

static void test_interpolate(void **state)
{
    (void)state;
    char png[160];
    in_dir(png, sizeof png, "strip.png");
    assert_exit(run("interpolate", "--ckpt", vae2, "--data", data, "--from", "3", "--to",
                    "40", "--steps", "8", "-o", png, NULL), 0);
    assert_png_size(png, 10 * 30 + 2, 32); /* image, 8 steps, image */
    assert_exit(run("interpolate", "--ckpt", cvae, "--data", data, "--label", "7",
                    "-o", png, NULL), 0);
    assert_png_size(png, 10 * 30 + 2, 32);
    assert_exit(run("interpolate", "--ckpt", vae2, "--data", data, "--to", "100", NULL), 2);
    tu_assert_contains(err_text, "--to 100: the test set has images 0 to 99");
    assert_exit(run("interpolate", "--ckpt", vae2, "--data", data, "--steps", "1", NULL), 2);
    tu_assert_contains(err_text, "--steps: must be at least 2");
}

/* Checks traverse's JSON ranking in out_text: z_dim entries, each
 * dimension once, KLs finite, >= 0 and in descending order, summing to
 * kl_total; returns kl_total. */
static double check_ranking(size_t z_dim)
{
    double total = json_num(out_text, "kl_total"), sum = 0.0, prev = INFINITY;
    assert_true(isfinite(total));
    int seen[16] = {0};
    size_t n = 0;
    for (const char *p = strstr(out_text, "{\"rank\":"); p; p = strstr(p + 1, "{\"rank\":")) {
        double rank = json_num(p, "rank"), dim = json_num(p, "dim"), kl = json_num(p, "kl");
        assert_true(rank == (double)(n + 1));
        assert_true(dim >= 0.0 && dim < (double)z_dim && !seen[(int)dim]);
        seen[(int)dim] = 1;
        if (!isfinite(kl) || kl < -1e-6 || kl > prev)
            fail_msg("rank %zu: KL %g after %g (not finite, negative or not descending)\n%s",
                     n + 1, kl, prev, out_text);
        assert_true(isfinite(json_num(p, "sd_means")) && json_num(p, "unit") > 0.0);
        prev = kl;
        sum += kl;
        n++;
    }
    assert_int_equal(n, z_dim);
    assert_true(fabs(sum - total) < 1e-5 * (1.0 + total));
    return total;
}

/* vae traverse: the ranking (descending KL, summing to eval's KL term), a
 * grid of one row a dimension and --steps columns, for the conditional,
 * unconditional and conv VAEs. Its errors are in test_errors. */
static void test_traverse(void **state)
{
    (void)state;
    char png[160];
    in_dir(png, sizeof png, "traverse.png");
    /* Conditional, 4-D: all 4 dimensions by default, 11 columns. */
    assert_exit(run("traverse", "--ckpt", cvae, "--data", data, "--from", "7", "--json",
                    "-o", png, NULL), 0);
    printf("  %s", out_text);
    assert_png_size(png, 11 * 30 + 2, 4 * 30 + 2);
    tu_assert_contains(out_text, "\"image\":7,\"label\":7,\"latent\":4,\"rows\":4,\"steps\":11");
    tu_assert_contains(out_text, "\"unit\":\"prior_sd\"");
    double total = check_ranking(4);
    /* The per-dimension KLs are the KL term of the test loss, split up. */
    assert_exit(run("eval", "--ckpt", cvae, "--data", data, "--json", NULL), 0);
    printf("  traverse's KL in all %.6f, eval's test_kl %.6f\n", total,
           json_num(out_text, "test_kl"));
    assert_true(fabs(total - json_num(out_text, "test_kl")) < 1e-4 * (1.0 + total));
    /* Unconditional, 2-D: the text, --top and --steps. */
    assert_exit(run("traverse", "--ckpt", vae2, "--data", data, "--top", "1", "--steps", "5",
                    "-o", png, NULL), 0);
    assert_png_size(png, 5 * 30 + 2, 30 + 2);
    tu_assert_contains(out_text, "test image 0, label 0: the 1 most active of 2 latent "
                                 "dimensions, each from -3 to +3 prior standard deviations");
    tu_assert_contains(out_text, "(not drawn)");
    assert_exit(run("traverse", "--ckpt", vae2, "--data", data, "--json", "-o", png, NULL), 0);
    check_ranking(2);
    assert_true(strstr(out_text, "\"unit\":1}") != NULL); /* N(0, I): unit 1 */
    /* The conv VAE. */
    char out[160], conv[160];
    in_dir(out, sizeof out, "trav-conv-out");
    in_dir(conv, sizeof conv, "trav-conv.bin");
    assert_exit(run("train", "--data", data, "--arch", "conv", "--hidden", "4,8,16", "--latent",
                    "3", "--batch", "50", "--threads", "2", "--epochs", "1", "--out", out,
                    "--ckpt", conv, NULL), 0);
    assert_exit(run("traverse", "--ckpt", conv, "--data", data, "--from", "99", "--steps", "4",
                    "--json", "-o", png, NULL), 0);
    assert_png_size(png, 4 * 30 + 2, 3 * 30 + 2);
    check_ranking(3);
}

/* score --top's grid (png) against score's CSV of the same model (csv):
 * its first `top` tiles are distinct test images, in non-increasing score,
 * none below an image left out (within the CSV's 6 decimals; --top ranks
 * by the float32 sum). */
static void check_top(const char *csv, const char *png, size_t top)
{
    double score[CLI_N_TEST];
    char *text = (char *)tu_read_file(csv, NULL);
    const char *line = strchr(text, '\n');
    for (size_t i = 0; i < CLI_N_TEST; i++, line = strchr(line + 1, '\n')) {
        size_t index;
        unsigned label;
        assert_int_equal(sscanf(line + 1, "%zu,%u,%lf", &index, &label, &score[i]), 3);
        assert_int_equal(index, i);
    }
    free(text);
    char images[200];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte", data);
    unsigned char *idx = tu_read_file(images, NULL);
    uint8_t *px;
    size_t w, h;
    err_msg err;
    if (png_grid_read_gray(png, &px, &w, &h, &err))
        fail_msg("%s", err.text);
    int shown[CLI_N_TEST] = {0};
    double lowest_shown = INFINITY, prev = INFINITY;
    for (size_t k = 0; k < top; k++) {
        size_t x0 = 2 + (k % 8) * 30, y0 = 2 + (k / 8) * 30, found = CLI_N_TEST;
        for (size_t i = 0; i < CLI_N_TEST && found == CLI_N_TEST; i++) {
            const unsigned char *img = idx + 16 + i * 784;
            int same = !shown[i];
            for (size_t y = 0; y < 28 && same; y++)
                same = !memcmp(px + (y0 + y) * w + x0, img + y * 28, 28);
            if (same)
                found = i;
        }
        if (found == CLI_N_TEST)
            fail_msg("tile %zu of %s is no test image not shown before it", k, png);
        shown[found] = 1;
        if (!(score[found] <= prev + 1e-5))
            fail_msg("tile %zu: image %zu scores %.6f, above the tile before it (%.6f)", k,
                     found, score[found], prev);
        prev = score[found];
        lowest_shown = fmin(lowest_shown, score[found]);
    }
    for (size_t i = 0; i < CLI_N_TEST; i++)
        if (!shown[i] && !(score[i] <= lowest_shown + 1e-5))
            fail_msg("image %zu scores %.6f, above the lowest of the top %zu (%.6f), and is "
                     "not shown", i, score[i], top, lowest_shown);
    free(px);
    free(idx);
}

static void test_encode_and_score(void **state)
{
    (void)state;
    char csv[160], png[160];
    in_dir(csv, sizeof csv, "latents.csv");
    assert_exit(run("encode", "--ckpt", cvae, "--data", data, "-o", csv, NULL), 0);
    char *text = (char *)tu_read_file(csv, NULL);
    const char *head = "index,label,mu_0,mu_1,mu_2,mu_3,logvar_0,logvar_1,logvar_2,"
                       "logvar_3\n0,0,";
    assert_true(!strncmp(text, head, strlen(head)));
    size_t lines = 0, commas = 0;
    for (char *p = text; *p; p++) {
        lines += *p == '\n';
        commas += *p == ',';
    }
    assert_int_equal(lines, 1 + CLI_N_TEST);
    assert_int_equal(commas, (1 + CLI_N_TEST) * 9);
    free(text);
    assert_exit(run("encode", "--ckpt", cvae, "--data", data, "--split", "train", "-o",
                    csv, NULL), 0);
    tu_assert_contains(out_text, "300 images, 4 latent dimensions");

    /* Scores: per image, and they average to eval's test loss. */
    in_dir(csv, sizeof csv, "scores.csv");
    assert_exit(run("score", "--ckpt", vae2, "--data", data, "-o", csv, NULL), 0);
    text = (char *)tu_read_file(csv, NULL);
    assert_true(!strncmp(text, "index,label,score,rec,kl\n", 25));
    double sum = 0.0;
    size_t n = 0;
    for (char *line = strchr(text, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        double v[5];
        assert_int_equal(sscanf(line, "%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3],
                                &v[4]), 5);
        assert_true(v[0] == (double)n && fabs(v[2] - v[3] - v[4]) < 1e-4);
        sum += v[2];
        n++;
    }
    free(text);
    assert_int_equal(n, CLI_N_TEST);
    assert_exit(run("eval", "--ckpt", vae2, "--data", data, "--json", NULL), 0);
    printf("  mean score %.5f, eval's test loss %.5f\n", sum / (double)n,
           json_num(out_text, "test_loss"));
    assert_true(fabs(sum / (double)n - json_num(out_text, "test_loss")) < 1e-3);

    in_dir(png, sizeof png, "worst.png");
    assert_exit(run("score", "--ckpt", vae2, "--data", data, "--top", "12", "-o", png, NULL), 0);
    assert_png_size(png, 8 * 30 + 2, 2 * 30 + 2);
    tu_assert_contains(out_text, "the 12 highest-scoring of 100 images");
    check_top(csv, png, 12);
}

/* Reads a CSV written by vae (a header, then n rows): columns first to
 * first + m - 1 of each row into v (n x m), column 1 (the label) into
 * labels. */
static void read_csv_columns(const char *path, size_t n, size_t first, size_t m, float *v,
                             uint8_t *labels)
{
    char *text = (char *)tu_read_file(path, NULL);
    const char *line = strchr(text, '\n');
    for (size_t i = 0; i < n; i++) {
        if (!line || !line[1])
            fail_msg("%s: %zu rows, expected %zu", path, i, n);
        const char *p = line + 1;
        for (size_t col = 0; col < first + m; col++) {
            char *end;
            double x = strtod(p, &end);
            if (end == p)
                fail_msg("%s: row %zu, column %zu is not a number", path, i, col);
            if (col == 1)
                labels[i] = (uint8_t)x;
            if (col >= first)
                v[i * m + col - first] = (float)x;
            p = end + 1;
        }
        line = strchr(line + 1, '\n');
    }
    free(text);
}

/* In the child: no gnuplot on PATH. */
static void no_gnuplot(void)
{
    setenv("PATH", "/nonexistent-vae-test-family", 1);
}

static void test_manifold(void **state)
{
    (void)state;
    char png[160], csv[160], lat[160];
    in_dir(png, sizeof png, "manifold.png");
    in_dir(csv, sizeof csv, "manifold.csv");
    assert_exit(run("manifold", "--ckpt", vae2, "--data", data, "-o", png, NULL), 0);
    assert_png_size(png, 20 * 30 + 2, 20 * 30 + 2);
    assert_exit(run("manifold", "--ckpt", vae2, "--data", data, "--n", "4", "-o", png, NULL), 0);
    assert_png_size(png, 4 * 30 + 2, 4 * 30 + 2);
    assert_false(tu_exists(csv)); /* the grid has no CSV */
    /* More than 2 dimensions: the latent map, the test set's posterior
     * means on their first two principal components, drawn by gnuplot,
     * and its CSV beside it. */
    assert_exit(run("manifold", "--ckpt", cvae, "--data", data, "-o", png, NULL), 0);
    assert_png_size(png, SHOW_MAP_W, SHOW_MAP_H);
    printf("  %s", out_text);
    tu_assert_contains(out_text, "manifold.csv (posterior means of 100 test images on their "
                                 "first two principal components: ");
    tu_assert_contains(out_text, "of the 4-D latent's variance)");
    char *map_out = strdup(out_text);
    /* The CSV and the percentages are the library's PCA of the means that
     * vae encode writes (to 6 digits, hence the tolerance). */
    enum { N = CLI_N_TEST, Z = 4 };
    float mu[N * Z], want[N * 2], got[N * 2];
    uint8_t labels[N], got_labels[N];
    in_dir(lat, sizeof lat, "manifold-latents.csv");
    assert_exit(run("encode", "--ckpt", cvae, "--data", data, "-o", lat, NULL), 0);
    read_csv_columns(lat, N, 2, Z, mu, labels);
    err_msg err;
    pca *p = pca_fit(mu, N, Z, 2, &err);
    if (!p)
        fail_msg("%s", err.text);
    assert_int_equal(pca_project(p, mu, N, want, &err), 0);
    read_csv_columns(csv, N, 2, 2, got, got_labels);
    double worst = 0.0;
    for (size_t i = 0; i < N * 2; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]));
    printf("  the CSV against pca_fit of encode's means: largest difference %.3g\n", worst);
    assert_true(worst < 1e-3);
    assert_memory_equal(got_labels, labels, N);
    char pct[80];
    snprintf(pct, sizeof pct, "components: %.1f%% and %.1f%% of", 100.0 * pca_explained(p, 0),
             100.0 * pca_explained(p, 1));
    tu_assert_contains(map_out, pct);
    free(map_out);
    pca_free(p);

    /* No gnuplot: an error naming it and how to install it; nothing
     * written (the picture is the command's output). */
    in_dir(png, sizeof png, "nognuplot.png");
    assert_exit(run_with(no_gnuplot, "manifold", "--ckpt", cvae, "--data", data, "-o", png,
                         NULL), 1);
    tu_assert_contains(err_text, "the latent map is drawn by gnuplot, which is not on "
                                 "PATH: install it with scripts/deps.sh, or apt-get install "
                                 "gnuplot-nox");
    in_dir(csv, sizeof csv, "nognuplot.csv");
    assert_false(tu_exists(png));
    assert_false(tu_exists(csv));

    /* A 1-D latent has neither a grid nor two components. */
    char out[160], one[160];
    in_dir(out, sizeof out, "one-out");
    in_dir(one, sizeof one, "one.bin");
    assert_exit(run("train", SMALL, "--epochs", "1", "--latent", "1", "--ckpt", one, "--out",
                    out, NULL), 0);
    assert_exit(run("manifold", "--ckpt", one, "--data", data, "-o", png, NULL), 1);
    tu_assert_contains(err_text, "has a 1-D latent space");
    assert_false(tu_exists(png));
}

static void test_importance_weighted(void **state)
{
    (void)state;
    double iw[3];
    const char *ks[3] = {"1", "10", "100"};
    double elbo = 0.0;
    for (int i = 0; i < 3; i++) {
        assert_exit(run("eval", "--ckpt", vae2, "--data", data, "--iw", ks[i], "--json",
                        NULL), 0);
        iw[i] = json_num(out_text, "iw_nll");
        elbo = json_num(out_text, "test_loss");
        assert_true(json_num(out_text, "iw") == atof(ks[i]));
    }
    printf("  -ELBO %.3f, IW K=1 %.3f, K=10 %.3f, K=100 %.3f\n", elbo, iw[0], iw[1], iw[2]);
    assert_true(fabs(iw[0] - elbo) < 0.02 * elbo);
    assert_true(iw[1] < iw[0] && iw[2] < iw[1]);
    assert_exit(run("eval", "--ckpt", vae2, "--data", data, "--iw", "10", NULL), 0);
    tu_assert_contains(out_text, "importance-weighted bound, K = 10: ");
    /* The bench runs and reports; its speed is for scripts/bench.sh (a
     * ratio of two times on this tiny set moves with the machine's load:
     * 0.35 to 22 was seen with other work running). */
    assert_exit(run("bench", "--ckpt", vae2, "--data", data, "--iw", "5", "--json", NULL), 0);
    double ratio = json_num(out_text, "ratio");
    assert_true(isfinite(ratio) && ratio > 0.0);
    assert_true(json_num(out_text, "sgemm_floor_thread_seconds") > 0.0);
    assert_true(json_num(out_text, "iw_nll") > 0.0);
    /* What bench --iw would ignore is refused: training options, and the
     * binarization of a checkpoint's model. */
    assert_exit(run("bench", "--ckpt", vae2, "--data", data, "--iw", "5", "--binarize",
                    "dynamic", NULL), 2);
    tu_assert_contains(err_text, "--binarize: bench --iw --ckpt uses the binarization the "
                                 "model in");
    assert_exit(run("bench", "--ckpt", vae2, "--data", data, "--iw", "5", "--lr", "0.1",
                    NULL), 2);
    tu_assert_contains(err_text, "--lr: bench --iw times the bound of a model, and trains "
                                 "nothing");
    assert_exit(run("eval", "--ckpt", vae2, "--data", data, "--iw", "0", NULL), 2);
}

/* The convolutional VAE (small channels: the test's time), and every
 * command on its checkpoint. */
static void test_conv(void **state)
{
    (void)state;
    char out[160], ckpt[160], ckpt2[160], png[160], csv[160];
    in_dir(out, sizeof out, "conv-out");
    in_dir(ckpt, sizeof ckpt, "conv.bin");
    in_dir(ckpt2, sizeof ckpt2, "conv2.bin");
#define CONV "--data", data, "--arch", "conv", "--hidden", "4,8,16", "--batch", "50", \
             "--lr", "0.003", "--threads", "2", "--out", out
    assert_exit(run("train", CONV, "--latent", "4", "--likelihood", "gaussian", "--beta",
                    "0.1", "--epochs", "3", "--json", "--ckpt", ckpt, NULL), 0);
    const char *l = last_line();
    printf("  %s\n", l);
    double train_test = json_num(l, "test_loss"); /* l dies with the next run */
    assert_true(isfinite(train_test));
    assert_png_size(strcat(strcpy(png, out), "/sampled-3.png"), 242, 482);
    ckpt_data d;
    read_ckpt(ckpt, &d);
    assert_int_equal(d.cfg.arch, MODEL_ARCH_CONV);
    assert_int_equal(d.cfg.act, MODEL_ACT_LEAKY);
    assert_int_equal(d.cfg.n_hidden, 3);
    ckpt_data_free(&d);

    in_dir(png, sizeof png, "conv-sample.png");
    assert_exit(run("sample", "--ckpt", ckpt, "--n", "16", "-o", png, NULL), 0);
    assert_png_size(png, 242, 62);
    assert_exit(run("reconstruct", "--ckpt", ckpt, "--data", data, "--n", "8", "-o", png,
                    NULL), 0);
    assert_png_size(png, 242, 62);
    assert_exit(run("interpolate", "--ckpt", ckpt, "--data", data, "-o", png, NULL), 0);
    assert_png_size(png, 10 * 30 + 2, 32);
    assert_exit(run("manifold", "--ckpt", ckpt, "--data", data, "-o", png, NULL), 0);
    assert_png_size(png, SHOW_MAP_W, SHOW_MAP_H);
    in_dir(csv, sizeof csv, "conv-latents.csv");
    assert_exit(run("encode", "--ckpt", ckpt, "--data", data, "-o", csv, NULL), 0);
    tu_assert_contains(out_text, "100 images, 4 latent dimensions");
    in_dir(csv, sizeof csv, "conv-scores.csv");
    assert_exit(run("score", "--ckpt", ckpt, "--data", data, "-o", csv, NULL), 0);
    /* eval matches train's last test loss (running BatchNorm statistics) */
    assert_exit(run("eval", "--ckpt", ckpt, "--data", data, "--iw", "5", "--json", NULL), 0);
    printf("  eval: %s", out_text);
    assert_true(fabs(json_num(out_text, "test_loss") - train_test) < 1e-3 * fabs(train_test));
    assert_true(json_num(out_text, "iw_nll") < json_num(out_text, "test_loss") + 1.0);

    /* A 2-D latent: the manifold grid. */
    assert_exit(run("train", CONV, "--latent", "2", "--epochs", "1", "--ckpt", ckpt2, NULL), 0);
    assert_exit(run("manifold", "--ckpt", ckpt2, "--data", data, "--n", "5", "-o", png, NULL), 0);
    assert_png_size(png, 5 * 30 + 2, 5 * 30 + 2);

    /* Resume: 1 + 1 epochs end bit-identical to 2, BatchNorm's running
     * averages included. */
    char a[160], b[160];
    in_dir(a, sizeof a, "conv-straight.bin");
    in_dir(b, sizeof b, "conv-split.bin");
    assert_exit(run("train", CONV, "--latent", "3", "--epochs", "2", "--ckpt", a, NULL), 0);
    assert_exit(run("train", CONV, "--latent", "3", "--epochs", "1", "--ckpt", b, NULL), 0);
    assert_exit(run("train", "--data", data, "--out", out, "--threads", "2", "--epochs", "2",
                    "--resume", "--ckpt", b, NULL), 0);
    tu_assert_same_file(a, b);
#undef CONV
    /* Not conditional, and nothing but square images that pad. */
    assert_exit(run("train", "--data", data, "--arch", "conv", "--conditional", NULL), 2);
    tu_assert_contains(err_text, "the conv VAE is not conditional");
}

/* The metrics of a resumed run: epochs in order, each once. */
static void test_metrics_resume(void **state)
{
    (void)state;
    char out[160], ckpt[160], csv[160];
    in_dir(out, sizeof out, "metrics-out");
    in_dir(ckpt, sizeof ckpt, "metrics.bin");
    in_dir(csv, sizeof csv, "my-metrics.csv");
    assert_exit(run("train", SMALL, "--latent", "2", "--epochs", "2", "--ckpt", ckpt,
                    "--out", out, "--metrics", csv, NULL), 0);
    assert_exit(run("train", "--data", data, "--epochs", "3", "--resume", "--ckpt", ckpt,
                    "--out", out, "--metrics", csv, NULL), 0);
    char *text = (char *)tu_read_file(csv, NULL);
    const char *p = strchr(text, '\n') + 1;
    for (int e = 1; e <= 3; e++) {
        assert_int_equal(atoi(p), e);
        p = strchr(p, '\n') + 1;
    }
    assert_string_equal(p, "");
    free(text);
    char png[160];
    in_dir(png, sizeof png, "my-metrics.png");
    assert_png_size(png, 800, 500);
}

/* The training controls through the binary: reported each epoch, stored,
 * shown by info, kept on resume; the best epoch's model beside the run's. */
static void test_training_controls(void **state)
{
    (void)state;
    char out[160], ckpt[160], best[160];
    in_dir(out, sizeof out, "ctl-out");
    in_dir(ckpt, sizeof ckpt, "ctl.bin");
    in_dir(best, sizeof best, "ctl.best.bin");
    assert_exit(run("train", SMALL, "--epochs", "2", "--latent", "3", "--schedule", "staged",
                    "--kl-warmup", "2", "--init", "glorot", "--adam-eps", "1e-4", "--valid",
                    "50", "--json", "--ckpt", ckpt, "--out", out, NULL), 0);
    const char *l = last_line();
    assert_true(fabs(json_num(l, "lr") - 5e-3 * pow(10.0, -1.0 / 7.0)) < 1e-9);
    assert_true(json_num(l, "kl_factor") > 0.5 && json_num(l, "kl_factor") < 1.0);
    assert_true(json_num(l, "valid_loss") > 0.0);
    double best_epoch = json_num(l, "best_epoch");
    assert_true(best_epoch == 1.0 || best_epoch == 2.0);
    double rec = json_num(l, "train_rec"), kl = json_num(l, "train_kl");
    /* The objective of the epoch's steps, each with its own warm-up factor
     * below 1: between rec alone and the whole negative ELBO. */
    double objective = json_num(l, "train_objective");
    assert_true(objective > rec && objective < rec + kl);
    assert_true(tu_exists(best));
    assert_exit(run("info", "--ckpt", ckpt, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"schedule\":\"staged\"");
    tu_assert_contains(out_text, "\"kl_warmup\":2");
    tu_assert_contains(out_text, "\"adam_eps\":0.0001");
    tu_assert_contains(out_text, "\"init\":\"glorot\"");
    tu_assert_contains(out_text, "\"valid\":50");
    assert_exit(run("info", "--ckpt", best, NULL), 0);
    tu_assert_contains(out_text, "validate  50 images held out");
    /* A resume keeps them; asking for others is refused. */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--schedule", "cosine", NULL), 2);
    tu_assert_contains(err_text, "--schedule given other than the run being resumed's");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--valid", "49", NULL), 2);
    tu_assert_contains(err_text, "--valid given other than the run being resumed's");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--latent", "4", NULL), 2);
    tu_assert_contains(err_text, "--latent given other than the run being resumed's");
    /* An option of a schedule the run does not have is not compared with
     * a value it never had: it is named as not applying. */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--lr-every", "10", NULL), 2);
    tu_assert_contains(err_text, "--lr-every applies to --schedule step, which the run "
                                 "being resumed does not have (drop --lr-every)");
    /* The same values said again are fine (the step schedule's own defaults
     * do not count against a staged run), a model option alone too: the
     * model options not given are not compared with their defaults. */
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--json", "--kl-warmup", "2", "--adam-eps", "1e-4",
                    "--schedule", "staged", "--latent", "3", NULL), 0);
    assert_true(fabs(json_num(last_line(), "lr") - 5e-3 * pow(10.0, -1.0 / 7.0)) < 1e-9);
    assert_true(json_num(last_line(), "kl_factor") == 1.0);
    /* Everything held out, or a batch larger than what is left: usage errors. */
    assert_exit(run("train", SMALL, "--valid", "300", "--ckpt", ckpt, "--out", out,
                    "--force", NULL), 2);
    tu_assert_contains(err_text, "--valid 300: the training set has 300 images");
    /* A cosine run reaches rate 0 at the --epochs it began with: resuming
     * past that is refused (it would not train), up to it is fine. */
    assert_exit(run("train", SMALL, "--epochs", "2", "--schedule", "cosine", "--ckpt", ckpt,
                    "--out", out, "--force", NULL), 0);
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", NULL), 2);
    tu_assert_contains(err_text, "--epochs 3: the run's cosine schedule reaches rate 0 at "
                                 "epoch 2");
}

/* --objective and --k through the binary, for the MLP and the conv VAE:
 * stored, shown by info; the objective reported is the IW bound's, below
 * the negative ELBO; the test loss is still eval's one-draw ELBO; a resume
 * keeps them. */
static void test_objectives(void **state)
{
    (void)state;
    char out[160], ckpt[160];
    in_dir(out, sizeof out, "obj-out");
    in_dir(ckpt, sizeof ckpt, "obj.bin");
    assert_exit(run("train", SMALL, "--epochs", "2", "--latent", "3", "--objective", "iwae",
                    "--k", "4", "--json", "--ckpt", ckpt, "--out", out, NULL), 0);
    const char *l = last_line();
    double loss = json_num(l, "train_loss"), objective = json_num(l, "train_objective");
    printf("  iwae k=4: -ELBO %.4f, objective %.4f\n", loss, objective);
    assert_true(objective < loss);
    double train_test = json_num(l, "test_loss");
    assert_exit(run("eval", "--ckpt", ckpt, "--data", data, "--json", NULL), 0);
    assert_true(fabs(json_num(out_text, "test_loss") - train_test) < 1e-5);
    assert_exit(run("info", "--ckpt", ckpt, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"objective\":\"iwae\",\"k\":4");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--k", "5", NULL), 2);
    tu_assert_contains(err_text, "--k given other than the run being resumed's");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "3",
                    "--resume", "--objective", "iwae", "--k", "4", NULL), 0);
    /* The conv VAE too: the IW bound over 3 draws (the decoder on 3 rows an
     * image), stored, shown by info, and resumed: 1 + 1 epochs end
     * bit-identical to 2. */
    char straight[160], split[160];
    in_dir(straight, sizeof straight, "obj-conv-straight.bin");
    in_dir(split, sizeof split, "obj-conv-split.bin");
#define CONV_IW "--data", data, "--arch", "conv", "--hidden", "4,8,16", "--latent", "3", \
                "--batch", "50", "--threads", "2", "--out", out, "--objective", "iwae", \
                "--k", "3"
    assert_exit(run("train", CONV_IW, "--epochs", "1", "--json", "--ckpt", split, NULL), 0);
    l = last_line();
    loss = json_num(l, "train_loss"), objective = json_num(l, "train_objective");
    printf("  conv iwae k=3: -ELBO %.4f, objective %.4f\n", loss, objective);
    assert_true(isfinite(objective) && objective < loss);
    assert_exit(run("info", "--ckpt", split, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"arch\":\"conv\"");
    tu_assert_contains(out_text, "\"objective\":\"iwae\",\"k\":3");
    assert_exit(run("train", "--data", data, "--out", out, "--threads", "2", "--epochs", "2",
                    "--resume", "--ckpt", split, NULL), 0);
    assert_exit(run("train", CONV_IW, "--epochs", "2", "--ckpt", straight, NULL), 0);
    tu_assert_same_file(straight, split);
#undef CONV_IW
    /* Usage errors: a KL weight for the IW bound, k out of range. */
    assert_exit(run("train", SMALL, "--objective", "iwae", "--beta", "0.5", "--ckpt", ckpt,
                    "--out", out, "--force", NULL), 2);
    tu_assert_contains(err_text, "no KL weight");
    assert_exit(run("train", "--data", data, "--k", "5001", NULL), 2);
    tu_assert_contains(err_text, "--k: 5001 is too large");
}

/* Two stochastic layers (--latent Z1,Z2 --hidden W/V): trained with each
 * objective, shown by info, evaluated (the one-draw ELBO, the IW bound,
 * the active units), sampled ancestrally, reconstructed, resumed bit for
 * bit, encoded, exported; the command that does not take such a model yet
 * (traverse) says so; the options that do not make one are usage errors. */
static void test_two_stochastic_layers(void **state)
{
    (void)state;
    char out[160], ckpt[160], straight[160], png[192];
    in_dir(out, sizeof out, "two-out");
    in_dir(ckpt, sizeof ckpt, "two.bin");
    in_dir(straight, sizeof straight, "two-straight.bin");
#define TWO "--data", data, "--batch", "30", "--lr", "0.005", "--threads", "2", \
            "--latent", "4,2", "--hidden", "48/16", "--act", "tanh", "--out", out
    assert_exit(run("train", TWO, "--epochs", "1", "--json", "--ckpt", ckpt, NULL), 0);
    double test1 = json_num(last_line(), "test_loss");
    assert_true(isfinite(test1) && test1 > 0.0);
    assert_exit(run("info", "--ckpt", ckpt, NULL), 0);
    tu_assert_contains(out_text, "hidden 48/16, latent 4,2");
    assert_exit(run("info", "--ckpt", ckpt, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"hidden\":[48],\"latent\":4");
    tu_assert_contains(out_text, "\"latent2\":2,\"hidden2\":[16]");
    /* Resumed to 2 epochs: the straight run's bytes. */
    assert_exit(run("train", "--data", data, "--out", out, "--threads", "2", "--epochs", "2",
                    "--resume", "--ckpt", ckpt, NULL), 0);
    assert_exit(run("train", TWO, "--epochs", "2", "--json", "--ckpt", straight, NULL), 0);
    tu_assert_same_file(straight, ckpt);
    double test2 = json_num(last_line(), "test_loss");
    /* The model is the run's: another second layer, or none, is refused. */
    assert_exit(run("train", "--data", data, "--out", out, "--epochs", "3", "--resume",
                    "--ckpt", ckpt, "--latent", "4,3", "--hidden", "48/16", NULL), 2);
    tu_assert_contains(err_text, "--latent given other than");
    assert_exit(run("train", "--data", data, "--out", out, "--epochs", "3", "--resume",
                    "--ckpt", ckpt, "--latent", "4", "--hidden", "48", NULL), 2);
    tu_assert_contains(err_text, "--hidden given other than");
    assert_exit(run("train", "--data", data, "--out", out, "--epochs", "3", "--resume",
                    "--ckpt", ckpt, "--latent", "4,2", "--hidden", "48/17", NULL), 2);
    tu_assert_contains(err_text, "--hidden given other than");
    assert_exit(run("eval", "--ckpt", ckpt, "--data", data, "--json", "--iw", "20",
                    "--active-units", NULL), 0);
    assert_true(fabs(json_num(out_text, "test_loss") - test2) < 1e-5);
    double iw = json_num(out_text, "iw_nll");
    printf("  two layers, 2 epochs: test -ELBO %.3f, IW bound (K = 20) %.3f\n", test2, iw);
    assert_true(isfinite(iw) && iw < test2); /* the bound is the tighter */
    tu_assert_contains(out_text, "\"latent\":[4,2]");
    tu_assert_contains(out_text, "\"active_units\":[");
    in_dir(png, sizeof png, "two-sample.png");
    assert_exit(run("sample", "--ckpt", ckpt, "--n", "16", "-o", png, NULL), 0);
    assert_png_size(png, 242, 62); /* 16 draws, 8 a row */
    in_dir(png, sizeof png, "two-recon.png");
    assert_exit(run("reconstruct", "--ckpt", ckpt, "--data", data, "--n", "4", "-o", png,
                    NULL), 0);
    /* The IW bound and every other objective train it too. */
    assert_exit(run("train", TWO, "--epochs", "1", "--objective", "iwae", "--k", "3",
                    "--json", "--ckpt", straight, "--force", NULL), 0);
    const char *l = last_line();
    assert_true(json_num(l, "train_objective") < json_num(l, "train_loss"));
    /* encode: each layer's columns, named by layer; h2's at h1's mean. */
    char csv[192];
    in_dir(csv, sizeof csv, "two-codes.csv");
    assert_exit(run("encode", "--ckpt", ckpt, "--data", data, "-o", csv, NULL), 0);
    char *text = (char *)tu_read_file(csv, NULL);
    tu_assert_contains(text, "index,label,h1_mu_0,h1_mu_1,h1_mu_2,h1_mu_3,h1_logvar_0,"
                             "h1_logvar_1,h1_logvar_2,h1_logvar_3,h2_mu_0,h2_mu_1,"
                             "h2_logvar_0,h2_logvar_1\n");
    size_t commas = 0;
    for (const char *p = strchr(text, '\n') + 1; *p && *p != '\n'; p++)
        commas += *p == ',';
    assert_int_equal(commas, 1 + 2 * 4 + 2 * 2); /* index, label, 12 values */
    free(text);
    /* probe and manifold take either layer's means (--layer); h2's are 2-D. */
    assert_exit(run("probe", "--ckpt", ckpt, "--data", data, "--layer", "2", "--json", NULL),
                0);
    assert_true(json_num(out_text, "accuracy") > 0.0);
    in_dir(png, sizeof png, "two-map.png");
    assert_exit(run("manifold", "--ckpt", ckpt, "--data", data, "--layer", "2", "-o", png,
                    NULL), 0);
    tu_assert_contains(out_text, "of the 2-D latent's variance");
    /* A 2-D h1 has no prior grid: the run's page draws the map, as vae
     * manifold does, and manifold's --n (the grid's side) is refused. */
    char out22[160], ckpt22[160], file[192];
    in_dir(out22, sizeof out22, "two22-out");
    in_dir(ckpt22, sizeof ckpt22, "two22.bin");
    assert_exit(run("train", "--data", data, "--batch", "30", "--threads", "1", "--latent",
                    "2,2", "--hidden", "16/8", "--epochs", "1", "--ckpt", ckpt22, "--out",
                    out22, NULL), 0);
    assert_null(strstr(err_text, "warning"));
    snprintf(file, sizeof file, "%s/latent.png", out22);
    assert_png_size(file, SHOW_MAP_W, SHOW_MAP_H);
    snprintf(file, sizeof file, "%s/index.html", out22);
    text = (char *)tu_read_file(file, NULL);
    tu_assert_contains(text, "posterior means on their first two principal components");
    free(text);
    assert_exit(run("manifold", "--ckpt", ckpt22, "--data", data, "--n", "5", "-o", png,
                    NULL), 2);
    tu_assert_contains(err_text, "--n sets the side of the grid of a 2-D latent");
    /* A 1-D layer has no map; the message says which layer. */
    char ckpt41[160];
    in_dir(ckpt41, sizeof ckpt41, "two41.bin");
    assert_exit(run("train", "--data", data, "--batch", "30", "--threads", "1", "--latent",
                    "4,1", "--hidden", "16/8", "--epochs", "1", "--ckpt", ckpt41, "--out",
                    out22, "--force", NULL), 0);
    assert_exit(run("manifold", "--ckpt", ckpt41, "--data", data, "--layer", "2", "-o", png,
                    NULL), 1);
    tu_assert_contains(err_text, "two41.bin has a 1-D h2:");
    assert_exit(run("manifold", "--ckpt", ckpt22, "--data", data, "-o", png, NULL), 0);
    tu_assert_contains(out_text, "of the 2-D latent's variance");
    assert_exit(run("probe", "--ckpt", vae2, "--data", data, "--layer", "2", NULL), 2);
    tu_assert_contains(err_text, "--layer 2: the model has one stochastic layer");
    /* export takes it (test_export and export_torch check the file). */
    char st[192];
    in_dir(st, sizeof st, "two.safetensors");
    assert_exit(run("export", "--ckpt", ckpt, "-o", st, NULL), 0);
    tu_assert_contains(out_text, "wrote");
    assert_true(tu_exists(st));
    /* traverse moves along h1 (each image's prior p(h1|h2)), or with --layer
     * 2 along h2 (N(0, I)), pictured through p(h1|h2): each layer's
     * dimensions ranked by their KL. */
    in_dir(png, sizeof png, "two-traverse.png");
    assert_exit(run("traverse", "--ckpt", ckpt, "--data", data, "-o", png, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"latent\":4,\"rows\":4");
    assert_png_size(png, 11 * 28 + 12 * 2, 4 * 28 + 5 * 2);
    /* The text ranking gives each dimension's step unit too: the JSON's. */
    char unit[32];
    snprintf(unit, sizeof unit, " %9.4f\n", json_num(strstr(out_text, "\"rank\":1,"), "unit"));
    assert_exit(run("traverse", "--ckpt", ckpt, "--data", data, "-o", png, NULL), 0);
    tu_assert_contains(out_text, "sd of means  prior sd\n");
    tu_assert_contains(out_text, unit);
    assert_exit(run("traverse", "--ckpt", ckpt, "--data", data, "-o", png, "--json",
                    "--layer", "2", NULL), 0);
    tu_assert_contains(out_text, "\"latent\":2,\"rows\":2");
    assert_png_size(png, 11 * 28 + 12 * 2, 2 * 28 + 3 * 2);

    /* DReG through the chain: trains, and the checkpoint says so. */
    assert_exit(run("train", TWO, "--epochs", "1", "--objective", "iwae", "--k", "3",
                    "--estimator", "dreg", "--json", "--ckpt", straight, "--force", NULL), 0);
    assert_true(isfinite(json_num(last_line(), "train_objective")));
    assert_exit(run("info", "--ckpt", straight, "--json", NULL), 0);
    tu_assert_contains(out_text, "\"estimator\":\"dreg\"");
    /* Resumed, it may be given its own estimator again, not another. */
    assert_exit(run("train", TWO, "--epochs", "2", "--estimator", "dreg", "--ckpt", straight,
                    "--resume", NULL), 0);
    assert_exit(run("train", TWO, "--epochs", "3", "--estimator", "stl", "--ckpt", straight,
                    "--resume", NULL), 2);
    tu_assert_contains(err_text, "--estimator given other than the run being resumed's");
#undef TWO
    /* Options that do not make one. */
    assert_exit(run("train", "--data", data, "--latent", "4,2", NULL), 2);
    tu_assert_contains(err_text, "need the second's hidden widths after a slash");
    assert_exit(run("train", "--data", data, "--hidden", "48/16", NULL), 2);
    tu_assert_contains(err_text, "give --latent Z1,Z2");
    assert_exit(run("train", "--data", data, "--latent", "4,2", "--hidden", "48/16",
                    "--conditional", NULL), 2);
    tu_assert_contains(err_text, "without --conditional");
    assert_exit(run("train", "--data", data, "--arch", "conv", "--latent", "4,2", "--hidden",
                    "8/4", NULL), 2);
    tu_assert_contains(err_text, "two stochastic layers are for the MLP");
    assert_exit(run("bench", "--data", data, "--latent", "4,2", "--hidden", "48/16",
                    "--plan", "units", "--threads", "2", "--epochs", "1", NULL), 2);
    tu_assert_contains(err_text, "the units plan (threads splitting each layer) is for the "
                                 "MLP with one stochastic layer");
    assert_exit(run("train", "--data", data, "--latent", "4,2,1", NULL), 2);
    tu_assert_contains(err_text, "--latent: at most 2 stochastic layers");
    assert_exit(run("train", "--data", data, "--hidden", "48/16/8", "--latent", "4,2", NULL),
                2);
    tu_assert_contains(err_text, "is not a list of widths");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_likelihoods_and_beta),
        cmocka_unit_test(test_training_controls),
        cmocka_unit_test(test_objectives),
        cmocka_unit_test(test_binarize_and_noise),
        cmocka_unit_test(test_conditional_sampling),
        cmocka_unit_test(test_interpolate),
        cmocka_unit_test(test_traverse),
        cmocka_unit_test(test_encode_and_score),
        cmocka_unit_test(test_manifold),
        cmocka_unit_test(test_importance_weighted),
        cmocka_unit_test(test_metrics_resume),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_two_stochastic_layers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
