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

#include <cstdio>
#include <map>
#include <set>

namespace subsync::daemon {
namespace {

void out(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

void append_csv_row(std::string& line, const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
        if (i > 0) line += ',';
        exporters::append_csv_cell(line, sync::cell{sync::field_state::present, 0, cells[i]}, sync::column_type::text,
                                   true);
    }
    line += '\n';
}

/// An alert as the alerts export writes it: its columns' cells, in order.
std::vector<sync::cell> alert_cells(const alerting::alert_row& r) {
    using sync::cell;
    using sync::field_state;
    auto text = [](const std::string& s) { return cell{field_state::present, 0, s}; };
    auto text_or_null = [](const std::string& s) {
        return s.empty() ? cell{field_state::null, 0, {}} : cell{field_state::present, 0, s};
    };
    auto time = [](std::optional<std::int64_t> t) {
        return t ? cell{field_state::present, *t, {}} : cell{field_state::null, 0, {}};
    };
    return {text(r.account),          text(r.source),   text(r.item_key),       text(r.kind),
            text(r.threshold),        text(r.state),    text(r.severity),       time(r.since),
            time(r.resolved_at),      text_or_null(r.reason), time(r.last_notified),
            cell{field_state::present, r.notifications, {}}, text(r.summary),
            text(r.detail.empty() ? std::string("{}") : r.detail), time(r.updated_at)};
}

int list_alerts(SQLite::Database& db, const alerts_options& opts) {
    const auto rows = alerting::read_alerts(db, opts.all);
    std::string text;
    if (opts.format == "table") {
        text += fmt::format("{:<8} {:<8} {:<16} {:<10} {:<22} {:<24} {:<9} {:<20} {}\n", "severity", "state", "kind",
                            "account", "source", "id", "threshold", "since", "summary");
        for (const auto& r : rows)
            text += fmt::format("{:<8} {:<8} {:<16} {:<10} {:<22} {:<24} {:<9} {:<20} {}\n", r.severity, r.state,
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

struct attempt_row {
    std::string sink;
    std::int64_t seq = 0;
    std::int64_t time = 0;
    std::string outcome;
    std::int64_t latency_ms = 0;
    std::string error;
    std::string what;  ///< kind state account/id of the notification
};

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
    std::string text;
    const bool json = opts.format == "json";
    const bool csv = opts.format == "csv";
    if (csv) append_csv_row(text, {"sink", "seq", "time", "outcome", "latency_ms", "notification", "error"});
    for (const auto& sink : sinks) {
        if (!opts.sink.empty() && sink != opts.sink) continue;
        const alerting::sink_counts c = counts.count(sink) ? counts[sink] : alerting::sink_counts{sink};
        const auto pending = c.pending, delivered = c.delivered, dead = c.dead;
        const bool known = configured.count(sink) > 0;
        std::vector<attempt_row> attempts;
        for (auto& a : ob.attempts(sink, static_cast<std::int64_t>(opts.limit)))
            attempts.push_back({sink, a.batch, a.time, std::move(a.outcome), a.latency_ms, std::move(a.error),
                                std::move(a.what)});
        if (json) {
            std::string line = "{\"sink\":";
            sync::append_json_string(line, sink);
            line += fmt::format(",\"configured\":{},\"pending\":{},\"delivered\":{},\"dead\":{},\"attempts\":[",
                                known ? "true" : "false", pending, delivered, dead);
            for (std::size_t i = 0; i < attempts.size(); ++i) {
                const auto& a = attempts[i];
                line += fmt::format("{}{{\"seq\":{},\"time\":\"{}\",\"outcome\":\"{}\",\"latency_ms\":{},\"error\":",
                                    i ? "," : "", a.seq, sync::format_iso8601(a.time), a.outcome, a.latency_ms);
                if (a.error.empty()) line += "null";
                else sync::append_json_string(line, a.error);
                line += ",\"notification\":";
                sync::append_json_string(line, a.what);
                line += "}";
            }
            text += line + "]}\n";
        } else if (csv) {
            for (const auto& a : attempts)
                append_csv_row(text, {a.sink, std::to_string(a.seq), sync::format_iso8601(a.time), a.outcome,
                                      std::to_string(a.latency_ms), a.what, a.error});
        } else {
            text += fmt::format("sink {}{}: {} pending, {} delivered, {} dead\n", sink,
                                known ? "" : " (no longer configured: its rows are left alone)", pending, delivered,
                                dead);
            for (const auto& a : attempts)
                text += fmt::format("  {:<20} seq={:<6} {:<9} {:>6}ms  {}{}\n", sync::format_iso8601(a.time), a.seq,
                                    a.outcome, a.latency_ms, a.what, a.error.empty() ? "" : "  error: " + a.error);
            if (attempts.empty()) text += "  (no attempts yet)\n";
        }
    }
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
