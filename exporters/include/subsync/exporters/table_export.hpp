#pragma once

#include <subsync/sync/columns.hpp>
#include <subsync/sync/history.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::exporters {

enum class export_format { csv, json, jsonl };

/// Parses "csv" | "json" | "jsonl".
[[nodiscard]] std::optional<export_format> parse_format(std::string_view s);
[[nodiscard]] std::string_view extension(export_format f) noexcept;

/// What can be exported.
enum class export_table { purchased_groups, subscription_resources, sync_runs, changes, alerts };

/// Parses a table name as written in docs/exports.md.
[[nodiscard]] std::optional<export_table> parse_table(std::string_view s);
[[nodiscard]] std::string_view to_string(export_table t) noexcept;
/// The item table's source, for the two item tables.
[[nodiscard]] std::optional<sync::source_kind> source_of(export_table t) noexcept;

/// CSV conventions; the defaults are RFC 4180 with formula injection neutralised.
struct csv_style {
    bool bom = false;   ///< start with a UTF-8 BOM (helps some spreadsheet programs detect UTF-8)
    bool crlf = false;  ///< end lines with CR LF instead of LF
    bool neutralise_formulas = true;
};

struct export_options {
    std::optional<std::string> account;     ///< only this account's rows
    std::optional<std::int64_t> since_seq;  ///< changes: only seq > since_seq
    std::optional<std::int64_t> after_run;  ///< sync_runs: only id > after_run
    std::optional<std::string> item_key;    ///< item tables: only this item (with `account`)
    csv_style csv;
};

/// The columns of `table` as exported, in the documented order (docs/exports.md): what every
/// format writes and what a destination (destinations/) stores.
[[nodiscard]] std::vector<sync::column> export_columns(export_table table);

/// Receives one exported row's cells, in export_columns() order, and for the item tables the
/// row's item key (docs/schema.md; empty for the other tables).
using row_visitor = std::function<void(const std::vector<sync::cell>& cells, std::string_view item_key)>;

/// Reads the rows write_table() would write (same order, same filters, same null/absent
/// cells) and hands each to `visit`; returns the row count.
std::int64_t for_each_row(SQLite::Database& db, export_table table, const row_visitor& visit,
                          const export_options& opts = {});

/// Receives the export bytes in chunks (a file, stdout, a test buffer).
using byte_sink = std::function<void(std::string_view)>;

/// Formats rows of one table for one format; every export path (live tables, as-of rebuilds,
/// runs, the change feed) and the `alerts` and `history` commands go through it, so they agree
/// byte for byte and name every field alike.
class row_writer {
public:
    /// Writes the CSV header (or the JSON array's opening) at once. `sink` is borrowed.
    row_writer(std::span<const sync::column> cols, export_format format, const byte_sink& sink,
               const csv_style& csv = {});
    /// One row, `cells` in `cols` order.
    void row(const std::vector<sync::cell>& cells);
    /// Closes a JSON array and hands over what is buffered; returns the rows written.
    std::int64_t finish();

private:
    void end_line();

    std::span<const sync::column> cols_;
    export_format format_;
    const byte_sink& sink_;
    csv_style csv_;
    std::string buf_;
    std::int64_t rows_ = 0;
};

/// Streams a table to `sink`, ordered by (account, key), by run id for
/// sync_runs, by seq for changes, by (account, source, id, kind, threshold)
/// for alerts; memory does not grow with the table.
/// Returns the row count.
std::int64_t write_table(SQLite::Database& db, export_table table, export_format format, const byte_sink& sink,
                         const export_options& opts = {});

/// Writes item rows already in memory (an as-of rebuild) exactly as write_table would.
std::int64_t write_rows(sync::source_kind table, export_format format, const byte_sink& sink,
                        const std::vector<sync::table_row>& rows, const csv_style& csv = {});

/// Appends one CSV cell: RFC 4180 quoting; with `neutralise`, a text cell
/// starting with = + - @ TAB or CR is prefixed with ' so spreadsheets show it
/// instead of evaluating it. Numbers, times and JSON cells are never touched.
void append_csv_cell(std::string& out, const sync::cell& c, sync::column_type t, bool neutralise = true);

}  // namespace subsync::exporters
