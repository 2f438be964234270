// subsync-emulator as a process: secrets from the environment (kept out of ps), the command line
// winning over them, --lockout-ms, and the CONNECT proxy mode with its port file and its lines.
// The test waits on the emulator's stdout lines (a pipe), each wait bounded.

#include "support/test_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using subsync::test::temp_dir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr auto deadline = 10s;

/// subsync-emulator with `args` and, of the inherited environment, nothing of its own
/// (SUBSYNC_EMULATOR_*) but `env`. Stdout is a pipe read line by line; stderr goes to a file.
/// Killed at destruction if still running.
class emulator_process {
public:
    emulator_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                     fs::path err_path)
        : err_path_(std::move(err_path)) {
        std::vector<std::string> argv_s{SUBSYNC_EMULATOR_PATH};
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_s) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<std::string> env_s;
        for (char** e = environ; *e != nullptr; ++e) {
            if (!std::string_view(*e).starts_with("SUBSYNC_EMULATOR_")) env_s.emplace_back(*e);
        }
        for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& e : env_s) envp.push_back(e.data());
        envp.push_back(nullptr);

        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        out_ = out[0];
        if (rc != 0) {
            ::close(out_);
            throw std::runtime_error(std::string("cannot start ") + argv[0]);
        }
    }

    ~emulator_process() {
        if (!exit_code_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        ::close(out_);
    }
    emulator_process(const emulator_process&) = delete;
    emulator_process& operator=(const emulator_process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }

    /// The next stdout line without its '\n'; nullopt at EOF or when none comes within `timeout`.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout = deadline) {
        const auto until = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
                std::string line = pending_.substr(0, nl);
                pending_.erase(0, nl + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            pollfd fd{out_, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&fd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
            char chunk[512];
            const auto n = ::read(out_, chunk, sizeof chunk);
            if (n <= 0) return std::nullopt;
            pending_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    /// Sends `signal_number` (0: none) and waits for the exit, reading stdout to its end (bounded
    /// by `timeout`); the exit code, 128 + signal when killed.
    int finish(int signal_number = SIGTERM, std::chrono::milliseconds timeout = deadline) {
        if (signal_number != 0) ::kill(pid_, signal_number);
        while (read_line(timeout)) {
        }
        int status = 0;
        ::waitpid(pid_, &status, 0);
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return *exit_code_;
    }

    [[nodiscard]] std::string err() const { return subsync::test::read_file(err_path_); }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string pending_;
    std::optional<int> exit_code_;
    fs::path err_path_;
};

// The port at the end of "...http://127.0.0.1:PORT" (followed by a space or the end).
std::uint16_t port_in(const std::string& line) {
    const std::string marker = "http://127.0.0.1:";
    const auto at = line.find(marker);
    if (at == std::string::npos) throw std::runtime_error("no port in: " + line);
    return static_cast<std::uint16_t>(std::stoul(line.substr(at + marker.size())));
}

using response = http::response<http::string_body>;

// One request to 127.0.0.1:`port`, through the CONNECT proxy on `proxy_port` if given.
asio::awaitable<response> exchange(std::uint16_t port, std::optional<std::uint16_t> proxy_port,
                                   http::request<http::string_body> req) {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    stream.expires_after(deadline);
    const auto loopback = asio::ip::make_address("127.0.0.1");
    const std::string authority = "127.0.0.1:" + std::to_string(port);
    if (proxy_port) {
        co_await stream.async_connect(tcp::endpoint(loopback, *proxy_port), asio::use_awaitable);
        const std::string head = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
        co_await asio::async_write(stream, asio::buffer(head), asio::use_awaitable);
        asio::streambuf answer;
        const std::size_t n = co_await asio::async_read_until(stream, answer, "\r\n\r\n", asio::use_awaitable);
        const std::string line(asio::buffers_begin(answer.data()),
                               asio::buffers_begin(answer.data()) + static_cast<std::ptrdiff_t>(n));
        if (!line.starts_with("HTTP/1.1 200 ")) throw std::runtime_error("the proxy refused: " + line);
    } else {
        co_await stream.async_connect(tcp::endpoint(loopback, port), asio::use_awaitable);
    }
    req.set(http::field::host, authority);
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    response res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    co_return res;
}

response send(std::uint16_t port, http::request<http::string_body> req, std::optional<std::uint16_t> proxy_port = {}) {
    asio::io_context ioc;
    auto result = asio::co_spawn(ioc, exchange(port, proxy_port, std::move(req)), asio::use_future);
    ioc.run();
    return result.get();
}

http::request<http::string_body> token_request(const std::string& user, const std::string& password,
                                               const std::string& domain) {
    http::request<http::string_body> req{http::verb::post, "/v3/auth/tokens?nocatalog=true", 11};
    req.set(http::field::content_type, "application/json;charset=utf8");
    req.body() = R"({"auth":{"identity":{"methods":["password"],"password":{"user":{"name":")" + user +
                 R"(","password":")" + password + R"(","domain":{"name":")" + domain +
                 R"("}}}},"scope":{"project":{"name":"cn-north-4"}}}})";
    return req;
}

// A GET of the purchases signed with `ak` and a wrong signature, dated now.
http::request<http::string_body> badly_signed(const std::string& ak) {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    char date[17];
    std::strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &utc);
    http::request<http::string_body> req{http::verb::get, "/v1.0/apigw/purchases/groups", 11};
    req.set("X-Sdk-Date", date);
    req.set(http::field::authorization,
            "SDK-HMAC-SHA256 Access=" + ak + ", SignedHeaders=host;x-sdk-date, Signature=" + std::string(64, '0'));
    return req;
}

TEST(EmulatorCli, TakesSecretsFromTheEnvironmentAndRunsAConnectProxy) {
    temp_dir dir;
    emulator_process emulator(
        {"--plain", "--port-file", (dir / "port").string(), "--connect-proxy-port-file", (dir / "proxy-port").string(),
         "--lockout-ms", "0"},
        {{"SUBSYNC_EMULATOR_IAM_USERS", "ops:s3cr:et:tenant,dev:devpw:tenant"},
         {"SUBSYNC_EMULATOR_ACCESS_KEYS", "HPUAEXAMPLEAK0000001:PermanentSecret,HPUATEMPORARYAK00001:TempSecret:sec:token"}},
        dir / "stderr");
    const auto listening = emulator.read_line();
    ASSERT_TRUE(listening) << emulator.err();
    EXPECT_THAT(*listening, StartsWith("subsync-emulator listening on http://127.0.0.1:"));
    const auto proxy_line = emulator.read_line();
    ASSERT_TRUE(proxy_line) << emulator.err();
    EXPECT_THAT(*proxy_line, StartsWith("connect proxy on http://127.0.0.1:"));
    const std::uint16_t port = port_in(*listening);
    const std::uint16_t proxy_port = port_in(*proxy_line);
    EXPECT_EQ(subsync::test::read_file(dir / "port"), std::to_string(port) + "\n");
    EXPECT_EQ(subsync::test::read_file(dir / "proxy-port"), std::to_string(proxy_port) + "\n");

    const std::string cmdline = subsync::test::read_file("/proc/" + std::to_string(emulator.pid()) + "/cmdline");
    EXPECT_THAT(cmdline, Not(HasSubstr("s3cr:et")));
    EXPECT_THAT(cmdline, Not(HasSubstr("Secret")));

    // Users from SUBSYNC_EMULATOR_IAM_USERS, the first one through the proxy, which says so.
    EXPECT_EQ(send(port, token_request("ops", "s3cr:et", "tenant"), proxy_port).result_int(), 201U);
    EXPECT_EQ(emulator.read_line(), "connect proxy tunnel to 127.0.0.1:" + std::to_string(port));
    EXPECT_EQ(send(port, token_request("dev", "devpw", "tenant")).result_int(), 201U);
    EXPECT_EQ(send(port, token_request("ops", "wrong", "tenant")).result_int(), 401U);

    // Keys from SUBSYNC_EMULATOR_ACCESS_KEYS: known keys fail on the signature, not on the lookup.
    EXPECT_THAT(send(port, badly_signed("HPUAUNKNOWNAK0000001")).body(), HasSubstr("access key not found"));
    EXPECT_THAT(send(port, badly_signed("HPUATEMPORARYAK00001")).body(),
                HasSubstr("X-Security-Token is missing or wrong for this temporary access key"));
    // --lockout-ms 0: more than 5 failures in a row lock the AK for no time at all.
    for (int i = 1; i <= 7; ++i) {
        SCOPED_TRACE(i);
        const auto res = send(port, badly_signed("HPUAEXAMPLEAK0000001"));
        EXPECT_EQ(res.result_int(), 401U);
        EXPECT_THAT(res.body(), HasSubstr("verify aksk signature fail"));
    }

    EXPECT_EQ(emulator.finish(), 0) << emulator.err();
}

TEST(EmulatorCli, TheCommandLineWinsOverTheEnvironment) {
    temp_dir dir;
    emulator_process emulator({"--plain", "--iam-user", "admin:flagpw:tenant"},
                              {{"SUBSYNC_EMULATOR_IAM_USERS", "ops:envpw:tenant"}}, dir / "stderr");
    const auto listening = emulator.read_line();
    ASSERT_TRUE(listening) << emulator.err();
    const std::uint16_t port = port_in(*listening);
    EXPECT_EQ(send(port, token_request("admin", "flagpw", "tenant")).result_int(), 201U);
    EXPECT_EQ(send(port, token_request("ops", "envpw", "tenant")).result_int(), 401U);
    EXPECT_EQ(emulator.finish(), 0) << emulator.err();
}

TEST(EmulatorCli, BadEnvironmentEntriesAreNamedWithoutTheirSecrets) {
    const struct {
        const char* name;
        std::map<std::string, std::string> env;
        std::string message;
        std::string secret;
    } cases[] = {
        {"user without domain", {{"SUBSYNC_EMULATOR_IAM_USERS", "ok:pw1:dom,alice:hunter2"}},
         "SUBSYNC_EMULATOR_IAM_USERS entry 2: expected NAME:PASSWORD:DOMAIN", "hunter2"},
        {"empty user entry", {{"SUBSYNC_EMULATOR_IAM_USERS", "ok:pw1:dom,"}},
         "SUBSYNC_EMULATOR_IAM_USERS entry 2: expected NAME:PASSWORD:DOMAIN", "pw1"},
        {"key without secret", {{"SUBSYNC_EMULATOR_ACCESS_KEYS", "HPUAEXAMPLEAK0000001"}},
         "SUBSYNC_EMULATOR_ACCESS_KEYS entry 1: expected AK:SK[:SECURITY_TOKEN]", "HPUAEXAMPLEAK0000001"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        temp_dir dir;
        emulator_process emulator({"--plain"}, c.env, dir / "stderr");
        EXPECT_EQ(emulator.finish(0), 1);
        EXPECT_THAT(emulator.err(), HasSubstr(c.message));
        EXPECT_THAT(emulator.err(), Not(HasSubstr(c.secret)));
    }
}

}  // namespace
