#pragma once
// `subsyncd status`: one look at a deployment, for a person or a monitoring check.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace subsync::daemon {

struct status_options {
    std::string format = "table";  ///< table | json (one object)
    /// --max-age: a source whose last run ended longer ago is stale. Default: 2 × sync.interval.
    std::optional<std::string> max_age;
};

/// Runs `subsyncd status`: reads the database read-only (never takes the lock), so it works
/// while the daemon or a timer's sync runs. Exit 0 when every (account, source)'s last run is
/// "ok" and ended within max-age; else the worst: 1 (a last run failed), 5 (stale or never run),
/// 3 (incomplete); 2 for a bad config or flag.
int run_status(const std::filesystem::path& config_path, const status_options& opts);

}  // namespace subsync::daemon
