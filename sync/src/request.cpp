#include <subsync/logging/log.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/events.hpp>
#include <subsync/sync/request.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace subsync::sync {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

std::unique_ptr<http_connection> transport::connect(const config::endpoint& ep) const {
    return std::make_unique<http_connection>(ex, ep, tls, timeout, body_limit, proxy.for_host(ep.host));
}

rate_limits::state& rate_limits::at(const config::endpoint& ep) {
    return endpoints_.try_emplace(host_header(ep), state{adaptive_rate(rate_), token_bucket(rate_, burst_)})
        .first->second;
}

asio::awaitable<void> rate_limits::acquire(const config::endpoint& ep) {
    auto& s = at(ep);
    const auto now = clock::now();
    s.rate.sent(now);
    if (s.rate.rate() <= 0) co_return;
    const auto wait = s.bucket.reserve(now);
    if (wait.count() <= 0) co_return;
    asio::steady_timer timer(co_await asio::this_coro::executor, wait);
    co_await timer.async_wait(asio::use_awaitable);
}

void rate_limits::throttled(const config::endpoint& ep) {
    auto& s = at(ep);
    s.rate.throttle(clock::now());
    s.bucket.set_rate(s.rate.rate());
    s.bucket.drain();
}

void rate_limits::succeeded(const config::endpoint& ep) {
    auto& s = at(ep);
    s.rate.success();
    s.bucket.set_rate(s.rate.rate());
}

double rate_limits::current_rate(const config::endpoint& ep) const {
    const auto it = endpoints_.find(host_header(ep));
    return it == endpoints_.end() ? rate_ : it->second.rate.rate();
}

error status_error(const http_response& res, std::string_view where) {
    const auto kind = res.status == 401 || res.status == 403 ? error_kind::auth : error_kind::http_status;
    auto body = read_error_body(res.body);
    const std::string request_id = res.request_id.empty() ? body.request_id : config::redacted(res.request_id);
    std::string msg = fmt::format("{}: HTTP {}: {}", where, res.status, body.message);
    if (!request_id.empty()) msg += fmt::format(" request_id={}", request_id);
    return error{kind, std::move(msg), res.status, request_id};
}

error located(error e, std::string_view where) {
    e.message = fmt::format("{}: {}", where, e.message);
    return e;
}

namespace {

/// Tells the context's observer, or the log.
void report(const request_context& ctx, const request_retried& e) {
    if (ctx.observer != nullptr) ctx.observer->on(e);
    else log_observer().on(e);
}

}  // namespace

asio::awaitable<result<http_response>> send_with_retries(const request_context& ctx, http_connection& conn,
                                                         const config::endpoint& ep, const http_request& base,
                                                         std::string_view where) {
    bool reauthorized = false;
    const int max_attempts = std::max(1, ctx.retry.max_attempts);
    int throttled = 0;  // 429s in a row: retried while the deadline allows, not counted as attempts
    for (int attempt = 1;; ++attempt) {
        if (clock::now() >= ctx.deadline)
            co_return error{error_kind::timeout,
                            fmt::format("{}: the source deadline (sync.source_timeout) passed{}", where,
                                        throttled > 0 ? fmt::format(" while throttled ({} answers 429)", throttled) : "")};
        if (ctx.limits != nullptr) co_await ctx.limits->acquire(ep);

        http_request req = base;  // credentials are added afresh: a signature carries its date
        if (!req.has_header("Content-Type")) req.headers.push_back({"Content-Type", "application/json"});
        if (ctx.auth) {
            if (auto a = co_await ctx.auth->authorize(req, ep); !a) co_return located(a.error(), where);
        }
        auto res = co_await conn.send(req, ctx.deadline);
        if (logging::enabled(logging::severity::debug)) {
            const auto outcome = res ? std::to_string(res->status) : std::string(to_string(res.error().kind));
            logging::debug("request", {{"account", ctx.account},
                                       {"source", ctx.source},
                                       {"where", where},
                                       {"attempt", attempt},
                                       {"max_attempts", max_attempts},
                                       {"status", outcome},
                                       {"request_id", res ? std::string_view(res->request_id) : std::string_view{}}});
        }

        std::optional<std::chrono::milliseconds> server_wait;
        bool was_throttled = false;
        std::string reason;
        std::string request_id;
        if (!res) {
            const auto kind = res.error().kind;
            const bool transient = kind == error_kind::network || kind == error_kind::timeout;
            if (!transient || attempt >= max_attempts) {
                auto e = located(res.error(), where);
                if (transient) e.message += fmt::format(" (after {} attempts)", attempt);
                co_return e;
            }
            reason = res.error().message;
        } else if (res->status / 100 == 2) {
            if (ctx.limits != nullptr) ctx.limits->succeeded(ep);
            co_return res;
        } else if (res->status == 401 && ctx.auth && !reauthorized && ctx.auth->rejected(req)) {
            // A token can expire between two requests: one refresh, one more try, never a loop.
            reauthorized = true;
            if (ctx.stats != nullptr) ++ctx.stats->retries;
            request_retried e;
            e.account = ctx.account;
            e.source = ctx.source;
            e.where = where;
            e.reason = retry_reason::token_rejected;
            e.request_id = res->request_id;
            report(ctx, e);
            --attempt;
            continue;
        } else if (res->status == 429) {
            // The gateway throttles per API and per minute (APIG.0308), usually without
            // Retry-After: slow down and keep going while the source deadline allows.
            ++throttled;
            --attempt;
            was_throttled = true;
            if (ctx.stats != nullptr) ++ctx.stats->throttled;
            if (ctx.limits != nullptr) ctx.limits->throttled(ep);
            reason = status_error(*res, "").message.substr(2);
            request_id = res->request_id;
            if (!res->retry_after.empty())
                server_wait = parse_retry_after(res->retry_after, std::chrono::system_clock::now());
        } else if (!retryable_status(res->status) || attempt >= max_attempts) {
            auto e = status_error(*res, where);
            if (retryable_status(res->status)) e.message += fmt::format(" (after {} attempts)", attempt);
            co_return e;
        } else {
            reason = status_error(*res, "").message.substr(2);
            request_id = res->request_id;
            if (!res->retry_after.empty())
                server_wait = parse_retry_after(res->retry_after, std::chrono::system_clock::now());
        }

        // The server's Retry-After wins over our backoff, up to the backoff cap. A throttled
        // request backs off as if on its 1st..4th retry: the adapted rate does the rest.
        const int step = throttled > 0 ? std::min(throttled, 4) : attempt;
        const auto wait = server_wait ? std::min(*server_wait, ctx.retry.cap)
                                      : backoff_delay(ctx.retry, step, ctx.random ? ctx.random() : 0.5);
        if (clock::now() + wait >= ctx.deadline)
            co_return error{error_kind::timeout,
                            fmt::format("{}: {}; no time left to retry before sync.source_timeout", where, reason)};
        if (ctx.stats != nullptr) ++ctx.stats->retries;
        request_retried e;
        e.account = ctx.account;
        e.source = ctx.source;
        e.where = where;
        e.reason = was_throttled ? retry_reason::throttled : res ? retry_reason::server_status : retry_reason::transport;
        e.attempt = attempt + 1;
        e.max_attempts = max_attempts;
        e.throttled = throttled;
        e.rate = ctx.limits != nullptr ? ctx.limits->current_rate(ep) : 0.0;
        e.wait = wait;
        e.request_id = request_id;
        e.detail = reason;
        report(ctx, e);
        asio::steady_timer timer(co_await asio::this_coro::executor, wait);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

}  // namespace subsync::sync
