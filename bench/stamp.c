/* A child for restart benchmarks: appends "S <ns>" when it starts and
 * "E <ns>" just before it exits (CLOCK_MONOTONIC, one O_APPEND write each),
 * so the gap from one run's E to the next run's S is the supervisor's
 * crash-to-restart latency. Usage: stamp FILE */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void mark(int fd, char what) {
    struct timespec ts;
    char line[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(line, sizeof line, "%c %lld\n", what, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (write(fd, line, (size_t)n) < 0) _exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return 2;
    mark(fd, 'S');
    mark(fd, 'E');
    return 1;
}
