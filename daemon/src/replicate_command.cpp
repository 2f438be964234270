// `subsyncd replicate`: the same pass the daemon runs (destinations::replicate_once), on
// demand. It only reads the SQLite file (WAL), so it needs no database lock; two passes of one
// instance (this and a daemon) take turns on a PostgreSQL advisory lock.

#include "commands.hpp"

#include <subsync/config/secret_source.hpp>
#include <subsync/daemon/cli.hpp>
#include <subsync/destinations/postgresql.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace subsync::daemon {

int run_replicate(const std::filesystem::path& config_path, bool full, const std::string& destination) {
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    if (!destination.empty()) {
        std::erase_if(cfg->destinations, [&](const auto& d) { return d.name != destination; });
        if (cfg->destinations.empty()) {
            fmt::print(stderr, "subsyncd replicate: no [[destination]] named \"{}\" in {}\n", destination,
                       config_path.string());
            return exit_usage;
        }
    }
    if (cfg->destinations.empty()) {
        fmt::print(stderr, "subsyncd replicate: {} has no [[destination]]; see docs/destinations.md\n",
                   config_path.string());
        return exit_usage;
    }
    protect_secrets_in_memory();
    int failed = 0;
    for (const auto& o : destinations::replicate_all(*cfg, process_environment_with_warnings(), full)) {
        if (o.ok) {
            fmt::print("{}: replicated {} change{}{}, cursor at seq {}\n", o.destination, o.shipped_changes,
                       o.shipped_changes == 1 ? "" : "s", o.full_load ? " (full load)" : "", o.cursor_seq);
        } else {
            ++failed;
            fmt::print(stderr, "{}: failed: {}\n", o.destination, o.error);
        }
    }
    return failed == 0 ? exit_ok : exit_source_failed;
}

}  // namespace subsync::daemon
