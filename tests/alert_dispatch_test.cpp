// The dispatcher against real SQLite files, a real HTTPS receiver on loopback and real child
// processes: order per sink, head of line, dead letters and redelivery, deadlines, and grouped
// notifications end to end. Most tests give every alert its own group (group_by = ["item"]) to
// follow one notification; the grouping tests check how alerts go out together. Each sink
// type's own behaviour is in alert_sinks_test.cpp, the plans in alert_grouping_test.cpp.

#include "support/dispatch_fixture.hpp"

#include <SQLiteCpp/Transaction.h>
#include <sqlite3.h>

#include <algorithm>
#include <span>
#include <cstdlib>

namespace subsync {
namespace {

using namespace dispatch_test;
using namespace std::chrono_literals;
using emulator::webhook_receiver;

TEST_F(Dispatch, WebhookDownBlocksItsSinkHeadOfLineThenDeliversInOrder) {
    webhook_receiver rcv;
    cfg.sinks = {http_sink(rcv, config::sink_type::webhook), jsonl_sink(dir / "out.jsonl")};
    for (int i = 0; i < 3; ++i) enqueue(db, {"hook", "file"}, item("sub-" + std::to_string(i)));
    rcv.set_down(true);
    auto r = dispatch(&rcv);
    // The head failed once and blocks the rest of its sink; the other sink is not held up.
    EXPECT_EQ(r.sinks[0].failed, 1);
    EXPECT_EQ(r.sinks[1].delivered, 3);
    const auto head = delivery(db, "hook", 1);
    EXPECT_EQ(head.status, "pending");
    EXPECT_EQ(head.attempts, 1);
    EXPECT_EQ(head.next_attempt_at, now + 5000) << "full jitter: draw 0.5 of retry_base 10s";
    EXPECT_NE(head.last_error, "");
    EXPECT_EQ(delivery(db, "hook", 2).attempts, 0);
    ASSERT_TRUE(r.next_due.has_value());
    EXPECT_EQ(*r.next_due, now + 5000);

    // Not yet due: nothing is tried.
    rcv.set_down(false);
    now += 4999;
    r = dispatch(&rcv);
    EXPECT_EQ(r.delivered + r.failed, 0);
    now += 1;
    r = dispatch(&rcv);
    EXPECT_EQ(r.delivered, 3);
    const auto bodies = rcv.accepted_bodies();
    ASSERT_EQ(bodies.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i)
        EXPECT_EQ(only_alert(bodies[i]), payload_of(static_cast<std::int64_t>(i + 1), item("sub-" + std::to_string(i))));
    const auto reqs = rcv.requests();
    EXPECT_EQ(reqs.back().target, "/hook");
    EXPECT_EQ(reqs.back().method, "POST");
    EXPECT_EQ(reqs.back().header("Content-Type"), "application/json");
    EXPECT_EQ(reqs.back().header("Idempotency-Key"), group_key_of({"key-3"}));
    EXPECT_EQ(attempt_outcomes(db, "hook"),
              (std::vector<std::string>{"1:failed", "1:delivered", "2:delivered", "3:delivered"}));
}

TEST_F(Dispatch, DeadLettersAfterMaxAttemptsMovesOnAndRequeueRedelivers) {
    webhook_receiver rcv;
    cfg.sinks = {http_sink(rcv, config::sink_type::webhook)};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    rcv.set_status(500);
    dispatch_passes(rcv, 3);
    EXPECT_EQ(delivery(db, "hook", 1).status, "dead");
    EXPECT_EQ(delivery(db, "hook", 1).attempts, 3);
    EXPECT_NE(delivery(db, "hook", 1).last_error.find("HTTP 500"), std::string::npos);
    // The sink moved on to seq 2 after the dead letter.
    EXPECT_EQ(attempt_outcomes(db, "hook"),
              (std::vector<std::string>{"1:failed", "1:failed", "1:dead", "2:failed"}));

    EXPECT_EQ(alerting::outbox(db).requeue_dead("other"), 0);
    EXPECT_EQ(alerting::outbox(db).requeue_dead("hook"), 1);
    EXPECT_EQ(delivery(db, "hook", 1).status, "pending");
    EXPECT_EQ(delivery(db, "hook", 1).attempts, 0);
    rcv.set_status(202);
    const auto r = dispatch(&rcv);
    EXPECT_EQ(r.delivered, 2);
    EXPECT_EQ(delivery(db, "hook", 1).status, "delivered");
}

TEST_F(Dispatch, RowsOfSinksNoLongerConfiguredAreLeftAlone) {
    cfg.sinks = {jsonl_sink(dir / "out.jsonl")};
    enqueue(db, {"file", "retired"});
    EXPECT_EQ(dispatch().delivered, 1);
    EXPECT_EQ(delivery(db, "retired", 1).status, "pending");
    EXPECT_EQ(delivery(db, "retired", 1).attempts, 0);
}

TEST_F(Dispatch, DeadlineStopsStartingAttempts) {
    cfg.sinks = {exec_sink({"/bin/sh", "-c", "sleep 30"}, 10s)};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    const auto start = std::chrono::steady_clock::now();
    const auto r = dispatch(nullptr, 300ms);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
    EXPECT_EQ(r.delivered, 0);
    EXPECT_EQ(delivery(db, "hook", 2).attempts, 0);
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM alert_deliveries WHERE seq = 2 AND batch IS NULL").getInt(), 1)
        << "not grouped: nothing went out";
    EXPECT_EQ(r.pending, 2);
}

// sync --once logs and meters what deliver_for reports. A sink whose first attempt fails and
// whose retry succeeds within the budget is two passes: both count, not only the last.
TEST_F(Dispatch, DeliverForCountsTheAttemptsOfEveryPass) {
    cfg.retry_base = 20ms;
    cfg.retry_max = 40ms;
    const auto flag = dir / "tried";
    cfg.sinks = {exec_sink({"/bin/sh", "-c", fmt::format("test -e '{0}' || {{ touch '{0}'; exit 3; }}", flag.string())}),
                 jsonl_sink(dir / "out.jsonl")};
    auto wall = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    };
    outbox_entry e;
    e.created_at = wall();
    enqueue(db, {"hook", "file"}, e);
    enqueue(db, {"hook", "file"}, e);
    config::config c;
    c.alerts = cfg;
    const auto r = alerting::deliver_for(c, db, config::environment::process(), wall, 10s);
    EXPECT_EQ(r.pending, 0);
    EXPECT_EQ(r.failed, 1) << "the first pass's failed attempt";
    EXPECT_EQ(r.delivered, 4) << "two alerts, one by one, to each of two sinks";
    ASSERT_EQ(r.sinks.size(), 2u);
    EXPECT_EQ(r.sinks[0].sink, "hook");
    EXPECT_EQ(r.sinks[0].failed, 1);
    EXPECT_EQ(r.sinks[0].delivered, 2);
    EXPECT_EQ(r.sinks[1].delivered, 2);
}

// ---- grouping, end to end (the plans themselves: alert_grouping_test.cpp) ----------------------

TEST_F(Dispatch, DefaultGroupingSendsOneNotificationPerAccountAndKindWithCountsAndResolved) {
    const auto file = dir / "out.jsonl";
    auto sink = jsonl_sink(file);
    sink.group = {};  // the defaults: by account and kind
    cfg.sinks = {sink};
    for (int i = 0; i < 3; ++i) enqueue(db, {"file"});
    enqueue(db, {"file"}, resolved_at(t0));
    outbox_entry dev;
    dev.account = "dev";
    enqueue(db, {"file"}, dev);
    outbox_entry expired;
    expired.kind = "expired";
    expired.severity = "critical";
    enqueue(db, {"file"}, expired);
    const auto r = dispatch();
    EXPECT_EQ(r.delivered, 3);
    EXPECT_EQ(r.pending, 0);
    const auto lines = test::split_lines(test::read_file(file));
    ASSERT_EQ(lines.size(), 3u);
    simdjson::dom::parser p;
    simdjson::dom::element first = p.parse(lines[0]);
    EXPECT_EQ(std::string_view(first["group"]["key"]), "account=prod,kind=expiring");
    EXPECT_EQ(std::string_view(first["group"]["labels"]["account"]), "prod");
    EXPECT_EQ(std::string_view(first["group"]["labels"]["kind"]), "expiring");
    EXPECT_EQ(std::string_view(first["group"]["idempotency_key"]), group_key_of({"key-1", "key-2", "key-3", "key-4"}));
    EXPECT_EQ(int64_t(first["group"]["alerts"]), 4);
    EXPECT_EQ(int64_t(first["group"]["new"]), 3);
    EXPECT_EQ(int64_t(first["group"]["resolved"]), 1);
    const auto alerts = alerts_of(lines[0]);
    ASSERT_EQ(alerts.size(), 4u);
    EXPECT_EQ(alerts[0], payload_of(1, {}));
    EXPECT_EQ(alerts[3], payload_of(4, resolved_at(t0))) << "resolved after firing";
    EXPECT_EQ(std::string_view(p.parse(lines[1])["group"]["key"]), "account=dev,kind=expiring");
    EXPECT_EQ(std::string_view(p.parse(lines[2])["group"]["severity"]), "critical");
    EXPECT_EQ(attempt_outcomes(db, "file"), (std::vector<std::string>{"1:delivered", "5:delivered", "6:delivered"}));
}

TEST_F(Dispatch, GroupIntervalHoldsNewAlertsOfAGroupJustSentAndLetsOthersGo) {
    const auto file = dir / "out.jsonl";
    auto sink = jsonl_sink(file);
    sink.group = {};
    sink.group.interval = 5min;
    cfg.sinks = {sink};
    enqueue(db, {"file"});
    EXPECT_EQ(dispatch().delivered, 1);
    now += 60'000;
    enqueue(db, {"file"});  // the same group, a minute later
    outbox_entry other;
    other.kind = "expired";
    enqueue(db, {"file"}, other);
    auto r = dispatch();
    EXPECT_EQ(r.delivered, 1) << "the other group is not held up";
    ASSERT_TRUE(r.next_due.has_value());
    EXPECT_EQ(*r.next_due, t0 + 300'000);
    now = t0 + 299'999;
    EXPECT_EQ(dispatch().delivered, 0);
    now = t0 + 300'000;
    EXPECT_EQ(dispatch().delivered, 1);
    const auto lines = test::split_lines(test::read_file(file));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(alerts_of(lines[2]), std::vector<std::string>{payload_of(2, {})});
}

// Counts the commits on `db` while it lives.
class commit_counter {
public:
    explicit commit_counter(SQLite::Database& db) : db_(db) {
        sqlite3_commit_hook(db_.getHandle(), [](void* n) { return ++*static_cast<int*>(n), 0; }, &commits_);
    }
    ~commit_counter() { sqlite3_commit_hook(db_.getHandle(), nullptr, nullptr); }
    commit_counter(const commit_counter&) = delete;
    commit_counter& operator=(const commit_counter&) = delete;
    [[nodiscard]] int commits() const { return commits_; }

private:
    SQLite::Database& db_;
    int commits_ = 0;
};

// Once the first group of a pass is delivered, the others due are written down in one
// transaction: one commit per group cost a quarter of a first sync's delivery (issue 16). Each
// outcome is still recorded (and committed) as soon as it is known.
TEST_F(Dispatch, APassGroupsWhatIsDueInOneCommitOnceItsFirstGroupIsDelivered) {
    const auto file = dir / "out.jsonl";
    cfg.sinks = {jsonl_sink(file)};  // one group per alert
    for (int i = 0; i < 6; ++i) enqueue(db, {"file"}, item("sub-" + std::to_string(i)));
    commit_counter counter(db);
    const auto r = dispatch();
    EXPECT_EQ(r.delivered, 6);
    EXPECT_EQ(counter.commits(), 1 + 1 + 6) << "the first group, the other five together, then one per outcome";
    EXPECT_EQ(attempt_outcomes(db, "file"), (std::vector<std::string>{"1:delivered", "2:delivered", "3:delivered",
                                                                      "4:delivered", "5:delivered", "6:delivered"}));
}

// Grouped ahead once the head went out, the groups a later failure holds back are ungrouped
// again (the one that failed keeps its group, to be sent again as it was): they go out with
// what arrives meanwhile, as if never grouped. While the head keeps failing, nothing behind it
// is grouped: a retry of a dead sink writes its outcome and nothing else.
TEST_F(Dispatch, GroupsHeldBehindAFailureAreGroupedAfreshAndARetryGroupsNothingAhead) {
    const auto down = dir / "down", arm = dir / "arm";
    // Fails while `down` is there; the first success while `arm` is there puts it there.
    test::write_file(arm, "");
    const std::string script = R"(cat > /dev/null; [ -e "$0" ] && exit 1; [ -e "$1" ] && mv "$1" "$0"; exit 0)";
    cfg.sinks = {exec_sink({"/bin/sh", "-c", script, down.string(), arm.string()})};
    for (int i = 0; i < 3; ++i) enqueue(db, {"hook"}, item("sub-" + std::to_string(i)));
    auto r = dispatch();
    EXPECT_EQ(r.delivered, 1);
    EXPECT_EQ(r.failed, 1);
    EXPECT_EQ(db.execAndGet("SELECT group_concat(batch || ':' || status || ':' || attempts, ' ') FROM "
                            "(SELECT * FROM alert_batches ORDER BY batch)").getString(),
              "1:delivered:1 2:pending:1");
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM alert_deliveries WHERE seq = 3 AND batch IS NULL").getInt(), 1)
        << "grouped ahead after the first went out, released when the second failed";

    now += 60'000;  // past the backoff; the sink still fails
    {
        commit_counter counter(db);
        r = dispatch();
        EXPECT_EQ(r.failed, 1);
        EXPECT_EQ(counter.commits(), 1) << "the retry's outcome only";
    }
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM alert_deliveries WHERE seq = 3 AND batch IS NULL").getInt(), 1);

    std::filesystem::remove(down);  // the sink recovers
    now += 120'000;
    r = dispatch();
    EXPECT_EQ(r.delivered, 2);
    EXPECT_EQ(attempt_outcomes(db, "hook"),
              (std::vector<std::string>{"1:delivered", "2:failed", "2:failed", "2:delivered", "3:delivered"}));
}

TEST_F(Dispatch, AFailedGroupIsResentWholeWithItsKeyWhileLaterAlertsWait) {
    webhook_receiver rcv;
    cfg.sinks = {grouped_webhook(rcv)};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    rcv.set_down(true);
    EXPECT_EQ(dispatch(&rcv).failed, 1);
    enqueue(db, {"hook"});  // arrives while the group waits for its retry
    rcv.set_down(false);
    now += 60'000;
    EXPECT_EQ(dispatch(&rcv).delivered, 2);
    const auto reqs = rcv.requests();
    ASSERT_GE(reqs.size(), 2u);
    const auto& a = reqs[reqs.size() - 2];
    const auto& b = reqs.back();
    EXPECT_EQ(a.header("Idempotency-Key"), group_key_of({"key-1", "key-2"})) << "the same notification as the failed attempt";
    EXPECT_EQ(alerts_of(a.body), (std::vector<std::string>{payload_of(1, {}), payload_of(2, {})}));
    EXPECT_EQ(b.header("Idempotency-Key"), group_key_of({"key-3"}));
    EXPECT_EQ(alerts_of(b.body), std::vector<std::string>{payload_of(3, {})});
    EXPECT_EQ(reqs.front().header("Idempotency-Key"), a.header("Idempotency-Key"));
}

// A dead group's attempt may have reached the receiver (it answered 500 after keeping it, or the
// answer was lost). `alerts --redeliver` groups its alerts afresh, with what was queued since:
// under the dead group's key, a receiver that drops duplicates would drop the new alerts.
TEST_F(Dispatch, ARedeliveredDeadGroupWithAlertsQueuedSinceGoesOutUnderANewKey) {
    webhook_receiver rcv;
    cfg.sinks = {grouped_webhook(rcv)};
    enqueue(db, {"hook"});
    rcv.set_status(500);
    dispatch_passes(rcv, 3);
    ASSERT_EQ(delivery(db, "hook", 1).status, "dead");
    const std::string dead_key = rcv.requests().back().header("Idempotency-Key");
    EXPECT_EQ(dead_key, group_key_of({"key-1"}));
    // The same account and kind: the same group (the dead letter queued a delivery_failed alert).
    const std::int64_t later = enqueue(db, {"hook"});
    const std::string later_key = fmt::format("key-{}", later);
    EXPECT_EQ(alerting::outbox(db).requeue_dead("hook"), 1);
    rcv.set_status(202);
    EXPECT_EQ(dispatch(&rcv).delivered, 1) << "one group notification";
    const auto again = rcv.requests().back();
    EXPECT_EQ(alerts_of(again.body), (std::vector<std::string>{payload_of(1, {}), payload_of(later, {})}));
    EXPECT_NE(again.header("Idempotency-Key"), dead_key);
    EXPECT_EQ(again.header("Idempotency-Key"), group_key_of({"key-1", later_key}));
}

}  // namespace
}  // namespace subsync
