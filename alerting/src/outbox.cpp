#include "bind.hpp"

#include <subsync/alerting/outbox.hpp>

#include <SQLiteCpp/Transaction.h>

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

// The statements that look deliveries up by status, batch or group name their index (INDEXED BY).
// Without statistics (no ANALYZE) SQLite rates the primary key's `sink = ?` prefix as good as
// those indexes and took it: every batch then scanned all of the sink's deliveries, delivered
// ones included, and a first sync's 128 groups over 63,000 alerts cost 8 million row visits
// (bench/README.md, issue 16). A named index that cannot serve the query is an error at prepare.
outbox::outbox(SQLite::Database& db) : db_(db) {}
outbox::~outbox() = default;

bool outbox::enqueue(const queued_notification& n, std::span<const std::string> sinks) {
    if (!insert_)
        insert_.emplace(db_,
                        "INSERT OR IGNORE INTO alert_outbox (idempotency_key, created_at, run_id, account, source, "
                        "item_key, kind, threshold, state, severity, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
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
    bind_static(ins, 11, n.payload);
    if (ins.exec() == 0) return false;  // this very notification is already queued
    const std::int64_t seq = db_.getLastInsertRowid();
    if (!deliver_)
        deliver_.emplace(db_,
                         "INSERT INTO alert_deliveries (sink, seq, status, attempts, next_attempt_at) "
                         "VALUES (?, ?, 'pending', 0, ?)");
    SQLite::Statement& deliver = *deliver_;
    for (const auto& sink : sinks) {
        bind_static(deliver, 1, sink);
        deliver.bind(2, seq);
        deliver.bind(3, static_cast<std::int64_t>(n.created_at));
        deliver.exec();
        deliver.reset();
    }
    return true;
}

void outbox::for_each_pending(std::string_view sink, std::int64_t limit,
                              const std::function<void(const pending_delivery&)>& f) const {
    SQLite::Statement q(db_,
                        "SELECT d.seq, d.attempts, d.next_attempt_at, o.created_at, d.batch, o.account, o.source, "
                        "o.item_key, o.kind, o.severity, o.state FROM alert_deliveries d "
                        "INDEXED BY alert_deliveries_by_status "
                        "JOIN alert_outbox o ON o.seq = d.seq WHERE d.sink = ? AND d.status = 'pending' "
                        "ORDER BY d.seq LIMIT ?");
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
        f(p);
    }
}

void outbox::assign(std::string_view sink, std::int64_t batch, std::string_view group_key,
                    std::span<const std::int64_t> seqs) {
    // One statement for the whole group; the group's name goes on its first row only (what
    // last_delivered reads), so a group of 500 adds one entry to alert_deliveries_by_group.
    std::string members = "[";
    for (const std::int64_t seq : seqs) {
        if (members.size() > 1) members += ',';
        members += std::to_string(seq);
    }
    members += ']';
    SQLite::Statement u(db_,
                        "UPDATE alert_deliveries SET batch = ?1, group_key = CASE seq WHEN ?1 THEN ?2 END "
                        "WHERE sink = ?3 AND seq IN (SELECT value FROM json_each(?4)) AND status = 'pending'");
    u.bind(1, batch);
    u.bind(2, std::string(group_key));
    u.bind(3, std::string(sink));
    u.bind(4, members);
    u.exec();
}

std::vector<batch_member> outbox::members(std::string_view sink, std::int64_t batch) const {
    SQLite::Statement q(db_,
                        "SELECT d.seq, o.idempotency_key, o.payload FROM alert_deliveries d "
                        "INDEXED BY alert_deliveries_by_batch "
                        "JOIN alert_outbox o ON o.seq = d.seq WHERE d.sink = ? AND d.batch = ? "
                        "AND d.status = 'pending' ORDER BY d.seq");
    q.bind(1, std::string(sink));
    q.bind(2, batch);
    std::vector<batch_member> out;
    while (q.executeStep())
        out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(), q.getColumn(2).getString()});
    return out;
}

std::optional<epoch_ms> outbox::last_delivered(std::string_view sink, std::string_view group_key) const {
    SQLite::Statement q(db_,
                        "SELECT max(delivered_at) FROM alert_deliveries INDEXED BY alert_deliveries_by_group "
                        "WHERE sink = ? AND group_key = ? "
                        "AND status = 'delivered'");
    q.bind(1, std::string(sink));
    q.bind(2, std::string(group_key));
    if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
    return q.getColumn(0).getInt64();
}

void outbox::record(std::string_view sink, std::span<const batch_outcome> outcomes) {
    const std::string name(sink);
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement delivered(db_,
                                "UPDATE alert_deliveries INDEXED BY alert_deliveries_by_batch "
                                "SET status = 'delivered', attempts = ?, delivered_at = ?, "
                                "last_error = NULL WHERE sink = ? AND batch = ? AND status = 'pending'");
    SQLite::Statement dead(db_,
                           "UPDATE alert_deliveries INDEXED BY alert_deliveries_by_batch "
                           "SET status = 'dead', attempts = ?, last_error = ? "
                           "WHERE sink = ? AND batch = ? AND status = 'pending'");
    SQLite::Statement failed(db_,
                             "UPDATE alert_deliveries INDEXED BY alert_deliveries_by_batch "
                             "SET attempts = ?, next_attempt_at = ?, last_error = ? "
                             "WHERE sink = ? AND batch = ? AND status = 'pending'");
    SQLite::Statement attempt(db_,
                              "INSERT INTO alert_attempts (sink, seq, time, outcome, latency_ms, error) "
                              "VALUES (?, ?, ?, ?, ?, ?)");
    for (const batch_outcome& o : outcomes) {
        SQLite::Statement& u = o.outcome == attempt_outcome::delivered ? delivered
                               : o.outcome == attempt_outcome::dead    ? dead
                                                                       : failed;
        int i = 1;
        u.bind(i++, o.attempts);
        if (o.outcome == attempt_outcome::delivered) u.bind(i++, static_cast<std::int64_t>(o.at));
        if (o.outcome == attempt_outcome::failed) u.bind(i++, static_cast<std::int64_t>(o.next_attempt_at));
        if (o.outcome != attempt_outcome::delivered) u.bind(i++, o.error);
        u.bind(i++, name);
        u.bind(i++, o.batch);
        u.exec();
        u.reset();
        attempt.bind(1, name);
        attempt.bind(2, o.batch);
        attempt.bind(3, static_cast<std::int64_t>(o.at));
        attempt.bind(4, std::string(to_string(o.outcome)));
        attempt.bind(5, o.latency_ms);
        if (o.outcome == attempt_outcome::delivered) attempt.bind(6);
        else attempt.bind(6, o.error);
        attempt.exec();
        attempt.reset();
    }
    tx.commit();
}

std::int64_t outbox::count(std::string_view sink, delivery_status status) const {
    SQLite::Statement q(db_, "SELECT count(*) FROM alert_deliveries WHERE sink = ? AND status = ?");
    q.bind(1, std::string(sink));
    q.bind(2, std::string(to_string(status)));
    q.executeStep();
    return q.getColumn(0).getInt64();
}

std::vector<sink_counts> outbox::counts() const {
    SQLite::Statement q(db_,
                        "SELECT sink, coalesce(sum(status = 'pending'), 0), coalesce(sum(status = 'delivered'), 0), "
                        "coalesce(sum(status = 'dead'), 0) FROM alert_deliveries GROUP BY sink ORDER BY sink");
    std::vector<sink_counts> out;
    while (q.executeStep())
        out.push_back({q.getColumn(0).getString(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                       q.getColumn(3).getInt64()});
    return out;
}

std::vector<attempt_record> outbox::attempts(std::string_view sink, std::int64_t limit) const {
    SQLite::Statement q(db_,
                        "SELECT a.seq, a.time, a.outcome, a.latency_ms, coalesce(a.error, ''), "
                        "coalesce(o.kind || ' ' || o.state || ' ' || o.account || '/' || o.item_key, '?') "
                        "FROM alert_attempts a LEFT JOIN alert_outbox o ON o.seq = a.seq WHERE a.sink = ? "
                        "ORDER BY a.id DESC LIMIT ?");
    q.bind(1, std::string(sink));
    q.bind(2, limit);
    std::vector<attempt_record> out;
    while (q.executeStep())
        out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getString(),
                       q.getColumn(3).getInt64(), q.getColumn(4).getString(), q.getColumn(5).getString()});
    return out;
}

std::int64_t outbox::requeue_dead(std::string_view sink, epoch_ms now) {
    SQLite::Statement u(db_,
                        "UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, "
                        "batch = NULL, group_key = NULL WHERE status = 'dead' AND (? = '' OR sink = ?)");
    u.bind(1, static_cast<std::int64_t>(now));
    u.bind(2, std::string(sink));
    u.bind(3, std::string(sink));
    return u.exec();
}

std::int64_t outbox::prune(epoch_ms cutoff) {
    auto run = [&](const char* sql) {
        SQLite::Statement st(db_, sql);
        st.bind(1, static_cast<std::int64_t>(cutoff));
        return static_cast<std::int64_t>(st.exec());
    };
    // What a sink still owes is kept whatever its age.
    return run("DELETE FROM alert_outbox WHERE created_at < ? AND seq NOT IN "
               "(SELECT seq FROM alert_deliveries WHERE status = 'pending')") +
           run("DELETE FROM alert_attempts WHERE time < ?");
}

}  // namespace subsync::alerting
