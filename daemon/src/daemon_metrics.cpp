#include <subsync/logging/log.hpp>
#include <subsync/daemon/daemon_metrics.hpp>
#include <subsync/daemon/process_metrics.hpp>
#include <subsync/sync/error.hpp>

#include <subsync/alerting/outbox.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

namespace subsync::daemon {
namespace {

// Seconds; a source of a small tenant takes well under a second, a large one minutes.
const std::vector<double> duration_buckets{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900};

constexpr std::array<const char*, 3> run_statuses{"ok", "failed", "incomplete"};
constexpr std::array<sync::error_kind, 8> error_classes{
    sync::error_kind::network, sync::error_kind::timeout, sync::error_kind::tls,        sync::error_kind::http_status,
    sync::error_kind::auth,    sync::error_kind::parse,   sync::error_kind::incomplete, sync::error_kind::cancelled};

bool table_exists(SQLite::Database& db, const char* name) {
    SQLite::Statement q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    q.bind(1, name);
    return q.executeStep();
}

}  // namespace

daemon_metrics::daemon_metrics(std::string_view version, std::int64_t start_time)
    : duration_(registry_.add("subsync_sync_duration_seconds", "Time one (account, source) sync took, fetch and apply.",
                              metric_type::histogram, {"account", "source"}, duration_buckets)),
      runs_(registry_.add("subsync_sync_runs_total",
                          "Finished (account, source) syncs by status (ok, failed, incomplete).", metric_type::counter,
                          {"account", "source", "status"})),
      pages_(registry_.add("subsync_pages_fetched_total", "Pages of listings that were applied.", metric_type::counter,
                           {"account", "source"})),
      items_fetched_(registry_.add("subsync_items_fetched_total", "Items in listings that were applied.",
                                   metric_type::counter, {"account", "source"})),
      retries_(registry_.add("subsync_retries_total",
                             "Requests sent again after a retryable failure or a rejected token.", metric_type::counter,
                             {"account", "source"})),
      throttled_(registry_.add("subsync_throttled_total",
                               "Requests the gateway throttled (HTTP 429); the sync slowed down and retried them.",
                               metric_type::counter, {"account", "source"})),
      errors_(
          registry_.add("subsync_errors_total",
                        "Failed or incomplete syncs by error class (network, timeout, tls, http_status, auth, parse, "
                        "incomplete, cancelled).",
                        metric_type::counter, {"account", "source", "class"})),
      last_success_(registry_.add("subsync_last_success_timestamp_seconds",
                                  "When the last successful sync of a source finished (Unix time).", metric_type::gauge,
                                  {"account", "source"})),
      items_(registry_.add("subsync_items", "Current (not removed) items in the snapshot.", metric_type::gauge,
                           {"account", "table"})),
      alerts_firing_(
          registry_.add("subsync_alerts_firing", "Alerts currently firing, by kind.", metric_type::gauge, {"kind"})),
      alerts_queued_(registry_.add("subsync_alerts_queued_total",
                                   "Alert notifications queued by the syncs, by kind and state (firing, resolved).",
                                   metric_type::counter, {"kind", "state"})),
      outbox_depth_(registry_.add("subsync_alert_outbox_depth",
                                  "Alert notifications waiting for delivery (pending), by sink.", metric_type::gauge,
                                  {"sink"})),
      deliveries_(registry_.add("subsync_alert_deliveries_total",
                                "Alert delivery attempts by sink and outcome (delivered, failed, dead).",
                                metric_type::counter, {"sink", "outcome"})),
      dead_letters_(registry_.add("subsync_alert_dead_letters",
                                  "Alert notifications dead-lettered and not redelivered, by sink.", metric_type::gauge,
                                  {"sink"})),
      in_progress_(registry_.add("subsync_sync_in_progress", "1 while a sync runs.", metric_type::gauge)),
      reloads_(registry_.add("subsync_config_reloads_total", "Config reloads (SIGHUP) by result (ok, rejected).",
                             metric_type::counter, {"result"})) {
    registry_.add("subsync_build_info", "The running subsyncd's version.", metric_type::gauge, {"version"})
        .set({std::string(version)}, 1);
    registry_.add("subsync_start_time_seconds", "When the process started (Unix time).", metric_type::gauge)
        .set({}, static_cast<double>(start_time) / 1000.0);
    in_progress_.set({}, 0);
    reloads_.inc({"ok"}, 0);
    reloads_.inc({"rejected"}, 0);
}

void daemon_metrics::record_run(const sync::run_record& r) {
    const std::string source(sync::to_string(r.source));
    const label_values labels{r.account, source};
    duration_.observe(labels, static_cast<double>(std::max<std::int64_t>(0, r.finished - r.started)) / 1000.0);
    const std::string status(sync::to_string(r.status));
    runs_.inc({r.account, source, status});
    // Zero-valued series exist from the first run on, so rate() sees the counter start at 0.
    pages_.inc(labels, r.status == sync::run_status::failed ? 0 : r.pages);
    items_fetched_.inc(labels, r.status == sync::run_status::failed ? 0 : static_cast<double>(r.items));
    retries_.inc(labels, 0);
    throttled_.inc(labels, r.throttled);
    if (r.status == sync::run_status::incomplete) errors_.inc({r.account, source, "incomplete"});
    remember(r.account, source, r.status, r.finished, r.error);
}

void daemon_metrics::on(const sync::request_retried& e) {
    retries_.inc({std::string(e.account), std::string(e.source)});
}

void daemon_metrics::on(const sync::alerts_queued& e) {
    for (std::size_t i = 0; i < config::alert_kind_names.size(); ++i) {
        const std::string kind(config::alert_kind_names[i]);
        if (const int n = e.run.queued.firing[i]) alerts_queued_.inc({kind, "firing"}, n);
        if (const int n = e.run.queued.resolved[i]) alerts_queued_.inc({kind, "resolved"}, n);
    }
}

void daemon_metrics::on(const sync::source_finished& e) {
    if (e.error)
        errors_.inc({e.run.account, std::string(sync::to_string(e.run.source)), std::string(sync::to_string(*e.error))});
}

void daemon_metrics::set_sync_in_progress(bool running) { in_progress_.set({}, running ? 1 : 0); }

void daemon_metrics::count_reload(bool accepted) { reloads_.inc({accepted ? "ok" : "rejected"}); }

void daemon_metrics::remember(const std::string& account, const std::string& source, sync::run_status status,
                              std::int64_t finished, const std::string& error) {
    auto& s = status_[{account, source}];
    s.account = account;
    s.source = source;
    s.last_status = status;
    s.last_finished = finished;
    s.last_error = error;
    if (status == sync::run_status::ok) {
        s.last_success = finished;
        last_success_.set({account, source}, static_cast<double>(finished) / 1000.0);
    }
}

void daemon_metrics::load_history(SQLite::Database& db) {
    SQLite::Statement last(db,
                           "SELECT account, source, status, finished_at, COALESCE(error, '') FROM sync_runs "
                           "WHERE id IN (SELECT MAX(id) FROM sync_runs GROUP BY account, source)");
    while (last.executeStep())
        remember(last.getColumn(0).getString(), last.getColumn(1).getString(),
                 sync::run_status_named(last.getColumn(2).getText()).value_or(sync::run_status::failed),
                 last.getColumn(3).getInt64(), last.getColumn(4).getString());
    SQLite::Statement ok(db,
                         "SELECT account, source, MAX(finished_at) FROM sync_runs WHERE status = 'ok' "
                         "GROUP BY account, source");
    while (ok.executeStep()) {
        auto& s = status_[{ok.getColumn(0).getString(), ok.getColumn(1).getString()}];
        s.last_success = ok.getColumn(2).getInt64();
        last_success_.set({s.account, s.source}, static_cast<double>(*s.last_success) / 1000.0);
    }
}

void daemon_metrics::refresh_from_db(SQLite::Database& db) {
    items_.clear();
    for (const char* table : {"purchased_groups", "subscription_resources"}) {
        SQLite::Statement q(
            db, fmt::format("SELECT account, COUNT(*) FROM {} WHERE removed_at IS NULL GROUP BY account", table));
        while (q.executeStep()) items_.set({q.getColumn(0).getString(), table}, q.getColumn(1).getDouble());
    }
    // The alert tables come with a later schema version; until then these gauges stay empty / 0.
    try {
        if (table_exists(db, "alerts")) {
            alerts_firing_.clear();
            for (auto kind : config::alert_kind_names) alerts_firing_.set({std::string(kind)}, 0);
            SQLite::Statement q(db, "SELECT kind, COUNT(*) FROM alerts WHERE state = 'firing' GROUP BY kind");
            while (q.executeStep()) alerts_firing_.set({q.getColumn(0).getString()}, q.getColumn(1).getDouble());
        }
        if (table_exists(db, "alert_deliveries")) {
            outbox_depth_.clear();
            dead_letters_.clear();
            for (const auto& c : alerting::outbox(db).counts()) {
                if (c.pending + c.dead == 0) continue;
                outbox_depth_.set({c.sink}, static_cast<double>(c.pending));
                dead_letters_.set({c.sink}, static_cast<double>(c.dead));
            }
        }
    } catch (const std::exception& e) {
        logging::debug("alert metrics unavailable", {{"error", e.what()}});
    }
}

void daemon_metrics::record_delivery(const std::string& sink, alerting::attempt_outcome outcome) {
    deliveries_.inc({sink, std::string(alerting::to_string(outcome))});
}

void daemon_metrics::declare_sinks(const std::vector<std::string>& sinks) {
    for (const auto& s : sinks) {
        outbox_depth_.inc({s}, 0);
        dead_letters_.inc({s}, 0);
        for (const char* o : {"delivered", "failed", "dead"}) deliveries_.inc({s, o}, 0);
    }
}

void daemon_metrics::declare_series(const config::config& cfg) {
    for (const auto& a : cfg.accounts)
        for (auto kind : {sync::source_kind::purchased_groups, sync::source_kind::subscriptions}) {
            const label_values labels{a.name, std::string(sync::to_string(kind))};
            for (const char* status : run_statuses) runs_.inc({labels[0], labels[1], status}, 0);
            for (auto c : error_classes) errors_.inc({labels[0], labels[1], std::string(sync::to_string(c))}, 0);
            for (auto* f : {&pages_, &items_fetched_, &retries_, &throttled_}) f->inc(labels, 0);
        }
    for (auto kind : config::alert_kind_names) {
        alerts_firing_.inc({std::string(kind)}, 0);
        for (const char* state : {"firing", "resolved"}) alerts_queued_.inc({std::string(kind), state}, 0);
    }
}

std::string daemon_metrics::render(bool process) const {
    std::string out = registry_.render();
    if (process)
        if (const auto stats = read_process_stats()) out += render_process_metrics(*stats);
    return out;
}

std::vector<source_status> daemon_metrics::sources_for(const config::config& cfg) const {
    std::vector<source_status> out;
    for (const auto& a : cfg.accounts)
        for (auto kind : {sync::source_kind::purchased_groups, sync::source_kind::subscriptions}) {
            const std::string source(sync::to_string(kind));
            if (auto it = status_.find({a.name, source}); it != status_.end()) out.push_back(it->second);
            else out.push_back({a.name, source, std::nullopt, 0, std::nullopt, ""});
        }
    return out;
}

}  // namespace subsync::daemon
