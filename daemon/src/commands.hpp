#pragma once
// The subcommands behind the command line (cli.cpp parses, these run).

#include <subsync/config/config.hpp>
#include <subsync/config/secret_source.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::daemon {

/// `sync --once` flags.
struct once_options {
    bool dry_run = false;  ///< fetch and diff, commit nothing, print what would change
    bool json = false;     ///< --summary json: one JSON object on stdout
    bool wait = false;     ///< wait for a running daemon's lock instead of exiting 4
    /// --metrics-textfile: write the run's subsync_* metrics there (node_exporter's textfile collector).
    std::optional<std::filesystem::path> metrics_textfile;
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

/// Reads every secret the accounts of `cfg` use, as a sync would. Each failure is printed to
/// stderr as `PATH: KEY: what` (never the value); a file others may read is warned about through
/// `env.warn`. True when all resolved. `check-config` and `sync --once` both exit 2 on false.
/// A secret an account reads, by its key name ("token", "ak"...).
using named_secret = std::pair<const char*, const config::secret_ref*>;

/// The secrets an account's auth type reads; an optional one only when configured.
[[nodiscard]] std::vector<named_secret> secrets_of(const config::auth_config& auth);

/// The line check-config and sync --once print after the secrets that could not be read.
inline constexpr std::string_view secret_failure_trailer =
    "subsyncd: a secret could not be read; see docs/configuration.md#secrets";

bool account_secrets_resolve(const config::config& cfg, const std::filesystem::path& path,
                             const config::environment& env);

/// The process environment with secret-source warnings going to the log (spdlog::warn).
[[nodiscard]] config::environment process_environment_with_warnings();

/// Makes the process non-dumpable (prctl PR_SET_DUMPABLE 0): no core file holding a token, and
/// other processes of the same user cannot ptrace it or read its /proc/PID/environ and mem.
/// SUBSYNC_ALLOW_COREDUMP=1 in the environment leaves it dumpable, for debugging.
void protect_secrets_in_memory();

/// `subsyncd sync --once`: one sync of every account under the database lock.
int run_sync_once(const std::filesystem::path& config_path, const once_options& opts, int verbosity);

/// `subsyncd run`: the daemon, until SIGTERM.
int run_daemon(const std::filesystem::path& config_path, int verbosity);

/// `subsyncd replicate [--full] [--destination NAME]`: one replication pass of the configured
/// destinations (docs/destinations.md), for cron users and first loads. 0 when every pass
/// succeeded, 1 otherwise.
int run_replicate(const std::filesystem::path& config_path, bool full, const std::string& destination);

/// The wall clock as epoch milliseconds: the only place the daemon reads it.
[[nodiscard]] std::int64_t wall_clock_now();

}  // namespace subsync::daemon
