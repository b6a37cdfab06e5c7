/* The fastest a supervisor could restart a child: vfork, exec, wait, again,
 * with nothing else in between (no logs, no state, no signal handling).
 * A baseline for keepup's restart throughput and crash-to-restart latency.
 * Usage: vforkloop N PROGRAM [ARG...]   (runs PROGRAM N times in a row) */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = strtol(argv[1], NULL, 10);
    for (long i = 0; i < n; i++) {
        pid_t pid = vfork();
        if (pid < 0) return 1;
        if (pid == 0) {
            execv(argv[2], argv + 2);
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0) {}
    }
    return 0;
}
