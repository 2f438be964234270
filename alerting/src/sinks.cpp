// The log, jsonl, webhook and alertmanager sinks (exec is in alert_exec.cpp).

#include <subsync/alerting/sinks.hpp>
#include <subsync/sync/signer.hpp>

#include <subsync/config/load.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace subsync::alerting {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

namespace {

/// At most `limit` bytes of `s`, marked when cut; for error texts that quote a peer.
std::string truncated(std::string_view s, std::size_t limit = 300) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
    if (s.size() <= limit) return std::string(s);
    return fmt::format("{}… ({} bytes)", s.substr(0, limit), s.size());
}

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

// ---- log ----------------------------------------------------------------------------------

class log_sink final : public alert_sink {
public:
    log_sink(std::string name, alerting_observer* observer)
        : name_(std::move(name)), observer_(observer != nullptr ? *observer : default_alerting_log()) {}

    // One record per group notification: its labels, counts, and the most urgent alert.
    asio::awaitable<delivery_outcome> deliver(const group_notification& g, steady::time_point) override {
        observer_.on(name_, g);
        co_return delivery_outcome{true, {}};
    }

    [[nodiscard]] bool needs_payload() const override { return false; }

private:
    std::string name_;
    alerting_observer& observer_;
};

// ---- jsonl --------------------------------------------------------------------------------

class jsonl_sink final : public alert_sink {
public:
    explicit jsonl_sink(std::filesystem::path path) : path_(std::move(path)) {}

    asio::awaitable<delivery_outcome> deliver(const group_notification& g, steady::time_point) override {
        co_return append(g.payload);
    }

    // The dispatcher marks a notification delivered only after this.
    delivery_outcome flush() override {
        if (!dirty_) return {true, {}};
        dirty_ = false;
        const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0) return {false, fmt::format("jsonl {}: cannot open: {}", path_.string(), errno_text(errno))};
        delivery_outcome out{true, {}};
        if (::fsync(fd) != 0) out = {false, fmt::format("jsonl {}: fsync: {}", path_.string(), errno_text(errno))};
        ::close(fd);
        // A new file is only durable once its directory entry is.
        if (out.delivered && created_) {
            created_ = false;
            const auto dir = path_.parent_path();
            const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                ::fsync(dfd);
                ::close(dfd);
            }
        }
        return out;
    }

private:
    delivery_outcome append(const std::string& payload) {
        std::error_code ec;
        const auto dir = path_.parent_path();
        if (!dir.empty()) {
            std::filesystem::create_directories(dir, ec);
            if (ec) return {false, fmt::format("jsonl {}: cannot create the directory: {}", dir.string(), ec.message())};
        }
        if (!std::filesystem::exists(path_, ec)) created_ = true;
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) return {false, fmt::format("jsonl {}: cannot open: {}", path_.string(), errno_text(errno))};
        // One write of the whole line: with O_APPEND concurrent appenders never interleave inside it.
        std::string line = payload;
        line += '\n';
        std::size_t done = 0;
        delivery_outcome out{true, {}};
        while (done < line.size()) {
            const auto w = ::write(fd, line.data() + done, line.size() - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                out = {false, fmt::format("jsonl {}: write: {}", path_.string(), errno_text(errno))};
                break;
            }
            done += static_cast<std::size_t>(w);
        }
        ::close(fd);
        dirty_ = dirty_ || done > 0;
        return out;
    }

    std::filesystem::path path_;
    bool dirty_ = false;    ///< written since the last flush()
    bool created_ = false;  ///< the file was created since the last flush()
};

// ---- webhook and alertmanager -------------------------------------------------------------

class http_sink final : public alert_sink {
public:
    http_sink(const config::sink_config& cfg, const sink_context& ctx)
        : cfg_(cfg), ctx_(ctx),
          conn_(ctx.ex, cfg.url, cfg.url.tls() ? ctx.tls : nullptr, cfg.timeout, 1u << 20,
                ctx.proxy.for_host(cfg.url.host)) {
        if (cfg.url.tls() && !ctx.tls) throw std::logic_error("sink " + cfg.name + ": https URL without a TLS context");
    }

    [[nodiscard]] bool needs_payload() const override { return cfg_.type != config::sink_type::alertmanager; }

    asio::awaitable<delivery_outcome> deliver(const group_notification& g, steady::time_point cap) override {
        const bool am = cfg_.type == config::sink_type::alertmanager;
        sync::http_request req;
        req.method = "POST";
        req.target = cfg_.url.base_path + (am ? "/api/v2/alerts" : "");
        if (req.target.empty()) req.target = "/";
        if (!cfg_.url.query.empty()) req.target += "?" + cfg_.url.query;
        req.body = am ? alertmanager_body(g, ctx_.repeat_interval) : g.payload;
        req.headers.push_back({"Content-Type", "application/json"});
        req.headers.push_back({"Idempotency-Key", g.idempotency_key});
        for (const auto& [name, value] : cfg_.headers) req.headers.push_back({name, value});
        if (!cfg_.hmac_secret.empty()) {
            // Resolved per attempt: a rotated secret file takes effect without a restart.
            auto s = config::resolve_secret(cfg_.hmac_secret, fmt::format("alerts.sink {}.hmac_secret", cfg_.name),
                                            ctx_.env);
            if (!s) co_return delivery_outcome{false, s.error()};
            req.headers.push_back({cfg_.signature_header, "sha256=" + sync::hmac_sha256_hex((*s).reveal(), req.body)});
        }
        auto r = co_await conn_.send(req, cap);
        if (!r) co_return delivery_outcome{false, r.error().message};
        if (r->status / 100 == 2) co_return delivery_outcome{true, {}};
        // display_url: the path or query may be the secret (Slack-style), and this text is stored,
        // exported and sent on in delivery_failed.
        co_return delivery_outcome{false, fmt::format("HTTP {} from {}: {}", r->status, config::display_url(cfg_.url),
                                                      truncated(r->body))};
    }

private:
    config::sink_config cfg_;
    sink_context ctx_;
    sync::http_connection conn_;
};

/// A webhook or Alertmanager sink whose url_env/url_file/url_credential did not resolve: every
/// attempt fails with why, so the notification is retried and dead-lettered like any other.
class unresolved_sink final : public alert_sink {
public:
    explicit unresolved_sink(std::string why) : why_(std::move(why)) {}
    asio::awaitable<delivery_outcome> deliver(const group_notification&, steady::time_point) override {
        co_return delivery_outcome{false, why_};
    }

private:
    std::string why_;
};

/// The sink's URL from its secret source, parsed like `url`; errors name the key, never the value.
boost::system::result<config::endpoint, std::string> resolve_sink_url(const config::sink_config& cfg,
                                                                      const config::environment& env) {
    using boost::system::in_place_error;
    auto s = config::resolve_secret(cfg.url_secret, fmt::format("alerts.sink {}.url", cfg.name), env);
    if (!s) return {in_place_error, s.error()};
    auto url = config::parse_sink_url(s->reveal());
    if (!url) return {in_place_error, fmt::format("alerts.sink {}.url: {}", cfg.name, url.error())};
    return std::move(*url);
}

// ---- exec ---------------------------------------------------------------------------------

class exec_sink final : public alert_sink {
public:
    exec_sink(std::vector<std::string> argv, std::vector<std::string> envp, std::chrono::milliseconds timeout)
        : argv_(std::move(argv)), envp_(std::move(envp)), timeout_(timeout) {}

    asio::awaitable<delivery_outcome> deliver(const group_notification& g, steady::time_point cap) override {
        const auto start = steady::now();
        const auto deadline = std::min(cap, start + timeout_);
        auto r = co_await run_exec(argv_, g.payload, deadline, envp_);
        if (!r.started) co_return delivery_outcome{false, r.error};
        if (!r.timed_out && r.term_signal == 0 && r.exit_code == 0) co_return delivery_outcome{true, {}};
        std::string what = r.timed_out ? fmt::format("timed out after {} ms (timeout {})",
                                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                                         steady::now() - start).count(),
                                                     config::format_duration(timeout_))
                           : r.term_signal != 0 ? fmt::format("killed by signal {}", r.term_signal)
                                                : fmt::format("exit status {}", r.exit_code);
        if (!r.output.empty()) what += "; output: " + r.output;
        co_return delivery_outcome{false, fmt::format("exec {}: {}", argv_.front(), what)};
    }

private:
    std::vector<std::string> argv_;
    std::vector<std::string> envp_;
    std::chrono::milliseconds timeout_;
};

// One `postableAlert` (prometheus/alertmanager api/v2/openapi.yaml): labels is a required string
// map and identifies the alert; annotations, startsAt, endsAt, generatorURL are optional. Empty
// label values mean "no label" there, so they are left out.
void append_postable_alert(std::string& out, const notification& n, std::chrono::milliseconds repeat_interval) {
    out += "{\"labels\":{";
    bool first = true;
    auto pair = [&](std::string_view k, std::string_view v) {
        if (v.empty()) return;
        if (!first) out += ',';
        first = false;
        sync::append_json_string(out, k);
        out += ':';
        sync::append_json_string(out, v);
    };
    pair("alertname", n.kind);
    pair("severity", config::to_string(n.severity));
    pair("account", n.account);
    pair("source", n.source);
    pair("id", n.id);
    pair("threshold", n.threshold);
    out += "},\"annotations\":{";
    first = true;
    pair("summary", n.summary);
    pair("reason", n.reason);
    pair("idempotency_key", n.idempotency_key);
    pair("notification", std::to_string(n.number));
    for (const auto& [k, v] : flatten_values(n.values))
        if (k != "summary" && k != "reason" && k != "idempotency_key" && k != "notification") pair(k, v);
    out += "},\"startsAt\":";
    sync::append_json_string(out, sync::format_iso8601(n.since));
    // Resolved: ends when it resolved. Firing: active until two repeat intervals after this
    // notification, so the next repeat (after one interval) refreshes it before it lapses, and a
    // daemon that stopped watching lets it expire instead of firing forever.
    const std::int64_t ends = n.resolved_at ? *n.resolved_at : n.created_at + 2 * repeat_interval.count();
    out += ",\"endsAt\":";
    sync::append_json_string(out, sync::format_iso8601(std::max(ends, n.since)));
    out += '}';
}

}  // namespace

std::string alertmanager_body(const group_notification& g, std::chrono::milliseconds repeat_interval) {
    std::string out = "[";
    for (std::size_t i = 0; i < g.alerts.size(); ++i) {
        if (i) out += ',';
        append_postable_alert(out, g.alerts[i], repeat_interval);
    }
    out += ']';
    return out;
}

std::unique_ptr<alert_sink> make_sink(const config::sink_config& cfg, const sink_context& ctx) {
    switch (cfg.type) {
        case config::sink_type::log: return std::make_unique<log_sink>(cfg.name, ctx.observer);
        case config::sink_type::jsonl: return std::make_unique<jsonl_sink>(cfg.path);
        case config::sink_type::webhook:
        case config::sink_type::alertmanager: {
            if (cfg.url_secret.empty()) return std::make_unique<http_sink>(cfg, ctx);
            auto url = resolve_sink_url(cfg, ctx.env);
            if (!url) return std::make_unique<unresolved_sink>(url.error());
            config::sink_config resolved = cfg;
            resolved.url = std::move(*url);
            if (resolved.url.tls() && !ctx.tls)
                return std::make_unique<unresolved_sink>(
                    fmt::format("alerts.sink {}.url: https URL without a TLS context", cfg.name));
            return std::make_unique<http_sink>(resolved, ctx);
        }
        case config::sink_type::exec:
            if (cfg.argv.empty()) throw std::invalid_argument("sink " + cfg.name + ": exec needs argv");
            return std::make_unique<exec_sink>(cfg.argv, exec_environment(cfg, ctx.env, ctx.secret_env_names),
                                               cfg.timeout);
    }
    throw std::invalid_argument("sink " + cfg.name + ": unknown type");
}

}  // namespace subsync::alerting
