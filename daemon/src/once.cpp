// `subsyncd sync --once`: for cron and systemd timers. Takes the same database lock as the
// daemon, so a timer firing while `subsyncd run` syncs never writes alongside it.

#include "commands.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/config/load.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/daemon/cli.hpp>
#include <subsync/daemon/daemon_metrics.hpp>
#include <subsync/daemon/lock.hpp>
#include <subsync/daemon/logging.hpp>
#include <subsync/daemon/summary.hpp>
#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/dispatch.hpp>
#include <subsync/destinations/postgresql.hpp>
#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/sync/engine.hpp>

#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/prctl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace subsync::daemon {

std::int64_t wall_clock_now() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::optional<config::config> load_or_report(const std::filesystem::path& path) {
    auto cfg = config::load_config(path);
    if (!cfg) {
        fmt::print(stderr, "{}\n", cfg.error().message);
        fmt::print(stderr, "subsyncd: the configuration is invalid; see docs/configuration.md\n");
        return std::nullopt;
    }
    return std::move(*cfg);
}

std::vector<named_secret> secrets_of(const config::auth_config& auth) {
    switch (auth.type) {
        case config::auth_type::token: return {{"token", &auth.token}};
        case config::auth_type::password: return {{"password", &auth.password}};
        case config::auth_type::aksk: {
            std::vector<named_secret> s{{"ak", &auth.ak}, {"sk", &auth.sk}};
            if (!auth.security_token.empty()) s.emplace_back("security_token", &auth.security_token);
            return s;
        }
    }
    return {};
}

bool account_secrets_resolve(const config::config& cfg, const std::filesystem::path& path,
                             const config::environment& env) {
    bool ok = true;
    for (std::size_t i = 0; i < cfg.accounts.size(); ++i) {
        for (const auto& [name, ref] : secrets_of(cfg.accounts[i].auth)) {
            auto s = config::resolve_secret(*ref, fmt::format("account[{}].auth.{}", i, name), env);
            if (!s) {
                fmt::print(stderr, "{}: {}\n", path.string(), s.error());
                ok = false;
            }
        }
    }
    if (!ok) fmt::print(stderr, "{}\n", secret_failure_trailer);
    return ok;
}

config::environment process_environment_with_warnings() {
    auto env = config::environment::process();
    env.warn = [](const std::string& message) { spdlog::warn("{}", message); };
    return env;
}

void protect_secrets_in_memory() {
    if (const char* allow = std::getenv("SUBSYNC_ALLOW_COREDUMP"); allow != nullptr && std::string_view(allow) == "1") {
        spdlog::warn("SUBSYNC_ALLOW_COREDUMP=1: the process stays dumpable; a core file may hold secrets");
        return;
    }
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        logging::warn("prctl(PR_SET_DUMPABLE, 0) failed", {{"error", std::strerror(errno)}},
                      "a core file may hold secrets");
}

namespace {

// What this sync queued (and what earlier runs left pending) goes out now, for at most
// alerts.flush_timeout; the rest waits in the outbox for the next run. Never changes the exit code.
std::optional<alerting::dispatch_report> deliver_alerts(const config::config& cfg, SQLite::Database& db,
                                                         const config::environment& env) {
    try {
        alert_records records;
        const auto r = alerting::deliver_for(cfg, db, env, wall_clock_now, cfg.alerts.flush_timeout, &records);
        if (r.pending > 0)
            logging::warn("alert delivery incomplete",
                          {{"delivered", r.delivered},
                           {"failed", r.failed},
                           {"dead", r.dead},
                           {"pending", r.pending},
                           {"flush_timeout", config::format_duration(cfg.alerts.flush_timeout)}},
                          "the pending ones wait for the next run");
        else if (r.delivered + r.dead > 0)
            logging::info("alert delivery done", {{"delivered", r.delivered}, {"dead", r.dead}});
        return r;
    } catch (const std::exception& e) {
        logging::error("alert delivery failed", {{"error", e.what()}}, "the notifications stay queued for the next run");
        return std::nullopt;
    }
}

// --metrics-textfile: the daemon's subsync_* metrics for this run, for node_exporter's textfile
// collector. Written to a temporary file in the same folder and renamed, so the collector never
// reads half a file. A failure is logged and leaves the exit code alone: the sync happened, and
// subsync_last_success_timestamp_seconds going stale is what alerts.
void write_metrics_textfile(const std::filesystem::path& path, daemon_metrics& m, const config::config& cfg,
                            const sync::sync_report& report, const std::optional<alerting::dispatch_report>& sent,
                            SQLite::Database& db) {
    try {
        for (const auto& r : report.runs) m.record_run(r);
        std::vector<std::string> sinks;
        for (const auto& s : alerting::effective_sinks(cfg.alerts)) sinks.push_back(s.name);
        m.declare_sinks(sinks);
        if (sent)
            for (const auto& s : sent->sinks)
                for (const auto& [outcome, n] : {std::pair{alerting::attempt_outcome::delivered, s.delivered},
                                                 {alerting::attempt_outcome::failed, s.failed},
                                                 {alerting::attempt_outcome::dead, s.dead}})
                    for (int i = 0; i < n; ++i) m.record_delivery(s.sink, outcome);
        m.load_history(db);
        m.refresh_from_db(db);
        exporters::atomic_file f(path, 0644);
        f.write(m.render(false));
        f.commit();
        logging::debug("metrics written", {{"path", path.native()}});
    } catch (const std::exception& e) {
        logging::error("cannot write the metrics textfile", {{"path", path.string()}, {"error", e.what()}});
    }
}

// Each destination gets one pass, bounded by its connect and statement timeouts. A destination
// that is down is a warning: its cursor waits and the next run catches up. Never changes the exit code.
void replicate_destinations(const config::config& cfg, const config::environment& env) {
    for (const auto& o : destinations::replicate_all(cfg, env))
        destinations::log_outcome(o, "it catches up at the next run", /*every_pass=*/true);
}

// The exports and the delivery of what this sync queued run side by side, on two threads and
// two connections. The exports' snapshot is taken when this is made, before delivery writes
// anything, so the files are what they were when one ran after the other (delivery writes the
// outbox and delivery_failed alerts, which that snapshot does not see). As in `subsyncd run`, an
// export that fails does not hold the alerts back: its error is raised by finish(), once
// delivery is done.
//
// A second connection, its snapshot fixed at the same moment, writes the alerts files beside the
// others (generation_options::alerts_reader): they are most of what alerting adds to the
// exports, and the exports are the run's tail. They wait for delivery to end
// (generation_options::alerts_after), so that the three jobs are two threads' work on the
// machine's two cores: delivery then the alerts files (0.55 s of CPU after a first sync of 100k
// purchases) beside the exports (0.76 s). Three threads at once made the tail 0.99 s
// (bench/README.md, issue 16). When the other files are done first (delivery waits out a slow
// receiver), the exports' thread writes the alerts files itself and the generation is not held.
class exports_beside_delivery {
public:
    exports_beside_delivery(const config::config& cfg, std::vector<exporters::written_file>& out)
        : export_db_(sync::open_snapshot_readonly(cfg.storage.database)),
          alerts_db_(sync::open_snapshot_readonly(cfg.storage.database)),
          export_snapshot_(export_db_),
          alerts_snapshot_(alerts_db_) {
        (void)export_db_.execAndGet("SELECT count(*) FROM sync_runs");  // a read fixes each snapshot
        (void)alerts_db_.execAndGet("SELECT count(*) FROM sync_runs");
        thread_ = std::jthread([this, &cfg, &out] {
            try {
                auto options = exporters::generation_options_from(cfg);
                options.alerts_reader = &alerts_db_;
                options.alerts_after = &delivered_;
                out = exporters::write_exports(export_db_, cfg.storage.export_dir, options);
            } catch (...) {
                error_ = std::current_exception();
            }
        });
    }

    exports_beside_delivery(const exports_beside_delivery&) = delete;
    exports_beside_delivery& operator=(const exports_beside_delivery&) = delete;
    ~exports_beside_delivery() { delivery_ended(); }  // then thread_, the last member, is joined

    /// Delivery has ended: lets the alerts files start, waits for the files and raises the
    /// exports' error, if any.
    void finish() {
        delivery_ended();
        thread_.join();
        export_snapshot_.commit();
        alerts_snapshot_.commit();
        if (error_) std::rethrow_exception(error_);
    }

private:
    // Lets the alerts files start; delivery has ended, however it ended.
    void delivery_ended() noexcept { delivered_.open(); }

    SQLite::Database export_db_, alerts_db_;
    SQLite::Transaction export_snapshot_, alerts_snapshot_;
    exporters::start_gate delivered_;
    std::exception_ptr error_;
    std::jthread thread_;  // last: joined before the snapshots and the connections go
};

}  // namespace

int run_sync_once(const std::filesystem::path& config_path, const once_options& opts, int verbosity) {
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    setup_logging({cfg->daemon.level, cfg->daemon.format, verbosity});
    for (const auto& w : cfg->warnings) spdlog::warn("{}", w);

    const auto& database = cfg->storage.database;
    std::error_code ec;
    std::filesystem::create_directories(database.parent_path(), ec);  // the lock's open() reports what fails
    // A secret that cannot be read is a config problem (exit 2, as in check-config), found before
    // the lock is taken or anything is fetched.
    protect_secrets_in_memory();
    if (!account_secrets_resolve(*cfg, config_path, process_environment_with_warnings())) return exit_usage;
    std::string holder;
    auto lock = instance_lock::try_acquire(database, holder);
    if (!lock) {
        if (!opts.wait) {
            logging::error("database locked", {{"holder", holder}},
                           "a sync is running (try again later, or pass --wait to wait for it)");
            return exit_locked;
        }
        logging::info("waiting for the database lock", {{"holder", holder}});
        lock = instance_lock::acquire(database);
    }

    sync::snapshot_store store(cfg->storage);
    alerting::rules_hook alert_hook(cfg->alerts);
    store.set_run_hook(&alert_hook);
    const auto env = config::environment::process();
    daemon_metrics metrics(SUBSYNC_VERSION, wall_clock_now());
    metrics.declare_series(*cfg);
    // With --metrics-textfile the metrics hear the sync's events too, as the daemon's do.
    sync::observer_list events{opts.metrics_textfile ? std::vector<sync::sync_observer*>{&metrics, &sync_log()}
                                                     : std::vector<sync::sync_observer*>{&sync_log()}};
    once_summary s;
    s.dry_run = opts.dry_run;
    s.database = database.string();
    s.started = wall_clock_now();
    s.report = sync::sync_once(*cfg, store, env, wall_clock_now, {opts.dry_run, &events});
    s.finished = wall_clock_now();
    clear_progress();

    const bool applied =
        std::any_of(s.report.runs.begin(), s.report.runs.end(), [](const auto& r) { return r.status != sync::run_status::failed; });
    // The exports beside delivery; if delivery throws, the destructor releases and joins them.
    std::optional<exports_beside_delivery> exports;
    if (applied && !opts.dry_run) exports.emplace(*cfg, s.exports);
    std::optional<alerting::dispatch_report> sent;
    if (!opts.dry_run) sent = deliver_alerts(*cfg, store.database(), env);
    if (exports) exports->finish();  // opens the alerts files' gate: delivery has ended
    if (!opts.dry_run && !cfg->destinations.empty()) replicate_destinations(*cfg, env);
    if (opts.metrics_textfile && !opts.dry_run)
        write_metrics_textfile(*opts.metrics_textfile, metrics, *cfg, s.report, sent, store.database());
    s.exit_code = exit_code_for(s.report);
    for (const auto& r : s.report.runs)
        if (!r.error.empty()) fmt::print(stderr, "{}: {}\n", sync::to_string(r.status), r.error);
    const std::string out = opts.json ? summary_json(s) + "\n" : summary_text(s);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return s.exit_code;
}

}  // namespace subsync::daemon
