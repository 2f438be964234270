// subsync-emulator: the fake Huawei Cloud as a process, for manual runs and scripted tests of
// subsyncd. Prints one line when listening (and one for the CONNECT proxy, if asked for) and runs
// until SIGINT or SIGTERM. Secrets can come from the environment, as the command line shows in ps.

#include "subsync/emulator/connect_proxy.hpp"
#include "subsync/emulator/server.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <pthread.h>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace emu = subsync::emulator;

// Written beside the target and renamed over it, so a reader never sees a half-written file.
void write_atomically(const fs::path& target, const std::string& content) {
    const fs::path temporary = fs::path(target).concat(".tmp");
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!(out << content) || !out.flush()) {
            throw std::runtime_error(temporary.string() + ": cannot write");
        }
    }
    std::error_code ec;
    fs::rename(temporary, target, ec);
    if (ec) {
        throw std::runtime_error(target.string() + ": cannot rename " + temporary.string() + " over it: " +
                                 ec.message());
    }
}

constexpr const char* users_env = "SUBSYNC_EMULATOR_IAM_USERS";
constexpr const char* keys_env = "SUBSYNC_EMULATOR_ACCESS_KEYS";

// NAME:PASSWORD:DOMAIN; the password may hold ':' (the name and the domain cannot). `where` names
// the flag or the variable entry; the value itself never goes into a message.
emu::iam_user parse_user(const std::string& text, const std::string& where) {
    const auto first = text.find(':');
    const auto last = text.rfind(':');
    if (first == std::string::npos || first == last || first == 0 || last + 1 == text.size()) {
        throw std::runtime_error(where + ": expected NAME:PASSWORD:DOMAIN");
    }
    return {text.substr(0, first), text.substr(first + 1, last - first - 1), text.substr(last + 1)};
}

// AK:SK[:SECURITY_TOKEN]; the security token may hold ':' (the AK and SK cannot).
emu::access_key parse_key(const std::string& text, const std::string& where) {
    const auto first = text.find(':');
    if (first == std::string::npos || first == 0) {
        throw std::runtime_error(where + ": expected AK:SK[:SECURITY_TOKEN]");
    }
    const auto second = text.find(':', first + 1);
    emu::access_key key{text.substr(0, first), text.substr(first + 1, second - first - 1), std::nullopt};
    if (second != std::string::npos) {
        key.security_token = text.substr(second + 1);
    }
    if (key.sk.empty() || (key.security_token && key.security_token->empty())) {
        throw std::runtime_error(where + ": expected AK:SK[:SECURITY_TOKEN]");
    }
    return key;
}

// The comma-separated entries of `name` (none when unset or empty); "NAME entry 2" names each.
std::vector<std::pair<std::string, std::string>> env_entries(const char* name) {
    const char* value = std::getenv(name);
    std::vector<std::pair<std::string, std::string>> out;
    if (value == nullptr || *value == '\0') {
        return out;
    }
    std::string_view rest = value;
    for (std::size_t index = 1;; ++index) {
        const auto comma = rest.find(',');
        out.emplace_back(std::string(rest.substr(0, comma)), std::string(name) + " entry " + std::to_string(index));
        if (comma == std::string_view::npos) {
            return out;
        }
        rest.remove_prefix(comma + 1);
    }
}

// The flag's values if it was given, else the variable's entries: as for --token, the command line wins.
template <class T, class Parse>
std::vector<T> from_flag_or_env(const std::vector<std::string>& flag_values, const char* flag, const char* env,
                                Parse parse) {
    std::vector<T> out;
    if (!flag_values.empty()) {
        for (const auto& value : flag_values) {
            out.push_back(parse(value, std::string(flag)));
        }
        return out;
    }
    for (const auto& [value, where] : env_entries(env)) {
        out.push_back(parse(value, where));
    }
    return out;
}

// "YYYY-MM-DD" (a valid calendar date) or "today" (UTC), as midnight UTC.
std::optional<std::chrono::sys_seconds> parse_base_date(const std::string& text) {
    using namespace std::chrono;
    if (text == "today") return sys_seconds{floor<days>(system_clock::now())};
    int y = 0;
    unsigned m = 0, d = 0;
    char tail = 0;
    if (text.size() != 10 || std::sscanf(text.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) != 3) return std::nullopt;
    const year_month_day date{year{y}, month{m}, day{d}};
    if (!date.ok()) return std::nullopt;
    return sys_seconds{sys_days{date}};
}

struct mode_flags {
    std::string time_style;
    std::optional<std::size_t> time_item;
    std::size_t max_page_size = 0;
    std::optional<std::uint64_t> lying_total;
    std::optional<std::size_t> unreadable_purchase, unreadable_resource;
    std::vector<std::string> malform_pages;
    std::string malform_orders, throttle, iam_outage;
    std::vector<std::string> projects;
    std::optional<std::string> required_project_id;
    bool require_content_type = false;
    unsigned close_without_notify = 0;
    std::string interim;
    std::vector<int> echo_pages;
    bool echo_orders = false, echo_iam = false;
    std::size_t pad_listings = 0;
    bool endless_listings = false;
};

unsigned to_unsigned(const std::string& text, const std::string& where) {
    std::size_t used = 0;
    unsigned long v = 0;
    try {
        v = std::stoul(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || v > 0xffffffffUL || text[0] == '-') {
        throw std::runtime_error(where + ": expected a non-negative integer, got \"" + text + "\"");
    }
    return static_cast<unsigned>(v);
}

emu::malformation to_malformation(const std::string& kind, const std::string& where) {
    static const std::pair<const char*, emu::malformation> kinds[] = {
        {"truncated-json", emu::malformation::truncated_json}, {"not-json", emu::malformation::not_json},
        {"wrong-type", emu::malformation::wrong_type},         {"null-list", emu::malformation::null_list},
        {"null-entry", emu::malformation::null_entry},         {"error-body", emu::malformation::error_body},
        {"duplicate-key", emu::malformation::duplicate_key},
    };
    for (const auto& [name, value] : kinds) {
        if (kind == name) return value;
    }
    throw std::runtime_error(where + ": unknown kind \"" + kind + "\"");
}

void apply_modes(emu::server& server, const mode_flags& f) {
    if (!f.time_style.empty()) {
        const auto style = f.time_style == "zone-less" ? emu::time_style::zone_less
                           : f.time_style == "spaced"  ? emu::time_style::spaced
                           : f.time_style == "blank"   ? emu::time_style::blank
                                                       : emu::time_style::as_is;
        server.set_time_style(style, f.time_item);
    }
    server.max_page_size(f.max_page_size);
    server.pad_listings(f.pad_listings);
    server.endless_listings(f.endless_listings);
    server.lying_total(f.lying_total);
    server.unreadable_purchase(f.unreadable_purchase);
    server.unreadable_resource(f.unreadable_resource);
    for (const auto& text : f.malform_pages) {
        const auto colon = text.find(':');
        if (colon == std::string::npos) throw std::runtime_error("--malform-page: expected P:KIND");
        server.malform_page(static_cast<int>(to_unsigned(text.substr(0, colon), "--malform-page")),
                            to_malformation(text.substr(colon + 1), "--malform-page"));
    }
    if (!f.malform_orders.empty()) server.malform_orders(to_malformation(f.malform_orders, "--malform-orders"));
    if (!f.throttle.empty()) {
        const auto slash = f.throttle.find('/');
        if (slash == std::string::npos) throw std::runtime_error("--throttle-window: expected N/MS");
        server.throttle_window(to_unsigned(f.throttle.substr(0, slash), "--throttle-window"),
                               std::chrono::milliseconds(to_unsigned(f.throttle.substr(slash + 1), "--throttle-window")));
    }
    if (!f.iam_outage.empty()) {
        const auto colon = f.iam_outage.find(':');
        const std::string kind = colon == std::string::npos ? "" : f.iam_outage.substr(colon + 1);
        if (!kind.empty() && kind != "close") throw std::runtime_error("--iam-outage: expected N[:close]");
        server.iam_outage(to_unsigned(f.iam_outage.substr(0, colon), "--iam-outage"),
                          kind.empty() ? emu::outage_kind::status_503 : emu::outage_kind::close_connection);
    }
    std::vector<emu::project> projects;
    for (const auto& text : f.projects) {
        const auto colon = text.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
            throw std::runtime_error("--project: expected NAME:ID");
        }
        projects.push_back({text.substr(0, colon), text.substr(colon + 1)});
    }
    server.set_projects(std::move(projects));
    server.require_project_id(f.required_project_id);
    server.require_content_type(f.require_content_type);
    server.close_without_notify(f.close_without_notify);
    if (f.interim == "always") {
        server.interim_continue(std::nullopt);
    } else if (!f.interim.empty()) {
        server.interim_continue(to_unsigned(f.interim, "--interim-continue"));
    }
    for (const int page : f.echo_pages) server.echo_secrets_page(page);
    if (f.echo_orders) server.echo_secrets_orders();
    if (f.echo_iam) server.echo_secrets_iam();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"subsync-emulator: a fake Huawei Cloud serving GET /v1.0/apigw/purchases/groups (APIG) and\n"
                 "GET /v1/subscriptions/orders (SecMaster) on 127.0.0.1, for testing subsyncd.\n"
                 "Runs until SIGINT or SIGTERM, then exits 0."};
    app.get_formatter()->column_width(34);

    std::uint16_t port = 0;
    bool plain = false;
    std::string cert_file, key_file, write_cert, dataset_name = "seeds", port_file, proxy_port_file,
        token = "emulator-token";
    std::int64_t generate = 0, resources = 10;  // signed, so "-1" is refused rather than wrapped
    std::uint64_t seed = 1;
    std::string base_date = "2025-06-01";
    unsigned latency_ms = 0;
    std::vector<std::string> users, keys;
    std::int64_t token_ttl = 86400;
    std::int64_t lockout_ms = 5 * 60 * 1000;
    double max_rps = 0;

    app.add_option("--port", port, "TCP port on 127.0.0.1; 0 picks a free one (default 0)");
    auto* plain_opt = app.add_flag("--plain", plain, "serve plain HTTP instead of HTTPS");
    auto* cert_opt = app.add_option("--cert", cert_file, "PEM certificate (chain) to serve; needs --key")
                         ->check(CLI::ExistingFile)
                         ->excludes(plain_opt);
    auto* key_opt = app.add_option("--key", key_file, "PEM private key of --cert")
                        ->check(CLI::ExistingFile)
                        ->excludes(plain_opt);
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    app.add_option("--write-cert", write_cert,
                   "write the certificate in use (PEM) to this file, for the client's tls.ca_file; without\n"
                   "--cert a fresh self-signed EC P-256 certificate for 127.0.0.1/localhost (1 day) is used")
        ->excludes(plain_opt);
    auto* dataset_opt = app.add_option("--dataset", dataset_name,
                                       "'seeds' (the documented example responses, plus a null-region resource)\n"
                                       "or a JSON file {\"purchases\":[...],\"orders\":{...}} (default seeds)");
    auto* generate_opt = app.add_option("--generate", generate,
                                        "serve N generated purchases instead (awkward but valid values)")
                             ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}))
                             ->excludes(dataset_opt);
    app.add_option("--resources", resources, "with --generate: number of SecMaster resources (default 10)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}))
        ->needs(generate_opt);
    app.add_option("--seed", seed, "with --generate: the seed; same seed, same bytes (default 1)")
        ->needs(generate_opt);
    app.add_option("--base-date", base_date,
                   "with --generate: the UTC date (YYYY-MM-DD, or 'today') the generated times spread\n"
                   "around, from a year before to two years after (default 2025-06-01, as the tests)")
        ->needs(generate_opt);
    app.add_option("--latency-ms", latency_ms, "delay added before every response, in ms (default 0)");
    app.add_option("--token", token, "the only X-Auth-Token accepted (default emulator-token)")
        ->envname("SUBSYNC_EMULATOR_TOKEN");
    app.add_option("--iam-user", users,
                   "NAME:PASSWORD:DOMAIN accepted by POST /v3/auth/tokens (password method); repeatable.\n"
                   "Issued tokens are accepted as X-Auth-Token besides --token. Without it:\n"
                   "env SUBSYNC_EMULATOR_IAM_USERS, entries separated by ',' (kept out of ps)")
        ->allow_extra_args(false);
    app.add_option("--token-ttl", token_ttl, "lifetime of an issued token in seconds (default 86400, as IAM)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{10} * 365 * 86400));
    app.add_option("--access-key", keys,
                   "AK:SK[:SECURITY_TOKEN] accepted in SDK-HMAC-SHA256 signatures; repeatable. With a\n"
                   "security token the key is temporary: requests must send and sign X-Security-Token.\n"
                   "More than 5 consecutive failed signatures lock the AK for --lockout-ms. Without it:\n"
                   "env SUBSYNC_EMULATOR_ACCESS_KEYS, entries separated by ',' (kept out of ps)")
        ->allow_extra_args(false);
    app.add_option("--lockout-ms", lockout_ms,
                   "how long a locked AK stays refused, in ms (default 300000, as the real cloud)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{24} * 3600 * 1000));
    app.add_option("--max-rps", max_rps,
                   "answer 429 APIG.0308 above N requests/s on the listings (token bucket of N);\n"
                   "0 = no limit (default 0)")
        ->check(CLI::NonNegativeNumber);
    // Modes (docs/emulator.md, "Modes"): how real Huawei Cloud and broken gateways answer.
    std::string time_style_name, throttle_text, iam_outage_text, interim_text, malform_orders_text;
    std::optional<std::size_t> time_item, unreadable_purchase, unreadable_resource;
    std::size_t max_page = 0;
    std::optional<std::uint64_t> lying_total;
    std::vector<std::string> projects, malform_pages;
    std::optional<std::string> required_project_id;
    bool require_content_type = false, echo_orders = false, echo_iam = false;
    unsigned close_without_notify = 0;
    std::vector<int> echo_pages;
    std::size_t pad_listings = 0;
    bool endless_listings = false;
    app.add_option("--time-style", time_style_name,
                   "serve the time fields zone-less ('zone-less': 2020-08-03T13:09:13), 'spaced'\n"
                   "(2020-08-03 13:09:13) or 'blank' (\"\"); orders' epoch ms become such strings too")
        ->check(CLI::IsMember({"as-is", "zone-less", "spaced", "blank"}));
    app.add_option("--time-style-item", time_item, "with --time-style: only the item of this index (from 0)");
    app.add_option("--max-page-size", max_page, "serve at most N purchases a page whatever page_size asks");
    app.add_option("--lying-total", lying_total, "every purchases page says total N; pages past the data are empty");
    app.add_option("--unreadable-purchase", unreadable_purchase, "purchase of index N served with quota_left \"12\"");
    app.add_option("--unreadable-resource", unreadable_resource, "orders resource of index N served with resource_size \"x\"");
    app.add_option("--malform-page", malform_pages,
                   "P:KIND, purchases page P answers 200 broken as KIND: truncated-json, not-json, wrong-type,\n"
                   "null-list, null-entry, error-body, duplicate-key; repeatable");
    app.add_option("--malform-orders", malform_orders_text, "the orders listing answers 200 broken as KIND (as --malform-page)");
    app.add_option("--throttle-window", throttle_text,
                   "N/MS: at most N requests per MS milliseconds on each listing, then 429 APIG.0308, no Retry-After");
    app.add_option("--iam-outage", iam_outage_text, "N[:close]: the next N token requests get 503 (or a closed connection)");
    app.add_option("--project", projects, "NAME:ID, a project GET /v3/projects?name=NAME lists; repeatable");
    app.add_option("--require-project-id", required_project_id,
                   "AK/SK-signed listing requests must send X-Project-Id ID (missing 401, other 403)");
    app.add_flag("--require-content-type", require_content_type,
                 "strict: listing requests without Content-Type: application/json get 400 APIG.0201");
    app.add_option("--close-without-notify", close_without_notify,
                   "the next N listing answers are followed by closing the connection without TLS close_notify");
    app.add_option("--pad-listings", pad_listings,
                   "listing answers carry an unknown member \"x_padding\" of N characters (memory tests)");
    app.add_flag("--endless-listings", endless_listings,
                 "listing answers are chunked and never end: {\"x_padding\":\"xxxx... until the client gives up");
    app.add_option("--interim-continue", interim_text, "N or 'always': answers preceded by HTTP/1.1 100 Continue");
    app.add_option("--echo-secrets-page", echo_pages, "purchases page P answers 401 echoing the credentials sent; repeatable");
    app.add_flag("--echo-secrets-orders", echo_orders, "the orders listing answers 401 echoing the credentials sent");
    app.add_flag("--echo-secrets-iam", echo_iam, "token requests answer 401 echoing the request body (the password)");
    app.add_option("--port-file", port_file,
                   "write the bound port to this file once listening (atomically, via rename)");
    app.add_option("--connect-proxy-port-file", proxy_port_file,
                   "also start an HTTP CONNECT proxy (for HTTPS_PROXY) on a free 127.0.0.1 port, tunnelling\n"
                   "to loopback only, and write its port to this file (before --port-file)");

    CLI11_PARSE(app, argc, argv);

    // Blocked before the server starts its thread, so only sigwait below sees these signals.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const auto base = parse_base_date(base_date);
    if (!base) {
        std::cerr << "subsync-emulator: --base-date " << base_date << ": expected YYYY-MM-DD or 'today'\n";
        return 2;
    }

    try {
        emu::dataset data =
            generate_opt->count() > 0
                ? emu::dataset::generated(static_cast<std::size_t>(generate), static_cast<std::size_t>(resources), seed,
                                          *base)
            : dataset_name == "seeds" ? emu::dataset::seeds()
                                      : emu::dataset::from_file(dataset_name);
        const std::size_t purchases = data.purchases.size();
        const std::size_t groups = data.resource_group_count();

        emu::options opts;
        opts.tls = !plain;
        opts.cert_file = cert_file;
        opts.key_file = key_file;
        opts.token = token;
        opts.latency = std::chrono::milliseconds(latency_ms);
        opts.port = port;
        opts.users = from_flag_or_env<emu::iam_user>(users, "--iam-user", users_env, parse_user);
        opts.token_ttl = std::chrono::seconds(token_ttl);
        opts.keys = from_flag_or_env<emu::access_key>(keys, "--access-key", keys_env, parse_key);
        opts.lockout = std::chrono::milliseconds(lockout_ms);
        opts.max_rps = max_rps;
        emu::server server(opts, std::move(data));
        apply_modes(server, {time_style_name, time_item, max_page, lying_total, unreadable_purchase,
                             unreadable_resource, malform_pages, malform_orders_text, throttle_text, iam_outage_text,
                             projects, required_project_id, require_content_type, close_without_notify, interim_text,
                             echo_pages, echo_orders, echo_iam, pad_listings, endless_listings});
        server.start();

        std::optional<emu::connect_proxy> proxy;
        if (!proxy_port_file.empty()) {
            emu::connect_proxy_options proxy_opts;
            // One line per tunnel, so a script (or a person) sees that a client came through it.
            proxy_opts.on_tunnel = [](std::string_view target) {
                std::cout << "connect proxy tunnel to " << target << std::endl;
            };
            proxy.emplace(std::move(proxy_opts));
        }

        // The certificate and the proxy first: a script that waits for the port file may use them at once.
        if (!write_cert.empty()) {
            write_atomically(write_cert, server.cert_pem());
        }
        if (proxy) {
            write_atomically(proxy_port_file, std::to_string(proxy->port()) + "\n");
        }
        if (!port_file.empty()) {
            write_atomically(port_file, std::to_string(server.port()) + "\n");
        }
        std::cout << "subsync-emulator listening on " << server.base_url() << " (" << purchases << " purchases, "
                  << groups << " resource groups)" << std::endl;
        if (proxy) {
            std::cout << "connect proxy on " << proxy->url() << std::endl;
        }

        int received = 0;
        sigwait(&signals, &received);
        proxy.reset();
        server.stop();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "subsync-emulator: error: " << e.what() << std::endl;
        return 1;
    }
}
