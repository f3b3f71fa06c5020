/* err.c - error message helpers (see src/base/err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The longest message formatted whole before it is fitted into an err_msg
 * (two paths of PATH_MAX bytes and words around them). */
#define ERR_FULL_LEN 16384

/* full (n bytes) into err: whole when it fits, else its head and its tail
 * around " ... ", so that what a message ends with (the cause, the file's
 * own name) survives a long path in its middle. */
static void put(err_msg *err, const char *full, size_t n)
{
    if (n < sizeof err->text) {
        memcpy(err->text, full, n + 1);
        return;
    }
    static const char cut[] = " ... ";
    size_t head = (sizeof err->text - sizeof cut) / 3;
    size_t tail = sizeof err->text - sizeof cut - head;
    memcpy(err->text, full, head);
    memcpy(err->text + head, cut, sizeof cut - 1);
    memcpy(err->text + head + sizeof cut - 1, full + n - tail, tail);
    err->text[sizeof err->text - 1] = '\0';
}

/* fmt with ap into full (size bytes); returns the length written, cut to
 * what fits. */
static size_t format(char *full, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(full, size, fmt, ap);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

int err_set(err_msg *err, const char *fmt, ...)
{
    if (err) {
        char full[ERR_FULL_LEN] = "";
        va_list ap;
        va_start(ap, fmt);
        size_t len = format(full, sizeof full, fmt, ap);
        va_end(ap);
        put(err, full, len);
    }
    return -1;
}

int err_sys(err_msg *err, int errnum, const char *fmt, ...)
{
    if (err) {
        char full[ERR_FULL_LEN] = "";
        va_list ap;
        va_start(ap, fmt);
        size_t len = format(full, sizeof full, fmt, ap);
        va_end(ap);
        /* The cause is kept whatever the message's length. */
        char cause[256];
        int c = snprintf(cause, sizeof cause, ": %s", strerror(errnum));
        size_t clen = c < 0 ? 0 : (size_t)c < sizeof cause ? (size_t)c : sizeof cause - 1;
        if (len + clen >= sizeof full)
            len = sizeof full - 1 - clen;
        memcpy(full + len, cause, clen + 1);
        put(err, full, len + clen);
    }
    return -1;
}

int err_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}
