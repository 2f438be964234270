#pragma once

#include <subsync/sync/columns.hpp>
#include <subsync/sync/history.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::exporters {

enum class export_format { csv, json, jsonl };

/// Parses "csv" | "json" | "jsonl".
[[nodiscard]] std::optional<export_format> parse_format(std::string_view s);
[[nodiscard]] std::string_view extension(export_format f) noexcept;

/// Parses an export table name: "purchased_groups" | "subscription_resources".
[[nodiscard]] std::optional<sync::source_kind> parse_table(std::string_view s);

struct export_options {
    std::optional<std::string> account;  ///< only this account's rows
};

/// Receives the export bytes in chunks (a file, stdout, a test buffer).
using byte_sink = std::function<void(std::string_view)>;

/// Streams the current rows of a snapshot table, ordered by (account, key),
/// to `sink`; memory does not grow with the table. Returns the row count.
std::int64_t write_table(SQLite::Database& db, sync::source_kind table, export_format format, const byte_sink& sink,
                         const export_options& opts = {});

/// Writes rows already in memory (an as-of rebuild) exactly as write_table would.
std::int64_t write_rows(sync::source_kind table, export_format format, const byte_sink& sink,
                        const std::vector<sync::table_row>& rows);

/// Appends one CSV cell: RFC 4180 quoting; a text cell starting with
/// = + - @ TAB or CR is prefixed with ' so spreadsheets do not run it as a formula.
void append_csv_cell(std::string& out, const sync::cell& c, sync::column_type t);

/// One file written by write_exports().
struct written_file {
    std::filesystem::path path;
    std::int64_t rows = 0;
    std::size_t bytes = 0;
};

/// Writes purchased_groups.{csv,json} and subscription_resources.{csv,json}
/// into `dir` (created if missing), each atomically.
std::vector<written_file> write_exports(SQLite::Database& db, const std::filesystem::path& dir);

}  // namespace subsync::exporters
