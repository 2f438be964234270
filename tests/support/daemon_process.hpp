#pragma once
// For the daemon suites: subsyncd running in the background, systemd's notify socket played by
// the test, and a few HTTP/SQLite helpers. Waits are on events (a datagram, the process exit),
// each bounded by a timeout so a broken daemon fails the test instead of hanging it.

#include "test_support.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::test {

using namespace std::chrono_literals;

/// An AF_UNIX datagram socket bound to a path: what systemd listens on as $NOTIFY_SOCKET.
class notify_socket {
public:
    struct datagram {
        std::string text;
        std::chrono::steady_clock::time_point at;
    };

    explicit notify_socket(std::filesystem::path path);
    ~notify_socket();
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    /// The next datagram, or nullopt when none arrives within `timeout`.
    std::optional<datagram> receive(std::chrono::milliseconds timeout);

    /// Receives until a datagram has a line starting with `line_prefix` (e.g. "READY=1",
    /// "STATUS=sync 2 ok"); returns it, or nullopt after `timeout`. WATCHDOG=1 datagrams met on the
    /// way are kept in watchdogs(); everything is kept in received().
    std::optional<std::string> wait_for(std::string_view line_prefix, std::chrono::milliseconds timeout = 30s);

    [[nodiscard]] const std::vector<datagram>& received() const noexcept { return received_; }
    /// Everything received so far, one datagram per line, for failure messages.
    [[nodiscard]] std::string transcript() const;

private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::vector<datagram> received_;
};

/// True when some line of `datagram` starts with `prefix`.
bool has_line(std::string_view datagram, std::string_view prefix);

/// subsyncd started with `args`; stdout and stderr go to files in `dir`. The environment is
/// inherited minus systemd's variables (NOTIFY_SOCKET, WATCHDOG_*, JOURNAL_STREAM, …), plus `env`.
/// Killed with SIGKILL at destruction if still running.
class daemon_process {
public:
    /// `wrapper` (e.g. setpriv and its arguments) is run with subsyncd and `args` as its command.
    daemon_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                   const std::filesystem::path& dir, const std::string& name = "subsyncd",
                   const std::vector<std::string>& wrapper = {});
    ~daemon_process();
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    void signal(int signal_number) const;
    /// The exit code (128 + signal when killed), or nullopt when still running after `timeout`.
    std::optional<int> wait(std::chrono::milliseconds timeout = 30s);
    [[nodiscard]] std::string out() const;
    [[nodiscard]] std::string err() const;
    [[nodiscard]] const std::filesystem::path& err_path() const noexcept { return err_path_; }

private:
    pid_t pid_ = -1;
    int pidfd_ = -1;
    std::optional<int> exit_code_;
    std::filesystem::path out_path_, err_path_;
};

/// What a GET returned.
struct http_reply {
    int status = 0;
    std::string content_type;
    std::string body;
};

/// A blocking HTTP/1.1 GET of `path` on 127.0.0.1:`port` (Connection: close); throws on failure.
http_reply http_get(std::uint16_t port, const std::string& path);

/// Every column of every row of `table`, ordered by its primary key, one line per row.
std::string dump_table(const std::filesystem::path& database, const std::string& table, const std::string& order_by);

/// `PRAGMA integrity_check` of the file: "ok" when intact.
std::string integrity_check(const std::filesystem::path& database);

/// What write_daemon_config() puts in a config for one account on one emulator.
struct daemon_config {
    std::string base_url;
    std::string ca_file;
    std::string account = "prod";
    int page_size = 100;
    std::string interval = "1h";
    std::string grace = "5s";
    std::string lock_wait;       ///< [daemon] lock_wait; empty: the default
    std::string metrics_listen;  ///< empty: [metrics] off
    std::string extra;           ///< appended verbatim before [[account]]
};
/// The defaults above for the cloud at `base_url`, trusting `ca_file`.
daemon_config cloud_config(std::string base_url, std::string ca_file);

/// Writes dir/subsync.toml (database and exports in `dir`, token from $SUBSYNC_TEST_TOKEN).
std::filesystem::path write_daemon_config(const std::filesystem::path& dir, const daemon_config& c);

}  // namespace subsync::test
