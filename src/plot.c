/* plot.c - running gnuplot (see include/plot.h). */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
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

/* Writes all of s to fd; stops quietly at the first failure (gnuplot's
 * exit status tells what went wrong). */
static void write_all(int fd, const char *s, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, s + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

int plot_png(const char *png, int width, int height, const char *script,
             const char *what, err_msg *err)
{
    char tmp[4096], qtmp[8200], head[8400];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", png, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp || plot_quote(qtmp, sizeof qtmp, tmp))
        return err_set(err, "%s: path too long", png);
    n = snprintf(head, sizeof head,
                 "set terminal pngcairo size %d,%d font ',10'\nset output %s\n", width,
                 height, qtmp);
    if (n < 0 || (size_t)n >= sizeof head)
        return err_set(err, "%s: path too long", png);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return err_sys(err, errno, "cannot run gnuplot");
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return err_sys(err, e, "cannot run gnuplot");
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (dup2(pipefd[0], 0) < 0 || devnull < 0 || dup2(devnull, 1) < 0 ||
            dup2(devnull, 2) < 0)
            _exit(126);
        close(pipefd[0]);
        close(pipefd[1]);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    close(pipefd[0]);
    /* A gnuplot that died early must not kill us with SIGPIPE. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    write_all(pipefd[1], head, (size_t)n);
    write_all(pipefd[1], script, strlen(script));
    close(pipefd[1]);
    signal(SIGPIPE, old);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            int e = errno;
            unlink(tmp);
            return err_sys(err, e, "cannot run gnuplot");
        }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        unlink(tmp);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
            return err_set(err, "gnuplot not found: no %s in %s (%s)", what, png,
                           PLOT_INSTALL_HINT);
        return err_set(err, "gnuplot failed drawing %s", png);
    }
    if (rename(tmp, png) != 0) {
        int e = errno;
        unlink(tmp);
        return err_sys(err, e, "cannot write %s", png);
    }
    return 0;
}
