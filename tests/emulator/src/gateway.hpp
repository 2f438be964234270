#pragma once
// The API gateway's checks before a listing sees a request: X-Auth-Token (the fixed token and
// the ones IAM issued) and AK/SK `SDK-HMAC-SHA256` signatures, with the real cloud's lockout of an
// AK after more than 5 consecutive failed signatures. Thread-safe: requests arrive on the io
// thread, test hooks on theirs. Clocks are parameters; nothing here reads one.

#include "subsync/emulator/server.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::emulator::detail {

using wall_time = std::chrono::system_clock::time_point;
using steady_time = std::chrono::steady_clock::time_point;

/// A request as read, without Beast: what the gateway and the listings look at.
struct incoming {
    std::string_view method;
    std::string_view target;  ///< origin-form, as in the request line
    std::string_view body;
    std::vector<std::pair<std::string_view, std::string_view>> headers;  ///< as received, in order
    std::string_view request_id;

    /// The first header named `name` (any case).
    std::optional<std::string_view> header(std::string_view name) const;
};

enum class auth_outcome {
    none,      ///< no credentials the gateway knows: the listing answers its own 401
    accepted,  ///< a valid token or signature
    rejected,  ///< 401 APIG.0301 with `message`
};

struct auth_result {
    auth_outcome outcome = auth_outcome::none;
    std::string message;              ///< error_msg when rejected
    bool signature_failure = false;  ///< rejected by AK/SK verification (counted in stats)
};

/// Gateway messages for AK/SK failures start with this, as the real gateway's do.
inline constexpr std::string_view aksk_message_prefix = "Incorrect IAM authentication information: ";
/// What an expired token gets.
inline constexpr std::string_view token_expired_message = "The token expires.";

class gateway {
public:
    /// Keeps the fixed token, the keys and the lockout of `opts`.
    explicit gateway(const options& opts);

    /// A fresh token ("MII" and 3000 base64 characters, like IAM's several-KB PKI tokens),
    /// accepted from `now` for `ttl`.
    std::string issue_token(steady_time now, std::chrono::seconds ttl);

    /// Checks `Authorization` (AK/SK) if present, else `X-Auth-Token`; `wall` is compared with
    /// X-Sdk-Date, `now` with token expiry and lockouts.
    auth_result authenticate(const incoming& request, wall_time wall, steady_time now);

    /// Every token issued so far is expired from now on.
    void expire_all_tokens();

    /// The current run of failed signatures for `ak` (0 once a lockout has ended at `now`).
    unsigned consecutive_failures(const std::string& ak, steady_time now) const;

private:
    struct token_state {
        steady_time expires;
        bool revoked = false;  // by expire_all_tokens()
    };
    struct key_state {
        unsigned failures = 0;
        std::optional<steady_time> locked_until;
    };

    auth_result check_token(std::string_view token, steady_time now) const;
    auth_result check_signature(const incoming& request, std::string_view authorization, wall_time wall,
                                steady_time now);

    const std::string fixed_token_;
    const std::vector<access_key> keys_;
    const std::chrono::milliseconds lockout_;

    mutable std::mutex mutex_;  // guards everything below
    std::map<std::string, token_state, std::less<>> tokens_;
    std::map<std::string, key_state, std::less<>> key_states_;
    std::mt19937_64 random_{std::random_device{}()};
};

}  // namespace subsync::emulator::detail
