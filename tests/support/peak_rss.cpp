// subsync-test-peak-rss REPORT_FILE COMMAND [ARGS...]: runs COMMAND, writes its own peak RSS in
// KiB (ru_maxrss of wait4) to REPORT_FILE, and exits with its exit code (128 + signal).
//
// Linux counts, in a child's ru_maxrss, the peak RSS of the address space it replaced at exec():
// a child forked from a test process that has served hundreds of MB reports that process's size.
// Forked from this small program instead, the floor is a few MiB (bench/run_child.cpp does the
// same for the benchmark).

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: subsync-test-peak-rss REPORT_FILE COMMAND [ARGS...]\n");
        return 2;
    }
    const pid_t pid = fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        execv(argv[2], argv + 2);
        _exit(127);
    }
    int status = 0;
    rusage usage{};
    while (wait4(pid, &status, 0, &usage) < 0) {
    }
    if (std::FILE* f = std::fopen(argv[1], "w")) {
        std::fprintf(f, "%ld\n", usage.ru_maxrss);
        std::fclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
