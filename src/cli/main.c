/* main.c - the vae command line's entry: finds the command in the table
 * (cli_cmds.c), parses its options (cli_opts.c), joins an MPI job if
 * started by mpirun, runs it, and checks that what it printed reached
 * standard output. See src/cli/cli.h. */
#define _GNU_SOURCE /* pthread_setattr_default_np */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cpu.h"
#include "dist.h"
#include "par.h"

/* -o naming the pipe standard output writes to ("vae sample -o /dev/stdout
 * | display"): the data goes there through a copy of the descriptor
 * (/dev/fd/N, into buf), and the command's text to standard error, so that
 * none of it lands in the data. (A file stdout is redirected to needs
 * nothing: -o replaces it whole, by a rename.) */
static void text_off_output(cli_opts *o, char *buf, size_t size)
{
    struct stat a, b;
    if (!o->output || stat(o->output, &a) != 0 || fstat(STDOUT_FILENO, &b) != 0 ||
        a.st_dev != b.st_dev || a.st_ino != b.st_ino ||
        !(S_ISFIFO(b.st_mode) || S_ISSOCK(b.st_mode)))
        return;
    fflush(stdout);
    int fd = dup(STDOUT_FILENO);
    if (fd < 0)
        return;
    if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        close(fd);
        return;
    }
    snprintf(buf, size, "/dev/fd/%d", fd);
    o->output = buf;
}

/* Started by mpirun: joins the job (dist.h). A command that does not
 * split its work across ranks (its table entry says so) refuses more
 * than one; ranks other than 0 print nothing to stdout. Returns 0, or -1
 * after a message. */
static int join_ranks(const cmd_spec *c, const cli_opts *o, int *argc, char ***argv)
{
    err_msg err;
    if (dist_init(argc, argv, &err)) {
        say_error("%s", err.text);
        dist_abort(1);
        return -1;
    }
    if (dist_size() < 2)
        return 0;
    if (!c->mpi || (c->mpi_unless && o->set[c->mpi_unless])) {
        if (dist_rank() == 0) {
            /* "'vae train', 'vae eval' and 'vae bench' (without --iw)" */
            char which[320] = "";
            size_t n = 0, seen = 0;
            for (size_t i = 0; i < CLI_N_CMDS; i++)
                n += CLI_CMDS[i].mpi != 0;
            for (size_t i = 0; i < CLI_N_CMDS; i++) {
                const cmd_spec *s = &CLI_CMDS[i];
                if (!s->mpi)
                    continue;
                size_t len = strlen(which);
                seen++;
                snprintf(which + len, sizeof which - len, "%s'vae %s'%s%s%s",
                         seen == 1 ? "" : seen == n ? " and " : ", ", s->name,
                         s->mpi_unless ? " (without " : "",
                         s->mpi_unless ? cli_option_name(s->mpi_unless) : "",
                         s->mpi_unless ? ")" : "");
            }
            say_error("runs in one process: under mpirun only %s split their work across "
                      "ranks so far (start it without mpirun, or -np 1)", which);
        }
        dist_finalize();
        return -1;
    }
    if (dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) {
        say_error("cannot silence stdout: %s", strerror(errno));
        dist_abort(1);
        return -1;
    }
    return 0;
}

/* Whatever a command printed must have reached standard output: a full
 * disk or a closed pipe is an error (SIGPIPE is ignored, so a closed pipe
 * is EPIPE here rather than a silent death). Returns 0, or -1 after a
 * message. */
static int finish_stdout(void)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    say_error("cannot write standard output: %s",
              errno ? strerror(errno) : "an earlier write failed");
    return -1;
}

/* Descriptors 0 to 2 closed when vae starts ("vae train >&-"): /dev/null
 * there, read only, so that no file it opens lands on one (a lock file
 * written to as standard output) and a write to a closed standard output
 * still fails, as finish_stdout reports. */
static void hold_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int got = open("/dev/null", O_RDONLY);
        if (got >= 0 && got != fd) {
            dup2(got, fd);
            close(got);
        }
    }
}

/* The stack vae is built and tested with: Linux's default. */
#define STACK_WANT ((rlim_t)8 << 20)

/* Below this vae refuses to run: train, eval and sample reach less than
 * a fifth of it (they pass with 384 KiB). */
#define STACK_MIN ((rlim_t)2 << 20)

/* A small stack limit (ulimit -s 256) made vae crash (SIGSEGV) in deep
 * calls. Raises the soft limit to STACK_WANT (at most the hard limit) for
 * the main thread, and makes that the size of every thread started later
 * (the team, MPI's). Returns 0, or -1 after a message when the hard limit
 * is below STACK_MIN. */
static int stack_room(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur >= STACK_WANT)
        return 0;
    rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < STACK_WANT ? rl.rlim_max
                                                                           : STACK_WANT;
    if (want >= STACK_MIN) {
        struct rlimit up = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_STACK, &up) == 0) {
            pthread_attr_t a;
            if (pthread_attr_init(&a) == 0) {
                if (pthread_attr_setstacksize(&a, (size_t)want) == 0)
                    pthread_setattr_default_np(&a);
                pthread_attr_destroy(&a);
            }
            return 0;
        }
    }
    fprintf(stderr, "vae: the stack size limit (ulimit -s) is %llu KiB, with a hard limit of "
            "%llu KiB, below the %llu KiB vae needs: raise the hard limit (ulimit -Hs %llu)\n",
            (unsigned long long)(rl.rlim_cur >> 10),
            (unsigned long long)(rl.rlim_max == RLIM_INFINITY ? rl.rlim_cur : rl.rlim_max) >> 10,
            (unsigned long long)(STACK_MIN >> 10), (unsigned long long)(STACK_WANT >> 10));
    return -1;
}

int main(int argc, char **argv)
{
    hold_std_fds();
    signal(SIGPIPE, SIG_IGN);
    /* Past a file size limit (ulimit -f) a write fails with EFBIG, which
     * is reported as a full disk is, instead of the signal killing vae. */
    signal(SIGXFSZ, SIG_IGN);
    if (stack_room())
        return 1;
    cpu_tune_openblas(argv);
    cli_opts opts; /* the command's options, passed down to it */
    cli_opts *o = &opts;
    cli_defaults(o);
    if (argc < 2) {
        cli_print_help();
        return EXIT_USAGE;
    }
    /* "vae help CMD" (or --help, -h) is "vae CMD --help". */
    char help_flag[] = "--help";
    char *as_help[4] = {argv[0], argv[argc > 2 ? 2 : 1], help_flag, NULL};
    int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help");
    if (argc == 3 && help)
        for (size_t i = 0; i < CLI_N_CMDS; i++)
            if (!strcmp(argv[2], CLI_CMDS[i].name)) {
                argv = as_help;
                help = 0;
                break;
            }
    int global = help || !strcmp(argv[1], "--man") || !strcmp(argv[1], "--version");
    if (global && argc > 2) {
        if (argc == 3 && help)
            usage_error("help: '%s' is no command", argv[2]);
        else
            usage_error("%s takes no arguments, and '%s' is one", argv[1], argv[2]);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help();
        return finish_stdout() ? 1 : 0;
    }
    if (!strcmp(argv[1], "--man")) { /* the build writes vae.1 with it */
        cli_print_man();
        return finish_stdout() ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        char core[256];
        cpu_describe(core, sizeof core);
        printf("vae %s\n%s\n%s\n", VAE_VERSION, core, openblas_get_config());
        return finish_stdout() ? 1 : 0;
    }
    for (size_t i = 0; i < CLI_N_CMDS; i++) {
        const cmd_spec *c = &CLI_CMDS[i];
        if (strcmp(argv[1], c->name))
            continue;
        cli_set_command(c->name);
        int p = cli_parse(o, c, argc, argv, 2);
        if (p > 0) /* --help was asked for and printed */
            return finish_stdout() ? 1 : 0;
        if (p)
            return EXIT_USAGE;
        if (join_ranks(c, o, &argc, &argv))
            return 1;
        char data_fd[32];
        text_off_output(o, data_fd, sizeof data_fd);
        int rc = c->run(o);
        if (finish_stdout() && rc == 0)
            rc = 1;
        par_shutdown(); /* join the team: nothing is left running at exit */
        /* Under mpirun: a failed rank ends the job, so none waits in a
         * collective for it; a finished or stopped one leaves it cleanly. */
        if (rc != 0 && rc < 128)
            dist_abort(rc);
        dist_finalize();
        return rc;
    }
    fprintf(stderr, "vae: unknown command '%s' (see 'vae --help')\n", argv[1]);
    return EXIT_USAGE;
}
