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
    int verbosity = 0;
    app.add_flag_function("-v,--verbose", [&](std::int64_t n) { verbosity += static_cast<int>(n); },
                          "log per page (debug)");
    app.add_flag_function("-q,--quiet", [&](std::int64_t n) { verbosity -= static_cast<int>(n); },
                          "log warnings and errors only");
    std::string config_flag;
    auto add_config = [&](CLI::App* sub) {
        sub->add_option("-c,--config", config_flag, "config file (default: $SUBSYNC_CONFIG or /etc/subsync/subsync.toml)");
    };

    auto* run_cmd =
        app.add_subcommand("run",
                           "the daemon: sync at start, then every sync.interval (with jitter) until SIGTERM;\n"
                           "waits up to daemon.lock_wait (60s) for a one-shot sync's database lock;\n"
                           "SIGUSR1 syncs now, SIGHUP reloads the config (docs/operations.md)");
    add_config(run_cmd);

    auto* sync_cmd = app.add_subcommand("sync", "sync every account once, then write the exports");
    bool once = false;
    once_options once_opts;
    std::string summary = "text";
    sync_cmd->add_flag("--once", once, "one sync of every account, then exit (for cron and systemd timers)")
        ->required();
    sync_cmd->add_flag("--dry-run", once_opts.dry_run, "fetch and diff, print what would change, commit nothing");
    sync_cmd->add_option("--summary", summary, "text (default) | json: one JSON object on stdout, for scripts")
        ->check(CLI::IsMember({"text", "json"}));
    sync_cmd->add_flag("--wait", once_opts.wait,
                       "if the daemon (or another sync) holds the database, wait for it instead of exiting 4");
    sync_cmd
        ->add_option("--metrics-textfile", once_opts.metrics_textfile,
                     "write this run's subsync_* metrics to FILE (atomically: a temporary file in the same folder,\n"
                     "then rename) for node_exporter's textfile collector, e.g.\n"
                     "/var/lib/prometheus/node-exporter/subsync.prom")
        ->excludes("--dry-run");
    add_config(sync_cmd);

    auto* check_cmd = app.add_subcommand(
        "check-config",
        "validate the config file and that every secret resolves, saying where each comes from (never its\n"
        "value). Outside the unit, X_credential names are read where LoadCredential= would:\n"
        "/etc/subsync/credentials/<name without subsync_>, /etc/credstore, /run/credstore");
    check_options check_opts;
    check_cmd->add_option("--credentials-dir", check_opts.credentials_dir,
                          "X_credential names are files in DIR (instead of the places above)");
    add_config(check_cmd);

    auto* export_cmd = app.add_subcommand("export", "write one table of the snapshot to a file or stdout");
    export_options export_opts;
    export_cmd->add_option("--table", export_opts.table,
                           "purchased_groups | subscription_resources | sync_runs | alerts | changes | report")
        ->required();
    export_cmd->add_option("--format", export_opts.format, "csv | json | jsonl (default csv); html for report");
    export_cmd->add_option("-o,--output", export_opts.output, "file to write atomically, or - for stdout (default)");
    export_cmd->add_option("--account", export_opts.account, "only this account's rows");
    export_cmd->add_option("--as-of", export_opts.as_of,
                           "the table as it was after run RUN_ID, or at an ISO-8601 time (item tables)");
    export_cmd->add_option("--since", export_opts.since, "changes after this seq (table changes): resume a feed");
    add_config(export_cmd);

    auto* replicate_cmd = app.add_subcommand(
        "replicate", "replicate the snapshot into the configured [[destination]]s now (PostgreSQL)");
    bool replicate_full = false;
    std::string replicate_destination;
    replicate_cmd->add_flag("--full", replicate_full, "reload everything with COPY instead of what changed");
    replicate_cmd->add_option("--destination", replicate_destination, "only this destination (its name)");
    add_config(replicate_cmd);

    auto* history_cmd = app.add_subcommand("history", "list the change history (added, removed, changed fields)");
    history_options history_opts;
    history_cmd->add_option("--account", history_opts.account, "only this account");
    history_cmd->add_option("--item", history_opts.item,
                            "only this item: a purchase id, or region/project/resource_id of a resource");
    history_cmd->add_option("--since", history_opts.since, "changes at or after this ISO-8601 time");
    history_cmd->add_option("--kind", history_opts.kind, "added | removed | changed");
    history_cmd->add_option("--source", history_opts.source, "purchased_groups | subscription_resources");
    history_cmd->add_option("--format", history_opts.format, "table (default) | json (one object per line) | csv");
    add_config(history_cmd);

    auto* alerts_cmd = app.add_subcommand(
        "alerts",
        "list firing alerts (--all: resolved too), show what was delivered where (--deliveries), or\n"
        "queue dead-lettered notifications again and deliver them now (--redeliver); docs/alerts.md");
    alerts_options alerts_opts;
    alerts_cmd->add_flag("--all", alerts_opts.all, "resolved alerts too, not only firing ones");
    alerts_cmd->add_option("--format", alerts_opts.format, "table (default) | json (one object per line) | csv")
        ->check(CLI::IsMember({"table", "json", "csv"}));
    auto* deliveries_flag = alerts_cmd->add_flag(
        "--deliveries", alerts_opts.deliveries,
        "per sink: pending/delivered/dead counts and the latest attempts (time, outcome, latency, error)");
    auto* redeliver_flag = alerts_cmd->add_flag(
        "--redeliver", alerts_opts.redeliver,
        "dead-lettered notifications become pending again (attempts 0) and are delivered now, for at most\n"
        "alerts.flush_timeout; with the daemon running, it delivers them instead");
    redeliver_flag->excludes(deliveries_flag);
    alerts_cmd->add_option("--sink", alerts_opts.sink, "with --redeliver or --deliveries: only this sink");
    alerts_cmd->add_option("--limit", alerts_opts.limit, "with --deliveries: attempts shown per sink (default 20)")
        ->check(CLI::PositiveNumber);
    add_config(alerts_cmd);

    auto* status_cmd = app.add_subcommand(
        "status",
        "per account and source the last run (status, age, items, error), alerts firing by severity, the\n"
        "alert outbox per sink, database and export sizes, and the pid of the daemon holding the lock.\n"
        "Read-only: works while the daemon or a timer's sync runs. Exit 0 when every source's last run is\n"
        "ok and ended within --max-age; else 1 (a run failed), 5 (stale or never synced), 3 (incomplete)");
    status_options status_opts;
    status_cmd->add_option("--format", status_opts.format, "table (default) | json (one object)")
        ->check(CLI::IsMember({"table", "json"}));
    status_cmd->add_option("--max-age", status_opts.max_age,
                           "a source whose last run ended longer ago is stale (default: 2 x sync.interval)");
    add_config(status_cmd);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? exit_ok : exit_usage;
    }
    setup_logging({config::log_level::info, config::log_format::text, verbosity});
    const auto path = config_path(config_flag);
    once_opts.json = summary == "json";
    try {
        if (*run_cmd) return run_daemon(path, verbosity);
        if (*sync_cmd) return run_sync_once(path, once_opts, verbosity);
        if (*check_cmd) return run_check_config(path, check_opts);
        if (*export_cmd) return run_export(path, export_opts);
        if (*history_cmd) return run_history(path, history_opts);
        if (*replicate_cmd) return run_replicate(path, replicate_full, replicate_destination);
        if (*alerts_cmd) return run_alerts(path, alerts_opts);
        if (*status_cmd) return run_status(path, status_opts);
    } catch (const std::exception& e) {
        // Failures that end the whole operation: the database cannot be opened
        // or written, an export cannot be written. The snapshot is intact.
        spdlog::error("{}", e.what());
        fmt::print(stderr, "subsyncd: {}\n", e.what());
        return exit_source_failed;
    }
    return exit_usage;
}

}  // namespace subsync::daemon
