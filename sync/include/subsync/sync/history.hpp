#pragma once

#include <subsync/sync/columns.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

/// A point in the snapshot's history: just after run `run_id`, or at `time`
/// (every change made at or before it applied).
struct as_of_point {
    std::optional<std::int64_t> run_id;
    std::optional<epoch_ms> time;
};

/// Parses `--as-of`: a run id (digits) or an ISO-8601 time.
[[nodiscard]] std::optional<as_of_point> parse_as_of(std::string_view text);

/// One item of a table, as stored.
struct table_row {
    std::string account;
    std::string key;
    std::vector<cell> cells;
};

/// The table as it was at `point`: the current rows with every later change
/// undone (newest first), ordered by (account, key) like the live export.
/// Only `account`'s rows when given. Throws on a history row it cannot read.
[[nodiscard]] std::vector<table_row> rows_as_of(SQLite::Database& db, source_kind table, const as_of_point& point,
                                                const std::optional<std::string>& account = std::nullopt);

/// What a row of `changes` records about an item; a string only in `changes.kind` and exports.
enum class change_kind { added, removed, changed };
[[nodiscard]] constexpr std::string_view to_string(change_kind k) noexcept {
    return k == change_kind::added ? "added" : k == change_kind::removed ? "removed" : "changed";
}
/// `changes.kind` read back (its CHECK holds it to these), or a `--kind` argument; none otherwise.
[[nodiscard]] constexpr std::optional<change_kind> change_kind_named(std::string_view s) noexcept {
    for (const auto k : {change_kind::added, change_kind::removed, change_kind::changed})
        if (to_string(k) == s) return k;
    return std::nullopt;
}

/// One row of `changes`. Values are typed JSON literals; nullopt = absent.
struct change_row {
    std::int64_t seq = 0;
    std::int64_t run_id = 0;
    epoch_ms time = 0;
    std::string account;
    std::string source;
    std::string item_key;
    change_kind kind = change_kind::changed;
    std::optional<std::string> field;
    std::optional<std::string> old_value;
    std::optional<std::string> new_value;
};

/// Which changes to list; every filter is optional.
struct change_filter {
    std::optional<std::string> account;
    std::optional<std::string> source;
    std::optional<std::string> item;  ///< item key (purchase id, or region/project/resource)
    std::optional<change_kind> kind;
    std::optional<epoch_ms> since;          ///< time >= since
    std::optional<std::int64_t> after_seq;  ///< seq > after_seq (a feed consumer's resume point)
};

/// Calls `fn` for each matching change in `seq` order.
void for_each_change(SQLite::Database& db, const change_filter& filter, const std::function<void(const change_row&)>& fn);

}  // namespace subsync::sync
