#pragma once
// What `subsyncd sync --once` prints: a table for people, or one JSON object for scripts
// (`--summary json`).

#include <subsync/exporters/generations.hpp>
#include <subsync/sync/engine.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace subsync::daemon {

struct once_summary {
    sync::sync_report report;
    bool dry_run = false;
    std::int64_t started = 0;   ///< epoch ms
    std::int64_t finished = 0;  ///< epoch ms
    std::string database;
    std::vector<exporters::written_file> exports;  ///< empty for a dry run, or when no source applied
    int exit_code = 0;
};

/// The exit code a sync's outcome maps to: 1 when a source failed, 3 when one was incomplete, else 0.
[[nodiscard]] int exit_code_for(const sync::sync_report& report);

/// "ok" | "incomplete" | "failed": the worst run status.
[[nodiscard]] std::string overall_status(const sync::sync_report& report);

/// One JSON object (no trailing newline): status, exit_code, dry_run, started, finished,
/// duration_ms, database, runs[] (account, source, status, pages, items, added, changed, removed,
/// duration_ms, error), exports[] (path, rows).
[[nodiscard]] std::string summary_json(const once_summary& s);

/// The human table: one line per (account, source), errors, and where things were written.
[[nodiscard]] std::string summary_text(const once_summary& s);

}  // namespace subsync::daemon
