#include "routes.hpp"

#include "json_writer.hpp"

#include <charconv>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace subsync::emulator::detail {

namespace {

// Messages follow what the real gateway sends; the codes are the documented APIG codes
// (see shared/refs/huawei-cloud.md). Clients must match on codes, never on messages.
constexpr std::string_view token_message = "Incorrect token or token resolution failed";

std::string bad_parameter(std::string_view name) {
    return "Invalid parameter value,parameterName:" + std::string(name) +
           ". Please refer to the support documentation";
}

reply apig_error(unsigned status, std::string_view code, std::string_view msg, const request_info& request,
                 endpoint where) {
    return {status, error_body(code, msg, request.request_id), where};
}

// SecMaster documents the body shape {error_code, error_msg} but not its codes: these are the
// emulator's own, in SecMaster's style.
reply secmaster_error(unsigned status, std::string_view msg) {
    std::string_view code = "SecMaster.20050001";
    switch (status) {
    case 400: code = "SecMaster.20048001"; break;
    case 401: code = "SecMaster.20010001"; break;
    case 403: code = "SecMaster.20040301"; break;
    case 429: code = "SecMaster.20042901"; break;
    default: break;
    }
    return {status, error_body(code, msg, {}), endpoint::orders};
}

std::string_view secmaster_message(unsigned status) {
    switch (status) {
    case 400: return "Parameter error";
    case 401: return "The token is invalid";
    case 403: return "No permissions";
    case 429: return "Too many requests";
    default: return "Internal error";
    }
}

struct query {
    std::optional<std::string> page_size, page_no, id, group_id, group_name;
};

// Unknown keys are ignored and a repeated key keeps its last value; an empty value counts as
// absent. Returns the name of a malformed parameter on failure.
std::optional<std::string> parse_query(std::string_view text, query& out) {
    while (!text.empty()) {
        const auto amp = text.find('&');
        const std::string_view pair = text.substr(0, amp);
        text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        const auto eq = pair.find('=');
        const auto key = url_decode(pair.substr(0, eq));
        if (!key) {
            return std::string(pair.substr(0, eq));
        }
        auto value = url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        if (!value) {
            return *key;
        }
        std::optional<std::string>* slot = nullptr;
        if (*key == "page_size") {
            slot = &out.page_size;
        } else if (*key == "page_no") {
            slot = &out.page_no;
        } else if (*key == "id") {
            slot = &out.id;
        } else if (*key == "group_id") {
            slot = &out.group_id;
        } else if (*key == "group_name") {
            slot = &out.group_name;
        }
        if (slot != nullptr) {
            *slot = value->empty() ? std::nullopt : std::move(value);
        }
    }
    return std::nullopt;
}

std::optional<std::int64_t> to_integer(const std::string& s) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

bool matches(const std::optional<std::string>& filter, const std::string& value) {
    return !filter || *filter == value;
}

reply purchases(const request_info& request, std::string_view query_text, const dataset& data,
                const listing_modes& modes) {
    // The gateway authenticates before it looks at parameters.
    if (!request.authenticated) {
        return apig_error(401, "APIG.0301", token_message, request, endpoint::purchases);
    }
    query q;
    if (const auto bad = parse_query(query_text, q)) {
        return apig_error(400, "APIG.0201", bad_parameter(*bad), request, endpoint::purchases);
    }
    std::int64_t page_size = 20;
    if (q.page_size) {
        const auto v = to_integer(*q.page_size);
        if (!v || *v < 1 || *v > 500) {
            return apig_error(400, "APIG.0201", bad_parameter("page_size"), request, endpoint::purchases);
        }
        page_size = *v;
    }
    std::int64_t page_no = 1;
    if (q.page_no) {
        const auto v = to_integer(*q.page_no);
        if (!v || *v < 1) {
            return apig_error(400, "APIG.0201", bad_parameter("page_no"), request, endpoint::purchases);
        }
        page_no = *v;
    }
    // Without a filter every purchase matches: index the page directly. Collecting
    // all N matches per request was most of the emulator's time per page
    // (bench/README.md, fix 11).
    const bool filtered = q.id || q.group_id || q.group_name;
    std::vector<const purchase*> hits;
    if (filtered) {
        for (const auto& p : data.purchases) {
            if (matches(q.id, p.id) && matches(q.group_id, p.group_id) && matches(q.group_name, p.group_name)) {
                hits.push_back(&p);
            }
        }
    }
    const auto total = static_cast<std::uint64_t>(filtered ? hits.size() : data.purchases.size());
    // A gateway with a lower cap serves at most that many, whatever was asked.
    if (modes.max_page_size > 0) {
        page_size = std::min(page_size, static_cast<std::int64_t>(modes.max_page_size));
    }
    const auto size = static_cast<std::uint64_t>(page_size);
    const auto page = static_cast<std::uint64_t>(page_no) - 1U;
    // page * size may overflow for absurd page numbers: compare by division first.
    const std::uint64_t first = page > total / size ? total : std::min(total, page * size);
    const std::uint64_t last = std::min(total, first + size);

    std::string body = R"({"total":)" + std::to_string(modes.lying_total.value_or(total)) + R"(,"size":)" +
                       std::to_string(last - first) +
                       R"(,"purchases":[)";
    body.reserve(body.size() + (last - first) * 512);
    for (std::uint64_t i = first; i < last; ++i) {
        if (i != first) {
            body.push_back(',');
        }
        const purchase& p = filtered ? *hits[static_cast<std::size_t>(i)] : data.purchases[static_cast<std::size_t>(i)];
        if (modes.items.touches_purchases()) {
            body += reshape_purchase(p.json, static_cast<std::size_t>(&p - data.purchases.data()), modes.items);
        } else {
            body += p.json;
        }
    }
    body += "]}";
    return {200, std::move(body), endpoint::purchases};
}

reply orders(const request_info& request, const dataset& data, const item_modes& modes) {
    if (!request.authenticated) {
        return secmaster_error(401, "The token is missing or invalid");
    }
    if (!request.language || (*request.language != "zh-cn" && *request.language != "en-us")) {
        return secmaster_error(400, "X-Language is mandatory: zh-cn or en-us");
    }
    return {200, modes.touches_orders() ? reshape_orders(data.orders_json, modes) : data.orders_json, endpoint::orders};
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace

reply apig_fault(unsigned status, std::string_view request_id, endpoint where) {
    const auto make = [&](std::string_view code, std::string_view msg) {
        return reply{status, error_body(code, msg, request_id), where};
    };
    switch (status) {
    case 400: return make("APIG.0201", "Bad request");
    case 401: return make("APIG.0301", token_message);
    case 403: return make("APIG.0302", "The IAM user is not authorized to access the API");
    case 404: return make("APIG.0101", "The API does not exist or has not been published");
    case 429: return make("APIG.0308", "The throttling threshold has been reached");
    case 502: return make("APIG.0201", "Backend unavailable");
    case 504: return make("APIG.0201", "Backend timeout");
    default: return make("APIG.9999", "System error");
    }
}

reply secmaster_fault(unsigned status) { return secmaster_error(status, secmaster_message(status)); }

endpoint endpoint_of(std::string_view target) {
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == purchases_path) {
        return endpoint::purchases;
    }
    if (path == orders_path) {
        return endpoint::orders;
    }
    if (path == iam_tokens_path) {
        return endpoint::iam;
    }
    if (path == iam_projects_path) {
        return endpoint::iam_projects;
    }
    return endpoint::other;
}

std::optional<int> page_of(std::string_view target) {
    const auto question = target.find('?');
    query q;
    if (question != std::string_view::npos && parse_query(target.substr(question + 1), q)) {
        return std::nullopt;
    }
    if (!q.page_no) {
        return 1;
    }
    const auto v = to_integer(*q.page_no);
    if (!v || *v < 1 || *v > std::numeric_limits<int>::max()) {
        return std::nullopt;
    }
    return static_cast<int>(*v);
}

std::optional<std::string> url_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out.push_back(' ');
        } else if (s[i] != '%') {
            out.push_back(s[i]);
        } else {
            if (i + 2 >= s.size()) {
                return std::nullopt;
            }
            const int hi = hex_value(s[i + 1]);
            const int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        }
    }
    return out;
}

reply route(const request_info& request, const dataset& data, const listing_modes& modes) {
    const auto question = request.target.find('?');
    const std::string_view query_text =
        question == std::string_view::npos ? std::string_view{} : request.target.substr(question + 1);
    const endpoint where = endpoint_of(request.target);
    if (request.method != "GET") {
        auto out = apig_error(405, "APIG.0201", "Method not allowed: only GET is served", request, where);
        out.headers.emplace_back("Allow", "GET");
        return out;
    }
    switch (where) {
    case endpoint::purchases: return purchases(request, query_text, data, modes);
    case endpoint::orders: return orders(request, data, modes.items);
    case endpoint::iam:  // answered by the service before routing
    case endpoint::iam_projects:
    case endpoint::other: break;
    }
    return apig_error(404, "APIG.0101", "The API does not exist or has not been published in the environment", request,
                      endpoint::other);
}

}  // namespace subsync::emulator::detail
