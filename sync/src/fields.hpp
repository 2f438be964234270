#pragma once
// The members of each listing the parsers read: one list for the parsers (parse.cpp) and for
// the body filter that drops every other member as the bytes arrive (body_filter.cpp).

#include <array>
#include <string_view>

namespace subsync::sync::detail {

/// The fields of a purchase, in the order of parse.cpp's seen-key slots.
inline constexpr std::array<std::string_view, 12> purchase_keys{
    "id",         "group_id",      "group_name", "group_remark", "order_time", "start_time",
    "expire_time", "group_domains", "quota_left", "quota_used",   "app_key",    "app_secret"};

/// The fields of an orders resource, in the order of parse.cpp's seen-key slots.
inline constexpr std::array<std::string_view, 11> resource_keys{
    "resource_id",     "resource_size", "resource_type", "resource_spec_code", "create_time", "expire_time",
    "resource_status", "order_id",      "charging_mode", "to_period",          "tag_list"};

/// What a 200 answer holding an error document says, at its top level (parse.cpp
/// error_document() and read_error_body()).
inline constexpr std::array<std::string_view, 13> error_keys{
    "error_code", "error_msg", "errorCode", "errorMsg", "code",      "message",   "title",
    "details",    "error",     "request_id", "requestId", "X-Request-Id", "encoded_authorization_message"};

}  // namespace subsync::sync::detail
