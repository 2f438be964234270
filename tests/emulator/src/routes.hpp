#pragma once
// What the emulator answers, as a pure function of the request and the data: no sockets, no
// Beast, so the server TU only moves bytes. Authentication is decided before (gateway.hpp) and
// faults after (faults.hpp); this file knows the listings.

#include "reshape.hpp"
#include "subsync/emulator/server.hpp"

#include <cstdint>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::emulator::detail {

/// The parts of a request that decide the answer.
struct request_info {
    std::string_view method;
    std::string_view target;                  ///< origin-form: path[?query]
    bool authenticated = false;               ///< the gateway accepted a token or a signature
    std::optional<std::string_view> language;  ///< X-Language
    std::string_view request_id;               ///< echoed in APIG error bodies
};

enum class endpoint { purchases, orders, iam, iam_projects, other };

/// An answer: status, body and what goes with it.
struct reply {
    unsigned status = 200;
    std::string body;
    endpoint where = endpoint::other;
    std::string content_type = "application/json;charset=UTF-8";
    std::vector<std::pair<std::string, std::string>> headers{};  ///< extra: Retry-After, X-Subject-Token, Allow
};

inline constexpr std::string_view purchases_path = "/v1.0/apigw/purchases/groups";
inline constexpr std::string_view orders_path = "/v1/subscriptions/orders";
inline constexpr std::string_view iam_tokens_path = "/v3/auth/tokens";
inline constexpr std::string_view iam_projects_path = "/v3/projects";

/// Which endpoint `target`'s path names.
endpoint endpoint_of(std::string_view target);

/// The purchases `page_no` of `target` (absent or empty = 1); nullopt when it is malformed, out of
/// int range or below 1.
std::optional<int> page_of(std::string_view target);

/// The listing modes: paging lies and item rewrites.
struct listing_modes {
    std::size_t max_page_size = 0;  ///< 0: page_size as asked
    std::optional<std::uint64_t> lying_total;
    item_modes items;
};

/// Routes a listing request: 405 for non-GET, 404 for unknown paths, 401 when not authenticated,
/// else the endpoint's answer, shaped by `modes`.
reply route(const request_info& request, const dataset& data, const listing_modes& modes = {});

/// APIG error body for `status` with the code a real gateway uses for it (429: APIG.0308).
reply apig_fault(unsigned status, std::string_view request_id, endpoint where);

/// SecMaster-style error body for `status`.
reply secmaster_fault(unsigned status);

/// Percent-decodes a query component ('+' is a space, as in HTML forms); nullopt if malformed.
std::optional<std::string> url_decode(std::string_view s);

}  // namespace subsync::emulator::detail
