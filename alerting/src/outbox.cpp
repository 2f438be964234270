#include "bind.hpp"

#include <subsync/alerting/outbox.hpp>

#include <SQLiteCpp/Transaction.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace subsync::alerting {
using detail::bind_name;
using detail::bind_static;

std::string_view to_string(delivery_status s) noexcept {
    switch (s) {
        case delivery_status::pending: return "pending";
        case delivery_status::delivered: return "delivered";
        case delivery_status::dead: return "dead";
    }
    return "pending";
}

std::string_view to_string(attempt_outcome o) noexcept {
    switch (o) {
        case attempt_outcome::delivered: return "delivered";
        case attempt_outcome::failed: return "failed";
        case attempt_outcome::dead: return "dead";
    }
    return "failed";
}

std::optional<attempt_outcome> attempt_outcome_named(std::string_view s) noexcept {
    for (auto o : {attempt_outcome::delivered, attempt_outcome::failed, attempt_outcome::dead})
        if (s == to_string(o)) return o;
    return std::nullopt;
}

// Storage (schema 5): alert_deliveries holds one row per (sink, notification) with the group
// notification (batch) it went out in, NULL until grouped; alert_batches holds each group
// notification's state (status, attempts, retry time, error). A member's status is its batch's,
// or pending while it has none. So recording an attempt at a group writes its one batch row and
// its attempt, whatever the group's size, and the rows of 63,000 delivered alerts are written
// twice (queued, grouped) instead of three times with an index entry moved each time.
//
// The statements that look deliveries up by status, batch or group name their index (INDEXED BY),
// and a join from a sink's batches to their members is a CROSS JOIN (SQLite keeps that order).
// Without statistics (no ANALYZE) SQLite rates the primary key's `sink = ?` prefix as good as
// those indexes and took it: every batch then scanned all of the sink's deliveries, delivered
// ones included, and a first sync's 128 groups over 63,000 alerts cost 8 million row visits
// (bench/README.md, issue 16). A named index that cannot serve the query is an error at prepare.
outbox::outbox(SQLite::Database& db) : db_(db), unwinding_(std::uncaught_exceptions()) {}

outbox::~outbox() {
    if (waiting_rows_ == 0 || std::uncaught_exceptions() > unwinding_) return;
    // A caller queued notifications and never flushed their deliveries: committing now would
    // lose them. Ending the process leaves the transaction uncommitted, so they are evaluated
    // and queued again by the next run.
    std::fprintf(stderr, "subsyncd: bug: %zu alert deliveries were queued and never written; aborting before the "
                 "transaction commits\n", waiting_rows_);
    std::abort();
}

// The dispatcher's statements are prepared on first use and kept, as enqueue's are: a first
// sync's delivery runs them once per group notification (128 groups per sink for 63,000 alerts),
// and preparing each again cost more than a tenth of assign() and members(). A kept statement is
// reset when its use ends, however that ends, so none holds a read snapshot between uses.
namespace {

class in_use {
public:
    in_use(std::optional<SQLite::Statement>& slot, SQLite::Database& db, const char* sql)
        : q_(slot ? *slot : slot.emplace(db, sql)) {
        q_.reset();
    }
    ~in_use() {
        try {
            q_.reset();
        } catch (...) {  // a reset reports the last step's error again, already seen; destructors never throw
        }
    }
    in_use(const in_use&) = delete;
    in_use& operator=(const in_use&) = delete;
    SQLite::Statement& operator*() { return q_; }
    SQLite::Statement* operator->() { return &q_; }

private:
    SQLite::Statement& q_;
};

// `[1,2,3]` into `out`: a list of seqs a statement reads with json_each().
void write_id_list(std::string& out, std::span<const std::int64_t> ids) {
    out.clear();
    out += '[';
    for (const std::int64_t id : ids) {
        if (out.size() > 1) out += ',';
        out += std::to_string(id);
    }
    out += ']';
}

}  // namespace

std::int64_t outbox::enqueue(const queued_notification& n, std::span<const std::string> sinks) {
    const std::int64_t seq = enqueue_deferred(n, sinks);
    flush_deliveries();
    return seq;
}

// A first sync of 100k purchases queues 63,000 notifications; one INSERT per delivery row cost
// two thirds of what the notification's own row costs (statement, foreign key and two b-trees
// each time). A statement per 500 rows of a sink writes the same rows for less than half of that
// (bench/README.md, issue 16).
std::int64_t outbox::enqueue_deferred(const queued_notification& n, std::span<const std::string> sinks) {
    constexpr std::size_t batch = 500;
    const std::int64_t seq = insert_notification(n);
    for (const auto& sink : sinks) {
        auto it = std::find_if(waiting_.begin(), waiting_.end(), [&](const auto& w) { return w.sink == sink; });
        if (it == waiting_.end()) it = waiting_.insert(waiting_.end(), waiting_deliveries{sink});
        if (it->rows > 0) it->seqs += ',';
        it->seqs += std::to_string(seq);
        ++it->rows;
        ++waiting_rows_;
        if (it->rows >= batch) flush_deliveries(*it);
    }
    return seq;
}

void outbox::flush_deliveries() {
    for (auto& w : waiting_) flush_deliveries(w);
}

void outbox::flush_deliveries(waiting_deliveries& w) {
    if (w.rows == 0) return;
    w.seqs += ']';
    in_use q(deliver_many_, db_, "INSERT INTO alert_deliveries (sink, seq) SELECT ?1, value FROM json_each(?2)");
    q->bind(1, w.sink);
    q->bind(2, w.seqs);
    q->exec();
    waiting_rows_ -= w.rows;
    w.rows = 0;
    w.seqs.resize(1);  // "[" (assign("[") trips GCC 12's -Wrestrict false positive)
}

std::int64_t outbox::insert_notification(const queued_notification& n) {
    if (!insert_)
        insert_.emplace(db_,
                        "INSERT INTO alert_outbox (idempotency_key, created_at, run_id, account, source, "
                        "item_key, kind, threshold, state, severity, payload, since, resolved_at, reason, summary, "
                        "detail, notification) VALUES (?,?,?,?,?,?,?,?,?,?,'',?,?,?,?,?,?)");
    SQLite::Statement& ins = *insert_;
    ins.reset();
    bind_static(ins, 1, n.idempotency_key);
    ins.bind(2, static_cast<std::int64_t>(n.created_at));
    if (n.run_id) ins.bind(3, *n.run_id);
    else ins.bind(3);
    bind_static(ins, 4, n.account);
    bind_static(ins, 5, n.source);
    bind_static(ins, 6, n.item_key);
    bind_name(ins, 7, config::to_string(n.kind));
    bind_static(ins, 8, n.threshold);
    bind_name(ins, 9, to_string(n.state));
    bind_name(ins, 10, config::to_string(n.severity));
    ins.bind(11, static_cast<std::int64_t>(n.since));
    if (n.resolved_at) ins.bind(12, static_cast<std::int64_t>(*n.resolved_at));
    else ins.bind(12);
    if (n.reason.empty()) ins.bind(13);
    else bind_static(ins, 13, n.reason);
    bind_static(ins, 14, n.summary);
    if (n.detail.empty()) ins.bind(15, "{}");
    else bind_static(ins, 15, n.detail);
    ins.bind(16, n.number);
    ins.exec();
    return db_.getLastInsertRowid();
}

void outbox::for_each_pending(std::string_view sink, std::int64_t limit,
                              const std::function<void(const pending_delivery&)>& f) const {
    // Not yet grouped (due at once: next_attempt_at is when it was queued), then the members
    // of the sink's pending group notifications with their group's attempts and retry time.
    in_use use(pending_, db_,
               "SELECT d.seq, 0, o.created_at, o.created_at, NULL, o.account, o.source, o.item_key, "
                        "o.kind, o.severity, o.state, o.threshold FROM alert_deliveries d "
                        "INDEXED BY alert_deliveries_ungrouped "
                        "JOIN alert_outbox o ON o.seq = d.seq WHERE d.sink = ?1 AND d.batch IS NULL "
                        "UNION ALL "
                        "SELECT d.seq, b.attempts, b.next_attempt_at, o.created_at, d.batch, o.account, o.source, "
                        "o.item_key, o.kind, o.severity, o.state, o.threshold FROM alert_batches b "
                        "INDEXED BY alert_batches_by_status "
                        "CROSS JOIN alert_deliveries d INDEXED BY alert_deliveries_by_batch "
                        "ON d.sink = b.sink AND d.batch = b.batch JOIN alert_outbox o ON o.seq = d.seq "
                        "WHERE b.status = 'pending' AND b.sink = ?1 "
                        "ORDER BY 1 LIMIT ?2");
    SQLite::Statement& q = *use;
    q.bind(1, std::string(sink));
    q.bind(2, limit);
    pending_delivery p;  // one row at a time: its strings keep their buffers from row to row
    while (q.executeStep()) {
        p.seq = q.getColumn(0).getInt64();
        p.attempts = q.getColumn(1).getInt64();
        p.next_attempt_at = q.getColumn(2).getInt64();
        p.created_at = q.getColumn(3).getInt64();
        p.batch = q.getColumn(4).isNull() ? std::nullopt : std::optional(q.getColumn(4).getInt64());
        auto text = [&q](std::string& out, int i) {
            const SQLite::Column c = q.getColumn(i);
            out.assign(c.getText(), static_cast<std::size_t>(c.getBytes()));
        };
        text(p.account, 5);
        text(p.source, 6);
        text(p.item_key, 7);
        text(p.kind, 8);
        p.severity = config::severity_named(q.getColumn(9).getText()).value_or(config::severity::critical);
        p.state = alert_state_named(q.getColumn(10).getText()).value_or(alert_state::firing);
        text(p.threshold, 11);
        f(p);
    }
}

void outbox::assign(std::string_view sink, std::int64_t batch, std::string_view group_key,
                    std::span<const std::int64_t> seqs) {
    const group_assignment g{batch, group_key, seqs};
    assign(sink, std::span(&g, 1));
}

// Each group's row, then its members marked with it in one statement; every group in one
// transaction. A first sync's 128 groups over 63,000 alerts committed 128 times, and each commit
// wrote again the alert_deliveries pages the group's members lie on (spread over the table, as
// groups are by kind): a quarter of the delivery's CPU and most of its fsyncs (issue 16).
void outbox::assign(std::string_view sink, std::span<const group_assignment> groups) {
    if (groups.empty()) return;
    const std::string name(sink);
    std::string members;
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    for (const group_assignment& g : groups) {
        write_id_list(members, g.seqs);
        {
            in_use b(new_batch_, db_,
                     "INSERT INTO alert_batches (sink, batch, group_key, status, attempts, next_attempt_at) "
                     "VALUES (?, ?, ?, 'pending', 0, 0)");
            b->bind(1, name);
            b->bind(2, g.batch);
            b->bind(3, std::string(g.key));
            b->exec();
        }
        in_use u(pin_, db_,
                 "UPDATE alert_deliveries SET batch = ?1 "
                 "WHERE sink = ?2 AND seq IN (SELECT value FROM json_each(?3)) AND batch IS NULL");
        u->bind(1, g.batch);
        u->bind(2, name);
        u->bind(3, members);
        u->exec();
    }
    tx.commit();
}

void outbox::release(std::string_view sink, std::span<const std::int64_t> batches) {
    if (batches.empty()) return;
    std::string list;
    write_id_list(list, batches);
    const std::string name(sink);
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    {
        // Never attempted (attempts 0, pending): a group that was is left as it is.
        in_use b(unbatch_, db_,
                 "DELETE FROM alert_batches WHERE sink = ?1 AND batch IN (SELECT value FROM json_each(?2)) "
                 "AND status = 'pending' AND attempts = 0");
        b->bind(1, name);
        b->bind(2, list);
        b->exec();
    }
    in_use d(unpin_, db_,
             "UPDATE alert_deliveries INDEXED BY alert_deliveries_by_batch SET batch = NULL "
             "WHERE sink = ?1 AND batch IN (SELECT value FROM json_each(?2)) AND NOT EXISTS "
             "(SELECT 1 FROM alert_batches WHERE sink = ?1 AND batch = alert_deliveries.batch)");
    d->bind(1, name);
    d->bind(2, list);
    d->exec();
    tx.commit();
}

boost::system::result<std::vector<notification>, std::string> outbox::members(std::string_view sink,
                                                                             std::int64_t batch, bool render) const {
    in_use use(members_, db_,
               "SELECT d.seq, o.payload, o.idempotency_key, o.kind, o.severity, o.state, o.account, o.source, "
                        "o.item_key, o.threshold, o.since, o.resolved_at, o.reason, o.summary, o.detail, "
                        "o.notification, o.created_at FROM alert_batches b "
                        "CROSS JOIN alert_deliveries d INDEXED BY alert_deliveries_by_batch "
                        "ON d.sink = b.sink AND d.batch = b.batch JOIN alert_outbox o ON o.seq = d.seq "
                        "WHERE b.sink = ? AND b.batch = ? AND b.status = 'pending' ORDER BY d.seq");
    SQLite::Statement& q = *use;
    q.bind(1, std::string(sink));
    q.bind(2, batch);
    std::vector<notification> out;
    while (q.executeStep()) {
        const std::int64_t seq = q.getColumn(0).getInt64();
        if (const SQLite::Column stored = q.getColumn(1); stored.getBytes() > 0) {
            // Queued by schema 4 or before: the payload was stored whole, and is sent as it is.
            auto n = parse_notification(seq, std::string_view(stored.getText(), static_cast<std::size_t>(stored.getBytes())));
            if (!n) return n.error();
            out.push_back(std::move(*n));
            continue;
        }
        notification& n = out.emplace_back();
        n.seq = seq;
        auto text = [&q](int i, std::string& to) {
            const SQLite::Column c = q.getColumn(i);
            to.assign(c.getText(), static_cast<std::size_t>(c.getBytes()));
        };
        auto time = [&q](int i) {
            const SQLite::Column c = q.getColumn(i);
            return c.isNull() ? std::nullopt : std::optional<epoch_ms>(c.getInt64());
        };
        text(2, n.idempotency_key);
        text(3, n.kind);
        n.severity = config::severity_named(q.getColumn(4).getText()).value_or(config::severity::critical);
        n.state = alert_state_named(q.getColumn(5).getText()).value_or(alert_state::firing);
        text(6, n.account);
        text(7, n.source);
        text(8, n.id);
        text(9, n.threshold);
        n.since = time(10).value_or(0);
        n.resolved_at = time(11);
        text(12, n.reason);
        text(13, n.summary);
        text(14, n.values);
        n.number = q.getColumn(15).getInt64();
        n.created_at = q.getColumn(16).getInt64();
        if (render) render_payload(n);
    }
    return out;
}

std::optional<epoch_ms> outbox::last_delivered(std::string_view sink, std::string_view group_key) const {
    in_use use(last_delivered_, db_,
               "SELECT max(delivered_at) FROM alert_batches INDEXED BY alert_batches_by_group "
               "WHERE sink = ? AND group_key = ? AND status = 'delivered'");
    SQLite::Statement& q = *use;
    q.bind(1, std::string(sink));
    q.bind(2, std::string(group_key));
    if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
    return q.getColumn(0).getInt64();
}

void outbox::record(std::string_view sink, std::span<const batch_outcome> outcomes) {
    const std::string name(sink);
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    for (const batch_outcome& o : outcomes) {
        {
            const bool delivered = o.outcome == attempt_outcome::delivered, dead = o.outcome == attempt_outcome::dead;
            in_use u(delivered ? delivered_ : dead ? dead_ : failed_, db_,
                     delivered ? "UPDATE alert_batches SET status = 'delivered', attempts = ?, delivered_at = ?, "
                                 "last_error = NULL WHERE sink = ? AND batch = ? AND status = 'pending'"
                     : dead    ? "UPDATE alert_batches SET status = 'dead', attempts = ?, last_error = ? "
                                 "WHERE sink = ? AND batch = ? AND status = 'pending'"
                               : "UPDATE alert_batches SET attempts = ?, next_attempt_at = ?, last_error = ? "
                                 "WHERE sink = ? AND batch = ? AND status = 'pending'");
            int i = 1;
            u->bind(i++, o.attempts);
            if (o.outcome == attempt_outcome::delivered) u->bind(i++, static_cast<std::int64_t>(o.at));
            if (o.outcome == attempt_outcome::failed) u->bind(i++, static_cast<std::int64_t>(o.next_attempt_at));
            if (o.outcome != attempt_outcome::delivered) u->bind(i++, o.error);
            u->bind(i++, name);
            u->bind(i++, o.batch);
            u->exec();
        }
        in_use attempt(attempt_, db_,
                       "INSERT INTO alert_attempts (sink, seq, time, outcome, latency_ms, error) "
                       "VALUES (?, ?, ?, ?, ?, ?)");
        attempt->bind(1, name);
        attempt->bind(2, o.batch);
        attempt->bind(3, static_cast<std::int64_t>(o.at));
        attempt->bind(4, std::string(to_string(o.outcome)));
        attempt->bind(5, o.latency_ms);
        if (o.outcome == attempt_outcome::delivered) attempt->bind(6);
        else attempt->bind(6, o.error);
        attempt->exec();
    }
    tx.commit();
}

std::int64_t outbox::count(std::string_view sink, delivery_status status) const {
    // Members of the sink's batches in that status, and for pending the ungrouped ones too.
    in_use use(count_, db_,
               "SELECT (SELECT count(*) FROM alert_batches b INDEXED BY alert_batches_by_status "
                        "CROSS JOIN alert_deliveries d INDEXED BY alert_deliveries_by_batch "
                        "ON d.sink = b.sink AND d.batch = b.batch WHERE b.status = ?2 AND b.sink = ?1) + "
                        "CASE ?2 WHEN 'pending' THEN (SELECT count(*) FROM alert_deliveries "
                        "INDEXED BY alert_deliveries_ungrouped WHERE sink = ?1 AND batch IS NULL) ELSE 0 END");
    SQLite::Statement& q = *use;
    q.bind(1, std::string(sink));
    q.bind(2, std::string(to_string(status)));
    q.executeStep();
    return q.getColumn(0).getInt64();
}

std::vector<sink_counts> outbox::counts() const {
    SQLite::Statement q(db_,
                        "SELECT sink, coalesce(sum(status = 'pending'), 0), coalesce(sum(status = 'delivered'), 0), "
                        "coalesce(sum(status = 'dead'), 0) FROM (SELECT d.sink, coalesce(b.status, 'pending') AS "
                        "status FROM alert_deliveries d LEFT JOIN alert_batches b "
                        "ON b.sink = d.sink AND b.batch = d.batch) GROUP BY sink ORDER BY sink");
    std::vector<sink_counts> out;
    while (q.executeStep())
        out.push_back({q.getColumn(0).getString(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                       q.getColumn(3).getInt64()});
    return out;
}

std::vector<attempt_record> outbox::attempts(std::string_view sink, std::int64_t limit) const {
    SQLite::Statement q(db_,
                        // The latest attempts first, then what they name: the joins and the
                        // count run for the rows shown, not for every attempt on record.
                        "SELECT a.seq, a.time, a.outcome, a.latency_ms, coalesce(a.error, ''), "
                        "coalesce(o.kind || ' ' || o.state || ' ' || o.account || '/' || o.item_key, '?'), "
                        "b.group_key, b.batch IS NOT NULL, (SELECT count(*) FROM alert_deliveries d "
                        "INDEXED BY alert_deliveries_by_batch WHERE d.sink = a.sink AND d.batch = a.seq) "
                        "FROM (SELECT id, sink, seq, time, outcome, latency_ms, error FROM alert_attempts "
                        "WHERE sink = ?1 ORDER BY id DESC LIMIT ?2) a "
                        "LEFT JOIN alert_outbox o ON o.seq = a.seq "
                        "LEFT JOIN alert_batches b ON b.sink = a.sink AND b.batch = a.seq ORDER BY a.id DESC");
    q.bind(1, std::string(sink));
    q.bind(2, limit);
    std::vector<attempt_record> out;
    while (q.executeStep())
        // alert_attempts' CHECK constraint holds outcome to the three names.
        out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getInt64(),
                       attempt_outcome_named(q.getColumn(2).getText()).value_or(attempt_outcome::failed),
                       q.getColumn(3).getInt64(), q.getColumn(4).getString(), q.getColumn(5).getString(),
                       q.getColumn(6).isNull() ? std::string() : q.getColumn(6).getString(),
                       q.getColumn(7).getInt() != 0, q.getColumn(8).getInt64()});
    return out;
}

std::int64_t outbox::requeue_dead(std::string_view sink) {
    // Ungrouped again, they are due at once (an ungrouped delivery is due from when it was
    // queued) and are grouped afresh; the dead group notifications are forgotten, their
    // attempts stay on record. Two statements, in one transaction.
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement u(db_,
                        "UPDATE alert_deliveries SET batch = NULL WHERE batch IS NOT NULL AND (sink, batch) IN "
                        "(SELECT sink, batch FROM alert_batches INDEXED BY alert_batches_by_status "
                        "WHERE status = 'dead' AND (?1 = '' OR sink = ?1))");
    u.bind(1, std::string(sink));
    const std::int64_t n = u.exec();
    SQLite::Statement d(db_, "DELETE FROM alert_batches WHERE status = 'dead' AND (?1 = '' OR sink = ?1)");
    d.bind(1, std::string(sink));
    d.exec();
    tx.commit();
    return n;
}

std::int64_t outbox::prune(epoch_ms cutoff) {
    auto run = [&](const char* sql) {
        SQLite::Statement st(db_, sql);
        st.bind(1, static_cast<std::int64_t>(cutoff));
        return static_cast<std::int64_t>(st.exec());
    };
    // What a sink still owes is kept whatever its age. A finished group notification goes with
    // its last member (not counted: the count is of notifications and attempts).
    const std::int64_t notifications =
        run("DELETE FROM alert_outbox WHERE created_at < ?1 AND seq NOT IN "
            "(SELECT seq FROM alert_deliveries WHERE batch IS NULL) AND seq NOT IN "
            "(SELECT d.seq FROM alert_batches b CROSS JOIN alert_deliveries d "
            "ON d.sink = b.sink AND d.batch = b.batch WHERE b.status = 'pending')");
    db_.exec("DELETE FROM alert_batches WHERE status <> 'pending' AND NOT EXISTS (SELECT 1 FROM "
             "alert_deliveries d WHERE d.sink = alert_batches.sink AND d.batch = alert_batches.batch)");
    return notifications + run("DELETE FROM alert_attempts WHERE time < ?1");
}

}  // namespace subsync::alerting
