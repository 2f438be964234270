#include <subsync/config/load.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace subsync::config {
namespace {

char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), to_lower);
    return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (to_lower(c) >= 'a' && to_lower(c) <= 'f'); }
bool is_alnum(char c) { return is_digit(c) || (to_lower(c) >= 'a' && to_lower(c) <= 'z'); }

/// RFC 3986 pchar minus '%' (checked separately) plus '/'.
bool is_path_char(char c) {
    return is_alnum(c) || std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos;
}

/// Empty when `host` (lower case, no brackets) is a DNS name or dotted-quad IPv4, else why not.
std::string check_host(const std::string& host) {
    if (std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; })) {
        in_addr addr{};
        if (::inet_pton(AF_INET, host.c_str(), &addr) != 1)
            return fmt::format("\"{}\" is not a valid IPv4 address", host);
        return {};
    }
    if (host.size() > 253) return "host name is longer than 253 characters";
    std::size_t begin = 0;
    for (;;) {
        const std::size_t end = std::min(host.find('.', begin), host.size());
        const std::string_view label = std::string_view(host).substr(begin, end - begin);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
            !std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; }))
            return fmt::format("invalid host \"{}\"", host);
        if (end == host.size()) return {};
        begin = end + 1;
    }
}

/// RFC 3986 query characters: pchar, '/' and '?' ('%' checked separately).
bool is_query_char(char c) { return is_path_char(c) || c == '?'; }

/// '%' must start a percent-encoding: empty when `s` is well formed, else why not.
std::string check_percent(std::string_view s, std::string_view where, bool (*allowed)(char)) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return fmt::format("'%' in the {} must be followed by two hex digits", where);
        } else if (!allowed(s[i])) {
            return fmt::format("a character in the {} is not allowed (percent-encode it)", where);
        }
    }
    return {};
}

}  // namespace

namespace {

enum class url_kind { endpoint, sink };

boost::system::result<endpoint, std::string> parse_url(std::string_view url, url_kind kind) {
    const bool sink = kind == url_kind::sink;
    // endpoint is an aggregate, so (C++20) it is constructible from a std::string and result's
    // implicit error constructor is disabled: name the error side explicitly.
    const auto fail = [&](std::string_view why) -> boost::system::result<endpoint, std::string> {
        // A sink URL's path may be its secret: say what is wrong, never what was written.
        if (sink) return {boost::system::in_place_error, fmt::format("invalid URL: {}", why)};
        return {boost::system::in_place_error, fmt::format("invalid endpoint \"{}\": {}", url, why)};
    };
    constexpr std::string_view form = "https://host[:port][/path]";

    const std::size_t sep = url.find("://");
    if (sep == std::string_view::npos) return fail(fmt::format("missing scheme; write {}", form));
    endpoint ep;
    ep.text = std::string(url);
    ep.scheme = lowered(url.substr(0, sep));
    if (ep.scheme != "https" && ep.scheme != "http")
        return fail(fmt::format("scheme \"{}\" is not supported; use https:// or http://",
                                url.substr(0, sep)));

    std::string_view rest = url.substr(sep + 3);
    if (rest.find('#') != std::string_view::npos) return fail("a fragment (#...) is not allowed");
    if (const std::size_t q = rest.find('?'); q != std::string_view::npos) {
        if (!sink) return fail("a query (?...) is not allowed");
        const std::string_view query = rest.substr(q + 1);
        if (std::string why = check_percent(query, "query", is_query_char); !why.empty()) return fail(why);
        ep.query = std::string(query);
        rest = rest.substr(0, q);
    }

    const std::size_t slash = std::min(rest.find('/'), rest.size());
    const std::string_view authority = rest.substr(0, slash);
    const std::string_view path = rest.substr(slash);
    if (authority.find('@') != std::string_view::npos)
        return fail("user info (user@) is not allowed; credentials belong in [account.auth]");
    if (authority.empty()) return fail("empty host");

    std::string_view host;
    std::string_view after_host;  // "" or ":port"
    if (authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return fail("missing ']' after the IPv6 address");
        host = authority.substr(1, close - 1);
        after_host = authority.substr(close + 1);
        ep.host = lowered(host);
        in6_addr addr{};
        if (::inet_pton(AF_INET6, ep.host.c_str(), &addr) != 1)
            return fail(fmt::format("\"{}\" is not a valid IPv6 address", host));
        if (!after_host.empty() && after_host.front() != ':')
            return fail("unexpected characters after ']'");
    } else {
        const std::size_t colon = std::min(authority.find(':'), authority.size());
        host = authority.substr(0, colon);
        after_host = authority.substr(colon);
        if (after_host.size() > 1 && after_host.substr(1).find(':') != std::string_view::npos)
            return fail("an IPv6 address must be in brackets, as in https://[::1]:8443");
        if (host.empty()) return fail("empty host");
        ep.host = lowered(host);
        if (std::string why = check_host(ep.host); !why.empty()) return fail(why);
    }

    ep.port = ep.tls() ? 443 : 80;
    if (!after_host.empty()) {
        const std::string_view port = after_host.substr(1);
        if (port.empty()) return fail("empty port after ':'");
        unsigned value = 0;
        const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), is_digit);
        if (digits)
            for (char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
        if (!digits || value == 0 || value > 65535)
            return fail(fmt::format("invalid port \"{}\"; expected 1..65535", port));
        ep.port = static_cast<std::uint16_t>(value);
        ep.explicit_port = true;
    }

    if (!sink) {
        for (std::size_t i = 0; i < path.size(); ++i) {
            if (path[i] == '%') {
                if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2]))
                    return fail("'%' in the path must be followed by two hex digits");
            } else if (!is_path_char(path[i])) {
                return fail(fmt::format("character '{}' is not allowed in the path", path[i]));
            }
        }
    } else if (std::string why = check_percent(path, "path", is_path_char); !why.empty()) {
        return fail(why);
    }
    std::string_view base = path;
    while (!base.empty() && base.back() == '/') base.remove_suffix(1);
    ep.base_path = std::string(base);
    if (sink) ep.text = display_url(ep);
    return ep;
}

}  // namespace

boost::system::result<endpoint, std::string> parse_endpoint(std::string_view url) {
    return parse_url(url, url_kind::endpoint);
}

boost::system::result<endpoint, std::string> parse_sink_url(std::string_view url) {
    return parse_url(url, url_kind::sink);
}

std::string display_url(const endpoint& ep) {
    // Appended piece by piece: `"[" + host` trips GCC 12's -O3 -Wrestrict false positive (PR105651).
    const bool v6 = ep.host.find(':') != std::string::npos;
    std::string out = ep.scheme;
    out += "://";
    if (v6) out += '[';
    out += ep.host;
    if (v6) out += ']';
    if (ep.explicit_port) {
        out += ':';
        out += std::to_string(ep.port);
    }
    if (!ep.base_path.empty() || !ep.query.empty()) out += "/…";
    return out;
}

}  // namespace subsync::config
