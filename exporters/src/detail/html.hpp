#pragma once
// Pieces of report.html that are pure functions: escaping and the quota chart.

#include <subsync/alerting/alerts.hpp>
#include <subsync/sync/records.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace subsync::exporters::detail {

/// Appends `s` as HTML text or a double-quoted attribute value: & < > " ' are
/// escaped, NUL becomes U+FFFD. Every string from the API or the database goes
/// through here, so nothing it holds can open a tag or an attribute.
void append_html(std::string& out, std::string_view s);

/// At most `max_chars` code points of UTF-8 `s` (never cutting one), with "…" when cut.
[[nodiscard]] std::string truncate_utf8(std::string_view s, std::size_t max_chars);

/// "1.5k", "2.0M", "2G": short quota numbers for axes and captions.
[[nodiscard]] std::string short_number(double v);

/// "2026-11-25" of an epoch-ms time (UTC).
[[nodiscard]] std::string date_of(sync::epoch_ms t);

/// One row of quota_samples.
struct quota_sample {
    sync::epoch_ms time = 0;
    std::optional<std::int64_t> used;
    std::optional<std::int64_t> left;
};

/// An inline <svg> of quota left and used over time, a "now" line and, with a
/// forecast, its fitted line down to zero. `samples` are oldest first, not empty.
[[nodiscard]] std::string quota_chart_svg(std::span<const quota_sample> samples,
                                          const std::optional<alerting::forecast>& fit, sync::epoch_ms now,
                                          sync::epoch_ms fit_from);

}  // namespace subsync::exporters::detail
