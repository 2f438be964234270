#include <subsync/logging/log.hpp>
#include <subsync/sync/auth.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/request.hpp>
#include <subsync/sync/signer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>

namespace subsync::sync {

namespace asio = boost::asio;

bool authenticator::rejected(const http_request&) { return false; }

asio::awaitable<result<std::string>> authenticator::project_id() { co_return std::string(); }

namespace {

// One credential fetch at a time, shared by every worker that needs it (single
// flight). A failure is remembered until the next sync round, so one round
// never retries authentication in a loop (an AK locks after 5 failed
// signatures), and the next round tries again (an IAM outage must not outlive it).
class single_flight {
public:
    explicit single_flight(const asio::any_io_executor& ex) : wake_(ex, std::chrono::steady_clock::time_point::max()) {}

    /// Returns once `ready()` holds, running `fetch()` (one at a time) until it does.
    template <class Ready, class Fetch>
    asio::awaitable<result<void>> ensure(Ready ready, Fetch fetch) {
        for (;;) {
            if (failure_) co_return *failure_;
            if (ready()) co_return result<void>{};
            if (busy_) {
                co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled when the fetch ends
                continue;
            }
            busy_ = true;
            auto fetched = co_await fetch();
            busy_ = false;
            wake_.cancel();
            if (!fetched) failure_ = fetched.error();
        }
    }

    void forget_failure() noexcept { failure_.reset(); }

private:
    asio::steady_timer wake_;
    bool busy_ = false;
    std::optional<error> failure_;
};

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
// workers share one in-flight request; IAM's 5xx and network failures are
// retried like any request, its 401/403 are not (single_flight).
class password_authenticator final : public authenticator {
public:
    password_authenticator(const config::auth_config& cfg, config::secret password, const transport& net,
                           retry_policy retry, clock_fn now)
        : cfg_(cfg), password_(std::move(password)), net_(net), retry_(retry), now_(std::move(now)), flight_(net.ex) {}

    asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint&) override {
        auto ok = co_await flight_.ensure(
            [this] { return !token_.empty() && now_() < expires_at_ - cfg_.refresh_margin.count(); },
            [this] { return request_token(); });
        if (!ok) co_return ok;
        req.headers.push_back({"X-Auth-Token", token_.reveal()});
        co_return result<void>{};
    }

    void new_round() override { flight_.forget_failure(); }

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
        ctx.retry = retry_;  // transport failures and 5xx only: a 401 is never retried
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
        logging::info("IAM token issued", {{"user", cfg_.user}, {"domain", cfg_.domain}, {"expires_at", *expires}});
        co_return result<void>{};
    }

    const config::auth_config& cfg_;
    config::secret password_;
    const transport& net_;
    retry_policy retry_;
    clock_fn now_;
    single_flight flight_;
    config::secret token_;
    epoch_ms expires_at_ = 0;
    int requests_ = 0;
};

// SDK-HMAC-SHA256 (signer.hpp). A rejected signature is final: the AK locks
// after five consecutive failures, so retrying would lock the tenant out.
// Requests carry X-Project-Id as the SDKs send it: `project_id`, or the id IAM
// gives for the project named `project` (GET /v3/projects?name=…, signed), looked
// up once.
class aksk_authenticator final : public authenticator {
public:
    aksk_authenticator(const config::auth_config& cfg, std::string ak, config::secret sk,
                       std::optional<config::secret> security_token, const transport& net, retry_policy retry,
                       clock_fn now)
        : cfg_(cfg), ak_(std::move(ak)), sk_(std::move(sk)), security_token_(std::move(security_token)),
          project_id_(cfg.project_id), net_(net), retry_(retry), now_(std::move(now)), flight_(net.ex) {}

    asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint& ep) override {
        if (project_id_.empty() && !cfg_.project.empty()) {
            auto known = co_await flight_.ensure([this] { return !project_id_.empty(); }, [this] { return look_up_project(); });
            if (!known) co_return known;
        }
        if (!project_id_.empty()) req.headers.push_back({"X-Project-Id", project_id_});
        sign_into(req, ep);
        co_return result<void>{};
    }

    void new_round() override { flight_.forget_failure(); }

    asio::awaitable<result<std::string>> project_id() override {
        if (project_id_.empty() && !cfg_.project.empty()) {
            auto known = co_await flight_.ensure([this] { return !project_id_.empty(); }, [this] { return look_up_project(); });
            if (!known) co_return known.error();
        }
        co_return project_id_;
    }

private:
    void sign_into(http_request& req, const config::endpoint& ep) const {
        auto [path, query] = split_target(req.target);
        if (security_token_) req.headers.push_back({"X-Security-Token", security_token_->reveal()});
        const std::string host = host_header(ep);
        signing_input in{req.method, host, path, std::move(query), req.headers, req.body};
        const auto now = std::chrono::system_clock::time_point{std::chrono::milliseconds{now_()}};
        auto s = sign(in, ak_, sk_, now);
        req.target = s.canonical_query.empty() ? path : path + "?" + s.canonical_query;
        req.headers.push_back({"X-Sdk-Date", std::move(s.sdk_date)});
        req.headers.push_back({"Authorization", std::move(s.authorization)});
    }

    asio::awaitable<result<void>> look_up_project() {
        const auto& ep = cfg_.iam_endpoint;
        const auto where = fmt::format("GET {}/v3/projects?name={}", ep.text, cfg_.project);
        auto conn = net_.connect(ep);
        http_request req;
        req.target = ep.base_path + "/v3/projects?name=" + percent_encode(cfg_.project);
        req.headers.push_back({"Content-Type", "application/json"});
        sign_into(req, ep);
        request_context ctx;
        ctx.net = &net_;
        ctx.account = "iam";
        ctx.source = "projects";
        ctx.retry = retry_;  // 5xx and transport failures; a refused signature is final
        auto res = co_await send_with_retries(ctx, *conn, ep, req, where);
        if (!res) co_return located(res.error(), "looking up project_id (set [account.auth] project_id to skip it)");
        auto ids = parse_project_ids(res->body, cfg_.project);
        if (!ids) co_return located(ids.error(), where);
        if (ids->empty())
            co_return error{error_kind::auth,
                            fmt::format("{}: IAM has no project named \"{}\" for this access key; check [account.auth] "
                                        "project (a region name such as \"cn-north-4\") or set project_id",
                                        where, cfg_.project)};
        if (ids->size() > 1)
            co_return error{error_kind::auth,
                            fmt::format("{}: IAM has {} projects named \"{}\" ({}); set [account.auth] project_id to "
                                        "the one to use",
                                        where, ids->size(), cfg_.project, fmt::join(*ids, ", "))};
        project_id_ = std::move(ids->front());
        logging::info("project id resolved", {{"project", cfg_.project}, {"project_id", project_id_}});
        co_return result<void>{};
    }

    const config::auth_config& cfg_;
    std::string ak_;
    config::secret sk_;
    std::optional<config::secret> security_token_;
    std::string project_id_;
    const transport& net_;
    retry_policy retry_;
    clock_fn now_;
    single_flight flight_;
};

}  // namespace

result<std::shared_ptr<authenticator>> make_authenticator(const config::account_config& account, std::size_t index,
                                                          const config::environment& env, const transport& net,
                                                          retry_policy retry, clock_fn now) {
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
                std::make_shared<password_authenticator>(a, std::move(*password), net, retry, std::move(now)));
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
                a, ak->reveal(), std::move(*sk), std::move(security_token), net, retry, std::move(now)));
        }
    }
    return error{error_kind::auth, "unknown auth type"};
}

}  // namespace subsync::sync

namespace subsync::sync {

result<std::string> resolve_project_id(const config::config& cfg, std::size_t index, const config::environment& env,
                                       clock_fn now) {
    const auto& account = cfg.accounts.at(index);
    asio::io_context io;
    transport net;
    net.ex = io.get_executor();
    net.proxy = proxy_settings::resolve(cfg.sync.proxy, cfg.sync.no_proxy);
    net.timeout = cfg.sync.timeout;
    if (account.auth.iam_endpoint.tls()) net.tls = make_tls_context(cfg.tls);
    auto auth = make_authenticator(account, index, env, net,
                                   {cfg.sync.max_attempts, cfg.sync.backoff_base, cfg.sync.backoff_max}, std::move(now));
    if (!auth) return auth.error();
    std::optional<result<std::string>> out;
    asio::co_spawn(io, (*auth)->project_id(), [&](std::exception_ptr e, result<std::string> r) {
        if (e) std::rethrow_exception(e);
        out = std::move(r);
    });
    io.run();
    return std::move(*out);
}

}  // namespace subsync::sync
