#pragma once
// Huawei Cloud AK/SK request signing, `SDK-HMAC-SHA256`: pure functions, no
// I/O, no clock reads (the caller passes `now`). The rules and their quirks are
// in shared/refs/huawei-cloud.md, "AK/SK signing"; tests/data/signing-vectors.json
// holds the official SDKs' vectors this code reproduces byte for byte.

#include <subsync/config/secret.hpp>
#include <subsync/sync/http_client.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::sync {

/// One decoded query parameter; a key sent without '=' has an empty value.
using query_param = std::pair<std::string, std::string>;

/// What the signature covers. The signer adds `Host` (from `host`) and
/// `X-Sdk-Date` (from `now`) itself: `headers` must not hold them, nor
/// `Authorization`.
struct signing_input {
    std::string_view method;            ///< "GET"
    std::string_view host;              ///< as sent in Host: the URL authority, with ":port" when the URL has one
    std::string_view path;              ///< as in the request line, still percent-encoded: "/v1.0/apigw/groups"
    std::vector<query_param> query;     ///< decoded pairs, any order
    std::vector<header> headers;        ///< headers the caller sends (X-Project-Id, X-Security-Token, X-Language,
                                        ///< Content-Type, X-Sdk-Content-Sha256...); names with '_' are sent unsigned
    std::string_view body;              ///< hashed unless headers hold `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`
    bool sign_host = true;              ///< false only to reproduce the go-sdk vectors, which sign without host
};

/// A signature, and what must go on the wire for it to verify. Credential
/// material: never log any of it.
struct signed_request {
    std::string sdk_date;         ///< send as `X-Sdk-Date`
    std::string authorization;    ///< send as `Authorization`
    std::string canonical_query;  ///< send as the query (after '?', none when empty): same encoding and order as signed
    std::string canonical_request;  ///< for tests and debugging only
    std::string string_to_sign;     ///< for tests and debugging only
};

/// Signs `in` with access key `ak` and secret key `sk` at time `now`. Throws
/// std::invalid_argument, naming the header, when `in.headers` holds Host,
/// X-Sdk-Date or Authorization, an empty name, or one name twice (any case),
/// and when `ak`, `sk` or a signed host is empty: those are caller bugs.
[[nodiscard]] signed_request sign(const signing_input& in, std::string_view ak, const config::secret& sk,
                                  std::chrono::system_clock::time_point now);

/// `X-Sdk-Date` for `now`: `YYYYMMDDTHHMMSSZ` in UTC, sub-seconds dropped.
[[nodiscard]] std::string format_sdk_date(std::chrono::system_clock::time_point now);

/// Keeps `A-Z a-z 0-9 - _ . ~`, turns every other byte into `%XX` (upper-case hex); space is `%20`.
[[nodiscard]] std::string percent_encode(std::string_view component);

/// Decodes every valid `%XX`; a '%' not followed by two hex digits stays as is,
/// and '+' stays '+' (this is RFC 3986, not form encoding).
[[nodiscard]] std::string percent_decode(std::string_view text);

/// The signed form of a request-line path: decoded, each '/'-separated segment
/// encoded, always ending in '/' ("" and "/" both give "/").
[[nodiscard]] std::string canonical_uri(std::string_view path);

/// `k=v` pairs, encoded, sorted by decoded key then decoded value (bytewise),
/// repeated keys all kept, `k=` for an empty value, joined with '&'.
[[nodiscard]] std::string canonical_query(std::span<const query_param> query);

/// A request target (`/path?query` as in http_request::target) split for signing.
struct split_target_result {
    std::string path;                ///< before '?', unchanged
    std::vector<query_param> query;  ///< decoded; empty `&&` segments skipped
};

/// Splits `target` at the first '?' and decodes its `k=v&k` pairs.
[[nodiscard]] split_target_result split_target(std::string_view target);

/// SHA-256 of `parts` one after another, as if they were one string (none is copied).
[[nodiscard]] std::array<std::uint8_t, 32> sha256(std::initializer_list<std::string_view> parts);

/// Lower-case hex SHA-256 of `data`.
[[nodiscard]] std::string sha256_hex(std::string_view data);

/// Lower-case hex HMAC-SHA256 of `data` under `key`.
[[nodiscard]] std::string hmac_sha256_hex(std::string_view key, std::string_view data);

}  // namespace subsync::sync
