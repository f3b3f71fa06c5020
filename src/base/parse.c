/* parse.c - numbers from text in a range (see parse.h). */
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int parse_uint(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
               err_msg *err)
{
    /* strtoull would take a sign or leading spaces (and wrap "-1"). */
    if (*s < '0' || *s > '9')
        return err_set(err, "%s: '%s' is not a whole number >= %llu", name, s,
                       (unsigned long long)lo);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return err_set(err, "%s: '%s' is not a whole number", name, s);
    if (errno == ERANGE && hi == UINT64_MAX)
        return err_set(err, "%s: '%s' is not a whole number below 2^64", name, s);
    if (errno == ERANGE || v > hi)
        return err_set(err, "%s: %s is too large (at most %llu)", name, s,
                       (unsigned long long)hi);
    if (v < lo)
        return err_set(err, "%s: must be at least %llu, not %s", name,
                       (unsigned long long)lo, s);
    *out = v;
    return 0;
}

int parse_real(const char *name, const char *s, double lo, int lo_in, double hi, int hi_in,
               double *out, err_msg *err)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v))
        return err_set(err, "%s: '%s' is not a number", name, s);
    if (lo_in ? !(v >= lo) : !(v > lo))
        return err_set(err, "%s: %s must be %s %g", name, s, lo_in ? "at least" : "above",
                       lo);
    if (hi_in && !(v <= hi))
        return err_set(err, "%s: %s is too large (at most %g)", name, s, hi);
    if (!hi_in && !(v < hi))
        return err_set(err, "%s: must be below %g, not %s", name, hi, s);
    *out = v;
    return 0;
}
