/* parse.h - numbers from text, checked against a range: the command line's
 * values and a setting's (train/settings.h). Messages name the option or
 * setting and the problem; nothing is printed. */
#ifndef VAE_PARSE_H
#define VAE_PARSE_H

#include <stdint.h>

#include "err.h"

/* A whole number in [lo, hi] written in decimal (no sign, no spaces) into
 * *out. Returns 0, or -1 with err ("NAME: '-3' is not a whole number >= 0",
 * "NAME: 9 is too large (at most 8)", "NAME: must be at least 1, not 0"). */
int parse_uint(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
               err_msg *err);

/* A finite number in the range from lo to hi into *out; lo_in and hi_in
 * say whether each end belongs to it. Returns 0, or -1 with err. */
int parse_real(const char *name, const char *s, double lo, int lo_in, double hi, int hi_in,
               double *out, err_msg *err);

#endif
