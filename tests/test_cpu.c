/* test_cpu.c - choosing OpenBLAS's kernels: the decision rule, cpuid
 * against the kernel's own view of the CPU, and what the process runs on. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

static void test_rank(void **state)
{
    (void)state;
    assert_int_equal(cpu_core_rank("SkylakeX"), 3);
    assert_int_equal(cpu_core_rank("Cooperlake"), 3);
    assert_int_equal(cpu_core_rank("SapphireRapids"), 3);
    assert_int_equal(cpu_core_rank("Haswell"), 2);
    assert_int_equal(cpu_core_rank("Zen"), 2);
    assert_int_equal(cpu_core_rank("Sandybridge"), 1);
    assert_int_equal(cpu_core_rank("Prescott"), 0);
    assert_int_equal(cpu_core_rank("Nehalem"), 0);
    assert_int_equal(cpu_core_rank(""), 0);
}

/* The rule of the issue: a detected core weaker than the CPU supports is
 * replaced by the best one; an equal or stronger one is left alone. */
static void test_core_to_force(void **state)
{
    (void)state;
    assert_string_equal(cpu_core_to_force("Prescott", "SkylakeX"), "SkylakeX");
    assert_string_equal(cpu_core_to_force("Haswell", "SkylakeX"), "SkylakeX");
    assert_string_equal(cpu_core_to_force("Sandybridge", "Haswell"), "Haswell");
    assert_string_equal(cpu_core_to_force("Nehalem", "Sandybridge"), "Sandybridge");
    assert_null(cpu_core_to_force("Cooperlake", "SkylakeX"));
    assert_null(cpu_core_to_force("SkylakeX", "SkylakeX"));
    assert_null(cpu_core_to_force("Zen", "Haswell"));
    assert_null(cpu_core_to_force("SkylakeX", "Haswell"));
    assert_null(cpu_core_to_force("Prescott", NULL));
}

/* cpuid agrees with the kernel's flags in /proc/cpuinfo. */
static void test_best_core_matches_cpuinfo(void **state)
{
    (void)state;
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        skip();
    char line[8192];
    int found = 0;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "flags", 5)) {
            found = 1;
            break;
        }
    fclose(fp);
    if (!found)
        skip();
    /* " name " with the flags line's spaces, so avx512f is not avx512fma. */
    char flags[8300];
    snprintf(flags, sizeof flags, " %s ", strchr(line, ':') + 1);
    char *nl = strchr(flags, '\n');
    if (nl)
        strcpy(nl, " ");
#define HAS(f) (strstr(flags, " " f " ") != NULL)
    const char *want = NULL;
    if (HAS("avx512f") && HAS("avx512cd") && HAS("avx512bw") && HAS("avx512dq") &&
        HAS("avx512vl") && HAS("avx2") && HAS("fma"))
        want = "SkylakeX";
    else if (HAS("avx2") && HAS("fma"))
        want = "Haswell";
    else if (HAS("avx"))
        want = "Sandybridge";
#undef HAS
    const char *got = cpu_best_core();
    printf("  cpuinfo says %s, cpuid says %s, OpenBLAS runs %s\n",
           want ? want : "(none)", got ? got : "(none)", cpu_openblas_core());
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

/* This process runs on kernels no weaker than the CPU supports, unless the
 * user chose otherwise (CTest runs us without a re-exec: the rule is what
 * vae itself applies; test_cli checks the binary). */
static void test_describe(void **state)
{
    (void)state;
    char buf[256];
    cpu_describe(buf, sizeof buf);
    printf("  %s\n", buf);
    assert_non_null(strstr(buf, cpu_openblas_core()));
    if (getenv("OPENBLAS_CORETYPE"))
        assert_non_null(strstr(buf, "set by the user"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_core_to_force),
        cmocka_unit_test(test_best_core_matches_cpuinfo),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
