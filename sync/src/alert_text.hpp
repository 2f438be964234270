#pragma once
// Text helpers shared by the alert rules (alert_rules.cpp) and the state machine (alerts.cpp).

#include <subsync/sync/columns.hpp>
#include <subsync/sync/records.hpp>
#include <subsync/sync/time.hpp>

#include <algorithm>
#include <string>
#include <string_view>

namespace subsync::sync::alerts::detail {

/// ISO-8601 of a time, clamped to years 0001..9999 (an API may send any 64-bit value).
inline std::string iso(epoch_ms t) {
    constexpr epoch_ms first = -62'135'596'800'000;  // 0001-01-01T00:00:00Z
    constexpr epoch_ms last = 253'402'300'799'999;   // 9999-12-31T23:59:59.999Z
    return format_iso8601(std::clamp(t, first, last));
}

inline std::string json_str(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

}  // namespace subsync::sync::alerts::detail
