/* cmd_model.c - the commands that use a trained model: sample,
 * reconstruct, eval, interpolate, encode, score, manifold, probe and traverse
 * (see src/cli/cli.h). Each reads the model and its training options from --ckpt. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afile.h"
#include "cli.h"
#include "dist.h"
#include "infer.h"
#include "par.h"
#include "plot.h"
#include "png_grid.h"
#include "probe.h"
#include "show.h"
#include "traverse.h"

/* A loaded model with what using it needs. */
typedef struct session {
    model_net m;
    ckpt_train tr;
    model_acts a;     /* single-thread activations for pictures */
    shard_set sh;   /* the team's, for passes over a data set */
    idx_set data;   /* the images the command reads, if any */
    idx_view view;  /* how the model sees them */
} session;

static void session_free(session *s)
{
    model_free(&s->m);
    model_acts_free(&s->a);
    shard_free(&s->sh);
    idx_free(&s->data);
}

/* Loads --ckpt and starts the team; allocates activations for pictures,
 * cap images at a time (fewer for the conv VAE, whose activations take
 * ~1 MB an image). out is the file the command will write (NULL: none):
 * it may be neither the checkpoint nor any other file the command reads
 * (split of --data, if not NULL, which session_load loads later).
 * Returns 0, or the exit status after a message. */
static int session_open(cli_opts *o, session *s, size_t cap, const char *out,
                        const char *split)
{
    memset(s, 0, sizeof *s);
    paths_list l = {0};
    paths_add(&l, "--ckpt", o->ckpt, PATHS_READ);
    if (split)
        cli_add_split(o, &l, split);
    paths_add(&l, "-o", out, PATHS_WRITE);
    if (cli_check_paths(&l))
        return EXIT_USAGE;
    if (cli_load_model(o, &s->m, &s->tr))
        return 1;
    err_msg err;
    s->view = infer_test_view(s->tr.set.binarize);
    if (cli_threads(o)) {
        session_free(s);
        return 1;
    }
    if (s->m.cfg.arch == MODEL_ARCH_CONV && cap > INFER_CONV_CAP)
        cap = INFER_CONV_CAP;
    if (model_acts_init(&s->a, &s->m.cfg, cap, &err)) {
        say_error("%s", err.text);
        session_free(s);
        return 1;
    }
    return 0;
}

/* Loads split of --data into the session, and the team's activations for
 * passes over it (--batch at a time). The caller has checked the split's
 * files against what the command writes (session_open with split, or its
 * own paths_list). Returns 0, or the exit status after a message (the
 * session is then freed). */
static int session_load(cli_opts *o, session *s, const char *split)
{
    int rc = cli_load_split(o, &s->data, split) ? 1 : 0;
    err_msg err;
    if (rc == 0 && cli_check_data(o, &s->m.cfg, &s->data, split))
        rc = 1;
    /* Under mpirun (vae eval, score, encode) each rank takes its shares of
     * every batch; no batch is larger than the set. */
    size_t cap = (size_t)o->run.set.batch;
    if (rc == 0 && s->data.n > 0 && cap > s->data.n)
        cap = s->data.n;
    shard_spec spec = {.cap = cap, .rank = dist_rank(), .ranks = dist_size()};
    if (rc == 0 && shard_init(&s->sh, &s->m, &spec, &err)) {
        say_error("%s", err.text);
        rc = 1;
    }
    if (rc)
        session_free(s);
    return rc;
}

/* session_open, then session_load. */
static int session_open_data(cli_opts *o, session *s, const char *split, size_t cap,
                             const char *out)
{
    int rc = session_open(o, s, cap, out, split);
    return rc ? rc : session_load(o, s, split);
}

/* --label and --grid apply to conditional models only. */
static int check_label_options(cli_opts *o, const session *s)
{
    if (s->m.cfg.n_classes) {
        if (o->set[O_LABEL] && o->label >= s->m.cfg.n_classes)
            return usage_error("--label %zu: the model in %s knows labels 0 to %zu",
                               o->label, o->ckpt, s->m.cfg.n_classes - 1);
        return 0;
    }
    const char *which = o->set[O_LABEL] ? "--label" : o->set[O_GRID] ? "--grid" : NULL;
    if (!which)
        return 0;
    return usage_error("%s: the model in %s is not conditional (train it with "
                       "--conditional)", which, o->ckpt);
}

/* ===================================================================== */

int cmd_sample(cli_opts *o)
{
    session s;
    const char *path = o->output;
    int open_rc = session_open(o, &s, INFER_PICTURE_CAP, path, NULL);
    if (open_rc)
        return open_rc;
    if (check_label_options(o, &s)) {
        session_free(&s);
        return EXIT_USAGE;
    }
    if (o->set[O_LABEL] && o->set[O_GRID]) {
        usage_error("--label and --grid: give one of them");
        session_free(&s);
        return EXIT_USAGE;
    }
    /* A conditional model without --label shows every label, a column each. */
    int grid = s.m.cfg.n_classes && !o->set[O_LABEL];
    size_t cols = grid ? show_class_cols(s.m.cfg.n_classes) : SHOW_COLS;
    size_t n = o->set[O_N] || !grid ? o->n : 10 * cols;
    if (grid)
        n = (n + cols - 1) / cols * cols;
    size_t Z = infer_prior_dim(&s.m); /* the noise of a draw, then its code */
    float *eps = malloc(n * (Z + s.m.cfg.z_dim) * sizeof *eps);
    uint8_t *labels = malloc(n);
    int rc = 1;
    err_msg err;
    if (!eps || !labels) {
        say_error("out of memory for %zu samples", n);
    } else {
        for (size_t i = 0; i < n; i++)
            labels[i] = (uint8_t)(grid ? i % cols : o->label);
        infer_prior_draws(eps, n, Z, o->run.set.seed);
        infer_prior_z(&s.m, &s.a, eps, labels, n, eps + n * Z);
        if (show_decode_png(&s.m, &s.a, eps + n * Z, labels, n, cols, path, &err))
            say_error("%s", err.text);
        else
            rc = 0;
    }
    if (rc == 0)
        printf("wrote %s (%zu samples from %s)\n", path, n, o->ckpt);
    free(eps);
    free(labels);
    session_free(&s);
    return rc;
}

int cmd_reconstruct(cli_opts *o)
{
    session s;
    const char *path = o->output;
    int open_rc = session_open_data(o, &s, "t10k", INFER_PICTURE_CAP, path);
    if (open_rc)
        return open_rc;
    size_t n = o->n;
    if (n > s.data.n)
        n = s.data.n;
    err_msg err;
    int rc = show_recon_png(&s.m, &s.a, &s.data, &s.view, n, path, &err);
    if (rc)
        say_error("%s", err.text);
    else
        printf("wrote %s (%zu test images, each beside its reconstruction)\n", path, n);
    session_free(&s);
    return rc ? 1 : 0;
}

int cmd_eval(cli_opts *o)
{
    session s;
    int open_rc = session_open_data(o, &s, "t10k", 1, NULL);
    if (open_rc)
        return open_rc;
    double rec, kl, t0 = cli_now();
    double loss = infer_eval(&s.m, &s.sh, &s.data, &s.view, o->run.set.seed, &rec, &kl);
    double secs = cli_now() - t0;
    infer_iw_result iw = {0};
    double iw_secs = 0.0;
    if (o->set[O_IW]) {
        err_msg err;
        t0 = cli_now();
        if (infer_iw(&s.m, &s.data, &s.view, o->iw, o->run.set.seed, 0, &iw, &err)) {
            say_error("%s", err.text);
            session_free(&s);
            return 1;
        }
        iw_secs = cli_now() - t0;
    }
    /* Active units: the posterior means of every image (eval's draws). */
    /* Per stochastic layer, bottom first: q(h1|x)'s means, then q(h2|h1)'s
     * at h1 = its mean. */
    size_t active[2] = {0, 0}, Z[2] = {s.m.cfg.z_dim, s.m.cfg.z2_dim};
    size_t layers = Z[1] ? 2 : 1;
    err_msg aerr;
    if (o->set[O_ACTIVE_UNITS] && infer_layer_activity(&s.m, &s.sh, &s.data, &s.view,
                                                       o->run.set.seed, active, &aerr)) {
        say_error("%s", aerr.text);
        session_free(&s);
        return 1;
    }
    if (o->json) {
        printf("{\"test_loss\":%s,\"test_rec\":%s,\"test_kl\":%s,", cli_json(loss, 6, 'f').s,
               cli_json(rec, 6, 'f').s, cli_json(kl, 6, 'f').s);
        if (o->set[O_IW])
            printf("\"iw_nll\":%s,\"iw\":%zu,\"iw_seconds\":%.3f,",
                   cli_json(iw.iw_nll, 6, 'f').s, o->iw, iw_secs);
        if (o->set[O_ACTIVE_UNITS] && layers == 1) /* a count per stochastic layer */
            printf("\"active_units\":[%zu],\"latent\":[%zu],", active[0], Z[0]);
        else if (o->set[O_ACTIVE_UNITS])
            printf("\"active_units\":[%zu,%zu],\"latent\":[%zu,%zu],", active[0], active[1],
                   Z[0], Z[1]);
        printf("\"likelihood\":\"%s\",\"n\":%zu,\"seconds\":%.4f}\n",
               model_lik_name(s.m.cfg.likelihood), s.data.n, secs);
    } else {
        printf("test loss %.4f nats/image (rec %.4f, kl %.4f) on %zu images "
               "[%s, %.2fs]\n", loss, rec, kl, s.data.n, o->data, secs);
        if (o->set[O_IW])
            printf("importance-weighted bound, K = %zu: %.4f nats/image [%.2fs]\n",
                   o->iw, iw.iw_nll, iw_secs);
        if (o->set[O_ACTIVE_UNITS] && layers == 1)
            printf("active units: %zu of %zu (posterior means varying by more than %g "
                   "over the %zu images)\n", active[0], Z[0], INFER_ACTIVE_VAR, s.data.n);
        else if (o->set[O_ACTIVE_UNITS])
            printf("active units: %zu of %zu in h1, %zu of %zu in h2 (posterior means "
                   "varying by more than %g over the %zu images; h2's at h1's mean)\n",
                   active[0], Z[0], active[1], Z[1], INFER_ACTIVE_VAR, s.data.n);
    }
    session_free(&s);
    return 0;
}

int cmd_interpolate(cli_opts *o)
{
    session s;
    const char *path = o->output;
    int rc = session_open_data(o, &s, "t10k", INFER_PICTURE_CAP, path);
    if (rc)
        return rc;
    rc = 1;
    err_msg err;
    if (check_label_options(o, &s)) {
        rc = EXIT_USAGE;
    } else if (o->from >= s.data.n || o->to >= s.data.n) {
        usage_error("%s %zu: the test set has images 0 to %zu",
                    o->from >= s.data.n ? "--from" : "--to",
                    o->from >= s.data.n ? o->from : o->to, s.data.n - 1);
        rc = EXIT_USAGE;
    } else if (show_interpolate_png(&s.m, &s.a, &s.data, &s.view, o->from, o->to,
                                    o->steps, o->set[O_LABEL] ? (int)o->label : -1,
                                    path, &err)) {
        say_error("%s", err.text);
    } else {
        printf("wrote %s (test images %zu and %zu, %zu steps between)\n", path,
               o->from, o->to, o->steps);
        rc = 0;
    }
    session_free(&s);
    return rc;
}

/* Writes a CSV through afile: header, then row(ctx, i, fp) for i < n. */
static int write_csv(const char *path, const char *header, size_t n,
                     void (*row)(void *ctx, size_t i, FILE *fp), void *ctx)
{
    afile f;
    err_msg err;
    if (afile_open(&f, path, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    fputs(header, f.fp);
    for (size_t i = 0; i < n; i++)
        row(ctx, i, f.fp);
    if (afile_commit(&f, &err)) {
        say_error("%s", err.text);
        return -1;
    }
    return 0;
}

typedef struct codes {
    const idx_set *set;
    size_t Z;
    float *mu, *logvar, *rec, *kl;
    size_t Z2;             /* two stochastic layers: h2's (else 0) */
    float *mu2, *logvar2;
} codes;

static void code_row(void *ctx, size_t i, FILE *fp)
{
    const codes *c = ctx;
    fprintf(fp, "%zu,%u", i, c->set->labels[i]);
    for (size_t j = 0; j < c->Z; j++)
        fprintf(fp, ",%.6g", c->mu[i * c->Z + j]);
    for (size_t j = 0; j < c->Z; j++)
        fprintf(fp, ",%.6g", c->logvar[i * c->Z + j]);
    for (size_t j = 0; j < c->Z2; j++)
        fprintf(fp, ",%.6g", c->mu2[i * c->Z2 + j]);
    for (size_t j = 0; j < c->Z2; j++)
        fprintf(fp, ",%.6g", c->logvar2[i * c->Z2 + j]);
    fputc('\n', fp);
}

int cmd_encode(cli_opts *o)
{
    session s;
    const char *path = o->output;
    int open_rc = session_open_data(o, &s, o->split, INFER_PICTURE_CAP, path);
    if (open_rc)
        return open_rc;
    size_t n = s.data.n, Z = s.m.cfg.z_dim, Z2 = s.m.cfg.z2_dim;
    codes c = {&s.data, Z, malloc(n * Z * sizeof(float)), malloc(n * Z * sizeof(float)),
               NULL, NULL, Z2, malloc(n * (Z2 ? Z2 : 1) * sizeof(float)),
               malloc(n * (Z2 ? Z2 : 1) * sizeof(float))};
    int rc = 1;
    if (dist_any(!c.mu || !c.logvar || !c.mu2 || !c.logvar2)) {
        say_error("out of memory for %zu latent codes", n);
    } else {
        infer_per_image(&s.m, &s.sh, &s.data, &s.view, o->run.set.seed, c.mu, c.logvar, NULL,
                        NULL);
        if (Z2) /* q(h2|h1) at h1's mean */
            infer_top_means(&s.m, &s.a, &s.data, &s.view, c.mu2, c.logvar2);
        /* The header: index,label,mu_0..mu_{Z-1},logvar_0..logvar_{Z-1}; with
         * two stochastic layers h1_mu_*, h1_logvar_*, h2_mu_*, h2_logvar_*. */
        size_t cap = 32 + 32 * (Z + Z2);
        char *header = malloc(cap);
        if (header) {
            const char *p1 = Z2 ? "h1_" : "";
            size_t len = (size_t)snprintf(header, cap, "index,label");
            for (size_t j = 0; j < Z; j++)
                len += (size_t)snprintf(header + len, cap - len, ",%smu_%zu", p1, j);
            for (size_t j = 0; j < Z; j++)
                len += (size_t)snprintf(header + len, cap - len, ",%slogvar_%zu", p1, j);
            for (size_t j = 0; j < Z2; j++)
                len += (size_t)snprintf(header + len, cap - len, ",h2_mu_%zu", j);
            for (size_t j = 0; j < Z2; j++)
                len += (size_t)snprintf(header + len, cap - len, ",h2_logvar_%zu", j);
            snprintf(header + len, cap - len, "\n");
            if (dist_rank() > 0) { /* rank 0 writes */
                rc = 0;
            } else if (write_csv(path, header, n, code_row, &c) == 0) {
                if (Z2)
                    printf("wrote %s (%zu images, %zu + %zu latent dimensions: h1's, h2's)\n",
                           path, n, Z, Z2);
                else
                    printf("wrote %s (%zu images, %zu latent dimensions)\n", path, n, Z);
                rc = 0;
            }
            free(header);
        } else {
            say_error("out of memory");
        }
    }
    free(c.mu);
    free(c.logvar);
    free(c.mu2);
    free(c.logvar2);
    session_free(&s);
    return rc;
}

static void score_row(void *ctx, size_t i, FILE *fp)
{
    const codes *c = ctx;
    fprintf(fp, "%zu,%u,%.6f,%.6f,%.6f\n", i, c->set->labels[i],
            (double)c->rec[i] + c->kl[i], c->rec[i], c->kl[i]);
}

/* --iw: the bound alone. */
typedef struct bounds {
    const idx_set *set;
    double *iw;
} bounds;

static void iw_row(void *ctx, size_t i, FILE *fp)
{
    const bounds *b = ctx;
    fprintf(fp, "%zu,%u,%.6f\n", i, b->set->labels[i], b->iw[i]);
}

/* An image's score and index, sorted together. */
typedef struct scored {
    float score;
    uint32_t index;
} scored;

/* Highest score first; ties by index, so the order is fixed. */
static int by_score_desc(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The top images of set by score, as a grid (through view). */
static int write_top(const session *s, const float *score, size_t top,
                     const char *path)
{
    size_t n = s->data.n, D = s->m.cfg.x_dim;
    if (top > n)
        top = n;
    scored *ranked = malloc(n * sizeof *ranked);
    uint32_t *order = malloc((top ? top : 1) * sizeof *order);
    float *tiles = malloc(top * D * sizeof *tiles);
    int rc = -1;
    err_msg err;
    if (!ranked || !order || !tiles) {
        say_error("out of memory");
    } else {
        for (size_t i = 0; i < n; i++)
            ranked[i] = (scored){score[i], (uint32_t)i};
        qsort(ranked, n, sizeof *ranked, by_score_desc);
        for (size_t i = 0; i < top; i++)
            order[i] = ranked[i].index;
        idx_gather(&s->data, order, 0, top, &s->view, tiles);
        if (show_tiles_png(&s->m, tiles, top, SHOW_COLS, path, &err))
            say_error("%s", err.text);
        else
            rc = 0;
    }
    free(ranked);
    free(order);
    free(tiles);
    return rc;
}

int cmd_score(cli_opts *o)
{
    session s;
    const char *path = o->set[O_TOP] && !o->set[O_OUTPUT] ? SCORE_TOP_OUTPUT : o->output;
    int open_rc = session_open_data(o, &s, o->split, 1, path);
    if (open_rc)
        return open_rc;
    size_t n = s.data.n;
    codes c = {&s.data, s.m.cfg.z_dim, NULL, NULL, malloc(n * sizeof(float)),
               malloc(n * sizeof(float)), 0, NULL, NULL};
    bounds b = {&s.data, malloc(n * sizeof(double))};
    float *score = malloc(n * sizeof *score);
    int rc = 1, iw = o->set[O_IW];
    err_msg err;
    if (dist_any(!c.rec || !c.kl || !b.iw || !score)) {
        say_error("out of memory for %zu scores", n);
    } else if (iw && infer_iw_images(&s.m, &s.data, &s.view, o->iw, o->run.set.seed,
                                     b.iw, &err)) {
        say_error("%s", err.text);
    } else {
        if (!iw)
            infer_per_image(&s.m, &s.sh, &s.data, &s.view, o->run.set.seed, NULL, NULL, c.rec,
                            c.kl);
        for (size_t i = 0; i < n; i++)
            score[i] = iw ? (float)b.iw[i] : c.rec[i] + c.kl[i];
        if (dist_rank() > 0) { /* rank 0 writes */
            rc = 0;
        } else if (o->set[O_TOP]) {
            if (write_top(&s, score, o->top, path) == 0) {
                printf("wrote %s (the %zu highest-scoring of %zu images)\n", path,
                       o->top < n ? o->top : n, n);
                rc = 0;
            }
        } else if (iw ? write_csv(path, "index,label,score\n", n, iw_row, &b) == 0
                      : write_csv(path, "index,label,score,rec,kl\n", n, score_row, &c) == 0) {
            printf("wrote %s (%zu images)\n", path, n);
            rc = 0;
        }
    }
    free(c.rec);
    free(c.kl);
    free(b.iw);
    free(score);
    session_free(&s);
    return rc;
}

/* The latent map of a model with more than 2 latent dimensions: the test
 * set's posterior means on their first two principal components, written
 * as CSV beside path and drawn from it by gnuplot into path. Frees the
 * session; returns the exit status. */
static int manifold_map(cli_opts *o, session *s, const char *path)
{
    size_t Z = o->layer == 2 ? s->m.cfg.z2_dim : s->m.cfg.z_dim;
    char *csv = NULL;
    int rc = 1;
    if (Z < 2) {
        say_error("the model in %s has a 1-D %s: manifold draws a 2-D latent's grid, "
                  "or the first two principal components of more (vae encode writes the "
                  "codes)", o->ckpt,
                  !s->m.cfg.z2_dim ? "latent space" : o->layer == 2 ? "h2" : "h1");
        goto done;
    }
    /* The picture is the command's whole output: no gnuplot, no run. */
    if (!plot_gnuplot_found()) {
        say_error("the latent map is drawn by gnuplot, which is not on PATH: %s",
                  PLOT_INSTALL_HINT);
        goto done;
    }
    if (!(csv = show_map_csv_path(path))) {
        say_error("out of memory");
        goto done;
    }
    paths_list l = {0};
    paths_add(&l, "--ckpt", o->ckpt, PATHS_READ);
    cli_add_split(o, &l, "t10k");
    paths_add(&l, "-o", path, PATHS_PAIRED); /* no CSV beside a device */
    paths_add(&l, "the CSV beside -o", csv, PATHS_WRITE);
    if (cli_check_paths(&l)) {
        rc = EXIT_USAGE;
        goto done;
    }
    if ((rc = session_load(o, s, "t10k")) != 0) {
        free(csv);
        return rc; /* the session is freed */
    }
    err_msg err;
    double explained[2];
    if (show_latent_pca(&s->m, &s->sh, &s->data, &s->view, o->run.set.seed, (int)o->layer, csv,
                        path, explained, &err)) {
        say_error("%s", err.text);
        rc = 1;
    } else {
        printf("wrote %s and %s (posterior means of %zu test images on their first two "
               "principal components: %.1f%% and %.1f%% of the %zu-D latent's "
               "variance)\n", path, csv, s->data.n, 100.0 * explained[0],
               100.0 * explained[1], Z);
    }
done:
    free(csv);
    session_free(s);
    return rc;
}

/* --layer against the model: 2 needs two stochastic layers. Returns the
 * layer's size, or 0 after a usage error. */
static size_t layer_size(cli_opts *o, const model_net *m)
{
    if (o->layer == 2 && !m->cfg.z2_dim) {
        usage_error("--layer 2: the model has one stochastic layer");
        return 0;
    }
    return o->layer == 2 ? m->cfg.z2_dim : m->cfg.z_dim;
}

int cmd_manifold(cli_opts *o)
{
    session s;
    const char *path = o->output;
    int rc = session_open(o, &s, INFER_PICTURE_CAP, path, NULL);
    if (rc)
        return rc;
    rc = 1;
    err_msg err;
    size_t Z = layer_size(o, &s.m);
    if (Z == 0 || check_label_options(o, &s)) {
        rc = EXIT_USAGE;
    } else if (show_map_is_grid(&s.m.cfg)) { /* else the map (two layers: no prior grid) */
        size_t side = o->n;
        if (side > 200) {
            usage_error("--n %zu: a manifold grid is at most 200 x 200", side);
            rc = EXIT_USAGE;
        } else if (show_manifold_png(&s.m, &s.a, side, o->set[O_LABEL] ? (int)o->label : 0,
                                     path, &err)) {
            say_error("%s", err.text);
        } else {
            printf("wrote %s (%zu x %zu decodings over the 2-D latent space)\n", path,
                   side, side);
            rc = 0;
        }
    } else if (o->set[O_N]) {
        usage_error("--n sets the side of the grid of a 2-D latent; the map of the "
                    "model in %s is its test codes' principal components", o->ckpt);
        rc = EXIT_USAGE;
    } else {
        return manifold_map(o, &s, path); /* the 2-D grid above needs no data */
    }
    session_free(&s);
    return rc;
}

/* ===================================================================== */

/* "label value unit, ..." of the settings in use, wrapped after commas at
 * 88 columns, each line after the first indented by 10. */
static void print_settings(const run_settings *set)
{
    char text[2048];
    settings_describe(set, 0, SETTING_COUNT - 1, text, sizeof text);
    size_t col = 10;
    for (char *item = strtok(text, ","); item; item = strtok(NULL, ",")) {
        item += *item == ' ';
        size_t len = strlen(item);
        if (col > 10 && col + len + 2 > 88) {
            printf(",\n%10s", "");
            col = 10;
        } else if (col > 10) {
            printf(", ");
            col += 2;
        }
        fputs(item, stdout);
        col += len;
    }
    putchar('\n');
}

/* What is in --ckpt, without loading a model or any data. */
int cmd_info(cli_opts *o)
{
    ckpt_data d;
    err_msg err;
    if (ckpt_read(o->ckpt, &d, &err)) {
        say_error("%s", err.text);
        return 1;
    }
    const model_config *c = &d.cfg;
    const ckpt_train *t = &d.train;
    char hidden[160], hidden2[160], latent[48];
    model_hidden_text(c, o->json, hidden, sizeof hidden);
    model_latent_text(c, o->json, latent, sizeof latent);
    hidden2[0] = '\0';
    for (size_t i = 0, len = 0; i < c->n_hidden2 && len < sizeof hidden2; i++)
        len += (size_t)snprintf(hidden2 + len, sizeof hidden2 - len, "%s%zu", i ? "," : "",
                                c->hidden2[i]);
    const char *act = enum_name(&model_act_names, (int)c->act);
    const char *arch = enum_name(&model_arch_names, (int)c->arch);
    const char *lik = model_lik_name(c->likelihood);
    if (o->json) {
        printf("{\"version\":%u,\"arch\":\"%s\",\"x_dim\":%zu,\"hidden\":[%s],"
               "\"latent\":%zu,\"act\":\"%s\",\"likelihood\":\"%s\",\"classes\":%zu,"
               "\"params\":%zu,\"height\":%zu,\"width\":%zu,\"channels\":%zu,"
               "\"latent2\":%zu,\"hidden2\":[%s],"
               "\"epoch\":%llu,\"step\":%llu,\"adam_t\":%llu", d.version, arch, c->x_dim,
               hidden, c->z_dim, act, lik, c->n_classes, d.n_params, c->height, c->width,
               c->channels, c->z2_dim, hidden2, (unsigned long long)t->epoch,
               (unsigned long long)t->step, (unsigned long long)t->adam_t);
        for (int i = 0; i < SETTING_COUNT; i++) { /* every setting, as stored */
            char v[64];
            printf(",\"%s\":%s", SETTINGS[i].key,
                   settings_format(&t->set, (setting_id)i, 1, v, sizeof v));
        }
        printf(",\"best_epoch\":%llu,\"best_loss\":%.6f",
               (unsigned long long)t->best_epoch, t->best_loss);
        if (t->data.n)
            printf(",\"data\":{\"images\":%llu,\"rows\":%llu,\"cols\":%llu,"
                   "\"pixels_crc32\":\"%08x\",\"labels_crc32\":\"%08x\"}}\n",
                   (unsigned long long)t->data.n, (unsigned long long)t->data.rows,
                   (unsigned long long)t->data.cols, (unsigned)t->data.pixels_crc,
                   (unsigned)t->data.labels_crc);
        else
            printf(",\"data\":null}\n");
    } else {
        printf("%s: vae checkpoint, format version %u\n"
               "model     %s, %zux%zu %s images (%zu values), hidden %s, latent %s, %s, "
               "%s likelihood%s; %zu parameters\n"
               "training  %llu epoch%s done%s\n", o->ckpt, d.version, arch, c->width,
               c->height, c->channels == 3 ? "RGB" : "grey", c->x_dim, hidden, latent, act,
               lik, c->n_classes ? ", conditional" : "", d.n_params,
               (unsigned long long)t->epoch, t->epoch == 1 ? "" : "s",
               t->step ? " and part of the next (resumable)" : "");
        printf("settings  ");
        print_settings(&t->set);
        if (t->set.valid)
            printf("validate  %llu images held out; lowest loss %.4f at epoch %llu\n",
                   (unsigned long long)t->set.valid, t->best_loss,
                   (unsigned long long)t->best_epoch);
        if (t->data.n)
            printf("data      %llu training images of %llux%llu (pixels CRC-32 %08x, "
                   "labels CRC-32 %08x)\n", (unsigned long long)t->data.n,
                   (unsigned long long)t->data.rows, (unsigned long long)t->data.cols,
                   (unsigned)t->data.pixels_crc, (unsigned)t->data.labels_crc);
        else
            printf("data      not recorded (a version-2 checkpoint)\n");
    }
    ckpt_data_free(&d);
    return 0;
}

/* ===================================================================== */

/* The probe's result: one line, or one JSON object with each label's
 * accuracy (null for a label no test image has). */
static void print_probe(cli_opts *o, const probe_result *r, double enc_s, double knn_s)
{
    if (!o->json) {
        printf("k-NN accuracy (k = %zu, %zu references, %zu queries): %.2f%% "
               "[encode %.2fs, k-NN %.2fs]\n", r->k, r->n_ref, r->n_query,
               100.0 * r->accuracy, enc_s, knn_s);
        return;
    }
    printf("{\"accuracy\":%.6f,\"k\":%zu,\"n_ref\":%zu,\"n_query\":%zu,\"correct\":%zu,"
           "\"per_class\":[", r->accuracy, r->k, r->n_ref, r->n_query, r->correct);
    size_t n_classes = 0;
    for (size_t c = 0; c < PROBE_CLASSES; c++)
        if (r->class_n[c])
            n_classes = c + 1;
    for (size_t c = 0; c < n_classes; c++) {
        printf("%s{\"label\":%zu,\"n\":%zu,\"accuracy\":", c ? "," : "", c, r->class_n[c]);
        if (r->class_n[c])
            printf("%.6f}", (double)r->class_correct[c] / (double)r->class_n[c]);
        else
            printf("null}");
    }
    printf("],\"encode_seconds\":%.4f,\"knn_seconds\":%.4f,\"seconds\":%.4f}\n", enc_s,
           knn_s, enc_s + knn_s);
}

/* k-NN accuracy of the posterior means (probe.h): the training images'
 * means, with their labels, are the references; the test images' the
 * queries. */
int cmd_probe(cli_opts *o)
{
    session s;
    int rc = session_open_data(o, &s, "train", 1, NULL);
    if (rc)
        return rc;
    size_t k = o->knn;
    idx_set test = {0};
    paths_list l = {0};
    cli_add_split(o, &l, "t10k");
    if (!s.data.n_classes) {
        say_error("%s: the training set has no label file; the probe needs labels",
                  o->data);
        rc = 1;
    } else if (k > s.data.n) {
        usage_error("--k %zu: more than the %zu training images", k, s.data.n);
        rc = EXIT_USAGE;
    } else if (cli_check_paths(&l)) {
        rc = EXIT_USAGE;
    } else if (cli_load_split(o, &test, "t10k") || cli_check_data(o, &s.m.cfg, &test, "t10k")) {
        rc = 1;
    } else if (!test.n_classes) {
        say_error("%s: the test set has no label file; the probe needs labels", o->data);
        rc = 1;
    }
    size_t Z = layer_size(o, &s.m), ref_b = 0, query_b = 0;
    if (Z == 0)
        rc = EXIT_USAGE;
    float *ref = NULL, *query = NULL;
    if (rc == 0) {
        rc = 1;
        if (err_mul_size(s.data.n * sizeof(float), Z, &ref_b) ||
            err_mul_size(test.n * sizeof(float), Z, &query_b) ||
            !(ref = malloc(ref_b)) || !(query = malloc(query_b))) {
            say_error("out of memory for %zu + %zu latent codes", s.data.n, test.n);
        } else {
            /* mu only: the draws of z (seeded) play no part. */
            double t0 = cli_now();
            infer_layer_means(&s.m, &s.sh, &s.data, &s.view, o->run.set.seed, (int)o->layer,
                              ref);
            infer_layer_means(&s.m, &s.sh, &test, &s.view, o->run.set.seed, (int)o->layer,
                              query);
            double t1 = cli_now();
            probe_points r = {ref, s.data.labels, s.data.n}, q = {query, test.labels, test.n};
            probe_result res;
            err_msg err;
            if (probe_knn(&r, &q, Z, k, NULL, &res, &err)) {
                say_error("%s", err.text);
            } else {
                print_probe(o, &res, t1 - t0, cli_now() - t1);
                rc = 0;
            }
        }
    }
    free(ref);
    free(query);
    idx_free(&test);
    session_free(&s);
    return rc;
}

/* ===================================================================== */

/* The ranking of traverse: one line a dimension after a header, or one
 * JSON object; rows is how many of them the picture shows. */
static void print_traverse(cli_opts *o, const session *s, const traverse_dim *dims,
                           const float *unit, size_t rows, size_t steps,
                           const char *path)
{
    size_t Z = traverse_latent(&s->m, (int)o->layer);
    const char *layer = !s->m.cfg.z2_dim ? "" : o->layer == 2 ? " of h2" : " of h1";
    /* The image's label, or none for an unlabelled set (a flat import). */
    char label[16] = "null", said[24] = " (unlabelled)";
    if (s->data.n_classes) {
        snprintf(label, sizeof label, "%u", (unsigned)s->data.labels[o->from]);
        snprintf(said, sizeof said, ", label %s", label);
    }
    double total = 0.0;
    for (size_t r = 0; r < Z; r++)
        total += dims[r].kl;
    if (o->json) {
        printf("{\"image\":%zu,\"label\":%s,\"latent\":%zu,\"rows\":%zu,\"steps\":%zu,"
               "\"range\":%g,\"unit\":\"prior_sd\",\"n\":%zu,\"kl_total\":%s,\"dims\":[",
               o->from, label, Z, rows, steps, (double)TRAVERSE_RANGE, s->data.n,
               cli_json(total, 6, 'f').s);
        for (size_t r = 0; r < Z; r++)
            printf("%s{\"rank\":%zu,\"dim\":%zu,\"kl\":%s,\"sd_means\":%s,"
                   "\"unit\":%s}", r ? "," : "", r + 1, dims[r].dim,
                   cli_json(dims[r].kl, 6, 'f').s, cli_json(dims[r].sd_means, 6, 'f').s,
                   cli_json(unit[dims[r].dim], 6, 'g').s);
        printf("]}\n");
        return;
    }
    printf("wrote %s (test image %zu%s: the %zu most active of %zu latent "
           "dimensions%s, each from -%g to +%g prior standard deviations in %zu steps)\n",
           path, o->from, said, rows, Z, layer, (double)TRAVERSE_RANGE,
           (double)TRAVERSE_RANGE, steps);
    printf("latent dimensions by KL to the prior, mean over %zu test images "
           "(%.4f nats in all), and the prior's sd of each at the image (a step's "
           "unit):\n rank  dim  KL (nats)  sd of means  prior sd\n", s->data.n, total);
    for (size_t r = 0; r < Z; r++)
        printf("%5zu %4zu %10.4f %12.4f %9.4f%s\n", r + 1, dims[r].dim, dims[r].kl,
               dims[r].sd_means, unit[dims[r].dim], r < rows ? "" : "  (not drawn)");
}

/* Latent traversals: the dimensions ranked by the KL they carry over the
 * test set, and the top --top moved one at a time around test image
 * --from's posterior mean (traverse.h). */
int cmd_traverse(cli_opts *o)
{
    session s;
    const char *path = o->output;
    int rc = session_open_data(o, &s, "t10k", INFER_PICTURE_CAP, path);
    if (rc)
        return rc;
    if (layer_size(o, &s.m) == 0) {
        session_free(&s);
        return EXIT_USAGE;
    }
    int layer = (int)o->layer, two = s.m.cfg.z2_dim != 0;
    size_t n = s.data.n, Z = traverse_latent(&s.m, layer);
    size_t rows = o->set[O_TOP] ? o->top : Z < TRAVERSE_MAX_ROWS ? Z : TRAVERSE_MAX_ROWS;
    size_t steps = o->steps;
    if (o->from >= n) {
        usage_error("--from %zu: the test set has images 0 to %zu", o->from, n - 1);
        session_free(&s);
        return EXIT_USAGE;
    }
    if (rows > Z) {
        usage_error("--top %zu: the model in %s has %zu latent dimension%s", rows,
                    o->ckpt, Z, Z == 1 ? "" : "s");
        session_free(&s);
        return EXIT_USAGE;
    }
    rc = 1;
    size_t bytes = 0;
    float *mu = NULL, *lv = NULL, *unit = malloc(Z * sizeof *unit), *prior = NULL;
    traverse_dim *dims = malloc(Z * sizeof *dims);
    size_t *order = malloc(Z * sizeof *order);
    err_msg err;
    if (err_mul_size(n * sizeof(float), Z, &bytes) || !(mu = malloc(bytes)) ||
        !(lv = malloc(bytes)) || !unit || !dims || !order ||
        (two && layer == 1 && !(prior = malloc(2 * bytes)))) {
        say_error("out of memory for %zu latent codes", n);
    } else {
        /* mu and logvar only: the seeded draws of z play no part (h2's are
         * q(h2|h1)'s at h1's mean). */
        if (two && layer == 2)
            infer_top_means(&s.m, &s.a, &s.data, &s.view, mu, lv);
        else
            infer_per_image(&s.m, &s.sh, &s.data, &s.view, o->run.set.seed, mu, lv, NULL,
                            NULL);
        if (prior) /* h1's prior, p(h1|h2), of each image */
            infer_top_prior(&s.m, &s.a, &s.data, &s.view, prior);
        const float *row = prior ? prior + o->from * 2 * Z : NULL;
        if (traverse_rank(&s.m, &s.a, layer, mu, lv, prior, s.data.labels, n, dims, &err)) {
            say_error("%s", err.text);
        } else {
            for (size_t r = 0; r < Z; r++)
                order[r] = dims[r].dim;
            uint8_t label = s.data.labels[o->from];
            traverse_unit(&s.m, &s.a, layer, row, label, unit);
            if (traverse_png(&s.m, &s.a, layer, row, mu + o->from * Z, label, order, rows,
                             steps, path, &err)) {
                say_error("%s", err.text);
            } else {
                print_traverse(o, &s, dims, unit, rows, steps, path);
                rc = 0;
            }
        }
    }
    free(mu);
    free(lv);
    free(prior);
    free(unit);
    free(dims);
    free(order);
    session_free(&s);
    return rc;
}
