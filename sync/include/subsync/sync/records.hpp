#pragma once

#include <subsync/sync/field.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

/// Which API a listing comes from.
enum class source_kind { purchased_groups, subscriptions };

/// The name used in the database, logs and exports ("purchased_groups", "subscription_resources").
[[nodiscard]] std::string_view to_string(source_kind k) noexcept;

/// Milliseconds since the Unix epoch, UTC.
using epoch_ms = std::int64_t;

/// One entry of `GET /v1.0/apigw/purchases/groups` (`purchases[]`). Times are
/// normalised from ISO-8601 strings to epoch milliseconds.
struct purchased_group {
    std::string id;  ///< subscription id, the key
    field<std::string> group_id;
    field<std::string> group_name;
    field<std::string> group_remark;
    field<epoch_ms> order_time;
    field<epoch_ms> start_time;
    field<epoch_ms> expire_time;
    field<std::vector<std::string>> group_domains;
    field<std::int64_t> quota_left;
    field<std::int64_t> quota_used;
    field<std::string> app_key;
    field<std::string> app_secret;  ///< only ever the masked value; see parse.cpp

    friend bool operator==(const purchased_group&, const purchased_group&) = default;
};

/// One `{key, value}` of a resource's `tag_list`.
struct tag {
    std::string key;
    std::string value;
    friend bool operator==(const tag&, const tag&) = default;
};

/// One resource of `GET /v1/subscriptions/orders`, flattened with the
/// region/project group it was listed under.
struct subscription_resource {
    field<std::string> region_id;  ///< null = the endpoint's own region
    field<std::string> project_id;
    std::string resource_id;
    field<std::int64_t> resource_size;
    field<std::string> resource_type;
    field<std::string> resource_spec_code;
    field<epoch_ms> create_time;
    field<epoch_ms> expire_time;  ///< documented for pay-per-use only, seen on PREPAID too
    field<std::int64_t> resource_status;
    field<std::string> order_id;
    field<std::string> charging_mode;  ///< as sent; compare case-insensitively
    field<bool> to_period;
    field<std::vector<tag>> tag_list;

    friend bool operator==(const subscription_resource&, const subscription_resource&) = default;
};

/// The snapshot key of an item within its (account, source):
/// the purchase `id`, or `region_id/project_id/resource_id` where the region and
/// project have `%` and `/` percent-encoded, null is empty and "" is `%00`.
[[nodiscard]] std::string item_key(const purchased_group& g);
[[nodiscard]] std::string item_key(const subscription_resource& r);

}  // namespace subsync::sync
