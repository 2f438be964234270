#pragma once

#include <subsync/sync/records.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace subsync::sync {

/// Parses an ISO-8601 UTC timestamp as the APIs send it: `YYYY-MM-DDTHH:MM:SS`,
/// optional fraction (any number of digits), then `Z` or `+HH:MM`/`-HH:MM`.
/// Returns nullopt for anything else.
[[nodiscard]] std::optional<epoch_ms> parse_iso8601(std::string_view text) noexcept;

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DDTHH:MM:SS.mmmZ` when the
/// milliseconds are not zero.
[[nodiscard]] std::string format_iso8601(epoch_ms t);

/// Appends what format_iso8601(t) returns, without a temporary string.
void append_iso8601(std::string& out, epoch_ms t);

}  // namespace subsync::sync
