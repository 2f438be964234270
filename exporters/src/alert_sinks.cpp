// The log, jsonl, webhook and alertmanager sinks (exec is in alert_exec.cpp).

#include <subsync/exporters/alert_sinks.hpp>
#include <subsync/sync/signer.hpp>

#include <subsync/config/load.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace subsync::exporters {

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
    explicit log_sink(std::string name) : name_(std::move(name)) {}

    asio::awaitable<delivery_outcome> deliver(const notification& n, steady::time_point) override {
        if (n.state == "resolved")
            spdlog::info(
                "alert resolved sink={} kind={} severity={} account={} source={} id={} threshold={} reason={} "
                "summary=\"{}\"",
                name_, n.kind, n.severity, n.account, n.source, n.id, n.threshold, n.reason, n.summary);
        else
            spdlog::warn(
                "alert firing sink={} kind={} severity={} account={} source={} id={} threshold={} notification={} "
                "summary=\"{}\"",
                name_, n.kind, n.severity, n.account, n.source, n.id, n.threshold, n.number, n.summary);
        co_return delivery_outcome{true, {}};
    }

    [[nodiscard]] std::size_t batch_size() const override { return 1024; }

private:
    std::string name_;
};

// ---- jsonl --------------------------------------------------------------------------------

class jsonl_sink final : public alert_sink {
public:
    explicit jsonl_sink(std::filesystem::path path) : path_(std::move(path)) {}

    asio::awaitable<delivery_outcome> deliver(const notification& n, steady::time_point) override {
        co_return append(n.payload);
    }

    [[nodiscard]] std::size_t batch_size() const override { return 1024; }

    // One fsync per batch: the dispatcher commits a batch as delivered only after this.
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

    asio::awaitable<delivery_outcome> deliver(const notification& n, steady::time_point cap) override {
        const bool am = cfg_.type == config::sink_type::alertmanager;
        sync::http_request req;
        req.method = "POST";
        req.target = cfg_.url.base_path + (am ? "/api/v2/alerts" : "");
        if (req.target.empty()) req.target = "/";
        if (!cfg_.url.query.empty()) req.target += "?" + cfg_.url.query;
        req.body = am ? alertmanager_body(n, ctx_.repeat_interval) : n.payload;
        req.headers.push_back({"Content-Type", "application/json"});
        req.headers.push_back({"Idempotency-Key", n.idempotency_key});
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
    asio::awaitable<delivery_outcome> deliver(const notification&, steady::time_point) override {
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

    asio::awaitable<delivery_outcome> deliver(const notification& n, steady::time_point cap) override {
        const auto start = steady::now();
        const auto deadline = std::min(cap, start + timeout_);
        auto r = co_await run_exec(argv_, n.payload, deadline, envp_);
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

// ---- payload parsing ----------------------------------------------------------------------

std::string_view str_or_empty(simdjson::dom::element e) {
    std::string_view v;
    if (e.get(v) != simdjson::SUCCESS) return {};
    return v;
}

}  // namespace

boost::system::result<notification, std::string> parse_notification(std::int64_t seq, std::string_view payload) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(payload);
    simdjson::dom::element root;
    if (auto e = parser.parse(padded).get(root); e) return fmt::format("outbox seq={}: payload: {}", seq, simdjson::error_message(e));
    simdjson::dom::object obj;
    if (root.get(obj)) return fmt::format("outbox seq={}: payload is not a JSON object", seq);
    notification n;
    n.seq = seq;
    n.payload = std::string(payload);
    struct text_field {
        const char* name;
        std::string* out;
        bool required;
    };
    for (const auto& f : {text_field{"idempotency_key", &n.idempotency_key, true}, {"kind", &n.kind, true},
                          {"severity", &n.severity, true}, {"state", &n.state, true}, {"account", &n.account, false},
                          {"source", &n.source, false}, {"id", &n.id, false}, {"threshold", &n.threshold, false},
                          {"summary", &n.summary, false}, {"reason", &n.reason, false}}) {
        simdjson::dom::element e;
        if (obj[f.name].get(e) || !(e.is_string() || e.is_null())) {
            if (f.required) return fmt::format("outbox seq={}: payload field={}: expected a string", seq, f.name);
            continue;
        }
        *f.out = std::string(str_or_empty(e));
    }
    auto time_field = [&](const char* name) -> std::optional<std::int64_t> {
        std::string_view t;
        if (obj[name].get(t)) return std::nullopt;
        return sync::parse_iso8601(t);
    };
    n.since = time_field("since").value_or(0);
    n.created_at = time_field("created_at").value_or(n.since);
    n.resolved_at = time_field("resolved_at");
    if (std::int64_t num = 0; !obj["notification"].get(num)) n.number = num;
    if (simdjson::dom::object values; !obj["values"].get(values)) {
        for (auto [key, value] : values) {
            if (value.is_string()) n.values.emplace_back(std::string(key), std::string(str_or_empty(value)));
            else n.values.emplace_back(std::string(key), simdjson::minify(value));
        }
    }
    return n;
}

std::string alertmanager_body(const notification& n, std::chrono::milliseconds repeat_interval) {
    // Alertmanager v2 `postableAlerts` (prometheus/alertmanager api/v2/openapi.yaml): labels is a
    // required string map and identifies the alert; annotations, startsAt, endsAt, generatorURL
    // are optional. Empty label values mean "no label" there, so they are left out.
    std::string out = "[{\"labels\":{";
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
    pair("severity", n.severity);
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
    for (const auto& [k, v] : n.values)
        if (k != "summary" && k != "reason" && k != "idempotency_key" && k != "notification") pair(k, v);
    out += "},\"startsAt\":";
    sync::append_json_string(out, sync::format_iso8601(n.since));
    // Resolved: ends when it resolved. Firing: active until two repeat intervals after this
    // notification, so the next repeat (after one interval) refreshes it before it lapses, and a
    // daemon that stopped watching lets it expire instead of firing forever.
    const std::int64_t ends = n.resolved_at ? *n.resolved_at : n.created_at + 2 * repeat_interval.count();
    out += ",\"endsAt\":";
    sync::append_json_string(out, sync::format_iso8601(std::max(ends, n.since)));
    out += "}]";
    return out;
}

std::unique_ptr<alert_sink> make_sink(const config::sink_config& cfg, const sink_context& ctx) {
    switch (cfg.type) {
        case config::sink_type::log: return std::make_unique<log_sink>(cfg.name);
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

}  // namespace subsync::exporters
