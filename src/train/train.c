/* train.c - the training loop (see src/train/train.h). */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adam.h"
#include "ckpt.h"
#include "dist.h"
#include "gemm.h"
#include "infer.h"
#include "par.h"
#include "rng.h"

/* Salts separating the RNG streams drawn from one --seed. */
#define INIT_SALT 0x696e6974ULL
#define DATA_SALT 0x64617461ULL
#define NOISE_SALT 0x6e6f6973ULL
#define BIN_SALT 0x62696e61ULL
#define CORRUPT_SALT 0x636f7272ULL
#define VALID_SALT 0x76616c69ULL

/* Everything a run holds; allocated once, before the first step. */
typedef struct trainer {
    model_net model;
    float *state;           /* one allocation: adam_m | adam_v */
    float *adam_m, *adam_v;
    shard_set shards;       /* per-thread activations and gradients */
    /* Evaluation and pictures: one draw per image, as vae eval. With one
     * draw and the ELBO in training, the training shards themselves. */
    shard_set eval_shards;
    shard_set *eval;
    uint32_t *perm;         /* the epoch's image order */
    ckpt_train st;
    adam_config adam;
    char note[ERR_MSG_LEN]; /* a resume's word on its data, for hooks->warn */
    /* The images trained on and those held out (st.set.valid of them). With
     * none held out, part is the caller's set (not owned). */
    idx_set part, valid;
    int owns_part;
    const char *ckpt_path;  /* the run's checkpoint */
    int has_ckpt;           /* it holds this run (resumed, or saved since) */
} trainer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void trainer_free(trainer *t)
{
    model_free(&t->model);
    shard_free(&t->shards);
    shard_free(&t->eval_shards);
    free(t->state);
    free(t->perm);
    if (t->owns_part)
        idx_free(&t->part);
    idx_free(&t->valid);
    memset(t, 0, sizeof *t);
}

static int part_equal(const model_config *a, const model_config *b, train_model_part p)
{
    switch (p) {
    case TRAIN_PART_HIDDEN:
        if (a->n_hidden != b->n_hidden || a->n_hidden2 != b->n_hidden2)
            return 0;
        for (size_t i = 0; i < a->n_hidden; i++)
            if (a->hidden[i] != b->hidden[i])
                return 0;
        for (size_t i = 0; i < a->n_hidden2; i++)
            if (a->hidden2[i] != b->hidden2[i])
                return 0;
        return 1;
    case TRAIN_PART_LATENT:
        return a->z_dim == b->z_dim && a->z2_dim == b->z2_dim;
    case TRAIN_PART_ACT:
        return a->act == b->act;
    case TRAIN_PART_ARCH:
        return a->arch == b->arch;
    case TRAIN_PART_LIKELIHOOD:
        return a->likelihood == b->likelihood;
    case TRAIN_PART_CONDITIONAL:
        return (a->n_classes != 0) == (b->n_classes != 0);
    case TRAIN_PART_COUNT:
        break;
    }
    return 0;
}

/* Refuses a model whose parameters, Adam moments and per-thread gradients
 * (4 bytes each) do not fit in physical memory: allocating them would
 * succeed (the kernel overcommits) and the first touch would get the run
 * killed. */
static int check_memory(size_t n_params, size_t threads, err_msg *err)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0; /* unknown: let malloc decide */
    double have = (double)pages * (double)page;
    double need = 4.0 * (double)n_params * (3.0 + (double)threads);
    if (need <= have)
        return 0;
    return err_set(err, "the model has %zu parameters: training it needs %.1f GB "
                   "of memory for parameters, gradients and Adam state, more "
                   "than this machine's %.1f GB (use a smaller --hidden)",
                   n_params, need / 1e9, have / 1e9);
}

/* Allocates model, optimizer state, the shards (the run's batch, draws per
 * image, objective and estimator) and the order buffer. */
static int trainer_alloc(trainer *t, const model_config *cfg, const run_settings *set,
                         size_t n_train, shard_plan plan, err_msg *err)
{
    size_t batch = (size_t)set->batch, draws = (size_t)set->draws;
    model_objective objective = set->objective;
    if (model_init(&t->model, cfg, err))
        return -1;
    size_t n = t->model.n_params;
    if (check_memory(n, par_threads() * dist_size(), err))
        return -1;
    t->state = calloc(2 * n, sizeof(float));
    t->perm = malloc((n_train ? n_train : 1) * sizeof *t->perm);
    if (!t->state || !t->perm)
        return err_set(err, "out of memory for the optimizer state");
    t->adam_m = t->state;
    t->adam_v = t->state + n;
    /* Under mpirun every rank takes its shares of each batch (shard.h). */
    size_t rank = dist_rank(), ranks = dist_size();
    shard_spec spec = {batch, 1, draws, objective, plan, rank, ranks, set->estimator};
    if (shard_init(&t->shards, &t->model, &spec, err))
        return -1;
    /* Evaluation draws once per image, and splits by rows. */
    t->eval = &t->shards;
    if (draws == 1 && objective == MODEL_OBJ_ELBO && !t->shards.units)
        return 0;
    t->eval = &t->eval_shards;
    shard_spec eval = {.cap = batch, .rank = rank, .ranks = ranks};
    return shard_init(&t->eval_shards, &t->model, &eval, err);
}

/* A resumed run trains on its own data: the fingerprint of the training set
 * must be the checkpoint's, unless o->new_data says other data is meant
 * (the checkpoint then takes the new one, as does one that had none). */
static int check_data(trainer *t, const train_opts *o, const ckpt_train *st,
                      const idx_fingerprint *fp, err_msg *err)
{
    char why[160];
    if (st->data.n == 0) {
        snprintf(t->note, sizeof t->note, "%s was written before checkpoints "
                 "recorded their training data, so it cannot be checked; this "
                 "run's data is recorded from now on", o->ckpt_path);
        return 0;
    }
    if (!idx_fingerprint_differs(&st->data, fp, why, sizeof why))
        return 0;
    if (o->new_data) {
        snprintf(t->note, sizeof t->note, "--new-data: the run goes on with other "
                 "training data (%s); %s records it from now on", why, o->ckpt_path);
        return 0;
    }
    return err_set(err, "%s: the training set in %s is not the one this run began "
                   "with: %s. Resume with the run's own data, or give --new-data to "
                   "go on with this data on purpose", o->ckpt_path,
                   o->data_name ? o->data_name : "the data given", why);
}

/* Each pixel's mean intensity over the training set, in [0,1] (x_dim
 * values, malloc'd), or NULL when out of memory. */
static double *pixel_means(const idx_set *set)
{
    size_t D = idx_image_bytes(set);
    double *mean = calloc(D ? D : 1, sizeof *mean);
    if (!mean)
        return NULL;
    for (size_t i = 0; i < set->n; i++)
        for (size_t p = 0; p < D; p++)
            mean[p] += set->images[i * D + p];
    for (size_t p = 0; p < D; p++)
        mean[p] /= 255.0 * (double)(set->n ? set->n : 1);
    return mean;
}

int train_split(const idx_set *whole, uint64_t valid_n, uint64_t seed, idx_set *part,
                idx_set *valid, err_msg *err)
{
    memset(part, 0, sizeof *part);
    memset(valid, 0, sizeof *valid);
    size_t n = whole->n, D = idx_image_bytes(whole);
    if (valid_n == 0 || valid_n >= n)
        return err_set(err, "--valid %llu: must be at least 1 and below the training "
                       "set's %zu images", (unsigned long long)valid_n, n);
    uint32_t *order = malloc(n * sizeof *order);
    uint8_t *held = calloc(n, 1);
    idx_set *sets[2] = {part, valid};
    size_t count[2] = {n - (size_t)valid_n, (size_t)valid_n};
    for (int k = 0; k < 2; k++) {
        sets[k]->n = count[k];
        sets[k]->rows = whole->rows;
        sets[k]->cols = whole->cols;
        sets[k]->channels = whole->channels;
        sets[k]->n_classes = whole->n_classes;
        sets[k]->images = malloc(count[k] * D);
        sets[k]->labels = malloc(count[k]);
    }
    if (!order || !held || !part->images || !part->labels || !valid->images ||
        !valid->labels) {
        free(order);
        free(held);
        idx_free(part);
        idx_free(valid);
        return err_set(err, "out of memory for the validation split");
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    rng_state r;
    rng_seed(&r, seed ^ VALID_SALT);
    rng_shuffle(&r, order, n);
    for (size_t i = 0; i < valid_n; i++)
        held[order[i]] = 1;
    size_t at[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        int k = held[i];
        memcpy(sets[k]->images + at[k] * D, whole->images + i * D, D);
        sets[k]->labels[at[k]++] = whole->labels[i];
    }
    free(order);
    free(held);
    return 0;
}

/* The run's images: all of whole, or whole split by train_split. */
static int split_valid(trainer *t, const idx_set *whole, uint64_t valid_n, uint64_t seed,
                       err_msg *err)
{
    if (valid_n == 0) {
        t->part = *whole;
        return 0;
    }
    if (train_split(whole, valid_n, seed, &t->part, &t->valid, err))
        return -1;
    t->owns_part = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* A resumed run keeps its settings: each part of the model and each
 * setting given (o->given_model, o->given) must be the run's, unless its
 * row says a resumed run may change it, and a setting given must be one
 * the run uses. Returns 0, or -1 with err naming the option. */
static int resume_clash(const train_opts *o, const model_config *cfg, const ckpt_train *st,
                        err_msg *err)
{
    const char *clash = NULL;
    for (int p = 0; p < TRAIN_PART_COUNT && !clash; p++)
        if ((o->given_model >> p & 1) && !part_equal(&o->cfg, cfg, (train_model_part)p))
            clash = o->part_option[p];
    for (int i = 0; i < SETTING_COUNT && !clash; i++) {
        if (!(o->given >> i & 1) || SETTINGS[i].resumable)
            continue;
        if (SETTINGS[i].needs && !settings_applies(&st->set, (setting_id)i))
            return err_set(err, "%s: %s applies to %s, which the run being resumed does "
                           "not have (drop %s)", o->ckpt_path, SETTINGS[i].option,
                           SETTINGS[i].needs, SETTINGS[i].option);
        if (settings_differ(&o->set, &st->set, (setting_id)i))
            clash = SETTINGS[i].option;
    }
    if (!clash)
        return 0;
    return err_set(err, "%s: %s given other than the run being resumed's; a resumed run "
                   "keeps its settings (drop it, or start a new run without --resume)",
                   o->ckpt_path, clash);
}

static adam_config adam_of(const ckpt_train *st)
{
    adam_config c = {st->set.sched.lr, st->set.adam_beta1, st->set.adam_beta2, st->set.adam_eps};
    return c;
}

/* Where the run's checkpoint is written (save_path, else ckpt_path). */
static const char *ckpt_target(const train_opts *o)
{
    return o->save_path ? o->save_path : o->ckpt_path;
}

/* A new run, or the run stored in o->ckpt_path when o->resume; fp is the
 * training set's fingerprint, recorded in the run. */
static int trainer_start(trainer *t, const train_opts *o, const idx_set *train,
                         const idx_fingerprint *fp, err_msg *err)
{
    memset(t, 0, sizeof *t);
    if (!o->resume) {
        if (split_valid(t, train, o->set.valid, o->set.seed, err) ||
            trainer_alloc(t, &o->cfg, &o->set, t->part.n, o->plan, err))
            return -1;
        rng_state init;
        rng_seed(&init, o->set.seed ^ INIT_SALT);
        if (o->set.init == TRAIN_INIT_GLOROT) {
            double *mean = pixel_means(&t->part);
            if (!mean)
                return err_set(err, "out of memory");
            model_init_glorot(&t->model, &init, mean);
            free(mean);
        } else {
            model_init_params(&t->model, &init);
        }
        t->st.set = o->set;
        settings_normalize(&t->st.set); /* what the schedule does not use */
        if (t->st.set.sched.kind == SCHEDULE_COSINE)
            t->st.set.sched.horizon = o->epochs;
        rng_seed(&t->st.rng_data, o->set.seed ^ DATA_SALT);
        rng_seed(&t->st.rng_noise, o->set.seed ^ NOISE_SALT);
        if (schedule_check(&t->st.set.sched, err))
            return -1;
        t->adam = adam_of(&t->st);
        t->st.data = *fp;
        return 0;
    }
    ckpt_data d;
    if (ckpt_read(o->ckpt_path, &d, err))
        return -1;
    if (resume_clash(o, &d.cfg, &d.train, err)) {
        ckpt_data_free(&d);
        return TRAIN_REFUSED;
    }
    if (check_data(t, o, &d.train, fp, err)) {
        ckpt_data_free(&d);
        return -1;
    }
    if (d.train.epoch >= o->epochs) {
        size_t done = (size_t)d.train.epoch;
        ckpt_data_free(&d);
        err_set(err, "%s: the run already has %zu epochs; ask for more with --epochs "
                "(the total, not the number to add)", o->ckpt_path, done);
        return TRAIN_REFUSED;
    }
    /* The cosine rate is 0 from its horizon on: epochs past it would not
     * learn. */
    const schedule_config *sc = &d.train.set.sched;
    if (sc->kind == SCHEDULE_COSINE && o->epochs > sc->horizon) {
        size_t h = (size_t)sc->horizon;
        ckpt_data_free(&d);
        err_set(err, "%s: --epochs %zu: the run's cosine schedule reaches rate 0 at epoch "
                "%zu (the --epochs it began with), and epochs past it would not train; ask "
                "for at most %zu, or start a new run", o->ckpt_path, o->epochs, h, h);
        return TRAIN_REFUSED;
    }
    if (split_valid(t, train, d.train.set.valid, d.train.set.seed, err) ||
        trainer_alloc(t, &d.cfg, &d.train.set, t->part.n, o->plan, err)) {
        ckpt_data_free(&d);
        return -1;
    }
    size_t bytes = d.n_params * sizeof(float);
    memcpy(t->model.params, d.params, bytes);
    memcpy(t->adam_m, d.adam_m, bytes);
    memcpy(t->adam_v, d.adam_v, bytes);
    t->st = d.train;
    t->st.data = *fp;
    t->adam = adam_of(&t->st);
    ckpt_data_free(&d);
    return 0;
}

/* The error of a run stopped in epoch (at step, unless 0) by what (a NaN
 * or an Inf): which checkpoint the user keeps. Returns -1. */
static int diverged(const trainer *t, size_t epoch, size_t step, const char *what,
                    err_msg *err)
{
    char where[64];
    int n = snprintf(where, sizeof where, "epoch %zu", epoch);
    if (step && n > 0)
        snprintf(where + n, sizeof where - (size_t)n, ", step %zu", step);
    if (t->has_ckpt)
        return err_set(err, "%s: %s: training diverged and stopped; the last good "
                       "checkpoint is kept in %s (try a smaller --lr)", where, what,
                       t->ckpt_path);
    return err_set(err, "%s: %s: training diverged and stopped before its first save: "
                   "this run wrote no checkpoint (try a smaller --lr)", where, what);
}

/* Under mpirun only rank 0 writes; every rank calls it, as each holds
 * Adam's moments of its own slice of the parameters only: all are
 * gathered first. */
static int save(const trainer *t, const char *path, err_msg *err)
{
    if (dist_size() > 1) {
        dist_from_owners(t->adam_m, t->model.n_params, SHARD_SLICE_ALIGN);
        dist_from_owners(t->adam_v, t->model.n_params, SHARD_SLICE_ALIGN);
    }
    int rc = dist_rank() == 0
                 ? ckpt_save(path, &t->model, t->adam_m, t->adam_v, &t->st, err)
                 : 0;
    /* A state ckpt_save refused stops every rank alike. Each holds the
     * whole state now, so each can name the array (a second scan, made
     * only on this path). */
    if (dist_any(rc == CKPT_NONFINITE)) {
        char what[64];
        snprintf(what, sizeof what, "the %s are no longer finite",
                 ckpt_nonfinite(t->model.params, t->adam_m, t->adam_v, t->model.n_params));
        return diverged(t, (size_t)t->st.epoch + (t->st.step == 0 ? 0 : 1), 0, what, err);
    }
    return rc;
}

typedef struct adam_job {
    trainer *t;
    const float *grads[PAR_MAX_THREADS]; /* the shares' gradient buffers */
    size_t n_grads;
} adam_job;

/* Adam on parameters [lo, hi), summing the gradient shares. */
static void adam_range(void *ctx, size_t lo, size_t hi)
{
    const adam_job *j = ctx;
    trainer *t = j->t;
    const float *g[PAR_MAX_THREADS];
    for (size_t i = 0; i < j->n_grads; i++)
        g[i] = j->grads[i] + lo;
    adam_step(t->model.params + lo, g, j->n_grads, t->adam_m + lo,
              t->adam_v + lo, hi - lo, &t->adam, t->st.adam_t);
}

/* Adam on thread k's share of the parameters (shard_param_share: across
 * ranks within this rank's slice; in the units plan the thread's own
 * units' weights and biases). */
static void adam_share(void *ctx, size_t k, size_t T)
{
    const adam_job *j = ctx;
    shard_param_share(&j->t->shards, &j->t->model, k, T, adam_range, (void *)j);
}

/* How epoch (1-based) of the run sees its training images: intensities,
 * one binarization for the whole run (static), or a new one each epoch
 * (dynamic); and the key of the epoch's input corruption. */
static idx_view train_view(const ckpt_train *st, size_t epoch)
{
    uint64_t key = rng_mix(st->set.seed, BIN_SALT);
    idx_view v = {st->set.binarize != TRAIN_BIN_NONE,
                  st->set.binarize == TRAIN_BIN_DYNAMIC ? rng_mix(key, epoch) : key};
    return v;
}

/* One Adam step on images perm[first..first+B) in epoch (1-based).
 * Returns the batch's summed rec and kl through the pointers. The learning
 * rate and the KL's weight are the schedule's at this step: the fraction
 * first / n of the epoch done. */
static void train_step(trainer *t, const idx_set *set, size_t epoch,
                       size_t first, size_t B, double *rec, double *kl, double *obj)
{
    const model_net *m = &t->model;
    double frac = (double)first / (double)set->n;
    t->adam.lr = schedule_lr(&t->st.set.sched, epoch - 1, frac);
    double beta = t->st.set.beta * schedule_kl_factor(t->st.set.kl_warmup, epoch - 1, frac);
    idx_view view = train_view(&t->st, epoch);
    shard_batch b = {set, t->perm + first, 0, B, &view, (float)t->st.set.noise,
                     rng_mix(rng_mix(t->st.set.seed, CORRUPT_SALT), epoch)};
    t->st.adam_t++;
    adam_job j = {.t = t};
    j.n_grads = shard_grads(&t->shards, B, j.grads);
    shard_then then = {adam_share, &j};
    shard_step(&t->shards, m, &b, &t->st.rng_noise, beta, &then, rec, kl);
    *obj = shard_objective(&t->shards, B);
}

/* The epoch's order: identity shuffled by the data RNG as it stood when the
 * epoch began, so a resumed epoch draws the same order. Returns the RNG
 * state after the shuffle (the next epoch's starting state). */
static rng_state draw_order(trainer *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t->perm[i] = (uint32_t)i;
    rng_state r = t->st.rng_data;
    rng_shuffle(&r, t->perm, n);
    return r;
}

int train_check_shape(const model_config *cfg, const idx_set *set, const char *whose,
                      const char *what, err_msg *err)
{
    model_config c = *cfg;
    model_config_shape(&c);
    size_t ch = idx_channels(set);
    if (set->rows == c.height && set->cols == c.width && ch == c.channels)
        return 0;
    /* Sizes as width x height, as vae import's --size. */
    return err_set(err, "%s: the model takes %zux%zu %s images, but the %s images are "
                   "%zux%zu %s", whose, c.width, c.height, c.channels == 3 ? "colour" : "grey",
                   what, set->cols, set->rows, ch == 3 ? "colour" : "grey");
}

/* The data against the run: its images and labels must be what the model
 * takes (messages name `model`: the checkpoint of a resumed run, else the
 * data, which the new model's shape comes from), and a batch must fit in
 * the training set (`batch_of` names where the batch comes from). */
static int check_run(const idx_set *train, const idx_set *test, size_t batch,
                     const model_config *cfg, const char *batch_of, const char *model,
                     err_msg *err)
{
    if (train->n == 0)
        return err_set(err, "the training set is empty");
    if (train->n > UINT32_MAX)
        return err_set(err, "the training set has more than 2^32 images");
    if (batch == 0 || batch > train->n)
        return err_set(err, "%s: a batch of %zu images; the training set has %zu",
                       batch_of, batch, train->n);
    const idx_set *sets[2] = {train, test};
    for (int i = 0; i < 2; i++)
        if (sets[i] && sets[i]->n && train_check_shape(cfg, sets[i], model,
                                                       i ? "test" : "training", err))
            return -1;
    if (cfg->n_classes && !train->n_classes)
        return err_set(err, "%s: a conditional model needs labels, and the training "
                       "set has no label file", model);
    if (cfg->n_classes && test && test->n && !test->n_classes)
        return err_set(err, "%s: a conditional model needs labels, and the test set "
                       "has no label file", model);
    for (int i = 0; i < 2; i++)
        if (cfg->n_classes && sets[i] && sets[i]->n_classes > cfg->n_classes)
            return err_set(err, "%s: the model knows %zu classes, but the %s labels "
                           "go up to %zu", model, cfg->n_classes, i ? "test" : "training",
                           sets[i]->n_classes - 1);
    return 0;
}

/* What messages about a new run's data name: "--data DIR". */
static const char *data_label(const train_opts *o, char *buf, size_t size)
{
    snprintf(buf, size, "--data %s", o->data_name ? o->data_name : "(given)");
    return buf;
}

static int check_opts(const train_opts *o, const idx_set *train,
                      const idx_set *test, err_msg *err)
{
    if (o->resume) /* checked against the checkpoint once it is read */
        return train->n == 0 ? err_set(err, "the training set is empty") : 0;
    char data[4096 + 16];
    return check_run(train, test, o->set.batch, &o->cfg, "--batch",
                     data_label(o, data, sizeof data), err);
}

train_opts train_defaults(void)
{
    train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 15;
    o.set = settings_defaults();
    return o;
}

int train_run(const train_opts *o, const idx_set *train, const idx_set *test,
              const train_hooks *hooks, err_msg *err)
{
    if (check_opts(o, train, test, err))
        return -1;
    /* Under mpirun the ranks compute alike; rank 0 alone writes and tells
     * (save() writes nothing on the others). */
    train_opts mine = *o;
    if (dist_rank() != 0)
        hooks = NULL;
    o = &mine;
    trainer t;
    idx_fingerprint fp = idx_fingerprint_of(train);
    int start = trainer_start(&t, o, train, &fp, err);
    if (start) {
        trainer_free(&t);
        return start == TRAIN_REFUSED ? TRAIN_REFUSED : -1;
    }
    t.ckpt_path = o->ckpt_path;
    t.has_ckpt = o->resume;
    const model_net *m = &t.model;
    train = &t.part; /* from here on: the images trained on */
    size_t batch = (size_t)t.st.set.batch, n = train->n;
    char data[4096 + 16];
    if ((o->resume || t.st.set.valid) &&
        check_run(train, test, batch, &m->cfg, o->resume ? o->ckpt_path : "--valid",
                  o->resume ? o->ckpt_path : data_label(o, data, sizeof data), err)) {
        trainer_free(&t);
        return -1;
    }
    /* Said once the run will go on with it. */
    if (t.note[0] && hooks && hooks->warn)
        hooks->warn(hooks->ctx, t.note);
    size_t steps = (n + batch - 1) / batch;
    /* A run saved mid-epoch: step steps of this data's epoch done (all of
     * them when stopped after the last); on other data (--new-data) the
     * epoch may already be over. */
    if (o->resume && t.st.step > 0 &&
        ((t.st.step > steps && !o->new_data) || t.st.n_seen == 0 ||
         t.st.n_seen > t.st.step * batch)) {
        err_set(err, "%s: corrupt checkpoint: %llu steps of an epoch done and %llu images "
                "seen, where an epoch is %zu steps of %zu images", o->ckpt_path,
                (unsigned long long)t.st.step, (unsigned long long)t.st.n_seen, steps,
                batch);
        trainer_free(&t);
        return -1;
    }
    idx_view test_view = infer_test_view(t.st.set.binarize);
    train_epoch view = {(size_t)t.st.epoch, m, &t.eval->acts[0], test, &test_view,
                        t.st.set.seed, t.st.set.valid, &t.st};
    /* Only now that data, options and checkpoint are known good. */
    int rc = hooks && hooks->begin ? hooks->begin(hooks->ctx, &view, err) : 0;
    while (rc == 0 && t.st.epoch < o->epochs) {
        size_t epoch = (size_t)t.st.epoch + 1;
        rng_state next = draw_order(&t, n);
        double t0 = now_s();
        for (size_t s = (size_t)t.st.step; s < steps; s++) {
            size_t first = s * batch;
            size_t B = n - first < batch ? n - first : batch;
            double rec, kl, obj;
            train_step(&t, train, epoch, first, B, &rec, &kl, &obj);
            if (!isfinite(rec + kl + obj)) {
                char what[64];
                snprintf(what, sizeof what, "the loss is not finite (%g)", rec + kl);
                rc = diverged(&t, epoch, s + 1, what, err);
                break;
            }
            t.st.sum_rec += rec;
            t.st.sum_kl += kl;
            t.st.sum_obj += obj;
            t.st.n_seen += B;
            if (hooks && hooks->progress)
                hooks->progress(hooks->ctx, epoch, (size_t)t.st.n_seen, n,
                                t.st.seconds + now_s() - t0);
            /* A signal to any rank stops them all after the same step. */
            int stopping = o->stop && *o->stop;
            if (dist_size() > 1)
                stopping = dist_any(stopping);
            if (stopping) {
                t.st.step = s + 1;
                t.st.seconds += now_s() - t0;
                rc = save(&t, ckpt_target(o), err) ? -1 : TRAIN_STOPPED;
                /* No rank leaves before rank 0 has saved: mpirun ends the
                 * job once a rank exits with a non-zero status. */
                dist_barrier();
                break;
            }
        }
        if (rc != 0)
            break;
        train_report r = {0};
        r.epoch = epoch;
        r.epochs = o->epochs;
        r.beta = t.st.set.beta;
        r.lr = t.adam.lr;
        r.kl_factor = schedule_kl_factor(t.st.set.kl_warmup, epoch - 1,
                                      (double)((steps - 1) * batch) / (double)n);
        r.likelihood = m->cfg.likelihood;
        r.seconds = t.st.seconds + now_s() - t0;
        r.images_per_s = (double)t.st.n_seen / (r.seconds > 0 ? r.seconds : 1e-9);
        r.train_rec = t.st.sum_rec / (double)t.st.n_seen;
        r.train_kl = t.st.sum_kl / (double)t.st.n_seen;
        r.train_objective = t.st.sum_obj / (double)t.st.n_seen;
        r.train_loss = r.train_rec + r.train_kl;
        t.st.epoch++;
        t.st.step = 0;
        t.st.rng_data = next;
        t.st.sum_rec = t.st.sum_kl = t.st.sum_obj = t.st.seconds = 0.0;
        t.st.n_seen = 0;
        if (test && test->n)
            r.test_loss = infer_eval(m, t.eval, test, &test_view, t.st.set.seed,
                                     &r.test_rec, &r.test_kl);
        if (t.st.set.valid)
            r.valid_loss = infer_eval(m, t.eval, &t.valid, &test_view, t.st.set.seed,
                                      &r.valid_rec, &r.valid_kl);
        /* A model whose held-out loss overflows has diverged, even when
         * its training loss has not yet. */
        const char *held = !isfinite(r.test_loss) ? "test" : !isfinite(r.valid_loss)
                                                                ? "validation" : NULL;
        if (held) {
            char what[96];
            snprintf(what, sizeof what, "the %s loss is not finite (%g)", held,
                     held[0] == 't' ? r.test_loss : r.valid_loss);
            rc = diverged(&t, epoch, 0, what, err);
            break;
        }
        if (t.st.set.valid) {
            if (t.st.best_epoch == 0 || r.valid_loss < t.st.best_loss) {
                t.st.best_epoch = epoch;
                t.st.best_loss = r.valid_loss;
                /* Before the run's checkpoint, which records it as kept. */
                if (o->best_path && save(&t, o->best_path, err)) {
                    rc = -1;
                    break;
                }
            }
            r.best_epoch = (size_t)t.st.best_epoch;
        }
        view.epoch = epoch;
        if (hooks && hooks->pictures && hooks->pictures(hooks->ctx, &view, err)) {
            rc = -1;
            break;
        }
        if (hooks && hooks->record && hooks->record(hooks->ctx, &r, err)) {
            rc = -1;
            break;
        }
        if (save(&t, ckpt_target(o), err)) {
            rc = -1;
            break;
        }
        t.has_ckpt = 1;
        if (hooks && hooks->saved)
            hooks->saved(hooks->ctx);
        if (hooks && hooks->epoch_done && hooks->epoch_done(hooks->ctx, &r, err)) {
            rc = -1;
            break;
        }
    }
    trainer_free(&t);
    return rc;
}

/* The benchmark's traces: every thread records, replays and frees its own. */
enum { TRACE_START, TRACE_STOP, TRACE_REPLAY, TRACE_FREE };

typedef struct trace_job {
    int op;
    size_t calls[PAR_MAX_THREADS];
    double flops[PAR_MAX_THREADS];
    int failed[PAR_MAX_THREADS];
} trace_job;

static void trace_task(void *ctx, size_t k, size_t T)
{
    (void)T;
    trace_job *j = ctx;
    switch (j->op) {
    case TRACE_START: gemm_trace_start(); break;
    case TRACE_STOP:
        j->calls[k] = gemm_trace_stop();
        j->flops[k] = gemm_trace_flops();
        break;
    case TRACE_REPLAY: j->failed[k] = gemm_trace_replay(NULL); break;
    default: gemm_trace_free(); break;
    }
}

static void trace_all(trace_job *j, int op)
{
    j->op = op;
    par_run(trace_task, j);
}

int train_bench(const train_opts *o, const idx_set *train, size_t rounds,
                train_bench_round *out, double *gemm_flops, err_msg *err)
{
    train_opts fresh = *o;
    fresh.resume = 0;
    fresh.set.valid = 0; /* the benchmark trains on every image */
    if (check_opts(&fresh, train, NULL, err))
        return -1;
    trainer t;
    idx_fingerprint fp = {0}; /* never saved: no checksum pass over the data */
    if (trainer_start(&t, &fresh, train, &fp, err)) {
        trainer_free(&t);
        return -1;
    }
    size_t n = train->n, batch = o->set.batch, steps = (n + batch - 1) / batch;
    /* Warm-up: one step untimed so thread start-up and first-touch page
     * faults count in neither measurement. */
    draw_order(&t, n);
    double rec, kl, obj;
    train_step(&t, train, 1, 0, batch, &rec, &kl, &obj);
    int rc = 0;
    trace_job j;
    memset(&j, 0, sizeof j);
    *gemm_flops = 0.0;
    for (size_t r = 0; r < rounds && rc == 0; r++) {
        t.st.rng_data = draw_order(&t, n);
        out[r].epoch_s = out[r].gemm_s = out[r].comm_s = 0.0;
        out[r].steps = steps;
        /* Each step is timed, then the sgemm calls each thread made in it
         * are replayed alone, by the same threads at once, right after it:
         * both sides of the ratio see the same moment of a noisy shared
         * machine. The replay overwrites activations and gradients, never
         * parameters or Adam state, so training goes on as in train_run. */
        for (size_t s = 0; s < steps && rc == 0; s++) {
            size_t first = s * batch;
            trace_all(&j, TRACE_START);
            double c0 = dist_time();
            double t0 = now_s();
            train_step(&t, train, r + 1, first, n - first < batch ? n - first : batch,
                       &rec, &kl, &obj);
            double t1 = now_s();
            trace_all(&j, TRACE_STOP);
            double t2 = now_s();
            trace_all(&j, TRACE_REPLAY);
            double t3 = now_s();
            out[r].epoch_s += t1 - t0;
            out[r].comm_s += dist_time() - c0;
            out[r].gemm_s += t3 - t2;
            size_t calls = 0;
            for (size_t k = 0; k < par_threads(); k++) {
                calls += j.calls[k];
                if (j.failed[k])
                    rc = err_set(err, "gemm trace: out of memory while recording");
                if (r == 0)
                    *gemm_flops += j.flops[k];
            }
            if (calls == 0 && rc == 0)
                rc = err_set(err, "gemm trace: no sgemm calls recorded");
        }
    }
    trace_all(&j, TRACE_FREE);
    trainer_free(&t);
    return rc;
}
