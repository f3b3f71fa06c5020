/* shard.c - a batch split across the thread team (see src/train/shard.h). */
#include "shard.h"

#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "mlp.h"

/* Share g of all S shares (every rank's) of a batch of B: [*lo, *hi). */
static void global_share(const shard_set *s, size_t B, size_t g, size_t *lo, size_t *hi)
{
    par_share(B, 1, g, s->S, lo, hi);
}

/* This rank's share k of a batch of B: [*lo, *hi). The units plan keeps
 * the whole batch in share 0's activations. */
static void share_of(const shard_set *s, size_t B, size_t k, size_t *lo, size_t *hi)
{
    if (s->units) {
        *lo = 0;
        *hi = k == 0 ? B : 0;
        return;
    }
    global_share(s, B, s->rank * s->T + k, lo, hi);
}

static void team_barrier(void *ctx)
{
    (void)ctx;
    par_barrier();
}

/* model_reduce's sum for the team: each thread puts its values in its
 * share's slot, thread 0 swaps the slots with the other ranks, then every
 * thread adds all S slots in share order, so all threads of all ranks get
 * the same total, bit for bit: the total of one process with S threads.
 * Called by every thread of the team together (of every rank). */
static void team_sum(void *ctx, size_t k, double *v, size_t n)
{
    shard_set *s = ctx;
    memcpy(s->red + (s->rank * s->T + k) * s->red_n, v, n * sizeof *v);
    par_barrier();
    if (s->ranks > 1) {
        if (k == 0) /* rank r's T slots are at r*T*red_n: one block a rank */
            dist_allgather_doubles(s->red, s->T * s->red_n);
        par_barrier();
    }
    for (size_t i = 0; i < n; i++) {
        double t = 0.0;
        for (size_t j = 0; j < s->S; j++)
            t += s->red[j * s->red_n + i];
        v[i] = t;
    }
    par_barrier(); /* nobody refills a slot before all have read it */
}

static const char *const PLAN_NAMES[] = {"auto", "rows", "units"};
const enum_names shard_plan_names = ENUM_NAMES(PLAN_NAMES);

shard_plan shard_plan_for(const model_net *m, size_t cap, size_t threads)
{
    if (m->cfg.arch != MODEL_ARCH_MLP || m->cfg.z2_dim || threads < 2)
        return SHARD_ROWS; /* the units plan is the one-layer MLP's */
    return cap < SHARD_UNITS_BELOW * threads ? SHARD_UNITS : SHARD_ROWS;
}

int shard_init(shard_set *s, const model_net *m, const shard_spec *spec, err_msg *err)
{
    memset(s, 0, sizeof *s);
    size_t cap = spec->cap, draws = spec->draws ? spec->draws : 1;
    size_t rank = spec->rank, ranks = spec->ranks ? spec->ranks : 1;
    int with_grads = spec->with_grads;
    shard_plan plan = spec->plan;
    s->objective = spec->objective;
    s->estimator = spec->estimator;
    s->T = par_threads();
    s->rank = rank;
    s->ranks = ranks;
    s->S = ranks * s->T;
    s->cap = cap;
    if (ranks < 1 || rank >= ranks || s->S > PAR_MAX_THREADS)
        return err_set(err, "%zu ranks of %zu threads: at most %d shares of a batch in all",
                       ranks, s->T, PAR_MAX_THREADS);
    if (plan == SHARD_AUTO)
        plan = with_grads && ranks == 1 ? shard_plan_for(m, cap, s->T) : SHARD_ROWS;
    if (plan == SHARD_UNITS && (m->cfg.arch != MODEL_ARCH_MLP || !with_grads))
        return err_set(err, "the units plan (threads splitting each layer) is for training an MLP, not for the conv VAE or evaluation");
    if (plan == SHARD_UNITS && m->cfg.z2_dim)
        return err_set(err, "the units plan (threads splitting each layer) is for one "
                       "stochastic layer; two split a batch by rows");
    if (plan == SHARD_UNITS && ranks > 1)
        return err_set(err, "the units plan (threads splitting each layer) runs in one "
                       "process; across MPI ranks batches are split by rows");
    s->units = plan == SHARD_UNITS && s->T > 1;
    size_t n_acts = s->units ? 1 : s->T, per = s->units ? cap : (cap + s->S - 1) / s->S;
    for (size_t k = 0; k < n_acts; k++)
        if (model_acts_init_k(&s->acts[k], &m->cfg, per, draws, err)) {
            shard_free(s);
            return -1;
        }
    /* BatchNorm sums at most two values a channel and a count. */
    size_t cmax = 1;
    for (size_t b = 0; b < m->n_blocks; b++)
        if (m->block[b].cout > cmax)
            cmax = m->block[b].cout;
    s->red_n = 2 * cmax + 1;
    if (!(s->red = malloc(s->S * s->red_n * sizeof *s->red))) {
        shard_free(s);
        return err_set(err, "out of memory for the team's sums");
    }
    for (size_t k = 0; k < s->T; k++) {
        model_reduce r = {s->S > 1 ? team_sum : NULL, s, k};
        s->acts[k].reduce = r;
    }
    if (with_grads) {
        size_t total, n_grads = s->units ? 1 : s->S;
        if (ranks > 1 && (err_mul_size(s->T, m->n_params, &total) || total > DIST_MAX_COUNT)) {
            shard_free(s);
            return err_set(err, "%zu parameters x %zu threads: too many for one MPI message "
                           "(at most %u floats a rank)", m->n_params, s->T, DIST_MAX_COUNT);
        }
        if (err_mul_size(n_grads, m->n_params, &total) || total > SIZE_MAX / sizeof(float)) {
            shard_free(s);
            return err_set(err, "%zu gradient buffers of %zu: too large", n_grads,
                           m->n_params);
        }
        if (ranks > 1 && dist_one_node()) { /* every rank reads every share */
            if (!(s->shm_grads = dist_shared_alloc(total * sizeof(float), err)) ||
                !(s->shm_params = dist_shared_alloc(m->n_params * sizeof(float), err))) {
                shard_free(s);
                return -1;
            }
            s->grads = dist_shared_base(s->shm_grads);
        } else if (!(s->grads = malloc(total * sizeof(float)))) {
            shard_free(s);
            return err_set(err, "out of memory for %zu gradient buffers", n_grads);
        }
        s->n_params = m->n_params;
    }
    if (s->units) { /* two sets of partial input gradients a thread */
        size_t n;
        s->part_n = model_team_part_n(m, cap, draws);
        if (err_mul_size(2 * s->T, s->part_n, &n) || n > SIZE_MAX / sizeof(float) ||
            !(s->part = malloc(n * sizeof(float)))) {
            shard_free(s);
            return err_set(err, "out of memory for the team's partial gradients");
        }
    }
    if (ranks > 1 && (!(s->img = malloc(3 * cap * sizeof *s->img)) ||
                      !(s->skip = malloc(per * draws * (m->cfg.z_dim > m->cfg.z2_dim
                                                        ? m->cfg.z_dim : m->cfg.z2_dim) *
                                         sizeof *s->skip)))) {
        shard_free(s);
        return err_set(err, "out of memory for the ranks' losses");
    }
    return 0;
}

void shard_free(shard_set *s)
{
    for (size_t k = 0; k < PAR_MAX_THREADS; k++)
        model_acts_free(&s->acts[k]);
    if (s->shm_grads)
        dist_shared_free(s->shm_grads);
    else
        free(s->grads);
    dist_shared_free(s->shm_params);
    free(s->red);
    free(s->part);
    free(s->img);
    free(s->skip);
    memset(s, 0, sizeof *s);
}

/* A share of `rows` images' noise, into a, or into scratch when a is NULL:
 * image by image, its k draws' h1 noise then (two stochastic layers) their
 * h2 noise, so that the stream gives each image the same numbers however
 * a batch is split. */
static void draw_share(shard_set *s, const model_net *m, rng_state *rng, model_acts *a,
                       size_t rows)
{
    size_t k = s->acts[0].k, Z = m->cfg.z_dim, Z2 = m->cfg.z2_dim;
    if (!Z2) { /* one layer: the same numbers in one call */
        rng_normal(rng, a ? a->eps : s->skip, rows * k * Z);
        return;
    }
    for (size_t i = 0; i < rows; i++) {
        rng_normal(rng, a ? a->eps + i * k * Z : s->skip, k * Z);
        rng_normal(rng, a ? a->eps2 + i * k * Z2 : s->skip, k * Z2);
    }
}

void shard_draw_eps(shard_set *s, const model_net *m, rng_state *rng, size_t B)
{
    if (s->ranks == 1) {
        for (size_t k = 0; k < s->T; k++) {
            size_t lo, hi;
            share_of(s, B, k, &lo, &hi);
            draw_share(s, m, rng, &s->acts[k], hi - lo);
        }
        return;
    }
    /* Every rank draws every share's numbers, in share order, so its
     * stream moves as one process's does; other ranks' go to scratch. */
    size_t first = s->rank * s->T;
    for (size_t g = 0; g < s->S; g++) {
        size_t lo, hi;
        global_share(s, B, g, &lo, &hi);
        int mine = g >= first && g < first + s->T;
        draw_share(s, m, rng, mine ? &s->acts[g - first] : NULL, hi - lo);
    }
}

/* Images [lo, hi) of batch b into a's rows from row `at` on (a->xin set
 * by the caller). */
static void gather_rows(model_acts *a, const shard_batch *b, size_t lo, size_t hi,
                        size_t at)
{
    size_t n = hi - lo, D = idx_image_bytes(b->set);
    const uint32_t *idx = b->idx ? b->idx + lo : NULL;
    idx_gather(b->set, idx, b->start + lo, n, b->view, a->x + at * D);
    for (size_t i = 0; i < n; i++)
        a->y[at + i] = b->set->labels[idx ? idx[i] : b->start + lo + i];
    if (b->noise <= 0.0f)
        return;
    /* Denoising: the encoder sees clip(x + noise * N(0,1), 0, 1). */
    for (size_t i = 0; i < n; i++) {
        size_t k = idx ? idx[i] : b->start + lo + i;
        rng_state r;
        rng_seed(&r, rng_mix(b->noise_key, k));
        float *xi = a->xin_buf + (at + i) * D;
        const float *x = a->x + (at + i) * D;
        rng_normal(&r, xi, D);
        for (size_t p = 0; p < D; p++) {
            float v = x[p] + b->noise * xi[p];
            xi[p] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
}

void shard_gather(model_acts *a, const shard_batch *b, size_t lo, size_t hi)
{
    a->xin = b->noise > 0.0f ? a->xin_buf : a->x;
    gather_rows(a, b, lo, hi, 0);
}

typedef struct run_job {
    shard_set *s;
    const model_net *m;
    const shard_batch *b;
    int backward;
    model_loss_spec loss;
    rng_state *eps_rng;     /* units plan: thread 0 draws the noise (or NULL) */
    const shard_then *then; /* after the gradient, on every thread (or NULL) */
    int gather;             /* in the team's job: gather the ranks' gradients */
} run_job;

/* Once the team's gradient shares are done: each rank gets every share's
 * values in the slice of the parameters it updates (shard_param_slice). */
static void gather_grads(shard_set *s, size_t k, size_t T)
{
    if (T > 1)
        par_barrier();
    if (k == 0 && s->shm_grads)
        dist_shared_sync(s->shm_grads); /* every share readable by every rank */
    else if (k == 0)
        dist_to_owners(s->grads, s->n_params, s->T, SHARD_SLICE_ALIGN);
}

/* Once every rank has updated its slice: all slices to every rank. */
static void gather_params(const run_job *j, size_t k, size_t T)
{
    if (T > 1)
        par_barrier();
    shard_set *s = j->s;
    float *p = j->m->params;
    if (k == 0 && s->shm_params) {
        /* This rank's slice into the shared copy, then the others' out. */
        float *all = dist_shared_base(s->shm_params);
        size_t lo, hi;
        shard_param_slice(s, &lo, &hi);
        memcpy(all + lo, p + lo, (hi - lo) * sizeof *p);
        dist_shared_sync(s->shm_params);
        memcpy(p, all, lo * sizeof *p);
        memcpy(p + hi, all + hi, (s->n_params - hi) * sizeof *p);
    } else if (k == 0) {
        dist_from_owners(p, j->m->n_params, SHARD_SLICE_ALIGN);
    }
}

void shard_param_slice(const shard_set *s, size_t *lo, size_t *hi)
{
    if (s->ranks == 1) {
        *lo = 0;
        *hi = s->n_params;
        return;
    }
    dist_slice(s->n_params, SHARD_SLICE_ALIGN, s->rank, lo, hi);
}

/* then->fn on thread k once every thread is done with the batch. */
static void then_run(const run_job *j, size_t k, size_t T)
{
    if (!j->then)
        return;
    if (T > 1)
        par_barrier();
    j->then->fn(j->then->ctx, k, T);
}

static void run_share(void *ctx, size_t k, size_t T)
{
    const run_job *j = ctx;
    size_t lo, hi;
    share_of(j->s, j->b->B, k, &lo, &hi);
    /* A thread without images still runs a conv model's passes: its
     * BatchNorm takes part in the team's sums. */
    if (lo < hi || j->m->cfg.arch == MODEL_ARCH_CONV) {
        size_t n = hi - lo;
        model_acts *a = &j->s->acts[k];
        a->training = j->backward;
        shard_gather(a, j->b, lo, hi);
        model_encode(j->m, a, n);
        model_reparam(j->m, a, n, 0);
        model_decode(j->m, a, n);
        model_loss(j->m, a, n, &j->loss);
        if (j->backward)
            model_backward(j->m, a, j->s->grads + (j->s->rank * j->s->T + k) *
                                                  j->s->n_params, n, &j->loss);
    }
    if (j->gather)
        gather_grads(j->s, k, T);
    then_run(j, k, T);
    if (j->gather && j->then)
        gather_params(j, k, T);
}

/* The units plan: every thread gathers its share of the images, then all
 * run the MLP's pass together over share 0's activations. */
static void run_units(void *ctx, size_t k, size_t T)
{
    const run_job *j = ctx;
    model_acts *a = &j->s->acts[0];
    size_t B = j->b->B, lo, hi;
    if (j->eps_rng) { /* thread 0 draws the noise while the others gather */
        if (k == 0) {
            rng_normal(j->eps_rng, a->eps, B * a->k * j->m->cfg.z_dim);
            lo = hi = 0;
        } else {
            par_share(B, 1, k - 1, T - 1, &lo, &hi);
        }
    } else {
        par_share(B, 1, k, T, &lo, &hi);
    }
    if (lo < hi)
        gather_rows(a, j->b, lo, hi, lo);
    par_barrier();
    model_team t = {k, T, team_barrier, NULL, j->s->part, j->s->part_n};
    model_train_team(j->m, a, j->s->grads, B, &j->loss, &t);
    then_run(j, k, T);
}

/* Across ranks: every image's rec, kl and objective of the batch, in
 * image order, into s->img (rec | kl | obj, B each) on every rank. Each
 * value is non-zero on one rank only, so the sum is exact. */
static void gather_losses(shard_set *s, size_t B)
{
    memset(s->img, 0, 3 * B * sizeof *s->img);
    for (size_t k = 0; k < s->T; k++) {
        size_t lo, hi;
        share_of(s, B, k, &lo, &hi);
        for (size_t i = 0; i < hi - lo; i++) {
            s->img[lo + i] = s->acts[k].rec[i];
            s->img[B + lo + i] = s->acts[k].kl[i];
            s->img[2 * B + lo + i] = s->acts[k].obj[i];
        }
    }
    dist_sum_floats(s->img, 3 * B);
}

/* shard_run and shard_step: the noise drawn first unless rng is NULL. */
static void run_all(shard_set *s, const model_net *m, const shard_batch *b,
                    int backward, double beta, rng_state *rng,
                    const shard_then *then, double *rec, double *kl)
{
    run_job j = {s, m, b, backward && s->grads, {s->objective, beta, s->estimator}, NULL, then, 0};
    int team = par_threads() == s->T;
    if (rng && !(s->units && team && j.backward && s->T > 1))
        shard_draw_eps(s, m, rng, b->B);
    else
        j.eps_rng = rng;
    if (s->units) {
        model_acts *a = &s->acts[0];
        a->training = 1;
        a->xin = b->noise > 0.0f ? a->xin_buf : a->x;
        if (team && j.backward) {
            par_run(run_units, &j);
        } else { /* one thread: the same pass alone */
            gather_rows(a, b, 0, b->B, 0);
            model_encode(m, a, b->B);
            model_reparam(m, a, b->B, 0);
            model_decode(m, a, b->B);
            model_loss(m, a, b->B, &j.loss);
            if (j.backward)
                model_backward(m, a, s->grads, b->B, &j.loss);
            if (then)
                then->fn(then->ctx, 0, 1);
        }
    } else if (team) {
        j.gather = j.backward && s->ranks > 1;
        par_run(run_share, &j);
    } else {
        /* The team changed size since shard_init: same shares, one thread,
         * so no sums across them (BatchNorm then uses each share's own). */
        j.then = NULL;
        for (size_t k = 0; k < s->T; k++) {
            model_reduce keep = s->acts[k].reduce;
            s->acts[k].reduce.sum = NULL;
            run_share(&j, k, s->T);
            s->acts[k].reduce = keep;
        }
        if (j.backward && s->ranks > 1)
            gather_grads(s, 0, 1);
        if (then)
            then->fn(then->ctx, 0, 1);
        if (then && j.backward && s->ranks > 1)
            gather_params(&j, 0, 1);
    }
    if (s->ranks > 1) {
        gather_losses(s, b->B);
        double sb = 0.0, sk = 0.0;
        for (size_t i = 0; i < b->B; i++) {
            sb += s->img[i];
            sk += s->img[b->B + i];
        }
        *rec = sb;
        *kl = sk;
        return;
    }
    double sb = 0.0, sk = 0.0;
    for (size_t k = 0; k < s->T; k++) {
        size_t lo, hi;
        share_of(s, b->B, k, &lo, &hi);
        for (size_t i = 0; i < hi - lo; i++) {
            sb += s->acts[k].rec[i];
            sk += s->acts[k].kl[i];
        }
    }
    *rec = sb;
    *kl = sk;
}

void shard_run(shard_set *s, const model_net *m, const shard_batch *b,
               int backward, double beta, double *rec, double *kl)
{
    run_all(s, m, b, backward, beta, NULL, NULL, rec, kl);
}

void shard_step(shard_set *s, const model_net *m, const shard_batch *b, rng_state *rng,
                double beta, const shard_then *then, double *rec, double *kl)
{
    run_all(s, m, b, 1, beta, rng, then, rec, kl);
}

double shard_objective(const shard_set *s, size_t B)
{
    double sum = 0.0;
    if (s->ranks > 1) {
        for (size_t i = 0; i < B; i++)
            sum += s->img[2 * B + i];
        return sum;
    }
    for (size_t k = 0; k < s->T; k++) {
        size_t lo, hi;
        share_of(s, B, k, &lo, &hi);
        for (size_t i = 0; i < hi - lo; i++)
            sum += s->acts[k].obj[i];
    }
    return sum;
}

void shard_param_share(const shard_set *s, const model_net *m, size_t k, size_t T,
                       void (*fn)(void *ctx, size_t lo, size_t hi), void *ctx)
{
    if (s->units && T == s->T) {
        for (size_t l = 0; l < m->n_layers; l++) {
            size_t r[4];
            mlp_share_params(m, l, k, T, r);
            if (r[0] < r[1])
                fn(ctx, r[0], r[1]);
            if (r[2] < r[3])
                fn(ctx, r[2], r[3]);
        }
        return;
    }
    size_t lo, hi, from, to;
    shard_param_slice(s, &from, &to);
    par_share(to - from, SHARD_SLICE_ALIGN, k, T, &lo, &hi);
    if (lo < hi)
        fn(ctx, from + lo, from + hi);
}

size_t shard_grads(const shard_set *s, size_t B, const float **out)
{
    size_t n = 0;
    for (size_t g = 0; g < (s->units ? 1 : s->S); g++) {
        size_t lo, hi;
        if (s->units)
            share_of(s, B, g, &lo, &hi);
        else
            global_share(s, B, g, &lo, &hi);
        if (lo < hi)
            out[n++] = s->grads + g * s->n_params;
    }
    return n;
}
