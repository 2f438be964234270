#pragma once
// What the emulator answers, as a pure function of the request and the data: no sockets, no
// Beast, so the server TU only moves bytes.

#include "subsync/emulator/server.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace subsync::emulator::detail {

/// The parts of a request that decide the answer.
struct request_info {
    std::string_view method;
    std::string_view target;                  ///< origin-form: path[?query]
    std::optional<std::string_view> token;     ///< X-Auth-Token
    std::optional<std::string_view> language;  ///< X-Language
    std::string_view request_id;               ///< echoed in APIG error bodies
};

/// Faults switched on by a test.
struct faults {
    std::map<int, unsigned> pages;   ///< purchases page_no → status
    std::optional<unsigned> orders;  ///< status for every orders request
};

enum class endpoint { purchases, orders, other };

/// An answer: status and compact JSON body.
struct reply {
    unsigned status = 200;
    std::string body;
    endpoint where = endpoint::other;
};

inline constexpr std::string_view purchases_path = "/v1.0/apigw/purchases/groups";
inline constexpr std::string_view orders_path = "/v1/subscriptions/orders";

/// Routes a request: 405 for non-GET, 404 for unknown paths, else the endpoint's answer.
reply route(const request_info& request, const dataset& data, const faults& active, std::string_view token);

/// Percent-decodes a query component ('+' is a space, as in HTML forms); nullopt if malformed.
std::optional<std::string> url_decode(std::string_view s);

}  // namespace subsync::emulator::detail
