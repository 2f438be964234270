// The listing stage (snapshot.hpp): one (account, source) listing, staged as its pages arrive,
// and the stored keys it is diffed against. snapshot.cpp applies it.

#include "statements.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <sqlite3.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>

namespace subsync::sync {
namespace {

using detail::bind_or_null;
using detail::column_list;

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

// A column of digests one after another; a NULL, or a length that this code did not write, is none.
void read_digests(const SQLite::Column& blob, std::vector<page_digest>& out) {
    const auto bytes = static_cast<std::size_t>(blob.getBytes());
    if (blob.isNull() || bytes % sizeof(page_digest) != 0) return;
    out.resize(bytes / sizeof(page_digest));
    std::memcpy(out.data(), blob.getBlob(), bytes);
}

}  // namespace

// --- listing_stage -----------------------------------------------------------------------

listing_stage::listing_stage(snapshot_store& store, std::string account, source_kind source)
    : store_(store), account_(std::move(account)), source_(source),
      table_(fmt::format("stage_{}", ++store.stages_)) {
    auto& db = store_.db_;
    const auto cols = columns(source_);
    if (source_ == source_kind::purchased_groups) {
        for (std::size_t i = 0; i < cols.size(); ++i) {
            if (cols[i].name == "quota_used") quota_used_ = i;
            if (cols[i].name == "quota_left") quota_left_ = i;
        }
    }
    try {
        // Untyped columns: a cell is bound with the type it has, as in the snapshot table.
        db.exec(fmt::format("CREATE TEMP TABLE {} (ord INTEGER PRIMARY KEY, item_key TEXT NOT NULL, "
                            "content_hash INTEGER NOT NULL, {}, absent_mask INTEGER NOT NULL)",
                            table_, column_list(cols)));
        db.exec(fmt::format("CREATE TEMP TABLE {}_quota (ord INTEGER PRIMARY KEY, purchase_id TEXT NOT NULL, "
                            "quota_used, quota_left)",
                            table_));
        insert_row_.emplace(db, fmt::format("INSERT INTO temp.{} VALUES (?, ?, ?, {}, ?)", table_,
                                            placeholders(cols.size())));
        insert_quota_.emplace(db, fmt::format("INSERT INTO temp.{}_quota VALUES (?, ?, ?, ?)", table_));
        erase_row_.emplace(db, fmt::format("DELETE FROM temp.{} WHERE ord = ?", table_));
        erase_quota_.emplace(db, fmt::format("DELETE FROM temp.{}_quota WHERE ord = ?", table_));

        SQLite::Statement runs(db, "SELECT pages, items FROM sync_runs WHERE account = ? AND source = ? AND "
                                   "status <> 'failed' ORDER BY id DESC LIMIT 1");
        runs.bind(1, account_);
        runs.bind(2, std::string(to_string(source_)));
        if (runs.executeStep()) {
            previous_pages_ = runs.getColumn(0).getInt();
            previous_items_ = runs.getColumn(1).getInt64();
        }
        SQLite::Statement digests(db, "SELECT digests, items, oldest_sample, unfiltered_digests FROM listing_digests "
                                      "WHERE account = ? AND source = ?");
        digests.bind(1, account_);
        digests.bind(2, std::string(to_string(source_)));
        if (digests.executeStep()) {
            read_digests(digests.getColumn(0), previous_digests_);
            previous_digest_items_ = digests.getColumn(1).getInt64();
            if (!digests.getColumn(2).isNull()) oldest_sample_ = digests.getColumn(2).getInt64();
            read_digests(digests.getColumn(3), previous_unfiltered_);
            if (previous_unfiltered_.size() != previous_digests_.size()) previous_unfiltered_.clear();
        }
    } catch (...) {
        drop();  // the destructor will not run
        throw;
    }
}

listing_stage::~listing_stage() { drop(); }

void listing_stage::load() {
    while (!load_some(std::numeric_limits<std::size_t>::max())) {
    }
}

bool listing_stage::load_some(std::size_t rows) {
    if (loaded_) return true;
    auto& db = store_.db_;
    const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(rows, std::numeric_limits<std::int64_t>::max()));
    // One chunk of `sql` (account, key bound, limit) in key order, from where the last one of
    // this phase stopped: each has a statement of its own, so nothing is held open while the
    // caller lets other work run on this connection. True when the phase has more rows.
    auto chunk = [&](std::string_view sql, auto&& row) {
        SQLite::Statement q(db, fmt::format(fmt::runtime(sql), load_after_ ? ">" : ">="));
        q.bind(1, account_);
        q.bind(2, load_after_.value_or(std::string()));
        q.bind(3, limit);
        std::int64_t read = 0;
        while (q.executeStep()) {
            const SQLite::Column k = q.getColumn(0);
            const std::string_view key(k.getText(), static_cast<std::size_t>(k.getBytes()));
            row(key, q);
            if (++read == limit) load_after_.emplace(key);
        }
        return read == limit;
    };
    if (!samples_phase_) {
        // Sized for the last listing at once: growing to 100k keys rehashed the map 17 times.
        if (items_.size() == 0) items_.reserve(static_cast<std::size_t>(std::max<std::int64_t>(previous_items_, 0)));
        const bool more = chunk(fmt::format("SELECT item_key, content_hash, removed_at IS NOT NULL FROM {} WHERE "
                                            "account = ? AND item_key {{}} ? ORDER BY item_key LIMIT ?",
                                            to_string(source_)),
                                [&](std::string_view key, SQLite::Statement& q) {
                                    entry& e = *items_.try_emplace(key).first;
                                    e = {};
                                    e.stored_hash = static_cast<std::uint64_t>(q.getColumn(1).getInt64());
                                    e.stored = true;
                                    e.removed = q.getColumn(2).getInt() != 0;
                                });
        if (more) return false;
        if (!quota_used_) return loaded_ = true;
        samples_phase_ = true;
        samples_.reserve(items_.size());  // about one per purchase: grown once, not by doubling
        load_after_.reset();
    }
    // Each purchase's latest sample, one ordered pass over quota_latest's primary key: one row per
    // purchase however long the series has grown. A lookup per purchase cost 12.8 % of a
    // re-sync's CPU (bench/README.md finding 6); a GROUP BY over the series read every sample.
    auto opt = [](const SQLite::Column& c) {
        return c.isNull() ? std::nullopt : std::optional<std::int64_t>(c.getInt64());
    };
    const bool more = chunk("SELECT purchase_id, time, quota_used, quota_left FROM quota_latest WHERE "
                            "account = ? AND purchase_id {} ? ORDER BY purchase_id LIMIT ?",
                            [&](std::string_view key, SQLite::Statement& q) {
                                entry* e = items_.find(key);
                                if (!e) return;  // its row was pruned: sampled afresh if listed again
                                const auto used = opt(q.getColumn(2)), left = opt(q.getColumn(3));
                                if (e->sample == 0) {
                                    samples_.emplace_back();
                                    e->sample = static_cast<std::uint32_t>(samples_.size());
                                }
                                samples_[e->sample - 1] = {q.getColumn(1).getInt64(), used.value_or(0),
                                                           left.value_or(0), used.has_value(), left.has_value()};
                            });
    if (more) return false;
    return loaded_ = true;
}

void listing_stage::drop() noexcept {
    // Finalized first: a prepared statement on a table keeps DROP from running.
    insert_row_.reset();
    insert_quota_.reset();
    erase_row_.reset();
    erase_quota_.reset();
    try {
        store_.db_.exec(fmt::format("DROP TABLE IF EXISTS temp.{}; DROP TABLE IF EXISTS temp.{}_quota", table_,
                                    table_));
    } catch (const std::exception& e) {
        // Harmless but worth a line: the table keeps its temporary-file space until the daemon exits.
        logging::warn("cannot drop the staging table", {{"table", table_}, {"error", e.what()}});
    }
}

void listing_stage::mark_incomplete(std::string reason) {
    if (complete_) reason_ = std::move(reason);
    complete_ = false;
}

void listing_stage::reset() {
    auto& db = store_.db_;
    db.exec(fmt::format("DELETE FROM temp.{}; DELETE FROM temp.{}_quota", table_, table_));
    items_.retain_if([](std::string_view, entry& e) {
        e.position = -1;
        e.quota_as_sampled = false;
        return e.stored;
    });
    listed_ = 0;
    samples_beside_ = 0;
    complete_ = true;
    reason_.clear();
    pages = 0;
    digests_.clear();
    unfiltered_.clear();
    unchanged_ = false;
}

void listing_stage::set_digest(int page_no, const page_digest& kept, const page_digest& unfiltered) {
    if (page_no < 1) throw std::invalid_argument("listing_stage::set_digest: pages are numbered from 1");
    const auto i = static_cast<std::size_t>(page_no - 1);
    if (digests_.size() <= i) {
        digests_.resize(i + 1);
        unfiltered_.resize(i + 1);
    }
    digests_[i] = kept;
    unfiltered_[i] = unfiltered;
}

const page_digest* listing_stage::previous_digest(int page_no) const noexcept {
    if (page_no < 1 || static_cast<std::size_t>(page_no) > previous_digests_.size()) return nullptr;
    return &previous_digests_[static_cast<std::size_t>(page_no - 1)];
}

const page_digest* listing_stage::previous_unfiltered_digest(int page_no) const noexcept {
    if (page_no < 1 || static_cast<std::size_t>(page_no) > previous_unfiltered_.size()) return nullptr;
    const page_digest& d = previous_unfiltered_[static_cast<std::size_t>(page_no - 1)];
    return d == page_digest{} ? nullptr : &d;
}

void listing_stage::mark_unchanged() {
    if (!complete_ || listed_ != 0 || digests_ != previous_digests_)
        throw std::logic_error("listing_stage::mark_unchanged: not the last complete listing's pages, untouched");
    unchanged_ = true;
    listed_ = previous_digest_items_;
}

void listing_stage::add(std::int64_t first, std::span<const purchased_group> items) { add_records(first, items); }
void listing_stage::add(std::int64_t first, std::span<const subscription_resource> items) {
    add_records(first, items);
}

template <class Record>
void listing_stage::add_records(std::int64_t first, std::span<const Record> items) {
    load();
    if (sqlite3_get_autocommit(store_.db_.getHandle()) == 0)
        throw std::logic_error("listing_stage::add inside a transaction: its rollback would unstage counted rows");
    // One transaction per page, on the temporary database only: a deferred BEGIN locks
    // nothing of the snapshot.
    SQLite::Transaction tx(store_.db_);
    for (std::size_t i = 0; i < items.size(); ++i) {
        to_cells(items[i], cells_);
        stage_cells(first + static_cast<std::int64_t>(i), item_key(items[i]));
    }
    tx.commit();
}

namespace {

// "pages 3 and 7" for fetched pages, "items 2 and 4" for a listing passed whole.
std::string where_listed(std::int64_t a, std::int64_t b) {
    const auto page = [](std::int64_t p) { return p >> 32; };
    if (page(a) > 0 && page(a) != page(b))
        return fmt::format("pages {} and {}", std::min(page(a), page(b)), std::max(page(a), page(b)));
    const auto index = [](std::int64_t p) { return p & 0xffffffff; };
    return fmt::format("{} {} and {}", page(a) > 0 ? fmt::format("page {}, items", page(a)) : std::string("items"),
                       std::min(index(a), index(b)) + 1, std::max(index(a), index(b)) + 1);
}

std::optional<std::int64_t> number_of(const cell& c) {
    return c.state == field_state::present ? std::optional<std::int64_t>(c.number) : std::nullopt;
}

}  // namespace

void listing_stage::stage_cells(std::int64_t position, const std::string& k) {
    entry& e = *items_.try_emplace(k).first;
    if (e.position >= 0) {
        // Pages come in any order, so the reason names both places: the same listing gives the
        // same reason whichever page arrived first.
        mark_incomplete(fmt::format("{} {} listed twice ({})",
                                    source_ == source_kind::purchased_groups ? "id" : "resource", k,
                                    where_listed(e.position, position)));
        if (position > e.position) return;  // the first listing of a key is the one kept
        for (auto* st : {&*erase_row_, &*erase_quota_}) {
            st->bind(1, e.position);
            st->exec();
            st->reset();
        }
        e.quota_as_sampled = false;
    } else {
        ++listed_;
    }
    e.position = position;

    bool staged_quota = false;
    if (quota_used_ && quota_left_) {
        const auto used = number_of(cells_[*quota_used_]);
        const auto left = number_of(cells_[*quota_left_]);
        // The series must show every change and, for forecasts, stay dense enough in time: a
        // quota that differs from the latest sample is sampled now; an unchanged one when that
        // sample has aged past the interval, which apply() decides at the sync's own time.
        if (used || left) {
            const sample* smp = sample_of(e);
            if (smp && smp->used_value() == used && smp->left_value() == left) e.quota_as_sampled = true;
            else {
                stage_quota(position, k, used, left);
                staged_quota = true;
            }
        }
    }

    const std::uint64_t hash = content_hash(cells_);
    if (e.stored && !e.removed && e.stored_hash == hash) {  // unchanged: nothing to write
        samples_beside_ += staged_quota ? 1 : 0;  // its sample had been pruned
        return;
    }

    const auto cols = columns(source_);
    auto& ins = *insert_row_;
    ins.bind(1, position);
    ins.bind(2, k);
    ins.bind(3, static_cast<std::int64_t>(hash));
    const auto absent = bind_cells(ins, 4, cols, cells_);
    ins.bind(4 + static_cast<int>(cols.size()), absent);
    ins.exec();
    ins.reset();
    ins.clearBindings();  // bindNoCopy pointed into cells_
}

void listing_stage::stage_quota(std::int64_t position, const std::string& key, std::optional<std::int64_t> used,
                                std::optional<std::int64_t> left) {
    auto& q = *insert_quota_;
    q.bind(1, position);
    q.bind(2, key);
    bind_or_null(q, 3, used);
    bind_or_null(q, 4, left);
    q.exec();
    q.reset();
}

std::optional<epoch_ms> listing_stage::stage_aged_samples(epoch_ms now) {
    const auto interval = store_.opts_.quota_sample_interval.count();
    std::optional<epoch_ms> oldest;
    items_.for_each([&](std::string_view k, const entry& e) {
        const sample* smp = sample_of(e);
        if (e.position < 0 || !e.quota_as_sampled || !smp) return;
        if (now - smp->at >= interval) {
            stage_quota(e.position, std::string(k), smp->used_value(), smp->left_value());
            ++samples_beside_;
        } else {
            oldest = std::min(oldest.value_or(smp->at), smp->at);
        }
    });
    return oldest;
}

}  // namespace subsync::sync
