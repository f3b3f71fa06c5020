/* plot.c - running gnuplot (see src/view/plot.h). */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include "afile.h"

#include <errno.h>
#include <png.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int plot_gnuplot_found(void)
{
    /* The search execlp does: each folder of PATH (an empty entry is the
     * current folder; no PATH at all, the system's default). */
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char file[4096];
        int n = len ? snprintf(file, sizeof file, "%.*s/gnuplot", (int)len, p)
                    : snprintf(file, sizeof file, "gnuplot");
        if (n > 0 && (size_t)n < sizeof file && access(file, X_OK) == 0)
            return 1;
        if (!end)
            return 0;
        p = end;
    }
}

int plot_quote(char *out, size_t size, const char *s)
{
    size_t k = 0;
    if (size < 3)
        return -1;
    out[k++] = '\'';
    for (; *s; s++) {
        if (k + 3 >= size)
            return -1;
        if (*s == '\'')
            out[k++] = '\'';
        out[k++] = *s;
    }
    out[k++] = '\'';
    out[k] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Talking to gnuplot: the script goes to its standard input, the PNG comes
 * back on its standard output, and what it says on standard error is kept
 * for the message. The three pipes are served together (poll), so neither
 * side can block the other however large the script or the picture. */

#define PLOT_MAX_PNG ((size_t)256 << 20) /* far above any chart we draw */
#define PLOT_MAX_SAY 512                 /* of gnuplot's standard error */

typedef struct plot_buf {
    unsigned char *data;
    size_t len, cap, max;
} plot_buf;

/* Appends what fd has ready to b (beyond b->max it is read and dropped).
 * Returns 1 while fd stays open, 0 at its end or on a read error. */
static int drain(int fd, plot_buf *b)
{
    unsigned char chunk[65536];
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (r <= 0)
        return 0;
    size_t n = (size_t)r;
    if (b->len + n > b->max)
        n = b->len < b->max ? b->max - b->len : 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->data, cap + 1);
        if (!p)
            return 1; /* keep reading, so gnuplot is not stuck; the size check fails */
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, chunk, n);
    b->len += n;
    return 1;
}

/* Feeds gnuplot the script and collects its output until it closes both
 * output pipes. Returns 0, or an errno when poll itself fails. */
static int converse(int in, int out, int say, const char *script, size_t len,
                    plot_buf *png, plot_buf *msg)
{
    size_t sent = 0;
    int open_out = 1, open_say = 1;
    if (len == 0) {
        close(in);
        in = -1;
    }
    while (open_out || open_say) {
        struct pollfd p[3] = {{in, POLLOUT, 0}, {open_out ? out : -1, POLLIN, 0},
                              {open_say ? say : -1, POLLIN, 0}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            if (in >= 0)
                close(in);
            return e;
        }
        if (in >= 0 && p[0].revents) {
            ssize_t w = (p[0].revents & POLLOUT) ? write(in, script + sent, len - sent) : -1;
            if (w > 0)
                sent += (size_t)w;
            /* Done, or gnuplot stopped reading (its exit status tells why). */
            if (sent == len || (w < 0 && errno != EINTR && errno != EAGAIN)) {
                close(in);
                in = -1;
            }
        }
        if (p[1].revents)
            open_out = drain(out, png);
        if (p[2].revents)
            open_say = drain(say, msg);
    }
    if (in >= 0)
        close(in);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* What gnuplot gave is checked before it replaces anything: a PNG that
 * ends with its IEND chunk and decodes whole, of the size asked for. */

static int png_whole(const plot_buf *b, int width, int height)
{
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D',
                                           0xae, 0x42, 0x60, 0x82};
    if (!b->data || b->len < 8 + sizeof iend || b->len >= b->max ||
        png_sig_cmp((png_const_bytep)b->data, 0, 8) != 0 ||
        memcmp(b->data + b->len - sizeof iend, iend, sizeof iend) != 0)
        return 0;
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, b->data, b->len))
        return 0;
    int ok = 0;
    if (im.width == (png_uint_32)width && im.height == (png_uint_32)height) {
        im.format = PNG_FORMAT_GRAY;
        unsigned char *px = malloc(PNG_IMAGE_SIZE(im));
        ok = px && png_image_finish_read(&im, NULL, px, 0, NULL) != 0;
        free(px);
    }
    png_image_free(&im);
    return ok;
}

/* gnuplot's first line on standard error, for the message ("" if none). */
static const char *first_line(plot_buf *msg)
{
    if (!msg->data)
        return "";
    msg->data[msg->len] = '\0';
    char *s = (char *)msg->data;
    s += strspn(s, " \t\r\n");
    s[strcspn(s, "\r\n")] = '\0';
    return s;
}

int plot_png_stage(afile *f, const char *png, int width, int height, const char *script,
                   const char *what, err_msg *err)
{
    memset(f, 0, sizeof *f); /* not open until the chart is whole */
    char head[128];
    /* No "set output": pngcairo then writes the picture to standard output. */
    int n = snprintf(head, sizeof head, "set terminal pngcairo size %d,%d font ',10'\n",
                     width, height);
    size_t hlen = (size_t)n, slen = strlen(script);
    char *all = malloc(hlen + slen + 1);
    if (!all)
        return err_set(err, "%s: out of memory", png);
    memcpy(all, head, hlen);
    memcpy(all + hlen, script, slen + 1);

    int to[2] = {-1, -1}, from[2] = {-1, -1}, says[2] = {-1, -1};
    if (pipe(to) != 0 || pipe(from) != 0 || pipe(says) != 0) {
        int e = errno;
        int fds[6] = {to[0], to[1], from[0], from[1], says[0], says[1]};
        for (int i = 0; i < 6; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        free(all);
        return err_sys(err, e, "cannot run gnuplot");
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* Its own process group: a Ctrl-C meant for vae train (which then
         * saves the run) does not kill the chart half-drawn. */
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(to[0], 0) < 0 || dup2(from[1], 1) < 0 || dup2(says[1], 2) < 0)
            _exit(126);
        int fds[6] = {to[0], to[1], from[0], from[1], says[0], says[1]};
        for (int i = 0; i < 6; i++)
            if (fds[i] > 2) /* not one it now reads or writes through */
                close(fds[i]);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    int fork_errno = errno;
    close(to[0]);
    close(from[1]);
    close(says[1]);
    if (pid < 0) {
        close(to[1]);
        close(from[0]);
        close(says[0]);
        free(all);
        return err_sys(err, fork_errno, "cannot run gnuplot");
    }
    /* A gnuplot that died early must not kill us with SIGPIPE. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    plot_buf out = {NULL, 0, 0, PLOT_MAX_PNG}, msg = {NULL, 0, 0, PLOT_MAX_SAY};
    int poll_errno = converse(to[1], from[0], says[0], all, hlen + slen, &out, &msg);
    signal(SIGPIPE, old);
    close(from[0]);
    close(says[0]);
    free(all);
    int st = 0, rc = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            rc = err_sys(err, errno, "cannot run gnuplot");
            break;
        }
    if (rc == 0 && poll_errno)
        rc = err_sys(err, poll_errno, "cannot run gnuplot");
    if (rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 127)
        rc = err_set(err, "gnuplot not found: no %s in %s (%s)", what, png, PLOT_INSTALL_HINT);
    else if (rc == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
        rc = err_set(err, "gnuplot failed drawing %s%s%s", png, msg.len ? ": " : "",
                     first_line(&msg));
    else if (rc == 0 && !png_whole(&out, width, height))
        rc = err_set(err, "gnuplot gave no whole %dx%d PNG for %s (%zu bytes%s%s); the "
                     "file is left as it was", width, height, png, out.len,
                     msg.len ? ": " : "", first_line(&msg));
    if (rc == 0 && afile_open(f, png, err) != 0)
        rc = -1;
    else if (rc == 0)
        fwrite(out.data, 1, out.len, f->fp); /* a failed write shows at commit */
    free(out.data);
    free(msg.data);
    return rc;
}

int plot_png(const char *png, int width, int height, const char *script,
             const char *what, err_msg *err)
{
    afile f;
    if (plot_png_stage(&f, png, width, height, script, what, err))
        return -1;
    return afile_commit(&f, err);
}
