// STOPGAP until the lead's sync::alerts::fit_forecast lands on main: delete this
// file and its line in exporters/CMakeLists.txt then (a duplicate definition
// fails the link of subsyncd loudly). It follows the contract in alerts.hpp.
#include <subsync/sync/alerts.hpp>

#include <algorithm>
#include <cmath>

namespace subsync::sync::alerts {

std::optional<forecast> fit_forecast(std::span<const quota_point> series, epoch_ms now,
                                     const config::alert_rules& rules) {
    const epoch_ms from = now - rules.forecast_window.count();
    std::size_t first = 0;
    for (std::size_t i = 0; i < series.size(); ++i) {
        if (series[i].time < from) first = i + 1;
        else if (i > 0 && series[i].left > series[i - 1].left) first = i;  // a top-up starts a new series
    }
    const std::size_t n = series.size() - std::min(first, series.size());
    if (n < static_cast<std::size_t>(std::max(2, rules.forecast_min_samples))) return std::nullopt;
    constexpr double day = 86'400'000.0;
    double sx = 0, sy = 0;
    for (std::size_t i = first; i < series.size(); ++i) {
        sx += static_cast<double>(series[i].time - now) / day;
        sy += static_cast<double>(series[i].left);
    }
    const double mx = sx / static_cast<double>(n), my = sy / static_cast<double>(n);
    double sxx = 0, sxy = 0, syy = 0;
    for (std::size_t i = first; i < series.size(); ++i) {
        const double dx = static_cast<double>(series[i].time - now) / day - mx;
        const double dy = static_cast<double>(series[i].left) - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if (sxx <= 0) return std::nullopt;
    const double slope = sxy / sxx;  // quota per day; negative when consumed
    if (slope >= 0) return std::nullopt;
    const double r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1.0;
    if (r2 < rules.forecast_min_r2) return std::nullopt;
    const double intercept = my - slope * mx;  // left at `now`
    forecast f;
    f.burn_per_day = -slope;
    f.exhaustion = now + static_cast<epoch_ms>(std::llround(intercept / -slope * day));
    f.r2 = r2;
    f.samples = n;
    return f;
}

}  // namespace subsync::sync::alerts
