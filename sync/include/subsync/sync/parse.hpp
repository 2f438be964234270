#pragma once

#include <subsync/sync/columns.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/records.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace subsync::sync {

/// An item of a listing that could not be read (a value of the wrong type, a
/// key sent twice, no id): the rest of its page is still read.
struct unreadable_item {
    std::size_t index = 0;  ///< position in its array
    std::string id;         ///< the item's id when that much was readable, else empty
    std::string field;      ///< the key that could not be read (empty: the item is not an object)
    std::string message;    ///< `purchases[3].quota_left: expected integer, got string`
};

/// One page of `GET /v1.0/apigw/purchases/groups`.
struct groups_page {
    std::int64_t total = 0;   ///< all matches, across pages
    std::int64_t size = 0;    ///< entries on this page, as the API counts them
    std::int64_t served = 0;  ///< entries in the `purchases` array, readable or not
    std::vector<purchased_group> purchases;
    std::vector<unreadable_item> unreadable;
};

/// The document of `GET /v1/subscriptions/orders`, one record per resource.
struct orders_document {
    std::vector<subscription_resource> items;
    std::vector<unreadable_item> unreadable;  ///< `index` is within its region/project entry
};

/// `item=ID field=F: message` for one unreadable item, as the listing's incomplete reason says it.
[[nodiscard]] std::string describe(const unreadable_item& item);

/// Turns response bodies into records: the only place JSON exists. Holds a
/// reusable simdjson parser, so keep one per worker rather than per page.
class body_parser {
public:
    body_parser();
    ~body_parser();
    body_parser(body_parser&&) noexcept;
    body_parser& operator=(body_parser&&) noexcept;

    /// Parses a purchases page. A page that is not a listing (not JSON, an error
    /// document, a key twice, `purchases` null or missing while `total` > 0) is an
    /// error; an item that cannot be read is listed in `unreadable`, naming the field
    /// (`purchases[3].quota_left: expected integer, got string`), and the rest is kept.
    /// The body's capacity should leave simdjson's padding to avoid a copy.
    [[nodiscard]] result<groups_page> groups(const std::string& body);

    /// As groups(body), into `page`: a caller that keeps its page from one call to the next
    /// reuses its records and their strings, so a warm page costs no allocation per field.
    /// On an error, `page` holds nothing of use.
    [[nodiscard]] result<void> groups(const std::string& body, groups_page& page);

    /// Parses the orders document. A null or missing `resources` array, at the top or
    /// in a region/project entry, is an error (the API has no total to tell an empty
    /// listing), as are an error document and a key twice; unreadable items as groups().
    [[nodiscard]] result<orders_document> orders(const std::string& body);

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

/// The ids of the projects named `name` in an IAM `GET /v3/projects` answer.
[[nodiscard]] result<std::vector<std::string>> parse_project_ids(const std::string& body, std::string_view name);

/// What an error answer's body says.
struct error_body {
    std::string message;     ///< `code: message`, then details; for a non-JSON body, its first bytes
    std::string request_id;  ///< `request_id` in the body (used when the header has none), else empty
};

/// Reads an error body the way the official SDKs do: `error_code`/`error_msg`
/// (also camelCase), `code`/`message`, the same pairs inside a nested object (IAM's
/// `{"error": {...}}`), `details[]`, `encoded_authorization_message` and `request_id`.
[[nodiscard]] error_body read_error_body(const std::string& body);

/// read_error_body(body).message.
[[nodiscard]] std::string describe_error_body(const std::string& body);

}  // namespace subsync::sync
