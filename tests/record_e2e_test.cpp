// The record survives: SIGKILL at random instants, a full disk, a locked
// database, and one of two accounts failing. Real binary, real files.

#include "support/emulated_cloud.hpp"
#include "support/test_support.hpp"

#include <subsync/emulator/server.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include <csignal>
#include <random>
#include <thread>

namespace subsync {
namespace {

using test::config_spec;
using test::run_subsyncd;
using test::temp_dir;

constexpr const char* token = "record-test-token";

// The current rows of one table, API fields only (bookkeeping times differ between runs).
std::string current(const std::filesystem::path& db_path, const std::string& table) {
    SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT * FROM " + table + " WHERE removed_at IS NULL ORDER BY account, item_key");
    std::string out;
    while (q.executeStep()) {
        for (int i = 0; i < q.getColumnCount(); ++i) {
            const std::string name = q.getColumnName(i);
            if (name == "first_seen" || name == "updated_at" || name == "removed_at") continue;
            out += q.getColumn(i).getString() + "|";
        }
        out += '\n';
    }
    return out;
}

std::string integrity(const std::filesystem::path& db_path) {
    SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
    return db.execAndGet("PRAGMA integrity_check").getString();
}

std::string fmt_accounts(const std::string& url) {
    std::string out;
    for (const char* name : {"a", "b"})
        out += std::string("[[account]]\nname = \"") + name + "\"\napig_endpoint = \"" + url + "\"\nsecmaster_endpoint = \"" +
               url + "\"\n[account.auth]\ntoken_env = \"TOKEN_" + (name[0] == 'a' ? "A" : "B") + "\"\n";
    return out;
}

class Record : public ::testing::Test {
protected:
    void start(emulator::dataset data, std::chrono::milliseconds latency = {}) {
        emulator::options opts;
        opts.latency = latency;
        emu_ = test::start_emulator(opts, std::move(data), token, dir_ / "ca.pem");
    }
    std::filesystem::path config(config_spec spec = {}) {
        spec.base_url = emu_->base_url();
        spec.ca_file = (dir_ / "ca.pem").string();
        spec.page_size = 100;
        spec.concurrency = 4;
        return test::write_config(dir_, spec);
    }
    std::vector<std::string> sync_args(const std::filesystem::path& cfg) {
        return {"sync", "--once", "--config", cfg.string()};
    }
    std::map<std::string, std::string> env() { return {{"SUBSYNC_TEST_TOKEN", token}}; }
    std::filesystem::path db() const { return dir_ / "snapshot.db"; }

    temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
};

TEST_F(Record, KillNineAtRandomInstantsLeavesBeforeOrAfterNeverAMix) {
    const auto a = emulator::dataset::generated(500, 20, 1);
    const auto b = emulator::dataset::generated(500, 20, 2);
    start(a, std::chrono::milliseconds(1));
    const auto cfg = config();
    ASSERT_EQ(run_subsyncd(sync_args(cfg), env()).exit_code, 0);

    // How long a sync takes here, so that kills land during fetch, apply and commit alike.
    const auto t0 = std::chrono::steady_clock::now();
    emu_->set_dataset(b);
    ASSERT_EQ(run_subsyncd(sync_args(cfg), env()).exit_code, 0);
    const auto sync_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);

    std::mt19937 rng(20261125);
    std::uniform_int_distribution<int> delay(0, static_cast<int>(sync_ms.count()) + 20);
    int killed_mid_run = 0;
    for (int i = 0; i < 50; ++i) {
        SCOPED_TRACE(testing::Message() << "kill " << i);
        const auto& next = i % 2 == 0 ? a : b;
        const auto before_groups = current(db(), "purchased_groups");
        const auto before_resources = current(db(), "subscription_resources");
        emu_->set_dataset(next);

        auto child = test::spawn_subsyncd(sync_args(cfg), env());
        std::this_thread::sleep_for(std::chrono::milliseconds(delay(rng)));
        ::kill(child.pid, SIGKILL);
        const auto r = test::finish(child);
        if (r.exit_code == 128 + SIGKILL) ++killed_mid_run;

        ASSERT_EQ(integrity(db()), "ok");
        const auto groups = current(db(), "purchased_groups");
        const auto resources = current(db(), "subscription_resources");
        // Finish the sync the kill interrupted: that is "after".
        ASSERT_EQ(run_subsyncd(sync_args(cfg), env()).exit_code, 0);
        const auto after_groups = current(db(), "purchased_groups");
        const auto after_resources = current(db(), "subscription_resources");
        EXPECT_TRUE(groups == before_groups || groups == after_groups) << "purchased_groups is a mix";
        EXPECT_TRUE(resources == before_resources || resources == after_resources)
            << "subscription_resources is a mix";
    }
    EXPECT_GE(killed_mid_run, 25) << "most kills must land while the sync runs";
}

TEST_F(Record, FullDiskFailsClearlyAndKeepsTheSnapshot) {
    start(emulator::dataset::generated(300, 10, 1));
    const auto cfg = config();
    ASSERT_EQ(run_subsyncd(sync_args(cfg), env()).exit_code, 0);
    const auto before = current(db(), "purchased_groups");
    emu_->set_dataset(emulator::dataset::generated(6000, 10, 2));  // megabytes of new rows
    // The file size limit stands in for a full disk: writes past it fail with EFBIG.
    const auto limit = std::filesystem::file_size(db()) + 64 * 1024;
    auto child = test::spawn({"/usr/bin/prlimit", "--fsize=" + std::to_string(limit), "--", test::subsyncd_path(),
                              "sync", "--once", "--config", cfg.string()},
                             env());
    const auto r = test::finish(child);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("cannot write the snapshot " + db().string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("previous snapshot is intact"), std::string::npos) << r.err;
    EXPECT_EQ(integrity(db()), "ok");
    EXPECT_EQ(current(db(), "purchased_groups"), before);
}

TEST_F(Record, LockedDatabaseFailsClearlyAndKeepsTheSnapshot) {
    start(emulator::dataset::generated(300, 10, 1));
    const auto cfg = config([] {
        config_spec s;
        s.extra_storage = "busy_timeout = \"300ms\"\n";
        return s;
    }());
    ASSERT_EQ(run_subsyncd(sync_args(cfg), env()).exit_code, 0);
    const auto before = current(db(), "purchased_groups");
    emu_->set_dataset(emulator::dataset::generated(400, 10, 2));
    {
        SQLite::Database holder(db().string(), SQLite::OPEN_READWRITE);
        holder.exec("BEGIN IMMEDIATE");  // another writer holds the lock for the whole sync
        const auto r = run_subsyncd(sync_args(cfg), env());
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find("database is locked"), std::string::npos) << r.err;
        holder.exec("ROLLBACK");
    }
    EXPECT_EQ(integrity(db()), "ok");
    EXPECT_EQ(current(db(), "purchased_groups"), before);
}

TEST_F(Record, OneFailingAccountLeavesTheOtherToApply) {
    start(emulator::dataset::generated(200, 10, 1));
    const std::string accounts = fmt_accounts(emu_->base_url());
    const auto file = dir_ / "two.toml";
    test::write_file(file, "[storage]\ndatabase = \"" + db().string() + "\"\nexport_dir = \"" + (dir_ / "exports").string() +
                               "\"\n[sync]\nbackoff_base = \"10ms\"\n[tls]\nca_file = \"" + (dir_ / "ca.pem").string() +
                               "\"\n" + accounts);
    auto r = run_subsyncd({"sync", "--once", "--config", file.string()}, {{"TOKEN_A", token}, {"TOKEN_B", token}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto b_before = [&] {
        SQLite::Database d(db().string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(d, "SELECT * FROM purchased_groups WHERE account = 'b' ORDER BY item_key");
        std::string out;
        while (q.executeStep())
            for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
        return out;
    };
    const auto b_rows = b_before();
    emu_->set_dataset(emulator::dataset::generated(250, 10, 3));
    r = run_subsyncd({"sync", "--once", "--config", file.string()}, {{"TOKEN_A", token}, {"TOKEN_B", "revoked"}});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("account=b source=purchased_groups page=1: HTTP 401"), std::string::npos) << r.err;
    EXPECT_EQ(b_before(), b_rows) << "the failing account's rows are untouched";
    SQLite::Database d(db().string(), SQLite::OPEN_READONLY);
    EXPECT_EQ(d.execAndGet("SELECT count(*) FROM purchased_groups WHERE account = 'a' AND removed_at IS NULL").getInt64(),
              250);
}

}  // namespace
}  // namespace subsync
