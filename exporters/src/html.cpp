#include "detail/html.hpp"

#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace subsync::exporters::detail {
namespace {

constexpr double day_ms = 86'400'000.0;

// Chart geometry (px): the plot area inside a fixed-size viewBox.
constexpr double width = 360, height = 150;
constexpr double left_edge = 44, right_edge = width - 8, top_edge = 8, bottom_edge = height - 22;

}  // namespace

void append_html(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            case '\0': out += "\xEF\xBF\xBD"; break;
            default: out += c;
        }
    }
}

std::string truncate_utf8(std::string_view s, std::size_t max_chars) {
    std::size_t chars = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // a continuation byte
        if (chars == max_chars) return std::string(s.substr(0, i)) + "…";
        ++chars;
    }
    return std::string(s);
}

std::string short_number(double v) {
    const double a = std::fabs(v);
    if (a >= 1e21) return fmt::format("{:.2e}", v);
    if (a < 1e4) return fmt::format("{:.0f}", v);
    constexpr std::string_view units = "kMGTPE";
    double scale = 1e3;
    std::size_t u = 0;
    while (u + 1 < units.size() && a >= scale * 1e3) {
        scale *= 1e3;
        ++u;
    }
    return fmt::format("{:.3g}{}", v / scale, units[u]);
}

std::string date_of(sync::epoch_ms t) { return sync::format_iso8601(t).substr(0, 10); }

std::string quota_chart_svg(std::span<const quota_sample> samples, const std::optional<alerting::forecast>& fit,
                            sync::epoch_ms now, sync::epoch_ms fit_from) {
    sync::epoch_ms t_min = samples.front().time;
    sync::epoch_ms t_max = std::max(now, samples.back().time);
    // The forecast reaches zero at `exhaustion`; show up to that, but no further
    // than 90 days past now, so a slow burn does not squash the history.
    if (fit) t_max = std::max(t_max, std::min(fit->exhaustion, now + static_cast<sync::epoch_ms>(90 * day_ms)));
    if (t_max <= t_min) t_min = t_max - static_cast<sync::epoch_ms>(day_ms);
    const auto fitted = [&](sync::epoch_ms t) {
        return fit ? fit->burn_per_day * static_cast<double>(fit->exhaustion - t) / day_ms : 0.0;
    };
    const sync::epoch_ms fit_start = std::clamp(fit_from, t_min, t_max);
    double y_max = 0;
    for (const auto& s : samples) {
        const double used = static_cast<double>(s.used.value_or(0)), left = static_cast<double>(s.left.value_or(0));
        y_max = std::max({y_max, used + left, used, left});
    }
    if (fit) y_max = std::max(y_max, fitted(fit_start));
    if (y_max <= 0) y_max = 1;

    const auto x = [&](sync::epoch_ms t) {
        return left_edge + static_cast<double>(t - t_min) / static_cast<double>(t_max - t_min) * (right_edge - left_edge);
    };
    const auto y = [&](double v) { return bottom_edge - std::clamp(v / y_max, 0.0, 1.0) * (bottom_edge - top_edge); };

    std::string out = fmt::format(R"(<svg class="chart" viewBox="0 0 {0} {1}" width="{0}" height="{1}" role="img">)",
                                  width, height);
    out += fmt::format(R"(<line class="axis" x1="{0}" y1="{1}" x2="{0}" y2="{2}"/>)", left_edge, top_edge, bottom_edge);
    out += fmt::format(R"(<line class="axis" x1="{0}" y1="{2}" x2="{1}" y2="{2}"/>)", left_edge, right_edge, bottom_edge);
    out += fmt::format(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{}</text>)", left_edge - 3,
                       top_edge + 8, short_number(y_max));
    out += fmt::format(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end">0</text>)", left_edge - 3, bottom_edge);
    out += fmt::format(R"(<text class="tick" x="{}" y="{}">{}</text>)", left_edge, height - 6, date_of(t_min));
    out += fmt::format(R"(<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>)", right_edge, height - 6,
                       date_of(t_max));
    if (now >= t_min && now <= t_max)
        out += fmt::format(R"(<line class="now" x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}"/>)", x(now), top_edge,
                           bottom_edge);

    const auto series = [&](const char* cls, auto value) {
        std::string points;
        std::size_t n = 0;
        for (const auto& s : samples)
            if (auto v = value(s)) {
                points += fmt::format("{}{:.1f},{:.1f}", n++ ? " " : "", x(s.time), y(static_cast<double>(*v)));
            }
        if (n > 1) out += fmt::format(R"(<polyline class="{}" points="{}"/>)", cls, points);
        if (n == 1) {
            const auto comma = points.find(',');
            out += fmt::format(R"(<circle class="{}" cx="{}" cy="{}" r="2.5"/>)", cls, points.substr(0, comma),
                               points.substr(comma + 1));
        }
    };
    series("q-used", [](const quota_sample& s) { return s.used; });
    series("q-left", [](const quota_sample& s) { return s.left; });
    if (fit) {
        const sync::epoch_ms end = std::min(fit->exhaustion, t_max);
        out += fmt::format(R"(<line class="q-forecast" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>)",
                           x(fit_start), y(fitted(fit_start)), x(end), y(fitted(end)));
    }
    out += "</svg>";
    return out;
}

}  // namespace subsync::exporters::detail
