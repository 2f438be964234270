// One writer per database: a second `subsyncd run`, or a `sync --once` from cron, meets the
// running daemon's lock and says who holds it.

#include "support/daemon_process.hpp"

#include <subsync/daemon/lock.hpp>
#include <subsync/emulator/server.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <thread>

namespace subsync {
namespace {

using namespace std::chrono_literals;

constexpr const char* token = "tok-lock-3c9f";

class DaemonLock : public ::testing::Test {
protected:
    void SetUp() override {
        emulator::options opts;
        opts.token = token;
        emu_ = std::make_unique<emulator::server>(opts, emulator::dataset::seeds());
        emu_->start();
        test::write_file(dir_ / "ca.pem", emu_->cert_pem());
        cfg_ = test::write_daemon_config(dir_.path(), test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string()));
    }

    /// Starts the first daemon and waits until it is ready (it holds the lock from then on).
    std::unique_ptr<test::daemon_process> start_first(test::notify_socket& systemd) {
        auto d = std::make_unique<test::daemon_process>(
            std::vector<std::string>{"run", "--config", cfg_.string()},
            std::map<std::string, std::string>{{"SUBSYNC_TEST_TOKEN", token},
                                               {"NOTIFY_SOCKET", systemd.path().string()}},
            dir_.path(), "first");
        EXPECT_TRUE(systemd.wait_for("READY=1")) << systemd.transcript() << d->err();
        return d;
    }

    test::temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
    std::filesystem::path cfg_;
};

TEST_F(DaemonLock, SecondRunExitsTwoNamingTheHolder) {
    test::notify_socket systemd(dir_ / "notify");
    auto first = start_first(systemd);
    const std::string holder = fmt::format("pid {}", first->pid());

    auto second = test::run_subsyncd({"run", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(second.exit_code, 2) << second.err;
    EXPECT_NE(second.err.find(holder), std::string::npos) << second.err;
    EXPECT_NE(second.err.find("snapshot.db.lock"), std::string::npos) << second.err;

    auto once = test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(once.exit_code, 2) << once.err;
    EXPECT_NE(once.err.find(holder), std::string::npos) << once.err;
    EXPECT_NE(once.err.find("--wait"), std::string::npos) << "the message says how to wait: " << once.err;

    first->signal(SIGTERM);
    EXPECT_EQ(first->wait(10s), 0) << first->err();
    // Released at exit: the next one starts.
    once = test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(once.exit_code, 0) << once.err;
}

TEST_F(DaemonLock, SyncOnceWithWaitRunsWhenTheDaemonStops) {
    test::notify_socket systemd(dir_ / "notify");
    auto first = start_first(systemd);
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript();

    test::daemon_process waiting({"sync", "--once", "--wait", "--config", cfg_.string()},
                                 {{"SUBSYNC_TEST_TOKEN", token}}, dir_.path(), "waiting");
    // It blocks on the lock (and says so) instead of exiting 2.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (waiting.err().find("waiting for the database lock") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);  // polls its log, the event itself
    EXPECT_EQ(waiting.wait(0ms), std::nullopt) << waiting.err();
    first->signal(SIGTERM);
    EXPECT_EQ(first->wait(10s), 0) << first->err();
    EXPECT_EQ(waiting.wait(30s), 0) << waiting.err();
    EXPECT_NE(waiting.err().find(fmt::format("waiting for the database lock: another subsyncd (pid {})", first->pid())),
              std::string::npos)
        << waiting.err();
}

TEST(InstanceLock, SecondHolderIsToldThePid) {
    test::temp_dir dir;
    const auto db = dir / "x.db";
    std::string holder;
    auto a = daemon::instance_lock::try_acquire(db, holder);
    ASSERT_TRUE(a);
    EXPECT_EQ(test::read_file(dir / "x.db.lock"), fmt::format("{}\n", ::getpid()));
    // flock() locks belong to open file descriptions: a second open in this process conflicts too.
    auto b = daemon::instance_lock::try_acquire(db, holder);
    EXPECT_FALSE(b);
    EXPECT_EQ(holder, fmt::format("another subsyncd (pid {}) holds {}", ::getpid(), (dir / "x.db.lock").string()));
    a.reset();
    auto c = daemon::instance_lock::try_acquire(db, holder);
    EXPECT_TRUE(c) << "released with its owner";
}

}  // namespace
}  // namespace subsync
