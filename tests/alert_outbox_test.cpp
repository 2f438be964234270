// The outbox's lookups against a real SQLite file: what the dispatcher asks for one group or one
// sink's pending work costs the same whatever the sink's history holds. Cost is counted in
// SQLite virtual-machine steps (sqlite3_progress_handler), which is deterministic, not in time.

#include <subsync/alerting/outbox.hpp>
#include <subsync/sync/snapshot.hpp>

#include "schema.hpp"
#include "support/test_support.hpp"

#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <vector>

namespace subsync {
namespace {

constexpr std::int64_t t0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
const std::vector<std::string> sinks{"hook"};

std::vector<alerting::batch_outcome> delivered_now(std::int64_t batch) {
    alerting::batch_outcome o;
    o.batch = batch;
    o.attempts = 1;
    o.at = t0;
    return {o};
}

/// A snapshot whose outbox holds `history` notifications already delivered to "hook" in groups
/// of 100, then 100 more pending and pinned to one group notification, "current".
class history {
public:
    history(const test::temp_dir& dir, int delivered) : store_(dir / fmt::format("h{}.db", delivered)) {
        db().exec("PRAGMA synchronous = OFF");  // 400 small transactions; durability is not under test
        alerting::outbox box(db());
        SQLite::Transaction tx(db());
        for (int i = 0; i < delivered + 100; ++i) {
            alerting::queued_notification n;
            n.idempotency_key = fmt::format("key-{}", i);
            n.created_at = t0 + i;
            n.account = "prod";
            n.source = "purchased_groups";
            n.item_key = fmt::format("sub-{:06}", i);
            n.summary = fmt::format("notification {}", i);
            EXPECT_GT(box.enqueue(n, sinks), 0);
        }
        tx.commit();
        for (int first = 1; first <= delivered; first += 100) {
            pin(box, first, "old");
            box.record("hook", delivered_now(first));
        }
        current = delivered + 1;
        pin(box, current, "current");
    }

    SQLite::Database& db() { return store_.database(); }
    std::int64_t current = 0;  ///< the pending group notification's batch

    /// SQLite VM steps that `f` costs on this database.
    std::int64_t steps(const std::function<void(alerting::outbox&)>& f) {
        std::int64_t n = 0;
        sqlite3_progress_handler(
            db().getHandle(), 1,
            [](void* p) {
                ++*static_cast<std::int64_t*>(p);
                return 0;
            },
            &n);
        alerting::outbox box(db());
        f(box);
        sqlite3_progress_handler(db().getHandle(), 0, nullptr, nullptr);
        return n;
    }

private:
    static void pin(alerting::outbox& box, std::int64_t first, std::string_view group) {
        std::vector<std::int64_t> seqs(100);
        std::iota(seqs.begin(), seqs.end(), first);
        box.assign("hook", first, group, seqs);
    }

    sync::snapshot_store store_;
};

// Without a named index, SQLite chose the primary key's `sink = ?` prefix for these lookups and
// scanned every delivery the sink ever had: a first sync's 128 groups over 63,000 alerts cost 8
// million row visits (bench/README.md, issue 16).
TEST(Outbox, LookupsCostTheSameWhateverTheSinksHistory) {
    test::temp_dir dir;
    history fresh(dir, 0);
    history busy(dir, 20'000);

    auto compare = [&](const char* what, const std::function<void(alerting::outbox&, std::int64_t)>& f) {
        const std::int64_t a = fresh.steps([&](alerting::outbox& b) { f(b, fresh.current); });
        const std::int64_t b = busy.steps([&](alerting::outbox& o) { f(o, busy.current); });
        EXPECT_GT(a, 0) << what;
        EXPECT_LE(b, 2 * a) << what << ": " << a << " steps with no history, " << b << " with 20,000 delivered";
    };
    compare("members", [](alerting::outbox& b, std::int64_t batch) {
        const auto members = b.members("hook", batch);
        ASSERT_TRUE(members) << members.error();
        EXPECT_EQ(members->size(), 100u);
    });
    compare("pending", [](alerting::outbox& b, std::int64_t) {
        int rows = 0;
        b.for_each_pending("hook", 10, [&](const alerting::pending_delivery&) { ++rows; });
        EXPECT_EQ(rows, 10);
    });
    compare("last_delivered", [](alerting::outbox& b, std::int64_t) {
        EXPECT_FALSE(b.last_delivered("hook", "current").has_value());
    });
    compare("record", [](alerting::outbox& b, std::int64_t batch) {
        b.record("hook", delivered_now(batch));
    });
    EXPECT_EQ(alerting::outbox(busy.db()).count("hook", alerting::delivery_status::delivered), 20'100);
}

// A group notification's outcome is one row (alert_batches) and one attempt, whatever its size:
// it was one row per member, so the 128 groups of a first sync rewrote 63,000 rows and moved each
// one's status index entry (bench/README.md, issue 16).
TEST(Outbox, RecordingAGroupWritesTwoRowsWhateverItsSize) {
    test::temp_dir dir;
    history h(dir, 0);
    auto& db = h.db();
    const int before = db.getTotalChanges();
    alerting::outbox(db).record("hook", delivered_now(h.current));
    EXPECT_EQ(db.getTotalChanges() - before, 2) << "the group's row and its attempt";
    alerting::outbox box(db);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::delivered), 100);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::pending), 0);
    EXPECT_EQ(box.last_delivered("hook", "current"), t0);
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM alert_delivery_status WHERE sink = 'hook' AND status = 'delivered' "
                            "AND delivered_at = " + std::to_string(t0))
                  .getInt64(),
              100)
        << "each member reads as delivered";
}

// A notification as schema 4 stored it: whole, with a field this version does not render.
std::string stored_payload(int seq) {
    return fmt::format(R"({{"idempotency_key":"k{0}","kind":"expiring","severity":"warning","state":"firing",)"
                       R"("account":"prod","source":"purchased_groups","id":"i{0}","threshold":"7d","old_field":1}})",
                       seq);
}

// Schema 4 kept each member's status in its alert_deliveries row; 5 keeps it in the group's
// alert_batches row. A file written by 4 reads the same after the migration.
TEST(Outbox, Schema4DeliveriesReadTheSameAfterTheMigration) {
    test::temp_dir dir;
    SQLite::Database db((dir / "v4.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA foreign_keys = ON");
    sync::detail::migrate(db, 4);
    for (int seq = 1; seq <= 6; ++seq)
        db.exec(fmt::format("INSERT INTO alert_outbox (seq, idempotency_key, created_at, account, source, item_key, "
                            "kind, threshold, state, severity, payload) VALUES ({0}, 'k{0}', {1}, 'prod', "
                            "'purchased_groups', 'i{0}', 'expiring', '7d', 'firing', 'warning', '{2}')",
                            seq, t0 + seq, stored_payload(seq)));
    db.exec(fmt::format(
        "INSERT INTO alert_deliveries (sink, seq, status, attempts, next_attempt_at, delivered_at, last_error, batch, "
        "group_key) VALUES "
        "('hook', 1, 'delivered', 1, {0}, {0}, NULL, 1, 'g'), ('hook', 2, 'delivered', 1, {0}, {0}, NULL, 1, NULL), "
        "('hook', 3, 'dead', 3, {0}, NULL, 'HTTP 500', 3, 'g'), ('hook', 4, 'pending', 2, {1}, NULL, 'HTTP 503', 4, 'g'), "
        "('hook', 5, 'pending', 2, {1}, NULL, 'HTTP 503', 4, NULL), ('hook', 6, 'pending', 0, {0}, NULL, NULL, NULL, NULL)",
        t0, t0 + 5000));
    sync::detail::migrate(db, 5);

    alerting::outbox box(db);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::delivered), 2);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::dead), 1);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::pending), 3);
    EXPECT_EQ(box.last_delivered("hook", "g"), t0);
    std::vector<std::string> pending;
    box.for_each_pending("hook", 10, [&](const alerting::pending_delivery& p) {
        pending.push_back(fmt::format("{}:{}:{}:{}", p.seq, p.batch.value_or(0), p.attempts, p.next_attempt_at - t0));
    });
    EXPECT_EQ(pending, (std::vector<std::string>{"4:4:2:5000", "5:4:2:5000", "6:0:0:6"}))
        << "the retrying group keeps its attempts and retry time; the ungrouped one is due from when it was queued";
    const auto members = box.members("hook", 4);
    ASSERT_TRUE(members) << members.error();
    ASSERT_EQ(members->size(), 2u);
    EXPECT_EQ(members->at(0).payload, stored_payload(4)) << "a payload queued by schema 4 is sent as it was stored";
    EXPECT_EQ(members->at(1).id, "i5") << "and read for its fields";
    db.exec("UPDATE alert_outbox SET payload = '{}' WHERE seq = 5");
    const auto unreadable = box.members("hook", 4);
    ASSERT_FALSE(unreadable);
    EXPECT_EQ(unreadable.error(), "outbox seq=5: payload field=idempotency_key: expected a string");
    EXPECT_EQ(db.execAndGet("SELECT last_error FROM alert_delivery_status WHERE seq = 3").getString(), "HTTP 500");
    EXPECT_FALSE(SQLite::Statement(db, "PRAGMA foreign_key_check").executeStep()) << "no orphan row";
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
    EXPECT_EQ(box.requeue_dead("hook"), 1);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::pending), 4);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::dead), 0);
}

// Schema 7 rebuilds alert_outbox without its UNIQUE idempotency key. alert_deliveries references
// it ON DELETE CASCADE, so with foreign keys on (as the snapshot opens every file) dropping the
// old table would have emptied every sink's queue: what is owed must survive the upgrade.
TEST(Outbox, Schema6QueuesSurviveTheRebuildOfSchema7) {
    test::temp_dir dir;
    SQLite::Database db((dir / "v6.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA foreign_keys = ON");
    sync::detail::migrate(db, 6);
    for (int seq = 1; seq <= 4; ++seq)
        db.exec(fmt::format("INSERT INTO alert_outbox (seq, idempotency_key, created_at, account, source, item_key, "
                            "kind, threshold, state, severity, payload, since, summary, detail, notification) VALUES "
                            "({0}, 'k{0}', {1}, 'prod', 'purchased_groups', 'i{0}', 'expiring', '7d', 'firing', "
                            "'warning', '', {1}, 'summary {0}', '{{}}', 1)",
                            seq, t0 + seq));
    db.exec(fmt::format("INSERT INTO alert_batches (sink, batch, group_key, status, attempts, next_attempt_at, "
                        "delivered_at) VALUES ('hook', 1, 'g', 'delivered', 1, {0}, {0}), "
                        "('hook', 3, 'g', 'pending', 2, {1}, NULL)",
                        t0, t0 + 5000));
    db.exec("INSERT INTO alert_deliveries (sink, seq, batch) VALUES ('hook', 1, 1), ('hook', 2, 1), ('hook', 3, 3), "
            "('hook', 4, NULL), ('log', 4, NULL)");
    sync::detail::migrate(db, 7);

    EXPECT_EQ(db.execAndGet("PRAGMA foreign_keys").getInt(), 1) << "foreign keys are on again";
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM alert_deliveries").getInt64(), 5) << "no delivery was cascaded away";
    alerting::outbox box(db);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::delivered), 2);
    EXPECT_EQ(box.count("hook", alerting::delivery_status::pending), 2);
    EXPECT_EQ(box.count("log", alerting::delivery_status::pending), 1);
    const auto members = box.members("hook", 3);
    ASSERT_TRUE(members) << members.error();
    ASSERT_EQ(members->size(), 1u);
    EXPECT_EQ(members->at(0).summary, "summary 3");
    EXPECT_EQ(db.execAndGet("SELECT status FROM alert_delivery_status WHERE sink = 'hook' AND seq = 2").getString(),
              "delivered");
    // The rebuilt table is the one its children reference: a new row gets the next seq, and
    // deleting a notification still takes its deliveries with it.
    alerting::queued_notification n{"k4", t0, std::nullopt, "prod", "purchased_groups", "i5",
                                    config::alert_kind::expiring, "7d", alerting::alert_state::firing,
                                    config::severity::warning, t0, std::nullopt, "", "summary 5", "{}", 1};
    EXPECT_EQ(box.enqueue(n, sinks), 5) << "the key is not checked for uniqueness any more";
    db.exec("DELETE FROM alert_outbox WHERE seq = 4");
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM alert_deliveries WHERE seq = 4").getInt64(), 0);
    EXPECT_FALSE(SQLite::Statement(db, "PRAGMA foreign_key_check").executeStep()) << "no orphan row";
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
}

// Deliveries queued by enqueue_deferred() and never flushed must not commit: the outbox ends
// the process before its owner's transaction can, so the run's notifications are evaluated
// and queued again by the next run instead of committing without their deliveries.
TEST(OutboxDeathTest, DeliveriesLeftUnwrittenEndTheProcessBeforeTheyCommit) {
    // The child runs the test again from the start (its own temp folder and connection):
    // SQLite connections must not cross a fork.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    test::temp_dir dir;
    sync::snapshot_store store(dir / "snapshot.db");
    alerting::queued_notification n;
    n.idempotency_key = "key-1";
    n.created_at = t0;
    n.account = "prod";
    n.source = "purchased_groups";
    n.item_key = "sub-1";
    n.summary = "notification 1";
    EXPECT_DEATH(
        {
            SQLite::Transaction tx(store.database());
            {
                alerting::outbox box(store.database());
                box.enqueue_deferred(n, sinks);
            }
            tx.commit();
        },
        "1 alert deliveries were queued and never written");
    {
        SQLite::Transaction tx(store.database());
        alerting::outbox box(store.database());
        box.enqueue_deferred(n, sinks);
        box.flush_deliveries();
        tx.commit();
    }
    EXPECT_EQ(store.database().execAndGet("SELECT count(*) FROM alert_deliveries").getInt64(), 1)
        << "only the flushed run's delivery; the child's transaction never committed";
}

}  // namespace
}  // namespace subsync
