// One replication pass: read SQLite in one read transaction, write PostgreSQL in one
// transaction that also moves the cursor, so a crash or a lost connection at any instant
// leaves the destination at the previous cursor with the rows that go with it.

#include "pg_connection.hpp"
#include "pg_schema.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/config/secret.hpp>
#include <subsync/destinations/postgresql.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <map>
#include <set>

namespace subsync::destinations {
namespace {

using detail::clock;
using detail::pg_connection;
using detail::pg_rows;
using detail::qualified;
using detail::quote_ident;
using detail::table_shape;
using exporters::export_table;
using params = std::vector<std::optional<std::string>>;

/// The SQLite side stays one snapshot for the whole pass (WAL: a sync may write meanwhile).
class read_transaction {
public:
    explicit read_transaction(SQLite::Database& db) : db_(db) { db_.exec("BEGIN"); }
    ~read_transaction() {
        try {
            db_.exec("ROLLBACK");
        } catch (...) {  // nothing was written; a failed ROLLBACK of a read leaves nothing behind
        }
    }
    read_transaction(const read_transaction&) = delete;
    read_transaction& operator=(const read_transaction&) = delete;

private:
    SQLite::Database& db_;
};

std::string column_list(const table_shape& s) {
    std::string out;
    for (const auto& c : s.pg_columns()) out += (out.empty() ? "" : ", ") + quote_ident(c);
    return out;
}

/// Batched idempotent upserts: INSERT ... VALUES (...), (...) ON CONFLICT (key) DO UPDATE.
class upsert_writer {
public:
    upsert_writer(pg_connection& c, const config::destination_config& d, const table_shape& s)
        : c_(c), d_(d), width_(s.pg_columns().size()) {
        head_ = fmt::format("INSERT INTO {} ({}) VALUES ", qualified(d.schema, to_string(s.table)), column_list(s));
        tail_ = " ON CONFLICT (instance";
        for (const auto& k : s.key) tail_ += ", " + quote_ident(k);
        tail_ += ") DO UPDATE SET ";
        bool first = true;
        for (const auto& col : s.pg_columns()) {
            if (col == "instance" || std::find(s.key.begin(), s.key.end(), col) != s.key.end()) continue;
            tail_ += fmt::format("{}{} = EXCLUDED.{}", first ? "" : ", ", quote_ident(col), quote_ident(col));
            first = false;
        }
    }
    void add(params row) {
        for (auto& v : row) params_.push_back(std::move(v));
        if (++rows_ >= static_cast<std::size_t>(d_.batch_rows)) flush();
    }
    void flush() {
        if (rows_ == 0) return;
        std::string sql = head_;
        std::size_t n = 0;
        for (std::size_t r = 0; r < rows_; ++r) {
            sql += r == 0 ? "(" : ", (";
            for (std::size_t i = 0; i < width_; ++i) sql += fmt::format("{}${}", i == 0 ? "" : ", ", ++n);
            sql += ')';
        }
        sql += tail_;
        c_.exec(sql, params_, d_.statement_timeout);
        params_.clear();
        rows_ = 0;
    }

private:
    pg_connection& c_;
    const config::destination_config& d_;
    std::size_t width_;
    std::string head_;
    std::string tail_;
    params params_;
    std::size_t rows_ = 0;
};

/// COPY text format, streamed in chunks of about 1 MiB.
class copy_writer {
public:
    copy_writer(pg_connection& c, const config::destination_config& d, const table_shape& s)
        : c_(c), deadline_(clock::now() + d.statement_timeout) {
        c_.copy_begin(fmt::format("COPY {} ({}) FROM STDIN", qualified(d.schema, to_string(s.table)), column_list(s)),
                      deadline_);
    }
    void add(const params& row) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (i > 0) buf_ += '\t';
            if (row[i]) detail::append_copy_text(buf_, *row[i]);
            else buf_ += "\\N";
        }
        buf_ += '\n';
        if (buf_.size() >= (1u << 20)) {
            c_.copy_put(buf_, deadline_);
            buf_.clear();
        }
    }
    void finish() {
        c_.copy_put(buf_, deadline_);
        c_.copy_end(deadline_);
    }

private:
    pg_connection& c_;
    clock::time_point deadline_;
    std::string buf_;
};

/// The alerts table as one pass shipped it: its newest updated_at and its row count. Every
/// write of an alert sets updated_at; retention deletes rows, which the count sees.
struct alerts_mark {
    std::int64_t updated_at = 0;
    std::int64_t count = 0;
    bool operator==(const alerts_mark&) const = default;
};

struct cursor {
    std::int64_t seq = 0;
    std::int64_t run = 0;
    std::optional<alerts_mark> alerts;  ///< none: written by a schema-1 pass, or never shipped
};

alerts_mark alerts_mark_of(SQLite::Database& db) {
    SQLite::Statement q(db, "SELECT coalesce(max(updated_at), 0), count(*) FROM alerts");
    q.executeStep();
    return {q.getColumn(0).getInt64(), q.getColumn(1).getInt64()};
}

std::int64_t sqlite_max(SQLite::Database& db, const char* sql) { return db.execAndGet(sql).getInt64(); }

std::vector<export_table> wanted(const config::destination_config& d) {
    std::vector<export_table> out;
    for (const auto& name : d.tables) out.push_back(detail::table_named(name));
    return out;
}

/// Everything of this instance, replaced: DELETE then COPY, per table.
std::int64_t full_load(pg_connection& c, SQLite::Database& db, const config::destination_config& d) {
    std::int64_t shipped = 0;
    for (auto t : wanted(d)) {
        const auto s = detail::shape_of(t);
        c.exec(fmt::format("DELETE FROM {} WHERE instance = $1", qualified(d.schema, to_string(t))), {d.instance},
               d.statement_timeout);
        copy_writer w(c, d, s);
        const auto rows = exporters::for_each_row(db, t, [&](const std::vector<sync::cell>& cells, std::string_view key) {
            w.add(detail::pg_row(s, d.instance, cells, key));
        });
        w.finish();
        if (t == export_table::changes) shipped = rows;
    }
    return shipped;
}

/// The items the changes past the cursor touched, re-read from SQLite: upserted when current,
/// deleted when removed.
void ship_items(pg_connection& c, SQLite::Database& db, const config::destination_config& d, export_table t,
                std::int64_t after_seq) {
    const auto s = detail::shape_of(t);
    SQLite::Statement touched(db, "SELECT DISTINCT account, item_key FROM changes WHERE seq > ? AND source = ?");
    touched.bind(1, static_cast<std::int64_t>(after_seq));
    touched.bind(2, std::string(to_string(t)));
    upsert_writer up(c, d, s);
    std::vector<std::pair<std::string, std::string>> gone;
    while (touched.executeStep()) {
        exporters::export_options o;
        o.account = touched.getColumn(0).getString();
        o.item_key = touched.getColumn(1).getString();
        const auto n = exporters::for_each_row(db, t, [&](const std::vector<sync::cell>& cells, std::string_view key) {
            up.add(detail::pg_row(s, d.instance, cells, key));
        }, o);
        if (n == 0) gone.emplace_back(*o.account, *o.item_key);
    }
    up.flush();
    const std::string table = qualified(d.schema, to_string(t));
    for (std::size_t at = 0; at < gone.size();) {
        const std::size_t n = std::min<std::size_t>(gone.size() - at, static_cast<std::size_t>(d.batch_rows));
        std::string sql = fmt::format("DELETE FROM {} WHERE instance = $1 AND (account, item_key) IN (", table);
        params p{d.instance};
        for (std::size_t i = 0; i < n; ++i) {
            sql += fmt::format("{}(${}, ${})", i == 0 ? "" : ", ", p.size() + 1, p.size() + 2);
            p.emplace_back(gone[at + i].first);
            p.emplace_back(gone[at + i].second);
        }
        sql += ')';
        c.exec(sql, p, d.statement_timeout);
        at += n;
    }
}

template <typename Options>
std::int64_t upsert_rows(pg_connection& c, SQLite::Database& db, const config::destination_config& d, export_table t,
                         const Options& o) {
    const auto s = detail::shape_of(t);
    upsert_writer up(c, d, s);
    const auto n = exporters::for_each_row(db, t, [&](const std::vector<sync::cell>& cells, std::string_view key) {
        up.add(detail::pg_row(s, d.instance, cells, key));
    }, o);
    up.flush();
    return n;
}

std::int64_t incremental(pg_connection& c, SQLite::Database& db, const config::destination_config& d, cursor from,
                         const alerts_mark& alerts_now) {
    std::int64_t shipped = 0;
    for (auto t : wanted(d)) {
        switch (t) {
            case export_table::purchased_groups:
            case export_table::subscription_resources: ship_items(c, db, d, t, from.seq); break;
            case export_table::changes: {
                exporters::export_options o;
                o.since_seq = from.seq;
                shipped = upsert_rows(c, db, d, t, o);
                break;
            }
            case export_table::sync_runs: {
                exporters::export_options o;
                o.after_run = from.run;
                upsert_rows(c, db, d, t, o);
                break;
            }
            case export_table::alerts:
                // Alert state changes without a change row (a notification sent, an alert
                // resolved): when anything in it moved, the table is replaced whole; when
                // nothing did (an unchanged re-sync), it is not touched.
                if (from.alerts == alerts_now) break;
                c.exec(fmt::format("DELETE FROM {} WHERE instance = $1", qualified(d.schema, "alerts")), {d.instance},
                       d.statement_timeout);
                upsert_rows(c, db, d, t, exporters::export_options{});
                break;
        }
    }
    return shipped;
}

detail::pg_settings settings_of(const config::destination_config& d) {
    detail::pg_settings s;
    s.keywords.emplace_back("application_name", "subsyncd");
    if (!d.sslmode.empty()) s.keywords.emplace_back("sslmode", d.sslmode);
    if (!d.sslrootcert.empty()) s.keywords.emplace_back("sslrootcert", d.sslrootcert.string());
    return s;
}

std::unique_ptr<pg_connection> connect(const config::destination_config& d, const config::secret& dsn,
                                       const std::atomic<bool>* cancel = nullptr) {
    auto c = std::make_unique<pg_connection>(dsn.reveal(), settings_of(d), d.connect_timeout, cancel);
    // The server-side twin of our client deadline: a statement PostgreSQL cannot finish in
    // time is cancelled there too, releasing its locks.
    c->exec(fmt::format("SET statement_timeout = {}", d.statement_timeout.count()), d.statement_timeout);
    return c;
}

std::optional<cursor> read_cursor(pg_connection& c, const config::destination_config& d, bool lock) {
    const auto rows =
        c.exec(fmt::format("SELECT last_seq, last_run, alerts_updated_at, alerts_count FROM {} WHERE instance = $1{}",
                           qualified(d.schema, "replication_cursor"), lock ? " FOR UPDATE" : ""),
               {d.instance}, d.statement_timeout);
    if (rows.rows.empty()) return std::nullopt;
    const auto& row = rows.rows[0];
    cursor at{std::stoll(row.at(0).value_or("0")), std::stoll(row.at(1).value_or("0")), std::nullopt};
    if (row.at(2) && row.at(3)) at.alerts = alerts_mark{std::stoll(*row.at(2)), std::stoll(*row.at(3))};
    return at;
}

}  // namespace

void log_outcome(const replication_outcome& o, std::string_view then, bool every_pass) {
    if (!o.ok) {
        logging::warn("destination unavailable",
                      {{"destination", o.destination},
                       {"instance", o.instance},
                       {"lag_changes", o.lag_changes},
                       {"error", o.error}},
                      then);
    } else if (every_pass || o.shipped_changes > 0 || o.full_load) {
        logging::info("destination replicated", {{"destination", o.destination},
                                                 {"instance", o.instance},
                                                 {"changes", o.shipped_changes},
                                                 {"full_load", o.full_load},
                                                 {"seq", o.cursor_seq}});
    }
}

replication_outcome replicate_once(const config::destination_config& d, const config::secret& dsn,
                                   const std::filesystem::path& database, bool full,
                                   const std::atomic<bool>* cancel) {
    replication_outcome out;
    out.destination = d.name;
    out.instance = d.instance;
    std::int64_t max_seq = 0;
    try {
        auto db = sync::open_snapshot_readonly(database);
        // For the lag while the destination is down; the pass itself reads its own snapshot below.
        out.local_seq = sqlite_max(db, "SELECT coalesce(max(seq), 0) FROM changes");
        out.lag_changes = out.local_seq;  // until the cursor is read

        auto c = connect(d, dsn, cancel);
        detail::migrate(*c, d);
        c->exec("BEGIN", d.statement_timeout);
        // Serialises two passes of the same instance (a daemon and `subsyncd replicate`). The
        // SQLite snapshot is taken after the lock, so a pass never sees a cursor newer than
        // what it read (which would look like a replaced database).
        c->exec("SELECT pg_advisory_xact_lock(hashtext($1))", {"subsync.replicate." + d.instance},
                d.statement_timeout);
        const auto from = read_cursor(*c, d, true);
        read_transaction snapshot(db);
        max_seq = sqlite_max(db, "SELECT coalesce(max(seq), 0) FROM changes");
        const std::int64_t max_run = sqlite_max(db, "SELECT coalesce(max(id), 0) FROM sync_runs");
        const alerts_mark alerts_now = alerts_mark_of(db);
        out.local_seq = max_seq;
        out.lag_changes = from ? max_seq - from->seq : max_seq;
        const bool behind_us = from && (from->seq > max_seq || from->run > max_run);
        if (behind_us)
            logging::warn("destination ahead",
                          {{"destination", d.name},
                           {"instance", d.instance},
                           {"cursor_seq", from->seq},
                           {"local_seq", max_seq}},
                          "its cursor is ahead of this database (replaced or restored): reloading everything");
        out.full_load = full || !from || behind_us;
        out.shipped_changes = out.full_load ? full_load(*c, db, d) : incremental(*c, db, d, *from, alerts_now);
        c->exec(fmt::format("INSERT INTO {} (instance, last_seq, last_run, alerts_updated_at, alerts_count, updated_at) "
                            "VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (instance) DO UPDATE SET "
                            "last_seq = EXCLUDED.last_seq, last_run = EXCLUDED.last_run, "
                            "alerts_updated_at = EXCLUDED.alerts_updated_at, alerts_count = EXCLUDED.alerts_count, "
                            "updated_at = EXCLUDED.updated_at",
                            qualified(d.schema, "replication_cursor")),
                {d.instance, std::to_string(max_seq), std::to_string(max_run), std::to_string(alerts_now.updated_at),
                 std::to_string(alerts_now.count)},
                d.statement_timeout);
        c->exec("COMMIT", d.statement_timeout);
        out.ok = true;
        out.cursor_seq = max_seq;
        out.lag_changes = 0;
    } catch (const std::exception& e) {
        // A lost connection rolls the PostgreSQL transaction back: the cursor stays where it was.
        out.error = config::redacted(e.what());
    }
    return out;
}

std::vector<replication_outcome> replicate_all(const config::config& cfg, const config::environment& env, bool full) {
    std::vector<replication_outcome> out;
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        const auto& d = cfg.destinations[i];
        auto dsn = config::resolve_secret(d.dsn, fmt::format("destination[{}].dsn", i), env);
        if (!dsn) {
            replication_outcome o;
            o.destination = d.name;
            o.instance = d.instance;
            o.error = dsn.error();
            out.push_back(std::move(o));
            continue;
        }
        out.push_back(replicate_once(d, *dsn, cfg.storage.database, full));
    }
    return out;
}

std::vector<destination_lag> query_lag(const config::config& cfg, const config::environment& env) {
    std::vector<destination_lag> out;
    std::int64_t max_seq = 0;
    std::string db_error;
    try {
        auto db = sync::open_snapshot_readonly(cfg.storage.database);
        max_seq = sqlite_max(db, "SELECT coalesce(max(seq), 0) FROM changes");
    } catch (const std::exception& e) {
        db_error = e.what();
    }
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        const auto& d = cfg.destinations[i];
        destination_lag l;
        l.destination = d.name;
        try {
            if (!db_error.empty()) throw std::runtime_error(db_error);
            auto dsn = config::resolve_secret(d.dsn, fmt::format("destination[{}].dsn", i), env);
            if (!dsn) throw std::runtime_error(dsn.error());
            auto c = connect(d, *dsn);
            // No cursor yet (never replicated, or no tables): everything is lag.
            std::optional<cursor> at;
            const auto exists = c->exec("SELECT to_regclass($1)", {qualified(d.schema, "replication_cursor")},
                                        d.statement_timeout);
            if (!exists.rows.empty() && exists.rows[0][0]) at = read_cursor(*c, d, false);
            l.known = true;
            l.cursor_seq = at ? at->seq : 0;
            l.lag_changes = std::max<std::int64_t>(0, max_seq - l.cursor_seq);
        } catch (const std::exception& e) {
            l.error = config::redacted(e.what());
        }
        out.push_back(std::move(l));
    }
    return out;
}

}  // namespace subsync::destinations
