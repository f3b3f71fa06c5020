/* report.c - the training run's page, OUT/index.html (see src/view/report.h). */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "afile.h"
#include "infer.h"
#include "runout.h" /* the names of the grids in OUT */
#include "train.h"  /* the enums' names */
#include "metrics.h"
#include "plot.h"
#include "schedule.h"
#include "shard.h"
#include "show.h"

/* The per-epoch grids train.c writes in OUT. */
/* The grids' names are the output folder's (runout.h). */
#define SAMPLED_FMT RUNOUT_SAMPLED "%zu" RUNOUT_GRID_SUFFIX
#define RECONST_FMT RUNOUT_RECONST "%zu" RUNOUT_GRID_SUFFIX

#define MAP_BATCH 128 /* images a pass over the test set for the latent map */

#define PATH_LEN 4096

/* ===================================================================== */
/* Escaping                                                               */
/* ===================================================================== */

/* The character reference of c, or NULL when c stands for itself. */
static const char *reference(char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return NULL;
    }
}

int report_escape(char *out, size_t size, const char *s)
{
    size_t k = 0;
    for (; *s; s++) {
        const char *ref = reference(*s);
        size_t n = ref ? strlen(ref) : 1;
        if (k + n >= size) {
            if (size)
                out[0] = '\0';
            return -1;
        }
        memcpy(out + k, ref ? ref : s, n);
        k += n;
    }
    if (k >= size)
        return -1;
    out[k] = '\0';
    return 0;
}

/* Text into the page, escaped. */
static void put_text(FILE *fp, const char *s)
{
    for (; *s; s++) {
        const char *ref = reference(*s);
        if (ref)
            fputs(ref, fp);
        else
            fputc(*s, fp);
    }
}

/* printf into the page, escaped (for values that hold paths or messages). */
static void put_textf(FILE *fp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_textf(FILE *fp, const char *fmt, ...)
{
    char buf[PATH_LEN + ERR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    put_text(fp, buf);
}

/* A file name in OUT as a relative URL: bytes outside the unreserved set
 * percent-encoded, so neither HTML nor the URL parser reads them ("#", "?",
 * "&", ":" would). A name is never a path here (no "/"), so the link
 * cannot leave the folder. */
static void put_url(FILE *fp, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                    *p == '~';
        /* "./" first: a name such as "a:b" must not read as a scheme. */
        if (p == (const unsigned char *)name && !plain)
            fputs("./", fp);
        if (plain)
            fputc(*p, fp);
        else
            fprintf(fp, "%%%02X", *p);
    }
}

/* ===================================================================== */
/* Files in OUT                                                           */
/* ===================================================================== */

/* out = OUT/name; 0, or -1 when it does not fit. */
static int in_out(char *out, size_t size, const report *r, const char *name)
{
    int n = snprintf(out, size, "%s/%s", r->run.out_dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Whether OUT/name is a regular file. */
static int have(const report *r, const char *name)
{
    char path[PATH_LEN];
    struct stat st;
    return in_out(path, sizeof path, r, name) == 0 && stat(path, &st) == 0 &&
           S_ISREG(st.st_mode);
}

/* The size of a PNG from its header (libpng reads no more); 0, or -1 when
 * OUT/name is not a PNG that can be read. */
static int png_size(const report *r, const char *name, size_t *w, size_t *h)
{
    char path[PATH_LEN];
    FILE *fp = in_out(path, sizeof path, r, name) ? NULL
                                                  : afile_fopen_input(path, NULL, NULL);
    if (!fp)
        return -1;
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    int ok = png_image_begin_read_from_stdio(&im, fp) != 0;
    if (ok) {
        *w = im.width;
        *h = im.height;
    }
    png_image_free(&im);
    fclose(fp);
    return ok ? 0 : -1;
}

/* <img> of OUT/name at num/den of its size (when its size can be read);
 * cls NULL for none. */
static void put_img(FILE *fp, const report *r, const char *name, size_t num, size_t den,
                    const char *cls, const char *alt)
{
    size_t w, h;
    fputs("<img src=\"", fp);
    put_url(fp, name);
    fputs("\"", fp);
    if (png_size(r, name, &w, &h) == 0 && w && h && w < 100000 && h < 100000)
        fprintf(fp, " width=\"%zu\" height=\"%zu\"", w * num / den, h * num / den);
    if (cls)
        fprintf(fp, " class=\"%s\"", cls);
    fputs(" alt=\"", fp);
    put_text(fp, alt);
    fputs("\">", fp);
}

/* <a href="name">text</a>, text escaped. */
static void put_link(FILE *fp, const char *name, const char *text)
{
    fputs("<a href=\"", fp);
    put_url(fp, name);
    fputs("\">", fp);
    put_text(fp, text);
    fputs("</a>", fp);
}

/* The name of path if path lies directly in folder (name has no "/"),
 * else NULL. Only spellings that differ by trailing slashes are seen as
 * the same folder; any other leads to a copy of the curve, never a wrong
 * link. */
static const char *name_in(const char *folder, const char *path)
{
    size_t n = strlen(folder);
    while (n > 1 && folder[n - 1] == '/')
        n--;
    if (strncmp(path, folder, n) != 0 || path[n] != '/')
        return NULL;
    path += n;
    while (*path == '/')
        path++;
    return *path && !strchr(path, '/') ? path : NULL;
}

/* ===================================================================== */
/* The epochs                                                             */
/* ===================================================================== */

typedef struct epochs {
    metrics_row *row;
    size_t n;
    int valid; /* the CSV has the validation columns */
    char *text; /* the CSV as read */
    size_t len;
} epochs;

static void epochs_free(epochs *e)
{
    free(e->row);
    free(e->text);
    memset(e, 0, sizeof *e);
}

/* The metrics CSV's text (metrics.h; NULL: none yet): its rows in order.
 * A line that is not a row of numbers ends the table. Returns 0, or -1
 * with err (out of memory). */
static int epochs_parse(epochs *e, const char *text, size_t len, err_msg *err)
{
    memset(e, 0, sizeof *e);
    if (!text || len == 0)
        return 0;
    if (!(e->text = malloc(len + 1)))
        return err_set(err, "out of memory for the page's table");
    memcpy(e->text, text, len);
    e->len = len;
    e->text[e->len] = '\0';
    const char *line = e->text;
    e->valid = !strncmp(line, METRICS_HEADER_VALID "\n", strlen(METRICS_HEADER_VALID) + 1);
    if (!e->valid && strncmp(line, METRICS_HEADER "\n", strlen(METRICS_HEADER) + 1))
        return 0; /* not a CSV of ours */
    size_t rows = 0;
    for (const char *p = line; *p; p++)
        rows += *p == '\n';
    if (!(e->row = calloc(rows ? rows : 1, sizeof *e->row))) {
        epochs_free(e);
        return err_set(err, "out of memory for the page's table");
    }
    size_t cols = e->valid ? 12 : 9;
    for (line = strchr(line, '\n') + 1; *line && e->n < rows; line = strchr(line, '\n') + 1) {
        double v[12];
        char *end = (char *)line;
        size_t c = 0;
        for (; c < cols; c++) {
            const char *at = end;
            v[c] = strtod(at, &end);
            if (end == at || *end != (c + 1 < cols ? ',' : '\n'))
                break;
            end++;
        }
        if (c < cols || v[0] < 1)
            break;
        metrics_row *m = &e->row[e->n++];
        *m = (metrics_row){(size_t)v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
                           0.0, 0.0, 0.0};
        if (e->valid)
            m->valid_loss = v[9], m->valid_rec = v[10], m->valid_kl = v[11];
        if (!strchr(line, '\n'))
            break;
    }
    return 0;
}

/* The row with the lowest validation loss (0 without the columns). */
static size_t best_epoch(const epochs *e)
{
    size_t best = 0;
    for (size_t i = 0; e->valid && i < e->n; i++)
        if (best == 0 || e->row[i].valid_loss < e->row[best - 1].valid_loss)
            best = i + 1;
    return best ? e->row[best - 1].epoch : 0;
}

/* ===================================================================== */
/* Sections                                                               */
/* ===================================================================== */


void report_set_model(report *r, const model_config *cfg, const ckpt_train *state,
                      size_t n_params)
{
    r->cfg = *cfg;
    r->train = *state;
    r->n_params = n_params;
    r->have_cfg = 1;
}

/* One row of the settings table: the key, then printf into the value. */
static void setting(FILE *fp, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void setting(FILE *fp, const char *key, const char *fmt, ...)
{
    char buf[PATH_LEN + ERR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(fp, "<tr><th>%s</th><td>", key);
    put_text(fp, buf);
    fputs("</td></tr>\n", fp);
}

static void put_settings(FILE *fp, const report *r, const epochs *e)
{
    fputs("<h2>Settings</h2>\n<table class=\"settings\">\n", fp);
    size_t done = e->n ? e->row[e->n - 1].epoch : 0;
    setting(fp, "epochs", "%zu of %zu done", done, r->run.epochs);
    if (r->have_cfg) {
        const model_config *c = &r->cfg;
        const ckpt_train *t = &r->train;
        char hidden[160], latent[48];
        setting(fp, "model", "%s, %zux%zu %s images (%zu values), hidden %s, latent %s, "
                "%s%s; %zu parameters", enum_name(&model_arch_names, (int)c->arch), c->width,
                c->height, c->channels == 3 ? "RGB" : "grey", c->x_dim,
                model_hidden_text(c, 0, hidden, sizeof hidden),
                model_latent_text(c, 0, latent, sizeof latent),
                enum_name(&model_act_names, (int)c->act), c->n_classes ? ", conditional" : "",
                r->n_params);
        setting(fp, "likelihood", "%s", model_lik_name(c->likelihood));
        /* The run's settings in use, one row each, as their table shows them. */
        for (int i = 0; i < SETTING_COUNT; i++) {
            const setting_row *row = &SETTINGS[i];
            char v[64];
            if (settings_applies(&t->set, (setting_id)i))
                setting(fp, row->label, "%s%s%s",
                        settings_format(&t->set, (setting_id)i, 0, v, sizeof v),
                        row->unit ? " " : "", row->unit ? row->unit : "");
        }
        if (t->set.valid)
            setting(fp, "validation", "lowest loss at epoch %zu", best_epoch(e));
        if (t->data.n)
            setting(fp, "training data", "%llu images of %llux%llu (pixels CRC-32 %08x, "
                    "labels CRC-32 %08x)", (unsigned long long)t->data.n,
                    (unsigned long long)t->data.rows, (unsigned long long)t->data.cols,
                    (unsigned)t->data.pixels_crc, (unsigned)t->data.labels_crc);
    } else {
        setting(fp, "model", "not known yet: %s", "training has not begun");
    }
    setting(fp, "data folder", "%s", r->run.data_dir ? r->run.data_dir : "-");
    setting(fp, "checkpoint", "%s", r->run.ckpt_path);
    if (r->run.ranks > 1)
        setting(fp, "threads", "%zu MPI ranks x %zu", r->run.ranks, r->run.threads);
    else
        setting(fp, "threads", "%zu", r->run.threads);
    fputs("</table>\n", fp);
}

/* The loss curve: the metrics PNG beside the CSV in OUT, or a copy of
 * both drawn in OUT. */
static void put_curve(FILE *fp, const report *r, const epochs *e)
{
    const char *csv = name_in(r->run.out_dir, r->run.metrics_csv);
    char png_name[PATH_LEN] = "", why[ERR_MSG_LEN] = "";
    if (csv) {
        char *png = metrics_png_path(csv);
        if (png)
            snprintf(png_name, sizeof png_name, "%s", png);
        free(png);
    } else if (e->n) {
        /* The CSV lies elsewhere: its copy in OUT, and the curve of it. */
        char path[PATH_LEN], png[PATH_LEN];
        err_msg err;
        afile f;
        csv = REPORT_LOSS_CSV;
        if (in_out(path, sizeof path, r, REPORT_LOSS_CSV) ||
            in_out(png, sizeof png, r, REPORT_LOSS_PNG)) {
            snprintf(why, sizeof why, "%s: path too long", r->run.out_dir);
        } else if (afile_open(&f, path, &err) == 0) {
            fwrite(e->text, 1, e->len, f.fp);
            if (afile_commit(&f, &err) == 0 && metrics_plot(path, png, e->valid, &err) == 0)
                snprintf(png_name, sizeof png_name, "%s", REPORT_LOSS_PNG);
            else
                snprintf(why, sizeof why, "%s", err.text);
        } else {
            snprintf(why, sizeof why, "%s", err.text);
        }
    }
    fputs("<h2>Loss</h2>\n", fp);
    if (png_name[0] && have(r, png_name)) {
        put_img(fp, r, png_name, 1, 1, NULL, "the loss curve: train and test loss by epoch");
        fputs("\n", fp);
    } else {
        fputs("<p class=\"note\">No loss curve: ", fp);
        if (why[0])
            put_text(fp, why);
        else if (!plot_gnuplot_found())
            put_textf(fp, "it is drawn by gnuplot, which is not on PATH (%s).",
                      PLOT_INSTALL_HINT);
        else if (!e->n)
            put_text(fp, "no epoch is done yet.");
        else
            put_text(fp, "gnuplot did not draw it (vae train warned why).");
        fputs("</p>\n", fp);
    }
    if (csv && have(r, csv)) {
        fputs("<p>The epochs as CSV: ", fp);
        put_link(fp, csv, csv);
        fputs("</p>\n", fp);
    }
}

/* The epochs' table, newest first; scrolls inside its box on long runs. */
static void put_table(FILE *fp, const epochs *e)
{
    if (!e->n)
        return;
    size_t best = best_epoch(e);
    fprintf(fp, "<div class=\"scroll\"><table class=\"epochs\">\n<thead><tr><th>epoch</th>"
            "<th>train loss</th><th>train rec</th><th>train KL</th><th>test loss</th>"
            "<th>test KL</th>%s<th>seconds</th></tr></thead>\n<tbody>\n",
            e->valid ? "<th>valid loss</th>" : "");
    for (size_t i = e->n; i-- > 0;) {
        const metrics_row *m = &e->row[i];
        fprintf(fp, "<tr%s><td>%zu</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
                "<td>%.2f</td><td>%.2f</td>", m->epoch == best ? " class=\"best\"" : "",
                m->epoch, m->train_loss, m->train_rec, m->train_kl, m->test_loss,
                m->test_kl);
        if (e->valid)
            fprintf(fp, "<td>%.2f%s</td>", m->valid_loss, m->epoch == best ? " (best)" : "");
        fprintf(fp, "<td>%.2f</td></tr>\n", m->seconds);
    }
    fputs("</tbody>\n</table></div>\n", fp);
    fputs("<p class=\"small\">Losses are the negative ELBO and its terms, in nats per "
          "image; seconds are training time only.</p>\n", fp);
}

/* A figure of epoch's grid (SAMPLED_FMT or RECONST_FMT) at num/den size,
 * linked to the file; nothing when the file is missing. */
static void put_grid(FILE *fp, const report *r, const char *fmt, size_t epoch,
                     size_t num, size_t den, const char *caption)
{
    char name[64];
    snprintf(name, sizeof name, fmt, epoch);
    if (!have(r, name))
        return;
    fputs("<figure><a href=\"", fp);
    put_url(fp, name);
    fputs("\">", fp);
    put_img(fp, r, name, num, den, num >= den ? "px" : NULL, caption);
    fprintf(fp, "</a><figcaption>%s</figcaption></figure>\n", caption);
}

/* Links to the grid of every epoch, one line a kind. */
static void put_all_links(FILE *fp, const report *r, const epochs *e, const char *fmt,
                          const char *what)
{
    fprintf(fp, "<p class=\"all\">%s:", what);
    for (size_t i = 0; i < e->n; i++) {
        char name[64], text[32];
        snprintf(name, sizeof name, fmt, e->row[i].epoch);
        snprintf(text, sizeof text, "%zu", e->row[i].epoch);
        if (have(r, name)) {
            fputs(" ", fp);
            put_link(fp, name, text);
        }
    }
    fputs("</p>\n", fp);
}

static void put_images(FILE *fp, const report *r, const epochs *e)
{
    if (!e->n)
        return;
    size_t last = e->row[e->n - 1].epoch;
    char cap[96];
    fprintf(fp, "<h2>Samples and reconstructions, epoch %zu</h2>\n<div class=\"grids\">\n",
            last);
    snprintf(cap, sizeof cap, "epoch %zu: fixed draws from the prior, decoded", last);
    put_grid(fp, r, SAMPLED_FMT, last, 2, 1, cap);
    snprintf(cap, sizeof cap, "epoch %zu: test images, each beside its reconstruction",
             last);
    put_grid(fp, r, RECONST_FMT, last, 2, 1, cap);
    fputs("</div>\n", fp);
    if (e->n < 2)
        return;
    fprintf(fp, "<h2>Earlier epochs</h2>\n<div class=\"thumbs\">\n");
    for (size_t i = e->n - 1, shown = 0; i-- > 0 && shown < REPORT_THUMBS; shown++) {
        size_t ep = e->row[i].epoch;
        fprintf(fp, "<div class=\"thumb\">\n");
        snprintf(cap, sizeof cap, "epoch %zu: samples", ep);
        put_grid(fp, r, SAMPLED_FMT, ep, 1, 2, cap);
        snprintf(cap, sizeof cap, "epoch %zu: reconstructions", ep);
        put_grid(fp, r, RECONST_FMT, ep, 1, 2, cap);
        fputs("</div>\n", fp);
    }
    fputs("</div>\n", fp);
    /* Open on short runs; a long run's hundreds of links stay folded. */
    fprintf(fp, "<details%s><summary>Every epoch's images (%zu epochs)</summary>\n",
            e->n <= 60 ? " open" : "", e->n);
    put_all_links(fp, r, e, SAMPLED_FMT, "samples");
    put_all_links(fp, r, e, RECONST_FMT, "reconstructions");
    fputs("</details>\n", fp);
}

static void put_latent(FILE *fp, const report *r, report_status status)
{
    fputs("<h2>Latent map</h2>\n", fp);
    if (r->active_n && r->have_cfg && r->cfg.z2_dim)
        fprintf(fp, "<p>Active units: %zu of %zu in h1, %zu of %zu in h2 (latent units "
                "whose posterior mean varies by more than %g over the %zu test images, "
                "h2's at h1's mean; Burda et al.'s measure of how much of the latent "
                "space the model uses).</p>\n", r->active, r->cfg.z_dim, r->active2,
                r->cfg.z2_dim, INFER_ACTIVE_VAR, r->active_n);
    else if (r->active_n && r->have_cfg)
        fprintf(fp, "<p>Active units: %zu of %zu (latent units whose posterior mean "
                "varies by more than %g over the %zu test images; Burda et al.'s "
                "measure of how much of the latent space the model uses).</p>\n",
                r->active, r->cfg.z_dim, INFER_ACTIVE_VAR, r->active_n);
    if (r->latent == 1 && have(r, REPORT_LATENT_PNG)) {
        put_img(fp, r, REPORT_LATENT_PNG, 1, 1, NULL, "the latent map");
        fputs("\n<p>", fp);
        if (r->have_cfg && show_map_is_grid(&r->cfg))
            fprintf(fp, "The 2-D latent space: %d x %d decodings of points on the "
                    "prior's quantiles.", REPORT_MAP_SIDE, REPORT_MAP_SIDE);
        else
            fprintf(fp, "The test set's posterior means on their first two principal "
                    "components (%.1f%% and %.1f%% of the variance).",
                    100.0 * r->explained[0], 100.0 * r->explained[1]);
        if (have(r, REPORT_LATENT_CSV)) {
            fputs(" The points: ", fp);
            put_link(fp, REPORT_LATENT_CSV, REPORT_LATENT_CSV);
            fputs(".", fp);
        }
        fputs("</p>\n", fp);
        return;
    }
    fputs("<p class=\"note\">", fp);
    if (r->latent)
        put_textf(fp, "No latent map: %s", r->latent_note);
    else if (status == REPORT_STOPPED)
        put_text(fp, "The run was stopped: the latent map is drawn when it finishes "
                     "(resume it with vae train --resume).");
    else
        put_text(fp, "The latent map is drawn when training finishes.");
    fputs("</p>\n", fp);
}

static const char STYLE[] =
    "body{font-family:sans-serif;color:#222;max-width:72em;margin:1.5em auto;"
    "padding:0 1em;line-height:1.4}\n"
    "h1{font-size:1.5em;margin-bottom:.2em}\n"
    "h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em;"
    "margin-top:1.8em}\n"
    "table{border-collapse:collapse;font-size:.9em}\n"
    "th,td{padding:.2em .7em;border-bottom:1px solid #e4e4e4}\n"
    "table.settings th{text-align:left;font-weight:600;white-space:nowrap;"
    "vertical-align:top}\n"
    "table.epochs td{text-align:right;font-variant-numeric:tabular-nums}\n"
    "table.epochs th{background:#f2f2f2;position:sticky;top:0}\n"
    "tr.best td{font-weight:bold}\n"
    ".scroll{max-height:22em;overflow-y:auto;display:inline-block;"
    "border:1px solid #ddd}\n"
    ".grids,.thumbs{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}\n"
    ".thumbs{gap:1em}\n"
    ".thumb{font-size:.85em;text-align:center}\n"
    ".thumb figure{display:inline-block;margin:.2em;vertical-align:top}\n"
    "figure{margin:0}\n"
    "figcaption,.small{font-size:.85em;color:#555}\n"
    "img{display:block}\n"
    "img.px{image-rendering:pixelated}\n"
    ".note{background:#fff7d9;border:1px solid #e2c66b;padding:.4em .8em}\n"
    ".status{font-size:1.05em}\n"
    ".all a{margin-left:.3em}\n";

/* ===================================================================== */
/* The page                                                               */
/* ===================================================================== */

void report_init(report *r, const report_run *run)
{
    memset(r, 0, sizeof *r);
    r->run = *run;
}

int report_write(report *r, report_status status, const char *csv_text, size_t csv_len,
                 err_msg *err)
{
    char path[PATH_LEN];
    if (in_out(path, sizeof path, r, REPORT_PAGE))
        return err_set(err, "%s: path too long", r->run.out_dir);
    epochs e;
    if (epochs_parse(&e, csv_text, csv_len, err))
        return -1;
    afile f;
    if (afile_open(&f, path, err)) {
        epochs_free(&e);
        return -1;
    }
    FILE *fp = f.fp;
    size_t done = e.n ? e.row[e.n - 1].epoch : 0;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>vae run: ", fp);
    put_text(fp, r->run.ckpt_path);
    fprintf(fp, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>vae training run: ",
            STYLE);
    put_text(fp, r->run.ckpt_path);
    fputs("</h1>\n<p class=\"status\">", fp);
    if (status == REPORT_FINISHED)
        fprintf(fp, "Finished: %zu of %zu epochs.", done, r->run.epochs);
    else if (status == REPORT_STOPPED)
        fprintf(fp, "Stopped after epoch %zu of %zu; the checkpoint holds the exact "
                "state, and <code>vae train --resume</code> continues it.", done,
                r->run.epochs);
    else
        fprintf(fp, "Training: %zu of %zu epochs done. This page is rewritten after "
                "every epoch.", done, r->run.epochs);
    fputs("</p>\n", fp);
    put_settings(fp, r, &e);
    put_curve(fp, r, &e);
    put_table(fp, &e);
    put_images(fp, r, &e);
    put_latent(fp, r, status);
    fputs("</body>\n</html>\n", fp);
    epochs_free(&e);
    return afile_commit(&f, err);
}

/* ===================================================================== */
/* The latent map                                                         */
/* ===================================================================== */

/* Draws the map of model m over test into OUT; 0, or -1 with err. */
static int draw_latent(report *r, const model_net *m, const ckpt_train *t,
                       const idx_set *test, err_msg *err)
{
    char png[PATH_LEN], csv[PATH_LEN];
    if (in_out(png, sizeof png, r, REPORT_LATENT_PNG) ||
        in_out(csv, sizeof csv, r, REPORT_LATENT_CSV))
        return err_set(err, "%s: path too long", r->run.out_dir);
    shard_set sh;
    memset(&sh, 0, sizeof sh);
    shard_spec spec = {.cap = MAP_BATCH};
    if (shard_init(&sh, m, &spec, err))
        return -1;
    int rc;
    if (show_map_is_grid(&m->cfg)) {
        rc = show_manifold_png(m, &sh.acts[0], REPORT_MAP_SIDE, 0, png, err);
    } else {
        idx_view view = infer_test_view(t->set.binarize);
        rc = show_latent_pca(m, &sh, test, &view, t->set.seed, 1, csv, png, r->explained,
                             err);
    }
    shard_free(&sh);
    return rc;
}

int report_active_units(report *r, const model_net *m, const ckpt_train *t,
                        const idx_set *test, err_msg *err)
{
    r->active_n = 0;
    if (!test || test->n == 0)
        return err_set(err, "no test images to count the active units on");
    shard_set sh;
    memset(&sh, 0, sizeof sh);
    shard_spec spec = {.cap = MAP_BATCH};
    if (shard_init(&sh, m, &spec, err))
        return -1;
    idx_view view = infer_test_view(t->set.binarize);
    size_t active[2];
    int rc = infer_layer_activity(m, &sh, test, &view, t->set.seed, active, err);
    shard_free(&sh);
    if (rc)
        return -1;
    r->active = active[0];
    r->active2 = active[1];
    r->active_n = test->n;
    return 0;
}

int report_latent(report *r, const model_net *m, const ckpt_train *t, const idx_set *test,
                  err_msg *err)
{
    int rc = 0;
    r->latent = -1;
    if (m->cfg.z_dim < 2) {
        snprintf(r->latent_note, sizeof r->latent_note, "a 1-D latent space has no map.");
    } else if (m->cfg.z_dim > 2 && !plot_gnuplot_found()) {
        rc = err_set(err, "the latent map is drawn by gnuplot, which is not on PATH (%s)",
                     PLOT_INSTALL_HINT);
    } else if (m->cfg.z_dim > 2 && (!test || test->n < 2)) {
        rc = err_set(err, "the latent map needs at least 2 test images");
    } else {
        rc = draw_latent(r, m, t, test, err);
        if (rc == 0)
            r->latent = 1;
    }
    if (rc)
        snprintf(r->latent_note, sizeof r->latent_note, "%s", err->text);
    return rc;
}
