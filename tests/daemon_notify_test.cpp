// `subsyncd run` speaks the systemd service protocol: the test plays systemd, binding the
// $NOTIFY_SOCKET datagram socket and reading what the real binary sends. Also which shared
// libraries the running daemon maps (issue 19: its resident memory).

#include "support/daemon_process.hpp"

#include <subsync/emulator/server.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <numeric>

namespace subsync {
namespace {

using namespace std::chrono_literals;
using test::has_line;

constexpr const char* token = "tok-notify-5d1c";

class DaemonNotify : public ::testing::Test {
protected:
    void SetUp() override {
        emulator::options opts;
        opts.token = token;
        emu_ = std::make_unique<emulator::server>(opts, emulator::dataset::generated(120, 5, 3));
        emu_->start();
        test::write_file(dir_ / "ca.pem", emu_->cert_pem());
    }

    test::daemon_config config() const { return test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string()); }

    test::temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
};

TEST_F(DaemonNotify, ReadyStatusWatchdogReloadingStopping) {
    const auto cfg = test::write_daemon_config(dir_.path(), config());
    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d(
        {"run", "--config", cfg.string()},
        {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}, {"WATCHDOG_USEC", "200000"}},
        dir_.path());

    // READY once config and database are open, before the first sync finishes.
    auto ready = systemd.wait_for("READY=1");
    ASSERT_TRUE(ready) << systemd.transcript() << d.err();
    EXPECT_TRUE(has_line(*ready, "STATUS=ready")) << *ready;

    // A STATUS line after each sync, with its result.
    auto first = systemd.wait_for("STATUS=sync 1 ok");
    ASSERT_TRUE(first) << systemd.transcript() << d.err();
    EXPECT_NE(first->find("2/2 sources ok, 125 items"), std::string::npos) << *first;
    EXPECT_NE(first->find("next sync in"), std::string::npos) << *first;
    d.signal(SIGUSR1);
    auto second = systemd.wait_for("STATUS=sync 2 ok");
    ASSERT_TRUE(second) << systemd.transcript() << d.err();

    // WATCHDOG=1 at half of WATCHDOG_USEC (100 ms): count ten more and look at the mean gap (the
    // gaps one by one are as noisy as the test's own scheduling: two datagrams may be read at once).
    std::vector<std::chrono::steady_clock::time_point> pets;
    while (pets.size() < 11) {
        auto w = systemd.receive(2s);
        ASSERT_TRUE(w) << "the watchdog stopped: " << systemd.transcript();
        if (w->text == "WATCHDOG=1") pets.push_back(w->at);
    }
    std::vector<double> gaps;
    for (std::size_t i = 1; i < pets.size(); ++i)
        gaps.push_back(std::chrono::duration<double, std::milli>(pets[i] - pets[i - 1]).count());
    const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / static_cast<double>(gaps.size());
    EXPECT_GT(mean, 60.0) << "petting faster than WATCHDOG_USEC/2";
    EXPECT_LT(mean, 200.0) << "petting slower than WATCHDOG_USEC: systemd would kill the service";

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    d.signal(SIGHUP);
    auto reloading = systemd.wait_for("RELOADING=1");
    ASSERT_TRUE(reloading) << systemd.transcript();
    EXPECT_TRUE(has_line(*reloading, "MONOTONIC_USEC=")) << *reloading;
    auto reloaded = systemd.wait_for("READY=1");
    ASSERT_TRUE(reloaded) << systemd.transcript();
    EXPECT_TRUE(has_line(*reloaded, "STATUS=config reloaded")) << *reloaded;

    // SIGTERM: STOPPING=1, then exit 0.
    d.signal(SIGTERM);
    auto stopping = systemd.wait_for("STOPPING=1");
    ASSERT_TRUE(stopping) << systemd.transcript();
    EXPECT_EQ(d.wait(10s), 0) << d.err();
}

/// Who owns /proc/PID/status: the process's own user while it is dumpable, root once it is not
/// (proc(5), "/proc/[pid]": ownership follows the dumpable attribute).
uid_t proc_owner(pid_t pid) {
    struct ::stat st {};
    if (::stat(("/proc/" + std::to_string(pid) + "/status").c_str(), &st) != 0) return static_cast<uid_t>(-1);
    return st.st_uid;
}

TEST_F(DaemonNotify, RunIsNotDumpableUnlessCoreDumpsAreAllowed) {
    // As root, the daemon runs as nobody, so "owned by root" tells non-dumpable apart.
    std::vector<std::string> wrapper;
    uid_t self = ::geteuid();
    if (self == 0) {
        if (!std::filesystem::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs setpriv (util-linux) to drop root";
        wrapper = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
        self = 65534;
        std::filesystem::permissions(dir_.path(), std::filesystem::perms::all);
    }
    const auto cfg = test::write_daemon_config(dir_.path(), config());
    test::notify_socket systemd(dir_ / "notify");
    std::filesystem::permissions(systemd.path(), std::filesystem::perms::all);
    for (const bool allow : {false, true}) {
        SCOPED_TRACE(allow ? "SUBSYNC_ALLOW_COREDUMP=1" : "default");
        std::map<std::string, std::string> env{{"SUBSYNC_TEST_TOKEN", token},
                                               {"NOTIFY_SOCKET", systemd.path().string()}};
        if (allow) env["SUBSYNC_ALLOW_COREDUMP"] = "1";
        test::daemon_process d({"run", "--config", cfg.string()}, env, dir_.path(), allow ? "allowed" : "default",
                               wrapper);
        ASSERT_TRUE(systemd.wait_for("READY=1")) << systemd.transcript() << d.err();
        EXPECT_EQ(proc_owner(d.pid()), allow ? self : 0u) << d.err();
        d.signal(SIGTERM);
        ASSERT_EQ(d.wait(), 0) << d.err();
    }
}

// libpq (and Kerberos, LDAP, SASL, GnuTLS behind it) is loaded only for a [[destination]];
// libsystemd not at all (daemon/src/systemd_protocol.hpp speaks its protocols).
TEST_F(DaemonNotify, WithoutADestinationNeitherLibpqNorLibsystemdIsMapped) {
    const auto cfg = test::write_daemon_config(dir_.path(), config());
    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir_.path());
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();
    const auto maps = test::read_file("/proc/" + std::to_string(d.pid()) + "/maps");
    ASSERT_NE(maps.find("/libc.so.6"), std::string::npos) << "not the daemon's map:\n" << maps;
    EXPECT_EQ(maps.find("/libpq.so"), std::string::npos) << maps;
    EXPECT_EQ(maps.find("/libsystemd.so"), std::string::npos) << maps;
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(10s), 0) << d.err();
}

}  // namespace
}  // namespace subsync
