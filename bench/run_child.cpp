// subsync-bench-run: runs a command and reports its wall time, CPU time and peak RSS as one
// JSON line. bench/bench.py starts every measured process through it.
//
// Why not getrusage from Python directly: Linux records the hiwater RSS of the address space
// a process replaces at exec() in the child's ru_maxrss. A child forked (or vforked) from the
// Python driver, which holds the harvested pages and the parse corpus (~300 MB), would report
// the driver's RSS instead of its own. Forked from this small program, the floor is ~3 MiB.
//
//   subsync-bench-run REPORT_FILE COMMAND [ARGS...]
// Exits with the command's exit code (128 + signal when it was killed).

#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace {

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; }

double now() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: subsync-bench-run REPORT_FILE COMMAND [ARGS...]\n");
        return 2;
    }
    const double t0 = now();
    const pid_t pid = fork();
    if (pid < 0) {
        std::fprintf(stderr, "subsync-bench-run: fork: %s\n", std::strerror(errno));
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        std::fprintf(stderr, "subsync-bench-run: cannot run %s: %s\n", argv[2], std::strerror(errno));
        _exit(127);
    }
    int status = 0;
    rusage usage{};
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            std::fprintf(stderr, "subsync-bench-run: wait4: %s\n", std::strerror(errno));
            return 2;
        }
    }
    const double wall = now() - t0;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::FILE* f = std::fopen(argv[1], "w")) {
        std::fprintf(f, "{\"wall_s\":%.6f,\"user_s\":%.6f,\"sys_s\":%.6f,\"maxrss_kib\":%ld,\"exit\":%d}\n", wall,
                     seconds(usage.ru_utime), seconds(usage.ru_stime), usage.ru_maxrss, code);
        std::fclose(f);
    }
    return code;
}
