#pragma once
// Alerts: pure rules over the snapshot, a state machine per
// (account, source, item, kind, threshold), and the transactional outbox.
// docs/alerts.md describes the semantics; docs/schema.md the tables.

#include <subsync/alerting/notification.hpp>
#include <subsync/config/config.hpp>
#include <subsync/sync/records.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Database.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::alerting {

using sync::epoch_ms;

/// Where alerts about the watcher itself live (`source` of delivery_failed).
inline constexpr std::string_view alerts_source = "alerts";

/// One alert the rules hold true right now.
struct active_alert {
    config::alert_kind kind = config::alert_kind::expiring;
    std::string item_key;   ///< the item's key; empty for a source-level alert
    std::string threshold;  ///< "30d", "abs:1000", "pct:10", "14d", "3", "6h" or ""
    std::string summary;    ///< one sentence for a human
    std::string values;     ///< a JSON object: the values that caused it
    /// What the alert depends on, compared to say why it resolved (e.g. expire_time, quota_left).
    std::optional<std::int64_t> measure;
};

// ---- rule inputs -------------------------------------------------------------------------

/// What the rules read of one current (not removed) item.
struct item_facts {
    std::string key;
    std::string name;  ///< group_name, or resource_type/resource_spec_code; for messages
    std::optional<epoch_ms> expire_time;
    std::optional<std::int64_t> quota_left;
    std::optional<std::int64_t> quota_used;
    std::optional<std::int64_t> resource_status;
    std::optional<epoch_ms> removed_at;  ///< set for a resource no longer listed (removed_early only)
};

struct quota_point {
    epoch_ms time = 0;
    std::int64_t left = 0;
};

/// A least-squares line through a quota_left series.
struct forecast {
    double burn_per_day = 0;    ///< units of quota consumed per day (positive = consumed)
    epoch_ms exhaustion = 0;    ///< when the fitted line reaches 0
    double r2 = 0;              ///< goodness of fit
    std::size_t samples = 0;
};

/// Fits the samples after the last top-up inside [now - window, now]. No value when there are
/// fewer than min_samples, the quota is not falling, or the fit is worse than min_r2.
[[nodiscard]] std::optional<forecast> fit_forecast(std::span<const quota_point> series, epoch_ms now,
                                                   const config::alert_rules& rules);

/// The state of one (account, source) sync history, as the self-monitoring rules see it.
struct source_health {
    int consecutive_failures = 0;      ///< failed or incomplete runs since the last ok one
    std::optional<epoch_ms> last_ok;   ///< finish of the last ok run
    std::optional<epoch_ms> first_run; ///< start of the first run on record
    bool auth_rejected = false;        ///< the latest run failed with error_kind 'auth'
    std::string last_error;
};

/// The item rules (expiring, expired, quota_*, resource_status) for one item of `source`
/// ("purchased_groups" | "subscription_resources", for messages). `series` is the item's
/// quota_left samples, oldest first (may be empty).
[[nodiscard]] std::vector<active_alert> evaluate_item(const item_facts& item, std::span<const quota_point> series,
                                                      epoch_ms now, const config::alert_rules& rules,
                                                      std::string_view source);

/// The first instant after `now` at which evaluate_item could answer differently for the same
/// item and series: an expiry threshold crossed, the expiry itself, a quota sample entering or
/// leaving the forecast window, a forecast's horizon reached, and 00:00 UTC for an expiry alert
/// whose texts count calendar days. `now` when the answer moves with `now` itself; the largest
/// epoch_ms when nothing would change.
[[nodiscard]] epoch_ms next_change(const item_facts& item, std::span<const quota_point> series, epoch_ms now,
                                   const config::alert_rules& rules);

/// next_change() without the expiry: what only the quota forecast makes change.
[[nodiscard]] epoch_ms next_forecast_change(const item_facts& item, std::span<const quota_point> series,
                                            epoch_ms now, const config::alert_rules& rules);

/// The expiry rules' answer changes when `expire_time - offset` is reached, for each of these
/// offsets (0, and each expiring_days threshold); otherwise only at UTC midnight.
[[nodiscard]] std::vector<epoch_ms> expiry_offsets(const config::alert_rules& rules);

/// 00:00 UTC after `now`.
[[nodiscard]] epoch_ms next_utc_midnight(epoch_ms now);

/// Everything in `cfg` that decides what the item rules of (account, source) answer and when
/// they notify: the rules in force, repeat_interval, the silences that can match, and the
/// version of the rules themselves. Equal fingerprints, equal answers.
[[nodiscard]] std::string rules_fingerprint(const config::alerts_config& cfg, std::string_view account,
                                            std::string_view source);

/// The self-monitoring rules (source_failing, source_stale, auth_failing) for one source.
[[nodiscard]] std::vector<active_alert> evaluate_health(const source_health& health, epoch_ms now,
                                                        const config::alert_rules& rules);

// ---- state and outbox (inside the caller's transaction) ----------------------------------

/// Evaluates every rule for (account, source) against the database as it is inside the
/// caller's open transaction, and turns the difference to the stored state into
/// firing/resolved notifications in `alert_outbox`, with one pending `alert_deliveries`
/// row per configured sink whose filter takes it. Silenced alerts change state but queue
/// nothing. Returns the notifications queued, by kind.
///
/// Every item is read when the run changed quota samples beside its items (`wide`), the rules'
/// fingerprint differs from the last full evaluation's, or its horizon in `alert_horizons` has
/// passed. Otherwise only the items the run changed (`items`) and those time made due since the
/// previous run are (docs/alerts.md "When rules run").
sync::queued_alerts update_source(SQLite::Database& db, const config::alerts_config& cfg, std::string_view account,
                  std::string_view source, epoch_ms now, std::optional<std::int64_t> run_id,
                  sync::snapshot_delta delta = sync::snapshot_delta::wide);

/// The alerting module's part of every snapshot transaction: the rules, the state machine and
/// the outbox run inside the apply (or record_failure) that caused them, and retention prunes
/// resolved alerts and finished notifications. `cfg` is borrowed.
class rules_hook final : public sync::run_hook {
public:
    explicit rules_hook(const config::alerts_config& cfg) : cfg_(cfg) {}
    sync::queued_alerts on_run(SQLite::Database& db, std::string_view account, sync::source_kind source, epoch_ms now,
               std::int64_t run_id, sync::snapshot_delta delta) override;
    std::int64_t on_prune(SQLite::Database& db, epoch_ms cutoff, bool snapshot_pruned) override;

private:
    const config::alerts_config& cfg_;
};

/// The dispatcher's own alert: `delivery_failed` for `sink` fires while `dead` is non-zero
/// (notifications dead-lettered by it and not redelivered) and resolves when it is zero.
/// Opens its own transaction. Returns the number of notifications queued.
int update_delivery_failed(SQLite::Database& db, const config::alerts_config& cfg, std::string_view sink,
                           std::int64_t dead, std::string_view last_error, epoch_ms now);

/// The sinks a config delivers to: the configured ones, or one `log` sink named "log".
[[nodiscard]] std::vector<config::sink_config> effective_sinks(const config::alerts_config& cfg);

/// Whether `sink` takes a notification of this kind, severity and account.
[[nodiscard]] bool accepts(const config::sink_filter& f, config::alert_kind kind, config::severity sev,
                           std::string_view account);

/// One row of `alerts`, for `subsyncd alerts` and the alerts export.
struct alert_row {
    std::string account, source, item_key;
    std::string kind;  ///< as stored: a kind a newer subsyncd wrote is still listed
    std::string threshold;
    alert_state state = alert_state::firing;
    config::severity severity = config::severity::warning;
    epoch_ms since = 0;
    std::optional<epoch_ms> resolved_at;
    std::string reason;
    std::optional<epoch_ms> last_notified;
    std::int64_t notifications = 0;
    std::string summary;
    std::string detail;  ///< JSON object
    epoch_ms updated_at = 0;
};

/// Firing alerts (or all with `all`), most severe first, then account, source, item, kind.
[[nodiscard]] std::vector<alert_row> read_alerts(SQLite::Database& db, bool all);

}  // namespace subsync::alerting
