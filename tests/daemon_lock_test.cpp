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

TEST_F(DaemonLock, SecondRunExitsFourNamingTheHolder) {
    test::notify_socket systemd(dir_ / "notify");
    auto first = start_first(systemd);
    const std::string holder = fmt::format("pid {}", first->pid());

    // lock_wait = 0: no wait, the second daemon gives up at once.
    auto c = test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string());
    c.lock_wait = "0s";
    test::temp_dir other;
    auto no_wait = test::write_daemon_config(other.path(), c);
    test::write_file(no_wait, [&] {
        // The same database as the first daemon.
        std::string text = test::read_file(no_wait);
        const std::string mine = (other / "snapshot.db").string();
        text.replace(text.find(mine), mine.size(), (dir_ / "snapshot.db").string());
        return text;
    }());
    auto second = test::run_subsyncd({"run", "--config", no_wait.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(second.exit_code, 4) << second.err;
    EXPECT_NE(second.err.find(holder), std::string::npos) << second.err;
    EXPECT_NE(second.err.find("snapshot.db.lock"), std::string::npos) << second.err;
    EXPECT_NE(second.err.find("lock_wait=0"), std::string::npos) << second.err;

    auto once = test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(once.exit_code, 4) << once.err;
    EXPECT_NE(once.err.find(holder), std::string::npos) << once.err;
    EXPECT_NE(once.err.find("--wait"), std::string::npos) << "the message says how to wait: " << once.err;

    first->signal(SIGTERM);
    EXPECT_EQ(first->wait(10s), 0) << first->err();
    // Released at exit: the next one starts.
    once = test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(once.exit_code, 0) << once.err;
}

// A one-shot sync (here: this process, holding the lock as `sync --once` does) has the database.
TEST_F(DaemonLock, SyncOnceMeetingAOneShotExitsFour) {
    std::string holder;
    auto one_shot = daemon::instance_lock::try_acquire(dir_ / "snapshot.db", holder);
    ASSERT_TRUE(one_shot);
    auto once = test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(once.exit_code, 4) << once.err;
    EXPECT_NE(once.err.find(fmt::format("another subsyncd (pid {}) holds", ::getpid())), std::string::npos)
        << once.err;
}

// subsyncd.service started while a one-shot sync runs: it waits for the lock (telling systemd
// start-up takes longer) and syncs once the one-shot is done, instead of exiting for good.
TEST_F(DaemonLock, RunWaitsForAOneShotThenSyncs) {
    std::string holder;
    auto one_shot = daemon::instance_lock::try_acquire(dir_ / "snapshot.db", holder);
    ASSERT_TRUE(one_shot);

    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d({"run", "--config", cfg_.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir_.path(),
                           "daemon");
    const auto waiting = systemd.wait_for("EXTEND_TIMEOUT_USEC=");
    ASSERT_TRUE(waiting) << systemd.transcript() << d.err();
    EXPECT_NE(waiting->find("STATUS=waiting for the database lock: another subsyncd (pid " +
                            std::to_string(::getpid()) + ")"),
              std::string::npos)
        << *waiting;
    EXPECT_NE(waiting->find("EXTEND_TIMEOUT_USEC=120000000"), std::string::npos)
        << "lock_wait (60s) plus a minute for the rest of start-up: " << *waiting;
    EXPECT_EQ(d.wait(0ms), std::nullopt) << "still waiting, not exited: " << d.err();
    for (const auto& g : systemd.received()) EXPECT_EQ(g.text.find("READY=1"), std::string::npos) << g.text;

    one_shot.reset();  // the one-shot sync ends
    ASSERT_TRUE(systemd.wait_for("READY=1")) << systemd.transcript() << d.err();
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();
    EXPECT_EQ(test::read_file(dir_ / "snapshot.db.lock"), fmt::format("{}\n", d.pid())) << "the daemon holds it now";
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(10s), 0) << d.err();
}

TEST_F(DaemonLock, RunStoppedWhileWaitingForTheLockExitsZero) {
    std::string holder;
    auto one_shot = daemon::instance_lock::try_acquire(dir_ / "snapshot.db", holder);
    ASSERT_TRUE(one_shot);
    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d({"run", "--config", cfg_.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir_.path(),
                           "daemon");
    ASSERT_TRUE(systemd.wait_for("EXTEND_TIMEOUT_USEC=")) << systemd.transcript() << d.err();
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(10s), 0) << d.err();
    EXPECT_NE(d.err().find("stopping while waiting for the database lock signal=SIGTERM"), std::string::npos)
        << d.err();
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
    EXPECT_NE(waiting.err().find(fmt::format("waiting for the database lock holder=\"another subsyncd (pid {})", first->pid())),
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
