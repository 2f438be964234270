#pragma once

#include <subsync/config/config.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/detail/key_table.hpp>
#include <subsync/sync/fetch.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

/// How one (account, source) sync ended; a string only in `sync_runs.status`, logs and exports.
enum class run_status {
    ok,          ///< listed completely and applied
    failed,      ///< nothing applied
    incomplete,  ///< applied, but nothing marked removed (the listing did not add up)
};
[[nodiscard]] constexpr std::string_view to_string(run_status s) noexcept {
    return s == run_status::ok ? "ok" : s == run_status::failed ? "failed" : "incomplete";
}
/// `sync_runs.status` read back; none for anything else.
[[nodiscard]] constexpr std::optional<run_status> run_status_named(std::string_view s) noexcept {
    for (const auto r : {run_status::ok, run_status::failed, run_status::incomplete})
        if (to_string(r) == s) return r;
    return std::nullopt;
}

/// Alert notifications a run queued, by alert kind: those of firing alerts and of resolved ones.
struct queued_alerts {
    std::array<int, config::alert_kind_count> firing{};
    std::array<int, config::alert_kind_count> resolved{};

    void add(config::alert_kind kind, bool is_firing) noexcept {
        ++(is_firing ? firing : resolved)[static_cast<std::size_t>(kind)];
    }
    [[nodiscard]] int firing_total() const noexcept { return sum(firing); }
    [[nodiscard]] int resolved_total() const noexcept { return sum(resolved); }
    [[nodiscard]] int total() const noexcept { return firing_total() + resolved_total(); }

private:
    static int sum(const std::array<int, config::alert_kind_count>& counts) noexcept {
        int n = 0;
        for (const int c : counts) n += c;
        return n;
    }
};

/// What one (account, source) sync did; one row of `sync_runs`.
struct run_record {
    std::int64_t id = 0;
    std::string account;
    source_kind source = source_kind::purchased_groups;
    run_status status = run_status::ok;
    int pages = 0;
    std::int64_t items = 0;
    std::int64_t added = 0;
    std::int64_t changed = 0;
    std::int64_t removed = 0;
    std::string error;
    epoch_ms started = 0;
    epoch_ms finished = 0;
    int notifications = 0;  ///< alert notifications queued in the same transaction (queued.total())
    queued_alerts queued;   ///< the same by kind (not stored: this run's process only)
    int retries = 0;        ///< requests sent again (not stored: this run's process only)
    int throttled = 0;      ///< 429 answers from the gateway (not stored, likewise)
    /// Every page came back as the last complete listing had it: nothing was parsed or diffed
    /// (not stored, likewise).
    bool unchanged = false;
};

/// Reads a row's cells back from a statement whose first columns are the
/// source's columns followed by `absent_mask` (as the snapshot stores them).
void read_cells(SQLite::Statement& stmt, std::span<const column> cols, int first_index, std::vector<cell>& out);
/// The same into `out`, which holds cols.size() cells (a slice of a longer row).
void read_cells(SQLite::Statement& stmt, std::span<const column> cols, int first_index, std::span<cell> out);
/// One column's value into `c`, reusing its text's buffer; a NULL becomes `if_null`.
void read_cell(const SQLite::Column& col, column_type type, field_state if_null, cell& c);

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
    std::int64_t alerts = 0;  ///< rows the run hook deleted (alerting: resolved alerts, finished notifications)
};

class snapshot_store;

/// Tables whose writes are counted in `data_versions` (schema 8), so that a reader who must know
/// whether one changed since it last looked (the export's marks) reads a row instead of
/// scanning the table.
enum class versioned_table { alerts, quota_samples, purchased_groups, subscription_resources };
/// Counts a write of `t` in the caller's transaction: every writer of `t` calls it.
void bump_data_version(SQLite::Database& db, versioned_table t);
/// Writes of `t` counted so far.
[[nodiscard]] std::int64_t data_version(SQLite::Database& db, versioned_table t);

/// SHA-256 of one fetched page (its request target and its body as kept); a listing whose every
/// page has the digest it had in the last complete listing is that listing again
/// (docs/decisions.md "An unchanged listing is recognised by its pages"). A page's body as it
/// came has a digest of its own, which recognises it before the filter runs; all zero: unknown.
using page_digest = std::array<std::uint8_t, 32>;

/// What a run changed of the snapshot, for the work that reads it after (the alert rules).
enum class snapshot_delta {
    none,   ///< no row and no quota sample written: an unchanged listing, or a failed run
    items,  ///< rows added, changed or removed, each recorded in `changes` with the run's id; the
            ///< quota samples written are of those items only
    wide,   ///< also quota samples of items this run did not change (aged past the interval)
};

/// Work that must commit with a run (the alerting module's rules and outbox): called inside
/// every apply and record_failure transaction after the run's rows are written, and inside
/// prune()'s. An exception rolls the whole transaction back.
class run_hook {
public:
    virtual ~run_hook() = default;
    /// `delta`: what the run changed of the snapshot. Returns the alert notifications it queued.
    virtual queued_alerts on_run(SQLite::Database& db, std::string_view account, source_kind source, epoch_ms now,
                       std::int64_t run_id, snapshot_delta delta) = 0;
    /// Deletes what it keeps that is older than `cutoff`; returns the rows deleted.
    /// `snapshot_pruned`: the same prune deleted removed items or quota samples.
    virtual std::int64_t on_prune(SQLite::Database& db, epoch_ms cutoff, bool snapshot_pruned) = 0;
};

/// One (account, source) listing, staged as its pages arrive, in any order
/// (bench/README.md finding 4). A new or changed item goes to a temporary table
/// of the store's connection and is dropped from memory; an unchanged one costs
/// one hash comparison and leaves nothing staged. Staging opens no transaction
/// on the snapshot, so other writers of the same connection (alert delivery) go
/// on meanwhile; snapshot_store::apply then writes everything in one.
///
/// Memory is one entry per stored or listed key (the key and its content hash),
/// whatever the size of the items.
class listing_stage {
public:
    /// Creates the stage's temporary tables and reads how many pages the last listing had.
    listing_stage(snapshot_store& store, std::string account, source_kind source);
    ~listing_stage();
    listing_stage(const listing_stage&) = delete;
    listing_stage& operator=(const listing_stage&) = delete;

    /// Reads the key and content hash of every stored item of (account, source), and each
    /// purchase's latest quota sample. The first add() calls it otherwise. From here to
    /// apply() the stage must be the only writer of that (account, source): it diffs against
    /// what it read.
    void load();
    /// Reads the next `rows` stored items (or latest samples) in key order; true once all are
    /// read. A fetch calls it while page 1 and the other connections' handshakes are in flight,
    /// giving the network its turn between calls (100k items take about 100 ms).
    bool load_some(std::size_t rows);

    /// Stages `items`, listed at positions first, first + 1, … of the API's order
    /// (pages may arrive in any order: the position puts them back). A key listed
    /// twice keeps its first position and makes the listing incomplete.
    /// Throws when the temporary table cannot be written (temp directory full), and
    /// std::logic_error inside a transaction (a rollback there would unstage rows
    /// this stage still counts).
    void add(std::int64_t first, std::span<const purchased_group> items);
    void add(std::int64_t first, std::span<const subscription_resource> items);

    /// The listing does not add up: it may add and update items, never remove
    /// one. The first reason is kept.
    void mark_incomplete(std::string reason);
    /// Appends to the reason of an incomplete listing.
    void add_to_reason(std::string_view more) { reason_ += more; }

    /// Forgets everything staged, for a listing fetched again from page 1.
    void reset();

    /// Records the digests of page `page_no` (1-based) as this run fetched it: of its body as
    /// kept, and of its body as it came (all zero when it was filtered as it arrived).
    void set_digest(int page_no, const page_digest& kept, const page_digest& unfiltered = {});
    /// The digest page `page_no` had in the last complete listing that applied; nullptr when
    /// that listing had no such page or none was recorded.
    [[nodiscard]] const page_digest* previous_digest(int page_no) const noexcept;
    /// The digest of that page's body as it came; nullptr when unknown.
    [[nodiscard]] const page_digest* previous_unfiltered_digest(int page_no) const noexcept;
    /// Pages of the last complete listing whose digests are recorded; 0 when there are none.
    [[nodiscard]] int previous_digest_pages() const noexcept { return static_cast<int>(previous_digests_.size()); }
    /// Every page was fetched with the digest it had in the last complete listing: the listing
    /// is that one again, so apply() neither reads the stored keys nor diffs, and counts the
    /// items it had. Only for a complete stage to which nothing was added.
    void mark_unchanged();
    [[nodiscard]] bool unchanged() const noexcept { return unchanged_; }

    /// Position of item `index` of page `page_no` (1-based), for add().
    [[nodiscard]] static std::int64_t position(int page_no, std::size_t index) noexcept {
        return (std::int64_t{page_no} << 32) + static_cast<std::int64_t>(index);
    }

    int pages = 0;  ///< pages fetched, for the run record

    [[nodiscard]] const std::string& account() const noexcept { return account_; }
    [[nodiscard]] source_kind source() const noexcept { return source_; }
    [[nodiscard]] std::int64_t distinct_items() const noexcept { return listed_; }
    [[nodiscard]] bool complete() const noexcept { return complete_; }
    [[nodiscard]] const std::string& incomplete_reason() const noexcept { return reason_; }
    /// Pages of the last listing of (account, source) that applied; 0 if none did.
    [[nodiscard]] int previous_pages() const noexcept { return previous_pages_; }

private:
    friend class snapshot_store;

    /// One stored or listed key: 24 bytes, for there is one per item (docs/decisions.md "Memory").
    struct entry {
        std::uint64_t stored_hash = 0;
        std::int64_t position = -1;  ///< where this run listed it; -1 = not (yet) listed
        std::uint32_t sample = 0;    ///< its latest quota sample: index + 1 in samples_; 0 = none
        bool stored = false;            ///< a row exists (live or removed)
        bool removed = false;           ///< that row is marked removed
        bool quota_as_sampled = false;  ///< listed with the quota of its latest sample: due only by age
    };
    static_assert(sizeof(entry) <= 24, "one per item: keep it small");
    /// A purchase's latest quota sample, read once when the stage opens. Kept beside the entries:
    /// a first sync has none, and its entries stay small.
    struct sample {
        epoch_ms at = 0;
        std::int64_t used = 0, left = 0;
        bool used_set = false, left_set = false;

        [[nodiscard]] std::optional<std::int64_t> used_value() const noexcept {
            return used_set ? std::optional<std::int64_t>(used) : std::nullopt;
        }
        [[nodiscard]] std::optional<std::int64_t> left_value() const noexcept {
            return left_set ? std::optional<std::int64_t>(left) : std::nullopt;
        }
    };
    [[nodiscard]] const sample* sample_of(const entry& e) const noexcept {
        return e.sample == 0 ? nullptr : &samples_[e.sample - 1];
    }

    template <class Record>
    void add_records(std::int64_t first, std::span<const Record> items);
    void stage_cells(std::int64_t position, const std::string& key);
    void stage_quota(std::int64_t position, const std::string& key, std::optional<std::int64_t> used,
                     std::optional<std::int64_t> left);
    /// Queues the samples that only age made due, now that the sync's time is known. Returns
    /// the oldest latest sample among the listed items with a quota once they are written
    /// (`now` for those sampled now); none when no listed item has a quota sample.
    std::optional<epoch_ms> stage_aged_samples(epoch_ms now);
    void drop() noexcept;

    snapshot_store& store_;
    std::string account_;
    source_kind source_;
    std::string table_;  ///< temp table of staged rows; table_ + "_quota" holds quota values
    detail::key_table<entry> items_;
    std::vector<sample> samples_;
    std::int64_t listed_ = 0;
    std::int64_t samples_beside_ = 0;  ///< quota samples staged for items whose row is unchanged
    int previous_pages_ = 0;
    std::int64_t previous_items_ = 0;  ///< distinct items of that listing: what load() reserves for
    std::vector<page_digest> previous_digests_, digests_;  ///< by page number - 1
    std::vector<page_digest> previous_unfiltered_, unfiltered_;  ///< the bodies as they came; the same
    std::int64_t previous_digest_items_ = 0;   ///< distinct items of the listing those digests are of
    std::optional<epoch_ms> oldest_sample_;    ///< of that listing's items with a quota (listing_digests)
    bool unchanged_ = false;
    bool loaded_ = false;
    bool samples_phase_ = false;  ///< load_some() has read every item and now reads samples
    std::optional<std::string> load_after_;  ///< the last key load_some()'s phase read; none: from the start
    bool complete_ = true;
    std::string reason_;
    std::vector<cell> cells_;
    std::optional<SQLite::Statement> insert_row_, insert_quota_, erase_row_, erase_quota_;
    std::optional<std::size_t> quota_used_, quota_left_;  ///< cell indices; purchased groups only
};

/// The SQLite snapshot: current rows, change history and sync runs.
/// Every apply is one IMMEDIATE transaction; an exception rolls it back whole.
class snapshot_store {
public:
    /// The schema version this binary writes (`PRAGMA user_version`).
    static constexpr int schema_version = 10;
    /// The page size of a file this binary creates; an older file keeps the one it was made with.
    static constexpr int new_file_page_size = 16384;
    /// The page cache of the temporary database (the listing stages), in KiB.
    static constexpr int temp_cache_kib = 256;

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

    /// Applies a staged listing, as above, in key order. The stage is spent afterwards.
    run_record apply(listing_stage& stage, epoch_ms started, epoch_ms finished, bool dry_run = false);

    /// Records a failed run; no item is touched. `error_kind` ("auth", "network", …) lets
    /// auth_failing tell a refused credential apart. With `dry_run` nothing is written.
    run_record record_failure(std::string_view account, source_kind source, const std::string& error,
                              epoch_ms started, epoch_ms finished, bool dry_run = false,
                              std::string_view error_kind = {});

    /// Runs `hook` in every apply, record_failure and prune transaction, so an alert
    /// notification commits with the change that caused it. Borrowed; nullptr = none.
    void set_run_hook(run_hook* hook) noexcept { hook_ = hook; }

    /// Deletes history older than `cutoff`: changes, sync runs, quota samples,
    /// items removed before it, resolved alerts and delivered notifications. Current items and everything after the
    /// cutoff are kept, so as-of stays exact for any run inside the window.
    prune_counts prune(epoch_ms cutoff);

    [[nodiscard]] SQLite::Database& database() noexcept { return db_; }

private:
    friend class listing_stage;
    class apply_pass;

    template <class Record>
    run_record apply_listing(std::string_view account, source_kind source, const listing<Record>& l,
                             epoch_ms started, epoch_ms finished, bool dry_run);

    /// Writes the quota samples a listing makes due; returns how many it wrote and the
    /// oldest latest sample of its items with a quota afterwards (listing_digests).
    struct sampled {
        std::int64_t written = 0;
        std::optional<epoch_ms> oldest;
    };
    sampled sample_quotas(listing_stage& stage, std::int64_t run_id, epoch_ms now);
    /// The same for an unchanged listing, from the stored rows (they are what was listed).
    sampled sample_unchanged_quotas(listing_stage& stage, std::int64_t run_id, epoch_ms now);
    /// Keeps the digests of a complete listing fetched page by page; forgets them otherwise.
    void record_digests(listing_stage& stage, std::optional<epoch_ms> oldest_sample);

    store_options opts_;
    SQLite::Database db_;
    run_hook* hook_ = nullptr;
    int stages_ = 0;  ///< names the next stage's temporary tables
};

}  // namespace subsync::sync
