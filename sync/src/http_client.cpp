#include <subsync/config/load.hpp>
#include <subsync/sync/http_client.hpp>

#include "response_reader.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <utility>

namespace subsync::sync {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

class tls_context {
public:
    ssl::context ctx{ssl::context::tls_client};
};

std::shared_ptr<tls_context> make_tls_context(const config::tls_config& cfg) {
    auto t = std::make_shared<tls_context>();
    t->ctx.set_verify_mode(ssl::verify_peer);
    t->ctx.set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (cfg.ca_file.empty()) {
        t->ctx.set_default_verify_paths(ec);
        if (ec) throw std::runtime_error("cannot load the system trust store: " + ec.message());
    } else {
        t->ctx.load_verify_file(cfg.ca_file.string(), ec);
        if (ec)
            throw std::runtime_error(fmt::format("tls.ca_file: cannot load {}: {}", cfg.ca_file.string(), ec.message()));
    }
    return t;
}

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// The one place where transport error codes become domain errors.
error map_error(const boost::system::error_code& ec, std::string_view step, const config::endpoint& ep) {
    error_kind kind = error_kind::network;
    if (ec == beast::error::timeout || ec == asio::error::timed_out) kind = error_kind::timeout;
    else if (ec == asio::error::operation_aborted) kind = error_kind::cancelled;
    // A peer that closes without TLS close_notify has closed the connection, as a plain EOF
    // does (many load balancers do it to idle keep-alive connections): not a TLS failure.
    else if (ec == ssl::error::stream_truncated)
        return error{error_kind::network, fmt::format("{} {}:{}: connection closed (without TLS close_notify)", step,
                                                      ep.host, ep.port)};
    else if (ec.category() == asio::error::get_ssl_category()) kind = error_kind::tls;
    std::string hint;
    if (kind == error_kind::tls && step == "TLS handshake")
        hint = " (if the server uses a private CA, set tls.ca_file to its certificate)";
    return error{kind, fmt::format("{} {}:{}: {}{}", step, ep.host, ep.port, ec.message(), hint)};
}

// RFC 9110 §5.1 token characters, for header names.
bool is_token(std::string_view s) {
    static constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || specials.find(c) != std::string_view::npos;
    });
}

// A header value may not hold control characters (CR or LF would start a new header:
// a secret read from a file must never inject one). Tab is allowed (RFC 9110 §5.5).
bool is_field_value(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
}

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string env_or(const char* upper, const char* lower) {
    for (const char* name : {upper, lower})
        if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return v;
    return {};
}

}  // namespace

bool http_request::has_header(std::string_view name) const {
    return std::any_of(headers.begin(), headers.end(), [&](const header& h) { return iequals(h.name, name); });
}

std::string_view http_response::header_value(std::string_view name) const {
    for (const auto& h : headers)
        if (iequals(h.name, name)) return h.value;
    return {};
}

std::string host_header(const config::endpoint& ep) {
    const bool v6 = ep.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + ep.host + "]" : ep.host;
    return ep.explicit_port ? fmt::format("{}:{}", host, ep.port) : host;
}

proxy_settings proxy_settings::resolve(const std::string& config_proxy, const std::string& config_no_proxy) {
    proxy_settings p;
    p.url = !config_proxy.empty() ? config_proxy : env_or("HTTPS_PROXY", "https_proxy");
    p.no_proxy = !config_no_proxy.empty() ? config_no_proxy : env_or("NO_PROXY", "no_proxy");
    return p;
}

std::optional<config::endpoint> proxy_settings::for_host(std::string_view host) const {
    if (url.empty()) return std::nullopt;
    // NO_PROXY as curl reads it: "*", exact hosts, and domain suffixes ("example.com" and
    // ".example.com" both cover "api.example.com"). Ports in entries are ignored.
    std::string_view rest = no_proxy;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string_view entry = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
        while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
        if (entry.empty()) continue;
        if (entry == "*") return std::nullopt;
        if (entry.front() == '.') entry.remove_prefix(1);
        if (iequals(host, entry)) return std::nullopt;
        if (host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
            iequals(host.substr(host.size() - entry.size()), entry))
            return std::nullopt;
    }
    auto ep = config::parse_endpoint(url);
    if (!ep || ep->tls()) return std::nullopt;  // validated in config; a bad environment value goes direct
    return *ep;
}

struct http_connection::impl {
    asio::any_io_executor ex;
    config::endpoint ep;
    std::shared_ptr<tls_context> tls;
    std::chrono::milliseconds timeout;
    std::size_t body_limit;
    std::string host_value;
    std::optional<config::endpoint> proxy;
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
    std::size_t connects = 0;
    body_scratch spare;  // a body given back by reuse(), kept in by the next 2xx answer

    bool open() const { return plain.has_value() || secure.has_value(); }

    void close() {
        boost::system::error_code ignored;
        if (plain) plain->socket().close(ignored);
        if (secure) beast::get_lowest_layer(*secure).socket().close(ignored);
        plain.reset();
        secure.reset();
        buffer.clear();
    }

    asio::awaitable<result<void>> connect(clock::time_point deadline) {
        using namespace asio::experimental::awaitable_operators;
        close();
        const config::endpoint& peer = proxy ? *proxy : ep;
        tcp::resolver resolver(ex);
        asio::steady_timer timer(ex, deadline);
        auto resolved = co_await (resolver.async_resolve(peer.host, std::to_string(peer.port), tuple_awaitable) ||
                                  timer.async_wait(tuple_awaitable));
        if (resolved.index() == 1)
            co_return error{error_kind::timeout, fmt::format("resolve {}: timed out", peer.host)};
        auto [rec, endpoints] = std::get<0>(std::move(resolved));
        if (rec) co_return map_error(rec, proxy ? "resolve proxy" : "resolve", peer);

        beast::tcp_stream stream(ex);
        stream.expires_at(deadline);
        auto [cec, ignored_ep] = co_await stream.async_connect(endpoints, tuple_awaitable);
        if (cec) co_return map_error(cec, proxy ? "connect to proxy" : "connect", peer);
        stream.socket().set_option(tcp::no_delay(true));
        ++connects;
        if (proxy) {
            if (auto t = co_await tunnel(stream, deadline); !t) co_return t.error();
        }

        if (!tls) {
            plain.emplace(std::move(stream));
            co_return result<void>{};
        }
        secure.emplace(std::move(stream), tls->ctx);
        // SNI is for host names only (RFC 6066 §3); IP literals are verified against the SAN.
        if (!is_ip_literal(ep.host)) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
            if (!SSL_set_tlsext_host_name(secure->native_handle(), ep.host.c_str())) {
#pragma GCC diagnostic pop
                close();
                co_return error{error_kind::tls, fmt::format("TLS {}: cannot set SNI", ep.host)};
            }
        }
        secure->set_verify_callback(ssl::host_name_verification(ep.host));
        beast::get_lowest_layer(*secure).expires_at(deadline);
        auto [hec] = co_await secure->async_handshake(ssl::stream_base::client, tuple_awaitable);
        if (hec) {
            auto e = map_error(hec, "TLS handshake", ep);
            close();
            co_return e;
        }
        co_return result<void>{};
    }

    // HTTP CONNECT (RFC 9110 §9.3.6): after a 2xx the socket is a byte pipe to
    // the endpoint, and TLS runs end to end through it.
    asio::awaitable<result<void>> tunnel(beast::tcp_stream& stream, clock::time_point deadline) {
        config::endpoint with_port = ep;
        with_port.explicit_port = true;  // CONNECT always names the port
        const std::string authority = host_header(with_port);
        http::request<http::empty_body> msg{http::verb::connect, authority, 11};
        msg.set(http::field::host, authority);
        msg.set(http::field::user_agent, "subsyncd/" SUBSYNC_VERSION);
        stream.expires_at(deadline);
        auto [wec, wn] = co_await http::async_write(stream, msg, tuple_awaitable);
        if (wec) co_return map_error(wec, "CONNECT through proxy", *proxy);
        http::response_parser<http::empty_body> parser;
        parser.skip(true);  // a CONNECT answer has no body
        beast::flat_buffer tunnel_buffer;
        auto [rec, rn] = co_await http::async_read_header(stream, tunnel_buffer, parser, tuple_awaitable);
        if (rec) co_return map_error(rec, "CONNECT through proxy", *proxy);
        const unsigned status = parser.get().result_int();
        if (status / 100 != 2)
            co_return error{error_kind::network,
                            fmt::format("proxy {}:{} refused CONNECT {}: HTTP {}", proxy->host, proxy->port, authority,
                                        status),
                            status};
        co_return result<void>{};
    }

    template <class Stream>
    asio::awaitable<result<http_response>> exchange(Stream& stream, const http_request& req, clock::time_point deadline,
                                                    bool& nothing_received) {
        http::request<http::string_body> msg{http::string_to_verb(req.method), req.target, 11};
        msg.set(http::field::host, host_value);
        msg.set(http::field::user_agent, "subsyncd/" SUBSYNC_VERSION);
        msg.set(http::field::accept, "application/json");
        for (const auto& h : req.headers) {
            // The name is ours; the value may come from a config file or secret: never say it.
            if (!is_token(h.name) || !is_field_value(h.value))
                co_return error{error_kind::network,
                                fmt::format("refused to send header \"{}\" to {}:{}: its {} holds a character not "
                                            "allowed in HTTP headers (a control character such as CR or LF)",
                                            is_token(h.name) ? h.name : "(invalid name)", ep.host, ep.port,
                                            is_token(h.name) ? "value" : "name")};
            msg.set(h.name, h.value);
        }
        if (req.method != "GET") {
            msg.body() = req.body;
            msg.prepare_payload();
        }

        beast::get_lowest_layer(stream).expires_at(deadline);
        auto [wec, wn] = co_await http::async_write(stream, msg, tuple_awaitable);
        if (wec) co_return map_error(wec, "send request to", ep);

        // Interim 1xx answers (100 Continue, 103 Early Hints) precede the real one: read past them.
        std::optional<detail::response_parser> parser;
        nothing_received = true;
        for (int interim = 0;; ++interim) {
            parser.emplace();
            detail::set_limits(*parser, body_limit);
            auto [hec, hn] = co_await http::async_read_header(stream, buffer, *parser, tuple_awaitable);
            nothing_received = nothing_received && hn == 0;
            if (hec) {
                // A Content-Length over the limit is refused with the header.
                if (auto e = detail::body_error(*parser, hec, fmt::format("{}:{}", ep.host, ep.port), body_limit))
                    co_return *e;
                co_return map_error(hec, "read response from", ep);
            }
            if (!detail::is_interim(parser->get().result_int())) break;
            if (interim == 16)
                co_return error{error_kind::network,
                                fmt::format("read response from {}:{}: more than 16 interim 1xx answers", ep.host, ep.port)};
        }

        // The status decides what of the body is kept (budgeted_body).
        if (parser->get().result_int() / 100 == 2 && spare.bytes.capacity() > 0) {
            auto& body = parser->get().body();
            spare.bytes.clear();
            body.kept = std::move(spare.bytes);
            body.lease = std::move(spare.lease);  // the buffer's charge goes with it
            spare.bytes = std::string();
        }
        detail::choose_body(*parser, req.shape, req.unfiltered_up_to);
        if (!parser->is_done()) {
            auto [rec, rn] = co_await http::async_read(stream, buffer, *parser, tuple_awaitable);
            if (auto e = detail::body_error(*parser, rec, fmt::format("{}:{}", ep.host, ep.port), body_limit)) co_return *e;
            if (rec) co_return map_error(rec, "read response from", ep);
        }
        // A large answer grew the read buffer: give it back before the next page.
        if (buffer.capacity() > 64 * 1024) buffer.shrink_to_fit();

        const bool keep_alive = parser->get().keep_alive();
        auto out = detail::to_response(*parser);
        if (!keep_alive) close();
        co_return out;
    }
};

http_connection::http_connection(asio::any_io_executor ex, config::endpoint ep, std::shared_ptr<tls_context> tls,
                                 std::chrono::milliseconds timeout, std::size_t body_limit,
                                 std::optional<config::endpoint> proxy)
    : impl_(std::make_unique<impl>()) {
    impl_->ex = std::move(ex);
    impl_->host_value = host_header(ep);
    impl_->proxy = std::move(proxy);
    impl_->ep = std::move(ep);
    if (impl_->ep.tls()) {
        if (!tls) throw std::logic_error("https endpoint without a TLS context");
        impl_->tls = std::move(tls);
    }
    impl_->timeout = timeout;
    impl_->body_limit = body_limit;
}

http_connection::~http_connection() { impl_->close(); }

std::size_t http_connection::connects() const noexcept { return impl_->connects; }

void http_connection::reuse(std::string&& body) noexcept {
    constexpr std::size_t kept_max = std::size_t{1} << 20;
    auto& d = *impl_;
    if (body.capacity() > kept_max || body.capacity() <= d.spare.bytes.capacity()) return;
    body_lease lease;
    if (!lease.grow(body.capacity())) return;  // no room in the budget for an idle buffer: freed
    d.spare.bytes = std::move(body);
    d.spare.lease = std::move(lease);  // the smaller spare's share, if any, goes back
}

asio::awaitable<void> http_connection::warm_up() {
    auto& d = *impl_;
    if (d.open()) co_return;
    if (!co_await d.connect(clock::now() + d.timeout)) d.close();
}

asio::awaitable<result<http_response>> http_connection::send(const http_request& req, clock::time_point cap) {
    auto& d = *impl_;
    const auto deadline = std::min(clock::now() + d.timeout, cap);
    // A kept-alive connection may have been closed by the server while idle; a
    // request that got no byte back on such a connection is sent once more on a
    // fresh one (safe: these are idempotent GETs).
    for (int attempt = 0;; ++attempt) {
        const bool reused = d.open();
        if (!reused) {
            auto c = co_await d.connect(deadline);
            if (!c) co_return c.error();
        }
        bool nothing_received = false;
        // Not a conditional expression: GCC 12 miscompiles co_await inside ?: (double destruction).
        result<http_response> r;
        if (d.secure) r = co_await d.exchange(*d.secure, req, deadline, nothing_received);
        else r = co_await d.exchange(*d.plain, req, deadline, nothing_received);
        if (r) co_return r;
        d.close();
        if (!(reused && nothing_received && attempt == 0 && r.error().kind == error_kind::network)) co_return r;
    }
}

}  // namespace subsync::sync
