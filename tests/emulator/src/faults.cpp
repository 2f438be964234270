#include "faults.hpp"

#include "json_writer.hpp"
#include "reshape.hpp"

namespace subsync::emulator::detail {

namespace {

// What a misbehaving load balancer in front of the gateway might send with a 200.
constexpr std::string_view html_page =
    "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\n"
    "<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p>"
    "</body></html>\n";

// Quotes the value of every `"key":` that is an object member in compact JSON (preceded by '{' or
// ','; inside a string the quote would be escaped, so it is never preceded by either).
std::string quote_values(std::string_view body, std::string_view key) {
    // Built by appending: GCC 12 at -O3 misreads `"\"" + std::string(key)` (operator+ with an
    // rvalue inserts at the front) as an overlapping memcpy and warns -Wrestrict
    // (gcc.gnu.org/PR105651); appending to a reserved string is the same result without it.
    std::string needle;
    needle.reserve(key.size() + 3);
    needle += '"';
    needle += key;
    needle += "\":";
    std::string out;
    std::size_t from = 0;
    for (auto at = body.find(needle); at != std::string_view::npos; at = body.find(needle, at + 1)) {
        if (at == 0 || (body[at - 1] != '{' && body[at - 1] != ',')) {
            continue;
        }
        const std::size_t value = at + needle.size();
        const std::size_t end = body.find_first_of(",}", value);
        if (end == std::string_view::npos || value == end || body[value] == '"') {
            continue;
        }
        out.append(body.substr(from, value - from));
        out += '"';
        out.append(body.substr(value, end - value));
        out += '"';
        from = end;
    }
    out.append(body.substr(from));
    return out;
}

}  // namespace

std::string malformed_body(std::string_view body, malformation kind, endpoint where) {
    switch (kind) {
    case malformation::truncated_json: return std::string(body.substr(0, body.size() / 2));
    case malformation::not_json: return std::string(html_page);
    case malformation::wrong_type:
        return quote_values(body, where == endpoint::orders ? "create_time" : "quota_left");
    case malformation::null_entry:
        if (where == endpoint::orders) return null_first_entry(body);
        [[fallthrough]];
    case malformation::null_list:
        return replace_member(body, where == endpoint::orders ? "resources" : "purchases", "null");
    case malformation::error_body:
        return where == endpoint::orders ? error_body("SecMaster.20050001", "Internal error", {})
                                         : error_body("APIG.0201", "Bad request", {});
    case malformation::duplicate_key:
        return insert_before_member(body, where == endpoint::orders ? "resources" : "purchases", "[]");
    }
    return std::string(body);
}

decision apply(const fault& f, reply ok, std::string_view request_id) {
    switch (f.what) {
    case fault::kind::status: {
        reply out = ok.where == endpoint::orders ? secmaster_fault(f.status)
                                                 : apig_fault(f.status, request_id, ok.where);
        if (!f.retry_after.empty()) {
            out.headers.emplace_back("Retry-After", f.retry_after);
        }
        return {std::move(out), delivery::respond};
    }
    case fault::kind::reset: return {std::move(ok), delivery::reset_mid_body};
    case fault::kind::stall: return {std::move(ok), delivery::stall};
    case fault::kind::drip: return {std::move(ok), delivery::drip, f.pace};
    case fault::kind::malform:
        ok.body = malformed_body(ok.body, f.malformed, ok.where);
        if (f.malformed == malformation::not_json) {
            ok.content_type = "text/html";
        }
        return {std::move(ok), delivery::respond};
    }
    return {std::move(ok), delivery::respond};
}

}  // namespace subsync::emulator::detail
