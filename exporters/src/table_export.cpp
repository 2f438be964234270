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

namespace {

// Formats rows of one table for one format; the live export and the as-of
// export feed it the same way, so both produce identical bytes.
class row_writer {
public:
    row_writer(sync::source_kind table, export_format format, const byte_sink& sink)
        : cols_(sync::columns(table)), format_(format), sink_(sink) {
        if (format_ == export_format::csv) {
            buf_ += "account";
            for (const auto& c : cols_) fmt::format_to(std::back_inserter(buf_), ",{}", c.name);
            buf_ += '\n';
        } else if (format_ == export_format::json) {
            buf_ += '[';
        }
    }

    void row(const std::string& account, const std::vector<cell>& cells) {
        if (format_ == export_format::csv) {
            append_csv_text(buf_, account, true);
            for (std::size_t i = 0; i < cols_.size(); ++i) {
                buf_ += ',';
                append_csv_cell(buf_, cells[i], cols_[i].type);
            }
            buf_ += '\n';
        } else {
            if (format_ == export_format::json) buf_ += rows_ == 0 ? "\n" : ",\n";
            // {"account": ..., then the API's fields in column order}
            object_.clear();
            sync::append_json_object(object_, cols_, cells, sync::time_style::iso8601);
            buf_ += "{\"account\":";
            sync::append_json_string(buf_, account);
            if (object_.size() > 2) {
                buf_ += ',';
                buf_.append(object_, 1);
            } else {
                buf_ += '}';
            }
            if (format_ == export_format::jsonl) buf_ += '\n';
        }
        ++rows_;
        if (buf_.size() >= (256u << 10)) {
            sink_(buf_);
            buf_.clear();
        }
    }

    std::int64_t finish() {
        if (format_ == export_format::json) buf_ += rows_ == 0 ? "]\n" : "\n]\n";
        sink_(buf_);
        buf_.clear();
        return rows_;
    }

private:
    std::span<const sync::column> cols_;
    export_format format_;
    const byte_sink& sink_;
    std::string buf_;
    std::string object_;
    std::int64_t rows_ = 0;
};

}  // namespace

std::int64_t write_table(SQLite::Database& db, sync::source_kind table, export_format format, const byte_sink& sink,
                         const export_options& opts) {
    const auto cols = sync::columns(table);
    std::string names;
    for (const auto& c : cols) names += fmt::format(", {}", c.name);
    SQLite::Statement q(db, fmt::format("SELECT account{}, absent_mask FROM {} WHERE removed_at IS NULL{} "
                                        "ORDER BY account, item_key",
                                        names, sync::to_string(table), opts.account ? " AND account = ?" : ""));
    if (opts.account) q.bind(1, *opts.account);
    row_writer out(table, format, sink);
    std::vector<cell> cells;
    while (q.executeStep()) {
        sync::read_cells(q, cols, 1, cells);
        out.row(q.getColumn(0).getString(), cells);
    }
    return out.finish();
}

std::int64_t write_rows(sync::source_kind table, export_format format, const byte_sink& sink,
                        const std::vector<sync::table_row>& rows) {
    row_writer out(table, format, sink);
    for (const auto& r : rows) out.row(r.account, r.cells);
    return out.finish();
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
