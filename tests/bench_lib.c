/* bench_lib.c - libvae's figures (scripts/bench_lib.sh): the time to load
 * a model, and to score the images of a raw IDX image file through the
 * library with k = 0 (the negative ELBO) and k = K (the bound), each the
 * best of REPS runs, and T threads scoring all of them at once with k = 0
 * (one model shared): images a second. Prints one JSON line.
 *
 *   bench_lib MODEL.bin IMAGES-idx3-ubyte [K [REPS [T]]] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vae.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t be32(const unsigned char *p)
{
    return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

typedef struct job {
    const vae *m;
    const vae_images *im;
    double *score;
    int rc;
} job;

static void *score_all(void *arg)
{
    job *j = arg;
    vae_error err;
    j->rc = vae_score(j->m, j->im, 0, 1, j->score, &err);
    return NULL;
}

/* Seconds T threads take to score all images at once, each its own call
 * on m (-1 on failure). */
static double score_together(const vae *m, const vae_images *im, int T)
{
    pthread_t t[64];
    job j[64];
    double t0 = now();
    for (int i = 0; i < T; i++) {
        j[i] = (job){m, im, malloc(im->n * sizeof(double)), 0};
        if (!j[i].score || pthread_create(&t[i], NULL, score_all, &j[i]))
            return -1.0;
    }
    int rc = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        rc |= j[i].rc;
        free(j[i].score);
    }
    return rc ? -1.0 : now() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lib MODEL.bin IMAGES-idx3-ubyte [K [REPS]]\n");
        return 2;
    }
    size_t K = argc > 3 ? strtoul(argv[3], NULL, 10) : 50;
    int reps = argc > 4 ? atoi(argv[4]) : 3, T = argc > 5 ? atoi(argv[5]) : 2;
    if (T < 1 || T > 64) {
        fprintf(stderr, "bench_lib: T is 1 to 64 threads\n");
        return 2;
    }
    vae_error err;
    vae *m = NULL;
    double load_s = 1e30;
    for (int r = 0; r < reps; r++) {
        vae_free(m);
        double t0 = now();
        if (vae_load(argv[1], &m, &err)) {
            fprintf(stderr, "bench_lib: %s\n", err.message);
            return 1;
        }
        double t = now() - t0;
        load_s = t < load_s ? t : load_s;
    }
    const vae_info *f = vae_describe(m);
    FILE *fp = fopen(argv[2], "rb");
    unsigned char head[16];
    if (!fp || fread(head, 1, 16, fp) != 16 || be32(head) != 0x803 ||
        be32(head + 8) != f->height || be32(head + 12) != f->width) {
        fprintf(stderr, "bench_lib: %s: not a raw idx3 file of the model's images\n", argv[2]);
        return 1;
    }
    size_t n = be32(head + 4);
    unsigned char *px = malloc(n * f->pixels);
    double *score = malloc(n * sizeof *score);
    if (!px || !score || fread(px, 1, n * f->pixels, fp) != n * f->pixels) {
        fprintf(stderr, "bench_lib: %s: short file, or out of memory\n", argv[2]);
        return 1;
    }
    fclose(fp);
    vae_images im = {px, VAE_U8, n, f->width, f->height, f->channels, NULL};
    double best[2] = {1e30, 1e30}, mean[2] = {0, 0};
    for (int which = 0; which < 2; which++)
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            if (vae_score(m, &im, which ? K : 0, 1, score, &err)) {
                fprintf(stderr, "bench_lib: %s\n", err.message);
                return 1;
            }
            double t = now() - t0;
            best[which] = t < best[which] ? t : best[which];
            mean[which] = 0.0;
            for (size_t i = 0; i < n; i++)
                mean[which] += score[i] / (double)n;
        }
    double together = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = score_together(m, &im, T);
        if (t < 0) {
            fprintf(stderr, "bench_lib: scoring from %d threads failed\n", T);
            return 1;
        }
        together = t < together ? t : together;
    }
    printf("{\"version\":\"%s\",\"images\":%zu,\"load_s\":%.6f,\"score_s\":%.4f,"
           "\"mean_score\":%.6f,\"k\":%zu,\"score_k_s\":%.4f,\"mean_score_k\":%.6f,"
           "\"threads\":%d,\"threads_images_per_s\":%.0f,\"one_images_per_s\":%.0f}\n",
           vae_version(), n, load_s, best[0], mean[0], K, best[1], mean[1], T,
           (double)T * (double)n / together, (double)n / best[0]);
    free(px);
    free(score);
    vae_free(m);
    return 0;
}
