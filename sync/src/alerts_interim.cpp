// INTERIM (branch sinks only): the parts of alerts.hpp the dispatcher and `subsyncd alerts`
// link against, until the lead's sync/src/alerts.cpp lands on main. Delete this file (and its
// CMake line) when merging that commit; alerts.cpp is the real implementation.

#include <subsync/sync/alerts.hpp>

#include <SQLiteCpp/Statement.h>

#include <algorithm>

namespace subsync::sync::alerts {

std::vector<config::sink_config> effective_sinks(const config::alerts_config& cfg) {
    if (!cfg.sinks.empty()) return cfg.sinks;
    config::sink_config log;
    log.name = "log";
    log.type = config::sink_type::log;
    return {log};
}

bool accepts(const config::sink_filter& f, config::alert_kind kind, config::severity sev, std::string_view account) {
    if (!f.kinds.empty() && std::find(f.kinds.begin(), f.kinds.end(), kind) == f.kinds.end()) return false;
    if (sev < f.min_severity) return false;
    if (!f.accounts.empty() && std::find(f.accounts.begin(), f.accounts.end(), account) == f.accounts.end())
        return false;
    return true;
}

int update_delivery_failed(SQLite::Database&, const config::alerts_config&, std::string_view, std::int64_t,
                           std::string_view, epoch_ms) {
    return 0;
}

std::vector<alert_row> read_alerts(SQLite::Database& db, bool all) {
    SQLite::Statement q(db, std::string("SELECT account, source, item_key, kind, threshold, state, severity, since, "
                                        "resolved_at, coalesce(reason, ''), last_notified, notifications, summary, "
                                        "detail, updated_at FROM alerts ") +
                                (all ? "" : "WHERE state = 'firing' ") +
                                "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, "
                                "account, source, item_key, kind");
    std::vector<alert_row> rows;
    while (q.executeStep()) {
        alert_row r;
        r.account = q.getColumn(0).getString();
        r.source = q.getColumn(1).getString();
        r.item_key = q.getColumn(2).getString();
        r.kind = q.getColumn(3).getString();
        r.threshold = q.getColumn(4).getString();
        r.state = q.getColumn(5).getString();
        r.severity = q.getColumn(6).getString();
        r.since = q.getColumn(7).getInt64();
        if (!q.getColumn(8).isNull()) r.resolved_at = q.getColumn(8).getInt64();
        r.reason = q.getColumn(9).getString();
        if (!q.getColumn(10).isNull()) r.last_notified = q.getColumn(10).getInt64();
        r.notifications = q.getColumn(11).getInt64();
        r.summary = q.getColumn(12).getString();
        r.detail = q.getColumn(13).getString();
        r.updated_at = q.getColumn(14).getInt64();
        rows.push_back(std::move(r));
    }
    return rows;
}

}  // namespace subsync::sync::alerts
