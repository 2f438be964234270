// The notify and journal protocols without libsystemd: the test plays systemd's side, binding the
// sockets and checking the bytes against the documents (sd_notify(3) "Notes",
// https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), not against our encoder.

#include "systemd_protocol.hpp"

#include "support/test_support.hpp"

#include <subsync/daemon/notify.hpp>

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace subsync {
namespace {

using namespace std::chrono_literals;
using namespace std::string_view_literals;
namespace systemd = daemon::systemd;

/// A datagram socket bound at `name`: a path, or an abstract name after '@' (what systemd binds).
class bound_socket {
public:
    explicit bound_socket(const std::string& name) : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, name.data(), name.size());
        const bool abstract = name.front() == '@';
        if (abstract) a.sun_path[0] = '\0';
        const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), length) != 0)  // NOLINT: C API
            throw std::runtime_error("bind " + name + ": " + std::strerror(errno));
    }
    ~bound_socket() { ::close(fd_); }
    bound_socket(const bound_socket&) = delete;
    bound_socket& operator=(const bound_socket&) = delete;

    /// The next datagram, or nullopt after `timeout`.
    std::optional<std::string> receive(std::chrono::milliseconds timeout = 5s) const {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
        std::string buffer(1 << 20, '\0');
        const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
        if (n < 0) return std::nullopt;
        buffer.resize(static_cast<std::size_t>(n));
        return buffer;
    }

private:
    int fd_;
};

/// An abstract name no other test process uses.
std::string abstract_name(std::string_view what) {
    return "@subsync-test-" + std::to_string(::getpid()) + "-" + std::string(what);
}

/// Sets (or, for nullptr, unsets) an environment variable for one scope.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value != nullptr) ::setenv(name, value, 1);
        else ::unsetenv(name);
    }
    ~scoped_env() {
        if (old_) ::setenv(name_, old_->c_str(), 1);
        else ::unsetenv(name_);
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

TEST(SystemdNotify, ReachesAnAbstractSocket) {
    const auto name = abstract_name("notify");
    bound_socket systemd(name);
    ASSERT_FALSE(systemd::notify(name, "READY=1\nSTATUS=up"));
    EXPECT_EQ(systemd.receive(), "READY=1\nSTATUS=up");
}

TEST(SystemdNotify, NotifierSpeaksToAnAbstractNotifySocket) {
    const auto name = abstract_name("notifier");
    bound_socket systemd(name);
    scoped_env socket("NOTIFY_SOCKET", name.c_str());
    const daemon::notifier n;
    ASSERT_TRUE(n.enabled());
    n.ready("ready");
    EXPECT_EQ(systemd.receive(), "READY=1\nSTATUS=ready");
    n.watchdog();
    EXPECT_EQ(systemd.receive(), "WATCHDOG=1");
}

TEST(SystemdNotify, ReachesAPathSocket) {
    test::temp_dir dir;
    const auto path = (dir / "notify").string();
    bound_socket systemd(path);
    ASSERT_FALSE(systemd::notify(path, "STOPPING=1"));
    EXPECT_EQ(systemd.receive(), "STOPPING=1");
}

TEST(SystemdNotify, RefusesNamesThatAreNeitherPathNorAbstract) {
    const struct {
        const char* name;
        std::string socket;
    } cases[] = {
        {"empty", ""},
        {"relative path", "run/notify"},
        {"path longer than sun_path", "/" + std::string(sizeof(sockaddr_un::sun_path), 'x')},
        {"abstract name longer than sun_path", "@" + std::string(sizeof(sockaddr_un::sun_path), 'x')},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(systemd::notify(c.socket, "READY=1"), std::errc::invalid_argument);
    }
}

TEST(SystemdNotify, NobodyListeningIsAnError) {
    test::temp_dir dir;
    EXPECT_TRUE(systemd::notify((dir / "absent").string(), "READY=1"));
    EXPECT_TRUE(systemd::notify(abstract_name("absent"), "READY=1"));
}

TEST(SystemdWatchdog, TimeoutFromTheEnvironment) {
    const pid_t self = 4242;
    const struct {
        const char* name;
        const char* usec;
        const char* pid;
        std::chrono::microseconds expected;
    } cases[] = {
        {"no WATCHDOG_USEC", nullptr, nullptr, 0us},
        {"WATCHDOG_USEC alone", "200000", nullptr, 200000us},
        {"WATCHDOG_PID is ours", "200000", "4242", 200000us},
        {"WATCHDOG_PID is another process", "200000", "4243", 0us},
        {"WATCHDOG_PID is not a pid", "200000", "init", 0us},
        {"WATCHDOG_PID is zero", "200000", "0", 0us},
        {"zero", "0", nullptr, 0us},
        {"infinity", "18446744073709551615", nullptr, 0us},
        {"not a number", "20s", nullptr, 0us},
        {"negative", "-1", nullptr, 0us},
        {"empty", "", nullptr, 0us},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(systemd::watchdog_timeout(c.usec, c.pid, self).count(), c.expected.count());
    }
}

TEST(SystemdWatchdog, NotifierPetsOnlyAWatchdogMeantForItsProcess) {
    const auto name = abstract_name("watchdog");
    scoped_env socket("NOTIFY_SOCKET", name.c_str());
    scoped_env usec("WATCHDOG_USEC", "200000");
    {
        scoped_env pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
        EXPECT_EQ(daemon::notifier().watchdog_pace(), 100ms);
    }
    {
        // A parent's watchdog, inherited because it did not unset the variables.
        scoped_env pid("WATCHDOG_PID", std::to_string(::getppid()).c_str());
        EXPECT_EQ(daemon::notifier().watchdog_pace().count(), 0);
    }
}

/// The entry's fields as the protocol defines them, read independently of the encoder.
std::multimap<std::string, std::string> read_entry(std::string_view d) {
    std::multimap<std::string, std::string> fields;
    while (!d.empty()) {
        const auto nl = d.find('\n');
        if (nl == std::string_view::npos) throw std::runtime_error("field without its newline");
        const auto line = d.substr(0, nl);
        if (const auto eq = line.find('='); eq != std::string_view::npos) {
            fields.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
            d.remove_prefix(nl + 1);
            continue;
        }
        d.remove_prefix(nl + 1);
        if (d.size() < 8) throw std::runtime_error("binary field without its length");
        std::uint64_t size = 0;
        for (int i = 7; i >= 0; --i) size = size << 8 | static_cast<unsigned char>(d[static_cast<std::size_t>(i)]);
        d.remove_prefix(8);
        if (d.size() < size + 1 || d[size] != '\n') throw std::runtime_error("binary field of the wrong length");
        fields.emplace(std::string(line), std::string(d.substr(0, size)));
        d.remove_prefix(size + 1);
    }
    return fields;
}

TEST(SystemdJournal, AMultiLineFieldIsSentBinarySafe) {
    test::temp_dir dir;
    const auto path = (dir / "journal").string();
    bound_socket journald(path);
    const std::vector<std::string> fields{"MESSAGE=first line\nsecond line", "PRIORITY=6", "SYSLOG_IDENTIFIER=subsyncd",
                                          "ACCOUNT=prod=eu"};
    ASSERT_FALSE(systemd::send_journal(fields, path.c_str()));
    const auto got = journald.receive();
    ASSERT_TRUE(got);
    // The document's layout, byte by byte: the name, a newline, the size (22) as 64-bit
    // little-endian, the value, a newline; plain fields as KEY=VALUE lines.
    EXPECT_EQ(*got,
              "MESSAGE\n\x16\0\0\0\0\0\0\0first line\nsecond line\n"
              "PRIORITY=6\nSYSLOG_IDENTIFIER=subsyncd\nACCOUNT=prod=eu\n"sv);
    const auto entry = read_entry(*got);
    EXPECT_EQ(entry.size(), 4u);
    EXPECT_EQ(entry.find("MESSAGE")->second, "first line\nsecond line");
    EXPECT_EQ(entry.find("ACCOUNT")->second, "prod=eu");
}

TEST(SystemdJournal, ValuesWithAnyBytesReadBack) {
    const struct {
        const char* name;
        std::string value;
    } cases[] = {
        {"a lone newline", "\n"},
        {"trailing newline", "done\n"},
        {"NUL and newline", std::string("a\0b\nc", 5)},
        {"a line that looks like a field", "x\nPRIORITY=0"},
        {"300 bytes (a length over one byte)", std::string(299, 'y') + "\n"},
        {"empty", ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto entry = read_entry(systemd::journal_datagram({"MESSAGE=" + c.value, "PRIORITY=3"}));
        ASSERT_EQ(entry.size(), 2u);
        EXPECT_EQ(entry.find("MESSAGE")->second, c.value);
        EXPECT_EQ(entry.find("PRIORITY")->second, "3");
    }
}

TEST(SystemdJournal, AFieldWithoutAnEqualsSignIsABug) {
    EXPECT_THROW((void)systemd::journal_datagram({"MESSAGE"}), std::invalid_argument);
}

TEST(SystemdJournal, AnEntryThatCannotBeDeliveredIsAnError) {
    // The caller writes the line to stderr instead: nobody listening, or an entry larger than any
    // datagram the kernel takes (systemd's client would pass a memfd; we do not).
    test::temp_dir dir;
    EXPECT_TRUE(systemd::send_journal({"MESSAGE=x"}, (dir / "absent").c_str()));
    const auto path = (dir / "journal").string();
    bound_socket journald(path);
    const auto ec = systemd::send_journal({"MESSAGE=" + std::string(16 << 20, 'z')}, path.c_str());
    EXPECT_TRUE(ec == std::errc::message_size || ec == std::errc::no_buffer_space) << ec.message();
    EXPECT_FALSE(journald.receive(0ms));
}

}  // namespace
}  // namespace subsync
