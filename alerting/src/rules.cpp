// The alert rules: pure functions of an item's or a source's facts, the time and the config
// (docs/alerts.md "Kinds"). The state machine that turns them into notifications is alerts.cpp.

#include "text.hpp"

#include <subsync/alerting/alerts.hpp>

#include <subsync/config/load.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace subsync::alerting {
namespace {

using config::alert_kind;
using detail::json_str;
constexpr epoch_ms ms_per_day = 86'400'000;

/// a - b, saturated: API values (expire_time, quota) may be anything a 64-bit integer holds.
std::int64_t minus(std::int64_t a, std::int64_t b) {
    std::int64_t r = 0;
    if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? std::numeric_limits<std::int64_t>::max()
                                                       : std::numeric_limits<std::int64_t>::min();
    return r;
}


/// "1.5" rather than "1.500000"; integers without a fraction.
std::string number(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<std::int64_t>(v));
    return fmt::format("{:.4g}", v);
}

/// The UTC calendar day `t` falls on, counted from 1970-01-01.
std::int64_t utc_day(epoch_ms t) { return t / ms_per_day - (t % ms_per_day < 0 ? 1 : 0); }

/// UTC calendar days from `now`'s date to `when`'s: 0 on the day itself, negative after it. The
/// texts of an expiry alert count these, so they change for every alert at once, at 00:00 UTC,
/// not each at its own time of day: an unchanged re-sync on the same day rewrites no alert row
/// and no export (docs/decisions.md).
std::int64_t calendar_days(epoch_ms when, epoch_ms now) { return utc_day(when) - utc_day(now); }

/// "expires today", "expires tomorrow", "expires in 3 days", counted as calendar_days(). No
/// hours: a countdown in hours would change an alert's text every hour of its last day.
std::string expires_text(epoch_ms expire, epoch_ms now) {
    const std::int64_t days = calendar_days(expire, now);
    if (days <= 0) return "expires today";
    if (days == 1) return "expires tomorrow";
    return fmt::format("expires in {} days", days);
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
            steps.push_back(static_cast<double>(series[i].left) - static_cast<double>(series[i - 1].left));
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
            if (static_cast<double>(series[i].left) - static_cast<double>(series[i - 1].left) > rise) begin = i;
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
    // Clamped to ±100 years: a near-flat fit of huge values must not overflow the time.
    const double zero_day = std::clamp(-intercept / slope, -36'500.0, 36'500.0);
    forecast f;
    f.burn_per_day = -slope;
    f.exhaustion = t0 + static_cast<epoch_ms>(std::llround(zero_day * ms_per_day));
    f.r2 = r2;
    f.samples = n;
    return f;
}

namespace {

// The rules over one present item, one family at a time. Most items raise nothing: messages are
// only built for those that do.
struct item_evaluation {
    const item_facts& item;
    epoch_ms now;
    const config::alert_rules& rules;
    std::string_view source;
    std::vector<active_alert>& out;

    [[nodiscard]] std::string subject() const { return what(source, item); }

    // A resource that left the listing before it expired was unsubscribed or frozen (the orders
    // API lists running resources only). It fires until its expire_time, or until it is back.
    void removed_early(epoch_ms removed_at) {
        if (!item.expire_time || *item.expire_time <= now || !rules.on(alert_kind::removed_early)) return;
        const epoch_ms expire = *item.expire_time;
        out.push_back({alert_kind::removed_early, item.key, "",
                       fmt::format("{} left the listing on {}, before its expire_time {}: unsubscribed or frozen?",
                                   subject(), format_iso8601(removed_at), format_iso8601(expire)),
                       fmt::format(R"({{"removed_at":"{}","expire_time":"{}"}})", format_iso8601(removed_at),
                                   format_iso8601(expire)),
                       expire});
    }

    void expiry(epoch_ms expire) {
        auto values = [&] {
            return fmt::format(R"({{"expire_time":"{}","days_left":{}}})", format_iso8601(expire),
                               calendar_days(expire, now));
        };
        if (now >= expire) {
            if (rules.on(alert_kind::expired))
                out.push_back({alert_kind::expired, item.key, "",
                               fmt::format("{} expired on {} and is still listed", subject(), format_iso8601(expire)),
                               values(), expire});
            return;
        }
        if (!rules.on(alert_kind::expiring)) return;
        // The tightest threshold crossed: thresholds are sorted descending.
        std::optional<int> crossed;
        for (int d : rules.expiring_days)
            if (minus(expire, now) <= std::int64_t{d} * ms_per_day) crossed = d;
        if (crossed)
            out.push_back({alert_kind::expiring, item.key, fmt::format("{}d", *crossed),
                           fmt::format("{} {}, on {} (threshold {} day{})", subject(), expires_text(expire, now),
                                       format_iso8601(expire), *crossed, *crossed == 1 ? "" : "s"),
                           values(), expire});
    }

    [[nodiscard]] std::string used_text() const {
        return item.quota_used ? std::to_string(*item.quota_used) : std::string("null");
    }
    [[nodiscard]] std::string quota_values(std::int64_t left) const {
        return fmt::format(R"({{"quota_left":{},"quota_used":{}}})", left, used_text());
    }

    void quota_exhausted(std::int64_t left) {
        if (rules.on(alert_kind::quota_exhausted))
            out.push_back({alert_kind::quota_exhausted, item.key, "0",
                           fmt::format("{} has no quota left ({} used)", subject(),
                                       item.quota_used ? used_text() : std::string("unknown")),
                           quota_values(left), left});
    }

    void quota_low(std::int64_t left) {
        if (!rules.on(alert_kind::quota_low)) return;
        if (rules.quota_low_absolute > 0 && left < rules.quota_low_absolute)
            out.push_back({alert_kind::quota_low, item.key, fmt::format("abs:{}", rules.quota_low_absolute),
                           fmt::format("{} has {} quota left, under {}", subject(), left, rules.quota_low_absolute),
                           quota_values(left), left});
        const auto used = item.quota_used;
        const double total = used ? static_cast<double>(left) + static_cast<double>(*used) : 0.0;
        if (rules.quota_low_percent <= 0 || !used || total <= 0) return;
        const double percent = static_cast<double>(left) * 100.0 / total;
        if (percent < rules.quota_low_percent)
            out.push_back({alert_kind::quota_low, item.key, fmt::format("pct:{}", number(rules.quota_low_percent)),
                           fmt::format("{} has {} quota left, {}% of {} (under {}%)", subject(), left,
                                       number(std::floor(percent * 10) / 10), number(total),
                                       number(rules.quota_low_percent)),
                           quota_values(left), left});
    }

    void quota_forecast(std::int64_t left, std::span<const quota_point> series) {
        if (!rules.on(alert_kind::quota_forecast) || rules.forecast_days <= 0) return;
        const auto f = fit_forecast(series, now, rules);
        if (!f || minus(f->exhaustion, now) > std::int64_t{rules.forecast_days} * ms_per_day) return;
        const epoch_ms when = std::max(f->exhaustion, now);
        out.push_back({alert_kind::quota_forecast, item.key, fmt::format("{}d", rules.forecast_days),
                       fmt::format("{} will run out of quota around {} at about {} per day ({} left)", subject(),
                                   format_iso8601(when), number(std::round(f->burn_per_day)), left),
                       fmt::format(R"({{"quota_left":{},"exhaustion":"{}","burn_per_day":{},"samples":{},"r2":{}}})",
                                   left, format_iso8601(when), number(f->burn_per_day), f->samples,
                                   number(std::round(f->r2 * 1000) / 1000)),
                       left});
    }

    void resource_status(std::int64_t status) {
        if (status != 0 && rules.on(alert_kind::resource_status))
            out.push_back({alert_kind::resource_status, item.key, "",
                           fmt::format("{} is not running (resource_status {})", subject(), status),
                           fmt::format(R"({{"resource_status":{}}})", status), status});
    }
};

}  // namespace

std::vector<active_alert> evaluate_item(const item_facts& item, std::span<const quota_point> series, epoch_ms now,
                                        const config::alert_rules& rules, std::string_view source) {
    std::vector<active_alert> out;
    item_evaluation e{item, now, rules, source, out};
    if (item.removed_at) {
        e.removed_early(*item.removed_at);
        return out;
    }
    if (item.expire_time) e.expiry(*item.expire_time);
    if (const auto left = item.quota_left) {
        if (*left <= 0) {
            e.quota_exhausted(*left);
        } else {
            e.quota_low(*left);
            e.quota_forecast(*left, series);
        }
    }
    if (item.resource_status) e.resource_status(*item.resource_status);
    return out;
}

std::vector<epoch_ms> expiry_offsets(const config::alert_rules& rules) {
    std::vector<epoch_ms> out{0};  // expiring becomes expired; removed_early ends
    for (int d : rules.expiring_days) out.push_back(std::int64_t{d} * ms_per_day);
    return out;
}

epoch_ms next_utc_midnight(epoch_ms now) { return (utc_day(now) + 1) * ms_per_day; }

epoch_ms next_forecast_change(const item_facts& item, std::span<const quota_point> series, epoch_ms now,
                              const config::alert_rules& rules) {
    epoch_ms next = std::numeric_limits<epoch_ms>::max();
    auto at = [&](epoch_ms t) {  // the answer may differ from instant t on
        if (t > now) next = std::min(next, t);
    };
    const bool forecast = !item.removed_at && item.quota_left && *item.quota_left > 0 &&
                          rules.on(alert_kind::quota_forecast) && rules.forecast_days > 0;
    if (!forecast || series.empty()) return next;
    // The fit reads the samples inside [now - window, now]: it changes when one enters, or
    // leaves while there are enough to fit.
    const epoch_ms from = now - rules.forecast_window.count();
    const auto inside = std::count_if(series.begin(), series.end(),
                                      [&](const quota_point& p) { return p.time >= from && p.time <= now; });
    const bool fits = inside >= std::max(rules.forecast_min_samples, 2);
    for (const auto& p : series) {
        if (p.time > now) at(p.time);
        else if (fits && p.time >= from) at(p.time + rules.forecast_window.count() + 1);
    }
    if (auto f = fit_forecast(series, now, rules)) {
        if (f->exhaustion <= now) return now;  // its text says "around <now>"
        at(minus(f->exhaustion, std::int64_t{rules.forecast_days} * ms_per_day));
        at(f->exhaustion);
    }
    return next;
}

epoch_ms next_change(const item_facts& item, std::span<const quota_point> series, epoch_ms now,
                     const config::alert_rules& rules) {
    epoch_ms next = next_forecast_change(item, series, now, rules);
    if (!item.expire_time) return next;
    const epoch_ms expire = *item.expire_time;
    for (epoch_ms offset : expiry_offsets(rules))
        if (const epoch_ms t = minus(expire, offset); t > now && (offset == 0 || !item.removed_at)) next = std::min(next, t);
    // A firing expiry alert counts calendar days in its texts: they change at 00:00 UTC.
    const int widest = rules.expiring_days.empty() ? 0 : rules.expiring_days.front();
    if (!item.removed_at && now >= minus(expire, std::int64_t{widest} * ms_per_day))
        next = std::min(next, next_utc_midnight(now));
    return next;
}

std::string rules_fingerprint(const config::alerts_config& cfg, std::string_view account, std::string_view source) {
    // Bump when what evaluate_item answers, or how it words it, changes within a version.
    constexpr int rules_revision = 1;
    const config::alert_rules& r = cfg.rules_for(account, source);
    std::string out = fmt::format("{}/{};expiring={};abs={};pct={};forecast={},{},{},{};failing={};stale={};repeat={}",
                                  SUBSYNC_VERSION, rules_revision, fmt::join(r.expiring_days, ","),
                                  r.quota_low_absolute, r.quota_low_percent, r.forecast_days,
                                  r.forecast_window.count(), r.forecast_min_samples, r.forecast_min_r2,
                                  r.failing_after, r.stale_after.count(), cfg.repeat_interval.count());
    for (std::size_t k = 0; k < config::alert_kind_count; ++k)
        out += fmt::format(";{}={}", static_cast<int>(r.severities[k]), r.enabled[k] ? 1 : 0);
    for (const auto& s : cfg.silences)
        if (s.scopes(account, source))
            out += fmt::format(";silence={},{},{}", json_str(s.item), json_str(s.kind ? config::to_string(*s.kind) : std::string_view{}), s.until);
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
                                               format_iso8601(*h.last_ok))
                                 : fmt::format("no successful sync since the first attempt {} ago",
                                               config::format_duration(age)),
                       fmt::format(R"({{"last_ok":{},"age_seconds":{}}})",
                                   h.last_ok ? json_str(format_iso8601(*h.last_ok)) : std::string("null"), (now - *reference) / 1000),
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

}  // namespace subsync::alerting
