// Alert delivery through the real binary: `subsyncd run` killed mid-delivery and restarted,
// a receiver down for several sync intervals, `sync --once` flushing, `alerts --redeliver`.
// Outbox rows are committed directly (what a sync that was killed right after its commit leaves).

#include "support/daemon_process.hpp"
#include "support/emulated_cloud.hpp"

#include <subsync/emulator/webhook_receiver.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <subsync/alerting/outbox.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <csignal>
#include <thread>

namespace subsync {
namespace {

using namespace std::chrono_literals;
constexpr const char* token = "tok-alerts-5e1";

std::int64_t wall_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// The idempotency keys of the alerts a group notification carries, in its order.
std::vector<std::string> keys_of(const std::string& body) {
    simdjson::dom::parser p;
    std::vector<std::string> out;
    for (auto a : p.parse(body)["alerts"].get_array())
        out.emplace_back(std::string_view(a["idempotency_key"]));
    return out;
}

/// Every alert once, and the groups in queue order: each group's earliest alert comes after the
/// earlier groups' earliest ones (docs/alert-delivery.md "Order").
void expect_each_once_groups_in_order(const std::vector<std::vector<std::string>>& groups,
                                      const std::vector<std::string>& outbox) {
    std::map<std::string, std::size_t> position;
    for (std::size_t i = 0; i < outbox.size(); ++i) position[outbox[i]] = i;
    std::vector<std::string> got;
    std::size_t previous_first = 0;
    for (std::size_t g = 0; g < groups.size(); ++g) {
        std::size_t first = outbox.size();
        for (const auto& k : groups[g]) {
            got.push_back(k);
            ASSERT_TRUE(position.count(k)) << k;
            first = std::min(first, position[k]);
        }
        if (g > 0) {
            EXPECT_GT(first, previous_first) << "group " << g << " went out of order";
        }
        previous_first = first;
    }
    std::sort(got.begin(), got.end());
    std::vector<std::string> want = outbox;
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << "every alert exactly once";
}

class AlertDeliveryE2E : public ::testing::Test {
protected:
    void SetUp() override {
        emu_ = test::start_emulator({}, emulator::dataset::generated(20, 2, 3), token, dir_ / "emu.pem");
        test::write_file(dir_ / "ca.pem", emu_->cert_pem());
        // Creates the schema, as the first sync would.
        sync::snapshot_store store(dir_ / "snapshot.db");
    }

    std::filesystem::path write_config(const std::string& interval, const std::string& alerts_extra = "",
                                       int max_attempts = 50, const std::string& group_wait = "0s") {
        auto c = test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string());
        c.interval = interval;
        c.extra = fmt::format(R"(
[alerts]
retry_base    = "100ms"
retry_max     = "300ms"
max_attempts  = {}
flush_timeout = "1s"
{}
[[alerts.sink]]
name    = "hook"
type    = "webhook"
url     = "{}/hook"
timeout = "2s"
group_interval = "0s"  # the timers have their own tests (alert_dispatch_test)
group_wait = "{}"

[[alerts.sink]]
name = "file"
type = "jsonl"
path = "{}"
group_interval = "0s"
group_wait = "{}"
)",
                              max_attempts, alerts_extra, rcv_.base_url(), group_wait,
                              (dir_ / "alerts" / "out.jsonl").string(), group_wait);
        return test::write_daemon_config(dir_.path(), c);
    }

    /// Commits `n` notifications for both sinks, as the state machine does; returns their keys.
    std::vector<std::string> commit_notifications(int n) {
        SQLite::Database db(dir_ / "snapshot.db", SQLite::OPEN_READWRITE);
        std::vector<std::string> keys;
        for (int i = 0; i < n; ++i) {
            const std::int64_t seq = db.execAndGet("SELECT coalesce(max(seq), 0) + 1 FROM alert_outbox").getInt64();
            const std::string key = fmt::format("e2e-key-{}", seq);
            const alerting::queued_notification q{key,
                                                  wall_now(),
                                                  std::nullopt,
                                                  "prod",
                                                  "purchased_groups",
                                                  fmt::format("sub-{}", seq),
                                                  config::alert_kind::expiring,
                                                  "7d",
                                                  alerting::alert_state::firing,
                                                  config::severity::warning,
                                                  1'800'000'000'000,
                                                  std::nullopt,
                                                  "",
                                                  "expires soon",
                                                  "",
                                                  1};
            const std::vector<std::string> sinks{"hook", "file"};
            EXPECT_GT(alerting::outbox(db).enqueue(q, sinks), 0);
            keys.push_back(key);
        }
        return keys;
    }

    /// The alerts of each group notification the receiver accepted, in arrival order.
    std::vector<std::vector<std::string>> accepted_groups() const {
        std::vector<std::vector<std::string>> groups;
        for (const auto& b : rcv_.accepted_bodies()) groups.push_back(keys_of(b));
        return groups;
    }

    std::string statuses(const std::string& sink) {
        SQLite::Database db(dir_ / "snapshot.db");
        SQLite::Statement q(db, "SELECT group_concat(status, ',') FROM (SELECT status FROM alert_delivery_status WHERE sink = ? ORDER BY seq)");
        q.bind(1, sink);
        q.executeStep();
        return q.getColumn(0).getString();
    }

    /// Every notification's key in seq order: the committed ones first, then what the syncs
    /// against the emulator raised (its seeds hold groups expiring soon).
    std::vector<std::string> outbox_keys() {
        SQLite::Database db(dir_ / "snapshot.db");
        SQLite::Statement q(db, "SELECT idempotency_key FROM alert_outbox ORDER BY seq");
        std::vector<std::string> keys;
        while (q.executeStep()) keys.push_back(q.getColumn(0).getString());
        return keys;
    }

    std::int64_t undelivered(const std::string& sink) {
        SQLite::Database db(dir_ / "snapshot.db");
        SQLite::Statement q(db, "SELECT count(*) FROM alert_delivery_status WHERE sink = ? AND status != 'delivered'");
        q.bind(1, sink);
        q.executeStep();
        return q.getColumn(0).getInt64();
    }

    bool wait_all_delivered(std::chrono::milliseconds timeout) {
        const auto until = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < until) {
            if (undelivered("hook") == 0 && undelivered("file") == 0) return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }

    std::unique_ptr<test::daemon_process> start_daemon(const std::filesystem::path& cfg, const std::string& name) {
        return std::make_unique<test::daemon_process>(std::vector<std::string>{"run", "--config", cfg.string()},
                                                      std::map<std::string, std::string>{{"SUBSYNC_TEST_TOKEN", token}},
                                                      dir_.path(), name);
    }

    test::temp_dir dir_;
    // Plain http here: the emulator and the receiver both make self-signed certificates with the
    // same subject, and one tls.ca_file cannot tell them apart. HTTPS to the receiver is covered
    // by alert_dispatch_test.
    emulator::webhook_receiver rcv_{emulator::receiver_options{false, "", "X-Subsync-Signature"}};
    std::unique_ptr<emulator::server> emu_;
};

TEST_F(AlertDeliveryE2E, KilledBeforeAndDuringDeliveryLosesNothingAfterRestart) {
    const auto cfg = write_config("1h");
    // Committed while no daemon runs: the state a SIGKILL right after the sync's commit leaves.
    const auto keys = commit_notifications(3);
    rcv_.set_stall(true);
    {
        auto d = start_daemon(cfg, "first");
        // The webhook has the first notification in flight, unanswered: kill now.
        ASSERT_TRUE(rcv_.wait_for_requests(1, 20s)) << d->err();
        d->signal(SIGKILL);
        ASSERT_EQ(d->wait(10s), 128 + SIGKILL);
    }
    EXPECT_EQ(statuses("hook"), "pending,pending,pending") << "nothing is marked delivered without a 2xx";
    rcv_.set_stall(false);
    auto d = start_daemon(cfg, "second");
    ASSERT_TRUE(rcv_.wait_for_accepted(3, 20s)) << d->err();
    ASSERT_TRUE(wait_all_delivered(20s)) << d->err();
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20s), 0) << d->err();
    const auto all = outbox_keys();
    ASSERT_GT(all.size(), keys.size()) << "the syncs raised real alerts too";
    EXPECT_TRUE(std::equal(keys.begin(), keys.end(), all.begin()));
    expect_each_once_groups_in_order(accepted_groups(), all);
    const auto lines = test::read_file(dir_ / "alerts" / "out.jsonl");
    for (const auto& k : all) EXPECT_NE(lines.find(k), std::string::npos) << k;
}

/// Polls the daemon's log for `text` (the daemon logs each sync round): false after `timeout`.
bool wait_for_log(const test::daemon_process& d, const std::string& text, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        if (d.err().find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// A SIGKILL after a sync committed its alerts and before any attempt: `group_wait` holds the
// round's groups back, so the kill lands in that gap for certain. The restarted daemon sends
// every alert once, in order.
TEST_F(AlertDeliveryE2E, KilledAfterTheSyncCommittedAndBeforeAnyAttemptLosesNothing) {
    {
        auto d = start_daemon(write_config("1h", "", 50, "1h"), "holding");
        ASSERT_TRUE(wait_for_log(*d, "sync round done round=1", 20s)) << d->err();
        d->signal(SIGKILL);
        ASSERT_EQ(d->wait(10s), 128 + SIGKILL);
    }
    EXPECT_TRUE(rcv_.requests().empty()) << "nothing was attempted before the kill";
    const auto queued = outbox_keys();
    ASSERT_FALSE(queued.empty()) << "the sync raised alerts (the dataset has groups expiring soon)";
    EXPECT_EQ(statuses("hook").find("delivered"), std::string::npos);
    EXPECT_EQ(undelivered("file"), static_cast<std::int64_t>(queued.size()));

    auto d = start_daemon(write_config("1h"), "after");
    ASSERT_TRUE(wait_all_delivered(20s)) << d->err();
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20s), 0) << d->err();
    const auto all = outbox_keys();
    ASSERT_GE(all.size(), queued.size());
    EXPECT_TRUE(std::equal(queued.begin(), queued.end(), all.begin()));
    expect_each_once_groups_in_order(accepted_groups(), all);
    const auto lines = test::read_file(dir_ / "alerts" / "out.jsonl");
    for (const auto& k : all) EXPECT_NE(lines.find(k), std::string::npos) << k;
}

TEST_F(AlertDeliveryE2E, ReceiverDownForThreeSyncRoundsGetsEverythingOnceInOrder) {
    // sync.interval is at least 10 s; SIGUSR1 runs the rounds sooner, which is the same to delivery.
    const auto cfg = write_config("1h");
    const auto keys = commit_notifications(4);
    rcv_.set_down(true);
    auto d = start_daemon(cfg, "down");
    ASSERT_TRUE(wait_for_log(*d, "sync round done round=1", 20s)) << d->err();
    for (int round = 2; round <= 3; ++round) {
        d->signal(SIGUSR1);
        ASSERT_TRUE(wait_for_log(*d, fmt::format("sync round done round={}", round), 20s)) << d->err();
    }
    ASSERT_TRUE(rcv_.wait_for_requests(3, 10s));
    const auto tried = rcv_.requests();
    EXPECT_NE(tried.front().body.find(keys[0]), std::string::npos) << "the head group goes first";
    for (const auto& r : tried) {  // head of line: only the head group is tried, the same each time
        EXPECT_EQ(r.header("Idempotency-Key"), tried.front().header("Idempotency-Key"));
        EXPECT_EQ(r.body, tried.front().body);
    }
    EXPECT_EQ(statuses("hook").find("delivered"), std::string::npos);
    rcv_.set_down(false);
    ASSERT_TRUE(wait_all_delivered(20s)) << d->err();
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait(20s), 0) << d->err();
    const auto all = outbox_keys();
    EXPECT_TRUE(std::equal(keys.begin(), keys.end(), all.begin()));
    expect_each_once_groups_in_order(accepted_groups(), all);
}

TEST_F(AlertDeliveryE2E, SyncOnceFlushesAndLeavesTheRestForTheNextRun) {
    const auto cfg = write_config("1h");
    const auto keys = commit_notifications(2);
    rcv_.set_down(true);
    auto r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("alert delivery incomplete"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("wait for the next run"), std::string::npos) << r.err;
    EXPECT_EQ(undelivered("file"), 0);
    EXPECT_EQ(statuses("hook").find("delivered"), std::string::npos);
    rcv_.set_down(false);
    r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(undelivered("hook"), 0);
    const auto all = outbox_keys();
    EXPECT_TRUE(std::equal(keys.begin(), keys.end(), all.begin()));
    expect_each_once_groups_in_order(accepted_groups(), all);
}

// `sync --once` writes the exports and delivers the alerts side by side; an export that fails
// (here its directory is a file) does not hold the alerts back, as in `subsyncd run`, and the
// run still fails with the export's error.
TEST_F(AlertDeliveryE2E, SyncOnceDeliversWhenTheExportFails) {
    const auto cfg = write_config("1h");
    const auto keys = commit_notifications(3);
    test::write_file(dir_ / "exports", "not a directory");
    const auto r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("exports"), std::string::npos) << r.err;
    EXPECT_EQ(undelivered("hook"), 0) << r.err;
    EXPECT_EQ(undelivered("file"), 0) << r.err;
    const auto lines = test::read_file(dir_ / "alerts" / "out.jsonl");
    for (const auto& k : keys) EXPECT_NE(lines.find(k), std::string::npos) << k;
    EXPECT_EQ(test::read_file(dir_ / "exports"), "not a directory");
}

// `alerts --deliveries` names each attempt's group and how many alerts it holds, through the
// exports' row writer: the same fields in csv and in json's "attempts".
TEST_F(AlertDeliveryE2E, DeliveriesListEachGroupNotificationInEveryFormat) {
    const auto cfg = write_config("1h");
    commit_notifications(3);
    auto r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::multiset<std::pair<std::string, std::int64_t>> sent;  // (group key, alerts) as the receiver got them
    simdjson::dom::parser p;
    for (const auto& b : rcv_.accepted_bodies()) {
        simdjson::dom::element g = p.parse(b)["group"];
        sent.emplace(std::string(std::string_view(g["key"])), int64_t(g["alerts"]));
    }
    ASSERT_FALSE(sent.empty());

    r = test::run_subsyncd({"alerts", "--deliveries", "--sink", "hook", "--format", "json", "--config", cfg.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto lines = test::split_lines(r.out);
    ASSERT_EQ(lines.size(), 1u) << r.out;
    simdjson::dom::element doc = p.parse(lines[0]);
    std::multiset<std::pair<std::string, std::int64_t>> listed;
    std::vector<std::string> json_rows;
    for (simdjson::dom::object a : doc["attempts"].get_array()) {
        std::vector<std::string_view> names;
        for (auto field : a) names.push_back(field.key);
        EXPECT_EQ(names, (std::vector<std::string_view>{"sink", "seq", "time", "outcome", "latency_ms", "group",
                                                        "alerts", "notification", "error"}));
        EXPECT_EQ(std::string_view(a["outcome"]), "delivered");
        listed.emplace(std::string(std::string_view(a["group"])), int64_t(a["alerts"]));
        json_rows.push_back(fmt::format("{},{}", int64_t(a["seq"]), int64_t(a["alerts"])));
    }
    EXPECT_EQ(listed, sent) << r.out;

    r = test::run_subsyncd({"alerts", "--deliveries", "--sink", "hook", "--format", "csv", "--config", cfg.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto rows = test::split_lines(r.out);
    ASSERT_EQ(rows.size(), json_rows.size() + 1) << r.out;
    EXPECT_EQ(rows[0], "sink,seq,time,outcome,latency_ms,group,alerts,notification,error");
    for (std::size_t i = 1; i < rows.size(); ++i) {
        EXPECT_EQ(rows[i].rfind("hook,", 0), 0u) << rows[i];
        EXPECT_NE(rows[i].find(",delivered,"), std::string::npos) << rows[i];
        EXPECT_NE(rows[i].find(fmt::format(",{},", json_rows[i - 1].substr(json_rows[i - 1].find(',') + 1))),
                  std::string::npos)
            << rows[i];
    }

    r = test::run_subsyncd({"alerts", "--deliveries", "--sink", "hook", "--config", cfg.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const auto& [key, n] : sent)
        EXPECT_NE(r.out.find(fmt::format("group \"{}\", {} alert{}", key, n, n == 1 ? "" : "s")), std::string::npos)
            << r.out;
}

TEST_F(AlertDeliveryE2E, DeadLetterThenRedeliverFromTheCommandLine) {
    const auto cfg = write_config("1h", "", 1);
    commit_notifications(1);
    rcv_.set_status(503);
    auto r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(statuses("hook").substr(0, 5), "dead,") << "max_attempts = 1";
    r = test::run_subsyncd({"alerts", "--deliveries", "--config", cfg.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("sink hook: 0 pending, 0 delivered, "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("HTTP 503"), std::string::npos) << r.out;

    rcv_.set_status(200);
    r = test::run_subsyncd({"alerts", "--redeliver", "--sink", "hook", "--config", cfg.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("dead-lettered notifications queued again for sink hook"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(", 0 dead, 0 pending"), std::string::npos) << r.out;
    EXPECT_EQ(undelivered("hook"), 0);
    // delivery_failed fired while the sink had dead letters (delivered by the jsonl sink) and
    // resolved with the redelivery.
    const auto lines = test::read_file(dir_ / "alerts" / "out.jsonl");
    EXPECT_NE(lines.find(R"("kind":"delivery_failed","severity":"critical","state":"firing")"), std::string::npos);

    r = test::run_subsyncd({"alerts", "--redeliver", "--sink", "nope", "--config", cfg.string()});
    EXPECT_EQ(r.exit_code, 2) << r.out;
}

}  // namespace
}  // namespace subsync
