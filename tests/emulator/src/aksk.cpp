#include "aksk.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace subsync::emulator::detail::aksk {

namespace {

std::string hex(const unsigned char* bytes, std::size_t n) {
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(digits[bytes[i] >> 4U]);
        out.push_back(digits[bytes[i] & 15U]);
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 percent-decoding: every %XX becomes its byte, everything else (even '+') stays.
std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        const int hi = hex_digit(s[i + 1]);
        const int lo = hex_digit(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

std::string encode(std::string_view s) {
    static constexpr std::string_view digits = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (unreserved(c)) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(digits[c >> 4U]);
            out.push_back(digits[c & 15U]);
        }
    }
    return out;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

}  // namespace

std::string sha256_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &n, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("emulator: EVP_Digest(SHA-256) failed");
    }
    return hex(digest.data(), n);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
             data.size(), mac.data(), &n) == nullptr) {
        throw std::runtime_error("emulator: HMAC-SHA256 failed");
    }
    return hex(mac.data(), n);
}

std::optional<std::string> canonical_uri(std::string_view path) {
    std::string out;
    while (!path.empty()) {
        const auto slash = path.find('/');
        const std::string_view segment = path.substr(0, slash);
        const auto decoded = percent_decode(segment);
        if (!decoded) return std::nullopt;
        out += encode(*decoded);
        if (slash == std::string_view::npos) break;
        out.push_back('/');
        path.remove_prefix(slash + 1);
    }
    if (out.empty() || out.back() != '/') out.push_back('/');
    return out;
}

std::optional<std::string> canonical_query(std::string_view query) {
    std::vector<std::pair<std::string, std::string>> pairs;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        auto key = percent_decode(pair.substr(0, eq));
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        if (!key || !value) return std::nullopt;
        pairs.emplace_back(encode(*key), encode(*value));
    }
    // Sorted on the encoded forms, as the SDKs do (they sort after encoding).
    std::sort(pairs.begin(), pairs.end());
    std::string out;
    for (const auto& [k, v] : pairs) {
        if (!out.empty()) out.push_back('&');
        out += k + '=' + v;
    }
    return out;
}

std::optional<std::string> canonical_request(const signing_parts& parts) {
    const auto question = parts.target.find('?');
    const auto uri = canonical_uri(parts.target.substr(0, question));
    const auto query =
        canonical_query(question == std::string_view::npos ? std::string_view{} : parts.target.substr(question + 1));
    if (!uri || !query) return std::nullopt;
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& [name, value] : parts.signed_headers) headers.emplace_back(lower(name), std::string(trim(value)));
    std::sort(headers.begin(), headers.end());
    std::string block, names;
    for (const auto& [name, value] : headers) {
        block += name + ':' + value + '\n';
        names += (names.empty() ? "" : ";") + name;
    }
    return std::string(parts.method) + '\n' + *uri + '\n' + *query + '\n' + block + '\n' + names + '\n' +
           (parts.unsigned_payload ? std::string("UNSIGNED-PAYLOAD") : sha256_hex(parts.body));
}

std::string string_to_sign(std::string_view sdk_date, std::string_view canonical_request) {
    return "SDK-HMAC-SHA256\n" + std::string(sdk_date) + '\n' + sha256_hex(canonical_request);
}

}  // namespace subsync::emulator::detail::aksk
