/* infer.c - test loss, per-image codes and scores, and the importance-
 * weighted bound (see src/train/infer.h). */
#define _POSIX_C_SOURCE 200809L
#include "infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist.h"
#include "gemm.h"
#include "par.h"
#include "rng.h"

/* Salts that keep the evaluation streams apart from the training streams
 * drawn from the same --seed. */
#define EVAL_SALT 0x6576616cULL
#define IW_SALT 0x69775f65ULL
#define PRIOR_SALT 0x7072696fULL /* the prior's draws (vae sample, the run's samples) */

#define IW_IMAGES 32 /* images encoded at once */
#define IW_ROWS 512  /* draws decoded at once */
#define IW_ROWS_CONV 64 /* for the conv VAE, whose activations are ~1 MB a draw */

idx_view infer_test_view(uint64_t binarize)
{
    idx_view v = {binarize != 0, INFER_TEST_KEY};
    return v;
}

/* Calls fn(ctx, s, at, B) after running each batch [at, at+B) of set
 * forward with eps from the eval stream of seed. */
static void each_batch(const model_net *m, shard_set *s, const idx_set *set,
                       const idx_view *view, uint64_t seed,
                       void (*fn)(void *ctx, shard_set *s, size_t at, size_t B,
                                  double rec, double kl),
                       void *ctx)
{
    rng_state rng;
    rng_seed(&rng, seed ^ EVAL_SALT);
    for (size_t at = 0; at < set->n; at += s->cap) {
        size_t B = set->n - at < s->cap ? set->n - at : s->cap;
        shard_batch b = {set, NULL, at, B, view, 0.0f, 0};
        double rec, kl;
        shard_draw_eps(s, m, &rng, B);
        shard_run(s, m, &b, 0, 1.0, &rec, &kl);
        fn(ctx, s, at, B, rec, kl);
    }
}

typedef struct sums {
    double rec, kl;
} sums;

static void add_sums(void *ctx, shard_set *s, size_t at, size_t B, double rec,
                     double kl)
{
    (void)s, (void)at, (void)B;
    sums *t = ctx;
    t->rec += rec;
    t->kl += kl;
}

double infer_eval(const model_net *m, shard_set *s, const idx_set *set,
                  const idx_view *view, uint64_t seed, double *rec, double *kl)
{
    sums t = {0.0, 0.0};
    each_batch(m, s, set, view, seed, add_sums, &t);
    double n = set->n ? (double)set->n : 1.0;
    *rec = t.rec / n;
    *kl = t.kl / n;
    return *rec + *kl;
}

typedef struct per_image {
    const model_net *m;
    float *mu, *logvar, *rec, *kl;
} per_image;

static void copy_out(void *ctx, shard_set *s, size_t at, size_t B, double rec,
                     double kl)
{
    (void)rec, (void)kl;
    const per_image *p = ctx;
    size_t Z = p->m->cfg.z_dim, first = s->rank * s->T;
    for (size_t k = 0; k < s->T; k++) {
        size_t lo, hi;
        par_share(B, 1, first + k, s->S, &lo, &hi);
        const model_acts *a = &s->acts[k];
        for (size_t i = 0; i < hi - lo; i++) {
            size_t g = at + lo + i;
            if (p->mu)
                memcpy(p->mu + g * Z, model_mu(p->m, a, i), Z * sizeof(float));
            if (p->logvar)
                memcpy(p->logvar + g * Z, model_logvar(p->m, a, i), Z * sizeof(float));
            if (p->rec)
                p->rec[g] = a->rec[i];
            if (p->kl)
                p->kl[g] = a->kl[i];
        }
    }
    if (s->ranks < 2)
        return;
    /* Every rank's run of the batch (its shares) to every rank. */
    size_t lo, hi, end;
    par_share(B, 1, first, s->S, &lo, &end);
    par_share(B, 1, first + s->T - 1, s->S, &end, &hi);
    lo += at, hi += at;
    if (p->mu)
        dist_gather_ranges(p->mu, Z * sizeof(float), lo, hi);
    if (p->logvar)
        dist_gather_ranges(p->logvar, Z * sizeof(float), lo, hi);
    if (p->rec)
        dist_gather_ranges(p->rec, sizeof(float), lo, hi);
    if (p->kl)
        dist_gather_ranges(p->kl, sizeof(float), lo, hi);
}

void infer_per_image(const model_net *m, shard_set *s, const idx_set *set,
                     const idx_view *view, uint64_t seed, float *mu,
                     float *logvar, float *rec, float *kl)
{
    per_image p = {m, mu, logvar, rec, kl};
    each_batch(m, s, set, view, seed, copy_out, &p);
}

/* ===================================================================== */
/* The importance-weighted bound                                          */
/* ===================================================================== */

typedef struct iw_job {
    const model_net *m;
    const idx_set *set;
    const idx_view *view;
    size_t K;
    uint64_t seed;
    int bench;
    size_t first, S; /* this rank's first share of the S = ranks x threads */
    double *iw; /* per image: log (1/K sum_k w_k) */
    double work_s[PAR_MAX_THREADS], gemm_s[PAR_MAX_THREADS], flops[PAR_MAX_THREADS];
    int failed[PAR_MAX_THREADS];
} iw_job;

/* One thread's buffers: encoder activations for IW_IMAGES images, decoder
 * activations for IW_ROWS draws, and per-image and per-row scratch. */
typedef struct iw_work {
    model_acts enc, dec;
    rng_state rng[IW_IMAGES];
    double max[IW_IMAGES], sum[IW_IMAGES];
    float lpq[IW_ROWS], rec[IW_ROWS];
    uint16_t img[IW_ROWS];
} iw_work;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Draws rows [r0, r0+R) of the batch (row r is draw r % K of image r / K):
 * z = mu + sigma eps into w->dec, and log p(z) - log q(z|x) (the 2 pi terms
 * cancel) into w->lpq. */
static void iw_draw(const model_net *m, iw_work *w, size_t K, size_t r0, size_t R)
{
    size_t Z = m->cfg.z_dim;
    for (size_t q = 0; q < R; q++) {
        size_t b = (r0 + q) / K;
        const float *mu = model_mu(m, &w->enc, b), *lv = model_logvar(m, &w->enc, b);
        float *eps = w->dec.eps + q * Z, *z = w->dec.z + q * Z;
        rng_normal(&w->rng[b], eps, Z);
        if (m->cfg.z2_dim) /* then h2's noise, from the image's stream */
            rng_normal(&w->rng[b], w->dec.eps2 + q * m->cfg.z2_dim, m->cfg.z2_dim);
        double lq = 0.0, lp = 0.0;
        const float *mp = model_prior_mu(m, &w->enc, b), *lp_v = model_prior_logvar(m, &w->enc, b);
        for (size_t j = 0; j < Z; j++) {
            z[j] = mu[j] + expf(0.5f * lv[j]) * eps[j];
            lq += -0.5 * (double)eps[j] * eps[j] - 0.5 * (double)lv[j];
            if (mp) {
                double d = (double)z[j] - mp[j];
                lp += -0.5 * d * d * exp(-(double)lp_v[j]) - 0.5 * (double)lp_v[j];
            } else if (!m->cfg.z2_dim) { /* two layers: p(h1|h2), added later */
                lp += -0.5 * (double)z[j] * z[j];
            }
        }
        w->lpq[q] = (float)(lp - lq);
        w->img[q] = (uint16_t)b;
        w->dec.y[q] = w->enc.y[b];
    }
}

/* Images [lo, hi) of the thread's share, IW_IMAGES at a time. */
static void iw_images(iw_job *j, iw_work *w, size_t k, size_t lo, size_t hi)
{
    const model_net *m = j->m;
    size_t D = m->cfg.x_dim, K = j->K, rows = w->dec.cap;
    for (size_t b0 = lo; b0 < hi; b0 += IW_IMAGES) {
        size_t nb = hi - b0 < IW_IMAGES ? hi - b0 : IW_IMAGES;
        if (j->bench)
            gemm_trace_start();
        double t0 = now_s();
        shard_batch batch = {j->set, NULL, b0, nb, j->view, 0.0f, 0};
        shard_gather(&w->enc, &batch, 0, nb);
        model_encode(m, &w->enc, nb);
        for (size_t b = 0; b < nb; b++) {
            rng_seed(&w->rng[b], rng_mix(j->seed ^ IW_SALT, b0 + b));
            w->max[b] = -INFINITY;
            w->sum[b] = 0.0;
        }
        for (size_t r0 = 0; r0 < nb * K; r0 += rows) {
            size_t R = nb * K - r0 < rows ? nb * K - r0 : rows;
            iw_draw(m, w, K, r0, R);
            model_draw_top(m, &w->dec, R, 0);
            model_decode(m, &w->dec, R);
            for (size_t q = 0; m->cfg.z2_dim && q < R; q++)
                w->lpq[q] = (float)((double)w->lpq[q] + model_top_log_ratio(m, &w->dec, q));
            const float *logits = model_logits(m, &w->dec);
            /* -log p(x|z) a run of rows of the same image at a time. */
            for (size_t q = 0; q < R;) {
                size_t e = q;
                while (e < R && w->img[e] == w->img[q])
                    e++;
                model_rec_rows(m, logits + q * D, w->enc.x + w->img[q] * D, 0, e - q,
                             w->rec + q);
                q = e;
            }
            /* Running log-sum-exp of log w = -rec + log p(z) - log q(z|x). */
            for (size_t q = 0; q < R; q++) {
                size_t b = w->img[q];
                double lw = (double)w->lpq[q] - (double)w->rec[q];
                if (lw > w->max[b]) {
                    w->sum[b] = w->sum[b] * exp(w->max[b] - lw) + 1.0;
                    w->max[b] = lw;
                } else {
                    w->sum[b] += exp(lw - w->max[b]);
                }
            }
        }
        for (size_t b = 0; b < nb; b++)
            j->iw[b0 + b] = w->max[b] + log(w->sum[b]) - log((double)K);
        if (j->bench) {
            double t1 = now_s();
            gemm_trace_stop();
            j->flops[k] += gemm_trace_flops();
            if (gemm_trace_replay(NULL))
                j->failed[k] = 1;
            j->work_s[k] += t1 - t0;
            j->gemm_s[k] += now_s() - t1;
        }
    }
}

static void iw_task(void *ctx, size_t k, size_t T)
{
    iw_job *j = ctx;
    (void)T;
    size_t lo, hi;
    par_share(j->set->n, 1, j->first + k, j->S, &lo, &hi);
    if (lo == hi)
        return;
    iw_work *w = calloc(1, sizeof *w);
    err_msg err;
    if (!w || model_acts_init(&w->enc, &j->m->cfg, IW_IMAGES, &err) ||
        model_acts_init(&w->dec, &j->m->cfg,
                      j->m->cfg.arch == MODEL_ARCH_CONV ? IW_ROWS_CONV : IW_ROWS, &err)) {
        j->failed[k] = 1;
    } else {
        iw_images(j, w, k, lo, hi);
    }
    if (w) {
        model_acts_free(&w->enc);
        model_acts_free(&w->dec);
    }
    free(w);
    if (j->bench)
        gemm_trace_free();
}

/* The bound's per-image values log (1/K sum_k w_k) into iw (set->n, the
 * same on every rank), and the timings into out. Returns 0, or -1 with
 * err. */
static int iw_run(const model_net *m, const idx_set *set, const idx_view *view,
                  size_t K, uint64_t seed, int bench, double *iw, infer_iw_result *out,
                  err_msg *err)
{
    memset(out, 0, sizeof *out);
    if (K == 0)
        return err_set(err, "--iw: need at least 1 draw per image");
    iw_job *j = calloc(1, sizeof *j);
    if (!j)
        return err_set(err, "out of memory for the importance-weighted bound");
    j->m = m, j->set = set, j->view = view, j->K = K, j->seed = seed;
    j->bench = bench, j->iw = iw;
    /* Across R ranks of T threads, the R x T shares of one process with
     * R x T threads: rank r computes shares rT .. rT+T-1, a run of images.
     * A per-image value depends on how images are grouped into sgemm
     * calls (their rounding does), so the split has to be that one. */
    size_t T = par_threads(), lo, hi, end;
    j->S = dist_size() * T, j->first = dist_rank() * T;
    par_share(set->n, 1, j->first, j->S, &lo, &end);
    par_share(set->n, 1, j->first + T - 1, j->S, &end, &hi);
    par_run(iw_task, j);
    int failed = 0;
    for (size_t k = 0; k < par_threads(); k++) {
        failed |= j->failed[k];
        out->work_s += j->work_s[k];
        out->gemm_s += j->gemm_s[k];
        out->gemm_flops += j->flops[k];
    }
    int rc = 0;
    if (dist_any(failed))
        rc = err_set(err, "out of memory for the importance-weighted bound");
    else
        dist_gather_ranges(iw, sizeof *iw, lo, hi);
    free(j);
    return rc;
}

int infer_iw(const model_net *m, const idx_set *set, const idx_view *view,
             size_t K, uint64_t seed, int bench, infer_iw_result *out,
             err_msg *err)
{
    memset(out, 0, sizeof *out);
    if (set->n == 0)
        return err_set(err, "the data set is empty");
    double *iw = malloc(set->n * sizeof *iw);
    if (!iw)
        return err_set(err, "out of memory for the importance-weighted bound");
    int rc = iw_run(m, set, view, K, seed, bench, iw, out, err);
    double sum = 0.0;
    for (size_t i = 0; rc == 0 && i < set->n; i++)
        sum -= iw[i];
    out->iw_nll = sum / (double)set->n;
    free(iw);
    return rc;
}

int infer_iw_images(const model_net *m, const idx_set *set, const idx_view *view,
                    size_t K, uint64_t seed, double *score, err_msg *err)
{
    if (set->n == 0)
        return 0;
    infer_iw_result res;
    double *iw = malloc(set->n * sizeof *iw);
    if (!iw)
        return err_set(err, "out of memory for the importance-weighted bound");
    int rc = iw_run(m, set, view, K, seed, 0, iw, &res, err);
    for (size_t i = 0; rc == 0 && i < set->n; i++)
        score[i] = -iw[i];
    free(iw);
    return rc;
}

size_t infer_active_units(const float *mu, size_t n, size_t z_dim, double *var)
{
    size_t active = 0;
    for (size_t d = 0; d < z_dim; d++) {
        /* Two passes: the mean, then the squared deviations from it. */
        double mean = 0.0, ss = 0.0;
        for (size_t i = 0; i < n; i++)
            mean += mu[i * z_dim + d];
        mean = n ? mean / (double)n : 0.0;
        for (size_t i = 0; i < n; i++) {
            double dev = mu[i * z_dim + d] - mean;
            ss += dev * dev;
        }
        double v = n ? ss / (double)n : 0.0;
        if (var)
            var[d] = v;
        active += v > INFER_ACTIVE_VAR;
    }
    return active;
}

/* The chain's means for every image of set, a->cap at a time: h1 = q(h1|x)'s
 * mean, then q(h2|h1)'s head at it (its mu2 and logvar2 into mu2 and
 * logvar2) and, if prior, p(h1|h2)'s head at h2 = mu2 into prior (each
 * output may be NULL). */
static void chain_means(const model_net *m, model_acts *a, const idx_set *set,
                        const idx_view *view, float *mu2, float *logvar2, float *prior)
{
    size_t Z = m->cfg.z_dim, Z2 = m->cfg.z2_dim;
    for (size_t at = 0; at < set->n; at += a->cap) {
        size_t B = set->n - at < a->cap ? set->n - at : a->cap;
        shard_batch b = {set, NULL, at, B, view, 0.0f, 0};
        shard_gather(a, &b, 0, B);
        model_encode(m, a, B);
        model_reparam(m, a, B, 1); /* h1 = mu1, h2 = mu2 */
        if (prior)
            model_prior_top(m, a, B);
        for (size_t i = 0; i < B; i++) {
            const float *head = model_top_mu(m, a, i * a->k); /* [mu2 | logvar2] */
            if (mu2)
                memcpy(mu2 + (at + i) * Z2, head, Z2 * sizeof *mu2);
            if (logvar2)
                memcpy(logvar2 + (at + i) * Z2, head + Z2, Z2 * sizeof *logvar2);
            if (prior)
                memcpy(prior + (at + i) * 2 * Z, model_prior_top_mu(m, a, i * a->k),
                       2 * Z * sizeof *prior);
        }
    }
}

void infer_top_means(const model_net *m, model_acts *a, const idx_set *set,
                     const idx_view *view, float *mu2, float *logvar2)
{
    chain_means(m, a, set, view, mu2, logvar2, NULL);
}

void infer_layer_means(const model_net *m, shard_set *s, const idx_set *set,
                       const idx_view *view, uint64_t seed, int layer, float *mu)
{
    if (layer == 2 && m->cfg.z2_dim)
        infer_top_means(m, &s->acts[0], set, view, mu, NULL);
    else
        infer_per_image(m, s, set, view, seed, mu, NULL, NULL, NULL);
}

void infer_top_prior(const model_net *m, model_acts *a, const idx_set *set,
                     const idx_view *view, float *prior)
{
    chain_means(m, a, set, view, NULL, NULL, prior);
}

int infer_layer_activity(const model_net *m, shard_set *s, const idx_set *set,
                         const idx_view *view, uint64_t seed, size_t active[2],
                         err_msg *err)
{
    size_t Z[2] = {m->cfg.z_dim, m->cfg.z2_dim};
    float *mu = malloc(set->n * (Z[0] > Z[1] ? Z[0] : Z[1]) * sizeof *mu + 1);
    if (!mu)
        return err_set(err, "out of memory for %zu posterior means", set->n);
    for (int l = 0; l < 2; l++) {
        active[l] = 0;
        if (Z[l]) {
            infer_layer_means(m, s, set, view, seed, l + 1, mu);
            active[l] = infer_active_units(mu, set->n, Z[l], NULL);
        }
    }
    free(mu);
    return 0;
}

/* ===================================================================== */
/* Pictures' numbers: prior draws, decodings, reconstructions             */
/* ===================================================================== */

void infer_prior_draws(float *eps, size_t n, size_t z_dim, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed ^ PRIOR_SALT);
    rng_normal(&rng, eps, n * z_dim);
}

size_t infer_prior_dim(const model_net *m)
{
    return m->cfg.z2_dim + m->cfg.z_dim;
}

/* Two stochastic layers: h2 from the first z2_dim noise values of each
 * draw, then h1 from p(h1|h2) and the rest. */
static void prior_z_two(const model_net *m, model_acts *a, const float *eps, size_t n,
                        float *z)
{
    size_t Z = m->cfg.z_dim, Z2 = m->cfg.z2_dim, dim = Z2 + Z;
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        for (size_t i = 0; i < B; i++)
            memcpy(a->z2 + i * a->k * Z2, eps + (s + i) * dim, Z2 * sizeof *z);
        model_prior_top(m, a, B);
        for (size_t i = 0; i < B; i++) {
            const float *mu = model_prior_top_mu(m, a, i * a->k), *lv = mu + Z;
            const float *e1 = eps + (s + i) * dim + Z2;
            for (size_t j = 0; j < Z; j++)
                z[(s + i) * Z + j] = mu[j] + expf(0.5f * lv[j]) * e1[j];
        }
    }
}

void infer_prior_z(const model_net *m, model_acts *a, const float *eps,
                  const uint8_t *labels, size_t n, float *z)
{
    size_t Z = m->cfg.z_dim;
    if (m->cfg.z2_dim) {
        prior_z_two(m, a, eps, n, z);
        return;
    }
    if (!m->cfg.n_classes) {
        memcpy(z, eps, n * Z * sizeof *z);
        return;
    }
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        memcpy(a->y, labels + s, B);
        model_prior(m, a, B);
        for (size_t i = 0; i < B; i++) {
            const float *mu = model_prior_mu(m, a, i), *lv = model_prior_logvar(m, a, i);
            for (size_t j = 0; j < Z; j++)
                z[(s + i) * Z + j] = mu[j] + expf(0.5f * lv[j]) * eps[(s + i) * Z + j];
        }
    }
}

void infer_decode_means(const model_net *m, model_acts *a, const float *z,
                         const uint8_t *labels, size_t n, float *tiles)
{
    size_t D = m->cfg.x_dim, Z = m->cfg.z_dim;
    a->training = 0; /* BatchNorm from its running averages */
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        memcpy(a->z, z + s * Z, B * Z * sizeof(float));
        if (labels)
            memcpy(a->y, labels + s, B);
        model_decode_pixels(m, a, B);
        model_mean(m, tiles + s * D, model_logits(m, a), B * D);
    }
}

void infer_recon_means(const model_net *m, model_acts *a, const idx_set *set,
                       const idx_view *view, size_t n, float *x, float *recon,
                       size_t stride)
{
    size_t D = m->cfg.x_dim;
    a->training = 0; /* BatchNorm from its running averages */
    for (size_t s = 0; s < n; s += a->cap) {
        size_t B = n - s < a->cap ? n - s : a->cap;
        shard_batch b = {set, NULL, s, B, view, 0.0f, 0};
        shard_gather(a, &b, 0, B);
        model_encode(m, a, B);
        model_reparam(m, a, B, 1);
        model_decode_pixels(m, a, B);
        for (size_t i = 0; i < B; i++) {
            if (x)
                memcpy(x + (s + i) * stride, a->x + i * D, D * sizeof *x);
            model_mean(m, recon + (s + i) * stride, model_logits(m, a) + i * D, D);
        }
    }
}
