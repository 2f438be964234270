#pragma once
// Text helpers shared by the alert rules (rules.cpp) and the state machine (state.cpp).

#include <subsync/sync/columns.hpp>
#include <subsync/sync/records.hpp>
#include <subsync/sync/time.hpp>

#include <algorithm>
#include <string>
#include <string_view>

namespace subsync::alerting {

// The record types and their text forms the rules and messages are written in.
using sync::append_json_string;
using sync::format_iso8601;

}  // namespace subsync::alerting

namespace subsync::alerting::detail {

inline std::string json_str(std::string_view s) {
    std::string out;
    sync::append_json_string(out, s);
    return out;
}

}  // namespace subsync::alerting::detail
