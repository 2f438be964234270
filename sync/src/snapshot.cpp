#include "schema.hpp"
#include "statements.hpp"

#include <subsync/config/secret.hpp>
#include <subsync/sync/history.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <sqlite3.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <optional>

namespace subsync::sync {
namespace {

using detail::bind_or_null;
using detail::column_list;

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

std::string json_or_null(const cell& c, column_type t) {
    std::string s;
    append_json_literal(s, c, t);
    return s;
}

}  // namespace

void read_cells(SQLite::Statement& stmt, std::span<const column> cols, int first, std::vector<cell>& out) {
    out.resize(cols.size());
    read_cells(stmt, cols, first, std::span<cell>(out));
}

void read_cells(SQLite::Statement& stmt, std::span<const column> cols, int first, std::span<cell> out) {
    const auto absent = stmt.getColumn(first + static_cast<int>(cols.size())).getInt64();
    for (std::size_t i = 0; i < cols.size(); ++i)
        read_cell(stmt.getColumn(first + static_cast<int>(i)), cols[i].type,
                  (absent >> i) & 1 ? field_state::absent : field_state::null, out[i]);
}

void read_cell(const SQLite::Column& col, column_type type, field_state if_null, cell& c) {
    c.text.clear();
    c.number = 0;
    if (col.isNull()) {
        c.state = if_null;
        return;
    }
    c.state = field_state::present;
    if (type == column_type::text || type == column_type::json) {
        // Reuses the cell's buffer (getString made a new string per cell); text before bytes, as SQLite asks.
        const char* text = col.getText();
        c.text.assign(text, static_cast<std::size_t>(col.getBytes()));
    } else {
        c.number = col.getInt64();
    }
}

namespace {

// How a sample becomes its purchase's latest (quota_latest): unless the latest is later, which
// only a clock set back can cause, and then the series' max(time) row stays the latest too.
constexpr std::string_view upsert_latest_sample =
    "ON CONFLICT (account, purchase_id) DO UPDATE SET time = excluded.time, quota_used = excluded.quota_used, "
    "quota_left = excluded.quota_left WHERE excluded.time >= quota_latest.time";

std::string version_name(versioned_table t) {
    switch (t) {
        case versioned_table::alerts: return "alerts";
        case versioned_table::quota_samples: return "quota_samples";
        case versioned_table::purchased_groups: return "purchased_groups";
        case versioned_table::subscription_resources: return "subscription_resources";
    }
    throw std::logic_error("unknown versioned_table");
}

}  // namespace

void bump_data_version(SQLite::Database& db, versioned_table t) {
    SQLite::Statement q(db, "UPDATE data_versions SET version = version + 1 WHERE name = ?");
    q.bind(1, version_name(t));
    if (q.exec() != 1) throw std::logic_error("data_versions has no row " + version_name(t));
}

std::int64_t data_version(SQLite::Database& db, versioned_table t) {
    SQLite::Statement q(db, "SELECT version FROM data_versions WHERE name = ?");
    q.bind(1, version_name(t));
    if (!q.executeStep()) throw std::logic_error("data_versions has no row " + version_name(t));
    return q.getColumn(0).getInt64();
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
      // NOMUTEX as for readers: the store is used by one thread (the io_context's) at a time.
      db_((create_private(file), file.string()), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX,
          static_cast<int>(opts.busy_timeout.count())) {
    // 16 KiB pages for a new file (an existing one keeps its own: only VACUUM changes it). The
    // page cache stays SQLite's default 2 MB, so a sync that writes 150 MB spills and re-reads
    // pages through the WAL; with 4 KiB pages that was 645,000 pread/pwrite calls in a cold 100k
    // sync, and 16 KiB pages made that sync 0.87 x as long (docs/decisions.md).
    db_.exec(fmt::format("PRAGMA page_size = {}", new_file_page_size));
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = FULL");
    db_.exec("PRAGMA foreign_keys = ON");
    // The staging tables (temp) are written in listing order and read back once or twice in
    // the same order, so a small cache costs nothing there: 256 KiB instead of the default
    // 2 MB took 2.5 MiB off a cold 100k sync's peak at the same wall time (docs/decisions.md).
    db_.exec(fmt::format("PRAGMA temp.cache_size = -{}", temp_cache_kib));
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
    r.status = run_status::failed;
    r.error = config::redacted(error);  // the database is an edge: no echoed secret passes it
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
    if (hook_) {
        r.queued = hook_->on_run(db_, account, source, finished, r.id, snapshot_delta::none);
        r.notifications = r.queued.total();
    }
    tx.commit();
    return r;
}

// --- apply --------------------------------------------------------------------------------

template <class Record>
run_record snapshot_store::apply_listing(std::string_view account, source_kind source, const listing<Record>& l,
                                         epoch_ms started, epoch_ms finished, bool dry_run) {
    listing_stage stage(*this, std::string(account), source);
    stage.add(0, std::span<const Record>(l.items));
    if (!l.complete) stage.mark_incomplete(l.incomplete_reason);
    stage.pages = l.pages;
    return apply(stage, started, finished, dry_run);
}

run_record snapshot_store::apply(std::string_view account, const listing<purchased_group>& l, epoch_ms started,
                                 epoch_ms finished, bool dry_run) {
    return apply_listing(account, source_kind::purchased_groups, l, started, finished, dry_run);
}

run_record snapshot_store::apply(std::string_view account, const listing<subscription_resource>& l,
                                 epoch_ms started, epoch_ms finished, bool dry_run) {
    return apply_listing(account, source_kind::subscriptions, l, started, finished, dry_run);
}

// One apply of a staged listing, in named phases; every phase runs inside apply()'s transaction.
class snapshot_store::apply_pass {
public:
    apply_pass(SQLite::Database& db, listing_stage& stage, epoch_ms started, epoch_ms finished)
        : db_(db), stage_(stage), finished_(finished), table_(to_string(stage.source())),
          cols_(columns(stage.source())), names_(column_list(cols_)),
          old_row_(db, fmt::format("SELECT {}, absent_mask FROM {} WHERE account = ? AND item_key = ?", names_, table_)),
          ins_change_(db, "INSERT INTO changes (run_id, time, account, source, item_key, kind, field, old_value, "
                          "new_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)") {
        run_.account = stage.account();
        run_.source = stage.source();
        run_.status = stage.complete() ? run_status::ok : run_status::incomplete;
        run_.pages = stage.pages;
        run_.items = stage.distinct_items();
        run_.started = started;
        run_.finished = finished;
        run_.unchanged = stage.unchanged();
        if (!stage.complete()) run_.error = config::redacted("incomplete listing: " + stage.incomplete_reason());
    }

    /// The sync_runs row; its id goes on every change.
    void insert_run() {
        SQLite::Statement ins(db_,
                              "INSERT INTO sync_runs (account, source, started_at, finished_at, status, pages, items, "
                              "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
        ins.bind(1, run_.account);
        ins.bind(2, table_);
        ins.bind(3, static_cast<std::int64_t>(run_.started));
        ins.bind(4, static_cast<std::int64_t>(finished_));
        ins.bind(5, std::string(to_string(run_.status)));
        ins.bind(6, run_.pages);
        ins.bind(7, static_cast<std::int64_t>(run_.items));
        if (run_.error.empty()) ins.bind(8);
        else ins.bind(8, run_.error);
        ins.exec();
        run_.id = db_.getLastInsertRowid();
    }

    /// The rows: `added` and field-level `changed` rows in the API's order, so `seq` follows the
    /// listing whatever order the pages came in, then the items themselves. A first listing of
    /// many items writes them with the indexes bulk_rebuilds() names set aside, and builds those
    /// again after them.
    void write_rows() {
        const auto rebuild = bulk_rebuilds();
        for (const auto& [name, sql] : rebuild) db_.exec("DROP INDEX " + name);
        record_staged_changes();
        upsert_rows();
        for (const auto& [name, sql] : rebuild) db_.exec(sql);
    }

    /// The indexes (name, CREATE statement) that cost less built afresh after this apply's writes
    /// than added to one entry at a time: the history's per-item index and the item table's
    /// expiry index. Each is in an order other than the one its rows come in (item key for the
    /// changes, which come in listing order; expiry for the items, which come in key order), so
    /// with ids that are random UUIDs each entry lands on a random page: past the 2 MB page
    /// cache, every insert reads a page back from the WAL and spills another (15 % of a cold
    /// 100k sync for the history's; 10 % for the expiry index). Building an index sorts its
    /// entries first and writes each page once. It pays when this apply adds at least 5,000
    /// items and a quarter of what the index holds; a later sync, with a long history and a few
    /// changes, keeps adding to it. Inside the apply's transaction, so a rollback restores the
    /// indexes with everything else, and readers see them whole either way.
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> bulk_rebuilds() const {
        std::int64_t added = 0;
        stage_.items_.for_each([&](std::string_view, const listing_stage::entry& e) {
            if (e.position >= 0 && !e.stored) ++added;
        });
        std::vector<std::pair<std::string, std::string>> out;
        if (added < 5'000) return out;
        auto index = [&](const std::string& name) {
            SQLite::Statement q(db_, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?");
            q.bind(1, name);
            if (q.executeStep()) out.emplace_back(name, q.getColumn(0).getString());
        };
        const std::int64_t history =
            db_.execAndGet("SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM changes").getInt64();
        if (history <= 4 * added) index("changes_by_item");
        // Every account's rows: the index holds them all (count(*) reads the index, not the rows).
        const std::int64_t rows = db_.execAndGet(fmt::format("SELECT count(*) FROM {}", table_)).getInt64();
        if (rows <= 4 * added) index(table_ + "_by_expiry");
        return out;
    }

    void record_staged_changes() {
        SQLite::Statement staged(db_, fmt::format("SELECT item_key, {}, absent_mask FROM temp.{} ORDER BY ord",
                                                  names_, stage_.table_));
        while (staged.executeStep()) {
            {
                const auto k = staged.getColumn(0);
                key_.assign(k.getText(), static_cast<std::size_t>(k.getBytes()));
            }
            read_cells(staged, cols_, 1, cells_);
            const listing_stage::entry* found = stage_.items_.find(key_);
            if (!found) throw std::logic_error("staged row " + key_ + " has no entry in its stage");
            const auto& e = *found;
            if (e.stored && !e.removed) {
                load_old(key_);
                for (std::size_t i = 0; i < cols_.size(); ++i) {
                    if (before_[i] == cells_[i]) continue;
                    const std::string ov = json_or_null(before_[i], cols_[i].type);
                    const std::string nv = json_or_null(cells_[i], cols_[i].type);
                    add_change(key_, change_kind::changed, cols_[i].name.data(),
                               before_[i].state == field_state::absent ? nullptr : &ov,
                               cells_[i].state == field_state::absent ? nullptr : &nv);
                }
                ++run_.changed;
            } else {
                object_.clear();
                append_json_object(object_, cols_, cells_, time_style::epoch_millis);
                add_change(key_, change_kind::added, nullptr, nullptr, &object_);
                ++run_.added;
            }
        }
    }

    /// Rows in primary-key order: the keys are random UUIDs, and API order put every write on a
    /// random leaf, so SQLite's 2 MB cache spilled and re-read pages (bench/README.md finding 2).
    /// SQLite sorts the staged rows itself, in bounded memory. A row listed again keeps first_seen.
    void upsert_rows() {
        std::string assignments;
        for (const auto& c : cols_) assignments += fmt::format("{0} = excluded.{0}, ", c.name);
        SQLite::Statement upsert(
            db_, fmt::format("INSERT INTO {0} (account, item_key, {1}, absent_mask, content_hash, first_seen, "
                             "updated_at) SELECT ?1, item_key, {1}, absent_mask, content_hash, ?2, ?2 FROM temp.{2} "
                             "WHERE true ORDER BY item_key ON CONFLICT (account, item_key) DO UPDATE SET {3}"
                             "absent_mask = excluded.absent_mask, content_hash = excluded.content_hash, "
                             "updated_at = excluded.updated_at, removed_at = NULL",
                             table_, names_, stage_.table_, assignments));
        upsert.bind(1, run_.account);
        upsert.bind(2, static_cast<std::int64_t>(finished_));
        upsert.exec();
    }

    /// Stored items this listing did not list: marked removed, with a `removed` change. Only a
    /// listing known to be whole may say an item is gone.
    void mark_removed() {
        if (!stage_.complete()) return;
        SQLite::Statement mark(db_, fmt::format("UPDATE {} SET removed_at = ?, updated_at = ? "
                                                "WHERE account = ? AND item_key = ?",
                                                table_));
        stage_.items_.for_each([&](std::string_view k, const listing_stage::entry& e) {
            if (!e.stored || e.removed || e.position >= 0) return;
            key_.assign(k);
            load_old(key_);
            object_.clear();
            append_json_object(object_, cols_, before_, time_style::epoch_millis);
            add_change(key_, change_kind::removed, nullptr, &object_, nullptr);
            mark.bind(1, static_cast<std::int64_t>(finished_));
            mark.bind(2, static_cast<std::int64_t>(finished_));
            mark.bind(3, run_.account);
            mark.bind(4, key_);
            mark.exec();
            mark.reset();
            ++run_.removed;
        });
    }

    /// The run's counts, now that they are known.
    void write_counts() {
        SQLite::Statement counts(db_, "UPDATE sync_runs SET added = ?, changed = ?, removed = ? WHERE id = ?");
        counts.bind(1, static_cast<std::int64_t>(run_.added));
        counts.bind(2, static_cast<std::int64_t>(run_.changed));
        counts.bind(3, static_cast<std::int64_t>(run_.removed));
        counts.bind(4, static_cast<std::int64_t>(run_.id));
        counts.exec();
    }

    run_record& run() noexcept { return run_; }

private:
    void add_change(const std::string& key, change_kind kind, const char* field_name, const std::string* old_v,
                    const std::string* new_v) {
        ins_change_.bind(1, static_cast<std::int64_t>(run_.id));
        ins_change_.bind(2, static_cast<std::int64_t>(finished_));
        ins_change_.bind(3, run_.account);
        ins_change_.bind(4, table_);
        ins_change_.bind(5, key);
        ins_change_.bindNoCopy(6, to_string(kind).data());  // a literal: NUL-terminated, static
        if (field_name) ins_change_.bind(7, field_name);
        else ins_change_.bind(7);
        bind_or_null(ins_change_, 8, old_v);
        bind_or_null(ins_change_, 9, new_v);
        ins_change_.exec();
        ins_change_.reset();
        ins_change_.clearBindings();
    }

    /// The stored cells of `key` into before_.
    void load_old(const std::string& key) {
        old_row_.bind(1, run_.account);
        old_row_.bind(2, key);
        if (!old_row_.executeStep())
            throw std::logic_error("snapshot row " + key + " vanished between staging and apply: something "
                                   "else wrote this (account, source) meanwhile");
        read_cells(old_row_, cols_, 0, before_);
        old_row_.reset();
    }

    SQLite::Database& db_;
    listing_stage& stage_;
    epoch_ms finished_;
    const std::string table_;
    const std::span<const column> cols_;
    const std::string names_;
    SQLite::Statement old_row_, ins_change_;
    run_record run_;
    std::vector<cell> cells_, before_;
    std::string object_, key_;
};

run_record snapshot_store::apply(listing_stage& stage, epoch_ms started, epoch_ms finished, bool dry_run) {
    // An empty listing must still see what it removes; an unchanged one removes nothing.
    if (!stage.unchanged()) stage.load();
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    apply_pass pass(db_, stage, started, finished);
    pass.insert_run();
    if (!stage.unchanged()) {
        pass.write_rows();
        pass.mark_removed();
    }
    run_record& run = pass.run();
    sampled samples;
    if (stage.source() == source_kind::purchased_groups)
        samples = stage.unchanged() ? sample_unchanged_quotas(stage, run.id, finished)
                                    : sample_quotas(stage, run.id, finished);
    pass.write_counts();
    record_digests(stage, samples.oldest);
    const snapshot_delta delta = stage.samples_beside_ > 0                           ? snapshot_delta::wide
                                 : run.added + run.changed + run.removed > 0 ? snapshot_delta::items
                                                                              : snapshot_delta::none;
    if (hook_) {
        run.queued = hook_->on_run(db_, run.account, run.source, finished, run.id, delta);
        run.notifications = run.queued.total();
    }
    if (!dry_run) tx.commit();  // otherwise the transaction's destructor rolls everything back
    return run;
}

snapshot_store::sampled snapshot_store::sample_quotas(listing_stage& stage, std::int64_t run_id, epoch_ms now) {
    sampled out;
    out.oldest = stage.stage_aged_samples(now);
    // The stage holds the samples that are due; written in key order, like the rows, to the
    // series and to each purchase's latest sample.
    SQLite::Statement ins(db_, fmt::format("INSERT OR REPLACE INTO quota_samples (account, purchase_id, time, run_id, "
                                           "quota_used, quota_left) SELECT ?1, purchase_id, ?2, ?3, quota_used, "
                                           "quota_left FROM temp.{}_quota ORDER BY purchase_id, ord",
                                           stage.table_));
    ins.bind(1, stage.account());
    ins.bind(2, static_cast<std::int64_t>(now));
    ins.bind(3, run_id);
    out.written = ins.exec();
    if (out.written > 0) {
        SQLite::Statement latest(db_, fmt::format("INSERT INTO quota_latest (account, purchase_id, time, quota_used, "
                                                  "quota_left) SELECT ?1, purchase_id, ?2, quota_used, quota_left "
                                                  "FROM temp.{}_quota WHERE true ORDER BY purchase_id, ord {}",
                                                  stage.table_, upsert_latest_sample));
        latest.bind(1, stage.account());
        latest.bind(2, static_cast<std::int64_t>(now));
        latest.exec();
        out.oldest = std::min(out.oldest.value_or(now), now);
        bump_data_version(db_, versioned_table::quota_samples);
    }
    return out;
}

snapshot_store::sampled snapshot_store::sample_unchanged_quotas(listing_stage& stage, std::int64_t run_id,
                                                                epoch_ms now) {
    const auto interval = opts_.quota_sample_interval.count();
    // Nothing is due before the oldest latest sample ages past the interval: most re-syncs stop here.
    if (!stage.oldest_sample_ || now - *stage.oldest_sample_ < interval) return {0, stage.oldest_sample_};
    // The listing is the stored live rows, so stage_cells() and stage_aged_samples() would
    // sample exactly these: a row with a quota whose latest sample is missing, differs, or has
    // aged past the interval. The same rows go to the series and to the latest samples: the
    // selection reads purchased_groups and quota_latest only, which the series insert does not
    // write, so both statements select the same rows.
    constexpr std::string_view with_quota =
        "FROM purchased_groups g LEFT JOIN quota_latest l ON l.account = ?1 AND l.purchase_id = g.item_key "
        "WHERE g.account = ?1 AND g.removed_at IS NULL AND (g.quota_used IS NOT NULL OR g.quota_left IS NOT NULL)";
    constexpr std::string_view due =
        "AND (l.time IS NULL OR ?2 - l.time >= ?4 OR l.quota_used IS NOT g.quota_used OR l.quota_left IS NOT "
        "g.quota_left) ORDER BY g.item_key";
    auto bind = [&](SQLite::Statement& st) {
        st.bind(1, stage.account());
        st.bind(2, static_cast<std::int64_t>(now));
        st.bind(4, static_cast<std::int64_t>(interval));
    };
    SQLite::Statement ins(db_, fmt::format("INSERT OR REPLACE INTO quota_samples (account, purchase_id, time, run_id, "
                                           "quota_used, quota_left) SELECT ?1, g.item_key, ?2, ?3, g.quota_used, "
                                           "g.quota_left {} {}",
                                           with_quota, due));
    bind(ins);
    ins.bind(3, run_id);
    sampled out;
    out.written = ins.exec();
    stage.samples_beside_ = out.written;
    if (out.written > 0) {
        SQLite::Statement latest(db_, fmt::format("INSERT INTO quota_latest (account, purchase_id, time, quota_used, "
                                                  "quota_left) SELECT ?1, g.item_key, ?2, g.quota_used, g.quota_left "
                                                  "{} {} {}",
                                                  with_quota, due, upsert_latest_sample));
        bind(latest);
        latest.exec();
        bump_data_version(db_, versioned_table::quota_samples);
    }
    SQLite::Statement oldest(db_, fmt::format("SELECT min(l.time) {}", with_quota));
    oldest.bind(1, stage.account());
    if (oldest.executeStep() && !oldest.getColumn(0).isNull()) out.oldest = oldest.getColumn(0).getInt64();
    return out;
}

void snapshot_store::record_digests(listing_stage& stage, std::optional<epoch_ms> oldest_sample) {
    const auto& d = stage.digests_;
    const bool whole = stage.complete() && stage.pages > 0 && d.size() == static_cast<std::size_t>(stage.pages) &&
                       std::none_of(d.begin(), d.end(), [](const page_digest& p) { return p == page_digest{}; });
    if (!whole) {
        SQLite::Statement del(db_, "DELETE FROM listing_digests WHERE account = ? AND source = ?");
        del.bind(1, stage.account());
        del.bind(2, std::string(to_string(stage.source())));
        del.exec();
        return;
    }
    // Written only when it differs: an unchanged re-sync writes no row here either.
    const auto& u = stage.unfiltered_;
    if (d == stage.previous_digests_ && u == stage.previous_unfiltered_ &&
        stage.distinct_items() == stage.previous_digest_items_ && oldest_sample == stage.oldest_sample_)
        return;
    SQLite::Statement put(db_, "INSERT OR REPLACE INTO listing_digests (account, source, digests, items, "
                               "oldest_sample, unfiltered_digests) VALUES (?, ?, ?, ?, ?, ?)");
    put.bind(1, stage.account());
    put.bind(2, std::string(to_string(stage.source())));
    put.bindNoCopy(3, d.data(), static_cast<int>(d.size() * sizeof(page_digest)));
    put.bind(4, static_cast<std::int64_t>(stage.distinct_items()));
    bind_or_null(put, 5, oldest_sample ? std::optional<std::int64_t>(*oldest_sample) : std::nullopt);
    put.bindNoCopy(6, u.data(), static_cast<int>(u.size() * sizeof(page_digest)));
    put.exec();
}

prune_counts snapshot_store::prune(epoch_ms cutoff) {
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    prune_counts c;
    auto run = [&](const std::string& sql) {
        SQLite::Statement st(db_, sql);
        st.bind(1, static_cast<std::int64_t>(cutoff));
        return static_cast<std::int64_t>(st.exec());
    };
    c.changes = run("DELETE FROM changes WHERE time < ?");
    c.samples = run("DELETE FROM quota_samples WHERE time < ?");
    // A latest sample older than the cutoff means every sample of its purchase went with it.
    run("DELETE FROM quota_latest WHERE time < ?");
    // Item rows are otherwise written only with a run that counts them (the export's data mark).
    for (const auto table : {versioned_table::purchased_groups, versioned_table::subscription_resources}) {
        const auto removed =
            run(fmt::format("DELETE FROM {} WHERE removed_at IS NOT NULL AND removed_at < ?", version_name(table)));
        if (removed > 0) bump_data_version(db_, table);
        c.removed_items += removed;
    }
    // A run still referenced by a kept change or sample stays (its finish time may precede a later change's).
    c.runs = run("DELETE FROM sync_runs WHERE finished_at < ? AND id NOT IN (SELECT run_id FROM changes) "
                 "AND id NOT IN (SELECT run_id FROM quota_samples)");
    // A pruned sample may have been an item's latest: the next unchanged listing looks again.
    if (c.samples > 0) {
        db_.exec("UPDATE listing_digests SET oldest_sample = 0 WHERE oldest_sample IS NOT NULL");
        bump_data_version(db_, versioned_table::quota_samples);
    }
    if (hook_) c.alerts = hook_->on_prune(db_, cutoff, c.samples + c.removed_items > 0);
    tx.commit();
    return c;
}

}  // namespace subsync::sync
