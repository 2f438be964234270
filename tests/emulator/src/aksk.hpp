#pragma once
// The emulator's own SDK-HMAC-SHA256 canonicalisation and hashing, written from the published
// algorithm (shared/refs/huawei-cloud.md, "AK/SK signing") and OpenSSL EVP. It deliberately shares
// nothing with the client's signer: a fake gateway that borrowed the client's encoding would agree
// with the client's bugs. emulator_signing_test pins it to tests/data/signing-vectors.json.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::emulator::detail::aksk {

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

/// Lower-case hex HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// `path` percent-decoded, each segment re-encoded (A-Z a-z 0-9 - _ . ~ kept, other bytes %XX upper
/// case), ending with '/'. nullopt when the path holds a malformed %-escape.
std::optional<std::string> canonical_uri(std::string_view path);

/// The query's pairs decoded ('+' stays '+': RFC 3986, not HTML forms), sorted by key then value,
/// re-encoded, `k=` for an empty value or a key without '=', joined with '&'. nullopt when malformed.
std::optional<std::string> canonical_query(std::string_view query);

/// A request's parts as the signature covers them.
struct signing_parts {
    std::string_view method;
    std::string_view target;  ///< origin-form path[?query], as in the request line
    std::vector<std::pair<std::string, std::string>> signed_headers;  ///< (name, value) as received, in SignedHeaders order
    std::string_view body;
    bool unsigned_payload = false;  ///< X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD was signed
};

/// The canonical request; nullopt when the target cannot be decoded.
std::optional<std::string> canonical_request(const signing_parts& parts);

/// "SDK-HMAC-SHA256\n" + date + "\n" + sha256_hex(canonical_request).
std::string string_to_sign(std::string_view sdk_date, std::string_view canonical_request);

}  // namespace subsync::emulator::detail::aksk
