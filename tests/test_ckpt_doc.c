/* test_ckpt_doc.c - docs/checkpoint.md checked against the code, so the
 * document cannot drift: its header-field table against what ckpt_save
 * writes, its worked example against the default model's layout and a
 * written checkpoint, its RNG test vectors against rng.c, and its reader
 * rules (version 2, header size, data fingerprint) against ckpt_read.
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ckpt.h"
#include "idx.h"
#include "infer.h"
#include "rng.h"
#include "vae.h"
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

/* Fails unless the document contains text (a fact stated in prose). */
static void doc_says(const char *text)
{
    char *doc = (char *)tu_read_file(doc_path(), NULL);
    int found = strstr(doc, text) != NULL;
    free(doc);
    if (!found)
        fail_msg("%s: does not say \"%s\" (the code's number)", doc_path(), text);
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
    vae_model m;
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
static void make_saved(saved *s, const vae_config *cfg)
{
    memset(s, 0, sizeof *s);
    err_msg err;
    if (vae_init(&s->m, cfg, &err))
        fail_msg("vae_init: %s", err.text);
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
    s->t.batch = 1;
    s->t.lr = 1e-3;
    rng_seed(&s->t.rng_data, 1);
    rng_seed(&s->t.rng_noise, 2);
}

static void free_saved(saved *s)
{
    vae_free(&s->m);
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

/* A conditional MLP and a conv model whose every header field differs,
 * so that, across the two files, no two fields hold the same pair of
 * values: a misnumbered field cannot pass by luck (checked below). */
static void make_distinct(saved *s, int which)
{
    vae_config c;
    memset(&c, 0, sizeof c);
    c.n_hidden = 4;
    float tmp[3];
    if (which == 0) {
        c.arch = VAE_ARCH_MLP;
        c.x_dim = 13;
        c.hidden[0] = 9, c.hidden[1] = 8, c.hidden[2] = 7, c.hidden[3] = 6;
        c.z_dim = 5;
        c.act = VAE_ACT_TANH;
        c.likelihood = VAE_LIK_GAUSSIAN;
        c.n_classes = 3;
        make_saved(s, &c);
        ckpt_train *t = &s->t;
        t->seed = 0x1122334455667788ULL;
        t->epoch = 41, t->step = 42, t->adam_t = 43, t->batch = 44;
        t->lr = 0.0625, t->beta = 0.375, t->binarize = 2, t->noise = 0.125;
        rng_seed(&t->rng_data, 101);
        rng_normal(&t->rng_data, tmp, 1); /* a spare pending */
        rng_seed(&t->rng_noise, 202);
        rng_normal(&t->rng_noise, tmp, 1);
        rng_normal(&t->rng_noise, tmp, 1); /* none pending, a stale spare */
        assert_true(t->rng_noise.spare != 0.0f && !t->rng_noise.has_spare);
        t->sum_rec = 1234.5, t->sum_kl = 67.25, t->n_seen = 45, t->seconds = 8.5;
        t->data.n = 46, t->data.rows = 47, t->data.cols = 48;
        t->data.pixels_crc = 0xdeadbeefu, t->data.labels_crc = 0x89abcdefu;
    } else {
        c.arch = VAE_ARCH_CONV;
        c.x_dim = 16; /* 4 x 4, padded to 64 x 64 by 4 blocks */
        c.hidden[0] = 12, c.hidden[1] = 11, c.hidden[2] = 10, c.hidden[3] = 14;
        c.z_dim = 15;
        c.act = VAE_ACT_RELU;
        c.likelihood = VAE_LIK_CB;
        c.n_classes = 0;
        make_saved(s, &c);
        ckpt_train *t = &s->t;
        t->seed = 0x99aabbccddeeff00ULL;
        t->epoch = 51, t->step = 52, t->adam_t = 53, t->batch = 54;
        t->lr = 0.25, t->beta = 1.5, t->binarize = 0, t->noise = 0.0;
        rng_seed(&t->rng_data, 303);
        rng_normal(&t->rng_data, tmp, 3);
        rng_seed(&t->rng_noise, 404); /* seeded: spare 0, flag 0 */
        t->sum_rec = 2345.5, t->sum_kl = 78.75, t->n_seen = 55, t->seconds = 9.25;
        t->data.n = 56, t->data.rows = 57, t->data.cols = 58;
        t->data.pixels_crc = 0x01234567u, t->data.labels_crc = 0xfedcba98u;
    }
}

/* ======================================================================== */
/* The header-field table                                                   */
/* ======================================================================== */

#define MAX_SLOTS 6

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
    const vae_config *c = &s->m.cfg;
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
    ONE("seed", "u64", t->seed);
    ONE("epoch", "u64", t->epoch);
    ONE("step", "u64", t->step);
    ONE("adam_t", "u64", t->adam_t);
    ONE("batch", "u64", t->batch);
    ONE("lr", "f64", f64_bits(t->lr));
    ONE("beta", "f64", f64_bits(t->beta));
    ONE("binarize", "u64", t->binarize);
    ONE("noise", "f64", f64_bits(t->noise));
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

/* Every documented field of file (written from s) holds what s says; the
 * rows cover fields 0..F-1 once each, F = the header size / 8. Returns F. */
static size_t check_header_table(const doc_table *t, const saved *s,
                                 const unsigned char *file, size_t len,
                                 uint64_t slot_value[][2], int which)
{
    field_want want[40];
    size_t n_want = fields_of(s, want);
    size_t n_fields = tu_get_le32(file + 12) / 8;
    assert_true(OFF_HEADER + 8 * n_fields <= len);
    int covered[64] = {0}, used[40] = {0};
    assert_true(n_fields <= 64);
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
    uint64_t slot[64][2];
    size_t n_fields[2];
    for (int which = 0; which < 2; which++) {
        saved s;
        make_distinct(&s, which);
        size_t len;
        unsigned char *b = save_and_read(fx->dir, which ? "conv.bin" : "mlp.bin", &s, &len);
        assert_memory_equal(b, CKPT_MAGIC, 8);
        assert_int_equal(tu_get_le32(b + 8), CKPT_VERSION);
        n_fields[which] = check_header_table(&t, &s, b, len, slot, which);
        free(b);
        free_saved(&s);
    }
    assert_int_equal(n_fields[0], n_fields[1]);
    /* The two files tell every field from every other. */
    for (size_t f = 0; f < n_fields[0]; f++)
        for (size_t g = f + 1; g < n_fields[0]; g++)
            if (slot[f][0] == slot[g][0] && slot[f][1] == slot[g][1])
                fail_msg("test setup: fields %zu and %zu hold the same values in "
                         "both files, so a swap would pass", f, g);
    doc_table_free(&t);
}

/* ======================================================================== */
/* The worked example                                                       */
/* ======================================================================== */

static vae_config cfg_default(void) /* what `vae train` uses with no model options */
{
    vae_config c;
    memset(&c, 0, sizeof c);
    c.arch = VAE_ARCH_MLP;
    c.x_dim = 784;
    c.n_hidden = 1;
    c.hidden[0] = 400;
    c.z_dim = 20;
    c.act = VAE_ACT_RELU;
    c.likelihood = VAE_LIK_BERNOULLI;
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
    vae_config c = cfg_default();
    make_saved(&s, &c);
    const vae_model *m = &s.m;
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
        const vae_layer *L = &m->layer[layer];
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
    /* The sizes stated in prose. */
    char num[32], text[96];
    with_commas(num, sizeof num, m->n_params);
    snprintf(text, sizeof text, "n = %s parameters", num);
    doc_says(text);
    with_commas(num, sizeof num, len);
    snprintf(text, sizeof text, "a %s-byte file", num);
    doc_says(text);
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
    vae_config c = cfg_default();
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
/* The RNG test vectors                                                     */
/* ======================================================================== */

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
    } v[16];
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
/* Reader rules: version 2, the header size, the data fingerprint           */
/* ======================================================================== */

/* Writes b (len bytes) to dir/name and reads it; returns ckpt_read's result
 * (d is freed unless keep). */
static int read_bytes(const char *dir, const char *name, const unsigned char *b,
                      size_t len, ckpt_data *d, int keep)
{
    char path[256];
    tu_join(path, sizeof path, dir, name);
    tu_write_file(path, b, len);
    err_msg err = {{0}};
    int rc = ckpt_read(path, d, &err);
    if (rc == 0 && !keep)
        ckpt_data_free(d);
    return rc;
}

/* A version-2 file made by the document's rule (version 3 without the
 * fingerprint fields) reads back as the same checkpoint with no fingerprint. */
static void test_version_2_is_version_3_without_fingerprint(void **state)
{
    fixture *fx = *state;
    doc_table t;
    doc_table_load(&t, HEADING_FIELDS);
    size_t first, last, lo, hi;
    field_range(&t, "data_n", &first, &hi);
    field_range(&t, "data_labels_crc32", &lo, &last);
    saved s;
    make_distinct(&s, 0);
    size_t len;
    unsigned char *b3 = save_and_read(fx->dir, "v3.bin", &s, &len);
    size_t h3 = tu_get_le32(b3 + 12), cut = 8 * (last + 1 - first);
    assert_int_equal(h3, 8 * (last + 1));
    size_t len2 = len - cut;
    unsigned char *b2 = malloc(len2);
    assert_non_null(b2);
    memcpy(b2, b3, OFF_HEADER + 8 * first);
    memcpy(b2 + OFF_HEADER + 8 * first, b3 + OFF_HEADER + h3, len - OFF_HEADER - h3);
    tu_put_le32(b2 + 8, 2);
    tu_put_le32(b2 + 12, (uint32_t)(8 * first));
    fix_crc(b2, len2);
    ckpt_data d;
    if (read_bytes(fx->dir, "v2.bin", b2, len2, &d, 1))
        fail_msg("a version-2 file made as the document says is rejected");
    assert_int_equal(d.version, 2);
    assert_int_equal(d.train.data.n, 0);
    assert_int_equal(d.train.data.pixels_crc, 0);
    assert_int_equal(d.n_params, s.m.n_params);
    assert_memory_equal(d.params, s.m.params, s.m.n_params * sizeof(float));
    assert_memory_equal(d.adam_v, s.adam_v, s.m.n_params * sizeof(float));
    assert_int_equal(d.train.adam_t, s.t.adam_t);
    assert_memory_equal(&d.train.rng_noise, &s.t.rng_noise, sizeof d.train.rng_noise);
    ckpt_data_free(&d);
    /* Only the exact header size of each version is accepted. */
    tu_put_le32(b2 + 12, (uint32_t)h3);
    fix_crc(b2, len2);
    assert_int_equal(read_bytes(fx->dir, "v2h.bin", b2, len2, &d, 0), -1);
    for (int delta = -8; delta <= 8; delta += 16) {
        tu_put_le32(b3 + 12, (uint32_t)((long)h3 + delta));
        fix_crc(b3, len);
        assert_int_equal(read_bytes(fx->dir, "v3h.bin", b3, len, &d, 0), -1);
    }
    free(b2);
    free(b3);
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
            int rc = read_bytes(fx->dir, "fpx.bin", b, len, &d, 0);
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
        T(test_version_2_is_version_3_without_fingerprint),
        T(test_fingerprint_rules),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
