// X-Auth-Token and AK/SK verification. The canonical request is rebuilt here from the request as
// received (method, target, the headers SignedHeaders names, the body) with the emulator's own
// canonicalisation (aksk.hpp), written from the published algorithm and pinned by the official
// vectors in emulator_signing_test: nothing is shared with the client's signer.
// See shared/refs/huawei-cloud.md, "AK/SK signing".

#include "gateway.hpp"

#include "aksk.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

namespace subsync::emulator::detail {

namespace {

constexpr std::string_view algorithm = "SDK-HMAC-SHA256";
constexpr std::string_view unsigned_payload = "UNSIGNED-PAYLOAD";
constexpr unsigned failures_before_lockout = 5;  // "more than 5 consecutive failed signatures"
constexpr std::chrono::minutes max_skew{15};
constexpr std::size_t token_chars = 3000;

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return lower(x) == lower(y);
           });
}

std::string_view trim(std::string_view s) {
    constexpr std::string_view ows = " \t";
    const auto first = s.find_first_not_of(ows);
    if (first == std::string_view::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(ows) - first + 1);
}

struct authorization {
    std::string_view access, signed_headers, signature;
};

// `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`; spaces after commas optional.
std::optional<authorization> parse_authorization(std::string_view text) {
    if (!text.starts_with(algorithm) || text.size() == algorithm.size() || text[algorithm.size()] != ' ') {
        return std::nullopt;
    }
    text.remove_prefix(algorithm.size() + 1);
    authorization out;
    while (!text.empty()) {
        const auto comma = text.find(',');
        const std::string_view part = trim(text.substr(0, comma));
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        const auto eq = part.find('=');
        if (eq == std::string_view::npos) {
            return std::nullopt;
        }
        const auto key = part.substr(0, eq);
        const auto value = part.substr(eq + 1);
        if (key == "Access") {
            out.access = value;
        } else if (key == "SignedHeaders") {
            out.signed_headers = value;
        } else if (key == "Signature") {
            out.signature = value;
        } else {
            return std::nullopt;
        }
    }
    if (out.access.empty() || out.signed_headers.empty() || out.signature.empty()) {
        return std::nullopt;
    }
    return out;
}

// YYYYMMDDTHHMMSSZ, UTC.
std::optional<wall_time> parse_sdk_date(std::string_view s) {
    if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') {
        return std::nullopt;
    }
    const auto number = [&](std::size_t at, std::size_t len) -> std::optional<int> {
        int v = 0;
        for (std::size_t i = at; i < at + len; ++i) {
            if (s[i] < '0' || s[i] > '9') {
                return std::nullopt;
            }
            v = v * 10 + (s[i] - '0');
        }
        return v;
    };
    const auto y = number(0, 4), mo = number(4, 2), d = number(6, 2), h = number(9, 2), mi = number(11, 2),
               sec = number(13, 2);
    if (!y || !mo || !d || !h || !mi || !sec || *h > 23 || *mi > 59 || *sec > 59) {
        return std::nullopt;
    }
    const std::chrono::year_month_day day{std::chrono::year{*y}, std::chrono::month{static_cast<unsigned>(*mo)},
                                          std::chrono::day{static_cast<unsigned>(*d)}};
    if (!day.ok()) {
        return std::nullopt;
    }
    return std::chrono::sys_days{day} + std::chrono::hours{*h} + std::chrono::minutes{*mi} +
           std::chrono::seconds{*sec};
}

// Why `request` does not verify under `key`, or nullopt when it does.
std::optional<std::string> verify(const incoming& request, const authorization& auth, const access_key& key,
                                  wall_time wall) {
    std::vector<std::string> names;
    for (std::string_view rest = auth.signed_headers; !rest.empty();) {
        const auto semi = rest.find(';');
        names.push_back(to_lower(rest.substr(0, semi)));
        rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    }
    const auto is_signed = [&](std::string_view name) {
        return std::find(names.begin(), names.end(), name) != names.end();
    };
    if (!is_signed("host") || !is_signed("x-sdk-date")) {
        return "SignedHeaders must include host and x-sdk-date";
    }
    const auto date_text = request.header("X-Sdk-Date");
    const auto date = date_text ? parse_sdk_date(*date_text) : std::nullopt;
    if (!date) {
        return "X-Sdk-Date is missing or not YYYYMMDDTHHMMSSZ";
    }
    if (*date > wall + max_skew || *date < wall - max_skew) {
        return "X-Sdk-Date is more than 15 minutes away from the server time";
    }
    const auto security_token = request.header("X-Security-Token");
    if (key.security_token) {
        if (!security_token || *security_token != *key.security_token) {
            return "X-Security-Token is missing or wrong for this temporary access key";
        }
        if (!is_signed("x-security-token")) {
            return "X-Security-Token must be signed";
        }
    } else if (security_token) {
        return "X-Security-Token sent with a permanent access key";
    }

    aksk::signing_parts parts;
    parts.method = request.method;
    parts.target = request.target;
    parts.body = request.body;
    for (const auto& name : names) {
        const auto value = request.header(name);
        if (!value) {
            return "signed header " + name + " is not in the request";
        }
        parts.signed_headers.emplace_back(name, std::string(*value));
        parts.unsigned_payload |= name == "x-sdk-content-sha256" && trim(*value) == unsigned_payload;
    }
    const auto canonical = aksk::canonical_request(parts);
    if (!canonical) {
        return "the request target holds a malformed percent-escape";
    }
    const std::string expected = aksk::hmac_sha256_hex(key.sk, aksk::string_to_sign(*date_text, *canonical));
    if (auth.signature.size() != expected.size() ||
        CRYPTO_memcmp(auth.signature.data(), expected.data(), expected.size()) != 0) {
        return "verify aksk signature fail";
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string_view> incoming::header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
        if (iequals(n, name)) {
            return v;
        }
    }
    return std::nullopt;
}

gateway::gateway(const options& opts) : fixed_token_(opts.token), keys_(opts.keys), lockout_(opts.lockout) {}

std::string gateway::issue_token(steady_time now, std::chrono::seconds ttl) {
    static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const std::lock_guard lock(mutex_);
    std::string token = "MII";
    token.reserve(3 + token_chars);
    while (token.size() < 3 + token_chars) {
        auto bits = random_();
        for (int i = 0; i < 10 && token.size() < 3 + token_chars; ++i, bits >>= 6U) {
            token.push_back(alphabet[static_cast<std::size_t>(bits & 63U)]);
        }
    }
    // Forget tokens a day past expiry, so a long-running emulator does not grow without bound.
    std::erase_if(tokens_, [&](const auto& t) { return t.second.expires + std::chrono::hours(24) < now; });
    tokens_.insert_or_assign(token, token_state{now + ttl, false});
    return token;
}

auth_result gateway::authenticate(const incoming& request, wall_time wall, steady_time now) {
    if (const auto authorization = request.header("Authorization")) {
        return check_signature(request, *authorization, wall, now);
    }
    if (const auto token = request.header("X-Auth-Token"); token && !token->empty()) {
        return check_token(*token, now);
    }
    return {};
}

auth_result gateway::check_token(std::string_view token, steady_time now) const {
    if (token == fixed_token_) {
        return {auth_outcome::accepted, {}, false};
    }
    const std::lock_guard lock(mutex_);
    const auto it = tokens_.find(token);
    if (it == tokens_.end()) {
        return {};
    }
    if (!it->second.revoked && now < it->second.expires) {
        return {auth_outcome::accepted, {}, false};
    }
    return {auth_outcome::rejected, std::string(token_expired_message), false};
}

auth_result gateway::check_signature(const incoming& request, std::string_view authorization, wall_time wall,
                                     steady_time now) {
    const auto fail = [](std::string_view why) {
        return auth_result{auth_outcome::rejected, std::string(aksk_message_prefix) + std::string(why), true};
    };
    const auto auth = parse_authorization(authorization);
    if (!auth) {
        return fail("Authorization is not \"SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...\"");
    }
    const auto key = std::find_if(keys_.begin(), keys_.end(), [&](const auto& k) { return k.ak == auth->access; });
    if (key == keys_.end()) {
        return fail("access key not found");
    }

    const std::lock_guard lock(mutex_);
    auto& state = key_states_[key->ak];
    if (state.locked_until) {
        if (now < *state.locked_until) {
            // Refused without looking at the signature, and not counted: a lock is not a new failure.
            return {auth_outcome::rejected,
                    std::string(aksk_message_prefix) +
                        "the access key is locked after more than 5 consecutive failed signatures",
                    false};
        }
        state = {};
    }
    if (const auto problem = verify(request, *auth, *key, wall)) {
        if (++state.failures > failures_before_lockout) {
            state.locked_until = now + lockout_;
        }
        return fail(*problem);
    }
    state.failures = 0;
    return {auth_outcome::accepted, {}, false};
}

void gateway::expire_all_tokens() {
    const std::lock_guard lock(mutex_);
    for (auto& [token, state] : tokens_) {
        state.revoked = true;
    }
}

unsigned gateway::consecutive_failures(const std::string& ak, steady_time now) const {
    const std::lock_guard lock(mutex_);
    const auto it = key_states_.find(ak);
    if (it == key_states_.end() || (it->second.locked_until && now >= *it->second.locked_until)) {
        return 0;
    }
    return it->second.failures;
}

}  // namespace subsync::emulator::detail
