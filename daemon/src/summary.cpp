#include <subsync/daemon/cli.hpp>
#include <subsync/daemon/json.hpp>
#include <subsync/daemon/summary.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace subsync::daemon {
namespace {

bool has(const sync::sync_report& report, sync::run_status status) {
    return std::any_of(report.runs.begin(), report.runs.end(), [&](const auto& r) { return r.status == status; });
}

/// The worst status of the runs: failed, then incomplete, then ok.
sync::run_status worst(const sync::sync_report& report) {
    if (has(report, sync::run_status::failed)) return sync::run_status::failed;
    return has(report, sync::run_status::incomplete) ? sync::run_status::incomplete : sync::run_status::ok;
}

}  // namespace

int exit_code_for(const sync::sync_report& report) {
    switch (worst(report)) {
        case sync::run_status::failed: return exit_source_failed;
        case sync::run_status::incomplete: return exit_incomplete;
        case sync::run_status::ok: return exit_ok;
    }
    return exit_ok;
}

std::string overall_status(const sync::sync_report& report) { return std::string(sync::to_string(worst(report))); }

std::string summary_json(const once_summary& s) {
    std::string out = fmt::format(
        "{{\"status\":{},\"exit_code\":{},\"dry_run\":{},\"started\":{},\"finished\":{},"
        "\"duration_ms\":{},\"database\":{},\"runs\":[",
        json_string(overall_status(s.report)), s.exit_code, s.dry_run, json_string(sync::format_iso8601(s.started)),
        json_string(sync::format_iso8601(s.finished)), s.finished - s.started, json_string(s.database));
    for (std::size_t i = 0; i < s.report.runs.size(); ++i) {
        const auto& r = s.report.runs[i];
        out += fmt::format(
            "{}{{\"account\":{},\"source\":{},\"status\":{},\"pages\":{},\"items\":{},\"added\":{},"
            "\"changed\":{},\"removed\":{},\"notifications\":{},\"retries\":{},\"throttled\":{},"
            "\"unchanged\":{},\"duration_ms\":{},\"error\":{}}}",
            i == 0 ? "" : ",", json_string(r.account), json_string(sync::to_string(r.source)), json_string(sync::to_string(r.status)),
            r.pages, r.items, r.added, r.changed, r.removed, r.notifications, r.retries, r.throttled,
            r.unchanged, std::max<std::int64_t>(0, r.finished - r.started),
            r.error.empty() ? "null" : json_string(r.error));
    }
    out += "],\"exports\":[";
    for (std::size_t i = 0; i < s.exports.size(); ++i)
        out += fmt::format("{}{{\"path\":{},\"rows\":{}}}", i == 0 ? "" : ",", json_string(s.exports[i].path.string()),
                           s.exports[i].rows);
    out += "]}";
    return out;
}

std::string summary_text(const once_summary& s) {
    std::string out;
    const char* verb = s.dry_run ? "would " : "";
    out += fmt::format("{:<16} {:<24} {:<10} {:>6} {:>8} {:>7} {:>7} {:>7} {:>7}\n", "account", "source", "status",
                       "pages", "items", s.dry_run ? "+add" : "added", s.dry_run ? "~change" : "changed",
                       s.dry_run ? "-remove" : "removed", "alerts");
    for (const auto& r : s.report.runs)
        out += fmt::format("{:<16} {:<24} {:<10} {:>6} {:>8} {:>7} {:>7} {:>7} {:>7}\n", r.account,
                           sync::to_string(r.source), sync::to_string(r.status), r.pages, r.items, r.added, r.changed, r.removed,
                           r.notifications);
    if (s.dry_run) {
        std::int64_t added = 0, changed = 0, removed = 0;
        for (const auto& r : s.report.runs) {
            added += r.added;
            changed += r.changed;
            removed += r.removed;
        }
        out += fmt::format("dry run: {}add {}, {}change {}, {}remove {} items; nothing was committed to {}\n", verb,
                           added, verb, changed, verb, removed, s.database);
        return out;
    }
    out += fmt::format("snapshot: {}\n", s.database);
    if (s.exports.empty()) out += "exports:  unchanged (no source succeeded)\n";
    for (const auto& f : s.exports) out += fmt::format("export:   {} ({} rows)\n", f.path.string(), f.rows);
    return out;
}

}  // namespace subsync::daemon
