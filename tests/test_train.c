/* test_train.c - the training loop on small synthetic data: the loss goes
 * down, and a run that is resumed (at an epoch boundary or after a stop in
 * the middle of an epoch) ends bit-identical to an uninterrupted one. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "par.h"
#include "rng.h"
#include "train.h"

#define N_TRAIN 320
#define N_TEST 64

static char dir[64];
static idx_set train_set, test_set;

/* Digits-like images: a few bright strokes at random places. */
static void make_set(idx_set *s, size_t n, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    s->n = n;
    s->rows = s->cols = 28;
    s->images = calloc(n * 784, 1);
    s->labels = calloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t *img = s->images + i * 784;
        s->labels[i] = (uint8_t)(i % 10);
        size_t kind = i % 4, pos = 6 + rng_below(&r, 16);
        for (size_t k = 4; k < 24; k++) {
            size_t y = kind < 2 ? k : pos, x = kind < 2 ? pos : k;
            img[y * 28 + x] = 255;
            img[y * 28 + x + 1] = (uint8_t)(128 + rng_below(&r, 127));
        }
    }
}

static int group_setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/vae-test-train-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    make_set(&train_set, N_TRAIN, 1);
    make_set(&test_set, N_TEST, 2);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    idx_free(&train_set);
    idx_free(&test_set);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static train_opts base_opts(const char *ckpt, size_t epochs)
{
    train_opts o = train_defaults();
    o.epochs = epochs;
    o.set.batch = 32;
    o.set.sched.lr = 1e-3;
    o.set.seed = 7;
    o.set.beta = 1.0;
    o.cfg = (model_config){784, 1, {32}, 4, MODEL_ACT_RELU, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    o.ckpt_path = ckpt;
    return o;
}

typedef struct epochs_seen {
    size_t n;
    train_report r[8];
} epochs_seen;

static int on_epoch(void *ctx, const train_report *r, err_msg *err)
{
    (void)err;
    epochs_seen *e = ctx;
    if (e->n < 8)
        e->r[e->n++] = *r;
    return 0;
}

/* What the record hook saw of the checkpoint, and where it fails. */
typedef struct record_probe {
    const char *ckpt;
    size_t seen_ckpt_epoch[8], calls, fail_at;
} record_probe;

/* The checkpoint's epoch when the epoch's record is written; fails at
 * epoch fail_at (0: never). */
static int on_record(void *ctx, const train_report *r, err_msg *err)
{
    record_probe *p = ctx;
    ckpt_data d;
    err_msg e;
    size_t done = ckpt_read(p->ckpt, &d, &e) == 0 ? (size_t)d.train.epoch : 0;
    ckpt_data_free(&d);
    if (p->calls < 8)
        p->seen_ckpt_epoch[p->calls++] = done;
    if (r->epoch == p->fail_at)
        return err_set(err, "record of epoch %zu failed", r->epoch);
    return 0;
}

/* An epoch's record is written before its checkpoint: the checkpoint holds
 * the epoch before, and when the record fails the epoch is not saved (a
 * resume writes its record again), so no record is ever missing. */
static void test_record_before_save(void **state)
{
    (void)state;
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/record.bin", dir);
    train_opts o = base_opts(ckpt, 3);
    record_probe p = {.ckpt = ckpt, .fail_at = 3};
    train_hooks h = {.ctx = &p, .record = on_record};
    err_msg err;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h, &err), -1);
    assert_non_null(strstr(err.text, "record of epoch 3 failed"));
    assert_int_equal(p.calls, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(p.seen_ckpt_epoch[i], i); /* epoch i + 1 not saved yet */
    ckpt_data d;
    assert_int_equal(ckpt_read(ckpt, &d, &err), 0);
    assert_int_equal(d.train.epoch, 2); /* epoch 3 was not saved */
    ckpt_data_free(&d);
}

static void test_loss_goes_down(void **state)
{
    (void)state;
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/down.bin", dir);
    train_opts o = base_opts(ckpt, 5);
    o.set.sched.lr = 5e-3; /* 50 steps in all: a larger step than the default */
    epochs_seen seen = {0};
    train_hooks h = {NULL, on_epoch, NULL, &seen};
    err_msg err;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h, &err), 0);
    assert_int_equal(seen.n, 5);
    for (size_t i = 0; i < seen.n; i++) {
        const train_report *r = &seen.r[i];
        printf("  epoch %zu: train %.2f (rec %.2f kl %.2f) test %.2f\n", r->epoch,
               r->train_loss, r->train_rec, r->train_kl, r->test_loss);
        assert_int_equal(r->epoch, i + 1);
        assert_true(isfinite(r->test_loss) && r->seconds > 0.0);
        assert_true(fabs(r->train_loss - r->train_rec - r->train_kl) < 1e-6);
    }
    /* 784 pixels at the initial loss ~ln 2 each: ~543 nats; it must fall a lot */
    assert_true(seen.r[0].train_loss > 300.0);
    assert_true(seen.r[4].train_loss < 0.6 * seen.r[0].train_loss);
    assert_true(seen.r[4].test_loss < seen.r[0].test_loss);
}

/* Asserts two checkpoints hold the same parameters, moments and state. */
static void assert_same_run(const char *a, const char *b)
{
    ckpt_data x, y;
    err_msg err;
    assert_int_equal(ckpt_read(a, &x, &err), 0);
    assert_int_equal(ckpt_read(b, &y, &err), 0);
    assert_int_equal(x.n_params, y.n_params);
    assert_memory_equal(x.params, y.params, x.n_params * sizeof(float));
    assert_memory_equal(x.adam_m, y.adam_m, x.n_params * sizeof(float));
    assert_memory_equal(x.adam_v, y.adam_v, x.n_params * sizeof(float));
    assert_true(x.train.epoch == y.train.epoch && x.train.adam_t == y.train.adam_t);
    assert_memory_equal(&x.train.rng_data, &y.train.rng_data, sizeof(rng_state));
    assert_memory_equal(&x.train.rng_noise, &y.train.rng_noise, sizeof(rng_state));
    ckpt_data_free(&x);
    ckpt_data_free(&y);
}

static void test_resume_at_epoch_boundary(void **state)
{
    (void)state;
    char straight[128], split[128];
    snprintf(straight, sizeof straight, "%s/straight.bin", dir);
    snprintf(split, sizeof split, "%s/split.bin", dir);
    err_msg err;
    train_opts o = base_opts(straight, 2);
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    o = base_opts(split, 1);
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    o = base_opts(split, 2);
    o.resume = 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, split);
    /* Asking for no more epochs than the run has is an error, not a no-op. */
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), TRAIN_REFUSED);
    assert_non_null(strstr(err.text, "already has 2 epochs"));
}

typedef struct stopper {
    volatile sig_atomic_t *flag;
    size_t calls, at;
} stopper;

static void stop_after(void *ctx, size_t epoch, size_t done, size_t total,
                       double seconds)
{
    (void)epoch, (void)done, (void)total, (void)seconds;
    stopper *s = ctx;
    if (++s->calls == s->at)
        *s->flag = 1;
}

/* A stop in the middle of epoch 2 (as SIGINT does) saves the exact state;
 * resuming ends where the uninterrupted run ends. */
static void test_stop_mid_epoch_and_resume(void **state)
{
    (void)state;
    char straight[128], stopped[128];
    snprintf(straight, sizeof straight, "%s/straight3.bin", dir);
    snprintf(stopped, sizeof stopped, "%s/stopped.bin", dir);
    err_msg err;
    train_opts o = base_opts(straight, 3);
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);

    volatile sig_atomic_t flag = 0;
    stopper s = {&flag, 0, 10 + 3}; /* 10 steps an epoch: step 3 of epoch 2 */
    train_hooks h = {stop_after, NULL, NULL, &s};
    o = base_opts(stopped, 3);
    o.stop = &flag;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h, &err), TRAIN_STOPPED);
    ckpt_data d;
    assert_int_equal(ckpt_read(stopped, &d, &err), 0);
    assert_int_equal(d.train.epoch, 1);
    assert_int_equal(d.train.step, 3);
    assert_int_equal(d.train.n_seen, 96);
    ckpt_data_free(&d);

    flag = 0;
    o = base_opts(stopped, 3);
    o.resume = 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, stopped);
}

/* The training controls: a staged schedule across its stage boundaries
 * (epochs 1 | 2-4 | 5-13), KL warm-up, Adam's settings and Glorot init.
 * Stopped mid-epoch in stage 2 and resumed, the run ends bit-identical to
 * a straight one; each control changes the run; a resume asked for other
 * controls is refused. */
static train_opts controlled(const char *ckpt, size_t epochs)
{
    train_opts o = base_opts(ckpt, epochs);
    o.set.sched.kind = SCHEDULE_STAGED;
    o.set.kl_warmup = 3;
    o.set.adam_eps = 1e-4;
    o.set.adam_beta2 = 0.99;
    o.set.init = TRAIN_INIT_GLOROT;
    return o;
}

static void test_controls_resume(void **state)
{
    (void)state;
    char straight[128], stopped[128], plain[128];
    snprintf(straight, sizeof straight, "%s/controls.bin", dir);
    snprintf(stopped, sizeof stopped, "%s/controls-stopped.bin", dir);
    snprintf(plain, sizeof plain, "%s/controls-plain.bin", dir);
    err_msg err;
    epochs_seen seen = {0};
    train_hooks h = {NULL, on_epoch, NULL, &seen};
    train_opts o = controlled(straight, 5);
    assert_int_equal(train_run(&o, &train_set, &test_set, &h, &err), 0);
    /* The rate of each epoch's last step, and the KL's factor there. */
    const double lr[5] = {1e-3, 1e-3 * pow(10, -1 / 7.0), 1e-3 * pow(10, -1 / 7.0),
                          1e-3 * pow(10, -1 / 7.0), 1e-3 * pow(10, -2 / 7.0)};
    for (size_t e = 0; e < 5; e++) {
        assert_true(fabs(seen.r[e].lr - lr[e]) < 1e-15);
        double f = ((double)e + 0.9) / 3.0; /* the last of 10 steps starts at 0.9 */
        assert_true(fabs(seen.r[e].kl_factor - (f < 1.0 ? f : 1.0)) < 1e-12);
    }
    ckpt_data d;
    assert_int_equal(ckpt_read(straight, &d, &err), 0);
    assert_int_equal(d.train.set.sched.kind, SCHEDULE_STAGED);
    assert_int_equal(d.train.set.kl_warmup, 3);
    assert_true(d.train.set.adam_eps == 1e-4 && d.train.set.adam_beta2 == 0.99);
    assert_int_equal(d.train.set.init, TRAIN_INIT_GLOROT);
    ckpt_data_free(&d);

    volatile sig_atomic_t flag = 0;
    stopper s = {&flag, 0, 2 * 10 + 6}; /* step 6 of epoch 3, in stage 1 */
    train_hooks hs = {stop_after, NULL, NULL, &s};
    o = controlled(stopped, 5);
    o.stop = &flag;
    assert_int_equal(train_run(&o, &train_set, &test_set, &hs, &err), TRAIN_STOPPED);
    flag = 0;
    o = base_opts(stopped, 5); /* the run's own controls come from the checkpoint */
    o.resume = 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, stopped);

    /* Without the controls the run differs (else the test above proves little). */
    o = base_opts(plain, 5);
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    ckpt_data x, y;
    assert_int_equal(ckpt_read(straight, &x, &err), 0);
    assert_int_equal(ckpt_read(plain, &y, &err), 0);
    assert_true(memcmp(x.params, y.params, x.n_params * sizeof(float)) != 0);
    ckpt_data_free(&x);
    ckpt_data_free(&y);

    o = controlled(stopped, 6);
    o.resume = 1;
    o.given = (uint64_t)1 << SETTING_SCHEDULE | (uint64_t)1 << SETTING_KL_WARMUP;
    o.set.sched.kind = SCHEDULE_CONSTANT;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), TRAIN_REFUSED);
    assert_non_null(strstr(err.text, "--schedule given other than the run being resumed's"));
    o.set.sched.kind = SCHEDULE_STAGED; /* the same controls, said again: fine */
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);

    /* Every setting a resumed run keeps: given other than the run's, it is
     * refused by name (and nothing trains); said again as the run's, fine. */
    ckpt_data before;
    assert_int_equal(ckpt_read(stopped, &before, &err), 0);
    size_t tried = 0;
    for (int i = -1; i < SETTING_COUNT; i++) { /* -1: the model */
        if (i >= 0 && !SETTINGS[i].option)
            continue; /* derived: no option gives it */
        o = controlled(stopped, 8);
        o.resume = 1;
        o.set = before.train.set; /* the run's own, then one value moved */
        o.given = i >= 0 ? (uint64_t)1 << i : 0;
        o.given_model = i < 0 ? 1u << TRAIN_PART_LATENT : 0;
        o.part_option[TRAIN_PART_LATENT] = "--latent";
        switch (i) {
        case -1: o.cfg.z_dim += 1; break;
        case SETTING_SEED: o.set.seed += 1; break;
        case SETTING_BATCH: o.set.batch += 1; break;
        case SETTING_LR: o.set.sched.lr *= 2.0; break;
        case SETTING_BETA: o.set.beta += 0.5; break;
        case SETTING_BINARIZE: o.set.binarize = TRAIN_BIN_DYNAMIC; break;
        case SETTING_NOISE: o.set.noise += 0.1; break;
        case SETTING_SCHEDULE: o.set.sched.kind = SCHEDULE_COSINE; break;
        case SETTING_WARMUP: o.set.sched.warmup += 1; break;
        case SETTING_LR_EVERY: o.set.sched.every += 1; break;
        case SETTING_LR_GAMMA: o.set.sched.gamma += 0.25; break;
        case SETTING_KL_WARMUP: o.set.kl_warmup += 1; break;
        case SETTING_ADAM_BETA1: o.set.adam_beta1 = 0.5; break;
        case SETTING_ADAM_BETA2: o.set.adam_beta2 = 0.5; break;
        case SETTING_ADAM_EPS: o.set.adam_eps = 1e-3; break;
        case SETTING_INIT: o.set.init = TRAIN_INIT_TORCH; break;
        case SETTING_VALID: o.set.valid += 1; break;
        case SETTING_OBJECTIVE: o.set.objective = MODEL_OBJ_IWAE; break;
        case SETTING_DRAWS: o.set.draws += 1; break;
        case SETTING_ESTIMATOR: o.set.estimator = MODEL_EST_DREG; break;
        default: fail_msg("no case for the setting %s: add one", SETTINGS[i].key);
        }
        assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), TRAIN_REFUSED);
        /* One the run does not use is named as such, whatever its value. */
        char want[96];
        if (i >= 0 && SETTINGS[i].needs && !settings_applies(&before.train.set, (setting_id)i))
            snprintf(want, sizeof want, "%s applies to %s, which the run being resumed does "
                     "not have", SETTINGS[i].option, SETTINGS[i].needs);
        else
            snprintf(want, sizeof want, "%s given other than the run being resumed's",
                     i < 0 ? "--latent" : SETTINGS[i].option);
        if (!strstr(err.text, want))
            fail_msg("expected \"%s\" in: %s", want, err.text);
        tried++;
    }
    assert_int_equal(tried, 20); /* the model and 19 settings with an option */

    /* Each part of the model, given other than the run's, is refused by its
     * option's name; the parts not given are not compared. */
    static const char *const PART_OPTION[TRAIN_PART_COUNT] = {
        "--hidden", "--latent", "--act", "--arch", "--likelihood", "--conditional"};
    for (int p = 0; p < TRAIN_PART_COUNT; p++) {
        o = controlled(stopped, 8);
        o.resume = 1;
        o.set = before.train.set;
        o.given = 0;
        o.given_model = 1u << p;
        memcpy(o.part_option, PART_OPTION, sizeof PART_OPTION);
        o.cfg = before.cfg;
        o.cfg.z_dim += 7; /* not given: not compared */
        switch ((train_model_part)p) {
        case TRAIN_PART_HIDDEN: o.cfg.hidden[0] += 1; break;
        case TRAIN_PART_LATENT: o.cfg.z2_dim = 2; break;
        case TRAIN_PART_ACT:
            o.cfg.act = o.cfg.act == MODEL_ACT_TANH ? MODEL_ACT_RELU : MODEL_ACT_TANH;
            break;
        case TRAIN_PART_ARCH: o.cfg.arch = MODEL_ARCH_CONV; break;
        case TRAIN_PART_LIKELIHOOD: o.cfg.likelihood = MODEL_LIK_CB; break;
        case TRAIN_PART_CONDITIONAL: o.cfg.n_classes = o.cfg.n_classes ? 0 : 10; break;
        case TRAIN_PART_COUNT: break;
        }
        if (p == TRAIN_PART_LATENT)
            o.cfg.z_dim = before.cfg.z_dim; /* given: z2 differs */
        assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), TRAIN_REFUSED);
        char want[96];
        snprintf(want, sizeof want, "%s given other than the run being resumed's",
                 PART_OPTION[p]);
        if (!strstr(err.text, want))
            fail_msg("part %d: expected \"%s\" in: %s", p, want, err.text);
    }
    ckpt_data after;
    assert_int_equal(ckpt_read(stopped, &after, &err), 0);
    assert_int_equal(after.train.epoch, before.train.epoch); /* nothing trained */
    ckpt_data_free(&after);
    /* The run's own values, all said again (each setting it uses, each
     * part of the model): fine. */
    o = controlled(stopped, 8);
    o.resume = 1;
    o.given = 0;
    for (int i = 0; i < SETTING_COUNT; i++)
        if (settings_applies(&before.train.set, (setting_id)i))
            o.given |= (uint64_t)1 << i;
    o.given_model = (1u << TRAIN_PART_COUNT) - 1;
    memcpy(o.part_option, PART_OPTION, sizeof PART_OPTION);
    o.set.sched = before.train.set.sched;
    o.set.seed = before.train.set.seed;
    o.set.valid = before.train.set.valid;
    o.cfg = before.cfg; /* the shape the run filled in from its data */
    ckpt_data_free(&before);
    if (train_run(&o, &train_set, &test_set, NULL, &err) != 0)
        fail_msg("the run's own settings said again: %s", err.text);
}

/* Training on the importance-weighted bound with 3 draws an image: the
 * objective reported is below the negative ELBO (a tighter bound), stored,
 * and a stop mid-epoch then a resume ends bit-identical to a straight run;
 * the test loss stays the one-draw ELBO of the evaluation. */
static void test_iwae_resume(void **state)
{
    (void)state;
    char straight[128], stopped[128];
    snprintf(straight, sizeof straight, "%s/iwae.bin", dir);
    snprintf(stopped, sizeof stopped, "%s/iwae-stopped.bin", dir);
    err_msg err;
    epochs_seen seen = {0};
    train_hooks h = {NULL, on_epoch, NULL, &seen};
    train_opts o = base_opts(straight, 3);
    o.set.objective = MODEL_OBJ_IWAE;
    o.set.draws = 3;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h, &err), 0);
    for (size_t e = 0; e < 3; e++) {
        printf("  epoch %zu: -ELBO %.4f, IWAE objective (k = 3) %.4f\n", e + 1,
               seen.r[e].train_loss, seen.r[e].train_objective);
        assert_true(seen.r[e].train_objective < seen.r[e].train_loss);
    }
    ckpt_data d;
    assert_int_equal(ckpt_read(straight, &d, &err), 0);
    assert_int_equal(d.train.set.objective, MODEL_OBJ_IWAE);
    assert_int_equal(d.train.set.draws, 3);
    ckpt_data_free(&d);

    volatile sig_atomic_t flag = 0;
    stopper s = {&flag, 0, 10 + 4}; /* step 4 of epoch 2 */
    train_hooks hs = {stop_after, NULL, NULL, &s};
    o = base_opts(stopped, 3);
    o.set.objective = MODEL_OBJ_IWAE;
    o.set.draws = 3;
    o.stop = &flag;
    assert_int_equal(train_run(&o, &train_set, &test_set, &hs, &err), TRAIN_STOPPED);
    flag = 0;
    o = base_opts(stopped, 3);
    o.resume = 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, stopped);
}

/* The validation split: disjoint, together the whole set, each in file
 * order with its labels, fixed by the seed. */
static void test_valid_split(void **state)
{
    (void)state;
    idx_set whole = train_set, part, valid;
    size_t n = whole.n, D = whole.rows * whole.cols;
    whole.images = malloc(n * D);
    assert_non_null(whole.images);
    memcpy(whole.images, train_set.images, n * D);
    for (size_t i = 0; i < n; i++) /* each image tagged with its index */
        memcpy(whole.images + i * D, &i, sizeof i);
    err_msg err;
    assert_int_equal(train_split(&whole, 30, 7, &part, &valid, &err), 0);
    assert_int_equal(valid.n, 30);
    assert_int_equal(part.n, n - 30);
    uint8_t *seen = calloc(n, 1);
    assert_non_null(seen);
    const idx_set *sets[2] = {&part, &valid};
    for (int k = 0; k < 2; k++) {
        size_t prev = 0;
        for (size_t j = 0; j < sets[k]->n; j++) {
            size_t i;
            memcpy(&i, sets[k]->images + j * D, sizeof i);
            assert_true(i < n && !seen[i]);
            assert_true(j == 0 || i > prev); /* file order */
            assert_memory_equal(sets[k]->images + j * D, whole.images + i * D, D);
            assert_int_equal(sets[k]->labels[j], whole.labels[i]);
            seen[i] = 1;
            prev = i;
        }
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    /* The same seed holds out the same images; another seed others. */
    idx_set part2, valid2;
    assert_int_equal(train_split(&whole, 30, 7, &part2, &valid2, &err), 0);
    assert_memory_equal(valid.images, valid2.images, 30 * D);
    idx_free(&part2);
    idx_free(&valid2);
    assert_int_equal(train_split(&whole, 30, 8, &part2, &valid2, &err), 0);
    assert_true(memcmp(valid.images, valid2.images, 30 * D) != 0);
    idx_free(&part2);
    idx_free(&valid2);
    assert_int_equal(train_split(&whole, 0, 7, &part2, &valid2, &err), -1);
    assert_int_equal(train_split(&whole, n, 7, &part2, &valid2, &err), -1);
    assert_non_null(strstr(err.text, "--valid"));
    idx_free(&part);
    idx_free(&valid);
    free(seen);
    free(whole.images);
}

/* With --valid, each epoch reports the held-out loss, the best epoch's
 * model is kept, and a stopped, resumed run ends bit-identical to a
 * straight one (best model included). */
static void test_valid_resume(void **state)
{
    (void)state;
    char straight[128], stopped[128], best1[128], best2[128];
    snprintf(straight, sizeof straight, "%s/valid.bin", dir);
    snprintf(stopped, sizeof stopped, "%s/valid-stopped.bin", dir);
    snprintf(best1, sizeof best1, "%s/valid.best.bin", dir);
    snprintf(best2, sizeof best2, "%s/valid-stopped.best.bin", dir);
    err_msg err;
    epochs_seen seen = {0};
    train_hooks h = {NULL, on_epoch, NULL, &seen};
    train_opts o = base_opts(straight, 3);
    o.set.valid = 40;
    o.best_path = best1;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h, &err), 0);
    for (size_t e = 0; e < 3; e++) {
        assert_true(seen.r[e].valid_loss > 0.0 && seen.r[e].best_epoch >= 1);
        assert_true(seen.r[e].best_epoch <= e + 1);
    }
    ckpt_data d, b;
    assert_int_equal(ckpt_read(straight, &d, &err), 0);
    assert_int_equal(ckpt_read(best1, &b, &err), 0);
    assert_int_equal(d.train.set.valid, 40);
    assert_int_equal(d.train.best_epoch, seen.r[2].best_epoch);
    assert_int_equal(b.train.epoch, d.train.best_epoch); /* the best epoch's state */
    assert_true(d.train.best_loss == b.train.best_loss);
    /* 260 images trained on: 9 steps of 32 an epoch. */
    assert_int_equal(d.train.adam_t, 3 * 9);
    ckpt_data_free(&d);
    ckpt_data_free(&b);

    volatile sig_atomic_t flag = 0;
    stopper s = {&flag, 0, 9 + 4}; /* step 4 of epoch 2 */
    train_hooks hs = {stop_after, NULL, NULL, &s};
    o = base_opts(stopped, 3);
    o.set.valid = 40;
    o.best_path = best2;
    o.stop = &flag;
    assert_int_equal(train_run(&o, &train_set, &test_set, &hs, &err), TRAIN_STOPPED);
    flag = 0;
    o = base_opts(stopped, 3);
    o.resume = 1;
    o.best_path = best2;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, stopped);
    assert_same_run(best1, best2);
}

/* With a team of 3 threads and a batch that splits raggedly (30 = 10 + 10
 * + 10, the last batch 20 = 7 + 7 + 6), a run is reproducible, a stop and
 * resume mid-epoch ends bit-identical, and the result matches one thread's
 * up to the order of float sums. */
static void test_team_of_three(void **state)
{
    (void)state;
    char one[128], straight[128], again[128], stopped[128];
    snprintf(one, sizeof one, "%s/team1.bin", dir);
    snprintf(straight, sizeof straight, "%s/team3.bin", dir);
    snprintf(again, sizeof again, "%s/team3b.bin", dir);
    snprintf(stopped, sizeof stopped, "%s/team3-stopped.bin", dir);
    err_msg err;
    epochs_seen seen1 = {0}, seen3 = {0};
    train_hooks h1 = {NULL, on_epoch, NULL, &seen1}, h3 = {NULL, on_epoch, NULL, &seen3};

    train_opts o = base_opts(one, 2);
    o.set.batch = 30;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h1, &err), 0);

    assert_int_equal(par_init(3, &err), 0);
    o.ckpt_path = straight;
    assert_int_equal(train_run(&o, &train_set, &test_set, &h3, &err), 0);
    o.ckpt_path = again;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, again);
    for (size_t e = 0; e < 2; e++) {
        printf("  epoch %zu: train loss %.6f (1 thread) %.6f (3 threads)\n", e + 1,
               seen1.r[e].train_loss, seen3.r[e].train_loss);
        assert_true(fabs(seen1.r[e].train_loss - seen3.r[e].train_loss) <
                    1e-4 * seen1.r[e].train_loss);
    }

    volatile sig_atomic_t flag = 0;
    stopper s = {&flag, 0, 11 + 4}; /* 11 steps an epoch: step 4 of epoch 2 */
    train_hooks hs = {stop_after, NULL, NULL, &s};
    o.ckpt_path = stopped;
    o.stop = &flag;
    assert_int_equal(train_run(&o, &train_set, &test_set, &hs, &err), TRAIN_STOPPED);
    flag = 0;
    o.resume = 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    assert_same_run(straight, stopped);
    par_shutdown();
}

/* A run whose loss becomes non-finite stops with the epoch and step, and
 * the checkpoint on disk is the last good one, untouched. */
static void test_nonfinite_loss_keeps_checkpoint(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/blowup.bin", dir);
    err_msg err;
    train_opts o = base_opts(path, 1);
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), 0);
    /* Make the output layer's weights huge: logits overflow to inf. */
    ckpt_data d;
    assert_int_equal(ckpt_read(path, &d, &err), 0);
    model_net m;
    assert_int_equal(model_init(&m, &d.cfg, &err), 0);
    memcpy(m.params, d.params, d.n_params * sizeof(float));
    const model_layer *out = &m.layer[m.n_layers - 1];
    for (size_t i = 0; i < out->in * out->out; i++)
        m.params[out->w_off + i] = 3e38f;
    float *mom = calloc(2 * d.n_params, sizeof(float));
    assert_int_equal(ckpt_save(path, &m, mom, mom + d.n_params, &d.train, &err), 0);
    ckpt_data_free(&d);
    FILE *f = fopen(path, "rb");
    static unsigned char before[4 << 20], after[4 << 20];
    size_t nb = fread(before, 1, sizeof before, f);
    fclose(f);

    o = base_opts(path, 2);
    o.resume = 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), -1);
    printf("  %s\n", err.text);
    assert_non_null(strstr(err.text, "epoch 2, step 1"));
    assert_non_null(strstr(err.text, "not finite"));
    f = fopen(path, "rb");
    size_t na = fread(after, 1, sizeof after, f);
    fclose(f);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb);
    model_free(&m);
    free(mom);
}

static void test_bad_options(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.bin", dir);
    err_msg err;
    train_opts o = base_opts(path, 1);
    o.set.batch = N_TRAIN + 1;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), -1);
    assert_non_null(strstr(err.text, "--batch"));
    o = base_opts(path, 1);
    o.cfg.x_dim = 100;
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), -1);
    assert_non_null(strstr(err.text, "the model takes 10x10 grey images, but the "
                                     "training images are 28x28 grey"));
    /* Resuming a model for other images: refused, never run (it would
     * read 784 pixels into rows of 100). */
    {
        char other[128];
        snprintf(other, sizeof other, "%s/x100.bin", dir);
        train_opts small = base_opts(other, 1);
        small.cfg.x_dim = 100;
        idx_set tiny = train_set;
        tiny.rows = 10;
        tiny.cols = 10; /* the same bytes, read as 10x10 images */
        assert_int_equal(train_run(&small, &tiny, NULL, NULL, &err), 0);
        o = base_opts(other, 2);
        o.resume = 1;
        assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), -1);
        assert_non_null(strstr(err.text, "its images are 28x28, the run's were 10x10"));
        o.new_data = 1; /* other data on purpose: still not for this model */
        assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), -1);
        assert_non_null(strstr(err.text, "the model takes 10x10 grey images, but the "
                                         "training images are 28x28"));
    }
    o = base_opts(path, 1);
    o.resume = 1; /* nothing to resume */
    assert_int_equal(train_run(&o, &train_set, &test_set, NULL, &err), -1);
    assert_non_null(strstr(err.text, path));
    assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_goes_down),
        cmocka_unit_test(test_record_before_save),
        cmocka_unit_test(test_resume_at_epoch_boundary),
        cmocka_unit_test(test_stop_mid_epoch_and_resume),
        cmocka_unit_test(test_team_of_three),
        cmocka_unit_test(test_controls_resume),
        cmocka_unit_test(test_iwae_resume),
        cmocka_unit_test(test_valid_split),
        cmocka_unit_test(test_valid_resume),
        cmocka_unit_test(test_nonfinite_loss_keeps_checkpoint),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
