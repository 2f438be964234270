// The exec sink's child process: posix_spawnp (no shell), pipes for stdin/stdout/stderr and a
// pidfd, all waited on by the event loop so a slow hook never blocks /metrics or other sinks.

#include <subsync/alerting/sinks.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <cstring>
#include <system_error>

namespace subsync::alerting {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::size_t output_limit = 2048;  // per stream, in the error text
constexpr auto term_grace = std::chrono::seconds(2);

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

/// Owns one file descriptor; moves, never copies (a copy would close it twice).
struct fd_closer {
    int fd = -1;
    fd_closer() = default;
    fd_closer(fd_closer&& other) noexcept : fd(other.release()) {}
    fd_closer(const fd_closer&) = delete;
    fd_closer& operator=(const fd_closer&) = delete;
    fd_closer& operator=(fd_closer&&) = delete;
    ~fd_closer() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

asio::awaitable<void> read_capped(asio::posix::stream_descriptor& in, std::string& out) {
    std::array<char, 4096> buf{};
    for (;;) {
        auto [ec, n] = co_await in.async_read_some(asio::buffer(buf), tuple_awaitable);
        if (n > 0 && out.size() < output_limit) out.append(buf.data(), std::min(n, output_limit - out.size()));
        if (ec) co_return;  // EOF, or cancelled by the timeout
    }
}

asio::awaitable<void> write_all(asio::posix::stream_descriptor& out, const std::string& data) {
    // EPIPE (a hook that does not read stdin) is fine: the exit status decides.
    co_await asio::async_write(out, asio::buffer(data), tuple_awaitable);
    boost::system::error_code ignored;
    out.close(ignored);  // EOF for the child
}

asio::awaitable<void> wait_readable(asio::posix::stream_descriptor& pidfd) {
    co_await pidfd.async_wait(asio::posix::descriptor_base::wait_read, tuple_awaitable);
}

void ignore_sigpipe() {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
        struct sigaction ign {};
        ign.sa_handler = SIG_IGN;
        ::sigaction(SIGPIPE, &ign, nullptr);
    }
}

void describe_status(int status, exec_result& r) {
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
}

}  // namespace

std::vector<std::string> exec_environment(const config::sink_config& cfg, const config::environment& env,
                                          const std::vector<std::string>& never) {
    // Nothing is inherited: the daemon's environment holds secrets (SUBSYNC_TOKEN=… from an
    // EnvironmentFile=, $CREDENTIALS_DIRECTORY), and a hook is often someone else's script.
    std::vector<std::pair<std::string, std::string>> vars;
    const auto set = [&](const std::string& name, std::string value) {
        if (std::find(never.begin(), never.end(), name) != never.end()) return;
        auto it = std::find_if(vars.begin(), vars.end(), [&](const auto& v) { return v.first == name; });
        if (it != vars.end()) it->second = std::move(value);
        else vars.emplace_back(name, std::move(value));
    };
    const auto pass = [&](const std::string& name) {
        if (auto v = env.lookup(name)) set(name, std::move(*v));
    };
    set("PATH", env.lookup("PATH").value_or("/usr/local/bin:/usr/bin:/bin"));
    for (const char* name : {"LANG", "LC_ALL", "TZ", "HOME"}) pass(name);
    for (const auto& name : cfg.pass_env) pass(name);
    for (const auto& [name, value] : cfg.env) set(name, value);
    std::vector<std::string> out;
    out.reserve(vars.size());
    for (auto& [name, value] : vars) out.push_back(name + "=" + value);
    return out;
}

namespace {

/// The child's stdin, stdout and stderr: our ends and its ends, closed on every path.
struct child_pipes {
    fd_closer in_r, in_w, out_r, out_w, err_r, err_w;
};

/// Three CLOEXEC pipes, or why not.
std::optional<child_pipes> open_pipes(const std::string& program, std::string& error) {
    child_pipes p;
    for (auto [r, w] : {std::pair{&p.in_r, &p.in_w}, {&p.out_r, &p.out_w}, {&p.err_r, &p.err_w}}) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            error = fmt::format("exec {}: pipe: {}", program, std::strerror(errno));
            return std::nullopt;
        }
        r->fd = fds[0];
        w->fd = fds[1];
    }
    return p;
}

/// Starts the program without a shell, in its own process group, with default signal
/// dispositions and an empty mask (the daemon ignores SIGPIPE; a hook must not inherit that),
/// the pipes on 0, 1, 2 and exactly `envp`. Returns its pid, or 0 with `error` set.
pid_t spawn_child(const std::vector<std::string>& argv, const std::vector<std::string>& envp, const child_pipes& p,
                  std::string& error) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p.in_r.fd, 0);
    posix_spawn_file_actions_adddup2(&fa, p.out_w.fd, 1);
    posix_spawn_file_actions_adddup2(&fa, p.err_w.fd, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                       POSIX_SPAWN_SETSIGMASK));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> env;
    for (const auto& e : envp) env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
    pid_t pid = 0;
    // posix_spawnp looks the program up in the daemon's PATH, not in `envp`'s: the same PATH
    // unless a sink's env sets another.
    const int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc == 0) return pid;
    error = fmt::format("exec {}: cannot start: {}", argv[0], std::strerror(rc));
    return 0;
}

/// "stdout: …; stderr: …" of what the hook printed, without trailing newlines.
std::string output_of(std::string out, std::string err) {
    auto trim = [](std::string& s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    };
    trim(out);
    trim(err);
    std::string text;
    if (!out.empty()) text += "stdout: " + out;
    if (!err.empty()) text += (text.empty() ? "" : "; ") + std::string("stderr: ") + err;
    return text;
}

}  // namespace

asio::awaitable<exec_result> run_exec(const std::vector<std::string>& argv, std::string input,
                                      steady::time_point deadline, const std::vector<std::string>& envp) {
    using namespace asio::experimental::awaitable_operators;
    exec_result r;
    if (argv.empty()) {
        r.error = "exec: empty argv";
        co_return r;
    }
    // A hook that exits without reading stdin makes our write fail with EPIPE; the default
    // SIGPIPE action would end the daemon instead. The child gets SIG_DFL back (spawn_child).
    ignore_sigpipe();
    auto pipes = open_pipes(argv[0], r.error);
    if (!pipes) co_return r;
    const pid_t pid = spawn_child(argv, envp, *pipes, r.error);
    if (pid == 0) co_return r;
    r.started = true;
    // The child's ends are the child's now.
    ::close(pipes->in_r.release());
    ::close(pipes->out_w.release());
    ::close(pipes->err_w.release());

    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        // No pidfd (kernel < 5.3): never block the loop; kill and reap.
        ::kill(-pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        r.error = fmt::format("exec {}: pidfd_open: {}", argv[0], std::strerror(errno));
        r.started = false;
        co_return r;
    }

    // Feed stdin, drain stdout and stderr, wait for the exit: all by `deadline`, or the process
    // group gets SIGTERM, then SIGKILL after term_grace.
    auto ex = co_await asio::this_coro::executor;
    asio::posix::stream_descriptor stdin_d(ex, pipes->in_w.release()), stdout_d(ex, pipes->out_r.release()),
        stderr_d(ex, pipes->err_r.release()), pid_d(ex, pidfd);
    std::string out, err;
    asio::steady_timer timer(ex, deadline);
    auto done = co_await ((write_all(stdin_d, input) && read_capped(stdout_d, out) && read_capped(stderr_d, err) &&
                           wait_readable(pid_d)) ||
                          timer.async_wait(tuple_awaitable));
    if (done.index() == 1) {
        r.timed_out = true;
        ::kill(-pid, SIGTERM);
        timer.expires_after(term_grace);
        co_await (wait_readable(pid_d) || timer.async_wait(tuple_awaitable));
        ::kill(-pid, SIGKILL);  // still running after the grace, or what the hook started outlived it
    }
    int status = 0;
    // The child has exited (pidfd readable) or was just SIGKILLed: this returns at once.
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    describe_status(status, r);
    r.output = output_of(std::move(out), std::move(err));
    co_return r;
}

}  // namespace subsync::alerting
