// `subsyncd status` (issue 17): the real binary on a database made by real syncs against the
// emulator. Its numbers are checked against the database and against `subsyncd alerts`; its exit
// code is 0 / 1 / 5 / 3 as documented; it reads while another process holds the lock.

#include "support/daemon_process.hpp"

#include <subsync/daemon/lock.hpp>
#include <subsync/emulator/server.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <signal.h>

#include <map>
#include <sstream>

namespace subsync {
namespace {

using namespace std::chrono_literals;

constexpr const char* token = "tok-status-5e1a";

class Status : public ::testing::Test {
protected:
    void SetUp() override {
        emulator::options opts;
        opts.token = token;
        emu_ = std::make_unique<emulator::server>(opts, emulator::dataset::generated(150, 7, 5));
        emu_->start();
        test::write_file(dir_ / "ca.pem", emu_->cert_pem());
        write_config();
    }

    /// One account; an exec sink that always fails after one attempt, so a dead letter appears
    /// as soon as an alert fires.
    void write_config(const std::string& extra_account = "") {
        auto c = test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string());
        c.extra = R"(
[alerts]
max_attempts  = 1
flush_timeout = "2s"

[[alerts.sink]]
name    = "hook"
type    = "exec"
argv    = ["/bin/false"]
)";
        cfg_ = test::write_daemon_config(dir_.path(), c);
        if (!extra_account.empty()) test::write_file(cfg_, test::read_file(cfg_) + extra_account);
    }

    test::run_result sync(const std::string& tok = token) {
        return test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", tok}});
    }

    test::run_result status(std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"status", "--config", cfg_.string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_subsyncd(args);
    }

    /// `status --format json`, parsed; fails the test when it is not one JSON object.
    simdjson::dom::element status_json(test::run_result& r, std::vector<std::string> extra = {}) {
        extra.insert(extra.begin(), {"--format", "json"});
        r = status(extra);
        simdjson::dom::element doc;
        EXPECT_FALSE(parser_.parse(r.out).get(doc)) << r.out << r.err;
        return doc;
    }

    std::filesystem::path db() const { return dir_ / "snapshot.db"; }

    test::temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
    std::filesystem::path cfg_;
    simdjson::dom::parser parser_;
};

std::int64_t count(const std::filesystem::path& db, const std::string& sql) {
    SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
    return d.execAndGet(sql).getInt64();
}

TEST_F(Status, AfterAGoodSyncEveryNumberMatchesTheDatabaseAndExitIsZero) {
    ASSERT_EQ(sync().exit_code, 0);

    test::run_result r;
    auto doc = status_json(r);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(std::string_view(doc["status"]), "ok");
    EXPECT_EQ(int64_t(doc["exit_code"]), 0);
    EXPECT_FALSE(bool(doc["daemon"]["running"])) << "nothing holds the lock after sync --once";
    EXPECT_EQ(int64_t(doc["max_age_seconds"]), 7200) << "2 x interval (1h)";

    std::map<std::string, std::int64_t> items;
    for (auto s : doc["sources"].get_array()) {
        EXPECT_EQ(std::string_view(s["account"]), "prod");
        EXPECT_EQ(std::string_view(s["last_status"]), "ok");
        EXPECT_EQ(std::string_view(s["verdict"]), "ok");
        EXPECT_TRUE(s["error"].is_null());
        EXPECT_GE(int64_t(s["age_seconds"]), 0);
        EXPECT_LT(int64_t(s["age_seconds"]), 120);
        items[std::string(std::string_view(s["source"]))] = int64_t(s["items"]);
    }
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items["purchased_groups"],
              count(db(), "SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"));
    EXPECT_EQ(items["subscription_resources"],
              count(db(), "SELECT COUNT(*) FROM subscription_resources WHERE removed_at IS NULL"));

    // Alerts firing by severity agree with `subsyncd alerts`, and there is at least one, so the
    // failing hook has dead letters to count.
    auto alerts = test::run_subsyncd({"alerts", "--format", "json", "--config", cfg_.string()});
    ASSERT_EQ(alerts.exit_code, 0) << alerts.err;
    std::map<std::string, std::int64_t> by_severity{{"critical", 0}, {"warning", 0}, {"info", 0}};
    std::istringstream lines(alerts.out);
    for (std::string line; std::getline(lines, line);) {
        simdjson::dom::parser p;
        simdjson::dom::element a;
        ASSERT_FALSE(p.parse(line).get(a)) << line;
        ++by_severity[std::string(std::string_view(a["severity"]))];
    }
    std::int64_t firing = 0;
    for (const auto& [sev, n] : by_severity) {
        EXPECT_EQ(int64_t(doc["alerts_firing"][sev]), n) << sev;
        firing += n;
    }
    ASSERT_GT(firing, 0) << "the generated tenant has expiring items: " << alerts.out;

    // Per sink: the same pending / dead counts as the database holds.
    auto sinks = doc["sinks"].get_array();
    ASSERT_EQ(sinks.size(), 1u);
    EXPECT_EQ(std::string_view(sinks.at(0)["sink"]), "hook");
    const auto dead = count(db(), "SELECT COUNT(*) FROM alert_delivery_status WHERE sink = 'hook' AND status = 'dead'");
    EXPECT_GT(dead, 0) << "/bin/false with max_attempts = 1 dead-letters every notification";
    EXPECT_EQ(int64_t(sinks.at(0)["dead"]), dead);
    EXPECT_EQ(int64_t(sinks.at(0)["pending"]),
              count(db(), "SELECT COUNT(*) FROM alert_delivery_status WHERE sink = 'hook' AND status = 'pending'"));

    // Sizes are the files' sizes.
    EXPECT_EQ(uint64_t(doc["storage"]["database_bytes"]), std::filesystem::file_size(db()));
    EXPECT_GT(int64_t(doc["storage"]["export_bytes"]), 0);
    EXPECT_EQ(int64_t(doc["storage"]["export_generations"]), 1);

    // The table says the same for a person.
    auto table = status();
    EXPECT_EQ(table.exit_code, 0) << table.err;
    for (const std::string& want :
         {fmt::format("prod         purchased_groups         ok"), std::string("daemon     not running"),
          fmt::format("{} pending, {} dead", int64_t(sinks.at(0)["pending"]), dead), std::string("status: ok (exit 0)"),
          fmt::format("{} critical, {} warning, {} info", by_severity["critical"], by_severity["warning"],
                      by_severity["info"])})
        EXPECT_NE(table.out.find(want), std::string::npos) << want << "\n" << table.out;
}

TEST_F(Status, NeverSyncedExitsFive) {
    // No database yet: every source is "never".
    test::run_result r;
    auto doc = status_json(r);
    EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
    EXPECT_EQ(std::string_view(doc["status"]), "stale");
    for (auto s : doc["sources"].get_array()) {
        EXPECT_EQ(std::string_view(s["verdict"]), "never");
        EXPECT_TRUE(s["last_status"].is_null());
    }
    EXPECT_FALSE(std::filesystem::exists(db())) << "status must not create the database";

    // An account added after the first sync has never synced: 5 while the other is fine.
    ASSERT_EQ(sync().exit_code, 0);
    write_config(fmt::format(R"(
[[account]]
name               = "staging"
apig_endpoint      = "{0}"
secmaster_endpoint = "{0}"
[account.auth]
type      = "token"
token_env = "SUBSYNC_TEST_TOKEN"
)",
                             emu_->base_url()));
    doc = status_json(r);
    EXPECT_EQ(r.exit_code, 5) << r.out;
    int never = 0, ok = 0;
    for (auto s : doc["sources"].get_array()) {
        const std::string_view v = s["verdict"];
        if (v == "never") {
            ++never;
            EXPECT_EQ(std::string_view(s["account"]), "staging");
        }
        if (v == "ok") ++ok;
    }
    EXPECT_EQ(never, 2);
    EXPECT_EQ(ok, 2);
    auto table = status();
    EXPECT_EQ(table.exit_code, 5);
    EXPECT_NE(table.out.find("staging/purchased_groups: never synced"), std::string::npos) << table.out;
}

TEST_F(Status, AFailedLastRunExitsOneAndShowsItsError) {
    ASSERT_EQ(sync().exit_code, 0);
    const std::string wrong = "tok-wrong-0d0d";
    ASSERT_EQ(sync(wrong).exit_code, 1);

    test::run_result r;
    auto doc = status_json(r);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_EQ(std::string_view(doc["status"]), "failed");
    for (auto s : doc["sources"].get_array()) {
        EXPECT_EQ(std::string_view(s["verdict"]), "failed");
        EXPECT_FALSE(s["error"].is_null());
    }
    auto table = status();
    EXPECT_EQ(table.exit_code, 1);
    EXPECT_NE(table.out.find("status: failed (exit 1)"), std::string::npos) << table.out;
    EXPECT_EQ(table.out.find(wrong), std::string::npos) << "a token in the status output";
    EXPECT_EQ(r.out.find(wrong), std::string::npos) << "a token in the status output";
}

TEST_F(Status, AnOldLastRunIsStaleUnlessMaxAgeAllowsIt) {
    ASSERT_EQ(sync().exit_code, 0);
    {
        // The runs ended 3 hours ago: more than 2 x the 1h interval.
        SQLite::Database d(db().string(), SQLite::OPEN_READWRITE);
        d.exec("UPDATE sync_runs SET started_at = started_at - 10800000, finished_at = finished_at - 10800000");
    }
    test::run_result r;
    auto doc = status_json(r);
    EXPECT_EQ(r.exit_code, 5) << r.out;
    for (auto s : doc["sources"].get_array()) {
        EXPECT_EQ(std::string_view(s["verdict"]), "stale");
        EXPECT_EQ(std::string_view(s["last_status"]), "ok");
        EXPECT_GE(int64_t(s["age_seconds"]), 10800);
    }
    auto table = status();
    EXPECT_EQ(table.exit_code, 5);
    EXPECT_NE(table.out.find("(more than 2h)"), std::string::npos) << table.out;

    doc = status_json(r, {"--max-age", "4h"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(int64_t(doc["max_age_seconds"]), 14400);

    auto bad = status({"--max-age", "soon"});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_NE(bad.err.find("--max-age \"soon\""), std::string::npos) << bad.err;
}

TEST_F(Status, ReadsWhileTheDaemonHoldsTheLockAndNamesItsPid) {
    test::notify_socket systemd(dir_ / "notify");
    test::daemon_process d({"run", "--config", cfg_.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir_.path());
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();
    ASSERT_EQ(daemon::instance_lock::holder_pid(db()), std::optional<long>(d.pid()));

    test::run_result r;
    auto doc = status_json(r);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(bool(doc["daemon"]["running"]));
    EXPECT_EQ(int64_t(doc["daemon"]["pid"]), d.pid());
    auto table = status();
    EXPECT_NE(table.out.find(fmt::format("running: pid {} holds", d.pid())), std::string::npos) << table.out;

    // Status never takes the lock: a sync --once still meets the daemon's (exit 4), not status's.
    auto once = test::run_subsyncd({"sync", "--once", "--config", cfg_.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(once.exit_code, 4) << once.err;

    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(10s), 0) << d.err();
    EXPECT_EQ(daemon::instance_lock::holder_pid(db()), std::nullopt) << "the lock is released with the process";
    doc = status_json(r);
    EXPECT_FALSE(bool(doc["daemon"]["running"]));
}

}  // namespace
}  // namespace subsync
