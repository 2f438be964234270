#pragma once

#include <subsync/sync/records.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

/// How a column's value is typed in SQLite and rendered in exports.
enum class column_type {
    text,     ///< TEXT
    integer,  ///< INTEGER
    time,     ///< INTEGER epoch ms; ISO-8601 UTC in exports
    boolean,  ///< INTEGER 0/1; true/false in exports
    json,     ///< TEXT holding compact JSON (arrays such as group_domains, tag_list)
};

/// One API field as stored in the snapshot and written to exports.
struct column {
    std::string_view name;
    column_type type;
};

/// One field's value, whatever its type: text/json in `text`, the rest in `number`.
struct cell {
    field_state state = field_state::absent;
    std::int64_t number = 0;
    std::string text;

    friend bool operator==(const cell&, const cell&) = default;
};

/// The API fields of a source, in the documented export order. The snapshot
/// tables hold exactly these columns (plus bookkeeping), in this order.
[[nodiscard]] std::span<const column> columns(source_kind k) noexcept;

/// Flattens a record into cells, one per column of its source.
void to_cells(const purchased_group& g, std::vector<cell>& out);
void to_cells(const subscription_resource& r, std::vector<cell>& out);

/// A stable 64-bit hash of a row's cells (FNV-1a over a typed encoding), so an
/// unchanged item can be recognised without reading it back.
[[nodiscard]] std::uint64_t content_hash(const std::vector<cell>& cells) noexcept;

/// The cell as a typed JSON literal: `"text"`, `42`, `true`, `null`, or the
/// raw JSON of a json column. Times stay epoch ms. An absent cell renders as `null`.
void append_json_literal(std::string& out, const cell& c, column_type t);

/// Appends `s` as a JSON string literal, escaped per RFC 8259.
void append_json_string(std::string& out, std::string_view s);

}  // namespace subsync::sync

namespace subsync::sync {

/// How append_json_object renders time columns.
enum class time_style { epoch_millis, iso8601 };

/// Appends `{"name": value, ...}` in column order; absent cells are left out,
/// null cells are `null`, so the two stay distinguishable.
void append_json_object(std::string& out, std::span<const column> cols, const std::vector<cell>& cells,
                        time_style times);

}  // namespace subsync::sync
