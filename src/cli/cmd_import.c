/* cmd_import.c - vae import: a folder of PNG and JPEG images into the IDX
 * files the other commands read (see src/io/import.h, docs/import.md and
 * src/cli/cli.h). */
#define _DEFAULT_SOURCE /* realpath */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "import.h"

/* A broken image skipped with --skip-broken, said as it is skipped. */
static void warn_skip(void *ctx, const char *msg)
{
    (void)ctx;
    say_error("warning: skipping %s", msg);
}

/* The length of the well-formed UTF-8 sequence at s (1 to 4 bytes), or 0:
 * a stray byte, an overlong form, a surrogate, above U+10FFFF, cut short. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (n == 0 || s[0] > 0xf4 || s[0] == 0xc0 || s[0] == 0xc1)
        return 0;
    uint32_t cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* the terminating NUL stops here too */
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* s as JSON text: backslash and quote escaped, control bytes as \u00XX,
 * bytes that are not UTF-8 (a file name is any bytes) as U+FFFD. */
static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", stdout);
            p++;
        } else if (*p == '"' || *p == '\\') {
            printf("\\%c", *p++);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p++);
        } else {
            fwrite(p, 1, n, stdout);
            p += n;
        }
    }
    putchar('"');
}

/* path made absolute into out (size bytes): realpath() of its longest
 * leading part that exists, the rest appended as written (a data set's
 * folder need not exist yet). Returns 0, or -1 when it does not fit. */
static int absolute(const char *path, char *out, size_t size)
{
    char head[PATH_MAX], real[PATH_MAX];
    if (snprintf(head, sizeof head, "%s", path) >= (int)sizeof head)
        return -1;
    size_t cut = strlen(head); /* head is path's first cut bytes */
    while (!realpath(cut ? head : ".", real)) {
        char *slash = strrchr(head, '/');
        if (!slash) { /* no part of a relative path exists: from "." */
            cut = 0;
        } else if (slash == head) { /* "/x...": from the root */
            head[1] = '\0';
            cut = 1;
        } else {
            *slash = '\0';
            cut = (size_t)(slash - head);
        }
    }
    int n = snprintf(out, size, cut ? "%s%s" : "%s/%s", real, path + cut);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int cmd_import(cli_opts *o)
{
    if (!o->operand) {
        usage_error("the folder of images is missing: vae import DIR -o OUT");
        return EXIT_USAGE;
    }
    if (!o->output) {
        usage_error("-o OUT is required: the folder to write the data set to");
        return EXIT_USAGE;
    }
    import_opts io = import_defaults();
    io.channels = o->channels;
    io.background = (uint8_t)o->background;
    io.width = o->size_w;
    io.height = o->size_h;
    io.test_fraction = o->test_fraction;
    io.seed = o->run.set.seed;
    io.skip_broken = o->set[O_SKIP_BROKEN];
    io.force = o->set[O_FORCE];
    io.max_pixels = o->max_pixels;
    io.warn = warn_skip;

    err_msg err;
    /* The folder of images itself as the data set's folder: a swap would
     * carry its class folders over, which it cannot. A folder inside it
     * would be read as a class folder by the next import of DIR. */
    char in[PATH_MAX], out[PATH_MAX];
    if (realpath(o->operand, in) && absolute(o->output, out, sizeof out) == 0) {
        size_t n = strlen(in);
        if (!strcmp(in, out)) {
            usage_error("-o %s is DIR, the folder of images being imported; give another "
                        "folder for the data set", o->output);
            return EXIT_USAGE;
        }
        if (!strncmp(in, out, n) && (out[n] == '/' || !strcmp(in, "/"))) {
            usage_error("-o %s is inside DIR %s, the folder of images being imported: "
                        "importing DIR again would read the data set as images; give a "
                        "folder outside it", o->output, o->operand);
            return EXIT_USAGE;
        }
    }
    /* Checked first (and again by import_run): replacing a data set
     * unasked is a usage error, as train's --ckpt is. */
    if (import_check_out(o->output, io.force, &err) != 0) {
        usage_error("%s", err.text);
        return EXIT_USAGE;
    }
    import_summary s;
    double t0 = cli_now();
    if (import_run(o->operand, o->output, &io, &s, &err) != 0) {
        say_error("%s", err.text);
        return 1;
    }
    double secs = cli_now() - t0;
    if (o->json) {
        printf("{\"images\":%zu,\"width\":%zu,\"height\":%zu,\"channels\":%zu,"
               "\"classes\":%zu,\"train\":%zu,\"test\":%zu,\"skipped\":%zu,"
               "\"broken\":%zu,\"seconds\":%.3f,\"out\":", s.n_images, s.width, s.height,
               s.channels, s.n_classes, s.n_train, s.n_test, s.n_other, s.n_broken, secs);
        print_json_string(o->output);
        printf(",\"first_skipped\":");
        print_json_string(s.first_other);
        printf(",\"first_broken\":");
        print_json_string(s.first_broken);
        printf("}\n");
        return 0;
    }
    char classes[64], skipped[IMPORT_NAME_LEN + 64] = "", broken[IMPORT_NAME_LEN + 64] = "";
    if (s.n_classes)
        snprintf(classes, sizeof classes, "%zu classes", s.n_classes);
    else
        snprintf(classes, sizeof classes, "no labels");
    if (s.n_other)
        snprintf(skipped, sizeof skipped, ", %zu other file%s skipped (first: %s)",
                 s.n_other, s.n_other == 1 ? "" : "s", s.first_other);
    if (s.n_broken)
        snprintf(broken, sizeof broken, ", %zu broken image%s skipped (first: %s)",
                 s.n_broken, s.n_broken == 1 ? "" : "s", s.first_broken);
    printf("imported %zu images, %zux%zux%zu, %s: %zu train, %zu test%s%s, into %s "
           "(%.2f s)\n", s.n_images, s.width, s.height, s.channels, classes, s.n_train,
           s.n_test, skipped, broken, o->output, secs);
    return 0;
}
