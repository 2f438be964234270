#pragma once

#include <subsync/sync/records.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace subsync::sync {

/// The earliest and latest times subsync keeps: 0001-01-01T00:00:00Z and
/// 9999-12-31T23:59:59.999Z, the range ISO-8601 writes with four-digit years.
inline constexpr epoch_ms min_time = -62'135'596'800'000;
inline constexpr epoch_ms max_time = 253'402'300'799'999;

/// The one rule for times outside that range (an API may send any 64-bit epoch
/// value): clamped to it. The parsers store clamped values, and every formatter
/// clamps too, so the snapshot, exports, report and alert texts agree.
[[nodiscard]] constexpr epoch_ms clamp_time(epoch_ms t) noexcept {
    return t < min_time ? min_time : t > max_time ? max_time : t;
}

/// Parses an ISO-8601 timestamp as the APIs send it: `YYYY-MM-DD`, then `T` or a
/// space, `HH:MM:SS`, an optional fraction (any number of digits), then `Z`,
/// `+HH:MM`/`-HH:MM`, or no zone at all, read as UTC (what the official SDKs'
/// time type does). Returns false for anything else, leaving `out` as it was; the
/// result is clamp_time()d. The parsers' form: no optional to build per time.
[[nodiscard]] bool read_iso8601(std::string_view text, epoch_ms& out) noexcept;

/// read_iso8601() as an optional.
[[nodiscard]] inline std::optional<epoch_ms> parse_iso8601(std::string_view text) noexcept {
    epoch_ms t = 0;
    if (!read_iso8601(text, t)) return std::nullopt;
    return t;
}

/// Formats clamp_time(t) as `YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DDTHH:MM:SS.mmmZ`
/// when the milliseconds are not zero.
[[nodiscard]] std::string format_iso8601(epoch_ms t);

/// Appends what format_iso8601(t) returns, without a temporary string.
void append_iso8601(std::string& out, epoch_ms t);

}  // namespace subsync::sync
