#pragma once
// subsyncd's metrics and per-source status: fed by sync runs and the engine's log events,
// rendered at /metrics, and read by /healthz.

#include <subsync/alerting/outbox.hpp>
#include <subsync/config/config.hpp>
#include <subsync/daemon/health.hpp>
#include <subsync/daemon/metrics.hpp>
#include <subsync/sync/events.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Database.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::daemon {

/// What /metrics shows. Hears the sync's events (retries, failures by error class) typed.
class daemon_metrics final : public sync::sync_observer {
public:
    /// `start_time`: when the process started, epoch ms.
    daemon_metrics(std::string_view version, std::int64_t start_time);

    /// Counts one finished (account, source) run: duration, status, pages, items, last success.
    void record_run(const sync::run_record& r);
    /// Counts a retry.
    void on(const sync::request_retried& e) override;
    /// Counts the alert notifications a run queued, by kind and state.
    void on(const sync::alerts_queued& e) override;
    /// Counts a failed source by its error class.
    void on(const sync::source_finished& e) override;
    void set_sync_in_progress(bool running);
    void count_reload(bool accepted);
    /// Counts one alert delivery attempt (outcome: delivered, failed, dead).
    void record_delivery(const std::string& sink, alerting::attempt_outcome outcome);
    /// Shows every configured sink's series at 0 before its first attempt.
    void declare_sinks(const std::vector<std::string>& sinks);
    /// Shows every series with a known label set at 0 before anything happens, so rate() and
    /// alert rules see them from the start: per configured (account, source) the runs by each
    /// status, the errors by each class, pages, items, retries and 429s; alerts firing by each kind.
    /// Safe to call again after a reload (new accounts get their series; nothing is reset).
    void declare_series(const config::config& cfg);

    /// Learns each source's last outcome from `sync_runs`, so /healthz is right after a restart.
    void load_history(SQLite::Database& db);
    /// Recomputes the gauges read from the database: current items per table, alerts firing by
    /// kind, pending and dead-lettered deliveries by sink (once the alert tables exist).
    void refresh_from_db(SQLite::Database& db);

    /// One entry per (account, source) of `cfg`, in config order.
    [[nodiscard]] std::vector<source_status> sources_for(const config::config& cfg) const;
    /// The exposition: subsync_* and, with `process`, the standard process_* metrics of this
    /// process (left out of `sync --once --metrics-textfile`, where they would describe a process
    /// that has exited and clash with node_exporter's own process_* series).
    [[nodiscard]] std::string render(bool process = true) const;
    [[nodiscard]] const metrics_registry& registry() const noexcept { return registry_; }

private:
    void remember(const std::string& account, const std::string& source, sync::run_status status,
                  std::int64_t finished, const std::string& error);

    metrics_registry registry_;
    metric_family& duration_;
    metric_family& runs_;
    metric_family& pages_;
    metric_family& items_fetched_;
    metric_family& retries_;
    metric_family& throttled_;
    metric_family& errors_;
    metric_family& last_success_;
    metric_family& items_;
    metric_family& alerts_firing_;
    metric_family& alerts_queued_;
    metric_family& outbox_depth_;
    metric_family& deliveries_;
    metric_family& dead_letters_;
    metric_family& in_progress_;
    metric_family& reloads_;
    std::map<std::pair<std::string, std::string>, source_status> status_;
};

}  // namespace subsync::daemon
