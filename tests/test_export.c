/* test_export.c - the safetensors writer (src/io/export.c) and `vae export`.
 *
 * The writer: for an MLP, a conditional MLP, an MLP of two stochastic
 * layers and a conv VAE, the file is read
 * back and its header parsed as JSON (a small parser here, which rejects
 * anything that is not JSON): the header length and its padding, every
 * tensor's name, dtype and shape, offsets contiguous from 0 to the end of
 * the file, every parameter in exactly one tensor with its bytes
 * little-endian, and the metadata. The binary: a good export, and every
 * error path (missing or damaged checkpoint, -o over the checkpoint,
 * folders that do not exist or are not writable, a full disk) exits with
 * its status and a message, writes nothing and leaves no temp file.
 * PyTorch reading the file is tests/export_torch.py. */
#define _DEFAULT_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "export.h"
#include "testutil.h"
#include "cliutil.h"

/* ------------------------------------------------------------------------ */
/* A small JSON parser: objects (keys in file order), arrays, strings
 * (escapes kept as written: the header has none), numbers, true, false,
 * null. Any syntax error fails the test. */

typedef enum { J_OBJ, J_ARR, J_STR, J_NUM, J_LIT } jkind;

typedef struct jval {
    jkind kind;
    char *str;            /* J_STR; J_OBJ keys are in key[] */
    double num;           /* J_NUM */
    size_t n;             /* members of J_OBJ / J_ARR */
    char **key;
    struct jval **item;
} jval;

typedef struct jparser {
    const char *s;
    size_t i, len;
} jparser;

static void jfail(const jparser *p, const char *what)
{
    fail_msg("header is not JSON: %s at byte %zu: %.40s", what, p->i, p->s + p->i);
}

static void jspace(jparser *p)
{
    while (p->i < p->len && p->s[p->i] && strchr(" \t\r\n", p->s[p->i]))
        p->i++;
}

static char *jstring(jparser *p)
{
    if (p->i >= p->len || p->s[p->i] != '"')
        jfail(p, "expected a string");
    size_t start = ++p->i;
    while (p->i < p->len && p->s[p->i] != '"') {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c < 0x20)
            jfail(p, "control character in a string");
        p->i += c == '\\' ? 2 : 1;
    }
    if (p->i >= p->len)
        jfail(p, "unterminated string");
    char *out = strndup(p->s + start, p->i - start);
    assert_non_null(out);
    p->i++;
    return out;
}

static jval *jvalue(jparser *p);

static void jpush(jval *v, char *key, jval *item)
{
    v->key = realloc(v->key, (v->n + 1) * sizeof *v->key);
    v->item = realloc(v->item, (v->n + 1) * sizeof *v->item);
    assert_true(v->key && v->item);
    v->key[v->n] = key;
    v->item[v->n++] = item;
}

static jval *jvalue(jparser *p)
{
    jspace(p);
    if (p->i >= p->len)
        jfail(p, "unexpected end");
    jval *v = calloc(1, sizeof *v);
    assert_non_null(v);
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        v->kind = c == '{' ? J_OBJ : J_ARR;
        char close = c == '{' ? '}' : ']';
        p->i++;
        jspace(p);
        if (p->i < p->len && p->s[p->i] == close) {
            p->i++;
            return v;
        }
        for (;;) {
            char *key = NULL;
            if (v->kind == J_OBJ) {
                jspace(p);
                key = jstring(p);
                jspace(p);
                if (p->i >= p->len || p->s[p->i++] != ':')
                    jfail(p, "expected ':'");
            }
            jpush(v, key, jvalue(p));
            jspace(p);
            if (p->i < p->len && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->len && p->s[p->i] == close) {
                p->i++;
                return v;
            }
            jfail(p, "expected ',' or the closing bracket");
        }
    }
    if (c == '"') {
        v->kind = J_STR;
        v->str = jstring(p);
        return v;
    }
    static const char *const lits[3] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++)
        if (!strncmp(p->s + p->i, lits[k], strlen(lits[k]))) {
            v->kind = J_LIT;
            p->i += strlen(lits[k]);
            return v;
        }
    /* A number: -? digits (. digits)? (e sign? digits)? */
    size_t start = p->i;
    if (p->s[p->i] == '-')
        p->i++;
    if (p->i >= p->len || p->s[p->i] < '0' || p->s[p->i] > '9')
        jfail(p, "expected a value");
    if (p->s[p->i] == '0' && p->i + 1 < p->len && p->s[p->i + 1] >= '0' &&
        p->s[p->i + 1] <= '9')
        jfail(p, "leading zero");
    char *end;
    v->kind = J_NUM;
    v->num = strtod(p->s + start, &end);
    p->i = (size_t)(end - p->s);
    return v;
}

static jval *json_parse(const char *s, size_t len)
{
    jparser p = {s, 0, len};
    jval *v = jvalue(&p);
    jspace(&p);
    if (p.i != len)
        jfail(&p, "trailing bytes");
    return v;
}

static void json_free(jval *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->key ? v->key[i] : NULL);
        json_free(v->item[i]);
    }
    free(v->key);
    free(v->item);
    free(v->str);
    free(v);
}

static const jval *jget(const jval *obj, const char *key)
{
    assert_int_equal(obj->kind, J_OBJ);
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->key[i], key))
            return obj->item[i];
    return NULL;
}

/* An unsigned integer member of an array. */
static size_t jsize(const jval *arr, size_t i)
{
    assert_int_equal(arr->kind, J_ARR);
    assert_true(i < arr->n);
    const jval *v = arr->item[i];
    assert_int_equal(v->kind, J_NUM);
    assert_true(v->num >= 0 && v->num == (double)(size_t)v->num);
    return (size_t)v->num;
}

static const char *jmeta(const jval *meta, const char *key)
{
    const jval *v = jget(meta, key);
    if (!v)
        fail_msg("metadata has no \"%s\"", key);
    assert_int_equal(v->kind, J_STR);
    return v->str;
}

/* ------------------------------------------------------------------------ */
/* Reading a file back                                                      */

/* The file at path, checked against model m: returns the parsed header
 * (caller frees) after checking the layout, every tensor against
 * export_tensors, and every parameter covered once with its exact bytes. */
static jval *check_file(const char *path, const model_net *m, const export_info *info)
{
    size_t size;
    unsigned char *b = tu_read_file(path, &size);
    assert_true(size >= 8);
    uint64_t len = tu_get_le64(b);
    assert_true(8 + len <= size);
    assert_int_equal((8 + len) % 8, 0); /* the data starts 8-byte aligned */
    assert_int_equal(b[8], '{');
    jval *h = json_parse((const char *)b + 8, (size_t)len);
    assert_int_equal(h->kind, J_OBJ);
    const unsigned char *bytes = b + 8 + len;
    size_t data_len = size - 8 - (size_t)len;

    export_tensor t[EXPORT_MAX_TENSORS];
    size_t n = export_tensors(m, info, t);
    assert_int_equal(h->n, n + 1);
    assert_string_equal(h->key[0], "__metadata__");
    unsigned char *covered = calloc(m->n_params, 1);
    assert_non_null(covered);
    size_t at = 0, floats = 0;
    for (size_t i = 0; i < n; i++) {
        const jval *e = h->item[i + 1];
        assert_string_equal(h->key[i + 1], t[i].name); /* the header's order */
        assert_int_equal(e->n, 3);
        const jval *dtype = jget(e, "dtype"), *shape = jget(e, "shape"),
                   *offs = jget(e, "data_offsets");
        assert_true(dtype && shape && offs);
        size_t width = t[i].dtype == EXPORT_I64 ? 8 : 4, count = 1;
        assert_string_equal(dtype->str, t[i].dtype == EXPORT_I64 ? "I64" : "F32");
        assert_int_equal(shape->n, t[i].ndim);
        for (size_t d = 0; d < shape->n; d++) {
            assert_int_equal(jsize(shape, d), t[i].shape[d]);
            count *= jsize(shape, d);
        }
        /* Contiguous, in order, in range, the size the shape says. */
        assert_int_equal(offs->n, 2);
        assert_int_equal(jsize(offs, 0), at);
        assert_int_equal(jsize(offs, 1), at + count * width);
        assert_true(jsize(offs, 1) <= data_len);
        const unsigned char *p = bytes + at;
        if (t[i].dtype == EXPORT_I64) {
            assert_int_equal(count, 1);
            assert_int_equal(tu_get_le64(p), (uint64_t)t[i].value);
        } else {
            for (size_t k = 0; k < count; k++) {
                uint32_t want;
                memcpy(&want, &m->params[t[i].off + k], 4);
                assert_int_equal(tu_get_le32(p + 4 * k), want);
                assert_int_equal(covered[t[i].off + k]++, 0);
            }
            floats += count;
        }
        at += count * width;
    }
    assert_int_equal(at, data_len); /* nothing after the last tensor */
    assert_int_equal(floats, m->n_params);
    free(covered);
    free(b);
    return h;
}

/* An entry's shape as "a,b,c". */
static void shape_of(const jval *h, const char *name, char *out, size_t size)
{
    const jval *e = jget(h, name);
    if (!e)
        fail_msg("no tensor %s", name);
    const jval *s = jget(e, "shape");
    size_t len = 0;
    out[0] = '\0';
    for (size_t d = 0; d < s->n && len < size; d++)
        len += (size_t)snprintf(out + len, size - len, "%s%zu", d ? "," : "", jsize(s, d));
}

static void assert_shape(const jval *h, const char *name, const char *want)
{
    char got[64];
    shape_of(h, name, got, sizeof got);
    if (strcmp(got, want))
        fail_msg("%s: shape [%s], expected [%s]", name, got, want);
}

/* A model of cfg with seeded parameters (the BatchNorm's running averages
 * made unlike their starting values, so their places are checked too). */
static void make_model(model_net *m, const model_config *cfg)
{
    err_msg err;
    if (model_init(m, cfg, &err))
        fail_msg("%s", err.text);
    rng_state r;
    rng_seed(&r, 7);
    model_init_params(m, &r);
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i] == 1.0f || m->params[i] == 0.0f)
            m->params[i] = 0.5f + 0.001f * (float)(i % 97);
}

static const char *const META_KEYS[] = {"binarize"}, *const META_VALUES[] = {"dynamic"};
static const export_info INFO = {"9.9.9", 3, 42, META_KEYS, META_VALUES, 1};

static jval *export_and_check(const model_net *m, const char *name)
{
    char path[160];
    tu_join(path, sizeof path, dir, name);
    err_msg err;
    if (export_write(path, m, &INFO, &err))
        fail_msg("%s", err.text);
    return check_file(path, m, &INFO);
}

/* ------------------------------------------------------------------------ */
/* The writer                                                               */

static void test_mlp_file(void **state)
{
    (void)state;
    model_config cfg = {784, 2, {64, 32}, 6, MODEL_ACT_TANH, MODEL_LIK_BERNOULLI, 0, MODEL_ARCH_MLP};
    model_net m;
    make_model(&m, &cfg);
    jval *h = export_and_check(&m, "mlp.safetensors");
    assert_int_equal(h->n, 1 + 12);
    assert_shape(h, "encoder.0.weight", "64,784");
    assert_shape(h, "encoder.2.weight", "32,64");
    assert_shape(h, "head.weight", "12,32");
    assert_shape(h, "head.bias", "12");
    assert_shape(h, "decoder.0.weight", "32,6");
    assert_shape(h, "decoder.2.weight", "64,32");
    assert_shape(h, "decoder.4.weight", "784,64");
    assert_shape(h, "decoder.4.bias", "784");
    const jval *meta = jget(h, "__metadata__");
    assert_string_equal(jmeta(meta, "format"), "pt");
    assert_string_equal(jmeta(meta, "vae_export"), "1");
    assert_string_equal(jmeta(meta, "vae_version"), "9.9.9");
    assert_string_equal(jmeta(meta, "arch"), "mlp");
    assert_string_equal(jmeta(meta, "x_dim"), "784");
    assert_string_equal(jmeta(meta, "hidden"), "64,32");
    assert_string_equal(jmeta(meta, "latent"), "6");
    assert_string_equal(jmeta(meta, "activation"), "tanh");
    assert_string_equal(jmeta(meta, "likelihood"), "bernoulli");
    assert_string_equal(jmeta(meta, "n_classes"), "0");
    assert_string_equal(jmeta(meta, "epochs"), "3");
    assert_string_equal(jmeta(meta, "binarize"), "dynamic");
    assert_string_equal(jmeta(meta, "height"), "28");
    assert_string_equal(jmeta(meta, "width"), "28");
    assert_string_equal(jmeta(meta, "channels"), "1");
    assert_null(jget(meta, "pad_top"));
    /* One stochastic layer: neither of the two-layer keys. */
    assert_null(jget(meta, "latent2"));
    assert_null(jget(meta, "hidden2"));
    json_free(h);

    /* export_header agrees with the file, and its length is padded. */
    char *json;
    size_t len, data_len;
    err_msg err;
    assert_int_equal(export_header(&m, &INFO, &json, &len, &data_len, &err), 0);
    assert_int_equal((8 + len) % 8, 0);
    assert_int_equal(data_len, 4 * m.n_params);
    assert_int_equal(json[len], '\0');
    free(json);
    model_free(&m);
}

static void test_conditional_file(void **state)
{
    (void)state;
    model_config cfg = {784, 1, {48}, 4, MODEL_ACT_LEAKY, MODEL_LIK_CB, 10, MODEL_ARCH_MLP};
    model_net m;
    make_model(&m, &cfg);
    jval *h = export_and_check(&m, "cvae.safetensors");
    assert_shape(h, "encoder.0.weight", "48,794"); /* the one-hot label's columns last */
    assert_shape(h, "decoder.0.weight", "48,14");
    assert_shape(h, "decoder.2.weight", "784,48");
    assert_shape(h, "prior.0.weight", "48,10");
    assert_shape(h, "prior.2.weight", "8,48");
    assert_shape(h, "prior.2.bias", "8");
    const jval *meta = jget(h, "__metadata__");
    assert_string_equal(jmeta(meta, "n_classes"), "10");
    assert_string_equal(jmeta(meta, "likelihood"), "cb");
    assert_string_equal(jmeta(meta, "activation"), "leaky");
    json_free(h);
    model_free(&m);
}

/* Two stochastic layers: q(h2|h1) as encoder2 and head2, p(h1|h2) as
 * decoder2 (its last Linear the head of h1), after the one-layer model's
 * tensors; widths 16, 8 so the mirrored p(h1|h2) shows its order. */
static void test_two_layer_file(void **state)
{
    (void)state;
    model_config cfg = {.x_dim = 784, .n_hidden = 2, .hidden = {64, 32}, .z_dim = 6,
                      .act = MODEL_ACT_TANH, .likelihood = MODEL_LIK_BERNOULLI,
                      .arch = MODEL_ARCH_MLP, .z2_dim = 3, .n_hidden2 = 2, .hidden2 = {16, 8}};
    model_net m;
    make_model(&m, &cfg);
    jval *h = export_and_check(&m, "two.safetensors");
    /* The one-layer model's 12, then 3 + 3 Linears of two tensors each. */
    assert_int_equal(h->n, 1 + 12 + 12);
    static const char *const order[] = {
        "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
        "head.weight", "head.bias", "decoder.0.weight", "decoder.0.bias",
        "decoder.2.weight", "decoder.2.bias", "decoder.4.weight", "decoder.4.bias",
        "encoder2.0.weight", "encoder2.0.bias", "encoder2.2.weight", "encoder2.2.bias",
        "head2.weight", "head2.bias", "decoder2.0.weight", "decoder2.0.bias",
        "decoder2.2.weight", "decoder2.2.bias", "decoder2.4.weight", "decoder2.4.bias"};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++)
        assert_string_equal(h->key[i + 1], order[i]);
    assert_shape(h, "head.weight", "12,32");
    assert_shape(h, "decoder.0.weight", "32,6");
    assert_shape(h, "decoder.4.weight", "784,64");
    assert_shape(h, "encoder2.0.weight", "16,6"); /* from h1 */
    assert_shape(h, "encoder2.0.bias", "16");
    assert_shape(h, "encoder2.2.weight", "8,16");
    assert_shape(h, "head2.weight", "6,8"); /* [mu2 | logvar2] */
    assert_shape(h, "head2.bias", "6");
    assert_shape(h, "decoder2.0.weight", "8,3"); /* from h2, widths reversed */
    assert_shape(h, "decoder2.2.weight", "16,8");
    assert_shape(h, "decoder2.2.bias", "16");
    assert_shape(h, "decoder2.4.weight", "12,16"); /* [mu | logvar] of h1 */
    assert_shape(h, "decoder2.4.bias", "12");
    assert_null(jget(h, "prior.0.weight"));
    const jval *meta = jget(h, "__metadata__");
    assert_string_equal(jmeta(meta, "arch"), "mlp");
    assert_string_equal(jmeta(meta, "hidden"), "64,32");
    assert_string_equal(jmeta(meta, "latent"), "6");
    assert_string_equal(jmeta(meta, "latent2"), "3");
    assert_string_equal(jmeta(meta, "hidden2"), "16,8");
    assert_string_equal(jmeta(meta, "n_classes"), "0");
    /* In the documented order: latent, latent2, hidden2, activation. */
    for (size_t i = 0; i + 3 < meta->n; i++)
        if (!strcmp(meta->key[i], "latent")) {
            assert_string_equal(meta->key[i + 1], "latent2");
            assert_string_equal(meta->key[i + 2], "hidden2");
            assert_string_equal(meta->key[i + 3], "activation");
        }
    json_free(h);
    model_free(&m);
}

/* EXPORT_MAX_TENSORS holds the largest model of each kind: the MLP of two
 * stochastic layers with MODEL_MAX_HIDDEN hidden layers in each network, the
 * conditional MLP, and the conv VAE of MODEL_MAX_HIDDEN blocks. */
static void test_tensor_bound(void **state)
{
    (void)state;
    model_config two = {.x_dim = 784, .n_hidden = MODEL_MAX_HIDDEN, .hidden = {8, 8, 8, 8},
                      .z_dim = 4, .arch = MODEL_ARCH_MLP, .z2_dim = 2,
                      .n_hidden2 = MODEL_MAX_HIDDEN, .hidden2 = {4, 4, 4, 4}};
    model_config cond = {.x_dim = 784, .n_hidden = MODEL_MAX_HIDDEN, .hidden = {8, 8, 8, 8},
                       .z_dim = 4, .arch = MODEL_ARCH_MLP, .n_classes = 10};
    model_config conv = {.x_dim = 784, .n_hidden = MODEL_MAX_HIDDEN, .hidden = {2, 2, 2, 2},
                       .z_dim = 4, .act = MODEL_ACT_LEAKY, .arch = MODEL_ARCH_CONV};
    const model_config *cfgs[3] = {&two, &cond, &conv};
    static const char *const what[3] = {"two stochastic layers", "conditional", "conv"};
    /* Four networks of 5 Linears; 2 x 4 + 4 Linears; 2 x 4 - 1 blocks of
     * 7 tensors, the last block's 2 and two Linears. */
    const size_t want[3] = {4 * 2 * (MODEL_MAX_HIDDEN + 1), 2 * (2 * MODEL_MAX_HIDDEN + 4),
                            7 * (2 * MODEL_MAX_HIDDEN - 1) + 2 + 4};
    for (size_t k = 0; k < 3; k++) {
        model_net m;
        err_msg err;
        if (model_layout(&m, cfgs[k], &err))
            fail_msg("%s", err.text);
        export_tensor t[EXPORT_MAX_TENSORS];
        size_t n = export_tensors(&m, &INFO, t);
        printf("  %s: %zu tensors (bound %d)\n", what[k], n, EXPORT_MAX_TENSORS);
        assert_int_equal(n, want[k]);
        assert_true(n <= EXPORT_MAX_TENSORS);
    }
}

static void test_conv_file(void **state)
{
    (void)state;
    model_config cfg = {784, 3, {4, 8, 16}, 5, MODEL_ACT_LEAKY, MODEL_LIK_GAUSSIAN, 0,
                      MODEL_ARCH_CONV};
    model_net m;
    make_model(&m, &cfg);
    jval *h = export_and_check(&m, "conv.safetensors");
    /* 3 encoder blocks of 7 tensors, 2 Linears, 2 decoder blocks of 7 and
     * a bare last one. */
    assert_int_equal(h->n, 1 + 3 * 7 + 4 + 2 * 7 + 2);
    assert_shape(h, "encoder.0.weight", "4,1,4,4");
    assert_shape(h, "encoder.2.running_var", "4");
    assert_shape(h, "encoder.2.num_batches_tracked", "");
    assert_shape(h, "encoder.8.weight", "16");
    assert_shape(h, "encoder.6.weight", "16,8,4,4");
    assert_shape(h, "head.weight", "10,256");
    assert_shape(h, "decoder_input.weight", "256,5");
    assert_shape(h, "decoder.0.weight", "16,8,4,4"); /* ConvTranspose2d: cin x cout */
    assert_shape(h, "decoder.5.running_mean", "4");
    assert_shape(h, "decoder.6.weight", "4,1,4,4");
    assert_shape(h, "decoder.6.bias", "1");
    assert_null(jget(h, "decoder.8.weight"));
    const jval *e = jget(h, "decoder.2.num_batches_tracked");
    assert_non_null(e);
    assert_string_equal(jget(e, "dtype")->str, "I64");
    const jval *meta = jget(h, "__metadata__");
    assert_string_equal(jmeta(meta, "arch"), "conv");
    assert_string_equal(jmeta(meta, "hidden"), "4,8,16");
    assert_string_equal(jmeta(meta, "height"), "28");
    assert_string_equal(jmeta(meta, "channels"), "1");
    assert_string_equal(jmeta(meta, "pad_top"), "2");
    assert_string_equal(jmeta(meta, "pad_left"), "2");
    json_free(h);
    model_free(&m);
}

static void test_parser_accepts_json(void **state)
{
    (void)state;
    /* The parser itself, on JSON the header does not use. */
    const char *good = "{\"a\":[1,-2.5e3,{}],\"b\":\"x\\\"y\",\"c\":null}   ";
    json_free(json_parse(good, strlen(good)));
}

/* ------------------------------------------------------------------------ */
/* The binary                                                               */

static char model[160]; /* a small trained model: --hidden 32 --latent 2 */

static int group_setup(void **state)
{
    (void)state;
    if (cli_setup("vae-test-export"))
        return -1;
    snprintf(model, sizeof model, "%s/model.bin", dir);
    char out[160];
    snprintf(out, sizeof out, "%s/model-out", dir);
    if (run("train", "--data", data, "--ckpt", model, "--out", out, "--epochs", "1",
            "--batch", "50", "--hidden", "32", "--latent", "2", "--threads", "2",
            NULL) != 0) {
        fprintf(stderr, "test_export: training the model failed:\n%s", err_text);
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

static void test_cli_export(void **state)
{
    (void)state;
    char st[160];
    in_dir(st, sizeof st, "cli.safetensors");
    tu_write_file(st, "an older export", 15);
    assert_exit(run("export", "--ckpt", model, "-o", st, NULL), 0);
    tu_assert_contains(out_text, "wrote");
    tu_assert_contains(out_text, "8 tensors");
    /* The file is the model's, read back from the checkpoint. */
    model_net m;
    ckpt_train t;
    err_msg err;
    if (ckpt_load_model(model, &m, &t, &err))
        fail_msg("%s", err.text);
    export_info info = {"", t.epoch, t.adam_t, NULL, NULL, 0};
    jval *h = check_file(st, &m, &info);
    const jval *meta = jget(h, "__metadata__");
    assert_string_equal(jmeta(meta, "hidden"), "32");
    assert_string_equal(jmeta(meta, "epochs"), "1");
    tu_assert_contains(jmeta(meta, "vae_version"), ".");
    json_free(h);
    model_free(&m);
}

/* A model of two stochastic layers, trained and exported by the binary:
 * every parameter in the file, the two-layer tensors and metadata. */
static void test_cli_export_two_layers(void **state)
{
    (void)state;
    char ckpt[160], out[160], st[160];
    in_dir(ckpt, sizeof ckpt, "two.bin");
    in_dir(out, sizeof out, "two-out");
    in_dir(st, sizeof st, "two-cli.safetensors");
    assert_exit(run("train", "--data", data, "--ckpt", ckpt, "--out", out, "--epochs", "1",
                    "--batch", "50", "--hidden", "32/8", "--latent", "4,2", "--threads", "2",
                    NULL), 0);
    assert_exit(run("export", "--ckpt", ckpt, "-o", st, NULL), 0);
    tu_assert_contains(out_text, "16 tensors"); /* 8, then q(h2|h1)'s and p(h1|h2)'s 8 */
    model_net m;
    ckpt_train t;
    err_msg err;
    if (ckpt_load_model(ckpt, &m, &t, &err))
        fail_msg("%s", err.text);
    export_info info = {"", t.epoch, t.adam_t, NULL, NULL, 0};
    jval *h = check_file(st, &m, &info);
    assert_shape(h, "encoder2.0.weight", "8,4");
    assert_shape(h, "head2.weight", "4,8");
    assert_shape(h, "decoder2.0.weight", "8,2");
    assert_shape(h, "decoder2.2.weight", "8,8");
    const jval *meta = jget(h, "__metadata__");
    assert_string_equal(jmeta(meta, "hidden"), "32");
    assert_string_equal(jmeta(meta, "latent"), "4");
    assert_string_equal(jmeta(meta, "latent2"), "2");
    assert_string_equal(jmeta(meta, "hidden2"), "8");
    json_free(h);
    model_free(&m);
}

/* Asserts that nothing named like a temp file is left in folder. */
static void assert_no_temp(const char *folder)
{
    char hidden[256];
    tu_count_entries(folder, hidden, sizeof hidden);
    assert_string_equal(hidden, "");
}

static void expect_error(int want_rc, const char *ckpt, const char *out, const char *msg)
{
    assert_exit(run("export", "--ckpt", ckpt, "-o", out, NULL), want_rc);
    tu_assert_contains(err_text, msg);
    assert_string_equal(out_text, "");
    printf("  exit %d: %s", want_rc, err_text);
}


static void test_cli_errors(void **state)
{
    (void)state;
    char path[256], st[160], bad[160];
    in_dir(st, sizeof st, "never.safetensors");

    /* The checkpoint: missing, not a checkpoint, a folder. */
    in_dir(bad, sizeof bad, "missing.bin");
    expect_error(1, bad, st, "missing.bin: No such file");
    in_dir(bad, sizeof bad, "text.bin");
    tu_write_file(bad, "not weights\n", 12);
    expect_error(1, bad, st, "not a vae checkpoint");
    assert_false(tu_exists(st));

    /* -o over the checkpoint, by its name and through a link: a usage
     * error, the checkpoint untouched. */
    size_t n;
    unsigned char *before = tu_read_file(model, &n);
    expect_error(2, model, model, "would write over --ckpt");
    in_dir(path, sizeof path, "link-to-model.bin");
    assert_int_equal(symlink(model, path), 0);
    expect_error(2, model, path, "(they are the same file)");
    tu_assert_file_equals(model, before, n);
    free(before);

    /* Folders that cannot take the file. */
    in_dir(path, sizeof path, "no-such-folder/x.safetensors");
    expect_error(1, model, path, "no-such-folder does not exist");
    tu_join(path, sizeof path, model, "x.safetensors");
    expect_error(1, model, path, "is not a folder");
    expect_error(2, model, dir, "is a folder");
    expect_error(1, model, "/dev/full", "cannot write /dev/full: No space left on device");

    /* A folder this user may not write: 0555, and as nobody when root
     * (from a copy of the binary and the checkpoint that nobody can reach). */
    char ro[160], bin_copy[160], ckpt_copy[160];
    in_dir(ro, sizeof ro, "read-only");
    assert_int_equal(mkdir(ro, 0755), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    in_dir(bin_copy, sizeof bin_copy, "vae-copy");
    unsigned char *b = tu_read_file(vae_bin, &n);
    tu_write_file(bin_copy, b, n);
    free(b);
    assert_int_equal(chmod(bin_copy, 0755), 0);
    in_dir(ckpt_copy, sizeof ckpt_copy, "world-readable.bin");
    b = tu_read_file(model, &n);
    tu_write_file(ckpt_copy, b, n);
    free(b);
    assert_int_equal(chmod(ckpt_copy, 0644), 0);
    const char *real_bin = vae_bin;
    vae_bin = bin_copy;
    tu_join(path, sizeof path, ro, "x.safetensors");
    assert_exit(run_with(drop_root, "export", "--ckpt", ckpt_copy, "-o", path, NULL), 1);
    tu_assert_contains(err_text, "read-only is not writable");
    vae_bin = real_bin;
    assert_false(tu_exists(path));

    /* The disk fills while the file is written: the old file stays whole. */
    in_dir(path, sizeof path, "keep.safetensors");
    tu_write_file(path, "old export", 10);
    *cli_fsize_limit() = 10000;
    assert_exit(run_with(limit_file_size, "export", "--ckpt", model, "-o", path, NULL), 1);
    tu_assert_contains(err_text, "File too large");
    tu_assert_file_equals(path, "old export", 10);

    /* Usage errors. */
    assert_exit(run("export", "--ckpt", model, "--n", "3", NULL), 2);
    tu_assert_contains(err_text, "unknown option '--n'");
    assert_exit(run("export", "--ckpt", model, "-o", NULL), 2);

    assert_false(tu_exists(st));
    assert_no_temp(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_accepts_json),
        cmocka_unit_test(test_mlp_file),
        cmocka_unit_test(test_conditional_file),
        cmocka_unit_test(test_two_layer_file),
        cmocka_unit_test(test_tensor_bound),
        cmocka_unit_test(test_conv_file),
        cmocka_unit_test(test_cli_export),
        cmocka_unit_test(test_cli_export_two_layers),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
