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

/// Client-side rate limits, one token bucket per endpoint (host:port), shared
/// by every worker and source that calls it, so a large tenant never trips
/// the gateway's own throttle.
class rate_limits {
public:
    rate_limits(double rate, int burst) : rate_(rate), burst_(burst) {}

    /// Waits until a request to `ep` may be sent.
    boost::asio::awaitable<void> acquire(const config::endpoint& ep);

private:
    double rate_;
    int burst_;
    std::map<std::string, token_bucket> buckets_;
};

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
};

/// `where: HTTP 500: APIG.0201: message request_id=...`, kind auth for 401/403.
[[nodiscard]] error status_error(const http_response& res, std::string_view where);

/// Prefixes an error's message with where it happened (`page=7`).
[[nodiscard]] error located(error e, std::string_view where);

/// Sends `req` on `conn`, authorised afresh on every attempt, until it
/// succeeds (2xx) or cannot: transport failures, timeouts, 429 and 5xx are
/// retried with backoff (Retry-After honoured, capped by the policy), a 401
/// lets the authenticator refresh once, anything else fails at once. Never
/// runs past `ctx.deadline`. Each retry is logged with account, source,
/// `where` and the request id.
boost::asio::awaitable<result<http_response>> send_with_retries(const request_context& ctx, http_connection& conn,
                                                                const config::endpoint& ep, const http_request& req,
                                                                std::string_view where);

}  // namespace subsync::sync
