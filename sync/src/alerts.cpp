#include <subsync/sync/alerts.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/time.hpp>

#include <subsync/config/load.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace subsync::sync::alerts {
namespace {

using config::alert_kind;
constexpr epoch_ms ms_per_day = 86'400'000;

std::string iso(epoch_ms t) { return format_iso8601(t); }

std::string json_str(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

/// "1.5" rather than "1.500000"; integers without a fraction.
std::string number(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<std::int64_t>(v));
    return fmt::format("{:.4g}", v);
}

std::string days_text(double days) {
    if (days < 1) return fmt::format("{:.0f} hours", std::max(days * 24, 0.0));
    return fmt::format("{:.0f} day{}", std::floor(days), std::floor(days) == 1 ? "" : "s");
}

/// "purchased group "payments" (sub-1)": the name as a JSON string, so a summary is one
/// line whatever the API sent (a log line or a terminal table cannot be broken up).
std::string what(std::string_view source, const item_facts& item) {
    const bool group = source == "purchased_groups";
    const std::string_view noun = group ? "purchased group" : "resource";
    std::string key = item.key;
    for (char& c : key)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    if (item.name.empty()) return fmt::format("{} {}", noun, key);
    return fmt::format("{} {} ({})", noun, json_str(item.name), key);
}

/// Rank of an alert within its family (expiry: expiring, expired; quota: forecast, low,
/// exhausted); a newly active alert of higher rank supersedes a lower one silently.
struct family_rank {
    int family = 0;  ///< 0 = none
    int rank = 0;
};

family_rank rank_of(alert_kind k, std::string_view threshold) {
    switch (k) {
        case alert_kind::expiring: {
            int days = 0;
            for (char c : threshold) {
                if (c < '0' || c > '9') break;
                days = days * 10 + (c - '0');
            }
            return {1, 10000 - days};  // tighter threshold, higher rank
        }
        case alert_kind::expired: return {1, 20000};
        case alert_kind::quota_forecast: return {2, 1};
        case alert_kind::quota_low: return {2, 2};
        case alert_kind::quota_exhausted: return {2, 3};
        default: return {0, 0};
    }
}

std::optional<alert_kind> kind_named(std::string_view name) {
    for (std::size_t i = 0; i < config::alert_kind_count; ++i)
        if (config::alert_kind_names[i] == name) return static_cast<alert_kind>(i);
    return std::nullopt;
}

int severity_rank(std::string_view s) { return s == "critical" ? 3 : s == "warning" ? 2 : 1; }

}  // namespace

// ---- rules --------------------------------------------------------------------------------

std::optional<forecast> fit_forecast(std::span<const quota_point> series, epoch_ms now,
                                     const config::alert_rules& rules) {
    const epoch_ms from = now - rules.forecast_window.count();
    std::size_t begin = 0;
    while (begin < series.size() && series[begin].time < from) ++begin;
    // A top-up starts a new series: the burn before it says nothing about the new quota. A
    // rise counts as a top-up only when it stands out from the series' usual step (5 robust
    // standard deviations of the differences), so noise does not cut a series into pieces.
    if (series.size() - begin >= 3) {
        std::vector<double> steps;
        for (std::size_t i = begin + 1; i < series.size(); ++i)
            steps.push_back(static_cast<double>(series[i].left - series[i - 1].left));
        auto median = [](std::vector<double> v) {
            std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
            return v[v.size() / 2];
        };
        const double typical = median(steps);
        std::vector<double> spread;
        for (double d : steps) spread.push_back(std::fabs(d - typical));
        const double rise = std::max(0.0, typical + 5 * 1.4826 * median(spread));
        const std::size_t first = begin;
        for (std::size_t i = first + 1; i < series.size(); ++i)
            if (static_cast<double>(series[i].left - series[i - 1].left) > rise) begin = i;
    } else {
        for (std::size_t i = begin + 1; i < series.size(); ++i)
            if (series[i].left > series[i - 1].left) begin = i;
    }
    std::size_t end = series.size();
    while (end > begin && series[end - 1].time > now) --end;
    const std::size_t n = end - begin;
    if (n < static_cast<std::size_t>(std::max(rules.forecast_min_samples, 2))) return std::nullopt;

    const epoch_ms t0 = series[begin].time;
    double mx = 0, my = 0;
    for (std::size_t i = begin; i < end; ++i) {
        mx += static_cast<double>(series[i].time - t0) / ms_per_day;
        my += static_cast<double>(series[i].left);
    }
    mx /= static_cast<double>(n);
    my /= static_cast<double>(n);
    double sxx = 0, sxy = 0, syy = 0;
    for (std::size_t i = begin; i < end; ++i) {
        const double dx = static_cast<double>(series[i].time - t0) / ms_per_day - mx;
        const double dy = static_cast<double>(series[i].left) - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if (sxx <= 0 || syy <= 0) return std::nullopt;  // one instant, or a flat series
    const double slope = sxy / sxx;                  // quota per day
    if (!(slope < 0)) return std::nullopt;
    const double r2 = (sxy * sxy) / (sxx * syy);
    if (r2 < rules.forecast_min_r2) return std::nullopt;
    const double intercept = my - slope * mx;
    const double zero_day = -intercept / slope;
    forecast f;
    f.burn_per_day = -slope;
    f.exhaustion = t0 + static_cast<epoch_ms>(std::llround(zero_day * ms_per_day));
    f.r2 = r2;
    f.samples = n;
    return f;
}

std::vector<active_alert> evaluate_item(const item_facts& item, std::span<const quota_point> series, epoch_ms now,
                                        const config::alert_rules& rules, std::string_view source) {
    std::vector<active_alert> out;
    // Most items raise nothing: messages are only built for those that do.
    auto subject = [&] { return what(source, item); };
    if (item.expire_time) {
        const epoch_ms expire = *item.expire_time;
        auto values = [&] {
            return fmt::format(R"({{"expire_time":"{}","days_left":{}}})", iso(expire),
                               number(std::trunc(static_cast<double>(expire - now) / ms_per_day)));
        };
        if (now >= expire) {
            if (rules.on(alert_kind::expired))
                out.push_back({alert_kind::expired, item.key, "",
                               fmt::format("{} expired on {} and is still listed", subject(), iso(expire)), values(),
                               expire});
        } else if (rules.on(alert_kind::expiring)) {
            // The tightest threshold crossed: thresholds are sorted descending.
            std::optional<int> crossed;
            for (int d : rules.expiring_days)
                if (expire - now <= std::int64_t{d} * ms_per_day) crossed = d;
            if (crossed) {
                const double left = static_cast<double>(expire - now) / ms_per_day;
                out.push_back({alert_kind::expiring, item.key, fmt::format("{}d", *crossed),
                               fmt::format("{} expires in {}, on {} (threshold {} days)", subject(), days_text(left),
                                           iso(expire), *crossed),
                               values(), expire});
            }
        }
    }
    if (item.quota_left) {
        const std::int64_t left = *item.quota_left;
        const auto used = item.quota_used;
        auto used_text = [&] { return used ? std::to_string(*used) : std::string("null"); };
        auto values = [&] { return fmt::format(R"({{"quota_left":{},"quota_used":{}}})", left, used_text()); };
        if (left <= 0) {
            if (rules.on(alert_kind::quota_exhausted))
                out.push_back({alert_kind::quota_exhausted, item.key, "0",
                               fmt::format("{} has no quota left ({} used)", subject(),
                                           used ? used_text() : std::string("unknown")),
                               values(), left});
        } else {
            if (rules.on(alert_kind::quota_low) && rules.quota_low_absolute > 0 && left < rules.quota_low_absolute)
                out.push_back({alert_kind::quota_low, item.key, fmt::format("abs:{}", rules.quota_low_absolute),
                               fmt::format("{} has {} quota left, under {}", subject(), left, rules.quota_low_absolute),
                               values(), left});
            if (rules.on(alert_kind::quota_low) && rules.quota_low_percent > 0 && used && left + *used > 0) {
                const double total = static_cast<double>(left + *used);
                const double percent = static_cast<double>(left) * 100.0 / total;
                if (percent < rules.quota_low_percent)
                    out.push_back({alert_kind::quota_low, item.key,
                                   fmt::format("pct:{}", number(rules.quota_low_percent)),
                                   fmt::format("{} has {} quota left, {}% of {} (under {}%)", subject(), left,
                                               number(std::floor(percent * 10) / 10), left + *used,
                                               number(rules.quota_low_percent)),
                                   values(), left});
            }
            if (rules.on(alert_kind::quota_forecast) && rules.forecast_days > 0) {
                if (auto f = fit_forecast(series, now, rules);
                    f && f->exhaustion - now <= std::int64_t{rules.forecast_days} * ms_per_day) {
                    const epoch_ms when = std::max(f->exhaustion, now);
                    out.push_back(
                        {alert_kind::quota_forecast, item.key, fmt::format("{}d", rules.forecast_days),
                         fmt::format("{} will run out of quota around {} at about {} per day ({} left)", subject(),
                                     iso(when), number(std::round(f->burn_per_day)), left),
                         fmt::format(R"({{"quota_left":{},"exhaustion":"{}","burn_per_day":{},"samples":{},"r2":{}}})",
                                     left, iso(when), number(f->burn_per_day), f->samples,
                                     number(std::round(f->r2 * 1000) / 1000)),
                         left});
                }
            }
        }
    }
    if (item.resource_status && *item.resource_status != 0 && rules.on(alert_kind::resource_status))
        out.push_back({alert_kind::resource_status, item.key, "",
                       fmt::format("{} is not running (resource_status {})", subject(), *item.resource_status),
                       fmt::format(R"({{"resource_status":{}}})", *item.resource_status), *item.resource_status});
    return out;
}

std::vector<active_alert> evaluate_health(const source_health& h, epoch_ms now, const config::alert_rules& rules) {
    std::vector<active_alert> out;
    if (rules.on(alert_kind::source_failing) && rules.failing_after > 0 && h.consecutive_failures >= rules.failing_after)
        out.push_back({alert_kind::source_failing, "", std::to_string(rules.failing_after),
                       fmt::format("the last {} syncs failed; last error: {}", h.consecutive_failures, h.last_error),
                       fmt::format(R"({{"consecutive_failures":{},"last_error":{}}})", h.consecutive_failures,
                                   json_str(h.last_error)),
                       h.consecutive_failures});
    const auto reference = h.last_ok ? h.last_ok : h.first_run;
    if (rules.on(alert_kind::source_stale) && rules.stale_after.count() > 0 && reference &&
        now - *reference > rules.stale_after.count()) {
        const auto age = std::chrono::milliseconds((now - *reference) / 60'000 * 60'000);
        out.push_back({alert_kind::source_stale, "", config::format_duration(rules.stale_after),
                       h.last_ok ? fmt::format("no successful sync for {} (last on {})", config::format_duration(age),
                                               iso(*h.last_ok))
                                 : fmt::format("no successful sync since the first attempt {} ago",
                                               config::format_duration(age)),
                       fmt::format(R"({{"last_ok":{},"age_seconds":{}}})",
                                   h.last_ok ? json_str(iso(*h.last_ok)) : std::string("null"), (now - *reference) / 1000),
                       *reference});
    }
    if (rules.on(alert_kind::auth_failing) && h.auth_rejected)
        out.push_back({alert_kind::auth_failing, "", "",
                       fmt::format("authentication was refused: {}", h.last_error),
                       fmt::format(R"({{"last_error":{}}})", json_str(h.last_error)), std::nullopt});
    return out;
}

// ---- sinks --------------------------------------------------------------------------------

std::vector<config::sink_config> effective_sinks(const config::alerts_config& cfg) {
    if (!cfg.sinks.empty()) return cfg.sinks;
    config::sink_config log;
    log.name = "log";
    log.type = config::sink_type::log;
    return {log};
}

bool accepts(const config::sink_filter& f, alert_kind kind, config::severity sev, std::string_view account) {
    if (!f.kinds.empty() && std::find(f.kinds.begin(), f.kinds.end(), kind) == f.kinds.end()) return false;
    if (static_cast<int>(sev) < static_cast<int>(f.min_severity)) return false;
    if (!f.accounts.empty() && std::find(f.accounts.begin(), f.accounts.end(), account) == f.accounts.end())
        return false;
    return true;
}

// ---- state machine ------------------------------------------------------------------------

namespace {

struct stored_alert {
    std::string item_key, kind, threshold, state, severity;
    epoch_ms since = 0;
    std::optional<epoch_ms> last_notified;
    std::int64_t notifications = 0;
    std::int64_t episode = 1;
    std::string summary, detail;
    std::optional<std::int64_t> measure;
};

using alert_id = std::tuple<std::string, std::string, std::string>;  // item, kind, threshold

bool silenced(const config::alerts_config& cfg, std::string_view account, std::string_view source,
              std::string_view item, std::string_view kind, epoch_ms now) {
    return std::any_of(cfg.silences.begin(), cfg.silences.end(), [&](const config::alert_silence& s) {
        return s.until > now && (s.account.empty() || s.account == account) &&
               (s.source.empty() || s.source == source) && (s.item.empty() || s.item == item) &&
               (s.kind.empty() || s.kind == kind);
    });
}

/// Writes alert rows, outbox rows and delivery rows for one scope (account, source).
class reconciler {
public:
    reconciler(SQLite::Database& db, const config::alerts_config& cfg, std::string_view account,
               std::string_view source, epoch_ms now, std::optional<std::int64_t> run_id)
        : db_(db), cfg_(cfg), account_(account), source_(source), now_(now), run_id_(run_id),
          sinks_(effective_sinks(cfg)) {}

    /// Reconciles the stored alerts of this scope (those `in_scope` says are) with `active`.
    /// `present(item)` says whether an item is still listed; `current(item, kind)` gives the
    /// current measure of a stored alert's subject, for the reason it resolved.
    template <class InScope, class Present, class Current>
    int run(const std::vector<active_alert>& active, const config::alert_rules& rules, InScope in_scope,
            Present present, Current current, std::string_view exclude_sink = {}) {
        exclude_sink_ = exclude_sink;
        std::map<alert_id, stored_alert> stored;
        {
            SQLite::Statement q(db_,
                                "SELECT item_key, kind, threshold, state, severity, since, last_notified, notifications, "
                                "episode, summary, detail, measure FROM alerts WHERE account = ? AND source = ?");
            q.bind(1, account_);
            q.bind(2, source_);
            while (q.executeStep()) {
                stored_alert s;
                s.item_key = q.getColumn(0).getString();
                s.kind = q.getColumn(1).getString();
                s.threshold = q.getColumn(2).getString();
                if (!in_scope(s.item_key, s.kind)) continue;
                s.state = q.getColumn(3).getString();
                s.severity = q.getColumn(4).getString();
                s.since = q.getColumn(5).getInt64();
                if (!q.getColumn(6).isNull()) s.last_notified = q.getColumn(6).getInt64();
                s.notifications = q.getColumn(7).getInt64();
                s.episode = q.getColumn(8).getInt64();
                s.summary = q.getColumn(9).getString();
                s.detail = q.getColumn(10).getString();
                if (!q.getColumn(11).isNull()) s.measure = q.getColumn(11).getInt64();
                stored.emplace(alert_id{s.item_key, s.kind, s.threshold}, std::move(s));
            }
        }

        int queued = 0;
        // Newly active alerts per item, for "superseded".
        std::map<std::string, std::vector<family_rank>> rising;
        for (const auto& a : active) {
            const std::string kind(config::to_string(a.kind));
            const std::string sev(config::to_string(rules.severity_of(a.kind)));
            auto it = stored.find(alert_id{a.item_key, kind, a.threshold});
            const bool quiet = silenced(cfg_, account_, source_, a.item_key, kind, now_);
            if (it == stored.end() || it->second.state != "firing") {
                stored_alert s;
                s.item_key = a.item_key;
                s.kind = kind;
                s.threshold = a.threshold;
                s.state = "firing";
                s.severity = sev;
                s.since = now_;
                s.episode = it == stored.end() ? 1 : it->second.episode + 1;
                s.summary = a.summary;
                s.detail = a.values;
                s.measure = a.measure;
                if (!quiet) queued += notify(s, a.kind, "firing", std::nullopt, "");
                write(s, std::nullopt, "");
                rising[a.item_key].push_back(rank_of(a.kind, a.threshold));
                if (it != stored.end()) stored.erase(it);
                continue;
            }
            stored_alert& s = it->second;
            // Still firing: the row is written only when something in it changed, so an
            // unchanged re-sync writes nothing.
            bool changed = s.severity != sev || s.summary != a.summary || s.detail != a.values || s.measure != a.measure;
            s.severity = sev;
            s.summary = a.summary;
            s.detail = a.values;
            s.measure = a.measure;
            const bool due = !s.last_notified || now_ - *s.last_notified >= cfg_.repeat_interval.count();
            if (!quiet && due) {
                queued += notify(s, a.kind, "firing", std::nullopt, "");
                changed = true;
            }
            if (changed) write(s, std::nullopt, "");
            stored.erase(it);
        }

        // What is left firing is no longer active: resolve it, saying why.
        for (auto& [id, s] : stored) {
            if (s.state != "firing") continue;
            const auto kind = kind_named(s.kind);
            std::string reason;
            bool announce = s.last_notified.has_value();
            const family_rank mine = kind ? rank_of(*kind, s.threshold) : family_rank{};
            const auto up = rising.find(s.item_key);
            const bool superseded =
                mine.family != 0 && up != rising.end() &&
                std::any_of(up->second.begin(), up->second.end(),
                            [&](const family_rank& r) { return r.family == mine.family && r.rank > mine.rank; });
            if (!kind || !rules.on(*kind)) {
                reason = "rule_off";
            } else if (superseded) {
                reason = "superseded";
                announce = false;  // the tighter alert's own notification says it all
            } else if (!s.item_key.empty() && !present(s.item_key)) {
                reason = "removed";
            } else {
                const std::optional<std::int64_t> now_measure = current(s.item_key, *kind);
                switch (*kind) {
                    case alert_kind::expiring:
                    case alert_kind::expired:
                        reason = !now_measure ? "expiry_cleared"
                                 : s.measure && *now_measure > *s.measure ? "renewed"
                                                                          : "threshold_changed";
                        break;
                    case alert_kind::quota_low:
                    case alert_kind::quota_exhausted:
                    case alert_kind::quota_forecast:
                        reason = now_measure && s.measure && *now_measure > *s.measure ? "topped_up" : "cleared";
                        break;
                    case alert_kind::resource_status: reason = "running"; break;
                    case alert_kind::delivery_failed: reason = "redelivered"; break;
                    default: reason = "recovered"; break;
                }
            }
            s.state = "resolved";
            if (announce && kind) queued += notify(s, *kind, "resolved", now_, reason);
            write(s, now_, reason);
        }
        return queued;
    }

private:
    int notify(stored_alert& s, alert_kind kind, std::string_view state, std::optional<epoch_ms> resolved_at,
               std::string_view reason) {
        const std::int64_t number = state == "firing" ? s.notifications + 1 : s.notifications;
        const std::string key =
            sha256_hex(fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", account_, source_, s.item_key, s.kind,
                                   s.threshold, s.episode, state, number))
                .substr(0, 32);
        std::string p;
        p.reserve(512 + s.summary.size() + s.detail.size());
        p += "{\"idempotency_key\":\"" + key + "\"";
        p += ",\"kind\":" + json_str(s.kind);
        p += ",\"severity\":" + json_str(s.severity);
        p += ",\"state\":" + json_str(state);
        p += ",\"account\":" + json_str(account_);
        p += ",\"source\":" + json_str(source_);
        p += ",\"id\":" + json_str(s.item_key);
        p += ",\"threshold\":" + json_str(s.threshold);
        p += ",\"since\":" + json_str(iso(s.since));
        p += ",\"resolved_at\":" + (resolved_at ? json_str(iso(*resolved_at)) : std::string("null"));
        p += ",\"reason\":" + (reason.empty() ? std::string("null") : json_str(reason));
        p += ",\"summary\":" + json_str(s.summary);
        p += ",\"values\":" + s.detail;
        p += fmt::format(",\"notification\":{}", number);
        p += ",\"created_at\":" + json_str(iso(now_)) + "}";

        if (!outbox_)
            outbox_.emplace(db_,
                            "INSERT OR IGNORE INTO alert_outbox (idempotency_key, created_at, run_id, account, source, "
                            "item_key, kind, threshold, state, severity, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
        SQLite::Statement& ins = *outbox_;
        ins.reset();
        ins.bind(1, key);
        ins.bind(2, static_cast<std::int64_t>(now_));
        if (run_id_) ins.bind(3, *run_id_);
        else ins.bind(3);
        ins.bind(4, account_);
        ins.bind(5, source_);
        ins.bind(6, s.item_key);
        ins.bind(7, s.kind);
        ins.bind(8, s.threshold);
        ins.bind(9, std::string(state));
        ins.bind(10, s.severity);
        ins.bind(11, p);
        if (ins.exec() == 0) return 0;  // this very notification is already queued
        const std::int64_t seq = db_.getLastInsertRowid();
        const auto sev = s.severity == "critical"  ? config::severity::critical
                         : s.severity == "warning" ? config::severity::warning
                                                   : config::severity::info;
        if (!deliveries_)
            deliveries_.emplace(db_,
                                "INSERT INTO alert_deliveries (sink, seq, status, attempts, next_attempt_at) "
                                "VALUES (?, ?, 'pending', 0, ?)");
        SQLite::Statement& deliver = *deliveries_;
        for (const auto& sink : sinks_) {
            if (sink.name == exclude_sink_ || !accepts(sink.filter, kind, sev, account_)) continue;
            deliver.bind(1, sink.name);
            deliver.bind(2, seq);
            deliver.bind(3, static_cast<std::int64_t>(now_));
            deliver.exec();
            deliver.reset();
        }
        if (state == "firing") {
            s.notifications = number;
            s.last_notified = now_;
        }
        return 1;
    }

    void write(const stored_alert& s, std::optional<epoch_ms> resolved_at, std::string_view reason) {
        if (!upsert_)
            upsert_.emplace(db_,
                            "INSERT OR REPLACE INTO alerts (account, source, item_key, kind, threshold, state, severity, "
                            "since, resolved_at, reason, last_notified, notifications, episode, summary, detail, "
                            "measure, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        SQLite::Statement& up = *upsert_;
        up.reset();
        up.bind(1, account_);
        up.bind(2, source_);
        up.bind(3, s.item_key);
        up.bind(4, s.kind);
        up.bind(5, s.threshold);
        up.bind(6, s.state);
        up.bind(7, s.severity);
        up.bind(8, static_cast<std::int64_t>(s.since));
        if (resolved_at) up.bind(9, static_cast<std::int64_t>(*resolved_at));
        else up.bind(9);
        if (reason.empty()) up.bind(10);
        else up.bind(10, std::string(reason));
        if (s.last_notified) up.bind(11, static_cast<std::int64_t>(*s.last_notified));
        else up.bind(11);
        up.bind(12, s.notifications);
        up.bind(13, s.episode);
        up.bind(14, s.summary);
        up.bind(15, s.detail);
        if (s.measure) up.bind(16, *s.measure);
        else up.bind(16);
        up.bind(17, static_cast<std::int64_t>(now_));
        up.exec();
    }

    SQLite::Database& db_;
    const config::alerts_config& cfg_;
    std::string account_;
    std::string source_;
    epoch_ms now_;
    std::optional<std::int64_t> run_id_;
    std::vector<config::sink_config> sinks_;
    std::string_view exclude_sink_;
    // Prepared once per reconciliation: a first sync may queue a notification per item.
    std::optional<SQLite::Statement> outbox_, deliveries_, upsert_;
};

std::optional<std::int64_t> opt_int(const SQLite::Column& c) {
    return c.isNull() ? std::nullopt : std::optional<std::int64_t>(c.getInt64());
}

source_health read_health(SQLite::Database& db, std::string_view account, std::string_view source) {
    source_health h;
    SQLite::Statement q(db,
                        "SELECT status, finished_at, error, error_kind FROM sync_runs WHERE account = ? AND source = ? "
                        "ORDER BY id DESC");
    q.bind(1, std::string(account));
    q.bind(2, std::string(source));
    bool latest = true;
    while (q.executeStep()) {
        const std::string status = q.getColumn(0).getString();
        if (status == "ok") {
            h.last_ok = q.getColumn(1).getInt64();
            break;
        }
        if (latest) {
            h.last_error = q.getColumn(2).getString();
            h.auth_rejected = !q.getColumn(3).isNull() && q.getColumn(3).getString() == "auth";
        }
        latest = false;
        ++h.consecutive_failures;
    }
    SQLite::Statement first(db, "SELECT min(started_at) FROM sync_runs WHERE account = ? AND source = ?");
    first.bind(1, std::string(account));
    first.bind(2, std::string(source));
    if (first.executeStep()) h.first_run = opt_int(first.getColumn(0));
    return h;
}

}  // namespace

int update_source(SQLite::Database& db, const config::alerts_config& cfg, std::string_view account,
                  std::string_view source, epoch_ms now, std::optional<std::int64_t> run_id) {
    const bool groups = source == "purchased_groups";
    const config::alert_rules& rules = cfg.rules_for(account, source);

    // The quota series of every purchase, oldest first.
    std::unordered_map<std::string, std::vector<quota_point>> series;
    if (groups && rules.on(alert_kind::quota_forecast) && rules.forecast_days > 0) {
        SQLite::Statement q(db,
                            "SELECT purchase_id, time, quota_left FROM quota_samples WHERE account = ? AND time >= ? "
                            "AND quota_left IS NOT NULL ORDER BY purchase_id, time");
        q.bind(1, std::string(account));
        q.bind(2, static_cast<std::int64_t>(now - rules.forecast_window.count()));
        while (q.executeStep())
            series[q.getColumn(0).getString()].push_back({q.getColumn(1).getInt64(), q.getColumn(2).getInt64()});
    }

    std::vector<active_alert> active;
    const std::string table = groups ? "purchased_groups" : "subscription_resources";
    {
        SQLite::Statement q(db, groups ? "SELECT item_key, group_name, expire_time, quota_left, quota_used, NULL, NULL "
                                         "FROM purchased_groups WHERE account = ? AND removed_at IS NULL"
                                       : "SELECT item_key, resource_type, expire_time, NULL, NULL, resource_status, "
                                         "resource_spec_code FROM subscription_resources WHERE account = ? AND "
                                         "removed_at IS NULL");
        q.bind(1, std::string(account));
        item_facts item;
        static const std::vector<quota_point> no_series;
        while (q.executeStep()) {
            item.key = q.getColumn(0).getString();
            item.name = q.getColumn(1).isNull() ? std::string() : q.getColumn(1).getString();
            if (!q.getColumn(6).isNull()) item.name += (item.name.empty() ? "" : " ") + q.getColumn(6).getString();
            item.expire_time = opt_int(q.getColumn(2));
            item.quota_left = opt_int(q.getColumn(3));
            item.quota_used = opt_int(q.getColumn(4));
            item.resource_status = opt_int(q.getColumn(5));
            auto s = series.find(item.key);
            auto found = evaluate_item(item, s == series.end() ? std::span<const quota_point>(no_series) : s->second,
                                       now, rules, source);
            for (auto& a : found) active.push_back(std::move(a));
        }
    }
    for (auto& a : evaluate_health(read_health(db, account, source), now, rules)) active.push_back(std::move(a));

    // Only alerts that stop firing look their item up again, to say why.
    SQLite::Statement lookup(db, fmt::format("SELECT expire_time, {}, {} FROM {} WHERE account = ? AND item_key = ? "
                                             "AND removed_at IS NULL",
                                             groups ? "quota_left" : "NULL", groups ? "NULL" : "resource_status", table));
    struct measures {
        bool present = false;
        std::optional<std::int64_t> expire, quota_left, status;
    };
    auto measure_of = [&](const std::string& item) {
        measures m;
        lookup.reset();
        lookup.bind(1, std::string(account));
        lookup.bind(2, item);
        if (lookup.executeStep()) {
            m.present = true;
            m.expire = opt_int(lookup.getColumn(0));
            m.quota_left = opt_int(lookup.getColumn(1));
            m.status = opt_int(lookup.getColumn(2));
        }
        return m;
    };
    reconciler r(db, cfg, account, source, now, run_id);
    return r.run(
        active, rules, [](const std::string&, const std::string& kind) { return kind != "delivery_failed"; },
        [&](const std::string& item) { return measure_of(item).present; },
        [&](const std::string& item, alert_kind kind) -> std::optional<std::int64_t> {
            const measures m = measure_of(item);
            switch (kind) {
                case alert_kind::expiring:
                case alert_kind::expired: return m.expire;
                case alert_kind::resource_status: return m.status;
                default: return m.quota_left;
            }
        });
}

int update_delivery_failed(SQLite::Database& db, const config::alerts_config& cfg, std::string_view sink,
                           std::int64_t dead, std::string_view last_error, epoch_ms now) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    const config::alert_rules& rules = cfg.rules;
    std::vector<active_alert> active;
    if (dead > 0 && rules.on(alert_kind::delivery_failed))
        active.push_back({alert_kind::delivery_failed, std::string(sink), "",
                          fmt::format("sink \"{}\" gave up on {} notification{}; last error: {} (see `subsyncd alerts "
                                      "--deliveries`, retry with `subsyncd alerts --redeliver`)",
                                      sink, dead, dead == 1 ? "" : "s", last_error),
                          fmt::format(R"({{"sink":{},"dead_lettered":{},"last_error":{}}})", json_str(sink), dead,
                                      json_str(last_error)),
                          dead});
    reconciler r(db, cfg, "", alerts_source, now, std::nullopt);
    const std::string name(sink);
    const int queued = r.run(
        active, rules,
        [&](const std::string& item, const std::string& kind) { return kind == "delivery_failed" && item == name; },
        [](const std::string&) { return true; },
        [](const std::string&, alert_kind) -> std::optional<std::int64_t> { return std::nullopt; }, sink);
    tx.commit();
    return queued;
}

std::vector<alert_row> read_alerts(SQLite::Database& db, bool all) {
    std::vector<alert_row> out;
    SQLite::Statement q(db, std::string("SELECT account, source, item_key, kind, threshold, state, severity, since, "
                                        "resolved_at, reason, last_notified, notifications, summary, detail, updated_at "
                                        "FROM alerts") +
                                (all ? "" : " WHERE state = 'firing'"));
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
        r.resolved_at = opt_int(q.getColumn(8));
        r.reason = q.getColumn(9).isNull() ? std::string() : q.getColumn(9).getString();
        r.last_notified = opt_int(q.getColumn(10));
        r.notifications = q.getColumn(11).getInt64();
        r.summary = q.getColumn(12).getString();
        r.detail = q.getColumn(13).getString();
        r.updated_at = q.getColumn(14).getInt64();
        out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const alert_row& a, const alert_row& b) {
        const int sa = (a.state == "firing" ? 10 : 0) + severity_rank(a.severity);
        const int sb = (b.state == "firing" ? 10 : 0) + severity_rank(b.severity);
        if (sa != sb) return sa > sb;
        return std::tie(a.account, a.source, a.item_key, a.kind, a.threshold) <
               std::tie(b.account, b.source, b.item_key, b.kind, b.threshold);
    });
    return out;
}

}  // namespace subsync::sync::alerts
