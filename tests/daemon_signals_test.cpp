// Signals as an operator (or systemd) sends them to `subsyncd run`: SIGTERM in the middle of a
// slow sync, SIGHUP with a broken and with a good config, SIGUSR1.

#include "support/daemon_process.hpp"

#include <subsync/emulator/server.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <thread>

namespace subsync {
namespace {

using namespace std::chrono_literals;

constexpr const char* token = "tok-signals-81ae";

std::unique_ptr<emulator::server> start_cloud(emulator::dataset data, const std::filesystem::path& ca,
                                              std::chrono::milliseconds latency = {}) {
    emulator::options opts;
    opts.token = token;
    opts.latency = latency;
    auto emu = std::make_unique<emulator::server>(opts, std::move(data));
    emu->start();
    test::write_file(ca, emu->cert_pem());
    return emu;
}

/// Waits (bounded) until the emulator has read at least `n` requests: they are in flight.
bool wait_requests(const emulator::server& emu, std::uint64_t n, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (emu.get_stats().requests < n) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);  // polls the emulator's counter, the event itself
    }
    return true;
}

std::string snapshot_of(const std::filesystem::path& db) {
    return test::dump_table(db, "purchased_groups", "account, item_key") +
           test::dump_table(db, "subscription_resources", "account, item_key") + test::dump_table(db, "changes", "seq");
}

TEST(DaemonSignals, SigtermDuringSlowSyncExitsWithinGraceAndRollsBack) {
    test::temp_dir dir;
    const auto db = dir / "snapshot.db";
    // A first sync from a fast cloud gives the "before" snapshot.
    {
        auto fast = start_cloud(emulator::dataset::generated(300, 10, 1), dir / "fast.pem");
        auto c = test::cloud_config(fast->base_url(), (dir / "fast.pem").string());
        const auto cfg = test::write_daemon_config(dir.path(), c);
        auto r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const std::string before = snapshot_of(db);
    ASSERT_NE(before.find('\n'), std::string::npos);

    // Then the daemon meets a slow cloud whose data would change everything.
    auto slow = start_cloud(emulator::dataset::generated(250, 8, 2), dir / "slow.pem", 30s);
    auto c = test::cloud_config(slow->base_url(), (dir / "slow.pem").string());
    c.grace = "3s";
    const auto cfg = test::write_daemon_config(dir.path(), c);
    test::notify_socket systemd(dir / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir.path());
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 running")) << systemd.transcript() << d.err();
    ASSERT_TRUE(wait_requests(*slow, 2)) << "both sources have a request in flight; " << d.err();

    const auto t0 = std::chrono::steady_clock::now();
    d.signal(SIGTERM);
    const auto code = d.wait(10s);
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(code, 0) << d.err();
    EXPECT_LT(took, 3s) << "exit within [daemon] grace = 3s (the emulator answers after 30s)";
    EXPECT_TRUE(systemd.wait_for("STOPPING=1", 1s)) << systemd.transcript();
    EXPECT_NE(d.err().find("cancelling the running sync"), std::string::npos) << d.err();

    EXPECT_EQ(snapshot_of(db), before) << "the cancelled sync changed the snapshot";
    EXPECT_EQ(test::integrity_check(db), "ok");
}

class DaemonReload : public ::testing::Test {
protected:
    void SetUp() override {
        emu_ = start_cloud(emulator::dataset::generated(300, 10, 5), dir_ / "ca.pem");
        base_ = test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string());
    }

    test::temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
    test::daemon_config base_;
};

TEST_F(DaemonReload, InvalidConfigIsRejectedAndTheOldOneKeepsRunning) {
    const auto cfg = test::write_daemon_config(dir_.path(), base_);  // page_size 100: 3 pages of purchases
    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir_.path());
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();

    // A broken file: page_size out of range (line 7 of what write_daemon_config writes).
    auto broken = base_;
    broken.page_size = 0;
    test::write_daemon_config(dir_.path(), broken);
    d.signal(SIGHUP);
    ASSERT_TRUE(systemd.wait_for("RELOADING=1")) << systemd.transcript();
    auto answer = systemd.wait_for("READY=1");
    ASSERT_TRUE(answer) << systemd.transcript();
    EXPECT_TRUE(test::has_line(*answer, "STATUS=reload rejected")) << *answer;

    emu_->reset_stats();
    d.signal(SIGUSR1);
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 2 ok")) << systemd.transcript() << d.err();
    EXPECT_EQ(emu_->get_stats().purchases_requests, 3u) << "still page_size = 100";

    // A good file: page_size 50 and another account name; the next sync uses both.
    auto good = base_;
    good.page_size = 50;
    good.account = "renamed";
    test::write_daemon_config(dir_.path(), good);
    d.signal(SIGHUP);
    answer = systemd.wait_for("READY=1");
    ASSERT_TRUE(answer) << systemd.transcript();
    EXPECT_TRUE(test::has_line(*answer, "STATUS=config reloaded")) << *answer;
    emu_->reset_stats();
    d.signal(SIGUSR1);
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 3 ok")) << systemd.transcript() << d.err();
    EXPECT_EQ(emu_->get_stats().purchases_requests, 6u) << "page_size = 50 after the reload";

    d.signal(SIGTERM);
    ASSERT_EQ(d.wait(10s), 0) << d.err();
    const std::string err = d.err();
    const std::string why = fmt::format("{}:7: sync.page_size: must be between 1 and 500, got 0", cfg.string());
    EXPECT_NE(err.find("config reload rejected: " + why), std::string::npos) << err;
    EXPECT_NE(err.find("still running on the previous configuration"), std::string::npos) << err;
    const auto runs = test::dump_table(dir_ / "snapshot.db", "sync_runs", "id");
    EXPECT_NE(runs.find("|renamed|purchased_groups|"), std::string::npos) << runs;
}

TEST_F(DaemonReload, ChangingTheDatabaseNeedsARestart) {
    const auto cfg = test::write_daemon_config(dir_.path(), base_);
    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir_.path());
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();
    std::string text = test::read_file(cfg);
    const auto at = text.find("snapshot.db");
    text.replace(at, 11, "other.db");
    test::write_file(cfg, text);
    d.signal(SIGHUP);
    auto answer = systemd.wait_for("READY=1");
    ASSERT_TRUE(answer) << systemd.transcript();
    EXPECT_TRUE(test::has_line(*answer, "STATUS=reload rejected")) << *answer;
    d.signal(SIGTERM);
    ASSERT_EQ(d.wait(10s), 0) << d.err();
    EXPECT_NE(d.err().find("storage.database: changing the database needs a restart"), std::string::npos) << d.err();
}

}  // namespace
}  // namespace subsync
