/* names.h - an enum's names, written once beside the enum (its module's
 * .c file) and used by everything that reads or prints it: the option
 * parser, vae info, the run's page, the export's metadata. */
#ifndef VAE_NAMES_H
#define VAE_NAMES_H

#include <stddef.h>

/* names[v] is value v's name, for v in [0, n). */
typedef struct enum_names {
    const char *const *names;
    size_t n;
} enum_names;

/* The enum_names of a static array of names: its length counted, not typed. */
#define ENUM_NAMES(array) {(array), sizeof(array) / sizeof *(array)}

/* The name of value v, or NULL when v is out of range. */
const char *enum_name(const enum_names *e, int v);

/* The value named s, or -1 when no value has that name. */
int enum_parse(const enum_names *e, const char *s);

/* "a, b or c" into out (size bytes), for messages. */
void enum_list(const enum_names *e, char *out, size_t size);

#endif
