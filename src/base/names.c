/* names.c - an enum's names (see names.h). */
#include "names.h"

#include <stdio.h>
#include <string.h>

const char *enum_name(const enum_names *e, int v)
{
    return v >= 0 && (size_t)v < e->n ? e->names[v] : NULL;
}

int enum_parse(const enum_names *e, const char *s)
{
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(s, e->names[i]))
            return (int)i;
    return -1;
}

void enum_list(const enum_names *e, char *out, size_t size)
{
    size_t len = 0;
    if (size)
        out[0] = '\0';
    for (size_t i = 0; i < e->n && len < size; i++) {
        int n = snprintf(out + len, size - len, "%s%s", i == 0 ? "" : i == e->n - 1 ? " or " : ", ",
                         e->names[i]);
        len += n > 0 ? (size_t)n : 0;
    }
}
