#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <array>
#include <charconv>

namespace subsync::exporters {

using sync::cell;
using sync::column;
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

namespace {

constexpr std::array all_tables{export_table::purchased_groups, export_table::subscription_resources,
                                export_table::sync_runs, export_table::changes, export_table::alerts};

using enum column_type;

const std::vector<column> run_columns{
    {"id", integer},    {"account", text}, {"source", text}, {"started_at", time}, {"finished_at", time},
    {"status", text},   {"pages", integer}, {"items", integer}, {"added", integer}, {"changed", integer},
    {"removed", integer}, {"error", text},
};

const std::vector<column> change_columns{
    {"seq", integer},  {"run", integer}, {"time", time},  {"account", text}, {"source", text},
    {"id", text},      {"kind", text},   {"field", text}, {"old", json},     {"new", json},
};

// `detail` is a JSON object: one compact cell in CSV, an object in JSON.
const std::vector<column> alert_columns{
    {"account", text},     {"source", text},       {"id", text},        {"kind", text},
    {"threshold", text},   {"state", text},        {"severity", text},  {"since", time},
    {"resolved_at", time}, {"reason", text},       {"last_notified", time}, {"notifications", integer},
    {"summary", text},     {"detail", json},       {"updated_at", time},
};

std::vector<column> item_columns(sync::source_kind k) {
    std::vector<column> cols{{"account", text}};
    for (const auto& c : sync::columns(k)) cols.push_back(c);
    return cols;
}

void append_csv_text(std::string& out, std::string_view s, bool neutralise) {
    const bool formula = neutralise && !s.empty() &&
                         (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r');
    // One pass over the bytes: find_first_of with a 4-byte set calls memchr once
    // per character in libstdc++ (11 % of an export's CPU, bench/README.md finding 3).
    bool special = false;
    for (const char c : s) {
        if (c == ',' || c == '"' || c == '\r' || c == '\n') {
            special = true;
            break;
        }
    }
    if (!formula && !special) {
        out += s;
        return;
    }
    out += '"';
    if (formula) out += '\'';
    if (!special) {
        out += s;
    } else {
        for (char c : s) {
            if (c == '"') out += '"';
            out += c;
        }
    }
    out += '"';
}

cell text_cell(std::string s) { return cell{field_state::present, 0, std::move(s)}; }

// Columns of a plain table (runs, changes, alerts): SQL NULL is "absent" where the table uses it
// so (a change's old/new), else null. Read into the cells of the row before, reusing their
// buffers: a new string per text cell and row was a sixth of writing a first sync's alerts files.
void read_plain(SQLite::Statement& q, std::span<const column> cols, bool null_is_absent, std::vector<cell>& out) {
    out.resize(cols.size());
    const field_state if_null = null_is_absent ? field_state::absent : field_state::null;
    for (std::size_t i = 0; i < cols.size(); ++i)
        sync::read_cell(q.getColumn(static_cast<int>(i)), cols[i].type, if_null, out[i]);
}

}  // namespace

std::optional<export_table> parse_table(std::string_view s) {
    for (auto t : all_tables)
        if (s == to_string(t)) return t;
    return std::nullopt;
}

std::string_view to_string(export_table t) noexcept {
    switch (t) {
        case export_table::purchased_groups: return "purchased_groups";
        case export_table::subscription_resources: return "subscription_resources";
        case export_table::sync_runs: return "sync_runs";
        case export_table::changes: return "changes";
        case export_table::alerts: return "alerts";
    }
    return "";
}

std::optional<sync::source_kind> source_of(export_table t) noexcept {
    if (t == export_table::purchased_groups) return sync::source_kind::purchased_groups;
    if (t == export_table::subscription_resources) return sync::source_kind::subscriptions;
    return std::nullopt;
}

void append_csv_cell(std::string& out, const cell& c, column_type t, bool neutralise) {
    if (c.state != field_state::present) return;  // null and absent are both an empty cell
    switch (t) {
        case column_type::text: append_csv_text(out, c.text, neutralise); break;
        case column_type::json: append_csv_text(out, c.text, false); break;  // JSON, never a formula
        case column_type::integer: {
            char buf[24];  // std::to_string without the temporary
            const auto r = std::to_chars(buf, buf + sizeof buf, c.number);
            out.append(buf, static_cast<std::size_t>(r.ptr - buf));
            break;
        }
        case column_type::time: sync::append_iso8601(out, c.number); break;
        case column_type::boolean: out += c.number != 0 ? "true" : "false"; break;
    }
}

row_writer::row_writer(std::span<const column> cols, export_format format, const byte_sink& sink, const csv_style& csv)
    : cols_(cols), format_(format), sink_(sink), csv_(csv) {
    if (format_ == export_format::csv) {
        if (csv_.bom) buf_ += "\xEF\xBB\xBF";
        for (std::size_t i = 0; i < cols_.size(); ++i) {
            if (i > 0) buf_ += ',';
            buf_ += cols_[i].name;
        }
        end_line();
    } else if (format_ == export_format::json) {
        buf_ += '[';
    }
}

void row_writer::row(const std::vector<cell>& cells) {
    if (format_ == export_format::csv) {
        for (std::size_t i = 0; i < cols_.size(); ++i) {
            if (i > 0) buf_ += ',';
            append_csv_cell(buf_, cells[i], cols_[i].type, csv_.neutralise_formulas);
        }
        end_line();
    } else {
        if (format_ == export_format::json) buf_ += rows_ == 0 ? "\n" : ",\n";
        sync::append_json_object(buf_, cols_, cells, sync::time_style::iso8601);
        if (format_ == export_format::jsonl) buf_ += '\n';
    }
    ++rows_;
    if (buf_.size() >= (1u << 20)) {  // one write per MiB
        sink_(buf_);
        buf_.clear();
    }
}

std::int64_t row_writer::finish() {
    if (format_ == export_format::json) buf_ += rows_ == 0 ? "]\n" : "\n]\n";
    sink_(buf_);
    buf_.clear();
    return rows_;
}

void row_writer::end_line() { buf_ += csv_.crlf ? "\r\n" : "\n"; }

std::vector<column> export_columns(export_table table) {
    if (auto source = source_of(table)) return item_columns(*source);
    switch (table) {
        case export_table::sync_runs: return run_columns;
        case export_table::alerts: return alert_columns;
        default: return change_columns;
    }
}

std::int64_t for_each_row(SQLite::Database& db, export_table table, const row_visitor& visit,
                          const export_options& opts) {
    const std::string account_filter = opts.account ? " AND account = :account" : "";
    std::vector<cell> cells;
    std::int64_t rows = 0;
    if (auto source = source_of(table)) {
        const auto api = sync::columns(*source);
        std::string names;
        for (const auto& c : api) names += fmt::format(", {}", c.name);
        const std::string key_filter = opts.item_key ? " AND item_key = :key" : "";
        SQLite::Statement q(db, fmt::format("SELECT account{}, absent_mask, item_key FROM {} WHERE removed_at IS NULL{}{} "
                                            "ORDER BY account, item_key",
                                            names, sync::to_string(*source), account_filter, key_filter));
        if (opts.account) q.bind(":account", *opts.account);
        if (opts.item_key) q.bind(":key", *opts.item_key);
        // One cell vector for the whole export: the account and the API cells are read into
        // their slots in place, reusing each cell's buffer (copying the API cells after the
        // account cost a string allocation per cell and row).
        cells.resize(api.size() + 1);
        cells[0].state = field_state::present;
        while (q.executeStep()) {
            const auto account = q.getColumn(0);
            const char* text = account.getText();
            cells[0].text.assign(text, static_cast<std::size_t>(account.getBytes()));
            sync::read_cells(q, api, 1, std::span<cell>(cells).subspan(1));
            visit(cells, q.getColumn(static_cast<int>(api.size()) + 2).getText());
            ++rows;
        }
        return rows;
    }
    const bool runs = table == export_table::sync_runs;
    const bool alerts = table == export_table::alerts;
    const auto& cols = runs ? run_columns : alerts ? alert_columns : change_columns;
    const std::string sql =
        runs ? "SELECT id, account, source, started_at, finished_at, status, pages, items, added, changed, removed, "
               "error FROM sync_runs WHERE id > :after" + account_filter + " ORDER BY id"
        : alerts
            ? "SELECT account, source, item_key, kind, threshold, state, severity, since, resolved_at, reason, "
              "last_notified, notifications, summary, detail, updated_at FROM alerts WHERE 1 = 1" + account_filter +
                  " ORDER BY account, source, item_key, kind, threshold"
            : "SELECT seq, run_id, time, account, source, item_key, kind, field, old_value, new_value FROM changes "
              "WHERE seq > :since" + account_filter + " ORDER BY seq";
    SQLite::Statement q(db, sql);
    if (opts.account) q.bind(":account", *opts.account);
    if (table == export_table::changes) q.bind(":since", static_cast<std::int64_t>(opts.since_seq.value_or(0)));
    if (runs) q.bind(":after", static_cast<std::int64_t>(opts.after_run.value_or(0)));
    while (q.executeStep()) {
        read_plain(q, cols, table == export_table::changes, cells);
        visit(cells, {});
        ++rows;
    }
    return rows;
}

std::int64_t write_table(SQLite::Database& db, export_table table, export_format format, const byte_sink& sink,
                         const export_options& opts) {
    const auto cols = export_columns(table);
    row_writer out(cols, format, sink, opts.csv);
    for_each_row(db, table, [&](const std::vector<cell>& cells, std::string_view) { out.row(cells); }, opts);
    return out.finish();
}

std::int64_t write_rows(sync::source_kind table, export_format format, const byte_sink& sink,
                        const std::vector<sync::table_row>& rows, const csv_style& csv) {
    const auto cols = item_columns(table);
    row_writer out(cols, format, sink, csv);
    std::vector<cell> cells;
    for (const auto& r : rows) {
        cells.clear();
        cells.push_back(text_cell(r.account));
        cells.insert(cells.end(), r.cells.begin(), r.cells.end());
        out.row(cells);
    }
    return out.finish();
}

}  // namespace subsync::exporters
