/* err.h - error messages carried from library code up to the CLI.
 *
 * Library functions never print and never exit: on failure they fill an
 * err_msg and return -1 (or NULL). Only src/cli/main.c turns them into text and
 * exit codes. */
#ifndef VAE_ERR_H
#define VAE_ERR_H

#include <stddef.h>

#define ERR_MSG_LEN 512

typedef struct err_msg {
    char text[ERR_MSG_LEN];
} err_msg;

/* Formats the message into err (if err is non-NULL). Always returns -1. */
int err_set(err_msg *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like err_set, with ": strerror(errnum)" appended. Always returns -1. */
int err_sys(err_msg *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Multiplies a*b into *out; returns 0, or -1 if the product overflows size_t. */
int err_mul_size(size_t a, size_t b, size_t *out);

#endif
