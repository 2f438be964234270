#include "commands.hpp"

#include <subsync/config/load.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/daemon/cli.hpp>

#include "alert_commands.hpp"
#include "record_commands.hpp"
#include "status.hpp"
#include <subsync/daemon/logging.hpp>
#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/engine.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <utility>
#include <vector>

namespace subsync::daemon {
namespace {

constexpr const char* default_config = "/etc/subsync/subsync.toml";

std::string config_path(const std::string& flag) {
    if (!flag.empty()) return flag;
    if (const char* env = std::getenv("SUBSYNC_CONFIG"); env != nullptr && *env != '\0') return env;
    return default_config;
}

}  // namespace

namespace {

// What the command line asked for: each subcommand's options, filled in by CLI11.
struct command_line {
    int verbosity = 0;
    std::string config_flag;
    CLI::App* run = nullptr;
    CLI::App* sync = nullptr;
    CLI::App* check = nullptr;
    CLI::App* export_ = nullptr;
    CLI::App* replicate = nullptr;
    CLI::App* history = nullptr;
    CLI::App* alerts = nullptr;
    CLI::App* status = nullptr;
    bool once = false;
    std::string summary = "text";
    once_options once_opts;
    check_options check_opts;
    export_options export_opts;
    bool replicate_full = false;
    std::string replicate_destination;
    history_options history_opts;
    alerts_options alerts_opts;
    status_options status_opts;
};

void add_config(CLI::App* sub, command_line& c) {
    sub->add_option("-c,--config", c.config_flag, "config file (default: $SUBSYNC_CONFIG or /etc/subsync/subsync.toml)");
}

void add_run_and_sync(CLI::App& app, command_line& c) {
    c.run = app.add_subcommand("run",
                               "the daemon: sync at start, then every sync.interval (with jitter) until SIGTERM;\n"
                               "waits up to daemon.lock_wait (60s) for a one-shot sync's database lock;\n"
                               "SIGUSR1 syncs now, SIGHUP reloads the config (docs/operations.md)");
    add_config(c.run, c);

    auto* sync_cmd = c.sync = app.add_subcommand("sync", "sync every account once, then write the exports");
    sync_cmd->add_flag("--once", c.once, "one sync of every account, then exit (for cron and systemd timers)")
        ->required();
    sync_cmd->add_flag("--dry-run", c.once_opts.dry_run, "fetch and diff, print what would change, commit nothing");
    sync_cmd->add_option("--summary", c.summary, "text (default) | json: one JSON object on stdout, for scripts")
        ->check(CLI::IsMember({"text", "json"}));
    sync_cmd->add_flag("--wait", c.once_opts.wait,
                       "if the daemon (or another sync) holds the database, wait for it instead of exiting 4");
    sync_cmd
        ->add_option("--metrics-textfile", c.once_opts.metrics_textfile,
                     "write this run's subsync_* metrics to FILE (atomically: a temporary file in the same folder,\n"
                     "then rename) for node_exporter's textfile collector, e.g.\n"
                     "/var/lib/prometheus/node-exporter/subsync.prom")
        ->excludes("--dry-run");
    add_config(sync_cmd, c);
}

void add_check_config(CLI::App& app, command_line& c) {
    c.check = app.add_subcommand(
        "check-config",
        "validate the config file and that every secret resolves, saying where each comes from (never its\n"
        "value). Outside the unit, X_credential names are read where LoadCredential= would:\n"
        "/etc/subsync/credentials/<name without subsync_>, /etc/credstore, /run/credstore");
    c.check->add_option("--credentials-dir", c.check_opts.credentials_dir,
                        "X_credential names are files in DIR (instead of the places above)");
    add_config(c.check, c);
}

void add_records(CLI::App& app, command_line& c) {
    auto* export_cmd = c.export_ = app.add_subcommand("export", "write one table of the snapshot to a file or stdout");
    auto& e = c.export_opts;
    export_cmd->add_option("--table", e.table,
                           "purchased_groups | subscription_resources | sync_runs | alerts | changes | report")
        ->required();
    export_cmd->add_option("--format", e.format, "csv | json | jsonl (default csv); html for report");
    export_cmd->add_option("-o,--output", e.output, "file to write atomically, or - for stdout (default)");
    export_cmd->add_option("--account", e.account, "only this account's rows");
    export_cmd->add_option("--as-of", e.as_of,
                           "the table as it was after run RUN_ID, or at an ISO-8601 time (item tables)");
    export_cmd->add_option("--since", e.since, "changes after this seq (table changes): resume a feed");
    add_config(export_cmd, c);

    auto* replicate_cmd = c.replicate = app.add_subcommand(
        "replicate", "replicate the snapshot into the configured [[destination]]s now (PostgreSQL)");
    replicate_cmd->add_flag("--full", c.replicate_full, "reload everything with COPY instead of what changed");
    replicate_cmd->add_option("--destination", c.replicate_destination, "only this destination (its name)");
    add_config(replicate_cmd, c);

    auto* history_cmd = c.history =
        app.add_subcommand("history", "list the change history (added, removed, changed fields)");
    auto& h = c.history_opts;
    history_cmd->add_option("--account", h.account, "only this account");
    history_cmd->add_option("--item", h.item, "only this item: a purchase id, or region/project/resource_id of a resource");
    history_cmd->add_option("--since", h.since, "changes at or after this ISO-8601 time");
    history_cmd->add_option("--kind", h.kind, "added | removed | changed");
    history_cmd->add_option("--source", h.source, "purchased_groups | subscription_resources");
    history_cmd->add_option("--format", h.format, "table (default) | json (one object per line) | csv");
    add_config(history_cmd, c);
}

void add_alerts_and_status(CLI::App& app, command_line& c) {
    auto* alerts_cmd = c.alerts = app.add_subcommand(
        "alerts",
        "list firing alerts (--all: resolved too), show what was delivered where (--deliveries), or\n"
        "queue dead-lettered notifications again and deliver them now (--redeliver); docs/alerts.md");
    auto& a = c.alerts_opts;
    alerts_cmd->add_flag("--all", a.all, "resolved alerts too, not only firing ones");
    alerts_cmd->add_option("--format", a.format, "table (default) | json (one object per line) | csv")
        ->check(CLI::IsMember({"table", "json", "csv"}));
    auto* deliveries_flag = alerts_cmd->add_flag(
        "--deliveries", a.deliveries,
        "per sink: pending/delivered/dead counts and the latest attempts (time, outcome, latency, error)");
    auto* redeliver_flag = alerts_cmd->add_flag(
        "--redeliver", a.redeliver,
        "dead-lettered notifications become pending again (attempts 0) and are delivered now, for at most\n"
        "alerts.flush_timeout; with the daemon running, it delivers them instead");
    redeliver_flag->excludes(deliveries_flag);
    alerts_cmd->add_option("--sink", a.sink, "with --redeliver or --deliveries: only this sink");
    alerts_cmd->add_option("--limit", a.limit, "with --deliveries: attempts shown per sink (default 20)")
        ->check(CLI::PositiveNumber);
    add_config(alerts_cmd, c);

    auto* status_cmd = c.status = app.add_subcommand(
        "status",
        "per account and source the last run (status, age, items, error), alerts firing by severity, the\n"
        "alert outbox per sink, database and export sizes, and the pid of the daemon holding the lock.\n"
        "Read-only: works while the daemon or a timer's sync runs. Exit 0 when every source's last run is\n"
        "ok and ended within --max-age; else 1 (a run failed), 5 (stale or never synced), 3 (incomplete)");
    status_cmd->add_option("--format", c.status_opts.format, "table (default) | json (one object)")
        ->check(CLI::IsMember({"table", "json"}));
    status_cmd->add_option("--max-age", c.status_opts.max_age,
                           "a source whose last run ended longer ago is stale (default: 2 x sync.interval)");
    add_config(status_cmd, c);
}

int run_command(command_line& c) {
    const auto path = config_path(c.config_flag);
    c.once_opts.json = c.summary == "json";
    if (*c.run) return run_daemon(path, c.verbosity);
    if (*c.sync) return run_sync_once(path, c.once_opts, c.verbosity);
    if (*c.check) return run_check_config(path, c.check_opts);
    if (*c.export_) return run_export(path, c.export_opts);
    if (*c.history) return run_history(path, c.history_opts);
    if (*c.replicate) return run_replicate(path, c.replicate_full, c.replicate_destination);
    if (*c.alerts) return run_alerts(path, c.alerts_opts);
    if (*c.status) return run_status(path, c.status_opts);
    return exit_usage;
}

}  // namespace

int run_cli(int argc, char** argv) {
    CLI::App app{
        "subsyncd keeps a local SQLite record of what a Huawei Cloud tenant has bought (purchased API groups\n"
        "and subscription resources), with change history and CSV/JSON exports.\n\n"
        "Exit codes: 0 ok; 1 a source failed (the snapshot keeps its last good state); 2 bad config or usage;\n"
        "3 every source answered but a listing did not add up (applied without removals); 4 another subsyncd\n"
        "holds the database (run: still, after waiting daemon.lock_wait); 5 (status) a source never synced or\n"
        "its last run is older than 2 x sync.interval.\n"
        "The config file is --config, else $SUBSYNC_CONFIG, else /etc/subsync/subsync.toml (docs/configuration.md).",
        "subsyncd"};
    app.set_version_flag("--version", "subsyncd " SUBSYNC_VERSION);
    app.require_subcommand(1);
    // -v/-q/--config may come before or after the subcommand.
    app.fallthrough();
    command_line c;
    app.add_flag_function("-v,--verbose", [&](std::int64_t n) { c.verbosity += static_cast<int>(n); },
                          "log per page (debug)");
    app.add_flag_function("-q,--quiet", [&](std::int64_t n) { c.verbosity -= static_cast<int>(n); },
                          "log warnings and errors only");
    add_run_and_sync(app, c);
    add_check_config(app, c);
    add_records(app, c);
    add_alerts_and_status(app, c);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? exit_ok : exit_usage;
    }
    setup_logging({config::log_level::info, config::log_format::text, c.verbosity});
    try {
        return run_command(c);
    } catch (const std::exception& e) {
        // Failures that end the whole operation: the database cannot be opened
        // or written, an export cannot be written. The snapshot is intact.
        spdlog::error("{}", e.what());
        fmt::print(stderr, "subsyncd: {}\n", e.what());
        return exit_source_failed;
    }
}

}  // namespace subsync::daemon
