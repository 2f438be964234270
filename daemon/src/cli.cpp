#include <subsync/config/load.hpp>
#include <subsync/daemon/cli.hpp>
#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/engine.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace subsync::daemon {
namespace {

constexpr const char* default_config = "/etc/subsync/subsync.toml";

sync::epoch_ms wall_clock_now() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void setup_logging(int verbosity) {
    auto logger = std::make_shared<spdlog::logger>("subsyncd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    // Under systemd the journal adds its own timestamp; elsewhere say when, in UTC.
    if (std::getenv("JOURNAL_STREAM") != nullptr) logger->set_pattern("%l %v");
    else logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    logger->set_level(verbosity > 0 ? spdlog::level::debug : verbosity < 0 ? spdlog::level::warn : spdlog::level::info);
    spdlog::set_default_logger(std::move(logger));
}

std::string config_path(const std::string& flag) {
    if (!flag.empty()) return flag;
    if (const char* env = std::getenv("SUBSYNC_CONFIG"); env != nullptr && *env != '\0') return env;
    return default_config;
}

// Loads and validates; on failure prints the problems and what to do.
std::optional<config::config> load(const std::string& path) {
    auto cfg = config::load_config(path);
    if (!cfg) {
        fmt::print(stderr, "{}\n", cfg.error().message);
        fmt::print(stderr, "subsyncd: the configuration is invalid; see docs/configuration.md\n");
        return std::nullopt;
    }
    for (const auto& w : cfg->warnings) spdlog::warn("{}", w);
    return std::move(*cfg);
}

int cmd_sync(const std::string& path) {
    auto cfg = load(path);
    if (!cfg) return exit_usage;
    sync::snapshot_store store(cfg->storage.database);
    const auto env = config::environment::process();
    const auto report = sync::sync_once(*cfg, store, env, wall_clock_now);

    fmt::print("{:<16} {:<24} {:<10} {:>6} {:>8} {:>7} {:>7} {:>7}\n", "account", "source", "status", "pages", "items",
               "added", "changed", "removed");
    bool applied = false;
    for (const auto& r : report.runs) {
        fmt::print("{:<16} {:<24} {:<10} {:>6} {:>8} {:>7} {:>7} {:>7}\n", r.account, sync::to_string(r.source),
                   r.status, r.pages, r.items, r.added, r.changed, r.removed);
        applied = applied || r.status != "failed";
    }
    for (const auto& r : report.runs)
        if (!r.error.empty()) fmt::print(stderr, "{}: {}\n", r.status, r.error);
    fmt::print("snapshot: {}\n", cfg->storage.database.string());
    if (applied) {
        auto db = sync::open_snapshot_readonly(cfg->storage.database);
        for (const auto& f : exporters::write_exports(db, cfg->storage.export_dir))
            fmt::print("export:   {} ({} rows)\n", f.path.string(), f.rows);
    } else {
        fmt::print("exports:  unchanged (no source succeeded)\n");
    }
    const auto has = [&](std::string_view status) {
        return std::any_of(report.runs.begin(), report.runs.end(), [&](const auto& r) { return r.status == status; });
    };
    if (has("failed")) return exit_source_failed;
    return has("incomplete") ? exit_incomplete : exit_ok;
}

int cmd_check_config(const std::string& path) {
    auto cfg = load(path);
    if (!cfg) return exit_usage;
    const auto env = config::environment::process();
    int missing = 0;
    for (std::size_t i = 0; i < cfg->accounts.size(); ++i) {
        auto s = config::resolve_secret(cfg->accounts[i].auth.token, fmt::format("account[{}].auth.token", i), env);
        if (!s) {
            fmt::print(stderr, "{}: {}\n", path, s.error());
            ++missing;
        }
    }
    if (missing > 0) return exit_usage;
    fmt::print("{}: ok ({} account{}, database {}, exports in {})\n", path, cfg->accounts.size(),
               cfg->accounts.size() == 1 ? "" : "s", cfg->storage.database.string(), cfg->storage.export_dir.string());
    return exit_ok;
}

int cmd_export(const std::string& path, const std::string& table_name, const std::string& format_name,
               const std::string& output, const std::string& account) {
    const auto table = exporters::parse_table(table_name);
    const auto format = exporters::parse_format(format_name);
    if (!table) {
        fmt::print(stderr, "subsyncd export: unknown --table \"{}\" (purchased_groups, subscription_resources)\n",
                   table_name);
        return exit_usage;
    }
    if (!format) {
        fmt::print(stderr, "subsyncd export: unknown --format \"{}\" (csv, json, jsonl)\n", format_name);
        return exit_usage;
    }
    auto cfg = load(path);
    if (!cfg) return exit_usage;
    auto db = sync::open_snapshot_readonly(cfg->storage.database);
    exporters::export_options opts;
    if (!account.empty()) opts.account = account;
    if (output.empty() || output == "-") {
        exporters::write_table(db, *table, *format, [](std::string_view b) { std::fwrite(b.data(), 1, b.size(), stdout); },
                               opts);
        std::fflush(stdout);
        return exit_ok;
    }
    exporters::atomic_file file(output);
    const auto rows = exporters::write_table(db, *table, *format, [&](std::string_view b) { file.write(b); }, opts);
    file.commit();
    fmt::print(stderr, "wrote {} rows to {}\n", rows, output);
    return exit_ok;
}

}  // namespace

int run_cli(int argc, char** argv) {
    CLI::App app{
        "subsyncd keeps a local SQLite record of what a Huawei Cloud tenant has bought (purchased API groups\n"
        "and subscription resources), with change history and CSV/JSON exports.\n\n"
        "Exit codes: 0 ok; 1 a source failed (the snapshot keeps its last good state); 2 bad config or usage;\n"
        "3 every source answered but a listing did not add up (applied without removals).\n"
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

    auto* sync_cmd = app.add_subcommand("sync", "sync every account once, then write the exports");
    bool once = false;
    sync_cmd->add_flag("--once", once, "one sync of every account, then exit (for cron and systemd timers)")
        ->required();
    add_config(sync_cmd);

    auto* check_cmd = app.add_subcommand("check-config", "validate the config file and that every secret resolves");
    add_config(check_cmd);

    auto* export_cmd = app.add_subcommand("export", "write one snapshot table to a file or stdout");
    std::string table, format = "csv", output, account;
    export_cmd->add_option("--table", table, "purchased_groups | subscription_resources")->required();
    export_cmd->add_option("--format", format, "csv | json | jsonl (default csv)");
    export_cmd->add_option("-o,--output", output, "file to write atomically, or - for stdout (default)");
    export_cmd->add_option("--account", account, "only this account's rows");
    add_config(export_cmd);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? exit_ok : exit_usage;
    }
    setup_logging(verbosity);
    const auto path = config_path(config_flag);
    try {
        if (*sync_cmd) return cmd_sync(path);
        if (*check_cmd) return cmd_check_config(path);
        if (*export_cmd) return cmd_export(path, table, format, output, account);
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
