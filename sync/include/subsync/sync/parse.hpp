#pragma once

#include <subsync/sync/columns.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/records.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace subsync::sync {

/// One page of `GET /v1.0/apigw/purchases/groups`.
struct groups_page {
    std::int64_t total = 0;  ///< all matches, across pages
    std::int64_t size = 0;   ///< entries on this page, as the API counts them
    std::vector<purchased_group> purchases;
};

/// Turns response bodies into records: the only place JSON exists. Holds a
/// reusable simdjson parser, so keep one per worker rather than per page.
class body_parser {
public:
    body_parser();
    ~body_parser();
    body_parser(body_parser&&) noexcept;
    body_parser& operator=(body_parser&&) noexcept;

    /// Parses a purchases page. Errors name the field: `purchases[3].quota_left: expected integer, got string`.
    /// The body's capacity should leave simdjson's padding to avoid a copy.
    [[nodiscard]] result<groups_page> groups(const std::string& body);

    /// Parses the orders document into one record per resource.
    [[nodiscard]] result<std::vector<subscription_resource>> orders(const std::string& body);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Parses one item object as the snapshot stores it in `changes` (the
/// source's fields, times as epoch ms) into cells, with the API parsers, so
/// history reads back exactly what to_cells() wrote.
[[nodiscard]] result<std::vector<cell>> parse_item_cells(source_kind source, const std::string& json_object);

/// Reads `token.expires_at` from an IAM token response body.
[[nodiscard]] result<epoch_ms> parse_token_expiry(const std::string& body);

/// Extracts `error_code: error_msg` from a Huawei-style error body (any of the
/// shapes in refs/huawei-cloud.md); for a non-JSON body, its first bytes.
[[nodiscard]] std::string describe_error_body(const std::string& body);

}  // namespace subsync::sync
