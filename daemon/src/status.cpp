// `subsyncd status`: per (account, source) the last run and whether it is recent, alerts firing,
// the alert outbox per sink, storage sizes and the daemon holding the lock. Read-only: it opens
// the snapshot read-only and never takes the lock, so it runs beside the daemon or a timer.

#include "status.hpp"

#include "commands.hpp"

#include <subsync/config/load.hpp>
#include <subsync/daemon/cli.hpp>
#include <subsync/daemon/lock.hpp>
#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/destinations/postgresql.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace subsync::daemon {
namespace {

/// What `status` concludes about one (account, source); a string only in its output.
enum class verdict { ok, failed, incomplete, stale, never };

std::string_view to_string(verdict v) noexcept {
    switch (v) {
        case verdict::ok: return "ok";
        case verdict::failed: return "failed";
        case verdict::incomplete: return "incomplete";
        case verdict::stale: return "stale";
        case verdict::never: return "never";
    }
    return "never";
}

/// What one (account, source) looks like now.
struct source_line {
    std::string account, source;
    std::optional<sync::run_status> status;  ///< the last run's; none: never ran
    std::optional<std::int64_t> finished;
    std::int64_t items = 0;
    std::string error;
    enum verdict verdict = verdict::never;
    int exit = exit_ok;
};

struct sink_line {
    std::string sink;
    std::int64_t pending = 0, dead = 0;
};

struct storage_sizes {
    std::uintmax_t database = 0, wal = 0, exports = 0;
    std::size_t generations = 0;
};

struct status_report {
    std::vector<source_line> sources;
    std::map<config::severity, std::int64_t> firing;
    std::vector<sink_line> sinks;
    storage_sizes storage;
    std::optional<long> daemon_pid;
    /// Each [[destination]]'s cursor and lag; never part of the exit code (docs/destinations.md).
    std::vector<destinations::destination_lag> destinations;
    bool database_exists = false;
    std::int64_t now = 0;
    std::chrono::milliseconds max_age{0};
    int exit = exit_ok;
};

/// Worst first: a failure needs a person, a stale source may be a stopped timer, an incomplete
/// listing still applied.
int rank(int code) {
    switch (code) {
        case exit_source_failed: return 3;
        case exit_stale: return 2;
        case exit_incomplete: return 1;
        default: return 0;
    }
}

std::uintmax_t file_size_or_zero(const std::filesystem::path& p) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(p, ec);
    return ec ? 0 : n;
}

storage_sizes measure_storage(const config::storage_config& cfg) {
    storage_sizes s;
    s.database = file_size_or_zero(cfg.database);
    for (const char* suffix : {"-wal", "-shm"}) {
        auto p = cfg.database;
        p += suffix;
        s.wal += file_size_or_zero(p);
    }
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(cfg.export_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
        if (it->is_symlink(ec)) continue;
        if (it->is_regular_file(ec)) s.exports += file_size_or_zero(it->path());
    }
    for (std::filesystem::directory_iterator it(cfg.export_dir / "generations", ec), end; !ec && it != end;
         it.increment(ec))
        if (it->is_directory(ec) && !it->path().filename().string().starts_with(".")) ++s.generations;
    return s;
}

/// The last run of each (account, source) in `sync_runs`.
std::map<std::pair<std::string, std::string>, source_line> last_runs(SQLite::Database& db) {
    std::map<std::pair<std::string, std::string>, source_line> out;
    SQLite::Statement q(db,
                        "SELECT account, source, status, finished_at, items, COALESCE(error, '') FROM sync_runs "
                        "WHERE id IN (SELECT MAX(id) FROM sync_runs GROUP BY account, source)");
    while (q.executeStep()) {
        source_line l;
        l.account = q.getColumn(0).getString();
        l.source = q.getColumn(1).getString();
        l.status = sync::run_status_named(q.getColumn(2).getText()).value_or(sync::run_status::failed);
        l.finished = q.getColumn(3).getInt64();
        l.items = q.getColumn(4).getInt64();
        l.error = q.getColumn(5).getString();
        out[{l.account, l.source}] = std::move(l);
    }
    return out;
}

void judge(source_line& l, std::int64_t now, std::chrono::milliseconds max_age) {
    if (!l.status) {
        l.verdict = verdict::never;
        l.exit = exit_stale;
    } else if (*l.status == sync::run_status::failed) {
        l.verdict = verdict::failed;
        l.exit = exit_source_failed;
    } else if (now - l.finished.value_or(0) > max_age.count()) {
        l.verdict = verdict::stale;
        l.exit = exit_stale;
    } else if (*l.status == sync::run_status::incomplete) {
        l.verdict = verdict::incomplete;
        l.exit = exit_incomplete;
    } else {
        l.verdict = verdict::ok;
        l.exit = exit_ok;
    }
}

/// Alerts firing by severity (alerting::read_alerts), and pending / dead notifications per
/// configured sink (alerting::outbox, the owner of the delivery tables).
void read_alert_state(SQLite::Database& db, const config::config& cfg, status_report& r) {
    for (auto s : {config::severity::critical, config::severity::warning, config::severity::info})
        r.firing[s] = 0;
    const bool has_alert_tables = db.execAndGet("PRAGMA user_version").getInt() >= 4;
    if (has_alert_tables)
        for (const auto& a : alerting::read_alerts(db, false)) ++r.firing[a.severity];
    for (const auto& s : alerting::effective_sinks(cfg.alerts)) {
        sink_line line{s.name, 0, 0};
        if (has_alert_tables) {
            const alerting::outbox box(db);
            line.pending = box.count(s.name, alerting::delivery_status::pending);
            line.dead = box.count(s.name, alerting::delivery_status::dead);
        }
        r.sinks.push_back(std::move(line));
    }
}

status_report gather(const config::config& cfg, const config::environment& env, std::chrono::milliseconds max_age) {
    status_report r;
    r.now = wall_clock_now();
    r.max_age = max_age;
    r.daemon_pid = instance_lock::holder_pid(cfg.storage.database);
    r.storage = measure_storage(cfg.storage);
    r.database_exists = std::filesystem::exists(cfg.storage.database);
    std::map<std::pair<std::string, std::string>, source_line> runs;
    if (r.database_exists) {
        try {
            auto db = sync::open_snapshot_readonly(cfg.storage.database);
            runs = last_runs(db);
            read_alert_state(db, cfg, r);
        } catch (const std::exception& e) {
            // Mode 0600, owned by the service user: the usual reason is who runs status.
            throw std::runtime_error(fmt::format("cannot read {}: {} (run status as root or as the service user: "
                                                 "sudo -u subsync subsyncd status)",
                                                 cfg.storage.database.string(), e.what()));
        }
    } else {
        for (auto s : {config::severity::critical, config::severity::warning, config::severity::info})
            r.firing[s] = 0;
        for (const auto& s : alerting::effective_sinks(cfg.alerts)) r.sinks.push_back({s.name, 0, 0});
    }
    for (const auto& a : cfg.accounts)
        for (auto kind : {sync::source_kind::purchased_groups, sync::source_kind::subscriptions}) {
            const std::string source(sync::to_string(kind));
            source_line l;
            if (auto it = runs.find({a.name, source}); it != runs.end()) l = it->second;
            l.account = a.name;
            l.source = source;
            judge(l, r.now, max_age);
            if (rank(l.exit) > rank(r.exit)) r.exit = l.exit;
            r.sources.push_back(std::move(l));
        }
    // Bounded by each destination's connect and statement timeouts; an unreachable one is a line.
    if (r.database_exists) r.destinations = destinations::query_lag(cfg, env);
    else
        for (const auto& d : cfg.destinations) r.destinations.push_back({d.name, false, 0, 0, "no database yet"});
    return r;
}

/// "4m10s ago" style ages, to the second.
std::string age_text(std::int64_t ms) {
    if (ms < 0) ms = 0;
    return config::format_duration(std::chrono::milliseconds(ms / 1000 * 1000));
}

std::string bytes_text(std::uintmax_t n) {
    if (n < 1024) return fmt::format("{} B", n);
    if (n < 1024 * 1024) return fmt::format("{:.1f} KiB", static_cast<double>(n) / 1024);
    if (n < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", static_cast<double>(n) / (1024 * 1024));
    return fmt::format("{:.1f} GiB", static_cast<double>(n) / (1024.0 * 1024 * 1024));
}

std::string verdict_of(int code) {
    switch (code) {
        case exit_ok: return "ok";
        case exit_source_failed: return "failed";
        case exit_incomplete: return "incomplete";
        default: return "stale";
    }
}

std::string render_table(const config::config& cfg, const status_report& r) {
    std::string t;
    if (r.daemon_pid)
        t += fmt::format("daemon     running: pid {} holds {}\n", *r.daemon_pid,
                         instance_lock::path_for(cfg.storage.database).string());
    else t += "daemon     not running (no process holds the database lock)\n";
    t += fmt::format("database   {}{}\n", cfg.storage.database.string(), r.database_exists ? "" : " (not created yet)");
    t += fmt::format("max age    {} (a source whose last run ended earlier is stale)\n\n",
                     config::format_duration(r.max_age));
    t += fmt::format("{:<12} {:<24} {:<10} {:<11} {:>8}  {}\n", "account", "source", "last run", "age", "items",
                     "error");
    for (const auto& l : r.sources) {
        std::string status(l.status ? sync::to_string(*l.status) : to_string(verdict::never));
        if (l.verdict == verdict::stale) status += '*';
        t += fmt::format("{:<12} {:<24} {:<10} {:<11} {:>8}  {}\n", l.account, l.source, status,
                         l.finished ? age_text(r.now - *l.finished) : "-", l.finished ? std::to_string(l.items) : "-",
                         l.error.empty() ? "-" : l.error);
    }
    t += "\nalerts firing: ";
    t += fmt::format("{} critical, {} warning, {} info\n", r.firing.at(config::severity::critical),
                     r.firing.at(config::severity::warning), r.firing.at(config::severity::info));
    for (const auto& s : r.sinks)
        t += fmt::format("sink {:<14} {} pending, {} dead{}\n", s.sink, s.pending, s.dead,
                         s.dead > 0 ? " (subsyncd alerts --redeliver)" : "");
    for (const auto& d : r.destinations)
        t += d.known ? fmt::format("destination {:<13} cursor at change {}, {} change{} behind\n", d.destination,
                                   d.cursor_seq, d.lag_changes, d.lag_changes == 1 ? "" : "s")
                     : fmt::format("destination {:<13} unreachable: {}\n", d.destination, d.error);
    t += fmt::format("storage    database {} (+ {} WAL), exports {} in {} generation{}\n", bytes_text(r.storage.database),
                     bytes_text(r.storage.wal), bytes_text(r.storage.exports), r.storage.generations,
                     r.storage.generations == 1 ? "" : "s");
    t += fmt::format("\nstatus: {} (exit {})", verdict_of(r.exit), r.exit);
    for (const auto& l : r.sources)
        if (l.exit != exit_ok)
            t += fmt::format("\n  {}/{}: {}", l.account, l.source,
                             l.verdict == verdict::never   ? std::string("never synced")
                             : l.verdict == verdict::stale ? fmt::format("last run ended {} ago (more than {})",
                                                                  age_text(r.now - *l.finished),
                                                                  config::format_duration(r.max_age))
                                                    : std::string(to_string(l.verdict)));
    return t + "\n";
}

std::string render_json(const config::config& cfg, const status_report& r) {
    std::string j = fmt::format("{{\"status\":\"{}\",\"exit_code\":{},\"checked_at\":\"{}\",\"max_age_seconds\":{},",
                                verdict_of(r.exit), r.exit, sync::format_iso8601(r.now), r.max_age.count() / 1000);
    j += "\"daemon\":";
    j += r.daemon_pid ? fmt::format("{{\"running\":true,\"pid\":{}}}", *r.daemon_pid)
                      : std::string("{\"running\":false,\"pid\":null}");
    j += ",\"database\":";
    sync::append_json_string(j, cfg.storage.database.string());
    j += ",\"sources\":[";
    for (std::size_t i = 0; i < r.sources.size(); ++i) {
        const auto& l = r.sources[i];
        j += i ? ",{\"account\":" : "{\"account\":";
        sync::append_json_string(j, l.account);
        j += fmt::format(",\"source\":\"{}\",\"last_status\":", l.source);
        j += l.status ? fmt::format("\"{}\"", sync::to_string(*l.status)) : std::string("null");
        j += fmt::format(",\"verdict\":\"{}\",\"finished_at\":", to_string(l.verdict));
        j += l.finished ? fmt::format("\"{}\"", sync::format_iso8601(*l.finished)) : std::string("null");
        j += ",\"age_seconds\":";
        j += l.finished ? std::to_string((r.now - *l.finished) / 1000) : "null";
        j += ",\"items\":";
        j += l.finished ? std::to_string(l.items) : "null";
        j += ",\"error\":";
        if (l.error.empty()) j += "null";
        else sync::append_json_string(j, l.error);
        j += "}";
    }
    j += fmt::format("],\"alerts_firing\":{{\"critical\":{},\"warning\":{},\"info\":{}}},\"sinks\":[",
                     r.firing.at(config::severity::critical), r.firing.at(config::severity::warning),
                     r.firing.at(config::severity::info));
    for (std::size_t i = 0; i < r.sinks.size(); ++i) {
        j += i ? ",{\"sink\":" : "{\"sink\":";
        sync::append_json_string(j, r.sinks[i].sink);
        j += fmt::format(",\"pending\":{},\"dead\":{}}}", r.sinks[i].pending, r.sinks[i].dead);
    }
    j += "],\"destinations\":[";
    for (std::size_t i = 0; i < r.destinations.size(); ++i) {
        const auto& d = r.destinations[i];
        j += i ? ",{\"destination\":" : "{\"destination\":";
        sync::append_json_string(j, d.destination);
        j += fmt::format(",\"reachable\":{}", d.known);
        j += d.known ? fmt::format(",\"cursor_seq\":{},\"lag_changes\":{},\"error\":null}}", d.cursor_seq, d.lag_changes)
                     : std::string(",\"cursor_seq\":null,\"lag_changes\":null,\"error\":");
        if (!d.known) {
            sync::append_json_string(j, d.error);
            j += '}';
        }
    }
    j += fmt::format("],\"storage\":{{\"database_bytes\":{},\"wal_bytes\":{},\"export_bytes\":{},"
                     "\"export_generations\":{}}}}}\n",
                     r.storage.database, r.storage.wal, r.storage.exports, r.storage.generations);
    return j;
}

}  // namespace

int run_status(const std::filesystem::path& config_path, const status_options& opts) {
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    std::chrono::milliseconds max_age = 2 * cfg->sync.interval;
    if (opts.max_age) {
        auto parsed = config::parse_duration(*opts.max_age);
        if (!parsed || parsed->count() <= 0) {
            fmt::print(stderr, "subsyncd status: --max-age \"{}\": {}\n", *opts.max_age,
                       parsed ? std::string("must be more than 0") : parsed.error());
            return exit_usage;
        }
        max_age = *parsed;
    }
    const auto report = gather(*cfg, process_environment_with_warnings(), max_age);
    const std::string text = opts.format == "json" ? render_json(*cfg, report) : render_table(*cfg, report);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return report.exit;
}

}  // namespace subsync::daemon
