/* Writes N lines of 80 bytes (79 + newline) to stdout as fast as possible,
 * each with its sequence number, so a reader can count what arrived. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    static char buf[1 << 16];
    size_t used = 0;
    char line[81];
    memset(line, 'x', 79);
    line[79] = '\n';
    for (long i = 0; i < n; i++) {
        /* "line 0000001234 " then padding. */
        snprintf(line, 17, "line %010ld ", i);
        line[16] = 'x';
        if (used + 80 > sizeof buf) {
            size_t off = 0;
            while (off < used) {
                ssize_t w = write(1, buf + off, used - off);
                if (w <= 0) return 1;
                off += (size_t)w;
            }
            used = 0;
        }
        memcpy(buf + used, line, 80);
        used += 80;
    }
    size_t off = 0;
    while (off < used) {
        ssize_t w = write(1, buf + off, used - off);
        if (w <= 0) return 1;
        off += (size_t)w;
    }
    return 0;
}
