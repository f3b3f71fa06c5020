/* test_show.c - the pictures: grid sizes, what each tile holds, the
 * manifold's quantile grid, the scatter, and their errors. */
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
#include "show.h"
#include "testutil.h"

static char dir[64];
static vae_model m2, mc; /* a 2-D latent model; a conditional one */
static vae_acts a2, ac;
static idx_set set;

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/vae-test-show-XXXXXX");
    if (tu_mkdtemp(dir))
        return -1;
    err_msg err;
    vae_config c2 = {784, 1, {16}, 2, VAE_ACT_RELU, VAE_LIK_CB, 0, VAE_ARCH_MLP};
    vae_config cc = {784, 1, {16}, 4, VAE_ACT_TANH, VAE_LIK_BERNOULLI, 10, VAE_ARCH_MLP};
    if (vae_init(&m2, &c2, &err) || vae_init(&mc, &cc, &err) ||
        vae_acts_init(&a2, &c2, 7, &err) || vae_acts_init(&ac, &cc, 7, &err))
        return -1;
    rng_state r;
    rng_seed(&r, 9);
    vae_init_params(&m2, &r);
    vae_init_params(&mc, &r);
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
    vae_free(&m2);
    vae_free(&mc);
    vae_acts_free(&a2);
    vae_acts_free(&ac);
    idx_free(&set);
    tu_remove_tree(dir);
    return 0;
}

static uint8_t *read_png(const char *path, size_t w, size_t h)
{
    uint8_t *px;
    size_t pw, ph;
    err_msg err;
    if (png_grid_read_gray(path, &px, &pw, &ph, &err))
        fail_msg("%s", err.text);
    if (pw != w || ph != h)
        fail_msg("%s is %zux%zu, expected %zux%zu", path, pw, ph, w, h);
    return px;
}

/* The conditional prior: z = mu_p(y) + sigma_p(y) eps, computed by hand
 * from the prior network's output. */
static void test_prior_z(void **state)
{
    (void)state;
    enum { N = 10 };
    float eps[N * 4], z[N * 4];
    uint8_t labels[N];
    show_prior_draws(eps, N, 4, 3);
    for (int i = 0; i < N; i++)
        labels[i] = (uint8_t)(9 - i);
    show_prior_z(&mc, &ac, eps, labels, N, z); /* in batches of 7 */
    memcpy(ac.y, labels, N < 7 ? N : 7);
    vae_prior(&mc, &ac, 7);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 4; j++) {
            float want = vae_prior_mu(&mc, &ac, i)[j] +
                         expf(0.5f * vae_prior_logvar(&mc, &ac, i)[j]) * eps[i * 4 + j];
            assert_true(fabsf(z[i * 4 + j] - want) < 1e-6f);
        }
    /* Unconditional: z is the noise. */
    float z2[N * 2];
    show_prior_z(&m2, &a2, eps, NULL, N, z2);
    assert_memory_equal(z2, eps, sizeof z2);
}

static void test_grids(void **state)
{
    (void)state;
    char path[160];
    err_msg err;
    float z[23 * 4];
    uint8_t labels[23];
    show_prior_draws(z, 23, 4, 1);
    for (int i = 0; i < 23; i++)
        labels[i] = (uint8_t)(i % 10);
    tu_join(path, sizeof path, dir, "decode.png");
    assert_int_equal(show_decode_png(&mc, &ac, z, labels, 23, 10, path, &err), 0);
    free(read_png(path, 10 * 30 + 2, 3 * 30 + 2));

    tu_join(path, sizeof path, dir, "recon.png");
    assert_int_equal(show_recon_png(&m2, &a2, &set, NULL, 9, path, &err), 0);
    uint8_t *px = read_png(path, 8 * 30 + 2, 3 * 30 + 2);
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
    px = read_png(path, 7 * 30 + 2, 32);
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
    uint8_t *px = read_png(path, 5 * 30 + 2, 5 * 30 + 2);
    /* The centre tile decodes z = (0, 0): Phi^-1(1/2) = 0 exactly. */
    float zero[2] = {0.0f, 0.0f}, mean[784];
    memcpy(a2.z, zero, sizeof zero);
    vae_decode(&m2, &a2, 1);
    vae_mean(&m2, mean, vae_logits(&m2, &a2), 784);
    for (size_t y = 0; y < 28; y++)
        for (size_t x = 0; x < 28; x++) {
            int want = (int)(mean[y * 28 + x] * 255.0f + 0.5f);
            assert_true(abs(px[(2 + 2 * 30 + y) * 152 + 2 + 2 * 30 + x] - want) <= 1);
        }
    free(px);
    assert_int_equal(show_manifold_png(&mc, &ac, 5, 3, path, &err), -1);
    tu_assert_contains(err.text, "needs a 2-D latent space, not 4-D");
}

static void test_scatter(void **state)
{
    (void)state;
    char path[160];
    err_msg err;
    float xy[2 * 12];
    uint8_t labels[12];
    for (int i = 0; i < 12; i++) {
        xy[2 * i] = (float)i - 5.0f;
        xy[2 * i + 1] = 0.5f * (float)i;
        labels[i] = (uint8_t)i; /* 10 and 11 are shown grey */
    }
    xy[2 * 11] = NAN; /* left out */
    tu_join(path, sizeof path, dir, "scatter.png");
    assert_int_equal(show_scatter_png(xy, labels, 12, path, &err), 0);
    free(read_png(path, 640, 680));
    /* One point, or all at one place: still a picture. */
    assert_int_equal(show_scatter_png(xy, labels, 1, path, &err), 0);
    tu_join(path, sizeof path, dir, "nope/scatter.png");
    assert_int_equal(show_scatter_png(xy, labels, 12, path, &err), -1);
    tu_assert_contains(err.text, "does not exist");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prior_z),
        cmocka_unit_test(test_grids),
        cmocka_unit_test(test_manifold),
        cmocka_unit_test(test_scatter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
