// `subsyncd alerts`: what fires, what was delivered where, and redelivery of dead letters.

#include "alert_commands.hpp"

#include "commands.hpp"

#include <subsync/config/load.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/daemon/cli.hpp>
#include <subsync/daemon/lock.hpp>
#include <subsync/daemon/logging.hpp>
#include <subsync/alerting/dispatch.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/alerting/alerts.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <optional>
#include <set>

namespace subsync::daemon {
namespace {

void out(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }


/// An alert as the alerts export writes it: its columns' cells, in order.
std::vector<sync::cell> alert_cells(const alerting::alert_row& r) {
    using sync::cell;
    using sync::field_state;
    auto text = [](std::string_view s) { return cell{field_state::present, 0, std::string(s)}; };
    auto text_or_null = [](const std::string& s) {
        return s.empty() ? cell{field_state::null, 0, {}} : cell{field_state::present, 0, s};
    };
    auto time = [](std::optional<std::int64_t> t) {
        return t ? cell{field_state::present, *t, {}} : cell{field_state::null, 0, {}};
    };
    return {text(r.account),
            text(r.source),
            text(r.item_key),
            text(r.kind),
            text(r.threshold),
            text(alerting::to_string(r.state)),
            text(config::to_string(r.severity)),
            time(r.since),
            time(r.resolved_at),
            text_or_null(r.reason),
            time(r.last_notified),
            cell{field_state::present, r.notifications, {}},
            text(r.summary),
            text(r.detail.empty() ? std::string("{}") : r.detail),
            time(r.updated_at)};
}

int list_alerts(SQLite::Database& db, const alerts_options& opts) {
    const auto rows = alerting::read_alerts(db, opts.all);
    std::string text;
    if (opts.format == "table") {
        text += fmt::format("{:<8} {:<8} {:<16} {:<10} {:<22} {:<24} {:<9} {:<20} {}\n", "severity", "state", "kind",
                            "account", "source", "id", "threshold", "since", "summary");
        for (const auto& r : rows)
            text += fmt::format("{:<8} {:<8} {:<16} {:<10} {:<22} {:<24} {:<9} {:<20} {}\n",
                                config::to_string(r.severity), alerting::to_string(r.state),
                                r.kind, r.account, r.source, r.item_key.empty() ? "-" : r.item_key,
                                r.threshold.empty() ? "-" : r.threshold, sync::format_iso8601(r.since), r.summary);
        if (rows.empty()) text += opts.all ? "(no alerts on record)\n" : "(no alerts firing)\n";
    } else {
        // The export's row writer and columns (docs/exports.md "alerts"): json is one object per
        // line, like `history --format json`; the most urgent first.
        out(text);
        const auto cols = exporters::export_columns(exporters::export_table::alerts);
        const exporters::byte_sink sink = [](std::string_view bytes) { out(std::string(bytes)); };
        exporters::row_writer writer(cols, opts.format == "json" ? exporters::export_format::jsonl
                                                                 : exporters::export_format::csv,
                                     sink);
        for (const auto& r : rows) writer.row(alert_cells(r));
        writer.finish();
        return exit_ok;
    }
    out(text);
    return exit_ok;
}

// An attempt at a group notification, as `alerts --deliveries` shows it in csv and in each sink's
// "attempts" in json: one row writer, the same fields in both (docs/alert-delivery.md).
constexpr std::array<sync::column, 9> attempt_columns{{{"sink", sync::column_type::text},
                                                       {"seq", sync::column_type::integer},
                                                       {"time", sync::column_type::time},
                                                       {"outcome", sync::column_type::text},
                                                       {"latency_ms", sync::column_type::integer},
                                                       {"group", sync::column_type::text},
                                                       {"alerts", sync::column_type::integer},
                                                       {"notification", sync::column_type::text},
                                                       {"error", sync::column_type::text}}};

std::vector<sync::cell> attempt_cells(std::string_view sink, const alerting::attempt_record& a) {
    using sync::cell;
    using sync::field_state;
    auto text = [](std::string_view v) { return cell{field_state::present, 0, std::string(v)}; };
    auto number = [](std::int64_t n) { return cell{field_state::present, n, {}}; };
    const cell null{field_state::null, 0, {}};
    return {text(sink),
            number(a.batch),
            number(a.time),
            text(alerting::to_string(a.outcome)),
            number(a.latency_ms),
            a.group_known ? text(a.group_key) : null,
            number(a.alerts),
            text(a.what),
            a.error.empty() ? null : text(a.error)};
}

// The attempts as json objects, comma-separated, for a sink's "attempts" array.
std::string attempts_json(std::string_view sink, const std::vector<alerting::attempt_record>& attempts) {
    std::string lines;
    const exporters::byte_sink to_lines = [&lines](std::string_view bytes) { lines += bytes; };
    exporters::row_writer writer(attempt_columns, exporters::export_format::jsonl, to_lines);
    for (const auto& a : attempts) writer.row(attempt_cells(sink, a));
    writer.finish();
    while (!lines.empty() && lines.back() == '\n') lines.pop_back();
    std::replace(lines.begin(), lines.end(), '\n', ',');  // a json string never holds a raw newline
    return lines;
}

int list_deliveries(SQLite::Database& db, const config::config& cfg, const alerts_options& opts) {
    std::set<std::string> configured;
    for (const auto& s : alerting::effective_sinks(cfg.alerts)) configured.insert(s.name);
    std::set<std::string> sinks = configured;
    const alerting::outbox ob(db);
    std::map<std::string, alerting::sink_counts> counts;
    for (auto& c : ob.counts()) {
        sinks.insert(c.sink);
        counts[c.sink] = std::move(c);
    }
    const bool json = opts.format == "json";
    const bool csv = opts.format == "csv";
    std::string text;
    const exporters::byte_sink to_text = [&text](std::string_view bytes) { text += bytes; };
    std::optional<exporters::row_writer> csv_writer;
    if (csv) csv_writer.emplace(attempt_columns, exporters::export_format::csv, to_text);
    for (const auto& sink : sinks) {
        if (!opts.sink.empty() && sink != opts.sink) continue;
        const alerting::sink_counts c = counts.count(sink) ? counts[sink] : alerting::sink_counts{sink};
        const bool known = configured.count(sink) > 0;
        const auto attempts = ob.attempts(sink, static_cast<std::int64_t>(opts.limit));
        if (json) {
            text += "{\"sink\":";
            sync::append_json_string(text, sink);
            text += fmt::format(",\"configured\":{},\"pending\":{},\"delivered\":{},\"dead\":{},\"attempts\":[{}]}}\n",
                                known ? "true" : "false", c.pending, c.delivered, c.dead, attempts_json(sink, attempts));
        } else if (csv) {
            for (const auto& a : attempts) csv_writer->row(attempt_cells(sink, a));
        } else {
            text += fmt::format("sink {}{}: {} pending, {} delivered, {} dead\n", sink,
                                known ? "" : " (no longer configured: its rows are left alone)", c.pending,
                                c.delivered, c.dead);
            for (const auto& a : attempts)
                text += fmt::format("  {:<20} seq={:<6} {:<9} {:>6}ms  group \"{}\", {} alert{}, first {}{}\n",
                                    sync::format_iso8601(a.time), a.batch, alerting::to_string(a.outcome), a.latency_ms,
                                    a.group_known ? a.group_key : "(regrouped or pruned)", a.alerts,
                                    a.alerts == 1 ? "" : "s", a.what, a.error.empty() ? "" : "  error: " + a.error);
            if (attempts.empty()) text += "  (no attempts yet)\n";
        }
    }
    if (csv_writer) csv_writer->finish();
    out(text);
    return exit_ok;
}

int redeliver(const config::config& cfg, const alerts_options& opts) {
    const auto sinks = alerting::effective_sinks(cfg.alerts);
    if (!opts.sink.empty() &&
        std::none_of(sinks.begin(), sinks.end(), [&](const auto& s) { return s.name == opts.sink; })) {
        fmt::print(stderr, "subsyncd alerts: --sink \"{}\" is not a configured sink\n", opts.sink);
        return exit_usage;
    }
    std::string holder;
    auto lock = instance_lock::try_acquire(cfg.storage.database, holder);
    sync::snapshot_store store(cfg.storage);
    auto& db = store.database();
    const std::int64_t now = wall_clock_now();
    const std::int64_t requeued = alerting::outbox(db).requeue_dead(opts.sink);
    for (const auto& s : sinks)
        if (opts.sink.empty() || s.name == opts.sink)
            alerting::update_delivery_failed(db, cfg.alerts, s.name, 0, "", now);
    fmt::print("{} dead-lettered notification{} queued again{}\n", requeued, requeued == 1 ? "" : "s",
               opts.sink.empty() ? "" : " for sink " + opts.sink);
    if (!lock) {
        // The daemon owns delivery while it runs: two dispatchers would race on the same rows.
        fmt::print("the running subsyncd delivers them at its next dispatch (SIGUSR1 makes it sync and deliver now)\n");
        return exit_ok;
    }
    alert_records records;
    const auto r = alerting::deliver_for(cfg, db, config::environment::process(), wall_clock_now,
                                         cfg.alerts.flush_timeout, &records);
    for (const auto& s : r.sinks)
        if (opts.sink.empty() || s.sink == opts.sink)
            fmt::print("sink {}: {} delivered, {} failed (will retry), {} dead, {} pending\n", s.sink, s.delivered,
                       s.failed, s.dead, s.pending);
    return exit_ok;
}

}  // namespace

int run_alerts(const std::filesystem::path& config_path, const alerts_options& opts) {
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    if (opts.redeliver) return redeliver(*cfg, opts);
    auto db = sync::open_snapshot_readonly(cfg->storage.database);
    if (db.execAndGet("PRAGMA user_version").getInt() < 3) {
        fmt::print(stderr, "subsyncd alerts: {} has no alert tables yet; run a sync first\n",
                   cfg->storage.database.string());
        return exit_ok;
    }
    if (opts.deliveries) return list_deliveries(db, *cfg, opts);
    return list_alerts(db, opts);
}

}  // namespace subsync::daemon
