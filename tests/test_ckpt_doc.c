/* test_ckpt_doc.c - docs/checkpoint.md checked against the code, so the
 * document cannot drift: its header-field table against what ckpt_save
 * writes, its worked example against the default model's layout and a
 * written checkpoint, its RNG and init test vectors against rng.c and
 * vae.c, its schedule tables against schedule.c, its objectives and the
 * order of the training noise against model_loss and shard_draw_eps, its
 * gradient estimators against model_backward, its model with two stochastic
 * layers (layout, densities, objectives and their gradients, the draws of
 * training, the importance-weighted bound and the prior) against the code,
 * and its reader rules (versions 6, 5, 4, 3 and 2, header sizes, the image
 * shape, data fingerprint, training controls, objective, estimator, the
 * second stochastic layer) against ckpt_read.
 *
 * The tables are read from the document itself (path in VAE_CKPT_DOC, set
 * by CMakeLists.txt): each is found by its heading row, and every row must
 * be one the test knows and checks. A wrong number fails with the
 * document's line. */
#define _GNU_SOURCE /* mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ckpt.h"
#include "idx.h"
#include "infer.h"
#include "par.h"
#include "rng.h"
#include "schedule.h"
#include "shard.h"
#include "show.h"
#include "train.h"
#include "model.h"
#include "testutil.h"

#define OFF_HEADER 16 /* magic, version, header size */

/* ======================================================================== */
/* Reading the document's tables                                            */
/* ======================================================================== */

#define DOC_MAX_ROWS 64
#define DOC_MAX_CELLS 8

typedef struct doc_row {
    char *cell[DOC_MAX_CELLS];
    size_t n_cells;
    size_t line; /* 1-based, for messages */
} doc_row;

/* One markdown table of the document; the cells point into text. */
typedef struct doc_table {
    char *text;
    const char *heading;
    doc_row row[DOC_MAX_ROWS];
    size_t n_rows;
} doc_table;

static const char *doc_path(void)
{
    const char *p = getenv("VAE_CKPT_DOC");
    if (!p || !*p)
        fail_msg("VAE_CKPT_DOC is not set: it must name docs/checkpoint.md "
                 "(CMakeLists.txt sets it for ctest)");
    return p;
}

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

/* Splits "| a | b\|c |" in place into cells (an escaped \| stays text). */
static size_t split_cells(char *line, char **cell, size_t max, size_t line_no)
{
    size_t n = 0;
    char *p = line + 1; /* past the leading '|' */
    while (*p) {
        char *start = p;
        while (*p && !(*p == '|' && p[-1] != '\\'))
            p++;
        if (!*p)
            break; /* text after the last '|' is no cell */
        *p++ = '\0';
        if (n == max)
            fail_msg("%s:%zu: more than %d cells", doc_path(), line_no, DOC_MAX_CELLS);
        cell[n++] = trim(start);
    }
    return n;
}

/* Loads the one table whose heading row starts with heading: its rows
 * after the |---| line, up to the first line that is not a table row. */
static void doc_table_load(doc_table *t, const char *heading)
{
    memset(t, 0, sizeof *t);
    t->text = (char *)tu_read_file(doc_path(), NULL);
    t->heading = heading;
    size_t hl = strlen(heading), found = 0, line = 1, at_line = 0;
    char *at = NULL;
    for (char *p = t->text; *p; line++) {
        if (strncmp(p, heading, hl) == 0) {
            found++;
            at = p;
            at_line = line;
        }
        char *eol = strchr(p, '\n');
        if (!eol)
            break;
        p = eol + 1;
    }
    if (found != 1)
        fail_msg("%s: %zu tables have a heading row starting \"%s\"; expected one",
                 doc_path(), found, heading);
    /* Cut the text into lines from the heading on. */
    char *p = at;
    line = at_line;
    for (size_t k = 0; p && *p == '|'; k++, line++) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        if (k == 1 && strncmp(p, "|---", 4) != 0)
            fail_msg("%s:%zu: expected the |---| line under \"%s\"", doc_path(), line,
                     heading);
        if (k >= 2) {
            if (t->n_rows == DOC_MAX_ROWS)
                fail_msg("%s:%zu: table \"%s\" has over %d rows", doc_path(), line,
                         heading, DOC_MAX_ROWS);
            doc_row *r = &t->row[t->n_rows++];
            r->line = line;
            r->n_cells = split_cells(p, r->cell, DOC_MAX_CELLS, line);
        }
        p = eol ? eol + 1 : NULL;
    }
    if (t->n_rows == 0)
        fail_msg("%s:%zu: table \"%s\" has no rows", doc_path(), at_line, heading);
}

static void doc_table_free(doc_table *t)
{
    free(t->text);
    memset(t, 0, sizeof *t);
}

/* Cell col of row r; fails if the row is too short. */
static const char *cell(const doc_row *r, size_t col)
{
    if (col >= r->n_cells)
        fail_msg("%s:%zu: the row has %zu cells, the test reads cell %zu",
                 doc_path(), r->line, r->n_cells, col + 1);
    return r->cell[col];
}

/* The row whose first cell is exactly key; fails unless there is one. */
static const doc_row *row_named(const doc_table *t, const char *key)
{
    const doc_row *hit = NULL;
    for (size_t i = 0; i < t->n_rows; i++)
        if (strcmp(cell(&t->row[i], 0), key) == 0) {
            if (hit)
                fail_msg("%s:%zu: a second row \"%s\" in table \"%s\"", doc_path(),
                         t->row[i].line, key, t->heading);
            hit = &t->row[i];
        }
    if (!hit)
        fail_msg("%s: table \"%s\" has no row \"%s\"", doc_path(), t->heading, key);
    return hit;
}

/* A count such as "313,600" (digits, optional thousands commas). */
static uint64_t parse_count(const doc_row *r, size_t col)
{
    const char *s = cell(r, col);
    uint64_t v = 0;
    size_t digits = 0;
    for (const char *p = s; *p; p++) {
        if (*p == ',')
            continue;
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            fail_msg("%s:%zu: \"%s\" is not a count", doc_path(), r->line, s);
        v = v * 10 + (uint64_t)(*p - '0');
        digits++;
    }
    if (!digits)
        fail_msg("%s:%zu: \"%s\" is not a count", doc_path(), r->line, s);
    return v;
}

/* A value written `0x...`. */
static uint64_t parse_hex(const doc_row *r, size_t col)
{
    const char *s = cell(r, col);
    size_t n = strlen(s);
    if (n < 5 || n > 20 || strncmp(s, "`0x", 3) != 0 || s[n - 1] != '`')
        fail_msg("%s:%zu: \"%s\" is not a `0x...` value", doc_path(), r->line, s);
    uint64_t v = 0;
    for (size_t i = 3; i + 1 < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            fail_msg("%s:%zu: \"%s\" is not a `0x...` value", doc_path(), r->line, s);
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

/* "12" or "3-6": the field numbers of a header-table row. */
static void parse_range(const doc_row *r, size_t *lo, size_t *hi)
{
    const char *s = cell(r, 0);
    char *end;
    unsigned long a = strtoul(s, &end, 10), b = a;
    if (end == s)
        fail_msg("%s:%zu: \"%s\" is not a field number", doc_path(), r->line, s);
    if (*end == '-') {
        const char *s2 = end + 1;
        b = strtoul(s2, &end, 10);
        if (end == s2)
            fail_msg("%s:%zu: \"%s\" is not a field range", doc_path(), r->line, s);
    }
    if (*end || b < a)
        fail_msg("%s:%zu: \"%s\" is not a field number or range", doc_path(), r->line, s);
    *lo = a;
    *hi = b;
}

/* Makes every run of spaces and line breaks in s one space, in place, so
 * that prose may wrap anywhere. */
static void squeeze(char *s)
{
    char *o = s;
    for (const char *p = s; *p; p++) {
        int blank = *p == ' ' || *p == '\n';
        if (blank && o > s && o[-1] == ' ')
            continue;
        *o++ = blank ? ' ' : *p;
    }
    *o = '\0';
}

/* Fails unless the document contains text (a fact stated in prose; line
 * breaks count as spaces). */
static void doc_says(const char *text)
{
    char *doc = (char *)tu_read_file(doc_path(), NULL);
    char *want = strdup(text);
    assert_non_null(want);
    squeeze(doc);
    squeeze(want);
    int found = strstr(doc, want) != NULL;
    free(doc);
    free(want);
    if (!found)
        fail_msg("%s: does not say \"%s\" (the code's number)", doc_path(), text);
}

/* doc_says with printf formatting. */
static void doc_says_f(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void doc_says_f(const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof text);
    doc_says(text);
}

/* ======================================================================== */
/* Checkpoints to hold the document against                                 */
/* ======================================================================== */

typedef tu_fixture fixture;

static int setup(void **state)
{
    return tu_fixture_setup(state, "test_ckpt_doc");
}

static int teardown(void **state)
{
    return tu_fixture_teardown(state);
}

typedef struct saved {
    model_net m;
    float *adam_m, *adam_v;
    ckpt_train t;
} saved;

static float get_f32(const unsigned char *p)
{
    uint32_t u = tu_get_le32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t f64_bits(double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    return v;
}

static uint32_t f32_bits(float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    return v;
}

static void fix_crc(unsigned char *b, size_t len)
{
    uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4));
    tu_put_le32(b + len - 4, (uint32_t)crc);
}

/* A model with its moments; params[i] = i, so a float read at a stated
 * offset says which parameter it is. */
static void make_saved(saved *s, const model_config *cfg)
{
    memset(s, 0, sizeof *s);
    err_msg err;
    if (model_init(&s->m, cfg, &err))
        fail_msg("model_init: %s", err.text);
    size_t n = s->m.n_params;
    assert_true(n < (1u << 24)); /* every index exact in a float */
    s->adam_m = malloc(n * sizeof(float));
    s->adam_v = malloc(n * sizeof(float));
    assert_non_null(s->adam_m);
    assert_non_null(s->adam_v);
    for (size_t i = 0; i < n; i++) {
        s->m.params[i] = (float)i;
        s->adam_m[i] = -(float)i - 1.0f;
        s->adam_v[i] = (float)i + 0.5f;
    }
    s->t = ckpt_train_defaults(); /* the training controls of a default run */
    s->t.set.batch = 1;
    s->t.set.sched.lr = 1e-3;
    rng_seed(&s->t.rng_data, 1);
    rng_seed(&s->t.rng_noise, 2);
}

static void free_saved(saved *s)
{
    model_free(&s->m);
    free(s->adam_m);
    free(s->adam_v);
    memset(s, 0, sizeof *s);
}

static unsigned char *save_and_read(const char *dir, const char *name,
                                    const saved *s, size_t *len)
{
    char path[256];
    tu_join(path, sizeof path, dir, name);
    err_msg err = {{0}};
    if (ckpt_save(path, &s->m, s->adam_m, s->adam_v, &s->t, &err))
        fail_msg("ckpt_save %s: %s", path, err.text);
    return tu_read_file(path, len);
}

/* A conditional MLP (which 0) and a conv model (1) whose every header
 * field differs, (2) the MLP of 0 trained with the ELBO and one draw, and
 * (3) an MLP with two stochastic layers (four hidden2 widths, so that the
 * four slots differ), so that, across the four files, no two fields hold
 * the same values: a misnumbered field cannot pass by luck (checked
 * below). Two files would not do: arch, init, objective and the RNGs'
 * flags are 0 or 1 in both, and five such fields cannot hold five
 * different pairs; and only a model with two stochastic layers fills
 * fields 62-67. */
#define N_DISTINCT 4
static void make_distinct(saved *s, int which)
{
    if (which == 3) {
        saved first;
        make_distinct(&first, 0);
        model_config c = first.m.cfg;
        c.x_dim = 17, c.height = 1, c.width = 17;
        c.n_hidden = 2;
        c.hidden[0] = 19, c.hidden[1] = 18, c.hidden[2] = c.hidden[3] = 0;
        c.z_dim = 23;
        c.n_classes = 0; /* two stochastic layers: not conditional */
        c.z2_dim = 26;
        c.n_hidden2 = 4;
        c.hidden2[0] = 27, c.hidden2[1] = 28, c.hidden2[2] = 29, c.hidden2[3] = 31;
        make_saved(s, &c);
        s->t = first.t; /* the training state of 0, its own epoch and sums */
        s->t.epoch = 81, s->t.step = 82, s->t.adam_t = 83, s->t.set.batch = 84;
        s->t.sum_rec = 3456.5, s->t.sum_kl = 89.25, s->t.sum_obj = 3600.5;
        s->t.set.estimator = MODEL_EST_STANDARD; /* what vae writes for two layers */
        free_saved(&first);
        return;
    }
    if (which == 2) {
        make_distinct(s, 0);
        s->t.set.objective = MODEL_OBJ_ELBO; /* (1, 0, 0) where init has (1, 0, 1) */
        s->t.set.draws = 1;
        s->t.set.estimator = MODEL_EST_STANDARD; /* what a run with the ELBO writes */
        return;
    }
    model_config c;
    memset(&c, 0, sizeof c);
    c.n_hidden = 4;
    float tmp[3];
    if (which == 0) {
        c.arch = MODEL_ARCH_MLP;
        c.x_dim = 13;
        c.hidden[0] = 9, c.hidden[1] = 8, c.hidden[2] = 7, c.hidden[3] = 6;
        c.z_dim = 5;
        c.act = MODEL_ACT_TANH;
        c.likelihood = MODEL_LIK_GAUSSIAN;
        c.n_classes = 3;
        make_saved(s, &c);
        ckpt_train *t = &s->t;
        t->set.seed = 0x1122334455667788ULL;
        t->epoch = 41, t->step = 42, t->adam_t = 43, t->set.batch = 44;
        t->set.sched.lr = 0.0625, t->set.beta = 0.375, t->set.binarize = 2, t->set.noise = 0.125;
        rng_seed(&t->rng_data, 101);
        rng_normal(&t->rng_data, tmp, 1); /* a spare pending */
        rng_seed(&t->rng_noise, 202);
        rng_normal(&t->rng_noise, tmp, 1);
        rng_normal(&t->rng_noise, tmp, 1); /* none pending, a stale spare */
        assert_true(t->rng_noise.spare != 0.0f && !t->rng_noise.has_spare);
        t->sum_rec = 1234.5, t->sum_kl = 67.25, t->n_seen = 45, t->seconds = 8.5;
        t->data.n = 46, t->data.rows = 47, t->data.cols = 48;
        t->data.pixels_crc = 0xdeadbeefu, t->data.labels_crc = 0x89abcdefu;
        /* A step schedule, with warmup and horizon set although it does not
         * use them, so that every field differs from every other (the
         * header tests read the bytes; ckpt_read would refuse them). */
        t->set.sched = (schedule_config){SCHEDULE_STEP, t->set.sched.lr, 61, 62, 63, 0.875};
        t->set.kl_warmup = 64;
        t->set.adam_beta1 = 0.8125, t->set.adam_beta2 = 0.9375, t->set.adam_eps = 1e-6;
        t->set.init = 1;
        t->set.valid = 39, t->best_epoch = 38, t->best_loss = 87.5;
        /* The IWAE with DReG (not the standard estimator, which a file
         * before version 6 reads as), and a sum_obj that is not the ELBO's
         * (1259.71875). */
        t->set.objective = MODEL_OBJ_IWAE, t->set.draws = 59, t->sum_obj = 1301.75;
        t->set.estimator = MODEL_EST_DREG;
    } else {
        c.arch = MODEL_ARCH_CONV;
        /* Colour images of 5 x 2 (x_dim 30), padded to 64 x 64 by 4
         * blocks: height, width and channels differ from the MLP's 1 x 13
         * grey (the shape a pre-5 file of x_dim 13 reads as). */
        model_config_image(&c, 5, 2, 3);
        c.hidden[0] = 12, c.hidden[1] = 11, c.hidden[2] = 10, c.hidden[3] = 14;
        c.z_dim = 15;
        c.act = MODEL_ACT_LEAKY; /* (1, 2): (1, 0) is init's pair */
        c.likelihood = MODEL_LIK_CB;
        c.n_classes = 0;
        make_saved(s, &c);
        ckpt_train *t = &s->t;
        t->set.seed = 0x99aabbccddeeff00ULL;
        t->epoch = 51, t->step = 52, t->adam_t = 53, t->set.batch = 54;
        t->set.sched.lr = 0.25, t->set.beta = 1.5, t->set.binarize = 0, t->set.noise = 0.0;
        rng_seed(&t->rng_data, 303);
        rng_normal(&t->rng_data, tmp, 3);
        rng_seed(&t->rng_noise, 404); /* seeded: spare 0, flag 0 */
        t->sum_rec = 2345.5, t->sum_kl = 78.75, t->n_seen = 55, t->seconds = 9.25;
        t->data.n = 56, t->data.rows = 57, t->data.cols = 58;
        t->data.pixels_crc = 0x01234567u, t->data.labels_crc = 0xfedcba98u;
        t->set.sched = (schedule_config){SCHEDULE_COSINE, t->set.sched.lr, 71, 72, 73, 0.625};
        t->set.kl_warmup = 74;
        t->set.adam_beta1 = 0.6875, t->set.adam_beta2 = 0.96875, t->set.adam_eps = 2e-7;
        t->set.init = 0;
        t->set.valid = 49, t->best_epoch = 48, t->best_loss = 97.25;
        /* The ELBO with one draw (the MLP's fixture has the IWAE), and
         * so the standard estimator: estimator is (2, 0, 0) across the
         * three files. */
        t->set.objective = MODEL_OBJ_ELBO, t->set.draws = 1, t->sum_obj = 2400.125;
        t->set.estimator = MODEL_EST_STANDARD;
    }
}

/* ======================================================================== */
/* The header-field table                                                   */
/* ======================================================================== */

#define MAX_SLOTS 6
#define MAX_FIELDS 72 /* bounds the header's fields and the table's rows */

/* What the test knows a documented field holds in a saved checkpoint. */
typedef struct field_want {
    const char *name, *type;
    size_t count;
    uint64_t v[MAX_SLOTS];
} field_want;

static void rng_slots(uint64_t *v, const rng_state *r)
{
    for (int i = 0; i < 4; i++)
        v[i] = r->s[i];
    v[4] = f32_bits(r->spare); /* low half; the high half 0 */
    v[5] = r->has_spare;
}

/* The fields of s by the document's names; returns their number. */
static size_t fields_of(const saved *s, field_want *w)
{
    const model_config *c = &s->m.cfg;
    const ckpt_train *t = &s->t;
    size_t n = 0;
#define ONE(nm, ty, val) w[n++] = (field_want){nm, ty, 1, {(uint64_t)(val)}}
    ONE("arch", "u64", c->arch);
    ONE("x_dim", "u64", c->x_dim);
    ONE("n_hidden", "u64", c->n_hidden);
    w[n++] = (field_want){"hidden", "u64", 4,
                          {c->hidden[0], c->hidden[1], c->hidden[2], c->hidden[3]}};
    ONE("z_dim", "u64", c->z_dim);
    ONE("act", "u64", c->act);
    ONE("likelihood", "u64", c->likelihood);
    ONE("n_classes", "u64", c->n_classes);
    ONE("n_params", "u64", s->m.n_params);
    ONE("height", "u64", c->height);
    ONE("width", "u64", c->width);
    ONE("channels", "u64", c->channels);
    ONE("seed", "u64", t->set.seed);
    ONE("epoch", "u64", t->epoch);
    ONE("step", "u64", t->step);
    ONE("adam_t", "u64", t->adam_t);
    ONE("batch", "u64", t->set.batch);
    ONE("lr", "f64", f64_bits(t->set.sched.lr));
    ONE("beta", "f64", f64_bits(t->set.beta));
    ONE("binarize", "u64", t->set.binarize);
    ONE("noise", "f64", f64_bits(t->set.noise));
    w[n] = (field_want){"rng_data", "u64", 6, {0}};
    rng_slots(w[n++].v, &t->rng_data);
    w[n] = (field_want){"rng_noise", "u64", 6, {0}};
    rng_slots(w[n++].v, &t->rng_noise);
    ONE("sum_rec", "f64", f64_bits(t->sum_rec));
    ONE("sum_kl", "f64", f64_bits(t->sum_kl));
    ONE("n_seen", "u64", t->n_seen);
    ONE("seconds", "f64", f64_bits(t->seconds));
    ONE("data_n", "u64", t->data.n);
    ONE("data_rows", "u64", t->data.rows);
    ONE("data_cols", "u64", t->data.cols);
    ONE("data_pixels_crc32", "u64", t->data.pixels_crc);
    ONE("data_labels_crc32", "u64", t->data.labels_crc);
    ONE("sched", "u64", t->set.sched.kind);
    ONE("warmup", "u64", t->set.sched.warmup);
    ONE("horizon", "u64", t->set.sched.horizon);
    ONE("every", "u64", t->set.sched.every);
    ONE("gamma", "f64", f64_bits(t->set.sched.gamma));
    ONE("kl_warmup", "u64", t->set.kl_warmup);
    ONE("adam_beta1", "f64", f64_bits(t->set.adam_beta1));
    ONE("adam_beta2", "f64", f64_bits(t->set.adam_beta2));
    ONE("adam_eps", "f64", f64_bits(t->set.adam_eps));
    ONE("init", "u64", t->set.init);
    ONE("valid_n", "u64", t->set.valid);
    ONE("best_epoch", "u64", t->best_epoch);
    ONE("best_loss", "f64", f64_bits(t->best_loss));
    ONE("objective", "u64", t->set.objective);
    ONE("draws", "u64", t->set.draws);
    ONE("sum_obj", "f64", f64_bits(t->sum_obj));
    ONE("estimator", "u64", t->set.estimator);
    ONE("z2_dim", "u64", c->z2_dim);
    ONE("n_hidden2", "u64", c->n_hidden2);
    w[n++] = (field_want){"hidden2", "u64", 4,
                          {c->hidden2[0], c->hidden2[1], c->hidden2[2], c->hidden2[3]}};
#undef ONE
    return n;
}

/* The documented field numbers of name (lo..hi). */
static void field_range(const doc_table *t, const char *name, size_t *lo, size_t *hi)
{
    for (size_t i = 0; i < t->n_rows; i++)
        if (strcmp(cell(&t->row[i], 1), name) == 0) {
            parse_range(&t->row[i], lo, hi);
            return;
        }
    fail_msg("%s: the header table has no field \"%s\"", doc_path(), name);
}

#define HEADING_FIELDS "| # | field | type |"

/* The header's field counts of versions 6, 5, 4, 3 and 2, by the
 * document's rule: each is the newer version cut before the first field it
 * lacks (z2_dim for version 6, estimator for version 5, height for version
 * 4, sched for version 3, data_n for version 2). */
static void older_counts(const doc_table *t, size_t *n6, size_t *n5, size_t *n4,
                         size_t *n3, size_t *n2)
{
    size_t hi;
    field_range(t, "z2_dim", n6, &hi);
    field_range(t, "estimator", n5, &hi);
    field_range(t, "height", n4, &hi);
    field_range(t, "sched", n3, &hi);
    field_range(t, "data_n", n2, &hi);
}

/* Every documented field of file (written from s) holds what s says; the
 * rows cover fields 0..F-1 once each, F = the header size / 8. Returns F. */
static size_t check_header_table(const doc_table *t, const saved *s,
                                 const unsigned char *file, size_t len,
                                 uint64_t slot_value[][N_DISTINCT], int which)
{
    field_want want[MAX_FIELDS];
    size_t n_want = fields_of(s, want);
    size_t n_fields = tu_get_le32(file + 12) / 8;
    assert_true(OFF_HEADER + 8 * n_fields <= len);
    int covered[MAX_FIELDS] = {0}, used[MAX_FIELDS] = {0};
    assert_true(n_fields <= MAX_FIELDS);
    for (size_t i = 0; i < t->n_rows; i++) {
        const doc_row *r = &t->row[i];
        size_t lo, hi;
        parse_range(r, &lo, &hi);
        const char *name = cell(r, 1), *type = cell(r, 2);
        size_t k = 0;
        while (k < n_want && strcmp(want[k].name, name) != 0)
            k++;
        if (k == n_want)
            fail_msg("%s:%zu: field \"%s\" is one the test does not know", doc_path(),
                     r->line, name);
        const field_want *w = &want[k];
        used[k]++;
        if (hi - lo + 1 != w->count)
            fail_msg("%s:%zu: %s spans fields %zu-%zu; it takes %zu", doc_path(),
                     r->line, name, lo, hi, w->count);
        if (strcmp(type, w->type) != 0)
            fail_msg("%s:%zu: %s is documented as %s; ckpt_save writes %s", doc_path(),
                     r->line, name, type, w->type);
        if (hi >= n_fields)
            fail_msg("%s:%zu: %s at field %zu, but the header ckpt_save writes has "
                     "%zu fields", doc_path(), r->line, name, hi, n_fields);
        for (size_t f = lo; f <= hi; f++) {
            covered[f]++;
            uint64_t got = tu_get_le64(file + OFF_HEADER + 8 * f);
            if (got != w->v[f - lo])
                fail_msg("%s:%zu: %s documented at field %zu (byte %zu), but that "
                         "field holds 0x%llx, not 0x%llx", doc_path(), r->line, name,
                         f, (size_t)(OFF_HEADER + 8 * f), (unsigned long long)got,
                         (unsigned long long)w->v[f - lo]);
            slot_value[f][which] = got;
        }
    }
    for (size_t k = 0; k < n_want; k++)
        if (used[k] != 1)
            fail_msg("%s: field \"%s\" is documented %d times, expected once",
                     doc_path(), want[k].name, used[k]);
    for (size_t f = 0; f < n_fields; f++)
        if (covered[f] != 1)
            fail_msg("%s: header field %zu is documented %d times, expected once",
                     doc_path(), f, covered[f]);
    return n_fields;
}

static void test_header_table_matches_writer(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    uint64_t slot[MAX_FIELDS][N_DISTINCT];
    size_t n_fields[N_DISTINCT];
    static const char *const names[N_DISTINCT] = {"mlp.bin", "conv.bin", "elbo.bin",
                                                  "two.bin"};
    for (int which = 0; which < N_DISTINCT; which++) {
        saved s;
        make_distinct(&s, which);
        size_t len;
        unsigned char *b = save_and_read(fx->dir, names[which], &s, &len);
        assert_memory_equal(b, CKPT_MAGIC, 8);
        assert_int_equal(tu_get_le32(b + 8), CKPT_VERSION);
        n_fields[which] = check_header_table(&t, &s, b, len, slot, which);
        free(b);
        free_saved(&s);
    }
    for (int which = 1; which < N_DISTINCT; which++)
        assert_int_equal(n_fields[which], n_fields[0]);
    /* The files tell every field from every other. */
    for (size_t f = 0; f < n_fields[0]; f++)
        for (size_t g = f + 1; g < n_fields[0]; g++) {
            int same = 1;
            for (int which = 0; which < N_DISTINCT; which++)
                same &= slot[f][which] == slot[g][which];
            if (same)
                fail_msg("test setup: fields %zu and %zu hold the same values in "
                         "every file, so a swap would pass", f, g);
        }
    doc_table_free(&t);
}

/* ======================================================================== */
/* The worked example                                                       */
/* ======================================================================== */

static model_config cfg_default(void) /* what `vae train` uses with no model options */
{
    model_config c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_ARCH_MLP;
    c.x_dim = 784;
    c.n_hidden = 1;
    c.hidden[0] = 400;
    c.z_dim = 20;
    c.act = MODEL_ACT_RELU;
    c.likelihood = MODEL_LIK_BERNOULLI;
    return c;
}

/* "652,824" */
static void with_commas(char *out, size_t size, uint64_t v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* The document's name of each tensor of the default model: its layer and
 * whether it is the weight. */
static const struct {
    const char *name;
    size_t layer;
    int weight;
} tensors[] = {
    {"`enc1.weight`", 0, 1}, {"`enc1.bias`", 0, 0},
    {"`head.weight`", 1, 1}, {"`head.bias`", 1, 0},
    {"`dec1.weight`", 2, 1}, {"`dec1.bias`", 2, 0},
    {"`out.weight`", 3, 1},  {"`out.bias`", 3, 0},
};
#define N_TENSORS (sizeof tensors / sizeof tensors[0])

static void test_worked_example_tensors(void **state)
{
    fixture *fx = *state;
    saved s;
    model_config c = cfg_default();
    make_saved(&s, &c);
    const model_net *m = &s.m;
    assert_int_equal(m->n_layers, 4);
    size_t len;
    unsigned char *b = save_and_read(fx->dir, "vae.bin", &s, &len);
    size_t body = OFF_HEADER + tu_get_le32(b + 12);

    doc_table t;
    doc_table_load(&t, "| tensor | layer | shape |");
    if (t.n_rows != N_TENSORS)
        fail_msg("%s: the worked example lists %zu tensors; the model has %zu",
                 doc_path(), t.n_rows, N_TENSORS);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const doc_row *r = row_named(&t, tensors[i].name);
        size_t layer = (size_t)parse_count(r, 1);
        if (layer != tensors[i].layer)
            fail_msg("%s:%zu: %s is in layer %zu, not %zu", doc_path(), r->line,
                     tensors[i].name, tensors[i].layer, layer);
        const model_layer *L = &m->layer[layer];
        size_t index = tensors[i].weight ? L->w_off : L->b_off;
        /* shape: "out x in" for a weight, "out" for a bias */
        char want_shape[64];
        if (tensors[i].weight)
            snprintf(want_shape, sizeof want_shape, "%zu x %zu", L->out,
                     L->in + L->n_onehot);
        else
            snprintf(want_shape, sizeof want_shape, "%zu", L->out);
        if (strcmp(cell(r, 2), want_shape) != 0)
            fail_msg("%s:%zu: %s has shape %s, not %s", doc_path(), r->line,
                     tensors[i].name, want_shape, cell(r, 2));
        uint64_t doc_index = parse_count(r, 3), doc_byte = parse_count(r, 4);
        if (doc_index != index)
            fail_msg("%s:%zu: %s starts at float %zu, not %llu", doc_path(), r->line,
                     tensors[i].name, index, (unsigned long long)doc_index);
        if (doc_byte != body + 4 * index)
            fail_msg("%s:%zu: %s starts at byte %zu, not %llu", doc_path(), r->line,
                     tensors[i].name, body + 4 * index, (unsigned long long)doc_byte);
        /* The file agrees: the float there is parameter number index. */
        assert_true(doc_byte + 4 <= len);
        float got = get_f32(b + doc_byte);
        if (got != s.m.params[index] || got != (float)index)
            fail_msg("%s:%zu: the float at byte %llu of a checkpoint is %g, the "
                     "first of %s is %g", doc_path(), r->line,
                     (unsigned long long)doc_byte, (double)got, tensors[i].name,
                     (double)s.m.params[index]);
    }
    /* The sizes stated in prose, the older versions' by their headers'
     * field counts. */
    char num[32];
    with_commas(num, sizeof num, m->n_params);
    doc_says_f("n = %s parameters", num);
    with_commas(num, sizeof num, len);
    doc_says_f("a %s-byte file", num);
    doc_says_f("A float's byte offset is `%zu + 4 x` its index", body);
    doc_table ft;
    doc_table_load(&ft, HEADING_FIELDS);
    size_t n7 = (body - OFF_HEADER) / 8, n6, n5, n4, n3, n2;
    older_counts(&ft, &n6, &n5, &n4, &n3, &n2);
    char num6[32], num5[32], num4[32], num3[32], num2[32];
    with_commas(num6, sizeof num6, len - 8 * (n7 - n6));
    with_commas(num5, sizeof num5, len - 8 * (n7 - n5));
    with_commas(num4, sizeof num4, len - 8 * (n7 - n4));
    with_commas(num3, sizeof num3, len - 8 * (n7 - n3));
    with_commas(num2, sizeof num2, len - 8 * (n7 - n2));
    doc_says_f("(version 6: %s; version 5: %s; version 4: %s; version 3: %s; version 2: %s)",
               num6, num5, num4, num3, num2);
    doc_table_free(&ft);
    doc_table_free(&t);
    free(b);
    free_saved(&s);
}

/* Asserts the area row name starts at byte want_off and is want_bytes long. */
static const doc_row *check_area(const doc_table *t, const char *name,
                                 size_t want_off, size_t want_bytes)
{
    const doc_row *r = row_named(t, name);
    uint64_t off = parse_count(r, 1), bytes = parse_count(r, 2);
    if (off != want_off || bytes != want_bytes)
        fail_msg("%s:%zu: %s is at byte %zu, %zu bytes long; the document says "
                 "%llu, %llu", doc_path(), r->line, name, want_off, want_bytes,
                 (unsigned long long)off, (unsigned long long)bytes);
    return r;
}

static void test_worked_example_areas(void **state)
{
    fixture *fx = *state;
    saved s;
    model_config c = cfg_default();
    make_saved(&s, &c);
    size_t n = s.m.n_params, len;
    unsigned char *b = save_and_read(fx->dir, "vae.bin", &s, &len);

    doc_table t;
    doc_table_load(&t, "| area | byte offset | bytes |");
    assert_int_equal(t.n_rows, 6);
    size_t hb = tu_get_le32(b + 12), at = OFF_HEADER + hb;
    check_area(&t, "header", OFF_HEADER, hb);
    /* Each area's first and last floats are the arrays' first and last. */
    const char *names[3] = {"parameters", "Adam first moments", "Adam second moments"};
    const float *arrays[3] = {s.m.params, s.adam_m, s.adam_v};
    for (int k = 0; k < 3; k++) {
        check_area(&t, names[k], at, 4 * n);
        assert_true(get_f32(b + at) == arrays[k][0]);
        assert_true(get_f32(b + at + 4 * (n - 1)) == arrays[k][n - 1]);
        at += 4 * n;
    }
    check_area(&t, "CRC-32", at, 4);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)at);
    assert_int_equal(tu_get_le32(b + at), (uint32_t)crc);
    check_area(&t, "end of file", at + 4, 0);
    assert_int_equal(len, at + 4);
    doc_table_free(&t);
    free(b);
    free_saved(&s);
}

/* ======================================================================== */
/* The RNG and init test vectors                                            */
/* ======================================================================== */

/* The initial parameters' stream is rng_seed(seed ^ INIT_SALT), as the
 * document's streams table says (checked below). */
#define INIT_SALT 0x696e6974ULL

/* What the document's Glorot rules give the output bias of a pixel of
 * mean intensity mean. */
static float doc_out_bias(double mean)
{
    double q = mean < 0.001 ? 0.001 : mean > 0.999 ? 0.999 : mean;
    return (float)log(q / (1.0 - q));
}

/* The default model initialised from seed 1's stream; init 1 with a pixel
 * mean of 0 at pixel 0, 0.25 at pixel 1 and 0.5 elsewhere. */
static void init_default(model_net *m, int glorot)
{
    model_config c = cfg_default();
    err_msg err;
    if (model_init(m, &c, &err))
        fail_msg("model_init: %s", err.text);
    rng_state r;
    rng_seed(&r, 1 ^ INIT_SALT);
    if (!glorot) {
        model_init_params(m, &r);
        return;
    }
    double mean[784];
    for (size_t p = 0; p < 784; p++)
        mean[p] = p == 0 ? 0.0 : p == 1 ? 0.25 : 0.5;
    model_init_glorot(m, &r, mean);
}

static void test_rng_vectors(void **state)
{
    (void)state;
    doc_table t;
    doc_table_load(&t, "| computation | value |");
    rng_state r;
    rng_seed(&r, 1);
    const char *s_rows[4] = {"`rng_seed(1)`: s[0]", "`rng_seed(1)`: s[1]",
                             "`rng_seed(1)`: s[2]", "`rng_seed(1)`: s[3]"};
    struct {
        const char *key;
        uint64_t want;
    } v[24];
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        v[n].key = s_rows[i], v[n++].want = r.s[i];
    v[n].key = "`rng_seed(1)`, first `rng_u64`", v[n++].want = rng_u64(&r);
    v[n].key = "`rng_seed(1)`, second `rng_u64`", v[n++].want = rng_u64(&r);
    v[n].key = "`rng_mix(1, 2)`", v[n++].want = rng_mix(1, 2);
    float z;
    rng_seed(&r, 1);
    rng_normal(&r, &z, 1);
    assert_int_equal(r.has_spare, 1);
    v[n].key = "`rng_seed(1)`, first `rng_normal`, float bits", v[n++].want = f32_bits(z);
    v[n].key = "`rng_seed(1)`, the spare it leaves, float bits";
    v[n++].want = f32_bits(r.spare);
    uint64_t key0 = rng_mix(INFER_TEST_KEY, 0);
    v[n].key = "`rng_mix(0x7465737462696e, 0)`: seed of test image 0's binarization";
    v[n++].want = key0;
    rng_seed(&r, key0);
    v[n].key = "first `rng_u64` after `rng_seed` with that seed", v[n++].want = rng_u64(&r);
    /* The initial parameters of the default model (layers 1 and 3: the
     * head and the output). */
    model_net m;
    init_default(&m, 0);
    v[n].key = "default model, seed 1, init 0: `enc1.weight[0]`, float bits";
    v[n++].want = f32_bits(m.params[m.layer[0].w_off]);
    model_free(&m);
    init_default(&m, 1);
    v[n].key = "default model, seed 1, init 1 (Glorot): `enc1.weight[0]`, float bits";
    v[n++].want = f32_bits(m.params[m.layer[0].w_off]);
    /* The head's first weight is the stream's value number (the first
     * layer's weight count), which the row names; test_init_streams checks
     * that number against the stream. */
    char num[32], head_key[128];
    with_commas(num, sizeof num, (m.layer[0].in + m.layer[0].n_onehot) * m.layer[0].out);
    snprintf(head_key, sizeof head_key, "default model, seed 1, init 1: `head.weight[0]` "
             "(value %s of the stream), float bits", num);
    v[n].key = head_key;
    v[n++].want = f32_bits(m.params[m.layer[1].w_off]);
    const float *out_bias = m.params + m.layer[3].b_off;
    assert_true(out_bias[0] == doc_out_bias(0.0) && out_bias[1] == doc_out_bias(0.25));
    v[n].key = "init 1: the output bias of a pixel whose mean is 0 (clipped to 0.001), "
               "float bits";
    v[n++].want = f32_bits(out_bias[0]);
    v[n].key = "init 1: the output bias of a pixel whose mean is 0.25, float bits";
    v[n++].want = f32_bits(out_bias[1]);
    model_free(&m);
    assert_true(n <= sizeof v / sizeof v[0]);
    for (size_t i = 0; i < n; i++) {
        const doc_row *row = row_named(&t, v[i].key);
        uint64_t got = parse_hex(row, 1);
        if (got != v[i].want)
            fail_msg("%s:%zu: %s is 0x%llx, not 0x%llx", doc_path(), row->line,
                     v[i].key, (unsigned long long)v[i].want, (unsigned long long)got);
    }
    /* The test set's binarization of an image of 128s, through idx_gather. */
    uint8_t img[784], label = 0;
    memset(img, 128, sizeof img);
    idx_set set = {1, 28, 28, img, &label};
    idx_view view = infer_test_view(1);
    float x[784];
    idx_gather(&set, NULL, 0, 1, &view, x);
    char bits[33];
    for (int p = 0; p < 32; p++)
        bits[p] = x[p] == 1.0f ? '1' : '0';
    bits[32] = '\0';
    const char *bin_key = "test image 0 binarized, were all its bytes 128: pixels 0-31";
    const doc_row *row = row_named(&t, bin_key);
    char want[40];
    snprintf(want, sizeof want, "`%s`", bits);
    if (strcmp(cell(row, 1), want) != 0)
        fail_msg("%s:%zu: %s is %s, not %s", doc_path(), row->line, bin_key, want,
                 cell(row, 1));
    /* Every vector in the document is one checked here. */
    if (t.n_rows != n + 1)
        fail_msg("%s: %zu test vectors, of which the test checks %zu", doc_path(),
                 t.n_rows, n + 1);
    /* The test key the document names is the code's. */
    char text[40];
    snprintf(text, sizeof text, "`0x%llx`", (unsigned long long)INFER_TEST_KEY);
    doc_says(text);
    doc_table_free(&t);
}

/* Pixels are byte * (1.0f / 255.0f), as the document says, which is not
 * byte / 255.0f for the number of byte values it states. */
static void test_input_scaling(void **state)
{
    (void)state;
    uint8_t img[256], label = 0;
    for (int v = 0; v < 256; v++)
        img[v] = (uint8_t)v;
    idx_set set = {1, 16, 16, img, &label};
    float x[256];
    idx_gather(&set, NULL, 0, 1, NULL, x);
    const float scale = 1.0f / 255.0f;
    int differ = 0;
    for (int v = 0; v < 256; v++) {
        volatile float q = (float)v / 255.0f; /* volatile: no folding */
        assert_true(f32_bits(x[v]) == f32_bits((float)v * scale));
        differ += f32_bits(x[v]) != f32_bits(q);
    }
    char text[64];
    snprintf(text, sizeof text, "(bits 0x%08x)", (unsigned)f32_bits(scale));
    doc_says(text);
    snprintf(text, sizeof text, "for %d of the 256 byte values", differ);
    doc_says(text);
}

/* ======================================================================== */
/* The initial parameters, drawn as the streams table and "Glorot           */
/* initialisation" say                                                      */
/* ======================================================================== */

/* The stream's next value times bound, as the document writes it. */
static float doc_draw(rng_state *r, float bound)
{
    return (2.0f * rng_uniform(r) - 1.0f) * bound;
}

/* Fails unless params[off..off+n) are the stream's next n values times
 * bound (or, with r NULL, all equal to value). */
static void expect_run(const model_net *m, const char *what, size_t off, size_t n,
                       rng_state *r, float bound, float value, int glorot)
{
    for (size_t i = 0; i < n; i++) {
        float want = r ? doc_draw(r, bound) : value;
        if (f32_bits(m->params[off + i]) != f32_bits(want))
            fail_msg("init %d, %s, value %zu: the code gives %.9g, the document's "
                     "rule %.9g", glorot, what, i, (double)m->params[off + i],
                     (double)want);
    }
}

/* Initialises a model of cfg with model_init_params (glorot 0) or
 * model_init_glorot (1) and replays the document's rules over every value. */
static void replay_init(const model_config *cfg, int glorot)
{
    model_net m;
    err_msg err;
    if (model_init(&m, cfg, &err))
        fail_msg("model_init: %s", err.text);
    size_t D = cfg->x_dim;
    double *mean = malloc(D * sizeof *mean);
    assert_non_null(mean);
    double avg = 0.0;
    for (size_t p = 0; p < D; p++) {
        /* both clips, and means between */
        mean[p] = p % 5 == 0 ? 0.0 : p % 5 == 1 ? 1.0 : (double)p / (double)(D + 1);
        avg += mean[p];
    }
    avg /= (double)D;
    const uint64_t seed = 0x5eedULL;
    rng_state r, doc;
    rng_seed(&r, seed);
    rng_seed(&doc, seed);
    if (glorot)
        model_init_glorot(&m, &r, mean);
    else
        model_init_params(&m, &r);
    if (cfg->arch == MODEL_ARCH_CONV) {
        for (size_t b = 0; b < m.n_blocks; b++) {
            const model_block *k = &m.block[b];
            size_t fan_in = (k->transposed ? k->cout : k->cin) * 16;
            float bound = glorot ? sqrtf(6.0f / (float)((k->cin + k->cout) * 16))
                                 : 1.0f / sqrtf((float)fan_in);
            expect_run(&m, "a block's weight", k->w_off, k->cin * k->cout * 16, &doc,
                       bound, 0.0f, glorot);
            float bias = b + 1 == m.n_blocks ? doc_out_bias(avg) : 0.0f;
            expect_run(&m, "a block's bias", k->b_off, k->cout, glorot ? NULL : &doc,
                       bound, bias, glorot);
            if (k->has_bn) {
                expect_run(&m, "BatchNorm gamma", k->bn_off, k->cout, NULL, 0, 1.0f, glorot);
                expect_run(&m, "BatchNorm beta", k->bn_off + k->cout, 2 * k->cout, NULL, 0,
                           0.0f, glorot); /* beta, then the running mean */
                expect_run(&m, "BatchNorm running variance", k->bn_off + 3 * k->cout,
                           k->cout, NULL, 0, 1.0f, glorot);
            }
        }
        assert_int_equal(m.n_layers, 2);
    }
    /* The MLP's layers, or the conv VAE's two linear layers. */
    size_t out_layer = cfg->arch == MODEL_ARCH_CONV ? SIZE_MAX : 2 * cfg->n_hidden + 1;
    for (size_t l = 0; l < m.n_layers; l++) {
        const model_layer *L = &m.layer[l];
        size_t fan_in = L->in + L->n_onehot;
        float bound = glorot ? sqrtf(6.0f / (float)(fan_in + L->out))
                             : 1.0f / sqrtf((float)fan_in);
        expect_run(&m, "a layer's weight", L->w_off, fan_in * L->out, &doc, bound, 0.0f,
                   glorot);
        if (!glorot) {
            expect_run(&m, "a layer's bias", L->b_off, L->out, &doc, bound, 0.0f, 0);
        } else if (l == out_layer) {
            for (size_t p = 0; p < L->out; p++)
                expect_run(&m, "the output bias", L->b_off + p, 1, NULL, 0,
                           doc_out_bias(mean[p]), 1);
        } else {
            expect_run(&m, "a layer's bias", L->b_off, L->out, NULL, 0, 0.0f, 1);
        }
    }
    /* Nothing left out: the replay drew what the code drew. */
    assert_true(rng_u64(&r) == rng_u64(&doc));
    free(mean);
    model_free(&m);
}

static void test_init_streams(void **state)
{
    (void)state;
    for (int glorot = 0; glorot < 2; glorot++) {
        model_config c = cfg_default();
        replay_init(&c, glorot);
        /* conditional MLP, conv, and two stochastic layers (q(h2|h1)'s and
         * p(h1|h2)'s layers after the others; the output biases only on
         * p(x|h1)'s output, layer 2nh+1) */
        static const int whiches[3] = {0, 1, 3};
        for (int k = 0; k < 3; k++) {
            saved s;
            make_distinct(&s, whiches[k]);
            replay_init(&s.m.cfg, glorot);
            free_saved(&s);
        }
    }
    doc_says("draws layer by layer in storage order, as for any MLP, q(h2|h1)'s and "
             "p(h1|h2)'s layers after the others");
    doc_says("With Glorot, only p(x|h1)'s output layer (2nh+1) gets the output biases of "
             "\"Glorot initialisation\"; the heads' biases start at 0.");
    /* The numbers the prose states. */
    doc_says_f("`rng_seed(seed ^ 0x%llx)`", (unsigned long long)INIT_SALT);
    doc_says_f("`rng_seed(1 ^ 0x%llx)`", (unsigned long long)INIT_SALT);
    doc_says("`q = mean_p` clipped to [0.001, 0.999]");
    model_config c = cfg_default();
    model_net m;
    err_msg err;
    if (model_layout(&m, &c, &err))
        fail_msg("model_layout: %s", err.text);
    char a[32], b[32];
    with_commas(a, sizeof a, (m.layer[0].in + m.layer[0].n_onehot) * m.layer[0].out);
    with_commas(b, sizeof b, m.layer[1].w_off);
    doc_says_f("`head.weight[0]` gets value %s, where init 0 gives it value %s", a, b);
    /* And that is where the stream's values go: the Glorot head weight is
     * value a, the init-0 one value b. */
    init_default(&m, 1);
    rng_state r;
    rng_seed(&r, 1 ^ INIT_SALT);
    size_t k = (m.layer[0].in + m.layer[0].n_onehot) * m.layer[0].out;
    for (size_t i = 0; i < k; i++)
        rng_uniform(&r);
    float g = doc_draw(&r, sqrtf(6.0f / (float)(m.layer[1].in + m.layer[1].out)));
    assert_true(f32_bits(m.params[m.layer[1].w_off]) == f32_bits(g));
    model_free(&m);
    init_default(&m, 0);
    rng_seed(&r, 1 ^ INIT_SALT);
    for (size_t i = 0; i < m.layer[1].w_off; i++)
        rng_uniform(&r);
    float p = doc_draw(&r, 1.0f / sqrtf((float)m.layer[1].in));
    assert_true(f32_bits(m.params[m.layer[1].w_off]) == f32_bits(p));
    model_free(&m);
}

/* ======================================================================== */
/* The schedules                                                            */
/* ======================================================================== */

/* "%.6g" of v: the document's rates, to six significant digits. */
static void six_digits(char *out, size_t size, double v)
{
    snprintf(out, size, "%.6g", v);
}

/* The staged schedule's table against schedule_stage, schedule_stage_epochs
 * and schedule_lr. */
static void test_staged_table(void **state)
{
    (void)state;
    doc_table t;
    doc_table_load(&t, "| stage | first epoch | last epoch | learning rate |");
    if (t.n_rows != SCHEDULE_STAGES)
        fail_msg("%s: the staged schedule's table has %zu stages; the code has %d",
                 doc_path(), t.n_rows, SCHEDULE_STAGES);
    const schedule_config c = {SCHEDULE_STAGED, 1e-3, 0, 0, 0, 1.0};
    uint64_t len = 1; /* 3^i */
    for (size_t i = 0; i < SCHEDULE_STAGES; i++, len *= 3) {
        char key[8], lr[32], lr_last[32];
        snprintf(key, sizeof key, "%zu", i);
        const doc_row *r = row_named(&t, key);
        uint64_t first = parse_count(r, 1), last = parse_count(r, 2);
        uint64_t want_first = schedule_stage_epochs(i);
        uint64_t want_last = schedule_stage_epochs(i + 1) - 1;
        if (first != want_first || last != want_last)
            fail_msg("%s:%zu: stage %zu is epochs %llu-%llu, not %llu-%llu", doc_path(),
                     r->line, i, (unsigned long long)want_first,
                     (unsigned long long)want_last, (unsigned long long)first,
                     (unsigned long long)last);
        /* "stage i lasts 3^i epochs", and schedule_stage agrees */
        assert_true(last - first + 1 == len);
        assert_int_equal(schedule_stage(first), i);
        assert_int_equal(schedule_stage(last), i);
        if (i > 0)
            assert_int_equal(schedule_stage(first - 1), i - 1);
        six_digits(lr, sizeof lr, schedule_lr(&c, first, 0.0));
        six_digits(lr_last, sizeof lr_last, schedule_lr(&c, last, 0.999));
        assert_string_equal(lr, lr_last); /* one rate through the stage */
        /* the rate is lr 10^(-i/7), as the document's formula says */
        assert_true(schedule_lr(&c, first, 0.5) == 1e-3 * pow(10.0, -(double)i / 7.0));
        if (strcmp(cell(r, 3), lr) != 0)
            fail_msg("%s:%zu: stage %zu's learning rate is %s, not %s", doc_path(),
                     r->line, i, lr, cell(r, 3));
    }
    /* Later epochs stay in the last stage. */
    uint64_t end = schedule_stage_epochs(SCHEDULE_STAGES);
    assert_int_equal(schedule_stage(end), SCHEDULE_STAGES - 1);
    assert_int_equal(schedule_stage(UINT64_MAX), SCHEDULE_STAGES - 1);
    assert_int_equal(SCHEDULE_STAGES, 8);
    char num[32];
    with_commas(num, sizeof num, end);
    doc_says_f("epochs from %s on (past the %s epochs of the eight stages) stay in "
               "stage %d", num, num, SCHEDULE_STAGES - 1);
    doc_table_free(&t);
}

/* The test vectors of the cosine and step schedules and the KL factor. */
static void test_schedule_vectors(void **state)
{
    (void)state;
    doc_table t;
    doc_table_load(&t, "| settings | e | frac | value |");
    static const struct {
        const char *key;
        int kl; /* 1: schedule_kl_factor(kl_warmup, ...), 0: schedule_lr(&c, ...) */
        schedule_config c;
        uint64_t kl_warmup;
    } settings[] = {
        {"cosine, lr 1e-3, warmup 2, horizon 10", 0, {SCHEDULE_COSINE, 1e-3, 2, 10, 0, 1.0}, 0},
        {"step, lr 1e-3, every 10, gamma 0.5", 0, {SCHEDULE_STEP, 1e-3, 0, 0, 10, 0.5}, 0},
        {"KL factor, kl_warmup 4", 1, {SCHEDULE_CONSTANT, 1e-3, 0, 0, 0, 1.0}, 4},
    };
    enum { N_SETTINGS = sizeof settings / sizeof settings[0] };
    size_t used[N_SETTINGS] = {0};
    for (size_t i = 0; i < t.n_rows; i++) {
        const doc_row *r = &t.row[i];
        size_t k = 0;
        while (k < N_SETTINGS && strcmp(settings[k].key, cell(r, 0)) != 0)
            k++;
        if (k == N_SETTINGS)
            fail_msg("%s:%zu: settings \"%s\" are not ones the test knows", doc_path(),
                     r->line, cell(r, 0));
        used[k]++;
        uint64_t e = parse_count(r, 1);
        char *end;
        double frac = strtod(cell(r, 2), &end);
        if (end == cell(r, 2) || *end || !(frac >= 0.0 && frac < 1.0))
            fail_msg("%s:%zu: \"%s\" is not a fraction in [0, 1)", doc_path(), r->line,
                     cell(r, 2));
        double v = settings[k].kl ? schedule_kl_factor(settings[k].kl_warmup, e, frac)
                                  : schedule_lr(&settings[k].c, e, frac);
        char want[32];
        six_digits(want, sizeof want, v);
        if (strcmp(cell(r, 3), want) != 0)
            fail_msg("%s:%zu: %s at e %llu, frac %s is %s, not %s", doc_path(), r->line,
                     settings[k].key, (unsigned long long)e, cell(r, 2), want, cell(r, 3));
    }
    for (size_t k = 0; k < N_SETTINGS; k++)
        if (used[k] == 0)
            fail_msg("%s: no test vector of \"%s\"", doc_path(), settings[k].key);
    doc_says("`pi` is 3.14159265358979323846");
    doc_table_free(&t);
}

/* ======================================================================== */
/* Reader rules: older versions, the header size, the data fingerprint,     */
/* the training controls                                                    */
/* ======================================================================== */

/* Writes b (len bytes) to dir/name and reads it; returns ckpt_read's result
 * (d is freed unless keep; the message goes to err if non-NULL). */
static int read_bytes(const char *dir, const char *name, const unsigned char *b,
                      size_t len, ckpt_data *d, int keep, err_msg *err)
{
    char path[256];
    tu_join(path, sizeof path, dir, name);
    tu_write_file(path, b, len);
    err_msg e = {{0}};
    int rc = ckpt_read(path, d, err ? err : &e);
    if (rc == 0 && !keep)
        ckpt_data_free(d);
    return rc;
}

/* cur, a current file of len bytes, made an older version by the
 * document's rule: the header cut after its first keep fields, the rest
 * moved up, the version and header size stamped, the CRC redone. */
static unsigned char *cut_header(const unsigned char *cur, size_t len, size_t keep,
                                 uint32_t version, size_t *len_out)
{
    size_t hc = tu_get_le32(cur + 12), n = len - (hc - 8 * keep);
    unsigned char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, cur, OFF_HEADER + 8 * keep);
    memcpy(b + OFF_HEADER + 8 * keep, cur + OFF_HEADER + hc, len - OFF_HEADER - hc);
    tu_put_le32(b + 8, version);
    tu_put_le32(b + 12, (uint32_t)(8 * keep));
    fix_crc(b, n);
    *len_out = n;
    return b;
}

/* The training control, validation or objective field name of t, as a
 * double; fails for an unknown name. */
static double control_of(const ckpt_train *t, const char *name, size_t line)
{
    static const char *const names[] = {"sched", "warmup", "horizon", "every",
                                        "gamma", "kl_warmup", "adam_beta1",
                                        "adam_beta2", "adam_eps", "init",
                                        "valid_n", "best_epoch", "best_loss",
                                        "objective", "draws", "sum_obj"};
    const double v[] = {(double)t->set.sched.kind, (double)t->set.sched.warmup,
                        (double)t->set.sched.horizon, (double)t->set.sched.every,
                        t->set.sched.gamma, (double)t->set.kl_warmup, t->set.adam_beta1,
                        t->set.adam_beta2, t->set.adam_eps, (double)t->set.init,
                        (double)t->set.valid, (double)t->best_epoch, t->best_loss,
                        (double)t->set.objective, (double)t->set.draws, t->sum_obj};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i], name) == 0)
            return v[i];
    fail_msg("%s:%zu: \"%s\" is not a training control the test knows", doc_path(),
             line, name);
    return 0.0;
}

#define HEADING_DEFAULTS "| field | a version 2 or 3 file reads as |"

/* What the defaults table gives sum_obj of an older file: not a number but
 * the ELBO's running sum, from the file's own fields. */
#define SUM_OBJ_RULE "`sum_rec + beta * sum_kl`"

/* The shape the document says a file before version 5 reads as: one
 * channel; a square of side sqrt(x_dim) when x_dim is a perfect square,
 * else 1 x x_dim. */
static void doc_pre5_shape(size_t x_dim, size_t *height, size_t *width)
{
    size_t s = 0;
    while ((s + 1) * (s + 1) <= x_dim)
        s++;
    *height = s * s == x_dim ? s : 1;
    *width = s * s == x_dim ? s : x_dim;
}

/* d, read from a file of an older version made from s, is s's checkpoint
 * with one stochastic layer (the document's rule for every file before
 * version 7), the standard estimator (its rule for every file before
 * version 6; a version-6 file keeps its own), the image shape of the
 * document's pre-5 rule (versions 2 to 4; a file of version 5 or 6 keeps
 * its shape), and (versions 2 and 3) the training controls of the
 * document's defaults table (and, for version 2, no fingerprint); a file
 * of version 4, 5 or 6 keeps its controls. */
static void check_older(const ckpt_data *d, const saved *s, uint32_t version,
                        const doc_table *defaults)
{
    assert_int_equal(d->version, version);
    assert_int_equal(d->n_params, s->m.n_params);
    assert_memory_equal(d->params, s->m.params, s->m.n_params * sizeof(float));
    assert_memory_equal(d->adam_m, s->adam_m, s->m.n_params * sizeof(float));
    assert_memory_equal(d->adam_v, s->adam_v, s->m.n_params * sizeof(float));
    assert_int_equal(d->cfg.arch, s->m.cfg.arch);
    assert_int_equal(d->cfg.n_classes, s->m.cfg.n_classes);
    assert_int_equal(d->cfg.x_dim, s->m.cfg.x_dim);
    /* One stochastic layer: fields 62-67 all 0. */
    if (d->cfg.z2_dim || d->cfg.n_hidden2 || d->cfg.hidden2[0] || d->cfg.hidden2[1] ||
        d->cfg.hidden2[2] || d->cfg.hidden2[3])
        fail_msg("a version-%u file reads as a second stochastic layer of %zu units; the "
                 "document says one stochastic layer", version, d->cfg.z2_dim);
    size_t height, width, channels = 1;
    if (version >= 5) { /* the shape fields are in the file */
        height = s->m.cfg.height, width = s->m.cfg.width, channels = s->m.cfg.channels;
    } else {
        doc_pre5_shape(d->cfg.x_dim, &height, &width);
    }
    if (d->cfg.height != height || d->cfg.width != width || d->cfg.channels != channels)
        fail_msg("a version-%u file of x_dim %zu reads as %zu x %zu x %zu images; the "
                 "document says %zu x %zu x %zu", version, d->cfg.x_dim, d->cfg.height,
                 d->cfg.width, d->cfg.channels, height, width, channels);
    const ckpt_train *t = &d->train;
    assert_int_equal(t->adam_t, s->t.adam_t);
    assert_true(t->set.sched.lr == s->t.set.sched.lr && t->set.sched.lr == s->t.set.sched.lr);
    assert_true(t->set.beta == s->t.set.beta);
    assert_true(t->sum_rec == s->t.sum_rec && t->sum_kl == s->t.sum_kl);
    assert_true(t->seconds == s->t.seconds);
    assert_memory_equal(&t->rng_noise, &s->t.rng_noise, sizeof t->rng_noise);
    assert_memory_equal(&t->rng_data, &s->t.rng_data, sizeof t->rng_data);
    assert_int_equal(t->epoch, s->t.epoch);
    assert_int_equal(t->step, s->t.step);
    assert_int_equal(t->n_seen, s->t.n_seen);
    if (version == 2) {
        assert_int_equal(t->data.n, 0);
        assert_int_equal(t->data.rows | t->data.cols, 0);
        assert_int_equal(t->data.pixels_crc | t->data.labels_crc, 0);
    } else {
        assert_memory_equal(&t->data, &s->t.data, sizeof t->data);
    }
    /* Every setting the version has reads as written. */
    for (int i = 0; i < SETTING_COUNT; i++)
        if (SETTINGS[i].since <= version &&
            settings_differ(&t->set, &s->t.set, (setting_id)i))
            fail_msg("a version-%u file reads setting %s otherwise than it was written",
                     version, SETTINGS[i].key);
    /* The estimator, which every file before version 6 lacks, reads as 0
     * (standard), and differs from what the version-7 file held; a
     * version-6 file keeps its own. */
    if (s->t.set.estimator == MODEL_EST_STANDARD)
        fail_msg("test setup: the estimator holds its default already");
    if (version >= 6 && t->set.estimator != s->t.set.estimator)
        fail_msg("a version-%u file reads estimator %d, not the %d it holds", version,
                 (int)t->set.estimator, (int)s->t.set.estimator);
    if (version < 6 && t->set.estimator != MODEL_EST_STANDARD)
        fail_msg("a version-%u file reads estimator %d; the document says 0 (standard)",
                 version, (int)t->set.estimator);
    /* The controls versions 2 and 3 lack read as the defaults table says
     * (test_older_versions checks that it lists each of them once); a
     * file of version 4 or 5 has them and reads them as written. */
    for (size_t i = 0; i < defaults->n_rows; i++) {
        const doc_row *r = &defaults->row[i];
        const char *name = cell(r, 0), *text = cell(r, 1);
        char *end;
        double want;
        if (strcmp(name, "sum_obj") == 0) {
            if (strcmp(text, SUM_OBJ_RULE) != 0)
                fail_msg("%s:%zu: sum_obj reads as \"%s\", not %s", doc_path(), r->line,
                         text, SUM_OBJ_RULE);
            want = s->t.sum_rec + s->t.set.beta * s->t.sum_kl;
        } else {
            want = strtod(text, &end);
            if (end == text || *end)
                fail_msg("%s:%zu: \"%s\" is not a number", doc_path(), r->line, text);
        }
        double got = control_of(t, name, r->line), saved_v = control_of(&s->t, name, r->line);
        if (version >= 4) { /* a file of version 4, 5 or 6 keeps its own value */
            if (got != saved_v)
                fail_msg("a version-%u file reads %s as %.17g, not the %.17g it holds",
                         version, name, got, saved_v);
            continue;
        }
        if (got != want)
            fail_msg("%s:%zu: a version-%u file reads %s as %.17g, not %s", doc_path(),
                     r->line, version, name, got, text);
        /* ... and differs from what the version-7 file held. */
        if (saved_v == want)
            fail_msg("test setup: %s holds its default already", name);
    }
}

/* Version 6 is version 7 without the second stochastic layer, version 5
 * version 6 without the estimator, version 4 version 5 without the image
 * shape, version 3 version 4 without the training controls, version 2
 * version 3 without the fingerprint, as the document says; all read back
 * as the same checkpoint, with one stochastic layer and the documented
 * estimator, shape and defaults. Only each version's own header size is
 * accepted. */
static void test_older_versions(void **state)
{
    fixture *fx = *state;
    doc_table t, dt;
    doc_table_load(&t, HEADING_FIELDS);
    doc_table_load(&dt, HEADING_DEFAULTS);
    saved s;
    make_distinct(&s, 0);
    size_t len7;
    unsigned char *b7 = save_and_read(fx->dir, "v7.bin", &s, &len7);
    assert_int_equal(tu_get_le32(b7 + 8), CKPT_VERSION);
    assert_int_equal(CKPT_VERSION, 7);
    size_t n7 = tu_get_le32(b7 + 12) / 8, n6, n5, n4, n3, n2, lo, last;
    older_counts(&t, &n6, &n5, &n4, &n3, &n2);
    assert_true(n2 < n3 && n3 < n4 && n4 < n5 && n5 < n6 && n6 < n7);
    field_range(&t, "data_labels_crc32", &lo, &last);
    assert_int_equal(last + 1, n3); /* the fingerprint ends version 3's */
    field_range(&t, "sum_obj", &lo, &last);
    assert_int_equal(last + 1, n4); /* the objective ends version 4's */
    field_range(&t, "channels", &lo, &last);
    assert_int_equal(last + 1, n5); /* the shape ends version 5's */
    field_range(&t, "estimator", &lo, &last);
    assert_int_equal(last + 1, n6); /* the estimator ends version 6's */
    assert_int_equal(n6 - n5, 1);
    field_range(&t, "hidden2", &lo, &last);
    assert_int_equal(last + 1, n7); /* the second stochastic layer ends version 7's */
    assert_int_equal(n7 - n6, 2 + MODEL_MAX_HIDDEN);
    /* The defaults table lists the fields version 3 lacks and version 4
     * has, each once. */
    if (dt.n_rows != n4 - n3)
        fail_msg("%s: the defaults table has %zu rows; versions 2 and 3 lack %zu "
                 "fields of version 4", doc_path(), dt.n_rows, n4 - n3);
    for (size_t i = 0; i < dt.n_rows; i++) {
        size_t f, hi;
        field_range(&t, cell(&dt.row[i], 0), &f, &hi);
        if (f < n3 || f >= n4)
            fail_msg("%s:%zu: %s is field %zu, which is not one version 3 lacks and "
                     "version 4 has", doc_path(), dt.row[i].line, cell(&dt.row[i], 0), f);
        for (size_t j = 0; j < i; j++)
            if (strcmp(cell(&dt.row[j], 0), cell(&dt.row[i], 0)) == 0)
                fail_msg("%s:%zu: %s listed twice", doc_path(), dt.row[i].line,
                         cell(&dt.row[i], 0));
    }

    /* Files of versions 4 to 6 keep the training controls, so their
     * fixture's step schedule must leave warmup and horizon at 0 to be
     * readable; the cut-off controls of versions 3 and 2 may hold
     * anything. */
    saved s4;
    make_distinct(&s4, 0);
    s4.t.set.sched.warmup = s4.t.set.sched.horizon = 0;
    size_t len7r, len6, len5, len4, len3, len2;
    unsigned char *b7r = save_and_read(fx->dir, "v7r.bin", &s4, &len7r);
    unsigned char *b6 = cut_header(b7r, len7r, n6, 6, &len6);
    unsigned char *b5 = cut_header(b7r, len7r, n5, 5, &len5);
    unsigned char *b4 = cut_header(b7r, len7r, n4, 4, &len4);
    unsigned char *b3 = cut_header(b7, len7, n3, 3, &len3);
    unsigned char *b2 = cut_header(b7, len7, n2, 2, &len2);
    ckpt_data d;
    if (read_bytes(fx->dir, "v7r.bin", b7r, len7r, &d, 1, NULL))
        fail_msg("test setup: the version-7 file is rejected");
    assert_int_equal(d.train.set.estimator, s4.t.set.estimator); /* it keeps its own */
    ckpt_data_free(&d);
    if (read_bytes(fx->dir, "v6.bin", b6, len6, &d, 1, NULL))
        fail_msg("a version-6 file made as the document says is rejected");
    check_older(&d, &s4, 6, &dt);
    ckpt_data_free(&d);
    if (read_bytes(fx->dir, "v5.bin", b5, len5, &d, 1, NULL))
        fail_msg("a version-5 file made as the document says is rejected");
    check_older(&d, &s4, 5, &dt);
    ckpt_data_free(&d);
    if (read_bytes(fx->dir, "v4.bin", b4, len4, &d, 1, NULL))
        fail_msg("a version-4 file made as the document says is rejected");
    check_older(&d, &s4, 4, &dt);
    ckpt_data_free(&d);
    if (read_bytes(fx->dir, "v3.bin", b3, len3, &d, 1, NULL))
        fail_msg("a version-3 file made as the document says is rejected");
    check_older(&d, &s, 3, &dt);
    ckpt_data_free(&d);
    if (read_bytes(fx->dir, "v2.bin", b2, len2, &d, 1, NULL))
        fail_msg("a version-2 file made as the document says is rejected");
    check_older(&d, &s, 2, &dt);
    ckpt_data_free(&d);

    /* A file before version 7 reads as one stochastic layer: a model with
     * two cut to version 6 is taken for the one-layer model of the same
     * other fields, whose parameter count is not the file's. */
    saved two;
    make_distinct(&two, 3);
    two.t.set.sched.warmup = two.t.set.sched.horizon = 0;
    size_t lt7, lt6;
    unsigned char *t7 = save_and_read(fx->dir, "two7.bin", &two, &lt7);
    unsigned char *t6 = cut_header(t7, lt7, n6, 6, &lt6);
    if (read_bytes(fx->dir, "two7.bin", t7, lt7, &d, 1, NULL))
        fail_msg("test setup: the version-7 file of two stochastic layers is rejected");
    assert_int_equal(d.cfg.z2_dim, two.m.cfg.z2_dim);
    ckpt_data_free(&d);
    model_config one = two.m.cfg;
    one.z2_dim = one.n_hidden2 = 0;
    memset(one.hidden2, 0, sizeof one.hidden2);
    model_net shape;
    err_msg err = {{0}};
    if (model_layout(&shape, &one, &err))
        fail_msg("model_layout: %s", err.text);
    assert_true(shape.n_params < two.m.n_params);
    char want[160];
    snprintf(want, sizeof want, "%zu parameters stored, the architecture has %zu",
             two.m.n_params, shape.n_params);
    if (read_bytes(fx->dir, "two6.bin", t6, lt6, &d, 0, &err) != -1 || !strstr(err.text, want))
        fail_msg("a version-6 file of a model with two stochastic layers: ckpt_read says "
                 "\"%s\", not \"%s\"", err.text, want);
    free(t6);
    free(t7);
    free_saved(&two);

    /* A square x_dim reads as a square: the default model (784 pixels)
     * cut to version 4 reads as 28 x 28 grey images, the shape version 7
     * (and 6 and 5) writes for it. */
    saved sq;
    model_config c = cfg_default();
    make_saved(&sq, &c);
    assert_int_equal(sq.m.cfg.height, 28);
    assert_int_equal(sq.m.cfg.width, 28);
    assert_int_equal(sq.m.cfg.channels, 1);
    size_t lsq7, lsq4;
    unsigned char *q7 = save_and_read(fx->dir, "sq7.bin", &sq, &lsq7);
    unsigned char *q4 = cut_header(q7, lsq7, n4, 4, &lsq4);
    if (read_bytes(fx->dir, "sq4.bin", q4, lsq4, &d, 1, NULL))
        fail_msg("a version-4 file of the default model is rejected");
    size_t height, width;
    doc_pre5_shape(784, &height, &width);
    assert_int_equal(height, 28);
    assert_int_equal(d.cfg.height, height);
    assert_int_equal(d.cfg.width, width);
    assert_int_equal(d.cfg.channels, 1);
    ckpt_data_free(&d);
    free(q4);
    free(q7);
    free_saved(&sq);

    /* Only the exact header size of each version is accepted. */
    struct {
        unsigned char *b;
        size_t len, n_fields;
    } v[6] = {{b2, len2, n2}, {b3, len3, n3}, {b4, len4, n4}, {b5, len5, n5},
              {b6, len6, n6}, {b7r, len7r, n7}};
    for (int i = 0; i < 6; i++) {
        const long sizes[] = {8 * (long)n2, 8 * (long)n3, 8 * (long)n4, 8 * (long)n5,
                              8 * (long)n6, 8 * (long)n7, 8 * (long)v[i].n_fields - 8,
                              8 * (long)v[i].n_fields + 8};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            if (sizes[k] == 8 * (long)v[i].n_fields)
                continue;
            tu_put_le32(v[i].b + 12, (uint32_t)sizes[k]);
            fix_crc(v[i].b, v[i].len);
            if (read_bytes(fx->dir, "vh.bin", v[i].b, v[i].len, &d, 0, NULL) != -1)
                fail_msg("a version-%d file with a header of %ld bytes is accepted",
                         i + 2, sizes[k]);
        }
    }

    /* The numbers the prose states. */
    size_t p7 = OFF_HEADER + 8 * n7, p6 = OFF_HEADER + 8 * n6, p5 = OFF_HEADER + 8 * n5,
           p4 = OFF_HEADER + 8 * n4, p3 = OFF_HEADER + 8 * n3, p2 = OFF_HEADER + 8 * n2;
    doc_says_f("checkpoint format (version %u)", CKPT_VERSION);
    doc_says_f("format version, u32: %u (6, 5, 4, 3 and 2 are still read)", CKPT_VERSION);
    doc_says_f("`vae` writes version %u and still reads versions 6, 5, 4, 3 and 2",
               CKPT_VERSION);
    doc_says_f("Version 6 is version 7 without header fields %zu-%zu (the second "
               "stochastic layer)", n6, n7 - 1);
    doc_says_f("Version 5 is version 6 without header field %zu (the gradient estimator)",
               n5);
    doc_says_f("Version 4 is version 5 without header fields %zu-%zu", n4, n5 - 1);
    doc_says_f("Version 3 is version 4 without header fields %zu-%zu", n3, n4 - 1);
    doc_says_f("Version 2 is version 3 without header fields %zu-%zu", n2, n3 - 1);
    doc_says_f("its header is %zu fields (%zu bytes), and the parameters start at byte "
               "%zu instead of %zu", n6, 8 * n6, p6, p7);
    doc_says_f("its header is %zu fields (%zu bytes), and the parameters start at byte "
               "%zu instead of %zu", n5, 8 * n5, p5, p6);
    doc_says_f("its header is %zu fields (%zu bytes), and the parameters start at byte "
               "%zu instead of %zu", n4, 8 * n4, p4, p5);
    doc_says_f("its header is %zu fields (%zu bytes), and the parameters start at byte "
               "%zu instead of %zu", n3, 8 * n3, p3, p4);
    doc_says_f("its header is %zu fields (%zu bytes), and the parameters start at byte "
               "%zu.", n2, 8 * n2, p2);
    doc_says_f("`%zu * 8` = %zu (version 6: `%zu * 8` = %zu; version 5: `%zu * 8` = %zu; "
               "version 4: `%zu * 8` = %zu; version 3: `%zu * 8` = %zu; version 2: "
               "`%zu * 8` = %zu)", n7, 8 * n7, n6, 8 * n6, n5, 8 * n5, n4, 8 * n4, n3,
               8 * n3, n2, 8 * n2);
    doc_says_f("With H = %zu the parameters start at byte %zu and the file is exactly "
               "`%zu + 12n + 4` bytes (version 6: `%zu + 12n + 4`; version 5: "
               "`%zu + 12n + 4`; version 4: `%zu + 12n + 4`; version 3: `%zu + 12n + 4`; "
               "version 2: `%zu + 12n + 4`)", 8 * n7, p7, p7, p6, p5, p4, p3, p2);
    doc_says_f("accepts exactly %zu for version 2, %zu for version 3, %zu for version 4, "
               "%zu for version 5, %zu for version 6 and %zu for version 7", 8 * n2,
               8 * n3, 8 * n4, 8 * n5, 8 * n6, 8 * n7);
    doc_says_f("header size exactly %zu (version 2), %zu (version 3), %zu (version 4), "
               "%zu (version 5), %zu (version 6) or %zu (version 7)", 8 * n2, 8 * n3,
               8 * n4, 8 * n5, 8 * n6, 8 * n7);
    doc_says_f("version: above %u is \"newer than this vae reads; upgrade vae\", below "
               "%u unknown", CKPT_VERSION, CKPT_VERSION_MIN);
    doc_says_f("always writes the current version (%u)", CKPT_VERSION);
    doc_says_f("A file before version %u reads as a model with one stochastic layer "
               "(fields %zu-%zu all 0", CKPT_VERSION, n6, n7 - 1);
    doc_says_f("and (since version %u) the second stochastic layer of a model with two",
               CKPT_VERSION);
    doc_says_f("(whose model has one stochastic layer: fields %zu-%zu are then written 0",
               n6, n7 - 1);
    doc_says_f("A file before version %u reads with estimator 0 (`%s`",
               SETTINGS[SETTING_ESTIMATOR].since,
               enum_name(&model_estimator_names, MODEL_EST_STANDARD));
    doc_says("A file before version 5 reads as grey images (channels 1): height = "
             "width = sqrt(x_dim) when x_dim is a perfect square, else height 1 and "
             "width x_dim");
    free(b2);
    free(b3);
    free(b4);
    free(b5);
    free(b6);
    free(b7);
    free(b7r);
    free_saved(&s);
    free_saved(&s4);
    doc_table_free(&dt);
    doc_table_free(&t);
}

/* The training controls' rules in the header table's last column and
 * "What the reader checks", case by case. */
static void test_control_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    static const char *const names[] = {"sched", "warmup", "horizon", "every", "gamma",
                                        "kl_warmup", "adam_beta1", "adam_beta2",
                                        "adam_eps", "init"};
    enum { SCHED, WARMUP, HORIZON, EVERY, GAMMA, KLW, B1, B2, EPS, INIT, N_CTRL };
    size_t f[N_CTRL], hi;
    for (int i = 0; i < N_CTRL; i++)
        field_range(&t, names[i], &f[i], &hi);
    saved s;
    make_distinct(&s, 0);
    size_t len;
    unsigned char *good = save_and_read(fx->dir, "ctl.bin", &s, &len);
    unsigned char *b = malloc(len);
    assert_non_null(b);
    const double nan = NAN, inf = INFINITY;
    /* Each case sets all ten fields. why: 0 accepted, 'S' rejected with
     * the schedule's message, 'O' with the optimizer's. */
    struct ctl_case {
        uint64_t sched, warmup, horizon, every, klw, init;
        double gamma, b1, b2, eps;
        char why;
    };
#define BASE 3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, 1e-8
    static const uint64_t big = UINT64_MAX;
    const struct ctl_case cases[] = {
        {BASE, 0},
        /* the settings a kind does not use must hold 0 (gamma 1.0) */
        {0, 0, 0, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 0},
        {1, 0, 0, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 0},
        {2, 0, 1, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 0},
        {0, 5, 0, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {0, 0, 0, 0, 0, 0, nan, 0.9, 0.999, 1e-8, 'S'},
        {1, 7, 3, 0, 0, 0, -2.0, 0.9, 0.999, 1e-8, 'S'},
        {1, 0, 0, 4, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {2, 0, 1, 0, 0, 0, nan, 0.9, 0.999, 1e-8, 'S'},
        {2, 0, 1, 2, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {3, 9, 2, 1, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {3, 0, 2, 1, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {4, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {big, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        /* cosine: horizon >= 1, warmup < horizon */
        {2, 0, 0, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {2, 3, 3, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {2, 4, 3, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {2, 2, 3, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 0},
        /* step: every >= 1, gamma in (0, 1] */
        {3, 0, 0, 0, 0, 0, 1.0, 0.9, 0.999, 1e-8, 'S'},
        {3, 0, 0, big, 0, 0, 1e-300, 0.9, 0.999, 1e-8, 0},
        {3, 0, 0, 1, 0, 0, 0.0, 0.9, 0.999, 1e-8, 'S'},
        {3, 0, 0, 1, 0, 0, -0.5, 0.9, 0.999, 1e-8, 'S'},
        {3, 0, 0, 1, 0, 0, 1.0000000000000002, 0.9, 0.999, 1e-8, 'S'},
        {3, 0, 0, 1, 0, 0, nan, 0.9, 0.999, 1e-8, 'S'},
        /* kl_warmup: any */
        {3, 0, 0, 1, big, 0, 1.0, 0.9, 0.999, 1e-8, 0},
        /* betas in [0, 1) */
        {3, 0, 0, 1, 0, 0, 1.0, 0.0, 0.0, 1e-8, 0},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9999999999999999, 0.9999999999999999, 1e-8, 0},
        {3, 0, 0, 1, 0, 0, 1.0, 1.0, 0.999, 1e-8, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, -1e-300, 0.999, 1e-8, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, nan, 0.999, 1e-8, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 1.0, 1e-8, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, nan, 1e-8, 'O'},
        /* eps finite and > 0 */
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, 4.9e-324, 0},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, 1e300, 0},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, 0.0, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, -1e-8, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, inf, 'O'},
        {3, 0, 0, 1, 0, 0, 1.0, 0.9, 0.999, nan, 'O'},
        /* init 0 or 1 */
        {3, 0, 0, 1, 0, 1, 1.0, 0.9, 0.999, 1e-8, 0},
        {3, 0, 0, 1, 0, 2, 1.0, 0.9, 0.999, 1e-8, 'O'},
    };
#undef BASE
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct ctl_case *c = &cases[i];
        memcpy(b, good, len);
        const uint64_t v[N_CTRL] = {c->sched, c->warmup, c->horizon, c->every,
                                    f64_bits(c->gamma), c->klw, f64_bits(c->b1),
                                    f64_bits(c->b2), f64_bits(c->eps), c->init};
        for (int k = 0; k < N_CTRL; k++)
            tu_put_le64(b + OFF_HEADER + 8 * f[k], v[k]);
        fix_crc(b, len);
        ckpt_data d;
        err_msg err = {{0}};
        int rc = read_bytes(fx->dir, "ctlx.bin", b, len, &d, 1, &err);
        const char *want = c->why == 'S' ? "bad learning-rate schedule"
                           : c->why == 'O' ? "bad optimizer settings" : NULL;
        if (rc != (want ? -1 : 0) || (want && !strstr(err.text, want)))
            fail_msg("case %zu (sched %llu warmup %llu horizon %llu every %llu gamma %g "
                     "kl_warmup %llu betas %g %g eps %g init %llu): ckpt_read %s%s%s",
                     i, (unsigned long long)c->sched, (unsigned long long)c->warmup,
                     (unsigned long long)c->horizon, (unsigned long long)c->every,
                     c->gamma, (unsigned long long)c->klw, c->b1, c->b2, c->eps,
                     (unsigned long long)c->init, rc ? "rejects it: " : "accepts it",
                     rc ? err.text : "", want && !rc ? ", expected a rejection" : "");
        if (rc == 0) {
            /* What was accepted reads back as written. */
            const ckpt_train *tr = &d.train;
            assert_int_equal(tr->set.sched.kind, c->sched);
            assert_int_equal(tr->set.sched.every, c->every);
            assert_int_equal(tr->set.kl_warmup, c->klw);
            assert_int_equal(tr->set.init, c->init);
            assert_true(f64_bits(tr->set.sched.gamma) == f64_bits(c->gamma));
            assert_true(f64_bits(tr->set.adam_eps) == f64_bits(c->eps));
            ckpt_data_free(&d);
        }
    }
    /* The messages the document names. */
    doc_says("A failure says \"bad learning-rate schedule\" and why");
    doc_says("A failure says \"bad optimizer settings\"");
    free(b);
    free(good);
    free_saved(&s);
    doc_table_free(&t);
}

/* The fingerprint's rules in the header table's last column. */
static void test_fingerprint_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t f_n, f_rows, f_cols, f_pix, f_lab, hi;
    field_range(&t, "data_n", &f_n, &hi);
    field_range(&t, "data_rows", &f_rows, &hi);
    field_range(&t, "data_cols", &f_cols, &hi);
    field_range(&t, "data_pixels_crc32", &f_pix, &hi);
    field_range(&t, "data_labels_crc32", &f_lab, &hi);
    saved s;
    make_distinct(&s, 0);
    s.t.set.sched.warmup = s.t.set.sched.horizon = 0; /* a readable step schedule */
    /* No validation set, whose size the fingerprint's data_n bounds. */
    s.t.set.valid = s.t.best_epoch = 0;
    s.t.best_loss = 0.0;
    size_t len;
    unsigned char *good = save_and_read(fx->dir, "fp.bin", &s, &len);
    unsigned char *b = malloc(len);
    assert_non_null(b);
    const uint64_t big = (uint64_t)1 << 32;
    static const struct {
        uint64_t n, rows, cols, pix, lab;
        int ok;
    } cases[] = {
        {0, 0, 0, 0, 0, 1},               /* unknown */
        {0, 1, 0, 0, 0, 0},               /* unknown, but a size */
        {0, 0, 0, 0, 1, 0},               /* unknown, but a CRC */
        {1, 1, 1, 0, 0, 1},
        {1, 65536, 65536, 0xffffffffu, 0xffffffffu, 1},
        {1, 0, 1, 0, 0, 0},
        {1, 1, 0, 0, 0, 0},
        {1, 65537, 1, 0, 0, 0},
        {1, 1, 65537, 0, 0, 0},
        {60000, 28, 28, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int crc_big = 0; crc_big < 3; crc_big++) {
            memcpy(b, good, len);
            uint64_t pix = cases[i].pix + (crc_big == 1 ? big : 0);
            uint64_t lab = cases[i].lab + (crc_big == 2 ? big : 0);
            tu_put_le64(b + OFF_HEADER + 8 * f_n, cases[i].n);
            tu_put_le64(b + OFF_HEADER + 8 * f_rows, cases[i].rows);
            tu_put_le64(b + OFF_HEADER + 8 * f_cols, cases[i].cols);
            tu_put_le64(b + OFF_HEADER + 8 * f_pix, pix);
            tu_put_le64(b + OFF_HEADER + 8 * f_lab, lab);
            fix_crc(b, len);
            ckpt_data d;
            int want = cases[i].ok && !crc_big ? 0 : -1;
            int rc = read_bytes(fx->dir, "fpx.bin", b, len, &d, 0, NULL);
            if (rc != want)
                fail_msg("fingerprint n %llu rows %llu cols %llu CRCs 0x%llx 0x%llx: "
                         "ckpt_read %s it", (unsigned long long)cases[i].n,
                         (unsigned long long)cases[i].rows,
                         (unsigned long long)cases[i].cols, (unsigned long long)pix,
                         (unsigned long long)lab, rc ? "rejects" : "accepts");
        }
    }
    free(b);
    free(good);
    free_saved(&s);
    doc_table_free(&t);
    /* The CRCs are of the bytes the document names: a colour set's pixel
     * CRC covers n * rows * cols * channels bytes, and a set without a
     * label file has n zero labels. */
    enum { N = 3, ROWS = 2, COLS = 5, CH = 3 };
    uint8_t img[N * ROWS * COLS * CH], lab[N] = {0, 0, 0};
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 37 + 11);
    idx_set set = {N, ROWS, COLS, img, lab, CH, 0};
    idx_fingerprint fp = idx_fingerprint_of(&set);
    assert_int_equal(fp.n, N);
    assert_int_equal(fp.rows, ROWS);
    assert_int_equal(fp.cols, COLS);
    uLong crc0 = crc32(0L, Z_NULL, 0);
    assert_int_equal(fp.pixels_crc, (uint32_t)crc32(crc0, img, (uInt)sizeof img));
    assert_int_equal(fp.labels_crc, (uint32_t)crc32(crc0, lab, N));
    doc_says("CRC-32 (zlib) of the `data_n * rows * cols * channels` training pixel "
             "bytes in file order");
    doc_says("without label files, as `data_n` zero bytes");
}

/* The validation state's rules in the header table's last column and
 * "What the reader checks". */
static void test_validation_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t f_valid, f_best, f_loss, f_n, f_rows, f_cols, f_pix, f_lab, hi;
    field_range(&t, "valid_n", &f_valid, &hi);
    field_range(&t, "best_epoch", &f_best, &hi);
    field_range(&t, "best_loss", &f_loss, &hi);
    field_range(&t, "data_n", &f_n, &hi);
    field_range(&t, "data_rows", &f_rows, &hi);
    field_range(&t, "data_cols", &f_cols, &hi);
    field_range(&t, "data_pixels_crc32", &f_pix, &hi);
    field_range(&t, "data_labels_crc32", &f_lab, &hi);
    saved s;
    make_distinct(&s, 0); /* epoch 41, data_n 46 */
    s.t.set.sched.warmup = s.t.set.sched.horizon = 0; /* a readable step schedule */
    assert_int_equal(s.t.epoch, 41);
    assert_int_equal(s.t.data.n, 46);
    size_t len;
    unsigned char *good = save_and_read(fx->dir, "val.bin", &s, &len);
    unsigned char *b = malloc(len);
    assert_non_null(b);
    const double nan = NAN, inf = INFINITY;
    const struct {
        uint64_t valid_n, best_epoch;
        double best_loss;
        int no_fingerprint; /* data_n and the rest of the fingerprint 0 */
        int ok;
    } cases[] = {
        {0, 0, 0.0, 0, 1},
        {0, 0, 5.0, 0, 0},    /* a loss but no best epoch */
        {0, 1, 5.0, 0, 0},    /* a best epoch but no validation set */
        {1, 0, 0.0, 0, 1},    /* none finished yet */
        {1, 1, -3.5, 0, 1},   /* any finite loss */
        {45, 41, 80.0, 0, 1}, /* valid_n below data_n, best_epoch = epoch */
        {46, 1, 80.0, 0, 0},  /* valid_n = data_n */
        {1, 42, 80.0, 0, 0},  /* best_epoch after epoch */
        {1, 1, inf, 0, 0},
        {1, 1, nan, 0, 0},
        {UINT64_MAX, 1, 80.0, 1, 1}, /* no fingerprint: valid_n not bounded */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, len);
        tu_put_le64(b + OFF_HEADER + 8 * f_valid, cases[i].valid_n);
        tu_put_le64(b + OFF_HEADER + 8 * f_best, cases[i].best_epoch);
        tu_put_le64(b + OFF_HEADER + 8 * f_loss, f64_bits(cases[i].best_loss));
        if (cases[i].no_fingerprint) {
            const size_t fp[5] = {f_n, f_rows, f_cols, f_pix, f_lab};
            for (int k = 0; k < 5; k++)
                tu_put_le64(b + OFF_HEADER + 8 * fp[k], 0);
        }
        fix_crc(b, len);
        ckpt_data d;
        err_msg err = {{0}};
        int rc = read_bytes(fx->dir, "valx.bin", b, len, &d, 0, &err);
        if (rc != (cases[i].ok ? 0 : -1) ||
            (rc && !strstr(err.text, "bad validation state")))
            fail_msg("valid_n %llu best_epoch %llu best_loss %g%s: ckpt_read %s %s",
                     (unsigned long long)cases[i].valid_n,
                     (unsigned long long)cases[i].best_epoch, cases[i].best_loss,
                     cases[i].no_fingerprint ? " (no fingerprint)" : "",
                     rc ? "rejects it:" : "accepts it", rc ? err.text : "");
    }
    doc_says("A failure says \"bad validation state\"");
    free(b);
    free(good);
    free_saved(&s);
    doc_table_free(&t);
}

/* The held-out images are the ones the document's rule picks. */
static void test_validation_split(void **state)
{
    (void)state;
    enum { N = 300, SIDE = 2 };
    uint8_t img[N * SIDE * SIDE], lab[N];
    for (size_t i = 0; i < N; i++) {
        lab[i] = (uint8_t)(i % 251);
        for (size_t p = 0; p < SIDE * SIDE; p++)
            img[i * SIDE * SIDE + p] = (uint8_t)((i * 7 + p) % 256);
    }
    idx_set whole = {N, SIDE, SIDE, img, lab};
    const uint64_t seed = 12345, valid_n = 37;
    idx_set part, valid;
    err_msg err;
    if (train_split(&whole, valid_n, seed, &part, &valid, &err))
        fail_msg("train_split: %s", err.text);
    /* The document's rule: 0..N-1 shuffled as an epoch's order (for i = N
     * down to 2, j = rng_below(i), swap i-1 and j) by rng_seed(seed ^
     * 0x76616c69); the first valid_n are held out; both parts in file order. */
    const uint64_t salt = 0x76616c69ULL;
    uint32_t order[N];
    for (uint32_t i = 0; i < N; i++)
        order[i] = i;
    rng_state r;
    rng_seed(&r, seed ^ salt);
    for (size_t i = N; i >= 2; i--) {
        size_t j = (size_t)rng_below(&r, i);
        uint32_t tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
    int held[N] = {0};
    for (size_t i = 0; i < valid_n; i++)
        held[order[i]] = 1;
    assert_int_equal(valid.n, valid_n);
    assert_int_equal(part.n, N - valid_n);
    size_t at[2] = {0, 0};
    for (size_t i = 0; i < N; i++) {
        const idx_set *set = held[i] ? &valid : &part;
        size_t k = at[held[i]]++;
        if (memcmp(set->images + k * SIDE * SIDE, img + i * SIDE * SIDE, SIDE * SIDE) ||
            set->labels[k] != lab[i])
            fail_msg("image %zu of the training file: the document puts it %s as image "
                     "%zu; train_split does not", i, held[i] ? "held out" : "kept", k);
    }
    idx_free(&part);
    idx_free(&valid);
    doc_says_f("`rng_seed(seed ^ 0x%llx)`, and the first valid_n indices of the shuffled "
               "order are held out", (unsigned long long)salt);
}

/* ======================================================================== */
/* The objective and K draws                                                */
/* ======================================================================== */

/* The header table's "the reader accepts" cell of field name is want. */
static void expect_accepts(const doc_table *t, const char *name, const char *want)
{
    for (size_t i = 0; i < t->n_rows; i++)
        if (strcmp(cell(&t->row[i], 1), name) == 0) {
            if (strcmp(cell(&t->row[i], 4), want) != 0)
                fail_msg("%s:%zu: the reader accepts %s \"%s\", not \"%s\"", doc_path(),
                         t->row[i].line, name, want, cell(&t->row[i], 4));
            return;
        }
    fail_msg("%s: the header table has no field \"%s\"", doc_path(), name);
}

/* make_distinct's fixture `which` with a schedule a reader accepts: the
 * MLP's step without a cosine's warm-up and horizon, the conv model's
 * cosine without a step's decay. */
static void make_readable(saved *s, int which)
{
    make_distinct(s, which);
    if (which == 0) {
        s->t.set.sched.warmup = s->t.set.sched.horizon = 0;
    } else {
        s->t.set.sched.every = 0;
        s->t.set.sched.gamma = 1.0;
    }
}

/* The objective's rules in the header table's last column and "What the
 * reader checks", case by case, on the conditional MLP and on the conv
 * model, which take the same objectives and draws. */
static void test_objective_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t f_obj, f_draws, f_sum, hi;
    field_range(&t, "objective", &f_obj, &hi);
    field_range(&t, "draws", &f_draws, &hi);
    field_range(&t, "sum_obj", &f_sum, &hi);
    /* The limits the table states are the code's. */
    char num[32], text[64];
    with_commas(num, sizeof num, MODEL_MAX_DRAWS);
    snprintf(text, sizeof text, "1 to %s", num);
    expect_accepts(&t, "draws", text);
    expect_accepts(&t, "objective", "0 or 1");
    expect_accepts(&t, "sum_obj", "finite");
    const double nan = NAN, inf = INFINITY;
    const uint64_t max = MODEL_MAX_DRAWS;
    const struct {
        uint64_t objective, draws;
        double sum_obj;
        int ok_mlp, ok_conv;
    } cases[] = {
        {0, 1, 0.0, 1, 1},
        {0, 1, -12.5, 1, 1}, /* any finite sum */
        {0, 1, 1e300, 1, 1},
        {1, 1, 7.0, 1, 1},   /* the conv VAE too: the IWAE, k draws */
        {0, 2, 7.0, 1, 1},
        {1, 2, -7.0, 1, 1},
        {1, max, 7.0, 1, 1},
        {0, max + 1, 7.0, 0, 0},
        {0, 0, 7.0, 0, 0},
        {1, 0, 7.0, 0, 0},
        {0, UINT64_MAX, 7.0, 0, 0},
        {2, 1, 7.0, 0, 0},
        {UINT64_MAX, 1, 7.0, 0, 0},
        {0, 1, nan, 0, 0},
        {0, 1, inf, 0, 0},
        {1, 5, -inf, 0, 0},
    };
    for (int which = 0; which < 2; which++) {
        saved s;
        make_readable(&s, which);
        size_t len;
        unsigned char *good = save_and_read(fx->dir, "obj.bin", &s, &len);
        unsigned char *b = malloc(len);
        assert_non_null(b);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            memcpy(b, good, len);
            tu_put_le64(b + OFF_HEADER + 8 * f_obj, cases[i].objective);
            tu_put_le64(b + OFF_HEADER + 8 * f_draws, cases[i].draws);
            tu_put_le64(b + OFF_HEADER + 8 * f_sum, f64_bits(cases[i].sum_obj));
            fix_crc(b, len);
            ckpt_data d;
            err_msg err = {{0}};
            int ok = which ? cases[i].ok_conv : cases[i].ok_mlp;
            int rc = read_bytes(fx->dir, "objx.bin", b, len, &d, 1, &err);
            if (rc != (ok ? 0 : -1) || (rc && !strstr(err.text, "bad training objective")))
                fail_msg("%s, objective %llu draws %llu sum_obj %g: ckpt_read %s %s",
                         which ? "conv" : "MLP", (unsigned long long)cases[i].objective,
                         (unsigned long long)cases[i].draws, cases[i].sum_obj,
                         rc ? "rejects it:" : "accepts it", rc ? err.text : "");
            if (rc == 0) {
                /* What was accepted reads back as written. */
                assert_int_equal(d.train.set.objective, cases[i].objective);
                assert_int_equal(d.train.set.draws, cases[i].draws);
                assert_true(f64_bits(d.train.sum_obj) == f64_bits(cases[i].sum_obj));
                ckpt_data_free(&d);
            }
        }
        free(b);
        free(good);
        free_saved(&s);
    }
    doc_says("A failure says \"bad training objective\"");
    doc_says_f("objective 0 or 1, draws 1 to %s, sum_obj finite and estimator 0 to %zu "
               "(with either objective), for either architecture", num,
               model_estimator_names.n - 1);
    doc_table_free(&t);
}

/* The estimator's rules (field 61) in the header table's last column and
 * "What the reader checks", case by case, with either objective, on the
 * conditional MLP and on the conv model; and the settings with named
 * values, which the reader checks before the RNG states. */
static void test_estimator_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t f_obj, f_est, f_rng, hi;
    field_range(&t, "objective", &f_obj, &hi);
    field_range(&t, "estimator", &f_est, &hi);
    field_range(&t, "rng_data", &f_rng, &hi);
    assert_int_equal(f_est, SETTINGS[SETTING_ESTIMATOR].field);
    assert_int_equal(SETTINGS[SETTING_ESTIMATOR].since, 6);
    /* The values and names the table states are the code's. */
    const size_t n_est = model_estimator_names.n;
    assert_int_equal(n_est, 3);
    char text[192], names[128];
    snprintf(text, sizeof text, "0 to %zu", n_est - 1);
    expect_accepts(&t, "estimator", text);
    doc_says_f("0 the bound's own (`%s`), 1 sticking the landing (`%s`), 2 doubly "
               "reparameterized (`%s`); written 0 with the ELBO",
               enum_name(&model_estimator_names, MODEL_EST_STANDARD),
               enum_name(&model_estimator_names, MODEL_EST_STL),
               enum_name(&model_estimator_names, MODEL_EST_DREG));
    enum_list(&model_estimator_names, names, sizeof names);
    const uint64_t big = UINT64_MAX;
    const struct {
        uint64_t objective, estimator;
        int ok;
    } cases[] = {
        {1, 0, 1}, {1, 1, 1}, {1, 2, 1},
        {0, 0, 1}, {0, 1, 1}, {0, 2, 1}, /* not checked against the objective */
        {1, 3, 0}, {0, 3, 0}, {1, 4, 0}, {1, big, 0},
    };
    for (int which = 0; which < 2; which++) {
        saved s;
        make_readable(&s, which);
        size_t len;
        unsigned char *good = save_and_read(fx->dir, "est.bin", &s, &len);
        unsigned char *b = malloc(len);
        assert_non_null(b);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            memcpy(b, good, len);
            tu_put_le64(b + OFF_HEADER + 8 * f_obj, cases[i].objective);
            tu_put_le64(b + OFF_HEADER + 8 * f_est, cases[i].estimator);
            fix_crc(b, len);
            ckpt_data d;
            err_msg err = {{0}};
            char want[192];
            snprintf(want, sizeof want, "bad training objective (estimator %llu, not %s)",
                     (unsigned long long)cases[i].estimator, names);
            int rc = read_bytes(fx->dir, "estx.bin", b, len, &d, 1, &err);
            if (rc != (cases[i].ok ? 0 : -1) || (rc && !strstr(err.text, want)))
                fail_msg("%s, objective %llu estimator %llu: ckpt_read %s %s",
                         which ? "conv" : "MLP", (unsigned long long)cases[i].objective,
                         (unsigned long long)cases[i].estimator,
                         rc ? "rejects it:" : "accepts it", rc ? err.text : "");
            if (rc == 0) {
                /* What was accepted reads back as written. */
                assert_int_equal(d.train.set.objective, cases[i].objective);
                assert_int_equal(d.train.set.estimator, cases[i].estimator);
                ckpt_data_free(&d);
            }
        }
        free(b);
        free(good);
        free_saved(&s);
    }
    doc_says_f("estimator 0 to %zu (with either objective)", n_est - 1);
    doc_says_f("an estimator above %zu says \"bad training objective (estimator N, not "
               "%s)\"", n_est - 1, names);
    doc_says("estimator against the objective (a file with the ELBO may hold 1 or 2)");

    /* The settings with named values are the ones the document lists, in
     * the header table's order, and each unnamed value is the failure
     * reported even with a bad RNG state (step 8) in the same file. */
    saved s;
    make_distinct(&s, 0);
    s.t.set.sched.warmup = s.t.set.sched.horizon = 0;
    size_t len;
    unsigned char *good = save_and_read(fx->dir, "named.bin", &s, &len);
    unsigned char *b = malloc(len);
    assert_non_null(b);
    char list[192] = "";
    size_t n_named = 0, at = 0;
    for (size_t f = 0; f < MAX_FIELDS; f++)
        for (int i = 0; i < SETTING_COUNT; i++) {
            const setting_row *r = &SETTINGS[i];
            if (r->type != SETTING_ENUM || r->field != f)
                continue;
            n_named++;
            memcpy(b, good, len);
            tu_put_le64(b + OFF_HEADER + 8 * r->field, r->names->n);
            tu_put_le64(b + OFF_HEADER + 8 * (f_rng + 5), 2); /* a bad RNG flag */
            fix_crc(b, len);
            ckpt_data d;
            err_msg err = {{0}};
            char want[256];
            enum_list(r->names, names, sizeof names);
            snprintf(want, sizeof want, "bad %s (%s %zu, not %s)", r->group, r->key,
                     r->names->n, names);
            if (read_bytes(fx->dir, "namedx.bin", b, len, &d, 0, &err) != -1 ||
                !strstr(err.text, want))
                fail_msg("%s %zu with a bad RNG state: ckpt_read says \"%s\", not \"%s\"",
                         r->key, r->names->n, err.text, want);
            /* The document's name of the field. */
            const char *doc_name = NULL;
            for (size_t k = 0; k < t.n_rows && !doc_name; k++) {
                size_t lo, hi2;
                parse_range(&t.row[k], &lo, &hi2);
                if (lo == f && hi2 == f)
                    doc_name = cell(&t.row[k], 1);
            }
            if (!doc_name)
                fail_msg("%s: the header table has no field %zu", doc_path(), f);
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", n_named > 1 ? ", " : "",
                                   doc_name);
            assert_true(at < sizeof list);
        }
    assert_int_equal(n_named, 5);
    /* "a, b, c, d and e" */
    char *last = strrchr(list, ',');
    assert_non_null(last);
    char phrase[256];
    snprintf(phrase, sizeof phrase, "The fields with named values (%.*s and%s) are checked "
             "against their names before step 8", (int)(last - list), list, last + 1);
    doc_says(phrase);
    enum_list(&train_binarize_names, names, sizeof names);
    doc_says_f("(`bad training state (binarize 3, not %s)`)", names);
    assert_int_equal(train_binarize_names.n, 3);
    free(b);
    free(good);
    free_saved(&s);
    doc_table_free(&t);
}

/* A small model of the given shape for the shape rules: conv (nh blocks
 * of 1 channel) or the MLP, one hidden unit, z_dim 1. */
static void make_shaped(saved *s, model_arch arch, size_t nh, size_t height, size_t width,
                        size_t channels)
{
    model_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.n_hidden = nh;
    for (size_t i = 0; i < nh; i++)
        c.hidden[i] = 1;
    c.z_dim = 1;
    c.act = MODEL_ACT_RELU;
    c.likelihood = MODEL_LIK_BERNOULLI;
    model_config_image(&c, height, width, channels);
    make_saved(s, &c);
}

/* The image shape's rules (fields 58-60) in the header table's last column
 * and "What the reader checks", case by case: on the conv model's colour
 * 5 x 2 images, the MLP's 1 x 13, and models at the size limits. */
static void test_shape_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t f_x, f_h, f_w, f_c, hi;
    field_range(&t, "x_dim", &f_x, &hi);
    field_range(&t, "height", &f_h, &hi);
    field_range(&t, "width", &f_w, &hi);
    field_range(&t, "channels", &f_c, &hi);
    /* The limits the table states are the code's. */
    char num[32], conv_num[32], text[192];
    with_commas(num, sizeof num, MODEL_MAX_WIDTH);
    with_commas(conv_num, sizeof conv_num, 4096);
    snprintf(text, sizeof text, "1 to %s; conv: at most %s", num, conv_num);
    expect_accepts(&t, "height", text);
    expect_accepts(&t, "width", text);
    expect_accepts(&t, "channels", "1 or 3, and height x width x channels = x_dim");
    assert_int_equal(MODEL_MAX_WIDTH, 65536);
    enum { CONV, MLP, MLP_BIG, CONV_TALL, N_FIX };
    saved s[N_FIX];
    make_distinct(&s[CONV], 1); /* conv, 5 x 2 x 3 */
    s[CONV].t.set.sched.every = 0;  /* a readable cosine schedule */
    s[CONV].t.set.sched.gamma = 1.0;
    make_distinct(&s[MLP], 0); /* MLP, x_dim 13 */
    s[MLP].t.set.sched.warmup = s[MLP].t.set.sched.horizon = 0; /* a readable step schedule */
    make_shaped(&s[MLP_BIG], MODEL_ARCH_MLP, 1, 256, 256, 1);
    make_shaped(&s[CONV_TALL], MODEL_ARCH_CONV, 1, 4096, 1, 1);
    assert_int_equal(s[CONV].m.cfg.x_dim, 30);
    assert_int_equal(s[CONV].m.cfg.channels, 3);
    assert_int_equal(s[MLP].m.cfg.x_dim, 13);
    const uint64_t big = UINT64_MAX;
    /* why: 0 accepted; 'A' rejected as "bad architecture"; 'P' rejected
     * (the parameter count no longer fits the architecture) */
    static const struct {
        int fix;
        uint64_t x_dim; /* 0: the file's */
        uint64_t height, width, channels;
        char why;
    } cases[] = {
        {CONV, 0, 5, 2, 3, 0},
        {CONV, 0, 2, 5, 3, 0},   /* any shape that pads alike */
        {CONV, 0, 10, 1, 3, 0},
        {CONV, 0, 1, 10, 3, 0},
        {CONV, 0, 30, 1, 1, 'P'}, /* grey: the first block has 1 input channel */
        {CONV, 0, 5, 2, 1, 'A'},  /* 10 values, not 30 */
        {CONV, 0, 5, 3, 3, 'A'},
        {CONV, 0, 5, 2, 2, 'A'},
        {CONV, 0, 5, 2, 0, 'A'},
        {CONV, 0, 0, 2, 3, 'A'},
        {CONV, 0, 5, 0, 3, 'A'},
        {CONV, 0, 5, 2, big, 'A'},
        {MLP, 0, 1, 13, 1, 0},
        {MLP, 0, 13, 1, 1, 0},
        {MLP, 0, 1, 13, 3, 'A'},
        {MLP, 0, 1, 12, 1, 'A'},
        {MLP, 0, 1, 14, 1, 'A'},
        {MLP, 0, 0, 13, 1, 'A'},
        {MLP, 0, 13, 0, 1, 'A'},
        {MLP, 0, 1, 13, 2, 'A'},
        {MLP, 0, 1, 13, 4, 'A'},
        {MLP, 0, big, 13, 1, 'A'},
        {MLP_BIG, 0, 256, 256, 1, 0},
        {MLP_BIG, 0, 65536, 1, 1, 0}, /* the largest side */
        {MLP_BIG, 0, 1, 65536, 1, 0},
        {MLP_BIG, 0, 128, 512, 1, 0},
        {MLP_BIG, 65537, 65537, 1, 1, 'A'}, /* a side above 65,536 */
        {MLP_BIG, 65537, 1, 65537, 1, 'A'},
        {CONV_TALL, 0, 4096, 1, 1, 0},
        {CONV_TALL, 0, 1, 4096, 1, 0},
        {CONV_TALL, 4097, 4097, 1, 1, 'A'}, /* the conv VAE's limit */
        {CONV_TALL, 4097, 1, 4097, 1, 'A'},
    };
    size_t len[N_FIX];
    unsigned char *good[N_FIX];
    static const char *const names[N_FIX] = {"sh0.bin", "sh1.bin", "sh2.bin", "sh3.bin"};
    for (int k = 0; k < N_FIX; k++)
        good[k] = save_and_read(fx->dir, names[k], &s[k], &len[k]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int k = cases[i].fix;
        unsigned char *b = malloc(len[k]);
        assert_non_null(b);
        memcpy(b, good[k], len[k]);
        uint64_t x_dim = cases[i].x_dim ? cases[i].x_dim : s[k].m.cfg.x_dim;
        tu_put_le64(b + OFF_HEADER + 8 * f_x, x_dim);
        tu_put_le64(b + OFF_HEADER + 8 * f_h, cases[i].height);
        tu_put_le64(b + OFF_HEADER + 8 * f_w, cases[i].width);
        tu_put_le64(b + OFF_HEADER + 8 * f_c, cases[i].channels);
        fix_crc(b, len[k]);
        ckpt_data d;
        err_msg err = {{0}};
        int rc = read_bytes(fx->dir, "shx.bin", b, len[k], &d, 1, &err);
        int want_rc = cases[i].why ? -1 : 0;
        if (rc != want_rc || (cases[i].why == 'A' && !strstr(err.text, "bad architecture")))
            fail_msg("case %zu: x_dim %llu, %llu x %llu x %llu: ckpt_read %s %s", i,
                     (unsigned long long)x_dim, (unsigned long long)cases[i].height,
                     (unsigned long long)cases[i].width,
                     (unsigned long long)cases[i].channels,
                     rc ? "rejects it:" : "accepts it", rc ? err.text : "");
        if (rc == 0) {
            /* What was accepted reads back as written. */
            assert_int_equal(d.cfg.x_dim, x_dim);
            assert_int_equal(d.cfg.height, cases[i].height);
            assert_int_equal(d.cfg.width, cases[i].width);
            assert_int_equal(d.cfg.channels, cases[i].channels);
            ckpt_data_free(&d);
        }
        free(b);
    }
    for (int k = 0; k < N_FIX; k++) {
        free(good[k]);
        free_saved(&s[k]);
    }
    snprintf(text, sizeof text, "height and width 1 to %s, channels 1 or 3, and height x "
             "width x channels = x_dim. A failure says \"bad architecture\"", num);
    doc_says(text);
    doc_table_free(&t);
}

#define N_IMG 4 /* images of a batch in the objective tests */
#define N_DRAWS 3

/* The small MLP of the objective's checks (12 pixels, 7 tanh units, a 3-D
 * latent; 3 labels if conditional) with random parameters, inputs, labels
 * and eps for N_IMG images of K draws, all from seed. */
static void small_batch(int conditional, size_t K, uint64_t seed, model_net *m, model_acts *a)
{
    model_config c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_ARCH_MLP;
    c.x_dim = 12;
    c.n_hidden = 1;
    c.hidden[0] = 7;
    c.z_dim = 3;
    c.act = MODEL_ACT_TANH;
    c.likelihood = MODEL_LIK_BERNOULLI;
    c.n_classes = conditional ? 3 : 0;
    err_msg err;
    if (model_init(m, &c, &err) || model_acts_init_k(a, &c, N_IMG, K, &err))
        fail_msg("%s", err.text);
    rng_state r;
    rng_seed(&r, seed);
    model_init_params(m, &r);
    for (size_t i = 0; i < N_IMG * c.x_dim; i++)
        a->x[i] = rng_uniform(&r);
    for (size_t i = 0; i < N_IMG; i++)
        a->y[i] = (uint8_t)(i % 3);
    rng_normal(&r, a->eps, N_IMG * K * c.z_dim);
}

/* One batch of a small MLP (conditional with 3 labels if conditional) run
 * through model_loss with K = N_DRAWS draws and objective, and each image's
 * numbers recomputed by the document's formulas ("The objective and K
 * draws", "Likelihoods and the loss"). */
static void check_objective(int conditional, model_objective objective, double beta)
{
    enum { D = 12, Z = 3, K = N_DRAWS, B = N_IMG };
    model_net m;
    model_acts a;
    small_batch(conditional, K, 77, &m, &a);
    model_encode(&m, &a, B);
    model_reparam(&m, &a, B, 0);
    model_decode(&m, &a, B);
    model_loss_spec loss = {objective, beta};
    double total = model_loss(&m, &a, B, &loss);
    const float *logits = model_logits(&m, &a);
    double want_total = 0.0;
    for (size_t i = 0; i < B; i++) {
        const float *mu = model_mu(&m, &a, i), *lv = model_logvar(&m, &a, i);
        const float *mp = conditional ? model_prior_mu(&m, &a, i) : NULL;
        const float *lp = conditional ? model_prior_logvar(&m, &a, i) : NULL;
        double lw[K], rec_mean = 0.0, kl = 0.0;
        for (size_t j = 0; j < K; j++) {
            size_t row = i * K + j; /* draw j of image i */
            const float *eps = a.eps + row * Z, *z = a.z + row * Z;
            float rec;
            model_rec_rows(&m, logits + row * D, a.x + i * D, 0, 1, &rec);
            rec_mean += rec / (double)K;
            double t = -(double)rec;
            for (size_t d = 0; d < Z; d++) {
                /* z_ij = mu + exp(lv / 2) eps_ij */
                double zd = (double)mu[d] + exp((double)lv[d] / 2.0) * eps[d];
                if (!(fabs(z[d] - zd) <= 1e-5 * (1.0 + fabs(zd))))
                    fail_msg("image %zu, draw %zu, latent %zu: z is %.9g, the "
                             "document's %.9g", i, j, d, (double)z[d], zd);
                double e2 = (double)eps[d] * eps[d];
                t += conditional
                         ? -(zd - mp[d]) * (zd - mp[d]) / (2.0 * exp(lp[d])) - lp[d] / 2.0 +
                               e2 / 2.0 + lv[d] / 2.0
                         : -zd * zd / 2.0 + e2 / 2.0 + lv[d] / 2.0;
            }
            lw[j] = t;
        }
        for (size_t d = 0; d < Z; d++)
            kl += conditional
                      ? 0.5 * (lp[d] - lv[d] +
                               (exp(lv[d]) + (mu[d] - mp[d]) * (mu[d] - mp[d])) /
                                   exp(lp[d]) - 1.0)
                      : -0.5 * (1.0 + lv[d] - (double)mu[d] * mu[d] - exp(lv[d]));
        double obj;
        if (objective == MODEL_OBJ_ELBO) {
            obj = rec_mean + beta * kl;
        } else {
            double mean_w = 0.0;
            for (size_t j = 0; j < K; j++)
                mean_w += exp(lw[j]) / (double)K;
            obj = -log(mean_w);
        }
        const struct {
            const char *what;
            double got, want;
        } v[] = {{"rec (the mean over the draws)", a.rec[i], rec_mean},
                 {"kl", a.kl[i], kl},
                 {"the objective", a.obj[i], obj}};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
            if (!(fabs(v[k].got - v[k].want) <= 1e-5 * (1.0 + fabs(v[k].want))))
                fail_msg("%s, %s, beta %g, image %zu: %s is %.9g, the document's %.9g",
                         conditional ? "conditional" : "N(0, I) prior",
                         objective ? "IWAE" : "ELBO", beta, i, v[k].what, v[k].got,
                         v[k].want);
        want_total += rec_mean + kl;
    }
    /* What model_loss reports is the negative ELBO, whatever is minimised. */
    assert_true(fabs(total - want_total) <= 1e-5 * (1.0 + fabs(want_total)));
    if (objective == MODEL_OBJ_IWAE) { /* beta does not enter it */
        float obj[B];
        memcpy(obj, a.obj, sizeof obj);
        loss.beta = 2.0 * beta + 1.0;
        model_loss(&m, &a, B, &loss);
        assert_memory_equal(obj, a.obj, sizeof obj);
    }
    model_acts_free(&a);
    model_free(&m);
}

static void test_objective_values(void **state)
{
    (void)state;
    for (int conditional = 0; conditional < 2; conditional++)
        for (int objective = 0; objective < 2; objective++)
            for (int k = 0; k < 2; k++)
                check_objective(conditional, (model_objective)objective, k ? 0.25 : 1.0);
    /* The formulas the test recomputes are the document's. */
    doc_says("`z_ij = mu + exp(lv / 2) eps_ij`");
    doc_says("`obj_i = (1/K) sum_j rec_ij + beta_s kl_i`");
    doc_says("`obj_i = -log((1/K) sum_j w_ij)`");
    doc_says("`log w_ij = -rec_ij + sum_d (-z^2/2 + eps^2/2 + lv/2)` for the N(0, I) prior");
    doc_says("`log w_ij = -rec_ij + sum_d (-(z - mp)^2 / (2 exp(lp)) - lp/2 + eps^2/2 + "
             "lv/2)` for a conditional model's prior p(z|y) = N(mp, exp(lp))");
    doc_says("Neither beta nor the KL warm-up enters it");
}

/* One batch of a small MLP (conditional with 3 labels if conditional) with
 * K draws, through model_loss and model_backward for the importance-weighted
 * bound with each estimator, held against the document's formulas ("The
 * objective and K draws"): the normalised weights; each draw's dz from the
 * decoder's wt_ij g_ij (g_ij, by finite differences, the gradient of
 * rec_ij at z_ij), gp_ij and path_ij; mu's and lv's gradients from dz and
 * the direct term; the decoder's and the prior's gradients the same under
 * all three. */
static void check_estimators(int conditional, size_t K)
{
    enum { D = 12, Z = 3, B = N_IMG, N_EST = 3 };
    model_net m;
    model_acts a;
    small_batch(conditional, K, 78, &m, &a);
    const size_t n = m.n_params, R = B * K;
    float *grads = malloc(N_EST * n * sizeof *grads);
    float *dz = malloc(N_EST * R * Z * sizeof *dz);
    float *dhead = malloc(N_EST * B * 2 * Z * sizeof *dhead);
    float *wt = malloc(N_EST * R * sizeof *wt);
    assert_non_null(grads);
    assert_non_null(dz);
    assert_non_null(dhead);
    assert_non_null(wt);
    for (int e = 0; e < N_EST; e++) {
        model_encode(&m, &a, B);
        model_reparam(&m, &a, B, 0);
        model_decode(&m, &a, B);
        model_loss_spec loss = {MODEL_OBJ_IWAE, 1.0, (model_estimator)e};
        model_loss(&m, &a, B, &loss);
        memcpy(wt + e * R, a.wt, R * sizeof *wt);
        model_backward(&m, &a, grads + e * n, B, &loss);
        memcpy(dz + e * R * Z, a.dz, R * Z * sizeof *dz);
        memcpy(dhead + e * B * 2 * Z, a.dhead, B * 2 * Z * sizeof *dhead);
    }
    /* The weights do not depend on the estimator. */
    assert_memory_equal(wt, wt + R, R * sizeof *wt);
    assert_memory_equal(wt, wt + 2 * R, R * sizeof *wt);
    /* rec_ij of the forward pass (the same for every estimator's), then
     * the decoder's gradient at each z by central differences of rec_ij. */
    double *g = malloc(R * Z * sizeof *g);
    float *z0 = malloc(R * Z * sizeof *z0), *rec = malloc(R * sizeof *rec);
    assert_non_null(g);
    assert_non_null(z0);
    assert_non_null(rec);
    for (size_t row = 0; row < R; row++)
        model_rec_rows(&m, model_logits(&m, &a) + row * D, a.x + (row / K) * D, 0, 1, &rec[row]);
    memcpy(z0, a.z, R * Z * sizeof *z0);
    const float h = 1.0f / 64.0f;
    for (size_t row = 0; row < R; row++)
        for (size_t d = 0; d < Z; d++) {
            float side_rec[2];
            for (int side = 0; side < 2; side++) {
                memcpy(a.z, z0, R * Z * sizeof *z0);
                a.z[row * Z + d] += side ? h : -h;
                model_decode(&m, &a, B);
                model_rec_rows(&m, model_logits(&m, &a) + row * D, a.x + (row / K) * D, 0, 1,
                             &side_rec[side]);
            }
            g[row * Z + d] = ((double)side_rec[1] - side_rec[0]) / (2.0 * h);
        }
    memcpy(a.z, z0, R * Z * sizeof *z0);
    for (size_t i = 0; i < B; i++) {
        const float *lv = model_logvar(&m, &a, i);
        const float *mp = conditional ? model_prior_mu(&m, &a, i) : NULL;
        const float *lp = conditional ? model_prior_logvar(&m, &a, i) : NULL;
        /* wt_ij = w_ij / sum_j w_ij, from the document's log weights */
        double lw[N_DRAWS], top = -INFINITY, sum = 0.0;
        assert_true(K <= N_DRAWS);
        for (size_t j = 0; j < K; j++) {
            size_t row = i * K + j;
            const float *eps = a.eps + row * Z, *z = a.z + row * Z;
            double t = -(double)rec[row];
            for (size_t d = 0; d < Z; d++) {
                double e2 = (double)eps[d] * eps[d], zd = z[d];
                t += conditional ? -(zd - mp[d]) * (zd - mp[d]) / (2.0 * exp(lp[d])) -
                                       lp[d] / 2.0 + e2 / 2.0 + lv[d] / 2.0
                                 : -zd * zd / 2.0 + e2 / 2.0 + lv[d] / 2.0;
            }
            lw[j] = t;
            top = t > top ? t : top;
        }
        for (size_t j = 0; j < K; j++)
            sum += exp(lw[j] - top);
        for (int e = 0; e < N_EST; e++) {
            double dmu[Z], dlv[Z], scale[Z];
            for (size_t d = 0; d < Z; d++) {
                dmu[d] = 0.0, scale[d] = 1.0;
                dlv[d] = e == MODEL_EST_STANDARD ? -0.5 : 0.0; /* the direct term */
            }
            for (size_t j = 0; j < K; j++) {
                size_t row = i * K + j;
                double w = exp(lw[j] - top) / sum;
                if (!(fabs(w - wt[row]) <= 1e-5))
                    fail_msg("image %zu, draw %zu: wt is %.9g, the document's %.9g", i, j,
                             (double)wt[row], w);
                w = wt[row]; /* the code's, to compare what follows closely */
                const float *eps = a.eps + row * Z, *z = a.z + row * Z;
                for (size_t d = 0; d < Z; d++) {
                    /* wt_ij g_ij: what the decoder's backward gives, which
                     * the standard estimator adds wt_ij gp_ij to */
                    double gp = conditional ? ((double)z[d] - mp[d]) / exp(lp[d]) : z[d];
                    double path = gp - eps[d] * exp(-(double)lv[d] / 2.0);
                    double wg = dz[row * Z + d] - w * gp; /* from the standard pass */
                    double wg_fd = w * g[row * Z + d];
                    if (!(fabs(wg - wg_fd) <= 2e-2 * w * (1.0 + fabs(g[row * Z + d])) + 1e-5))
                        fail_msg("%s, K %zu, image %zu, draw %zu, latent %zu: the decoder "
                                 "gives %.9g at z, not wt_ij g_ij = %.9g", conditional ?
                                 "conditional" : "N(0, I)", K, i, j, d, wg, wg_fd);
                    double want = e == MODEL_EST_STANDARD ? wg + w * gp
                                  : e == MODEL_EST_STL    ? wg + w * path
                                                        : w * (wg + w * path);
                    double got = dz[(e * R + row) * Z + d];
                    double tol = 1e-5 * (1.0 + fabs(wg) + fabs(w * gp) + fabs(w * path));
                    if (!(fabs(got - want) <= tol))
                        fail_msg("%s, K %zu, estimator %s, image %zu, draw %zu, latent %zu: "
                                 "dz is %.9g, the document's %.9g",
                                 conditional ? "conditional" : "N(0, I)", K,
                                 enum_name(&model_estimator_names, e), i, j, d, got, want);
                    dmu[d] += want;
                    dlv[d] += want * eps[d] * exp((double)lv[d] / 2.0) / 2.0;
                    scale[d] += fabs(want) * (1.0 + fabs(eps[d]) * exp((double)lv[d] / 2.0));
                }
            }
            for (size_t d = 0; d < Z; d++) {
                const float *dh = dhead + (e * B + i) * 2 * Z;
                if (!(fabs(dh[d] - dmu[d]) <= 1e-5 * scale[d]) ||
                    !(fabs(dh[Z + d] - dlv[d]) <= 1e-5 * scale[d]))
                    fail_msg("%s, K %zu, estimator %s, image %zu, latent %zu: mu's and lv's "
                             "gradients are %.9g and %.9g, the document's %.9g and %.9g",
                             conditional ? "conditional" : "N(0, I)", K,
                             enum_name(&model_estimator_names, e), i, d, (double)dh[d],
                             (double)dh[Z + d], dmu[d], dlv[d]);
            }
        }
    }
    /* The decoder's gradient, and the prior network's, are the same under
     * every estimator (they follow the encoder's in the parameters); the
     * encoder's is not. */
    size_t dec = m.layer[m.cfg.n_hidden + 1].w_off;
    for (int e = 1; e < N_EST; e++) {
        assert_memory_equal(grads + dec, grads + e * n + dec, (n - dec) * sizeof *grads);
        assert_true(memcmp(grads, grads + e * n, dec * sizeof *grads) != 0);
    }
    if (K == 1) /* wt = 1: stl and dreg agree */
        assert_memory_equal(grads + MODEL_EST_STL * n, grads + MODEL_EST_DREG * n,
                            n * sizeof *grads);
    else
        assert_true(memcmp(grads + MODEL_EST_STL * n, grads + MODEL_EST_DREG * n,
                           dec * sizeof *grads) != 0);
    free(g);
    free(z0);
    free(rec);
    free(grads);
    free(dz);
    free(dhead);
    free(wt);
    model_acts_free(&a);
    model_free(&m);
}

static void test_estimator_gradients(void **state)
{
    (void)state;
    for (int conditional = 0; conditional < 2; conditional++) {
        check_estimators(conditional, N_DRAWS);
        check_estimators(conditional, 1);
    }
    /* The formulas the test applies are the document's. */
    doc_says("`gp_ij = (z_ij - mp) / exp(lp)`, the gradient of `-log p(z_ij)` (mp = 0, "
             "lp = 0 for the N(0, I) prior: `gp_ij = z_ij`)");
    doc_says("`path_ij = gp_ij - eps_ij exp(-lv/2)`");
    doc_says("`dz_ij = wt_ij g_ij + wt_ij gp_ij`, plus the direct -1/2 on each lv of "
             "the image");
    doc_says("`dz_ij = wt_ij g_ij + wt_ij path_ij`, and no direct term on lv");
    doc_says("`dz_ij = wt_ij (wt_ij g_ij + wt_ij path_ij)`, that is `wt_ij^2 (g_ij + "
             "path_ij)`");
    doc_says("`dmu += dz_ij` and `dlv += dz_ij eps_ij exp(lv/2) / 2`");
    doc_says("With K = 1 (wt = 1), stl and dreg give the same gradient.");
    doc_says("in all three the decoder's gradient is the bound's");
    doc_says("Roeder et al. 2017");
    doc_says("Tucker et al. 2018, eq. 5");
}

/* A step's eps, drawn across a team of threads, are the stream's normals
 * in the streams table's order: image i of the batch, draw j, latent d is
 * normal number (i K + j) z_dim + d; in a thread's share, draw j of its
 * image i is row i K + j, the row model_reparam makes z_ij of. */
static void test_eps_order(void **state)
{
    (void)state;
    enum { T = 3, B = 7, K = 4 }; /* shares of 3, 3 and 1 images */
    model_config c = cfg_default();
    c.hidden[0] = 5;
    c.x_dim = 6;
    model_net m;
    err_msg err;
    if (par_init(T, &err) || model_init(&m, &c, &err))
        fail_msg("%s", err.text);
    shard_set sh;
    shard_spec spec = {.cap = B, .draws = K, .objective = MODEL_OBJ_IWAE};
    if (shard_init(&sh, &m, &spec, &err))
        fail_msg("shard_init: %s", err.text);
    assert_int_equal(sh.T, T);
    const size_t Z = c.z_dim;
    rng_state r, doc;
    float spare;
    rng_seed(&r, 5);
    rng_normal(&r, &spare, 1); /* a spare pending: the split must not matter */
    doc = r;
    shard_draw_eps(&sh, &m, &r, B);
    float *want = malloc(B * K * Z * sizeof *want);
    assert_non_null(want);
    rng_normal(&doc, want, B * K * Z);
    assert_memory_equal(&r, &doc, sizeof r); /* nothing more drawn */
    size_t seen = 0;
    for (size_t k = 0; k < T; k++) {
        size_t lo, hi;
        par_share(B, 1, k, T, &lo, &hi);
        assert_int_equal(sh.acts[k].k, K);
        for (size_t i = lo; i < hi; i++)
            for (size_t j = 0; j < K; j++)
                for (size_t d = 0; d < Z; d++, seen++)
                    if (f32_bits(sh.acts[k].eps[((i - lo) * K + j) * Z + d]) !=
                        f32_bits(want[(i * K + j) * Z + d]))
                        fail_msg("image %zu, draw %zu, latent %zu: not normal number "
                                 "%zu of the step's", i, j, d, (i * K + j) * Z + d);
    }
    assert_int_equal(seen, B * K * Z);
    free(want);
    shard_free(&sh);
    model_free(&m);
    par_shutdown();
    doc_says("each step, B x K x z_dim normals (eps; K = draws, field 56)");
    doc_says("image i of the batch (from 0), draw j, latent d gets normal number "
             "`(i K + j) z_dim + d` of the step's");
}

/* ======================================================================== */
/* Two stochastic layers                                                    */
/* ======================================================================== */

/* One layer of the document's model: its inputs, outputs and whether the
 * activation follows it. */
typedef struct doc2_layer {
    size_t in, out;
    int act;
} doc2_layer;

#define DOC2_MAX_LAYERS (4 * MODEL_MAX_HIDDEN + 4)
#define DOC2_MAX_WIDTH 64 /* of the models the test runs forward */

/* The document's model with two stochastic layers: the layers in storage
 * order by "The MLP (arch 0)" and "Two stochastic layers", their offsets
 * (each weight out x in, then its bias), and the parameters in double. */
typedef struct doc2 {
    model_config c;
    doc2_layer L[DOC2_MAX_LAYERS];
    size_t off[DOC2_MAX_LAYERS];
    size_t n_layers, n_params;
    double *P;
} doc2;

/* The layers of c in the document's storage order: q(h1|x) (the MLP's
 * encoder and head), p(x|h1) (its decoder and output), q(h2|h1), then
 * p(h1|h2), with offsets laid one after another. */
static void doc2_layout(doc2 *d, const model_config *c)
{
    memset(d, 0, sizeof *d);
    d->c = *c;
    size_t n = 0, nh = c->n_hidden, n2 = c->n_hidden2;
    const size_t *h = c->hidden, *g = c->hidden2;
    for (size_t i = 0; i < nh; i++)
        d->L[n++] = (doc2_layer){i == 0 ? c->x_dim : h[i - 1], h[i], 1};
    d->L[n++] = (doc2_layer){h[nh - 1], 2 * c->z_dim, 0};
    for (size_t j = 0; j < nh; j++)
        d->L[n++] = (doc2_layer){j == 0 ? c->z_dim : h[nh - j], h[nh - 1 - j], 1};
    d->L[n++] = (doc2_layer){h[0], c->x_dim, 0};
    for (size_t i = 0; i < n2; i++)
        d->L[n++] = (doc2_layer){i == 0 ? c->z_dim : g[i - 1], g[i], 1};
    d->L[n++] = (doc2_layer){g[n2 - 1], 2 * c->z2_dim, 0};
    for (size_t j = 0; j < n2; j++)
        d->L[n++] = (doc2_layer){j == 0 ? c->z2_dim : g[n2 - j], g[n2 - 1 - j], 1};
    d->L[n++] = (doc2_layer){g[0], 2 * c->z_dim, 0};
    assert_int_equal(n, 2 * nh + 4 + 2 * n2);
    size_t off = 0;
    for (size_t l = 0; l < n; l++) {
        d->off[l] = off;
        off += d->L[l].in * d->L[l].out + d->L[l].out;
    }
    d->n_layers = n;
    d->n_params = off;
}

/* The first layers of the four networks. */
static size_t doc2_q1(const doc2 *d) { (void)d; return 0; }
static size_t doc2_px(const doc2 *d) { return d->c.n_hidden + 1; }
static size_t doc2_q2(const doc2 *d) { return 2 * d->c.n_hidden + 2; }
static size_t doc2_p1(const doc2 *d) { return 2 * d->c.n_hidden + 3 + d->c.n_hidden2; }

static double doc_act(model_act act, double v)
{
    return act == MODEL_ACT_TANH ? tanh(v) : act == MODEL_ACT_LEAKY ? (v > 0 ? v : 0.1 * v)
                                                                : (v > 0 ? v : 0.0);
}

/* Layers first..last on x into y (the last layer's output), in double. */
static void doc2_stack(const doc2 *d, size_t first, size_t last, const double *x, double *y)
{
    double buf[2][DOC2_MAX_WIDTH];
    const double *in = x;
    for (size_t l = first; l <= last; l++) {
        const doc2_layer *L = &d->L[l];
        assert_true(L->out <= DOC2_MAX_WIDTH);
        double *o = l == last ? y : buf[l & 1];
        const double *w = d->P + d->off[l], *b = w + L->in * L->out;
        for (size_t k = 0; k < L->out; k++) {
            double s = b[k];
            for (size_t i = 0; i < L->in; i++)
                s += w[k * L->in + i] * in[i];
            o[k] = L->act ? doc_act(d->c.act, s) : s;
        }
        in = o;
    }
}

/* Bernoulli: -log p(t | a) summed, softplus(a) - a t. */
static double doc_bernoulli(const double *a, const double *t, size_t n)
{
    double s = 0.0;
    for (size_t p = 0; p < n; p++)
        s += (a[p] > 0 ? a[p] : 0.0) - a[p] * t[p] + log1p(exp(-fabs(a[p])));
    return s;
}

/* A draw of the document's model at image x with noise eps1 and eps2:
 * h1 and h2 (if not NULL), rec and the sampled KL; returns log w. */
static double doc2_draw(const doc2 *d, const double *x, const float *eps1, const float *eps2,
                        double *h1_out, double *h2_out, double *rec, double *kl)
{
    const size_t Z1 = d->c.z_dim, Z2 = d->c.z2_dim, nh = d->c.n_hidden, n2 = d->c.n_hidden2;
    double head[DOC2_MAX_WIDTH], h1[DOC2_MAX_WIDTH], head2[DOC2_MAX_WIDTH];
    double h2[DOC2_MAX_WIDTH], ph[DOC2_MAX_WIDTH], logits[DOC2_MAX_WIDTH];
    assert_true(d->c.likelihood == MODEL_LIK_BERNOULLI && d->c.x_dim <= DOC2_MAX_WIDTH);
    doc2_stack(d, doc2_q1(d), nh, x, head); /* q(h1|x): mu, lv */
    for (size_t k = 0; k < Z1; k++)
        h1[k] = head[k] + exp(head[Z1 + k] / 2.0) * eps1[k];
    doc2_stack(d, doc2_q2(d), doc2_q2(d) + n2, h1, head2); /* q(h2|h1): mu2, lv2 */
    for (size_t e = 0; e < Z2; e++)
        h2[e] = head2[e] + exp(head2[Z2 + e] / 2.0) * eps2[e];
    doc2_stack(d, doc2_p1(d), doc2_p1(d) + n2, h2, ph); /* p(h1|h2): mp, lp */
    doc2_stack(d, doc2_px(d), 2 * nh + 1, h1, logits);  /* p(x|h1) */
    *rec = doc_bernoulli(logits, x, d->c.x_dim);
    /* log w_ij = -rec_ij + sum_d (-(h1 - mp)^2 / (2 exp(lp)) - lp/2 + eps1^2/2 +
     * lv/2) + sum_e (-h2^2/2 + eps2^2/2 + lv2/2) */
    double lw = -*rec;
    for (size_t k = 0; k < Z1; k++) {
        double dz = h1[k] - ph[k], lp = ph[Z1 + k], e1 = eps1[k];
        lw += -dz * dz / (2.0 * exp(lp)) - lp / 2.0 + e1 * e1 / 2.0 + head[Z1 + k] / 2.0;
    }
    for (size_t e = 0; e < Z2; e++) {
        double e2 = eps2[e];
        lw += -h2[e] * h2[e] / 2.0 + e2 * e2 / 2.0 + head2[Z2 + e] / 2.0;
    }
    *kl = -lw - *rec; /* kl_ij = -log w_ij - rec_ij */
    if (h1_out)
        memcpy(h1_out, h1, Z1 * sizeof *h1);
    if (h2_out)
        memcpy(h2_out, h2, Z2 * sizeof *h2);
    return lw;
}

/* m's parameters into d->P (freed by doc2_free). */
static void doc2_params(doc2 *d, const model_net *m)
{
    assert_int_equal(d->n_params, m->n_params);
    d->P = malloc(d->n_params * sizeof *d->P);
    assert_non_null(d->P);
    for (size_t i = 0; i < d->n_params; i++)
        d->P[i] = m->params[i];
}

static void doc2_free(doc2 *d)
{
    free(d->P);
    d->P = NULL;
}

/* An unconditional MLP with two stochastic layers. */
static model_config cfg_two(size_t x_dim, size_t nh, const size_t *h, size_t z, size_t z2,
                          size_t n2, const size_t *g)
{
    model_config c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_ARCH_MLP;
    c.x_dim = x_dim;
    c.n_hidden = nh;
    for (size_t i = 0; i < nh; i++)
        c.hidden[i] = h[i];
    c.z_dim = z;
    c.z2_dim = z2;
    c.n_hidden2 = n2;
    for (size_t i = 0; i < n2; i++)
        c.hidden2[i] = g[i];
    c.act = MODEL_ACT_TANH;
    c.likelihood = MODEL_LIK_BERNOULLI;
    return c;
}

/* The small model of the two-layer checks: 12 values, 7 tanh units, h1 of
 * 4, h2 of 3 above q(h2|h1)'s widths 5 and 4. */
static model_config cfg_two_small(void)
{
    static const size_t h[1] = {7}, g[2] = {5, 4};
    return cfg_two(12, 1, h, 4, 3, 2, g);
}

/* Burda et al.'s model of the document's example: --latent 100,50
 * --hidden 200,200/100,100 on 784 values. */
static model_config cfg_two_burda(void)
{
    static const size_t h[2] = {200, 200}, g[2] = {100, 100};
    return cfg_two(784, 2, h, 100, 50, 2, g);
}

/* The document's name of layer l's network and part. */
static const char *doc2_part(const doc2 *d, size_t l)
{
    size_t nh = d->c.n_hidden, n2 = d->c.n_hidden2;
    return l < nh                ? "q(h1\\|x), hidden"
           : l == nh             ? "q(h1\\|x), head"
           : l < 2 * nh + 1      ? "p(x\\|h1), hidden"
           : l == 2 * nh + 1     ? "p(x\\|h1), output"
           : l < 2 * nh + 2 + n2 ? "q(h2\\|h1), hidden"
           : l == 2 * nh + 2 + n2 ? "q(h2\\|h1), head"
           : l < 2 * nh + 3 + 2 * n2 ? "p(h1\\|h2), hidden"
                                     : "p(h1\\|h2), head";
}

/* The document's layout of c is the code's: every layer's shape,
 * activation and offsets, and the parameter count. */
static void expect_doc2_layout(const model_config *c)
{
    doc2 d;
    doc2_layout(&d, c);
    model_net m;
    err_msg err;
    if (model_layout(&m, c, &err))
        fail_msg("model_layout: %s", err.text);
    if (m.n_layers != d.n_layers || m.n_params != d.n_params)
        fail_msg("nh %zu, n2 %zu: %zu layers and %zu parameters; the document's %zu and %zu",
                 c->n_hidden, c->n_hidden2, m.n_layers, m.n_params, d.n_layers, d.n_params);
    for (size_t l = 0; l < d.n_layers; l++) {
        const model_layer *L = &m.layer[l];
        if (L->in + L->n_onehot != d.L[l].in || L->out != d.L[l].out ||
            L->has_act != d.L[l].act || L->w_off != d.off[l] ||
            L->b_off != d.off[l] + d.L[l].in * d.L[l].out)
            fail_msg("nh %zu, n2 %zu, layer %zu (%s): the code's %zu x %zu (act %d) at %zu, "
                     "bias at %zu; the document's %zu x %zu (act %d) at %zu", c->n_hidden,
                     c->n_hidden2, l, doc2_part(&d, l), L->out, L->in + L->n_onehot,
                     L->has_act, L->w_off, L->b_off, d.L[l].out, d.L[l].in, d.L[l].act,
                     d.off[l]);
    }
}

/* The layout: the document's rules against model_layout over shapes; its
 * example table against Burda et al.'s model; and a saved checkpoint of
 * the small model, whose fields 62-67, parameters and moments are where
 * the document says and read back as written. */
static void test_two_layer_layout(void **state)
{
    fixture *fx = *state;
    for (size_t nh = 1; nh <= MODEL_MAX_HIDDEN; nh++)
        for (size_t n2 = 1; n2 <= MODEL_MAX_HIDDEN; n2++) {
            static const size_t h[4] = {9, 8, 7, 6}, g[4] = {5, 4, 3, 2};
            model_config c = cfg_two(13, nh, h, 11, 10, n2, g);
            expect_doc2_layout(&c);
        }
    model_config small = cfg_two_small(), burda = cfg_two_burda();
    expect_doc2_layout(&small);
    expect_doc2_layout(&burda);

    /* The example table. */
    doc2 d;
    doc2_layout(&d, &burda);
    doc_table t;
    doc_table_load(&t, "| layer | network | weight | weight at float | bias at float |");
    if (t.n_rows != d.n_layers)
        fail_msg("%s: the example lists %zu layers; the model has %zu", doc_path(), t.n_rows,
                 d.n_layers);
    for (size_t l = 0; l < d.n_layers; l++) {
        char key[24], shape[48];
        snprintf(key, sizeof key, "%zu", l);
        const doc_row *r = row_named(&t, key);
        snprintf(shape, sizeof shape, "%zu x %zu", d.L[l].out, d.L[l].in);
        if (strcmp(cell(r, 1), doc2_part(&d, l)) != 0 || strcmp(cell(r, 2), shape) != 0 ||
            parse_count(r, 3) != d.off[l] ||
            parse_count(r, 4) != d.off[l] + d.L[l].in * d.L[l].out)
            fail_msg("%s:%zu: layer %zu is %s, %s at float %zu, bias at %zu", doc_path(),
                     r->line, l, doc2_part(&d, l), shape, d.off[l],
                     d.off[l] + d.L[l].in * d.L[l].out);
    }
    doc_table_free(&t);
    char num[32], text[64];
    with_commas(num, sizeof num, d.n_params);
    doc_says_f("That model has n = %s parameters", num);
    model_hidden_text(&burda, 0, text, sizeof text);
    assert_string_equal(text, "200,200/100,100");
    model_latent_text(&burda, 0, text, sizeof text);
    assert_string_equal(text, "100,50");
    doc_says("`vae train --latent 100,50 --hidden 200,200/100,100` makes one: z_dim 100, "
             "z2_dim 50, hidden 200,200 and hidden2 100,100");
    doc_says("For the model of `--latent 100,50 --hidden 200,200/100,100` on 784 values");

    /* Only an unconditional MLP has two stochastic layers. */
    const char *refused = "two stochastic layers: the MLP only, and not conditional";
    model_config bad = small;
    bad.n_classes = 3;
    err_msg err;
    if (model_config_check(&bad, &err) == 0 || !strstr(err.text, refused))
        fail_msg("a conditional model with two stochastic layers: \"%s\"", err.text);
    saved conv;
    make_distinct(&conv, 1);
    bad = conv.m.cfg;
    bad.z2_dim = 1, bad.n_hidden2 = 1, bad.hidden2[0] = 1;
    if (model_config_check(&bad, &err) == 0 || !strstr(err.text, refused))
        fail_msg("a conv model with two stochastic layers: \"%s\"", err.text);
    free_saved(&conv);
    doc_says_f("(\"%s\")", refused);

    /* A saved checkpoint of the small model: its unused hidden2 slots are
     * written 0 whatever the configuration holds there. */
    saved s;
    make_saved(&s, &small);
    s.m.cfg.hidden2[2] = 99, s.m.cfg.hidden2[3] = 98;
    size_t len;
    unsigned char *b = save_and_read(fx->dir, "two.bin", &s, &len);
    s.m.cfg.hidden2[2] = s.m.cfg.hidden2[3] = 0;
    doc_table ft;
    doc_table_load(&ft, HEADING_FIELDS);
    size_t f_z2, f_n2, f_g, hi;
    field_range(&ft, "z2_dim", &f_z2, &hi);
    field_range(&ft, "n_hidden2", &f_n2, &hi);
    field_range(&ft, "hidden2", &f_g, &hi);
    doc_table_free(&ft);
    const uint64_t want[6] = {3, 2, 5, 4, 0, 0};
    const size_t at[6] = {f_z2, f_n2, f_g, f_g + 1, f_g + 2, f_g + 3};
    for (int k = 0; k < 6; k++)
        if (tu_get_le64(b + OFF_HEADER + 8 * at[k]) != want[k])
            fail_msg("header field %zu holds %llu, not %llu", at[k],
                     (unsigned long long)tu_get_le64(b + OFF_HEADER + 8 * at[k]),
                     (unsigned long long)want[k]);
    /* Each layer's weight and bias where the document puts them. */
    doc2_layout(&d, &small);
    size_t body = OFF_HEADER + tu_get_le32(b + 12);
    assert_int_equal(body, 560);
    assert_int_equal(len, body + 12 * d.n_params + 4);
    for (size_t l = 0; l < d.n_layers; l++) {
        size_t w = d.off[l], bias = w + d.L[l].in * d.L[l].out;
        assert_true(get_f32(b + body + 4 * w) == (float)w);
        assert_true(get_f32(b + body + 4 * bias) == (float)bias);
    }
    /* A model with one stochastic layer writes fields 62-67 as 0, whatever
     * its configuration's hidden2 slots hold. */
    saved one;
    model_config c1 = cfg_default();
    make_saved(&one, &c1);
    one.m.cfg.hidden2[0] = 97, one.m.cfg.hidden2[3] = 96;
    size_t len1;
    unsigned char *b1 = save_and_read(fx->dir, "one.bin", &one, &len1);
    for (int k = 0; k < 6; k++)
        if (tu_get_le64(b1 + OFF_HEADER + 8 * at[k]) != 0)
            fail_msg("one stochastic layer: header field %zu holds %llu, not 0", at[k],
                     (unsigned long long)tu_get_le64(b1 + OFF_HEADER + 8 * at[k]));
    free(b1);
    free_saved(&one);
    doc_says("unused `hidden` and `hidden2` slots as 0 (with one stochastic layer, "
             "z2_dim, n_hidden2 and every hidden2 slot as 0)");
    /* Read back: the same model, parameters and moments. */
    ckpt_data rd;
    err_msg rerr = {{0}};
    if (read_bytes(fx->dir, "two.bin", b, len, &rd, 1, &rerr))
        fail_msg("the checkpoint of two stochastic layers is rejected: %s", rerr.text);
    assert_int_equal(rd.version, CKPT_VERSION);
    assert_int_equal(rd.cfg.z_dim, 4);
    assert_int_equal(rd.cfg.z2_dim, 3);
    assert_int_equal(rd.cfg.n_hidden2, 2);
    assert_int_equal(rd.cfg.hidden2[0], 5);
    assert_int_equal(rd.cfg.hidden2[1], 4);
    assert_int_equal(rd.cfg.hidden2[2] | rd.cfg.hidden2[3], 0);
    assert_int_equal(rd.cfg.n_classes, 0);
    assert_int_equal(rd.n_params, s.m.n_params);
    assert_memory_equal(rd.params, s.m.params, s.m.n_params * sizeof(float));
    assert_memory_equal(rd.adam_m, s.adam_m, s.m.n_params * sizeof(float));
    assert_memory_equal(rd.adam_v, s.adam_v, s.m.n_params * sizeof(float));
    ckpt_data_free(&rd);
    free(b);
    free_saved(&s);
}

/* The reader's rules for fields 62-67 in the header table's last column
 * and "What the reader checks", case by case. */
static void test_two_layer_rules(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t f_z2, f_n2, f_g, hi;
    field_range(&t, "z2_dim", &f_z2, &hi);
    field_range(&t, "n_hidden2", &f_n2, &hi);
    field_range(&t, "hidden2", &f_g, &hi);
    /* The limits the table states are the code's. */
    char lat[32], wid[32], text[192];
    with_commas(lat, sizeof lat, MODEL_MAX_WIDTH / 2);
    with_commas(wid, sizeof wid, MODEL_MAX_WIDTH);
    snprintf(text, sizeof text, "0, or 1 to %s with n_hidden2 at least 1; the MLP only, "
             "not conditional", lat);
    expect_accepts(&t, "z2_dim", text);
    snprintf(text, sizeof text, "0 if z2_dim is 0, else 1 to %d", MODEL_MAX_HIDDEN);
    expect_accepts(&t, "n_hidden2", text);
    snprintf(text, sizeof text, "the first n_hidden2 1 to %s; the unused slots exactly 0 "
             "(unlike hidden's)", wid);
    expect_accepts(&t, "hidden2", text);
    assert_int_equal(MODEL_MAX_HIDDEN, 4);
    enum { ONE, TWO, COND, CONV, N_FIX };
    saved s[N_FIX];
    model_config c = cfg_two_small();
    make_saved(&s[TWO], &c);
    c.z2_dim = c.n_hidden2 = 0;
    memset(c.hidden2, 0, sizeof c.hidden2);
    make_saved(&s[ONE], &c);
    make_readable(&s[COND], 0);
    make_readable(&s[CONV], 1);
    const uint64_t big = UINT64_MAX;
    /* why: 0 accepted; 'L' "a second stochastic layer of ..."; 'W' "width
     * ... of the second stochastic layer's hidden layer ..."; 'A' another
     * "bad architecture"; 'C' the MLP only, not conditional; 'P' the
     * parameter count no longer fits the architecture */
    static const struct {
        int fix;
        uint64_t z2, n2, g[4];
        char why;
        size_t slot; /* 'W': the hidden layer counted from 1 */
    } cases[] = {
        {ONE, 0, 0, {0, 0, 0, 0}, 0, 0},
        {ONE, 3, 0, {0, 0, 0, 0}, 'L', 0},
        {ONE, 0, 1, {0, 0, 0, 0}, 'L', 0},
        {ONE, 0, 1, {5, 0, 0, 0}, 'L', 0},
        {ONE, 0, 0, {5, 0, 0, 0}, 'W', 1},
        {ONE, 0, 0, {0, 0, 0, 7}, 'W', 4},
        {ONE, 1, 1, {1, 0, 0, 0}, 'P', 0},
        {TWO, 3, 2, {5, 4, 0, 0}, 0, 0},
        {TWO, 3, 2, {5, 4, 7, 0}, 'W', 3},
        {TWO, 3, 2, {5, 4, 0, 1}, 'W', 4},
        {TWO, 3, 2, {5, 0, 0, 0}, 'W', 2},
        {TWO, 3, 2, {0, 4, 0, 0}, 'W', 1},
        {TWO, 3, 2, {65537, 4, 0, 0}, 'W', 1},
        {TWO, 3, 2, {5, big, 0, 0}, 'W', 2},
        {TWO, 3, 0, {5, 4, 0, 0}, 'L', 0},
        {TWO, 0, 2, {5, 4, 0, 0}, 'L', 0},
        {TWO, 3, 5, {5, 4, 0, 0}, 'L', 0},
        {TWO, 3, big, {5, 4, 0, 0}, 'L', 0},
        {TWO, 65537, 2, {5, 4, 0, 0}, 'L', 0},
        {TWO, big, 2, {5, 4, 0, 0}, 'L', 0},
        {TWO, 65536, 2, {5, 4, 0, 0}, 'A', 0}, /* above 32,768: the configuration check */
        {TWO, 32769, 2, {5, 4, 0, 0}, 'A', 0},
        {TWO, 4, 2, {5, 4, 0, 0}, 'P', 0},
        {TWO, 3, 1, {5, 0, 0, 0}, 'P', 0},
        {TWO, 3, 3, {5, 4, 1, 0}, 'P', 0},
        {TWO, 0, 0, {0, 0, 0, 0}, 'P', 0}, /* read as one stochastic layer */
        {COND, 1, 1, {1, 0, 0, 0}, 'C', 0},
        {CONV, 1, 1, {1, 0, 0, 0}, 'C', 0},
        {COND, 0, 0, {0, 0, 0, 0}, 0, 0},
        {CONV, 0, 0, {0, 0, 0, 0}, 0, 0},
    };
    size_t len[N_FIX];
    unsigned char *good[N_FIX];
    static const char *const names[N_FIX] = {"t0.bin", "t1.bin", "t2.bin", "t3.bin"};
    for (int k = 0; k < N_FIX; k++)
        good[k] = save_and_read(fx->dir, names[k], &s[k], &len[k]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int k = cases[i].fix;
        unsigned char *b = malloc(len[k]);
        assert_non_null(b);
        memcpy(b, good[k], len[k]);
        tu_put_le64(b + OFF_HEADER + 8 * f_z2, cases[i].z2);
        tu_put_le64(b + OFF_HEADER + 8 * f_n2, cases[i].n2);
        for (int j = 0; j < 4; j++)
            tu_put_le64(b + OFF_HEADER + 8 * (f_g + j), cases[i].g[j]);
        fix_crc(b, len[k]);
        ckpt_data d;
        err_msg err = {{0}};
        int rc = read_bytes(fx->dir, "tx.bin", b, len[k], &d, 1, &err);
        char want[192] = "";
        switch (cases[i].why) {
        case 'L':
            snprintf(want, sizeof want, "bad architecture: a second stochastic layer of %llu "
                     "units and %llu hidden layers", (unsigned long long)cases[i].z2,
                     (unsigned long long)cases[i].n2);
            break;
        case 'W': {
            size_t j = cases[i].slot - 1;
            snprintf(want, sizeof want, "bad architecture: width %llu of the second "
                     "stochastic layer's hidden layer %zu", (unsigned long long)cases[i].g[j],
                     cases[i].slot);
            break;
        }
        case 'A':
            snprintf(want, sizeof want, "bad architecture: latent size %llu out of range",
                     (unsigned long long)cases[i].z2);
            break;
        case 'C':
            snprintf(want, sizeof want, "bad architecture: two stochastic layers: the MLP "
                     "only, and not conditional");
            break;
        case 'P':
            snprintf(want, sizeof want, "parameters stored, the architecture has");
            break;
        }
        if (rc != (cases[i].why ? -1 : 0) || (rc && !strstr(err.text, want)))
            fail_msg("case %zu: z2_dim %llu, n_hidden2 %llu, hidden2 %llu %llu %llu %llu: "
                     "ckpt_read %s %s%s%s", i, (unsigned long long)cases[i].z2,
                     (unsigned long long)cases[i].n2, (unsigned long long)cases[i].g[0],
                     (unsigned long long)cases[i].g[1], (unsigned long long)cases[i].g[2],
                     (unsigned long long)cases[i].g[3], rc ? "rejects it:" : "accepts it",
                     rc ? err.text : "", cases[i].why ? "; expected " : "", want);
        if (rc == 0) {
            /* What was accepted reads back as written. */
            assert_int_equal(d.cfg.z2_dim, cases[i].z2);
            assert_int_equal(d.cfg.n_hidden2, cases[i].n2);
            for (int j = 0; j < 4; j++)
                assert_int_equal(d.cfg.hidden2[j], cases[i].g[j]);
            ckpt_data_free(&d);
        }
        free(b);
    }
    for (int k = 0; k < N_FIX; k++) {
        free(good[k]);
        free_saved(&s[k]);
    }
    doc_says("\"bad architecture: a second stochastic layer of Z units and N hidden "
             "layers\"");
    doc_says("\"bad architecture: width W of the second stochastic layer's hidden layer "
             "I\", I counted from 1");
    doc_says_f("z2_dim and n_hidden2 both 0, or z2_dim 1 to %s and n_hidden2 1 to %d", wid,
               MODEL_MAX_HIDDEN);
    doc_says_f("each hidden2 slot at most %s and above 0 in exactly the first n_hidden2 "
               "slots", wid);
    doc_says_f("z_dim and z2_dim at most %s", lat);
    doc_says("\"bad architecture: two stochastic layers: the MLP only, and not "
             "conditional\"");
    doc_table_free(&t);
}

/* The small two-layer model with random parameters and inputs, and eps1
 * and eps2 for N_IMG images of K draws, from seed. */
static void small_batch2(size_t K, uint64_t seed, model_net *m, model_acts *a)
{
    model_config c = cfg_two_small();
    err_msg err;
    if (model_init(m, &c, &err) || model_acts_init_k(a, &c, N_IMG, K, &err))
        fail_msg("%s", err.text);
    rng_state r;
    rng_seed(&r, seed);
    model_init_params(m, &r);
    for (size_t i = 0; i < m->n_params; i++) /* larger, so every term counts */
        m->params[i] *= 2.0f;
    for (size_t i = 0; i < N_IMG * c.x_dim; i++)
        a->x[i] = rng_uniform(&r);
    rng_normal(&r, a->eps, N_IMG * K * c.z_dim);
    rng_normal(&r, a->eps2, N_IMG * K * c.z2_dim);
}

/* The document's objective summed over the batch (eps held): each image's
 * obj_i from its draws' log w_ij, rec_ij and kl_ij. */
static double doc2_objective(const doc2 *d, const model_acts *a, size_t B, size_t K,
                             model_objective objective, double beta, double *lw_out,
                             double *rec_out, double *kl_out)
{
    const size_t D = d->c.x_dim, Z1 = d->c.z_dim, Z2 = d->c.z2_dim;
    double sum = 0.0;
    for (size_t i = 0; i < B; i++) {
        double x[DOC2_MAX_WIDTH], lw[N_DRAWS], top = -INFINITY, rec_i = 0.0, kl_i = 0.0;
        assert_true(K <= N_DRAWS);
        for (size_t p = 0; p < D; p++)
            x[p] = a->x[i * D + p];
        for (size_t j = 0; j < K; j++) {
            size_t r = i * K + j;
            double rec, kl;
            lw[j] = doc2_draw(d, x, a->eps + r * Z1, a->eps2 + r * Z2, NULL, NULL, &rec, &kl);
            top = lw[j] > top ? lw[j] : top;
            rec_i += rec / (double)K;
            kl_i += kl / (double)K;
            if (lw_out)
                lw_out[r] = lw[j], rec_out[r] = rec, kl_out[r] = kl;
        }
        if (objective == MODEL_OBJ_ELBO) {
            sum += rec_i + beta * kl_i; /* obj_i = rec_i + beta_s kl_i */
        } else {
            double s = 0.0; /* obj_i = -log((1/K) sum_j w_ij) */
            for (size_t j = 0; j < K; j++)
                s += exp(lw[j] - top);
            sum += -(top + log(s / (double)K));
        }
    }
    return sum;
}

/* One batch of the small two-layer model with K draws through model_loss
 * and model_backward, held against the document's section "Two stochastic
 * layers": h1 and h2, rec, the sampled kl and the objective per image, the
 * normalised weights, and every parameter's gradient against central
 * differences of the document's objective (eps held), recomputed in
 * double from the document's layout. */
static void check_two_layers(model_objective objective, size_t K, double beta)
{
    enum { B = N_IMG };
    model_net m;
    model_acts a;
    small_batch2(K, 91 + K, &m, &a);
    doc2 d;
    doc2_layout(&d, &m.cfg);
    doc2_params(&d, &m);
    const size_t D = m.cfg.x_dim, Z1 = m.cfg.z_dim, Z2 = m.cfg.z2_dim, n = m.n_params;
    model_encode(&m, &a, B);
    model_reparam(&m, &a, B, 0);
    model_decode(&m, &a, B);
    model_loss_spec loss = {objective, beta, MODEL_EST_STANDARD};
    double total = model_loss(&m, &a, B, &loss);
    float *grads = calloc(n, sizeof *grads);
    assert_non_null(grads);
    model_backward(&m, &a, grads, B, &loss);
    const char *what = objective == MODEL_OBJ_ELBO ? "ELBO" : "IWAE";
    double lw[N_IMG * N_DRAWS], rec[N_IMG * N_DRAWS], kl[N_IMG * N_DRAWS], want_total = 0.0;
    doc2_objective(&d, &a, B, K, objective, beta, lw, rec, kl);
#define CLOSE(got, want, tol_rel, ...)                                                    \
    do {                                                                                 \
        double g_ = (got), w_ = (want);                                                  \
        if (!(fabs(g_ - w_) <= (tol_rel) * (1.0 + fabs(w_)))) {                           \
            print_error(__VA_ARGS__);                                                    \
            fail_msg("%s, K %zu, beta %g: the code's %.9g, the document's %.9g", what, K, \
                     beta, g_, w_);                                                      \
        }                                                                                \
    } while (0)
    for (size_t i = 0; i < B; i++) {
        double x[DOC2_MAX_WIDTH], rec_i = 0.0, kl_i = 0.0, top = -INFINITY, s = 0.0;
        for (size_t p = 0; p < D; p++)
            x[p] = a.x[i * D + p];
        for (size_t j = 0; j < K; j++) {
            size_t r = i * K + j;
            double h1[DOC2_MAX_WIDTH], h2[DOC2_MAX_WIDTH], rr, kk;
            doc2_draw(&d, x, a.eps + r * Z1, a.eps2 + r * Z2, h1, h2, &rr, &kk);
            for (size_t k = 0; k < Z1; k++)
                CLOSE(a.z[r * Z1 + k], h1[k], 1e-5, "image %zu draw %zu: h1[%zu]\n", i, j, k);
            for (size_t e = 0; e < Z2; e++)
                CLOSE(a.z2[r * Z2 + e], h2[e], 1e-5, "image %zu draw %zu: h2[%zu]\n", i, j, e);
            CLOSE(a.rrec[r], rec[r], 1e-5, "image %zu draw %zu: rec_ij\n", i, j);
            rec_i += rec[r] / (double)K;
            kl_i += kl[r] / (double)K;
            top = lw[r] > top ? lw[r] : top;
        }
        for (size_t j = 0; j < K; j++)
            s += exp(lw[i * K + j] - top);
        if (objective == MODEL_OBJ_IWAE)
            for (size_t j = 0; j < K; j++)
                CLOSE(a.wt[i * K + j], exp(lw[i * K + j] - top) / s, 1e-5,
                      "image %zu draw %zu: wt_ij\n", i, j);
        double obj = objective == MODEL_OBJ_ELBO ? rec_i + beta * kl_i
                                               : -(top + log(s / (double)K));
        CLOSE(a.rec[i], rec_i, 1e-5, "image %zu: rec\n", i);
        CLOSE(a.kl[i], kl_i, 1e-5, "image %zu: kl\n", i);
        CLOSE(a.obj[i], obj, 1e-5, "image %zu: the objective\n", i);
        if (K == 1 && objective == MODEL_OBJ_IWAE) /* one draw: obj = -log w */
            CLOSE(a.obj[i], -lw[i], 1e-5, "image %zu: -log w\n", i);
        want_total += rec_i + kl_i;
    }
    /* What model_loss reports is the negative ELBO, whatever is minimised. */
    CLOSE(total, want_total, 1e-5, "the batch's rec + kl\n");
    /* The gradient of the document's objective, by central differences. */
    const double h = 1e-5;
    double worst = 0.0;
    for (size_t k = 0; k < n; k++) {
        double keep = d.P[k];
        d.P[k] = keep + h;
        double up = doc2_objective(&d, &a, B, K, objective, beta, NULL, NULL, NULL);
        d.P[k] = keep - h;
        double down = doc2_objective(&d, &a, B, K, objective, beta, NULL, NULL, NULL);
        d.P[k] = keep;
        double g = (up - down) / (2.0 * h), err = fabs(grads[k] - g) / (1.0 + fabs(g));
        worst = err > worst ? err : worst;
        if (!(err <= 1e-4))
            fail_msg("%s, K %zu, beta %g: parameter %zu's gradient is %.9g, the document's "
                     "objective's %.9g", what, K, beta, k, (double)grads[k], g);
    }
    print_message("  two layers, %s, K %zu, beta %g: gradients within %.2g of the document's "
                  "(relative)\n", what, K, beta, worst);
    /* The IW bound does not see beta. */
    if (objective == MODEL_OBJ_IWAE) {
        float obj[B];
        memcpy(obj, a.obj, sizeof obj);
        loss.beta = 2.0 * beta + 1.0;
        model_loss(&m, &a, B, &loss);
        assert_memory_equal(obj, a.obj, sizeof obj);
    }
#undef CLOSE
    free(grads);
    doc2_free(&d);
    model_acts_free(&a);
    model_free(&m);
}

static void test_two_layer_objective(void **state)
{
    (void)state;
    check_two_layers(MODEL_OBJ_ELBO, 1, 1.0);
    check_two_layers(MODEL_OBJ_ELBO, N_DRAWS, 0.5);
    check_two_layers(MODEL_OBJ_IWAE, 1, 1.0);
    check_two_layers(MODEL_OBJ_IWAE, N_DRAWS, 1.0);
    /* The formulas the test applies are the document's. */
    doc_says("`log w = log p(x|h1) + log p(h1|h2) + log p(h2) - log q(h1|x) - log "
             "q(h2|h1)`");
    doc_says("`log w_ij = -rec_ij + sum_d (-(h1 - mp)^2 / (2 exp(lp)) - lp/2 + eps1^2/2 + "
             "lv/2) + sum_e (-h2^2/2 + eps2^2/2 + lv2/2)`");
    doc_says("`kl_ij = -log w_ij - rec_ij`");
    doc_says("`rec_i = (1/K) sum_j rec_ij` and `kl_i = (1/K) sum_j kl_ij`");
    doc_says("0, the ELBO: `obj_i = rec_i + beta_s kl_i`. Its gradient takes each draw's "
             "rec_ij with weight 1/K and its kl_ij with weight beta_s / K.");
    doc_says("1, the importance-weighted bound: `obj_i = -log((1/K) sum_j w_ij)`");
    doc_says("`-sum_j wt_ij d log w_ij` with the normalised weights `wt_ij = w_ij / sum_j "
             "w_ij` held fixed: each draw's rec_ij and kl_ij with weight wt_ij. Neither "
             "beta nor the KL warm-up enters it.");
    doc_says("Both gradients are taken with eps1 and eps2 held, through every path");
    doc_says("`h1 = mu + expf(0.5f lv) eps1`");
    doc_says("`h2 = mu2 + expf(0.5f lv2) eps2`");
    /* The estimators' terms with two layers (tests/test_model.c checks them
     * against central differences of the surrogates). */
    doc_says("`-c_ij eps1_ij exp(-lv/2)` and\n`-c_ij eps2_ij exp(-lv2/2)`");
    doc_says("goes back through q(h2|h1) to h1 only, not into\nq(h2|h1)'s parameters");
}

/* With two stochastic layers a batch's noise is drawn image by image, each
 * image's h1 noise then its h2 noise, as the document says: image i, draw
 * j takes eps1 latent d from normal number i K (z_dim + z2_dim) + j z_dim
 * + d and eps2 latent e from i K (z_dim + z2_dim) + K z_dim + j z2_dim +
 * e, whatever the split: checked over a team of three (shares of 3, 3 and
 * 1 images) and of one. */
static void test_two_layer_draws(void **state)
{
    (void)state;
    enum { B = 7, K = 4, Z1 = 4, Z2 = 3 };
    static const size_t h[1] = {5}, g[1] = {2};
    model_config c = cfg_two(6, 1, h, Z1, Z2, 1, g);
    static const size_t teams[2] = {3, 1};
    for (int ti = 0; ti < 2; ti++) {
        const size_t T = teams[ti];
        model_net m;
        err_msg err;
        if (par_init(T, &err) || model_init(&m, &c, &err))
            fail_msg("%s", err.text);
        shard_set sh;
        shard_spec spec = {.cap = B, .draws = K, .objective = MODEL_OBJ_IWAE};
        if (shard_init(&sh, &m, &spec, &err))
            fail_msg("shard_init: %s", err.text);
        assert_int_equal(sh.T, T);
        rng_state r, doc;
        float spare;
        rng_seed(&r, 6);
        rng_normal(&r, &spare, 1); /* a spare pending: the split must not matter */
        doc = r;
        shard_draw_eps(&sh, &m, &r, B);
        float want[B * K * (Z1 + Z2)];
        rng_normal(&doc, want, B * K * (Z1 + Z2));
        assert_memory_equal(&r, &doc, sizeof r); /* nothing more drawn */
        size_t seen = 0;
        for (size_t k = 0; k < T; k++) {
            size_t lo, hi;
            par_share(B, 1, k, T, &lo, &hi);
            assert_int_equal(sh.acts[k].k, K);
            for (size_t i = lo; i < hi; i++)
                for (size_t j = 0; j < K; j++) {
                    size_t row = (i - lo) * K + j, base = i * K * (Z1 + Z2);
                    for (size_t d = 0; d < Z1; d++, seen++)
                        if (f32_bits(sh.acts[k].eps[row * Z1 + d]) !=
                            f32_bits(want[base + j * Z1 + d]))
                            fail_msg("team of %zu: image %zu, draw %zu, eps1 latent %zu is "
                                     "not normal number %zu of the step's", T, i, j, d,
                                     base + j * Z1 + d);
                    for (size_t e = 0; e < Z2; e++, seen++)
                        if (f32_bits(sh.acts[k].eps2[row * Z2 + e]) !=
                            f32_bits(want[base + K * Z1 + j * Z2 + e]))
                            fail_msg("team of %zu: image %zu, draw %zu, eps2 latent %zu is "
                                     "not normal number %zu of the step's", T, i, j, e,
                                     base + K * Z1 + j * Z2 + e);
                }
        }
        assert_int_equal(seen, B * K * (Z1 + Z2));
        shard_free(&sh);
        model_free(&m);
    }
    par_shutdown();
    doc_says("draw the normals of a batch image by image, in the batch's order: each "
             "image's h1 noise (K x z_dim normals, its K draws in turn, each draw's z_dim "
             "latents in turn) and then its h2 noise (K x z2_dim normals, in the same "
             "order)");
    doc_says("j gets eps1 latent d as normal number `i K (z_dim + z2_dim) + j z_dim + d` of "
             "the step's and eps2 latent e as normal number `i K (z_dim + z2_dim) + K z_dim "
             "+ j z2_dim + e`");
    doc_says("each image its K draws' h1 noise, then their h2 noise");
}

#define IW_SALT 0x69775f65ULL
#define PRIOR_SALT 0x7072696fULL

/* The importance-weighted bound of a model with two stochastic layers from
 * the document's rules: draw i of image k takes eps1 then eps2 from the
 * image's generator (swap: eps2 first, to show the order matters). */
static double doc2_iw(const doc2 *d, const uint8_t *img, size_t N, size_t K, uint64_t seed,
                      int swap)
{
    const size_t D = d->c.x_dim, Z1 = d->c.z_dim, Z2 = d->c.z2_dim;
    double sum = 0.0;
    for (size_t k = 0; k < N; k++) {
        double x[DOC2_MAX_WIDTH], mx = -INFINITY, s = 0.0;
        for (size_t p = 0; p < D; p++)
            x[p] = (float)img[k * D + p] * (1.0f / 255.0f);
        rng_state r;
        rng_seed(&r, rng_mix(seed ^ IW_SALT, k));
        for (size_t i = 0; i < K; i++) {
            float e1[DOC2_MAX_WIDTH], e2[DOC2_MAX_WIDTH];
            rng_normal(&r, swap ? e2 : e1, swap ? Z2 : Z1);
            rng_normal(&r, swap ? e1 : e2, swap ? Z1 : Z2);
            double rec, kl, lw = doc2_draw(d, x, e1, e2, NULL, NULL, &rec, &kl);
            if (lw > mx) {
                s = s * exp(mx - lw) + 1.0;
                mx = lw;
            } else {
                s += exp(lw - mx);
            }
        }
        sum -= mx + log(s) - log((double)K);
    }
    return sum / (double)N;
}

static void test_two_layer_iw(void **state)
{
    (void)state;
    enum { N = 5, K = 6 };
    model_net m;
    model_acts a;
    small_batch2(1, 95, &m, &a); /* the parameters; a unused */
    model_acts_free(&a);
    doc2 d;
    doc2_layout(&d, &m.cfg);
    doc2_params(&d, &m);
    const size_t D = m.cfg.x_dim;
    uint8_t img[N * 12], lab[N] = {0};
    assert_int_equal(D, 12);
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 53 + 7);
    idx_set set = {N, 1, D, img, lab, 1, 0};
    err_msg err;
    if (par_init(2, &err))
        fail_msg("%s", err.text);
    const uint64_t seed = 3;
    infer_iw_result res;
    if (infer_iw(&m, &set, NULL, K, seed, 0, &res, &err))
        fail_msg("infer_iw: %s", err.text);
    par_shutdown();
    double want = doc2_iw(&d, img, N, K, seed, 0), other = doc2_iw(&d, img, N, K, seed, 1);
    if (!(fabs(res.iw_nll - want) <= 1e-4 * (1.0 + fabs(want))))
        fail_msg("the importance-weighted bound is %.9g; the document's %.9g (with eps2 "
                 "drawn first, %.9g)", res.iw_nll, want, other);
    assert_true(fabs(other - want) > 1e-2 * (1.0 + fabs(want))); /* the order shows */
    doc_says("draw i takes z_dim normals eps1 and then z2_dim normals eps2: eps1 latent d "
             "is normal number `i (z_dim + z2_dim) + d` of the image's stream, eps2 latent "
             "e normal number `i (z_dim + z2_dim) + z_dim + e`");
    doc_says("`sum_d (-(h1_d - mp_d)^2 exp(-lp_d) / 2 - lp_d / 2) + sum_e (-h2_e^2 / 2 + "
             "eps2_e^2 / 2 + lv2_e / 2)`");
    doc_says_f("`rng_seed(rng_mix(S ^ 0x%llx, k))`", (unsigned long long)IW_SALT);
    doc2_free(&d);
    model_free(&m);
}

/* Prior draws of a model with two stochastic layers: h2 from the first
 * z2_dim normals of a picture's, h1 from p(h1|h2) and the next z_dim. */
static void test_two_layer_prior(void **state)
{
    (void)state;
    enum { N = 7 };
    model_net m;
    model_acts a;
    small_batch2(1, 96, &m, &a);
    model_acts_free(&a);
    err_msg err;
    if (model_acts_init(&a, &m.cfg, 3, &err)) /* pictures in batches of 3 */
        fail_msg("%s", err.text);
    doc2 d;
    doc2_layout(&d, &m.cfg);
    doc2_params(&d, &m);
    const size_t Z1 = m.cfg.z_dim, Z2 = m.cfg.z2_dim, dim = Z2 + Z1;
    assert_int_equal(infer_prior_dim(&m), dim);
    float eps[N * DOC2_MAX_WIDTH], z[N * DOC2_MAX_WIDTH];
    assert_true(dim <= DOC2_MAX_WIDTH);
    const uint64_t seed = 9;
    infer_prior_draws(eps, N, dim, seed);
    rng_state r;
    float stream[N * DOC2_MAX_WIDTH];
    rng_seed(&r, seed ^ PRIOR_SALT);
    rng_normal(&r, stream, N * dim);
    assert_memory_equal(eps, stream, N * dim * sizeof *eps);
    infer_prior_z(&m, &a, eps, NULL, N, z);
    double worst_swapped = 0.0;
    for (size_t i = 0; i < N; i++)
        for (int swap = 0; swap < 2; swap++) {
            /* h2 = its noise, then h1 = mp + exp(lp / 2) eps1 from p(h1|h2) */
            const float *e2 = eps + i * dim + (swap ? Z1 : 0);
            const float *e1 = eps + i * dim + (swap ? 0 : Z2);
            double h2[DOC2_MAX_WIDTH], ph[DOC2_MAX_WIDTH];
            for (size_t e = 0; e < Z2; e++)
                h2[e] = e2[e];
            doc2_stack(&d, doc2_p1(&d), doc2_p1(&d) + m.cfg.n_hidden2, h2, ph);
            for (size_t k = 0; k < Z1; k++) {
                double want = ph[k] + exp(ph[Z1 + k] / 2.0) * e1[k];
                double diff = fabs(z[i * Z1 + k] - want);
                if (swap)
                    worst_swapped = diff > worst_swapped ? diff : worst_swapped;
                else if (!(diff <= 1e-5 * (1.0 + fabs(want))))
                    fail_msg("prior draw %zu: h1[%zu] is %.9g, the document's %.9g", i, k,
                             (double)z[i * Z1 + k], want);
            }
        }
    assert_true(worst_swapped > 1e-2); /* the order shows */
    doc_says("picture i takes `z2_dim + z_dim` normals of the prior-draw stream (normals "
             "`i (z2_dim + z_dim)` on), h2's first: `h2 = eps` (p(h2) = N(0, I)), then "
             "p(h1|h2) at h2 gives mp and lp and `h1 = mp + expf(0.5f lp) eps1` from the "
             "next z_dim normals");
    doc_says_f("`rng_seed(seed ^ 0x%llx)`", (unsigned long long)PRIOR_SALT);
    doc2_free(&d);
    model_acts_free(&a);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_header_table_matches_writer),
        T(test_worked_example_tensors),
        T(test_worked_example_areas),
        T(test_rng_vectors),
        T(test_input_scaling),
        T(test_init_streams),
        T(test_staged_table),
        T(test_schedule_vectors),
        T(test_older_versions),
        T(test_fingerprint_rules),
        T(test_control_rules),
        T(test_validation_rules),
        T(test_validation_split),
        T(test_objective_rules),
        T(test_estimator_rules),
        T(test_shape_rules),
        T(test_objective_values),
        T(test_estimator_gradients),
        T(test_eps_order),
        T(test_two_layer_layout),
        T(test_two_layer_rules),
        T(test_two_layer_objective),
        T(test_two_layer_draws),
        T(test_two_layer_iw),
        T(test_two_layer_prior),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
