#pragma once

#include <subsync/config/config.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/fetch.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>

#include <chrono>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace subsync::sync {

/// What one (account, source) sync did; one row of `sync_runs`.
struct run_record {
    std::int64_t id = 0;
    std::string account;
    source_kind source = source_kind::purchased_groups;
    std::string status;  ///< "ok" | "failed" | "incomplete"
    int pages = 0;
    std::int64_t items = 0;
    std::int64_t added = 0;
    std::int64_t changed = 0;
    std::int64_t removed = 0;
    std::string error;
    epoch_ms started = 0;
    epoch_ms finished = 0;
    int notifications = 0;  ///< alert notifications queued in the same transaction
};

/// Reads a row's cells back from a statement whose first columns are the
/// source's columns followed by `absent_mask` (as the snapshot stores them).
void read_cells(SQLite::Statement& stmt, std::span<const column> cols, int first_index, std::vector<cell>& out);

/// Opens a snapshot database for reading only (exports, history): WAL lets it
/// read while a sync writes.
[[nodiscard]] SQLite::Database open_snapshot_readonly(const std::filesystem::path& file);

/// How the store writes; defaults suit tests and the CLI.
struct store_options {
    std::chrono::milliseconds busy_timeout{10000};
    /// A purchase's quota is sampled when it changed, or when its last sample is this old.
    std::chrono::milliseconds quota_sample_interval{std::chrono::hours(1)};
};

/// What prune() deleted.
struct prune_counts {
    std::int64_t runs = 0;
    std::int64_t changes = 0;
    std::int64_t samples = 0;
    std::int64_t removed_items = 0;
    std::int64_t alerts = 0;  ///< resolved alerts, finished notifications and delivery attempts
};

/// The SQLite snapshot: current rows, change history and sync runs.
/// Every apply is one IMMEDIATE transaction; an exception rolls it back whole.
class snapshot_store {
public:
    /// The schema version this binary writes (`PRAGMA user_version`).
    static constexpr int schema_version = 3;

    /// Opens or creates the database (mode 0600, WAL, synchronous=FULL) and
    /// migrates it forward. Throws when it cannot, or when the file was written
    /// by a newer subsyncd.
    explicit snapshot_store(const std::filesystem::path& file, store_options opts = {});

    /// Opens `cfg.database` with the config's busy timeout and sampling interval.
    explicit snapshot_store(const config::storage_config& cfg);

    /// Applies a fetched listing: inserts new items, updates changed ones field
    /// by field, and, only when the listing is complete, marks missing ones removed.
    /// With `dry_run` the transaction is rolled back: the counts say what would change.
    run_record apply(std::string_view account, const listing<purchased_group>& l, epoch_ms started, epoch_ms finished,
                     bool dry_run = false);
    run_record apply(std::string_view account, const listing<subscription_resource>& l, epoch_ms started,
                     epoch_ms finished, bool dry_run = false);

    /// Records a failed run; no item is touched. `error_kind` ("auth", "network", …) lets
    /// auth_failing tell a refused credential apart. With `dry_run` nothing is written.
    run_record record_failure(std::string_view account, source_kind source, const std::string& error,
                              epoch_ms started, epoch_ms finished, bool dry_run = false,
                              std::string_view error_kind = {});

    /// Evaluates the alert rules of `cfg` in every apply and record_failure transaction, so a
    /// notification commits with the change that caused it. `cfg` is borrowed; nullptr = off.
    void set_alerts(const config::alerts_config* cfg) noexcept { alerts_ = cfg; }

    /// Deletes history older than `cutoff`: changes, sync runs, quota samples,
    /// items removed before it, resolved alerts and delivered notifications. Current items and everything after the
    /// cutoff are kept, so as-of stays exact for any run inside the window.
    prune_counts prune(epoch_ms cutoff);

    [[nodiscard]] SQLite::Database& database() noexcept { return db_; }

private:
    template <class Record>
    run_record apply_listing(std::string_view account, source_kind source, const listing<Record>& l,
                             epoch_ms started, epoch_ms finished, bool dry_run);

    void sample_quotas(std::string_view account, const listing<purchased_group>& l, std::int64_t run_id,
                       epoch_ms now);

    store_options opts_;
    SQLite::Database db_;
    const config::alerts_config* alerts_ = nullptr;
};

}  // namespace subsync::sync
