/* fuzz_file.h - the harnesses' input file: one memfd per process, rewritten
 * with each input and opened by the parsers as /proc/self/fd/N. */
#ifndef VAE_FUZZ_FILE_H
#define VAE_FUZZ_FILE_H

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Makes the memfd hold exactly data[0..size); returns its path, or NULL if
 * the input could not be stored (then it is skipped). */
static const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd < 0)
            return NULL;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0)
        return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w <= 0)
            return NULL;
        done += (size_t)w;
    }
    return path;
}

#endif
