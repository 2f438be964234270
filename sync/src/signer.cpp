#include <subsync/sync/signer.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <climits>
#include <memory>
#include <stdexcept>

namespace subsync::sync {
namespace {

constexpr std::string_view algorithm = "SDK-HMAC-SHA256";
constexpr std::string_view unsigned_payload = "UNSIGNED-PAYLOAD";
constexpr std::string_view hex_digits = "0123456789abcdef";

std::string to_hex(std::span<const unsigned char> bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char b : bytes) {
        out += hex_digits[b >> 4];
        out += hex_digits[b & 0xfu];
    }
    return out;
}

bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

// HTTP optional whitespace (RFC 9110 §5.6.3): what a server strips before it
// recomputes the signature.
std::string_view trim(std::string_view s) {
    constexpr std::string_view ows = " \t";
    const auto first = s.find_first_not_of(ows);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(ows) - first + 1);
}

const unsigned char* bytes_of(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

struct canonical_header {
    std::string name;  // lower case
    std::string_view value;  // trimmed
};

// The headers the signature covers, sorted by name. Rejects what would make
// the signature ambiguous or let the caller override the signer's own headers.
std::vector<canonical_header> signed_headers(const signing_input& in, std::string_view sdk_date) {
    std::vector<canonical_header> out;
    out.reserve(in.headers.size() + 2);
    for (const auto& h : in.headers) {
        auto name = to_lower(h.name);
        if (name.empty()) throw std::invalid_argument("sign: header with an empty name");
        if (name == "host" || name == "x-sdk-date" || name == "authorization") {
            throw std::invalid_argument(fmt::format("sign: header {} is set by the signer, not the caller", h.name));
        }
        // Both official SDKs leave names with '_' out of the signature (their
        // "TEST_UNDERSCORE" vectors); they are still sent.
        if (name.find('_') != std::string::npos) continue;
        out.push_back({std::move(name), trim(h.value)});
    }
    if (in.sign_host) {
        if (in.host.empty()) throw std::invalid_argument("sign: empty host");
        out.push_back({"host", trim(in.host)});
    }
    out.push_back({"x-sdk-date", sdk_date});
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    const auto same_name = [](const auto& a, const auto& b) { return a.name == b.name; };
    const auto dup = std::adjacent_find(out.begin(), out.end(), same_name);
    if (dup != out.end()) throw std::invalid_argument(fmt::format("sign: header {} is given twice", dup->name));
    return out;
}

}  // namespace

std::string format_sdk_date(std::chrono::system_clock::time_point now) {
    using namespace std::chrono;
    const auto secs = floor<seconds>(now);
    const auto day = floor<days>(secs);
    const year_month_day ymd{day};
    const hh_mm_ss hms{secs - day};
    return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                       hms.minutes().count(), hms.seconds().count());
}

std::string percent_encode(std::string_view component) {
    std::string out;
    out.reserve(component.size());
    for (char ch : component) {
        const auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c)) {
            out += ch;
        } else {
            constexpr std::string_view upper = "0123456789ABCDEF";
            out += '%';
            out += upper[c >> 4];
            out += upper[c & 0xfu];
        }
    }
    return out;
}

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// The SDKs decode the whole path before splitting it (Python: unquote(path).split('/');
// Go splits url.URL.Path, already decoded), so an encoded "%2F" signs as a separator.
// We follow them: the gateway verifies what they send.
std::string canonical_uri(std::string_view path) {
    const std::string decoded = percent_decode(path);
    std::string out;
    out.reserve(decoded.size() + 1);
    std::string_view rest = decoded;
    while (true) {
        const auto slash = rest.find('/');
        out += percent_encode(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        out += '/';
        rest.remove_prefix(slash + 1);
    }
    if (out.empty() || out.back() != '/') out += '/';
    return out;
}

// Sorted on the decoded pairs, as both official SDKs do; sorting the encoded
// text would differ, e.g. for "a." vs "a/" and for non-ASCII keys.
std::string canonical_query(std::span<const query_param> query) {
    std::vector<const query_param*> sorted;
    sorted.reserve(query.size());
    for (const auto& p : query) sorted.push_back(&p);
    std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return *a < *b; });
    std::string out;
    for (const auto* p : sorted) {
        if (!out.empty()) out += '&';
        out += percent_encode(p->first);
        out += '=';
        out += percent_encode(p->second);
    }
    return out;
}

split_target_result split_target(std::string_view target) {
    split_target_result out;
    const auto q = target.find('?');
    out.path = std::string(target.substr(0, q));
    if (q == std::string_view::npos) return out;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (part.empty()) continue;
        const auto eq = part.find('=');
        out.query.emplace_back(percent_decode(part.substr(0, eq)),
                               eq == std::string_view::npos ? std::string{} : percent_decode(part.substr(eq + 1)));
    }
    return out;
}

std::array<std::uint8_t, 32> sha256(std::initializer_list<std::string_view> parts) {
    // The algorithm is fetched once and each thread keeps one context: a first sync derives an
    // idempotency key per alert (63,000), and OpenSSL 3's implicit fetch in EVP_sha256() with a
    // context allocated and freed per digest cost more than hashing the ~120 bytes.
    static const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> algorithm(EVP_MD_fetch(nullptr, "SHA256", nullptr),
                                                                         &EVP_MD_free);
    thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::array<std::uint8_t, 32> out{};
    unsigned int len = 0;
    bool ok = algorithm && md && EVP_DigestInit_ex(md.get(), algorithm.get(), nullptr) == 1;
    for (const auto part : parts) ok = ok && EVP_DigestUpdate(md.get(), part.data(), part.size()) == 1;
    if (!ok || EVP_DigestFinal_ex(md.get(), out.data(), &len) != 1 || len != out.size())
        throw std::runtime_error("sha256: OpenSSL SHA-256 failed");
    return out;
}

std::string sha256_hex(std::string_view data) {
    const auto md = sha256({data});
    return to_hex(std::span(md.data(), md.size()));
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    if (key.size() > static_cast<std::size_t>(INT_MAX)) throw std::invalid_argument("hmac_sha256: key too long");
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(), md.data(), &len) ==
        nullptr) {
        throw std::runtime_error("hmac_sha256: OpenSSL HMAC failed");
    }
    return to_hex(std::span(md.data(), len));
}

signed_request sign(const signing_input& in, std::string_view ak, const config::secret& sk,
                    std::chrono::system_clock::time_point now) {
    if (ak.empty()) throw std::invalid_argument("sign: empty access key");
    if (sk.empty()) throw std::invalid_argument("sign: empty secret key");

    signed_request out;
    out.sdk_date = format_sdk_date(now);
    out.canonical_query = canonical_query(in.query);
    const auto headers = signed_headers(in, out.sdk_date);

    std::string header_block;
    std::string header_names;
    bool unsigned_body = false;
    for (const auto& h : headers) {
        header_block += fmt::format("{}:{}\n", h.name, h.value);
        if (!header_names.empty()) header_names += ';';
        header_names += h.name;
        if (h.name == "x-sdk-content-sha256" && h.value == unsigned_payload) unsigned_body = true;
    }

    const std::string payload_hash = unsigned_body ? std::string(unsigned_payload) : sha256_hex(in.body);
    out.canonical_request = fmt::format("{}\n{}\n{}\n{}\n{}\n{}", in.method, canonical_uri(in.path),
                                        out.canonical_query, header_block, header_names, payload_hash);
    out.string_to_sign = fmt::format("{}\n{}\n{}", algorithm, out.sdk_date, sha256_hex(out.canonical_request));
    const auto signature = hmac_sha256_hex(sk.reveal(), out.string_to_sign);
    out.authorization =
        fmt::format("{} Access={}, SignedHeaders={}, Signature={}", algorithm, ak, header_names, signature);
    return out;
}

}  // namespace subsync::sync
