#include "daemon_process.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace subsync::test {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

}  // namespace

notify_socket::notify_socket(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail("socket(AF_UNIX)");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path_.string();
    if (p.size() >= sizeof addr.sun_path) throw std::runtime_error("notify socket path too long: " + p);
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    std::filesystem::remove(path_);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind " + p);
}

notify_socket::~notify_socket() {
    if (fd_ >= 0) ::close(fd_);
    std::error_code ec;
    std::filesystem::remove(path_, ec);
}

std::optional<notify_socket::datagram> notify_socket::receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) fail("recv");
    datagram d{std::string(buf, static_cast<std::size_t>(n)), std::chrono::steady_clock::now()};
    received_.push_back(d);
    return d;
}

std::optional<std::string> notify_socket::wait_for(std::string_view line_prefix, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto d = receive(std::chrono::milliseconds(remaining_ms(deadline)));
        if (!d) return std::nullopt;
        if (has_line(d->text, line_prefix)) return d->text;
    }
}

std::string notify_socket::transcript() const {
    std::string out;
    for (const auto& d : received_) {
        std::string one = d.text;
        for (auto& c : one)
            if (c == '\n') c = '|';
        out += one + "\n";
    }
    return out;
}

bool has_line(std::string_view datagram, std::string_view prefix) {
    std::size_t begin = 0;
    while (begin <= datagram.size()) {
        const std::size_t end = std::min(datagram.find('\n', begin), datagram.size());
        if (datagram.substr(begin, end - begin).substr(0, prefix.size()) == prefix) return true;
        begin = end + 1;
    }
    return false;
}

daemon_process::daemon_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                               const std::filesystem::path& dir, const std::string& name,
                               const std::vector<std::string>& wrapper)
    : out_path_(dir / (name + ".out")), err_path_(dir / (name + ".err")) {
    // Created before the child opens them, so a test can learn their device:inode first.
    write_file(out_path_, "");
    if (!std::filesystem::exists(err_path_)) write_file(err_path_, "");
    std::vector<std::string> argv = wrapper;
    argv.emplace_back(SUBSYNCD_PATH);
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = spawn_process(argv, env, out_path_, err_path_);
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

daemon_process::~daemon_process() {
    if (!exit_code_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    if (pidfd_ >= 0) ::close(pidfd_);
}

void daemon_process::signal(int signal_number) const {
    if (!exit_code_) ::kill(pid_, signal_number);
}

std::optional<int> daemon_process::wait(std::chrono::milliseconds timeout) {
    if (exit_code_) return exit_code_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return exit_code_;
        }
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        if (pidfd_ >= 0) {
            pollfd p{pidfd_, POLLIN, 0};  // readable once the process has exited
            ::poll(&p, 1, remaining_ms(deadline));
        } else {
            std::this_thread::sleep_for(10ms);  // no pidfd (old kernel): poll the exit
        }
    }
}

std::string daemon_process::out() const { return read_file(out_path_); }
std::string daemon_process::err() const { return read_file(err_path_); }

http_reply http_get(std::uint16_t port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        fail(fmt::format("connect 127.0.0.1:{}", port));
    }
    const std::string req =
        fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", path, port);
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        ::close(fd);
        fail("send");
    }
    std::string raw;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto head_end = raw.find("\r\n\r\n");
    if (head_end == std::string::npos || raw.rfind("HTTP/1.1 ", 0) != 0)
        throw std::runtime_error("not an HTTP response: " + raw.substr(0, 200));
    http_reply r;
    r.status = std::stoi(raw.substr(9, 3));
    const std::string head = raw.substr(0, head_end);
    if (auto at = head.find("\r\nContent-Type: "); at != std::string::npos)
        r.content_type = head.substr(at + 16, head.find("\r\n", at + 2) - at - 16);
    r.body = raw.substr(head_end + 4);
    return r;
}

std::string dump_table(const std::filesystem::path& database, const std::string& table, const std::string& order_by) {
    SQLite::Database db(database.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT * FROM " + table + " ORDER BY " + order_by);
    std::string out;
    while (q.executeStep()) {
        for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
        out += '\n';
    }
    return out;
}

std::string integrity_check(const std::filesystem::path& database) {
    SQLite::Database db(database.string(), SQLite::OPEN_READONLY);
    return db.execAndGet("PRAGMA integrity_check").getString();
}

daemon_config cloud_config(std::string base_url, std::string ca_file) {
    daemon_config c;
    c.base_url = std::move(base_url);
    c.ca_file = std::move(ca_file);
    return c;
}

std::filesystem::path write_daemon_config(const std::filesystem::path& dir, const daemon_config& c) {
    const auto file = dir / "subsync.toml";
    std::string text =
        fmt::format(R"([storage]
database   = "{}"
export_dir = "{}"

[sync]
interval     = "{}"
page_size    = {}
timeout      = "10s"
backoff_base = "10ms"
backoff_max  = "50ms"

[daemon]
grace = "{}"
)",
                    (dir / "snapshot.db").string(), (dir / "exports").string(), c.interval, c.page_size, c.grace);
    if (!c.lock_wait.empty()) text += fmt::format("lock_wait = \"{}\"\n", c.lock_wait);
    if (!c.metrics_listen.empty()) text += fmt::format("\n[metrics]\nlisten = \"{}\"\n", c.metrics_listen);
    text += fmt::format("\n[tls]\nca_file = \"{}\"\n", c.ca_file);
    text += c.extra;
    text += fmt::format(R"(
[[account]]
name               = "{}"
apig_endpoint      = "{}"
secmaster_endpoint = "{}"
[account.auth]
type      = "token"
token_env = "SUBSYNC_TEST_TOKEN"
)",
                        c.account, c.base_url, c.base_url);
    write_file(file, text);
    return file;
}

}  // namespace subsync::test
