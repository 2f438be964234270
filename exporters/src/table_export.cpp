#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

namespace subsync::exporters {

using sync::cell;
using sync::column_type;
using sync::field_state;

std::optional<export_format> parse_format(std::string_view s) {
    if (s == "csv") return export_format::csv;
    if (s == "json") return export_format::json;
    if (s == "jsonl") return export_format::jsonl;
    return std::nullopt;
}

std::string_view extension(export_format f) noexcept {
    switch (f) {
        case export_format::csv: return "csv";
        case export_format::json: return "json";
        case export_format::jsonl: return "jsonl";
    }
    return "";
}

std::optional<sync::source_kind> parse_table(std::string_view s) {
    for (auto k : {sync::source_kind::purchased_groups, sync::source_kind::subscriptions})
        if (s == sync::to_string(k)) return k;
    return std::nullopt;
}

namespace {

void append_csv_text(std::string& out, std::string_view s, bool neutralise) {
    const bool formula = neutralise && !s.empty() &&
                         (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r');
    const bool quote = formula || s.find_first_of(",\"\r\n") != std::string_view::npos;
    if (!quote) {
        out += s;
        return;
    }
    out += '"';
    if (formula) out += '\'';
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

}  // namespace

void append_csv_cell(std::string& out, const cell& c, column_type t) {
    if (c.state != field_state::present) return;  // null and absent are both an empty cell
    switch (t) {
        case column_type::text: append_csv_text(out, c.text, true); break;
        case column_type::json: append_csv_text(out, c.text, false); break;  // starts with '[' or '{'
        case column_type::integer: out += std::to_string(c.number); break;
        case column_type::time: out += sync::format_iso8601(c.number); break;
        case column_type::boolean: out += c.number != 0 ? "true" : "false"; break;
    }
}

std::int64_t write_table(SQLite::Database& db, sync::source_kind table, export_format format, const byte_sink& sink,
                         const export_options& opts) {
    const auto cols = sync::columns(table);
    std::string names;
    for (const auto& c : cols) names += fmt::format(", {}", c.name);
    SQLite::Statement q(db, fmt::format("SELECT account{}, absent_mask FROM {} WHERE removed_at IS NULL{} "
                                        "ORDER BY account, item_key",
                                        names, sync::to_string(table), opts.account ? " AND account = ?" : ""));
    if (opts.account) q.bind(1, *opts.account);

    std::string buf;
    auto flush_if_full = [&] {
        if (buf.size() >= (256u << 10)) {
            sink(buf);
            buf.clear();
        }
    };
    if (format == export_format::csv) {
        buf += "account";
        for (const auto& c : cols) fmt::format_to(std::back_inserter(buf), ",{}", c.name);
        buf += '\n';
    } else if (format == export_format::json) {
        buf += '[';
    }

    std::vector<cell> cells;
    std::int64_t rows = 0;
    while (q.executeStep()) {
        sync::read_cells(q, cols, 1, cells);
        const std::string account = q.getColumn(0).getString();
        if (format == export_format::csv) {
            append_csv_text(buf, account, true);
            for (std::size_t i = 0; i < cols.size(); ++i) {
                buf += ',';
                append_csv_cell(buf, cells[i], cols[i].type);
            }
            buf += '\n';
        } else {
            if (format == export_format::json) buf += rows == 0 ? "\n" : ",\n";
            // {"account": ..., then the API's fields in column order}
            std::string object;
            sync::append_json_object(object, cols, cells, sync::time_style::iso8601);
            buf += "{\"account\":";
            sync::append_json_string(buf, account);
            if (object.size() > 2) {
                buf += ',';
                buf.append(object, 1);
            } else {
                buf += '}';
            }
            if (format == export_format::jsonl) buf += '\n';
        }
        ++rows;
        flush_if_full();
    }
    if (format == export_format::json) buf += rows == 0 ? "]\n" : "\n]\n";
    sink(buf);
    return rows;
}

std::vector<written_file> write_exports(SQLite::Database& db, const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    // One read transaction: all files show the same snapshot even while a sync commits.
    SQLite::Transaction read_tx(db);
    std::vector<written_file> out;
    for (auto table : {sync::source_kind::purchased_groups, sync::source_kind::subscriptions}) {
        for (auto format : {export_format::csv, export_format::json}) {
            atomic_file file(dir / fmt::format("{}.{}", sync::to_string(table), extension(format)));
            const auto rows = write_table(db, table, format, [&](std::string_view b) { file.write(b); });
            file.commit();
            out.push_back({file.target(), rows, file.bytes_written()});
        }
    }
    read_tx.commit();
    return out;
}

}  // namespace subsync::exporters
