/* metrics.c - the per-epoch CSV and its loss curve (see src/view/metrics.h). */
#define _POSIX_C_SOURCE 200809L
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "afile.h"
#include "plot.h"

static int append(metrics *mt, const char *s, size_t n, err_msg *err)
{
    if (mt->len + n + 1 > mt->cap) {
        size_t cap = (mt->len + n + 1) * 2;
        char *t = realloc(mt->text, cap);
        if (!t)
            return err_set(err, "%s: out of memory", mt->path);
        mt->text = t;
        mt->cap = cap;
    }
    memcpy(mt->text + mt->len, s, n);
    mt->len += n;
    mt->text[mt->len] = '\0';
    return 0;
}

static int rewrite(const metrics *mt, err_msg *err)
{
    afile f;
    if (afile_open(&f, mt->path, err))
        return -1;
    if (fwrite(mt->text, 1, mt->len, f.fp) != mt->len) {
        int e = afile_write_errno(&f);
        afile_abort(&f);
        return err_sys(err, e ? e : EIO, "cannot write %s", mt->path);
    }
    return afile_commit(&f, err);
}

int metrics_open(metrics *mt, const char *path, size_t keep_epochs, int valid,
                 err_msg *err)
{
    memset(mt, 0, sizeof *mt);
    mt->valid = valid;
    const char *header = valid ? METRICS_HEADER_VALID : METRICS_HEADER;
    mt->path = strdup(path);
    if (!mt->path || append(mt, header, strlen(header), err) || append(mt, "\n", 1, err)) {
        metrics_close(mt);
        return err_set(err, "%s: out of memory", path);
    }
    /* Only a regular file is read back: --metrics /dev/stdout into a pipe
     * would wait for ever on the run's own output. */
    FILE *fp = keep_epochs ? afile_fopen_input(path, NULL, NULL) : NULL;
    if (!fp)
        return 0;
    /* Keep the rows of the epochs the resumed run has done, in order. */
    char line[1024];
    size_t want = 1;
    int first = 1;
    while (fgets(line, sizeof line, fp)) {
        if (first) {
            first = 0;
            if (strcspn(line, "\r\n") != strlen(header) ||
                strncmp(line, header, strlen(header)) != 0)
                break; /* not ours (or other columns): start afresh */
            continue;
        }
        char *end;
        unsigned long long e = strtoull(line, &end, 10);
        if (end == line || *end != ',' || e != want || e > keep_epochs)
            break;
        if (append(mt, line, strlen(line), err)) {
            fclose(fp);
            metrics_close(mt);
            return -1;
        }
        want++;
    }
    fclose(fp);
    return 0;
}

int metrics_add(metrics *mt, const metrics_row *r, err_msg *err)
{
    char line[512], valid[160] = "";
    if (mt->valid)
        snprintf(valid, sizeof valid, ",%.6f,%.6f,%.6f", r->valid_loss, r->valid_rec,
                 r->valid_kl);
    int n = snprintf(line, sizeof line, "%zu,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f%s\n",
                     r->epoch, r->train_loss, r->train_rec, r->train_kl, r->test_loss,
                     r->test_rec, r->test_kl, r->seconds, r->images_per_s, valid);
    if (n < 0 || (size_t)n >= sizeof line)
        return err_set(err, "%s: row too long", mt->path);
    if (append(mt, line, (size_t)n, err))
        return -1;
    return rewrite(mt, err);
}

void metrics_close(metrics *mt)
{
    free(mt->path);
    free(mt->text);
    memset(mt, 0, sizeof *mt);
}

char *metrics_png_path(const char *csv)
{
    size_t n = strlen(csv);
    if (n >= 4 && !strcmp(csv + n - 4, ".csv"))
        n -= 4;
    char *p = malloc(n + 5);
    if (p) {
        memcpy(p, csv, n);
        strcpy(p + n, ".png");
    }
    return p;
}

int metrics_plot(const char *csv, const char *png, int valid, err_msg *err)
{
    /* gnuplot reads the CSV back: from a device or a pipe (/dev/stdout,
     * /dev/zero) it would wait or read for ever. */
    struct stat st;
    if (stat(csv, &st) == 0 && !S_ISREG(st.st_mode))
        return err_set(err, "%s is not a regular file: no loss curve is drawn from it", csv);
    char qcsv[8200], script[20000];
    if (plot_quote(qcsv, sizeof qcsv, csv))
        return err_set(err, "%s: path too long", csv);
    int n = snprintf(script, sizeof script,
                     "set datafile separator ','\n"
                     "set title 'negative ELBO (nats per image)'\n"
                     "set xlabel 'epoch'\n"
                     "set ylabel 'nats per image'\n"
                     "set grid\n"
                     "set key top right\n"
                     /* One tic an epoch on short runs; gnuplot's own on long ones. */
                     "stats %s using 1 skip 1 nooutput\n"
                     "if (STATS_max <= 20) { set xtics 1 }\n"
                     "plot %s using 1:2 skip 1 with linespoints lw 2 title 'train', "
                     "'' using 1:5 skip 1 with linespoints lw 2 title 'test', "
                     "'' using 1:7 skip 1 with lines dt 2 title 'test KL'%s\n",
                     qcsv, qcsv,
                     valid ? ", '' using 1:10 skip 1 with linespoints lw 2 "
                             "title 'validation'"
                           : "");
    if (n < 0 || (size_t)n >= sizeof script)
        return err_set(err, "%s: path too long", png);
    return plot_png(png, 800, 500, script, "loss curve", err);
}
