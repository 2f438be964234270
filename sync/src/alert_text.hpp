#pragma once
// Text helpers shared by the alert rules (alert_rules.cpp) and the state machine (alerts.cpp).

#include <subsync/sync/columns.hpp>
#include <subsync/sync/records.hpp>
#include <subsync/sync/time.hpp>

#include <algorithm>
#include <string>
#include <string_view>

namespace subsync::sync::alerts::detail {

inline std::string json_str(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

}  // namespace subsync::sync::alerts::detail
