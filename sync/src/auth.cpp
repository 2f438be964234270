#include <subsync/sync/auth.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/request.hpp>
#include <subsync/sync/signer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <optional>

namespace subsync::sync {

namespace asio = boost::asio;

bool authenticator::rejected(const http_request&) { return false; }

namespace {

class token_authenticator final : public authenticator {
public:
    explicit token_authenticator(config::secret token) : token_(std::move(token)) {}

    asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint&) override {
        req.headers.push_back({"X-Auth-Token", token_.reveal()});
        co_return result<void>{};
    }

private:
    config::secret token_;
};

// IAM password -> token (refs/huawei-cloud.md "IAM password → token"). The
// token is reused until refresh_margin before its expires_at; concurrent
// workers share one in-flight request (single flight); a failed request is
// remembered, so authentication is never retried in a loop.
class password_authenticator final : public authenticator {
public:
    password_authenticator(const config::auth_config& cfg, config::secret password, const transport& net, clock_fn now)
        : cfg_(cfg), password_(std::move(password)), net_(net), now_(std::move(now)),
          wake_(net.ex, std::chrono::steady_clock::time_point::max()) {}

    asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint&) override {
        for (;;) {
            if (failure_) co_return *failure_;
            if (!token_.empty() && now_() < expires_at_ - cfg_.refresh_margin.count()) {
                req.headers.push_back({"X-Auth-Token", token_.reveal()});
                co_return result<void>{};
            }
            if (refreshing_) {
                co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled when the token arrives
                continue;
            }
            refreshing_ = true;
            auto fetched = co_await request_token();
            refreshing_ = false;
            wake_.cancel();
            if (!fetched) failure_ = fetched.error();
        }
    }

    bool rejected(const http_request& sent) override {
        for (const auto& h : sent.headers)
            if (h.name == "X-Auth-Token" && h.value == token_.reveal()) token_ = config::secret{};
        return true;
    }

    int token_requests() const noexcept override { return requests_; }

private:
    std::string request_body() const {
        std::string b = R"({"auth":{"identity":{"methods":["password"],"password":{"user":{"name":)";
        append_json_string(b, cfg_.user);
        b += R"(,"password":)";
        append_json_string(b, password_.reveal());
        b += R"(,"domain":{"name":)";
        append_json_string(b, cfg_.domain);
        b += R"(}}}},"scope":{"project":{)";
        b += cfg_.project_id.empty() ? R"("name":)" : R"("id":)";
        append_json_string(b, cfg_.project_id.empty() ? cfg_.project : cfg_.project_id);
        b += "}}}}";
        return b;
    }

    asio::awaitable<result<void>> request_token() {
        ++requests_;
        const auto& ep = cfg_.iam_endpoint;
        auto conn = net_.connect(ep);
        http_request req{ep.base_path + "/v3/auth/tokens?nocatalog=true",
                         {{"Content-Type", "application/json;charset=utf8"}},
                         "POST",
                         request_body()};
        request_context ctx;
        ctx.net = &net_;
        ctx.account = "iam";
        ctx.source = "token";
        ctx.retry.max_attempts = 3;  // transport failures and 5xx only: a 401 is never retried
        auto res = co_await send_with_retries(ctx, *conn, ep, req, fmt::format("POST {}/v3/auth/tokens", ep.text));
        if (!res) {
            auto e = res.error();
            if (e.kind == error_kind::auth || e.kind == error_kind::http_status)
                e.message = fmt::format("IAM rejected user \"{}\" of domain \"{}\": {}", cfg_.user, cfg_.domain, e.message);
            e.kind = error_kind::auth;
            co_return e;
        }
        const auto token = res->header_value("X-Subject-Token");
        if (token.empty()) co_return error{error_kind::auth, "IAM answered without an X-Subject-Token header"};
        auto expires = parse_token_expiry(res->body);
        if (!expires) co_return located(expires.error(), "IAM token response");
        token_ = config::secret{std::string(token)};
        expires_at_ = *expires;
        spdlog::info("IAM token issued user={} domain={} expires_at={}", cfg_.user, cfg_.domain, *expires);
        co_return result<void>{};
    }

    const config::auth_config& cfg_;
    config::secret password_;
    const transport& net_;
    clock_fn now_;
    asio::steady_timer wake_;
    config::secret token_;
    epoch_ms expires_at_ = 0;
    bool refreshing_ = false;
    int requests_ = 0;
    std::optional<error> failure_;
};

// SDK-HMAC-SHA256 (signer.hpp). A rejected signature is final: the AK locks
// after five consecutive failures, so retrying would lock the tenant out.
class aksk_authenticator final : public authenticator {
public:
    aksk_authenticator(std::string ak, config::secret sk, std::optional<config::secret> security_token,
                       std::string project_id, clock_fn now)
        : ak_(std::move(ak)), sk_(std::move(sk)), security_token_(std::move(security_token)),
          project_id_(std::move(project_id)), now_(std::move(now)) {}

    asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint& ep) override {
        auto [path, query] = split_target(req.target);
        if (!project_id_.empty()) req.headers.push_back({"X-Project-Id", project_id_});
        if (security_token_) req.headers.push_back({"X-Security-Token", security_token_->reveal()});
        const std::string host = host_header(ep);
        signing_input in{req.method, host, path, std::move(query), req.headers, req.body};
        const auto now = std::chrono::system_clock::time_point{std::chrono::milliseconds{now_()}};
        auto s = sign(in, ak_, sk_, now);
        req.target = s.canonical_query.empty() ? path : path + "?" + s.canonical_query;
        req.headers.push_back({"X-Sdk-Date", std::move(s.sdk_date)});
        req.headers.push_back({"Authorization", std::move(s.authorization)});
        co_return result<void>{};
    }

private:
    std::string ak_;
    config::secret sk_;
    std::optional<config::secret> security_token_;
    std::string project_id_;
    clock_fn now_;
};

}  // namespace

result<std::shared_ptr<authenticator>> make_authenticator(const config::account_config& account, std::size_t index,
                                                          const config::environment& env, const transport& net,
                                                          clock_fn now) {
    const auto& a = account.auth;
    auto resolve = [&](const config::secret_ref& ref, std::string_view name) -> result<config::secret> {
        auto s = config::resolve_secret(ref, fmt::format("account[{}].auth.{}", index, name), env);
        if (!s) return error{error_kind::auth, s.error()};
        return std::move(*s);
    };
    switch (a.type) {
        case config::auth_type::token: {
            auto token = resolve(a.token, "token");
            if (!token) return token.error();
            return std::shared_ptr<authenticator>(std::make_shared<token_authenticator>(std::move(*token)));
        }
        case config::auth_type::password: {
            auto password = resolve(a.password, "password");
            if (!password) return password.error();
            return std::shared_ptr<authenticator>(
                std::make_shared<password_authenticator>(a, std::move(*password), net, std::move(now)));
        }
        case config::auth_type::aksk: {
            auto ak = resolve(a.ak, "ak");
            if (!ak) return ak.error();
            auto sk = resolve(a.sk, "sk");
            if (!sk) return sk.error();
            std::optional<config::secret> security_token;
            if (!a.security_token.empty()) {
                auto t = resolve(a.security_token, "security_token");
                if (!t) return t.error();
                security_token = std::move(*t);
            }
            return std::shared_ptr<authenticator>(std::make_shared<aksk_authenticator>(
                ak->reveal(), std::move(*sk), std::move(security_token), a.project_id, std::move(now)));
        }
    }
    return error{error_kind::auth, "unknown auth type"};
}

}  // namespace subsync::sync
