#include "record_commands.hpp"

#include "commands.hpp"

#include <subsync/daemon/cli.hpp>
#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/exporters/report.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/history.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <cstdio>

namespace subsync::daemon {
namespace {

// Bytes to stdout, or atomically into a file that appears only when complete.
template <class Write>
int write_output(const std::string& output, Write write) {
    if (output.empty() || output == "-") {
        const auto rows = write([](std::string_view b) { std::fwrite(b.data(), 1, b.size(), stdout); });
        std::fflush(stdout);
        (void)rows;
        return exit_ok;
    }
    exporters::atomic_file file(output);
    const auto rows = write([&](std::string_view b) { file.write(b); });
    file.commit();
    fmt::print(stderr, "wrote {} rows to {}\n", rows, output);
    return exit_ok;
}

std::string or_dash(const std::optional<std::string>& v) { return v ? *v : "-"; }

}  // namespace

// `export --table report`: the page every generation holds, as of the newest sync, so it
// matches latest/report.html byte for byte when nothing synced since.
int run_report_export(const std::filesystem::path& config_path, const export_options& opts) {
    if (!opts.format.empty() && opts.format != "html") {
        fmt::print(stderr, "subsyncd export: --table report is HTML; drop --format or write --format html\n");
        return exit_usage;
    }
    if (!opts.as_of.empty() || opts.since || !opts.account.empty()) {
        fmt::print(stderr, "subsyncd export: --table report takes no --as-of, --since or --account\n");
        return exit_usage;
    }
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    auto db = sync::open_snapshot_readonly(cfg->storage.database);
    auto report = exporters::generation_options_from(*cfg).report.value_or(exporters::report_options{});
    report.forecast = cfg->alerts.rules;
    const auto newest = db.execAndGet("SELECT max(finished_at) FROM sync_runs");
    const sync::epoch_ms now = newest.isNull() ? wall_clock_now() : newest.getInt64();
    return write_output(opts.output,
                        [&](const exporters::byte_sink& sink) { return exporters::write_report(db, now, sink, report); });
}

int run_export(const std::filesystem::path& config_path, const export_options& opts) {
    if (opts.table == "report") return run_report_export(config_path, opts);
    const auto table = exporters::parse_table(opts.table);
    const auto format = exporters::parse_format(opts.format.empty() ? "csv" : opts.format);
    if (!table) {
        fmt::print(stderr,
                   "subsyncd export: unknown --table \"{}\" (purchased_groups, subscription_resources, sync_runs, "
                   "alerts, changes, report)\n",
                   opts.table);
        return exit_usage;
    }
    if (!format) {
        fmt::print(stderr, "subsyncd export: unknown --format \"{}\" (csv, json, jsonl)\n", opts.format);
        return exit_usage;
    }
    std::optional<sync::as_of_point> as_of;
    if (!opts.as_of.empty()) {
        as_of = sync::parse_as_of(opts.as_of);
        if (!as_of) {
            fmt::print(stderr, "subsyncd export: --as-of \"{}\" is neither a run id nor an ISO-8601 time such as "
                               "2026-11-25T00:00:00Z\n",
                       opts.as_of);
            return exit_usage;
        }
        if (!exporters::source_of(*table)) {
            fmt::print(stderr, "subsyncd export: --as-of works on purchased_groups and subscription_resources\n");
            return exit_usage;
        }
    }
    if (opts.since && *table != exporters::export_table::changes) {
        fmt::print(stderr, "subsyncd export: --since works on --table changes\n");
        return exit_usage;
    }
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    auto db = sync::open_snapshot_readonly(cfg->storage.database);
    exporters::export_options eo;
    eo.csv = exporters::generation_options_from(*cfg).csv;
    if (!opts.account.empty()) eo.account = opts.account;
    if (opts.since) eo.since_seq = *opts.since;
    return write_output(opts.output, [&](const exporters::byte_sink& sink) {
        if (as_of)
            return exporters::write_rows(*exporters::source_of(*table), *format, sink,
                                         sync::rows_as_of(db, *exporters::source_of(*table), *as_of, eo.account), eo.csv);
        return exporters::write_table(db, *table, *format, sink, eo);
    });
}

namespace {

// The change feed's row writer and columns (docs/exports.md "changes"): json is one object per
// line; a field, old or new the change has not is left out, as in the export.
void print_changes(SQLite::Database& db, const sync::change_filter& f, exporters::export_format format) {
    const auto cols = exporters::export_columns(exporters::export_table::changes);
    const exporters::byte_sink sink = [](std::string_view bytes) { std::fwrite(bytes.data(), 1, bytes.size(), stdout); };
    exporters::row_writer writer(cols, format, sink);
    using sync::cell;
    using sync::field_state;
    auto text = [](std::string_view s) { return cell{field_state::present, 0, std::string(s)}; };
    auto opt = [](const std::optional<std::string>& s) {
        return s ? cell{field_state::present, 0, *s} : cell{field_state::absent, 0, {}};
    };
    sync::for_each_change(db, f, [&](const sync::change_row& c) {
        writer.row({cell{field_state::present, c.seq, {}}, cell{field_state::present, c.run_id, {}},
                    cell{field_state::present, c.time, {}}, text(c.account), text(c.source), text(c.item_key),
                    text(sync::to_string(c.kind)), opt(c.field), opt(c.old_value), opt(c.new_value)});
    });
    writer.finish();
}

// For people: one line per change, under the export's column names.
void print_changes_table(SQLite::Database& db, const sync::change_filter& f) {
    fmt::print("{:<6} {:<20} {:<10} {:<22} {:<8} {:<16} {:<40} {}\n", "run", "time", "account", "source", "kind",
               "field", "id", "old -> new");
    sync::for_each_change(db, f, [&](const sync::change_row& c) {
        std::string line = fmt::format("{:<6} {:<20} {:<10} {:<22} {:<8} {:<16} {:<40} ", c.run_id,
                                       sync::format_iso8601(c.time), c.account, c.source, sync::to_string(c.kind),
                                       c.field.value_or(""), c.item_key);
        if (c.kind == sync::change_kind::changed) line += fmt::format("{} -> {}", or_dash(c.old_value), or_dash(c.new_value));
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stdout);
    });
}

}  // namespace

int run_history(const std::filesystem::path& config_path, const history_options& opts) {
    sync::change_filter f;
    if (!opts.account.empty()) f.account = opts.account;
    if (!opts.item.empty()) f.item = opts.item;
    if (!opts.source.empty()) f.source = opts.source;
    if (!opts.kind.empty()) {
        f.kind = sync::change_kind_named(opts.kind);
        if (!f.kind) {
            fmt::print(stderr, "subsyncd history: --kind must be added, removed or changed, not \"{}\"\n", opts.kind);
            return exit_usage;
        }
    }
    if (!opts.since.empty()) {
        f.since = sync::parse_iso8601(opts.since);
        if (!f.since) {
            fmt::print(stderr, "subsyncd history: --since \"{}\" is not an ISO-8601 time such as 2026-11-01T00:00:00Z\n",
                       opts.since);
            return exit_usage;
        }
    }
    if (opts.format != "table" && opts.format != "json" && opts.format != "csv") {
        fmt::print(stderr, "subsyncd history: --format must be table, json or csv\n");
        return exit_usage;
    }
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    auto db = sync::open_snapshot_readonly(cfg->storage.database);
    if (opts.format == "table") print_changes_table(db, f);
    else print_changes(db, f, opts.format == "json" ? exporters::export_format::jsonl : exporters::export_format::csv);
    std::fflush(stdout);
    return exit_ok;
}

}  // namespace subsync::daemon
