#include <subsync/config/load.hpp>

#include "detail/read_file.hpp"
#include "detail/reader.hpp"

#include <boost/throw_exception.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace subsync::config {
namespace {

using namespace detail;

// A config file is a few KiB; the bound keeps a wrong path (a log, a device) from being slurped.
constexpr std::size_t max_config_bytes = 1024 * 1024;

void read_storage(const table_reader& root, storage_config& out) {
    const toml::table* t = root.table("storage");
    if (t == nullptr) return;
    const table_reader r(*t, "storage",
                         {"database", "export_dir", "busy_timeout", "history_days", "quota_sample_interval"},
                         root.report());
    r.path("database", false, out.database);
    r.path("export_dir", false, out.export_dir);
    r.duration("busy_timeout", milliseconds(0), std::chrono::minutes(10), out.busy_timeout);
    r.integer("history_days", 0, 36500, out.history_days);
    r.duration("quota_sample_interval", milliseconds(0), std::chrono::hours(24 * 31), out.quota_sample_interval);
}

// `[exports]`: booleans and the format list are read here; table_reader has no getter for them.
void read_exports(const table_reader& root, exports_config& out) {
    const toml::table* t = root.table("exports");
    if (t == nullptr) return;
    const table_reader r(*t, "exports",
                         {"csv_bom", "csv_crlf", "neutralise_formulas", "keep_generations", "formats", "report"},
                         root.report());
    const auto boolean = [&](std::string_view k, bool& value) {
        const toml::node* n = r.node(k);
        if (n == nullptr) return;
        if (!n->is_boolean()) return r.wrong_type(k, *n, "boolean (true or false)");
        value = n->as_boolean()->get();
    };
    boolean("csv_bom", out.csv_bom);
    boolean("csv_crlf", out.csv_crlf);
    boolean("neutralise_formulas", out.neutralise_formulas);
    boolean("report", out.report);
    r.integer("keep_generations", 1, 1000, out.keep_generations);
    const toml::node* n = r.node("formats");
    if (n == nullptr) return;
    const toml::array* a = n->as_array();
    if (a == nullptr) return r.wrong_type("formats", *n, "array of strings such as [\"csv\", \"json\"]");
    std::vector<std::string> formats;
    for (const toml::node& e : *a) {
        const std::string* s = e.is_string() ? &e.as_string()->get() : nullptr;
        if (s == nullptr || (*s != "csv" && *s != "json" && *s != "jsonl"))
            return r.invalid("formats", s == nullptr ? fmt::format("expected strings, got {}", type_name(e.type()))
                                                      : fmt::format("unknown format \"{}\"; expected \"csv\", "
                                                                    "\"json\" or \"jsonl\"",
                                                                    *s));
        if (std::find(formats.begin(), formats.end(), *s) != formats.end())
            return r.invalid("formats", fmt::format("\"{}\" is listed twice", *s));
        formats.push_back(*s);
    }
    if (formats.empty()) return r.invalid("formats", "must list at least one of \"csv\", \"json\", \"jsonl\"");
    out.formats = std::move(formats);
}

void read_sync(const table_reader& root, sync_config& out) {
    const toml::table* t = root.table("sync");
    if (t == nullptr) return;
    const table_reader r(*t, "sync",
                         {"interval", "page_size", "concurrency", "timeout", "source_timeout", "max_attempts",
                          "backoff_base", "backoff_max", "rate_limit", "rate_burst", "body_limit_mib", "body_budget_mib", "proxy",
                          "no_proxy", "jitter", "max_pages", "source_concurrency"},
                         root.report());
    r.duration("interval", std::chrono::seconds(10), std::nullopt, out.interval);
    // Half the interval at most, so two syncs are always at least interval / 2 apart.
    out.jitter = out.interval / 10;
    r.duration("jitter", milliseconds(0), out.interval / 2, out.jitter);
    r.integer("page_size", 1, 500, out.page_size);  // 500: the API's maximum page size
    r.integer("concurrency", 1, 64, out.concurrency);
    r.integer("max_pages", 1, 1'000'000, out.max_pages);
    r.integer("source_concurrency", 1, 1024, out.source_concurrency);
    r.duration("timeout", milliseconds(100), std::chrono::minutes(10), out.timeout);
    r.duration("source_timeout", milliseconds(100), std::chrono::hours(24), out.source_timeout);
    r.integer("max_attempts", 1, 20, out.max_attempts);
    r.duration("backoff_base", milliseconds(1), std::chrono::minutes(1), out.backoff_base);
    r.duration("backoff_max", milliseconds(1), std::chrono::minutes(10), out.backoff_max);
    int rate = static_cast<int>(out.rate_limit);
    r.integer("rate_limit", 0, 10000, rate);  // the gateway's own limit is 200/s per API
    out.rate_limit = rate;
    r.integer("rate_burst", 1, 1000, out.rate_burst);
    int body_mib = static_cast<int>(out.body_limit >> 20);
    r.integer("body_limit_mib", 1, 4096, body_mib);
    out.body_limit = static_cast<std::size_t>(body_mib) << 20;
    int budget_mib = static_cast<int>(out.body_budget >> 20);
    r.integer("body_budget_mib", 1, 4096, budget_mib);
    out.body_budget = static_cast<std::size_t>(budget_mib) << 20;
    if (auto proxy = r.string("proxy"); proxy && !proxy->empty()) {
        if (auto ep = parse_endpoint(*proxy); !ep || ep->tls())
            r.invalid("proxy", fmt::format("\"{}\" is not an http://host:port proxy address", *proxy));
        out.proxy = std::move(*proxy);
    }
    if (auto no_proxy = r.string("no_proxy")) out.no_proxy = std::move(*no_proxy);
}

void read_tls(const table_reader& root, tls_config& out) {
    const toml::table* t = root.table("tls");
    if (t == nullptr) return;
    const table_reader r(*t, "tls", {"ca_file"}, root.report());
    r.path("ca_file", true, out.ca_file);
    // Checked now rather than at the first sync, so a typo fails at startup, not minutes later.
    if (out.ca_file.empty()) return;
    if (std::string why = detail::check_readable_file(out.ca_file); !why.empty()) r.invalid("ca_file", why);
}

}  // namespace

void detail::read_endpoint(const table_reader& r, std::string_view k, endpoint& out) {
    std::optional<std::string> text = r.string(k, true);
    if (!text) return;
    auto ep = parse_endpoint(*text);
    if (!ep) return r.invalid(k, ep.error());
    out = std::move(*ep);
    if (!out.tls()) {
        const toml::node* n = r.node(k);
        r.report().warning(line_of(n->source()), r.key(k), "plain http:// — traffic and token are not encrypted");
    }
}

// `[daemon]` and `[metrics]`: how the long-running `subsyncd run` behaves and is observed.
namespace {

using namespace detail;

constexpr std::string_view listen_form = "\"127.0.0.1:9469\" or \"[::1]:9469\"";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// Splits "IPv4:port" / "[IPv6]:port"; the reason when it is neither.
std::string parse_listen(std::string_view text, metrics_config& out) {
    std::string host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return fmt::format("\"{}\" is not an address:port; write {}", text, listen_form);
        host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        in6_addr addr{};
        if (::inet_pton(AF_INET6, host.c_str(), &addr) != 1)
            return fmt::format("\"{}\" is not an IPv6 address", host);
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return fmt::format("\"{}\" has no port; write {}", text, listen_form);
        host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
        in_addr addr{};
        // An IP literal only: a name would need resolving, and "localhost" may mean ::1 or 127.0.0.1.
        if (::inet_pton(AF_INET, host.c_str(), &addr) != 1)
            return fmt::format("\"{}\" is not an IPv4 address; write {}", host, listen_form);
    }
    unsigned value = 0;
    const bool digits = !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), is_digit);
    if (digits)
        for (char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
    if (!digits || value > 65535) return fmt::format("invalid port \"{}\"; expected 0..65535", port);
    out.host = std::move(host);
    out.port = static_cast<std::uint16_t>(value);
    return {};
}

bool loopback(const std::string& host) { return host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

void detail::read_daemon(const table_reader& root, daemon_config& out) {
    const toml::table* t = root.table("daemon");
    if (t == nullptr) return;
    const table_reader r(*t, "daemon", {"grace", "lock_wait", "log_level", "log_format"}, root.report());
    r.duration("grace", milliseconds(100), std::chrono::hours(1), out.grace);
    r.duration("lock_wait", milliseconds(0), std::chrono::hours(1), out.lock_wait);
    if (auto level = r.string("log_level")) {
        if (*level == "debug") out.level = log_level::debug;
        else if (*level == "info") out.level = log_level::info;
        else if (*level == "warn") out.level = log_level::warn;
        else if (*level == "error") out.level = log_level::error;
        else
            r.invalid("log_level",
                      fmt::format("unknown level \"{}\"; expected \"debug\", \"info\", \"warn\" or \"error\"", *level));
    }
    if (auto format = r.string("log_format")) {
        if (*format == "text") out.format = log_format::text;
        else if (*format == "json") out.format = log_format::json;
        else r.invalid("log_format", fmt::format("unknown format \"{}\"; expected \"text\" or \"json\"", *format));
    }
}

void detail::read_metrics(const table_reader& root, metrics_config& out) {
    const toml::table* t = root.table("metrics");
    if (t == nullptr) return;
    const table_reader r(*t, "metrics", {"listen"}, root.report());
    auto listen = r.string("listen");
    if (!listen || listen->empty()) return;
    metrics_config parsed;
    if (std::string why = parse_listen(*listen, parsed); !why.empty()) return r.invalid("listen", why);
    parsed.listen = std::move(*listen);
    if (!loopback(parsed.host))
        r.report().warning(line_of(r.node("listen")->source()), r.key("listen"),
                           "not a loopback address — /metrics and /healthz are served to the network, unauthenticated");
    out = std::move(parsed);
}

namespace {

bool valid_account_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '.' || c == '-';
    });
}

void read_accounts(const table_reader& root, std::vector<account_config>& out) {
    const toml::node* n = root.node("account");
    if (n == nullptr)
        return root.report().error(root.line(), "account", "at least one [[account]] table is required");
    const toml::array* accounts = n->as_array();
    if (accounts == nullptr) return root.wrong_type("account", *n, "array of tables ([[account]])");
    if (accounts->empty())
        return root.report().error(line_of(n->source()), "account", "at least one [[account]] table is required");

    struct first_use {
        std::size_t index;
        line_t line;
    };
    std::map<std::string, first_use, std::less<>> names;
    for (std::size_t i = 0; i < accounts->size(); ++i) {
        const toml::node& element = *accounts->get(i);
        const std::string path = fmt::format("account[{}]", i);
        const toml::table* t = element.as_table();
        if (t == nullptr) {
            root.report().error(line_of(element.source()), path,
                                fmt::format("expected table, got {}", type_name(element.type())));
            continue;
        }
        const table_reader r(*t, path, {"name", "apig_endpoint", "secmaster_endpoint", "language", "auth"},
                             root.report());
        account_config a;
        if (std::optional<std::string> name = r.string("name", true)) {
            const line_t line = line_of(r.node("name")->source());
            if (!valid_account_name(*name)) {
                r.invalid("name", fmt::format("\"{}\" is not a valid account name; use 1 to 64 of A-Z a-z 0-9 _ . -",
                                              *name));
            } else if (auto [it, inserted] = names.try_emplace(*name, first_use{i, line}); !inserted) {
                r.invalid("name", fmt::format("duplicate account name \"{}\" (also account[{}], line {})", *name,
                                              it->second.index, it->second.line));
            }
            a.name = std::move(*name);
        }
        read_endpoint(r, "apig_endpoint", a.apig_endpoint);
        read_endpoint(r, "secmaster_endpoint", a.secmaster_endpoint);
        if (std::optional<std::string> language = r.string("language")) {
            if (*language != "en-us" && *language != "zh-cn")
                r.invalid("language", fmt::format("unknown language \"{}\"; expected \"en-us\" or \"zh-cn\"",
                                                  *language));
            else
                a.language = std::move(*language);
        }
        read_auth(r, a.auth);
        out.push_back(std::move(a));
    }
}

}  // namespace

void throw_exception_from_error(const config_error& e, const boost::source_location& loc) {
    boost::throw_with_location(std::runtime_error(e.message), loc);
}

boost::system::result<config, config_error> load_config(const std::filesystem::path& file) {
    auto text = detail::read_file(file, max_config_bytes);
    if (!text) return config_error{text.error()};
    return parse_config(*text, file);
}

boost::system::result<config, config_error> parse_config(std::string_view toml_text,
                                                         const std::filesystem::path& source_name) {
    const std::string file = source_name.string();
    toml::table root;
    try {
        root = toml::parse(toml_text, std::string_view(file));
    } catch (const toml::parse_error& e) {
        return config_error{fmt::format("{}:{}: syntax error: {}", file, line_of(e.source()), e.description())};
    }

    std::error_code ec;
    const std::filesystem::path absolute = std::filesystem::absolute(source_name, ec);
    validation v(file, (ec ? source_name : absolute).parent_path());
    const table_reader r(root, "", {"storage", "sync", "tls", "account", "daemon", "metrics", "alerts", "exports",
                                             "destination"},
                         v);

    config c;
    c.source = source_name;
    read_storage(r, c.storage);
    read_exports(r, c.exports);
    read_sync(r, c.sync);
    read_daemon(r, c.daemon);
    read_metrics(r, c.metrics);
    read_tls(r, c.tls);
    read_accounts(r, c.accounts);
    read_alerts(r, c.accounts, c.alerts);
    read_destinations(r, c.destinations);
    if (v.failed()) return config_error{v.errors()};
    c.warnings = v.warnings();
    return c;
}

}  // namespace subsync::config

