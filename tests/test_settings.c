/* test_settings.c - the table of a run's settings (train/settings.h): every
 * row complete, its default inside what its option takes, parsing at and
 * past each end of its range, a checkpoint field each (none shared, each in
 * a format version that has it), bits round-tripped, and the settings a
 * schedule does not use normalized. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_fields.h"
#include "settings.h"

/* Every row says what the table promises; the defaults parse back. */
static void test_rows_complete(void **state)
{
    (void)state;
    run_settings def = settings_defaults();
    int seen_field[H_COUNT] = {0};
    for (int i = 0; i < SETTING_COUNT; i++) {
        const setting_row *r = &SETTINGS[i];
        if (!r->key || !r->label || !r->help || !r->group)
            fail_msg("row %d lacks a key, label, help or group", i);
        if (r->field < H_SEED || r->field >= H_COUNT || seen_field[r->field]++)
            fail_msg("%s: checkpoint field %u is not a setting's own", r->key, r->field);
        unsigned count = r->since == 2 ? H_COUNT_V2 : r->since == 3 ? H_COUNT_V3
                         : r->since == 4 ? H_COUNT_V4 : H_COUNT;
        if (r->since < CKPT_VERSION_MIN || r->since > CKPT_VERSION || r->field >= count)
            fail_msg("%s: field %u is not in version %u's header", r->key, r->field,
                     r->since);
        if (r->type == SETTING_ENUM && (!r->names || r->names->n < 2))
            fail_msg("%s: an enum without names", r->key);
        for (int j = 0; j < i; j++)
            if (!strcmp(SETTINGS[j].key, r->key) || !strcmp(SETTINGS[j].label, r->label) ||
                (r->option && SETTINGS[j].option && !strcmp(SETTINGS[j].option, r->option)))
                fail_msg("%s and %s share a key, label or option", SETTINGS[j].key, r->key);
        if (!r->option)
            continue;
        /* The default, written out, parses back to itself. */
        char text[64];
        run_settings s = settings_defaults();
        err_msg err;
        settings_format(&def, (setting_id)i, 0, text, sizeof text);
        if (r->type == SETTING_REAL) /* %g rounds: give every digit */
            snprintf(text, sizeof text, "%.17g", r->def);
        if (settings_parse(&s, (setting_id)i, text, &err))
            fail_msg("%s: its default '%s' is refused: %s", r->key, text, err.text);
        assert_false(settings_differ(&s, &def, (setting_id)i));
    }
    assert_true(def.sched.lr == 1e-3 && def.batch == 128 && def.seed == 1 &&
                def.adam_beta2 == 0.999 && def.draws == 1);
}

/* Parses text into a fresh setting id: 0, or -1 with the message checked. */
static int parse(setting_id id, const char *text, const char *want_msg)
{
    run_settings s = settings_defaults();
    err_msg err = {{0}};
    int rc = settings_parse(&s, id, text, &err);
    if (rc && (!strstr(err.text, SETTINGS[id].option) || !strstr(err.text, want_msg)))
        fail_msg("%s %s: '%s' names no option or lacks '%s'", SETTINGS[id].option, text,
                 err.text, want_msg);
    return rc;
}

/* Each range's ends: inside at an end that belongs, refused past it. */
static void test_ranges(void **state)
{
    (void)state;
    for (int i = 0; i < SETTING_COUNT; i++) {
        const setting_row *r = &SETTINGS[i];
        if (!r->option)
            continue;
        char t[64];
        setting_id id = (setting_id)i;
        switch (r->type) {
        case SETTING_UINT:
            snprintf(t, sizeof t, "%llu", (unsigned long long)r->min);
            assert_int_equal(parse(id, t, ""), 0);
            snprintf(t, sizeof t, "%llu", (unsigned long long)r->max);
            assert_int_equal(parse(id, t, ""), 0);
            if (r->min > 0) {
                snprintf(t, sizeof t, "%llu", (unsigned long long)r->min - 1);
                assert_int_equal(parse(id, t, "must be at least"), -1);
            }
            if (r->max < UINT64_MAX) {
                snprintf(t, sizeof t, "%llu", (unsigned long long)r->max + 1);
                assert_int_equal(parse(id, t, "too large"), -1);
            } else {
                assert_int_equal(parse(id, "18446744073709551616", "below 2^64"), -1);
            }
            assert_int_equal(parse(id, "-1", "not a whole number"), -1);
            assert_int_equal(parse(id, "1.5", "not a whole number"), -1);
            break;
        case SETTING_REAL:
            snprintf(t, sizeof t, "%.17g", r->lo);
            assert_int_equal(parse(id, t, r->lo_in ? "" : "above"), r->lo_in ? 0 : -1);
            snprintf(t, sizeof t, "%.17g", r->hi);
            assert_int_equal(parse(id, t, r->hi_in ? "" : "below"), r->hi_in ? 0 : -1);
            snprintf(t, sizeof t, "%.17g", r->hi * 1.5 + 1);
            assert_int_equal(parse(id, t, ""), -1);
            assert_int_equal(parse(id, "nan", "not a number"), -1);
            assert_int_equal(parse(id, "1e999", "not a number"), -1);
            break;
        case SETTING_ENUM:
            for (size_t k = 0; k < r->names->n; k++)
                assert_int_equal(parse(id, r->names->names[k], ""), 0);
            assert_int_equal(parse(id, "bogus", "is not"), -1);
            break;
        }
    }
}

/* Bits in and out; an enum's value past its names is no value. */
static void test_bits(void **state)
{
    (void)state;
    run_settings s = settings_defaults(), t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < SETTING_COUNT; i++) {
        assert_int_equal(settings_from_bits(&t, (setting_id)i,
                                            settings_bits(&s, (setting_id)i)), 0);
        assert_false(settings_differ(&s, &t, (setting_id)i));
        if (SETTINGS[i].type == SETTING_ENUM)
            assert_int_equal(settings_from_bits(&t, (setting_id)i, SETTINGS[i].names->n), -1);
    }
    /* A real compares as a number: -0 is 0. */
    s.beta = 0.0, t.beta = -0.0;
    assert_false(settings_differ(&s, &t, SETTING_BETA));
}

/* What a schedule does not use holds its unused value; the rest stays. */
static void test_normalize(void **state)
{
    (void)state;
    run_settings s = settings_defaults();
    s.sched.warmup = 4, s.sched.horizon = 9, s.sched.every = 3, s.sched.gamma = 0.5;
    run_settings step = s, cosine = s;
    step.sched.kind = SCHEDULE_STEP;
    cosine.sched.kind = SCHEDULE_COSINE;
    settings_normalize(&s);
    settings_normalize(&step);
    settings_normalize(&cosine);
    assert_true(s.sched.warmup == 0 && s.sched.horizon == 0 && s.sched.every == 0 &&
                s.sched.gamma == 1.0);
    assert_true(step.sched.every == 3 && step.sched.gamma == 0.5 && step.sched.warmup == 0);
    assert_true(cosine.sched.warmup == 4 && cosine.sched.horizon == 9 &&
                cosine.sched.every == 0);
    err_msg err;
    assert_int_equal(schedule_check(&s.sched, &err), 0);
    assert_int_equal(schedule_check(&step.sched, &err), 0);
    assert_int_equal(schedule_check(&cosine.sched, &err), 0);
    /* Shown as its row says: "label value unit", only those in use. */
    char text[1024];
    settings_describe(&cosine, 0, SETTING_COUNT - 1, text, sizeof text);
    if (!strstr(text, "batch 128 images") || !strstr(text, "rate warm-up 4 epochs") ||
        strstr(text, "decay every") || strstr(text, "held out"))
        fail_msg("described as: %s", text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_complete),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_bits),
        cmocka_unit_test(test_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
