#include "schema.hpp"

#include <subsync/sync/alerts.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <optional>
#include <type_traits>
#include <unordered_map>

namespace subsync::sync {
namespace {

constexpr int busy_timeout_ms = 10000;

// Creates the file with mode 0600 before SQLite sees it: the snapshot lists
// what a tenant owns, which is nobody else's business. SQLite gives the -wal
// and -shm files the same mode.
void create_private(const std::filesystem::path& file) {
    if (std::filesystem::exists(file)) return;
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
    const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot create database {}: {}", file.string(), std::strerror(errno)));
    ::close(fd);
}

std::string column_list(std::span<const column> cols) {
    std::string s;
    for (const auto& c : cols) {
        if (!s.empty()) s += ", ";
        s += c.name;
    }
    return s;
}

std::string placeholders(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += i == 0 ? "?" : ", ?";
    return s;
}

// Binds cells to parameters first..first+n-1 and returns the absent bit mask.
std::int64_t bind_cells(SQLite::Statement& stmt, int first, std::span<const column> cols, const std::vector<cell>& cells) {
    std::int64_t absent = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        const int index = first + static_cast<int>(i);
        const cell& c = cells[i];
        if (c.state != field_state::present) {
            stmt.bind(index);
            if (c.state == field_state::absent) absent |= std::int64_t{1} << i;
        } else if (cols[i].type == column_type::text || cols[i].type == column_type::json) {
            stmt.bindNoCopy(index, c.text);
        } else {
            stmt.bind(index, static_cast<std::int64_t>(c.number));
        }
    }
    return absent;
}

std::string json_or_null(const cell& c, column_type t) {
    std::string s;
    append_json_literal(s, c, t);
    return s;
}

struct existing_item {
    std::uint64_t hash = 0;
    bool removed = false;
    bool seen = false;
    bool written = false;  // this run wrote (or will write) the row
};

void to_cells_any(const purchased_group& g, std::vector<cell>& out) { to_cells(g, out); }
void to_cells_any(const subscription_resource& r, std::vector<cell>& out) { to_cells(r, out); }

}  // namespace

void read_cells(SQLite::Statement& stmt, std::span<const column> cols, int first, std::vector<cell>& out) {
    const auto absent = stmt.getColumn(first + static_cast<int>(cols.size())).getInt64();
    out.resize(cols.size());
    for (std::size_t i = 0; i < cols.size(); ++i) {
        auto col = stmt.getColumn(first + static_cast<int>(i));
        cell& c = out[i];
        c.text.clear();
        c.number = 0;
        if (col.isNull()) {
            c.state = (absent >> i) & 1 ? field_state::absent : field_state::null;
        } else {
            c.state = field_state::present;
            if (cols[i].type == column_type::text || cols[i].type == column_type::json) {
                // Reuses the cell's buffer (getString made a new string per cell); text before bytes, as SQLite asks.
                const char* text = col.getText();
                c.text.assign(text, static_cast<std::size_t>(col.getBytes()));
            } else {
                c.number = col.getInt64();
            }
        }
    }
}

SQLite::Database open_snapshot_readonly(const std::filesystem::path& file) {
    if (!std::filesystem::exists(file))
        throw std::runtime_error(fmt::format("no snapshot at {}: run `subsyncd sync --once` first", file.string()));
    // NOMUTEX: a read-only handle is used by one thread; serialized mode locked a mutex on every
    // sqlite3_column_* call (8 % of an export's CPU, bench/README.md finding 3).
    SQLite::Database db(file.string(), SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX, busy_timeout_ms);
    const int version = db.execAndGet("PRAGMA user_version").getInt();
    if (version != snapshot_store::schema_version)
        throw std::runtime_error(fmt::format("{}: schema version {} but this subsyncd reads version {}", file.string(),
                                             version, snapshot_store::schema_version));
    return db;
}

snapshot_store::snapshot_store(const std::filesystem::path& file, store_options opts)
    : opts_(opts),
      db_((create_private(file), file.string()), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
          static_cast<int>(opts.busy_timeout.count())) {
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = FULL");
    db_.exec("PRAGMA foreign_keys = ON");
    detail::migrate(db_, schema_version);
}

snapshot_store::snapshot_store(const config::storage_config& cfg)
    : snapshot_store(cfg.database, store_options{cfg.busy_timeout, cfg.quota_sample_interval}) {}

run_record snapshot_store::record_failure(std::string_view account, source_kind source, const std::string& error,
                                          epoch_ms started, epoch_ms finished, bool dry_run,
                                          std::string_view error_kind) {
    run_record r;
    r.account = std::string(account);
    r.source = source;
    r.status = "failed";
    r.error = error;
    r.started = started;
    r.finished = finished;
    if (dry_run) return r;
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement ins(db_,
                          "INSERT INTO sync_runs (account, source, started_at, finished_at, status, error, error_kind) "
                          "VALUES (?, ?, ?, ?, 'failed', ?, ?)");
    ins.bind(1, std::string(account));
    ins.bind(2, std::string(to_string(source)));
    ins.bind(3, static_cast<std::int64_t>(started));
    ins.bind(4, static_cast<std::int64_t>(finished));
    ins.bind(5, error);
    if (error_kind.empty()) ins.bind(6);
    else ins.bind(6, std::string(error_kind));
    ins.exec();
    r.id = db_.getLastInsertRowid();
    // Time passes for a blind watcher too: expiry thresholds are crossed on the last good
    // snapshot, and the self-monitoring rules see this failure.
    if (alerts_) r.notifications = alerts::update_source(db_, *alerts_, account, to_string(source), finished, r.id);
    tx.commit();
    return r;
}

run_record snapshot_store::apply(std::string_view account, const listing<purchased_group>& l, epoch_ms started,
                                 epoch_ms finished, bool dry_run) {
    return apply_listing(account, source_kind::purchased_groups, l, started, finished, dry_run);
}

run_record snapshot_store::apply(std::string_view account, const listing<subscription_resource>& l,
                                 epoch_ms started, epoch_ms finished, bool dry_run) {
    return apply_listing(account, source_kind::subscriptions, l, started, finished, dry_run);
}

template <class Record>
run_record snapshot_store::apply_listing(std::string_view account_view, source_kind source, const listing<Record>& l,
                                         epoch_ms started, epoch_ms finished, bool dry_run) {
    const std::string account(account_view);
    const std::string table(to_string(source));
    const auto cols = columns(source);
    const auto n = cols.size();
    const std::string names = column_list(cols);

    run_record run;
    run.account = account;
    run.source = source;
    run.status = l.complete ? "ok" : "incomplete";
    run.pages = l.pages;
    run.items = static_cast<std::int64_t>(l.items.size());
    run.started = started;
    run.finished = finished;
    if (!l.complete) run.error = "incomplete listing: " + l.incomplete_reason;

    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);

    SQLite::Statement ins_run(db_,
                              "INSERT INTO sync_runs (account, source, started_at, finished_at, status, pages, items, "
                              "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    ins_run.bind(1, account);
    ins_run.bind(2, table);
    ins_run.bind(3, static_cast<std::int64_t>(started));
    ins_run.bind(4, static_cast<std::int64_t>(finished));
    ins_run.bind(5, run.status);
    ins_run.bind(6, run.pages);
    ins_run.bind(7, static_cast<std::int64_t>(run.items));
    if (run.error.empty()) ins_run.bind(8);
    else ins_run.bind(8, run.error);
    ins_run.exec();
    run.id = db_.getLastInsertRowid();

    // What the snapshot holds now: key -> content hash, so unchanged items cost
    // one hash comparison and no write.
    std::unordered_map<std::string, existing_item> existing;
    {
        SQLite::Statement q(db_, fmt::format("SELECT item_key, content_hash, removed_at IS NOT NULL FROM {} "
                                             "WHERE account = ?",
                                             table));
        q.bind(1, account);
        while (q.executeStep())
            existing.emplace(q.getColumn(0).getString(),
                             existing_item{static_cast<std::uint64_t>(q.getColumn(1).getInt64()),
                                           q.getColumn(2).getInt() != 0, false});
    }

    SQLite::Statement ins(db_, fmt::format("INSERT INTO {} (account, item_key, {}, absent_mask, content_hash, "
                                           "first_seen, updated_at) VALUES (?, ?, {}, ?, ?, ?, ?)",
                                           table, names, placeholders(n)));
    std::string assignments;
    for (const auto& c : cols) assignments += fmt::format("{} = ?, ", c.name);
    SQLite::Statement upd(db_, fmt::format("UPDATE {} SET {}absent_mask = ?, content_hash = ?, updated_at = ?, "
                                           "removed_at = NULL WHERE account = ? AND item_key = ?",
                                           table, assignments));
    SQLite::Statement old_row(db_, fmt::format("SELECT {}, absent_mask FROM {} WHERE account = ? AND item_key = ?",
                                               names, table));
    SQLite::Statement mark_removed(db_, fmt::format("UPDATE {} SET removed_at = ?, updated_at = ? "
                                                    "WHERE account = ? AND item_key = ?",
                                                    table));
    SQLite::Statement ins_change(db_,
                                 "INSERT INTO changes (run_id, time, account, source, item_key, kind, field, "
                                 "old_value, new_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");

    auto add_change = [&](const std::string& key, const char* kind, const char* field_name, const std::string* old_v,
                          const std::string* new_v) {
        ins_change.bind(1, static_cast<std::int64_t>(run.id));
        ins_change.bind(2, static_cast<std::int64_t>(finished));
        ins_change.bind(3, account);
        ins_change.bind(4, table);
        ins_change.bind(5, key);
        ins_change.bind(6, kind);
        if (field_name) ins_change.bind(7, field_name);
        else ins_change.bind(7);
        if (old_v) ins_change.bind(8, *old_v);
        else ins_change.bind(8);
        if (new_v) ins_change.bind(9, *new_v);
        else ins_change.bind(9);
        ins_change.exec();
        ins_change.reset();
        ins_change.clearBindings();
    };
    auto load_old = [&](const std::string& key, std::vector<cell>& out) {
        old_row.bind(1, account);
        old_row.bind(2, key);
        if (!old_row.executeStep()) throw std::logic_error("snapshot row vanished during apply: " + key);
        read_cells(old_row, cols, 0, out);
        old_row.reset();
    };

    std::vector<cell> cells;
    std::vector<cell> before;
    std::string object;

    // Rows are written in primary-key order, after the loop: the keys are random
    // UUIDs, so API order put every write on a random leaf and SQLite's 2 MB cache
    // spilled and re-read pages (1.7 GB written for a 103 MB database, bench/README.md
    // finding 2). Changes are still recorded in API order, so `seq` is unchanged.
    struct pending_write {
        std::string key;
        const Record* item;
        std::uint64_t hash;
        bool is_new;
    };
    std::vector<pending_write> pending;
    std::vector<cell> row;  // not `cells`: a flush may run while the loop holds an item's cells
    auto write_pending = [&] {
        std::sort(pending.begin(), pending.end(),
                  [](const pending_write& a, const pending_write& b) { return a.key < b.key; });
        for (const auto& w : pending) {
            to_cells_any(*w.item, row);
            if (w.is_new) {
                ins.bind(1, account);
                ins.bind(2, w.key);
                const auto absent = bind_cells(ins, 3, cols, row);
                const int next = 3 + static_cast<int>(n);
                ins.bind(next, static_cast<std::int64_t>(absent));
                ins.bind(next + 1, static_cast<std::int64_t>(w.hash));
                ins.bind(next + 2, static_cast<std::int64_t>(finished));
                ins.bind(next + 3, static_cast<std::int64_t>(finished));
                ins.exec();
                ins.reset();
            } else {
                const auto absent = bind_cells(upd, 1, cols, row);
                const int next = 1 + static_cast<int>(n);
                upd.bind(next, static_cast<std::int64_t>(absent));
                upd.bind(next + 1, static_cast<std::int64_t>(w.hash));
                upd.bind(next + 2, static_cast<std::int64_t>(finished));
                upd.bind(next + 3, account);
                upd.bind(next + 4, w.key);
                upd.exec();
                upd.reset();
            }
        }
        pending.clear();
    };

    for (const Record& item : l.items) {
        std::string key = item_key(item);
        to_cells_any(item, cells);
        const std::uint64_t hash = content_hash(cells);
        auto it = existing.find(key);
        if (it != existing.end() && !it->second.removed && it->second.hash == hash) {
            it->second.seen = true;
            continue;  // unchanged: nothing is written
        }
        const bool is_new = it == existing.end();
        if (!is_new && it->second.written) write_pending();  // a key listed twice is compared with its first row
        if (!is_new && !it->second.removed) {
            load_old(key, before);
            for (std::size_t i = 0; i < n; ++i) {
                if (before[i] == cells[i]) continue;
                const std::string ov = json_or_null(before[i], cols[i].type);
                const std::string nv = json_or_null(cells[i], cols[i].type);
                add_change(key, "changed", cols[i].name.data(), before[i].state == field_state::absent ? nullptr : &ov,
                           cells[i].state == field_state::absent ? nullptr : &nv);
            }
            ++run.changed;
        } else {
            object.clear();
            append_json_object(object, cols, cells, time_style::epoch_millis);
            add_change(key, "added", nullptr, nullptr, &object);
            ++run.added;
        }
        if (is_new) existing.emplace(key, existing_item{hash, false, true, true});
        else it->second = existing_item{hash, false, true, true};
        pending.push_back({std::move(key), &item, hash, is_new});
    }
    write_pending();

    // Only a listing known to be whole may say an item is gone.
    if (l.complete) {
        for (auto& [key, state] : existing) {
            if (state.seen || state.removed) continue;
            load_old(key, before);
            object.clear();
            append_json_object(object, cols, before, time_style::epoch_millis);
            add_change(key, "removed", nullptr, &object, nullptr);
            mark_removed.bind(1, static_cast<std::int64_t>(finished));
            mark_removed.bind(2, static_cast<std::int64_t>(finished));
            mark_removed.bind(3, account);
            mark_removed.bind(4, key);
            mark_removed.exec();
            mark_removed.reset();
            ++run.removed;
        }
    }

    if constexpr (std::is_same_v<Record, purchased_group>) sample_quotas(account, l, run.id, finished);

    SQLite::Statement counts(db_, "UPDATE sync_runs SET added = ?, changed = ?, removed = ? WHERE id = ?");
    counts.bind(1, static_cast<std::int64_t>(run.added));
    counts.bind(2, static_cast<std::int64_t>(run.changed));
    counts.bind(3, static_cast<std::int64_t>(run.removed));
    counts.bind(4, static_cast<std::int64_t>(run.id));
    counts.exec();
    if (alerts_) run.notifications = alerts::update_source(db_, *alerts_, account, table, finished, run.id);
    if (!dry_run) tx.commit();  // otherwise the transaction's destructor rolls everything back
    return run;
}

void snapshot_store::sample_quotas(std::string_view account, const listing<purchased_group>& l, std::int64_t run_id,
                                   epoch_ms now) {
    struct last_sample {
        epoch_ms time;
        std::optional<std::int64_t> used;
        std::optional<std::int64_t> left;
    };
    std::unordered_map<std::string, last_sample> last;
    {
        SQLite::Statement q(db_,
                            // One ordered pass over the primary key; SQLite takes the bare columns from the
                            // row of max(time) (sqlite.org/lang_select.html#bareagg). It replaced a correlated
                            // subquery per purchase (bench/README.md finding 6).
                            "SELECT purchase_id, max(time), quota_used, quota_left FROM quota_samples "
                            "WHERE account = ?1 GROUP BY purchase_id");
        q.bind(1, std::string(account));
        auto opt = [](const SQLite::Column& c) {
            return c.isNull() ? std::nullopt : std::optional<std::int64_t>(c.getInt64());
        };
        while (q.executeStep())
            last.emplace(q.getColumn(0).getString(),
                         last_sample{q.getColumn(1).getInt64(), opt(q.getColumn(2)), opt(q.getColumn(3))});
    }
    SQLite::Statement ins(db_,
                          "INSERT OR REPLACE INTO quota_samples (account, purchase_id, time, run_id, quota_used, "
                          "quota_left) VALUES (?, ?, ?, ?, ?, ?)");
    auto value = [](const field<std::int64_t>& f) {
        return f.has_value() ? std::optional<std::int64_t>(*f) : std::nullopt;
    };
    // In primary-key order, like the rows in apply_listing; stable, so a repeated id keeps its last sample.
    std::vector<const purchased_group*> order;
    order.reserve(l.items.size());
    for (const auto& g : l.items) order.push_back(&g);
    std::stable_sort(order.begin(), order.end(),
                     [](const purchased_group* a, const purchased_group* b) { return a->id < b->id; });
    for (const purchased_group* gp : order) {
        const purchased_group& g = *gp;
        const auto used = value(g.quota_used);
        const auto left = value(g.quota_left);
        if (!used && !left) continue;  // nothing to sample
        auto it = last.find(g.id);
        // The series must show every change and, for forecasts, stay dense enough
        // in time; an unchanged quota re-samples only after the interval.
        if (it != last.end() && it->second.used == used && it->second.left == left &&
            now - it->second.time < opts_.quota_sample_interval.count())
            continue;
        ins.bind(1, std::string(account));
        ins.bind(2, g.id);
        ins.bind(3, static_cast<std::int64_t>(now));
        ins.bind(4, static_cast<std::int64_t>(run_id));
        if (used) ins.bind(5, *used);
        else ins.bind(5);
        if (left) ins.bind(6, *left);
        else ins.bind(6);
        ins.exec();
        ins.reset();
    }
}

prune_counts snapshot_store::prune(epoch_ms cutoff) {
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    prune_counts c;
    auto run = [&](const char* sql) {
        SQLite::Statement st(db_, sql);
        st.bind(1, static_cast<std::int64_t>(cutoff));
        return static_cast<std::int64_t>(st.exec());
    };
    c.changes = run("DELETE FROM changes WHERE time < ?");
    c.samples = run("DELETE FROM quota_samples WHERE time < ?");
    c.removed_items = run("DELETE FROM purchased_groups WHERE removed_at IS NOT NULL AND removed_at < ?") +
                      run("DELETE FROM subscription_resources WHERE removed_at IS NOT NULL AND removed_at < ?");
    // A run still referenced by a kept change or sample stays (its finish time may precede a later change's).
    c.runs = run("DELETE FROM sync_runs WHERE finished_at < ? AND id NOT IN (SELECT run_id FROM changes) "
                 "AND id NOT IN (SELECT run_id FROM quota_samples)");
    // Alerts: resolved episodes and finished notifications; what is firing or still waiting
    // for a sink is kept whatever its age.
    c.alerts = run("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?") +
               run("DELETE FROM alert_outbox WHERE created_at < ? AND seq NOT IN "
                   "(SELECT seq FROM alert_deliveries WHERE status = 'pending')") +
               run("DELETE FROM alert_attempts WHERE time < ?");
    tx.commit();
    return c;
}

}  // namespace subsync::sync
