#pragma once
// The subcommands behind the command line (cli.cpp parses, these run).

#include <subsync/config/config.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace subsync::daemon {

/// `sync --once` flags.
struct once_options {
    bool dry_run = false;  ///< fetch and diff, commit nothing, print what would change
    bool json = false;     ///< --summary json: one JSON object on stdout
    bool wait = false;     ///< wait for a running daemon's lock instead of exiting 2
};

/// `check-config` flags.
struct check_options {
    /// --credentials-dir: `X_credential` names are files in it (instead of $CREDENTIALS_DIRECTORY
    /// or the places LoadCredential= reads).
    std::optional<std::filesystem::path> credentials_dir;
};

/// `subsyncd check-config`: the file, every secret (saying where each comes from), project lookups.
int run_check_config(const std::filesystem::path& config_path, const check_options& opts);

/// Loads and validates `path`; on failure prints every problem to stderr and returns nullopt.
std::optional<config::config> load_or_report(const std::filesystem::path& path);

/// `subsyncd sync --once`: one sync of every account under the database lock.
int run_sync_once(const std::filesystem::path& config_path, const once_options& opts, int verbosity);

/// `subsyncd run`: the daemon, until SIGTERM.
int run_daemon(const std::filesystem::path& config_path, int verbosity);

/// The wall clock as epoch milliseconds: the only place the daemon reads it.
[[nodiscard]] std::int64_t wall_clock_now();

}  // namespace subsync::daemon
