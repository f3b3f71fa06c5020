/* test_show.c - the pictures: grid sizes, what each tile holds, the
 * manifold's quantile grid, the latent map, and their errors. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "png_grid.h"
#include "infer.h"
#include "show.h"
#include "testutil.h"

static char dir[64];
static model_net m2, mc; /* a 2-D latent model; a conditional one */
static model_acts a2, ac;
static idx_set set;

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/vae-test-show-XXXXXX");
    if (tu_mkdtemp(dir))
        return -1;
    err_msg err;
    model_config c2 = {784, 1, {16}, 2, MODEL_ACT_RELU, MODEL_LIK_CB, 0, MODEL_ARCH_MLP};
    model_config cc = {784, 1, {16}, 4, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 10, MODEL_ARCH_MLP};
    if (model_init(&m2, &c2, &err) || model_init(&mc, &cc, &err) ||
        model_acts_init(&a2, &c2, 7, &err) || model_acts_init(&ac, &cc, 7, &err))
        return -1;
    rng_state r;
    rng_seed(&r, 9);
    model_init_params(&m2, &r);
    model_init_params(&mc, &r);
    set.n = 20;
    set.rows = set.cols = 28;
    set.images = malloc(20 * 784);
    set.labels = malloc(20);
    for (size_t i = 0; i < 20 * 784; i++)
        set.images[i] = (uint8_t)rng_below(&r, 256);
    for (size_t i = 0; i < 20; i++)
        set.labels[i] = (uint8_t)(i % 10);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    model_free(&m2);
    model_free(&mc);
    model_acts_free(&a2);
    model_acts_free(&ac);
    idx_free(&set);
    tu_remove_tree(dir);
    return 0;
}


/* The conditional prior: z = mu_p(y) + sigma_p(y) eps, computed by hand
 * from the prior network's output. */
static void test_prior_z(void **state)
{
    (void)state;
    enum { N = 10 };
    float eps[N * 4], z[N * 4];
    uint8_t labels[N];
    infer_prior_draws(eps, N, 4, 3);
    for (int i = 0; i < N; i++)
        labels[i] = (uint8_t)(9 - i);
    infer_prior_z(&mc, &ac, eps, labels, N, z); /* in batches of 7 */
    memcpy(ac.y, labels, N < 7 ? N : 7);
    model_prior(&mc, &ac, 7);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 4; j++) {
            float want = model_prior_mu(&mc, &ac, i)[j] +
                         expf(0.5f * model_prior_logvar(&mc, &ac, i)[j]) * eps[i * 4 + j];
            assert_true(fabsf(z[i * 4 + j] - want) < 1e-6f);
        }
    /* Unconditional: z is the noise. */
    float z2[N * 2];
    infer_prior_z(&m2, &a2, eps, NULL, N, z2);
    assert_memory_equal(z2, eps, sizeof z2);
}

static void test_grids(void **state)
{
    (void)state;
    char path[160];
    err_msg err;
    float z[23 * 4];
    uint8_t labels[23];
    infer_prior_draws(z, 23, 4, 1);
    for (int i = 0; i < 23; i++)
        labels[i] = (uint8_t)(i % 10);
    tu_join(path, sizeof path, dir, "decode.png");
    assert_int_equal(show_decode_png(&mc, &ac, z, labels, 23, 10, path, &err), 0);
    free(tu_read_png(path, 10 * 30 + 2, 3 * 30 + 2));

    tu_join(path, sizeof path, dir, "recon.png");
    assert_int_equal(show_recon_png(&m2, &a2, &set, NULL, 9, path, &err), 0);
    uint8_t *px = tu_read_png(path, 8 * 30 + 2, 3 * 30 + 2);
    /* Tile 0 is test image 0 itself. */
    for (size_t y = 0; y < 28; y++)
        for (size_t x = 0; x < 28; x++) {
            int want = set.images[y * 28 + x];
            int got = px[(2 + y) * 242 + 2 + x];
            assert_true(abs(got - want) <= 1);
        }
    free(px);

    /* from, 5 steps, to: one row of 7; the ends are the test images. */
    tu_join(path, sizeof path, dir, "strip.png");
    assert_int_equal(show_interpolate_png(&mc, &ac, &set, NULL, 3, 11, 5, -1, path, &err), 0);
    px = tu_read_png(path, 7 * 30 + 2, 32);
    for (size_t y = 0; y < 28; y++)
        for (size_t x = 0; x < 28; x++) {
            assert_true(abs(px[(2 + y) * 212 + 2 + x] - set.images[3 * 784 + y * 28 + x]) <= 1);
            assert_true(abs(px[(2 + y) * 212 + 6 * 30 + 2 + x] -
                            set.images[11 * 784 + y * 28 + x]) <= 1);
        }
    free(px);
    assert_int_equal(show_interpolate_png(&mc, &ac, &set, NULL, 3, 20, 5, -1, path, &err), -1);
    tu_assert_contains(err.text, "image 20 is not in the test set (20 images)");
}

static void test_manifold(void **state)
{
    (void)state;
    char path[160];
    err_msg err;
    tu_join(path, sizeof path, dir, "manifold.png");
    assert_int_equal(show_manifold_png(&m2, &a2, 5, 0, path, &err), 0);
    uint8_t *px = tu_read_png(path, 5 * 30 + 2, 5 * 30 + 2);
    /* The centre tile decodes z = (0, 0): Phi^-1(1/2) = 0 exactly. */
    float zero[2] = {0.0f, 0.0f}, mean[784];
    memcpy(a2.z, zero, sizeof zero);
    model_decode(&m2, &a2, 1);
    model_mean(&m2, mean, model_logits(&m2, &a2), 784);
    for (size_t y = 0; y < 28; y++)
        for (size_t x = 0; x < 28; x++) {
            int want = (int)(mean[y * 28 + x] * 255.0f + 0.5f);
            assert_true(abs(px[(2 + 2 * 30 + y) * 152 + 2 + 2 * 30 + x] - want) <= 1);
        }
    free(px);
    assert_int_equal(show_manifold_png(&mc, &ac, 5, 3, path, &err), -1);
    tu_assert_contains(err.text, "needs a 2-D latent space, not 4-D");
}

/* The latent map: the CSV's rows to the last bit, the chart gnuplot
 * draws from it (its size; colour where the points are), the CSV beside
 * any name, and a missing folder reported. */
static void test_latent_map(void **state)
{
    (void)state;
    enum { N = 40 };
    char png[160], csv[160];
    err_msg err;
    float xy[2 * N];
    uint8_t labels[N];
    for (int i = 0; i < N; i++) {
        xy[2 * i] = 0.1f * (float)i - 2.0f;
        xy[2 * i + 1] = sinf((float)i);
        labels[i] = (uint8_t)(i < 36 ? i % 10 : 12); /* a label past 9 */
    }
    const double explained[2] = {0.4567, 0.1234};
    tu_join(png, sizeof png, dir, "map.png");
    tu_join(csv, sizeof csv, dir, "map.csv");
    if (show_latent_map(xy, labels, N, explained, "a test's map", csv, png, &err))
        fail_msg("%s", err.text);
    free(tu_read_png(png, SHOW_MAP_W, SHOW_MAP_H));
    char *text = (char *)tu_read_file(csv, NULL), want[64];
    tu_assert_contains(text, "index,label,pc1,pc2\n0,0,-2,0\n1,1,");
    snprintf(want, sizeof want, "\n39,12,%.9g,%.9g\n", (double)xy[78], (double)xy[79]);
    tu_assert_contains(text, want);
    for (int i = 0; i < N; i++) { /* every float read back is the one written */
        const char *row = strstr(text, "\n");
        for (int r = 0; r < i; r++)
            row = strstr(row + 1, "\n");
        unsigned idx, lab;
        float x, y;
        assert_int_equal(sscanf(row + 1, "%u,%u,%f,%f", &idx, &lab, &x, &y), 4);
        assert_true(idx == (unsigned)i && lab == labels[i] && x == xy[2 * i] &&
                    y == xy[2 * i + 1]);
    }
    free(text);

    char *p = show_map_csv_path("out/manifold.png");
    assert_string_equal(p, "out/manifold.csv");
    free(p);
    p = show_map_csv_path("map");
    assert_string_equal(p, "map.csv");
    free(p);

    tu_join(png, sizeof png, dir, "nope/map.png");
    tu_join(csv, sizeof csv, dir, "nope/map.csv");
    assert_int_equal(show_latent_map(xy, labels, N, explained, "t", csv, png, &err), -1);
    tu_assert_contains(err.text, "does not exist");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prior_z),
        cmocka_unit_test(test_grids),
        cmocka_unit_test(test_manifold),
        cmocka_unit_test(test_latent_map),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
