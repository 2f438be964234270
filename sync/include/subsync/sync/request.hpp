#pragma once

#include <subsync/config/config.hpp>
#include <subsync/sync/auth.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/http_client.hpp>
#include <subsync/sync/retry.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace subsync::sync {

/// How connections are made: TLS, proxy, per-request timeout, body limit.
struct transport {
    boost::asio::any_io_executor ex;
    std::shared_ptr<tls_context> tls;  ///< null when no endpoint uses https
    proxy_settings proxy;
    std::chrono::milliseconds timeout{30000};
    std::size_t body_limit = std::size_t{64} << 20;

    /// A new keep-alive connection to `ep`, through the proxy when one applies.
    [[nodiscard]] std::unique_ptr<http_connection> connect(const config::endpoint& ep) const;
};

/// Client-side rate limits, one adaptive token bucket per endpoint (host:port),
/// shared by every worker and source that calls it. The configured rate is a
/// ceiling: a 429 halves the endpoint's rate and each success raises it a little
/// (additive increase, multiplicative decrease, as the big cloud SDKs' adaptive
/// retry mode does), so a listing throttled per minute without `Retry-After`
/// slows to what the gateway allows and finishes.
class rate_limits {
public:
    rate_limits(double rate, int burst) : rate_(rate), burst_(burst) {}

    /// Waits until a request to `ep` may be sent.
    boost::asio::awaitable<void> acquire(const config::endpoint& ep);

    /// The gateway throttled a request to `ep` (429): halve its rate.
    void throttled(const config::endpoint& ep);
    /// A request to `ep` succeeded: raise its rate a step, up to the configured one.
    void succeeded(const config::endpoint& ep);

    /// The rate in force for `ep` (requests per second; 0 = unlimited).
    [[nodiscard]] double current_rate(const config::endpoint& ep) const;

private:
    struct state {
        adaptive_rate rate;
        token_bucket bucket;
    };
    state& at(const config::endpoint& ep);

    double rate_;
    int burst_;
    std::map<std::string, state> endpoints_;
};

/// What happened to the requests of one (account, source), for its run record.
struct request_stats {
    int retries = 0;    ///< requests sent again (transport failure, 5xx, 429, a refreshed token)
    int throttled = 0;  ///< 429 answers
};

class sync_observer;

/// Everything a request of one (account, source) needs to be sent, retried and logged.
struct request_context {
    const transport* net = nullptr;
    std::string account;
    std::string source;
    std::shared_ptr<authenticator> auth;  ///< may be null (the IAM token request itself)
    retry_policy retry;
    rate_limits* limits = nullptr;  ///< may be null
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    std::function<double()> random;  ///< uniform in [0, 1), for backoff jitter
    request_stats* stats = nullptr;  ///< counts retries and throttling; may be null
    sync_observer* observer = nullptr;  ///< hears each retry; none: it is logged
};

/// `where: HTTP 500: APIG.0201: message request_id=...`, kind auth for 401/403.
[[nodiscard]] error status_error(const http_response& res, std::string_view where);

/// Prefixes an error's message with where it happened (`page=7`).
[[nodiscard]] error located(error e, std::string_view where);

/// Sends `req` on `conn`, authorised afresh on every attempt, until it
/// succeeds (2xx) or cannot: transport failures, timeouts and 5xx are retried
/// with backoff up to the policy's attempts; a 429 is retried for as long as
/// the deadline allows (the rate adapts, see rate_limits), Retry-After
/// honoured, capped by the policy; a 401 lets the authenticator refresh once;
/// anything else fails at once. Every request carries `Content-Type:
/// application/json` unless it sets its own (signed with AK/SK, as the SDKs do).
/// Never runs past `ctx.deadline`. Each retry is logged with account, source,
/// `where` and the request id.
boost::asio::awaitable<result<http_response>> send_with_retries(const request_context& ctx, http_connection& conn,
                                                                const config::endpoint& ep, const http_request& req,
                                                                std::string_view where);

}  // namespace subsync::sync
