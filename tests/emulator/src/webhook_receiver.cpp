#include <subsync/emulator/webhook_receiver.hpp>

#include "tls_cert.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <list>
#include <mutex>
#include <regex>
#include <thread>

namespace subsync::emulator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string hmac_hex(const std::string& key, const std::string& body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(body.data()),
         body.size(), mac, &len);
    std::string hex;
    char b[3];
    for (unsigned i = 0; i < len; ++i) {
        std::snprintf(b, sizeof b, "%02x", mac[i]);
        hex += b;
    }
    return hex;
}

// RFC 3339 date-time as go-openapi's strfmt.DateTime accepts it.
bool is_rfc3339(std::string_view s) {
    static const std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$)");
    return std::regex_match(s.begin(), s.end(), re);
}

std::string check_string_map(simdjson::dom::element e, const char* what, bool labels) {
    simdjson::dom::object obj;
    if (e.get(obj)) return std::string(what) + " is not an object";
    static const std::regex name_re("^[a-zA-Z_][a-zA-Z0-9_]*$");
    std::size_t n = 0;
    for (auto [k, v] : obj) {
        ++n;
        std::string key(k);
        if (!v.is_string()) return std::string(what) + "." + key + " is not a string";
        if (labels && !std::regex_match(key, name_re)) return "invalid label name \"" + key + "\"";
        if (labels && std::string_view(v.get_string().value()).empty()) return "label " + key + " has an empty value";
    }
    if (labels && n == 0) return "labels is empty";
    return {};
}

}  // namespace

std::string validate_postable_alerts(const std::string& body) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(body).get(root)) return "body is not JSON";
    simdjson::dom::array arr;
    if (root.get(arr)) return "body is not an array (postableAlerts)";
    if (arr.size() == 0) return "empty array";
    for (auto a : arr) {
        simdjson::dom::object obj;
        if (a.get(obj)) return "alert is not an object";
        bool has_labels = false;
        std::string starts, ends;
        for (auto [k, v] : obj) {
            const std::string key(k);
            if (key == "labels") {
                has_labels = true;
                if (auto e = check_string_map(v, "labels", true); !e.empty()) return e;
            } else if (key == "annotations") {
                if (auto e = check_string_map(v, "annotations", false); !e.empty()) return e;
            } else if (key == "startsAt" || key == "endsAt") {
                std::string_view t;
                if (v.get(t) || !is_rfc3339(t)) return key + " is not an RFC 3339 date-time";
                (key == "startsAt" ? starts : ends) = std::string(t);
            } else if (key == "generatorURL") {
                if (!v.is_string()) return "generatorURL is not a string";
            } else {
                return "unknown property " + key;
            }
        }
        if (!has_labels) return "labels is required";
        // Same format and UTC ("Z") from subsyncd: comparable as text.
        if (!starts.empty() && !ends.empty() && ends < starts) return "endsAt is before startsAt";
    }
    return {};
}

std::string received_request::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

struct webhook_receiver::impl {
    receiver_options opts;
    detail::pem_pair pem;
    std::optional<ssl::context> tls;
    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    std::uint16_t port = 0;
    std::thread thread;

    mutable std::mutex mu;
    mutable std::condition_variable cv;
    std::vector<received_request> log;
    bool down = false;
    bool stall = false;
    unsigned status = 200;

    template <class Stream>
    asio::awaitable<void> serve(Stream& stream) {
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(1 << 20);
            beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
            auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
            if (ec) co_return;
            auto req = parser.release();
            received_request r;
            r.method = std::string(req.method_string());
            r.target = std::string(req.target());
            for (const auto& f : req) r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
            r.body = req.body();
            bool close_now = false, stalled = false;
            std::string answer_body = "ok\n";
            {
                std::lock_guard lock(mu);
                close_now = down;
                stalled = stall;
                r.status = status;
            }
            if (!opts.hmac_secret.empty()) {
                r.signature_ok = r.header(opts.signature_header) == "sha256=" + hmac_hex(opts.hmac_secret, r.body);
                if (!r.signature_ok) {
                    r.status = 401;
                    answer_body = "bad signature\n";
                }
            }
            if (r.target == "/api/v2/alerts") {
                r.validation_error = validate_postable_alerts(r.body);
                if (!r.validation_error.empty()) {
                    r.status = 400;
                    answer_body = r.validation_error + "\n";
                }
            }
            if (close_now || stalled) r.status = 0;
            const unsigned answer = r.status;
            {
                std::lock_guard lock(mu);
                log.push_back(std::move(r));
            }
            cv.notify_all();
            if (close_now) co_return;
            if (stalled) {
                asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
                co_await t.async_wait(use_tuple);
                co_return;
            }
            http::response<http::string_body> res{static_cast<http::status>(answer), req.version()};
            res.set(http::field::content_type, "text/plain");
            res.body() = answer_body;
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
            if (wec || !req.keep_alive()) co_return;
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::tcp_stream tcp_stream(std::move(socket));
        if (!tls) {
            co_await serve(tcp_stream);
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), *tls);
        stream.next_layer().expires_after(std::chrono::seconds(10));
        auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
        if (ec) co_return;
        co_await serve(stream);
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec) co_return;
            asio::co_spawn(ioc, session(std::move(socket)), asio::detached);
        }
    }
};

webhook_receiver::webhook_receiver(receiver_options opts) : impl_(std::make_unique<impl>()) {
    impl_->opts = std::move(opts);
    if (impl_->opts.tls) {
        impl_->pem = detail::make_self_signed_cert();
        impl_->tls.emplace(ssl::context::tls_server);
        impl_->tls->use_certificate_chain(asio::buffer(impl_->pem.cert));
        impl_->tls->use_private_key(asio::buffer(impl_->pem.key), ssl::context::pem);
    }
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen();
    impl_->port = impl_->acceptor.local_endpoint().port();
    asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
    impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

webhook_receiver::~webhook_receiver() {
    impl_->ioc.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::string webhook_receiver::base_url() const {
    return (impl_->opts.tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(impl_->port);
}

std::string webhook_receiver::cert_pem() const { return impl_->pem.cert; }

void webhook_receiver::set_down(bool down) {
    std::lock_guard lock(impl_->mu);
    impl_->down = down;
}

void webhook_receiver::set_status(unsigned status) {
    std::lock_guard lock(impl_->mu);
    impl_->status = status;
}

void webhook_receiver::set_stall(bool stall) {
    std::lock_guard lock(impl_->mu);
    impl_->stall = stall;
}

std::vector<received_request> webhook_receiver::requests() const {
    std::lock_guard lock(impl_->mu);
    return impl_->log;
}

std::vector<std::string> webhook_receiver::accepted_bodies() const {
    std::lock_guard lock(impl_->mu);
    std::vector<std::string> out;
    for (const auto& r : impl_->log)
        if (r.status / 100 == 2) out.push_back(r.body);
    return out;
}

bool webhook_receiver::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mu);
    return impl_->cv.wait_for(lock, timeout, [&] { return impl_->log.size() >= n; });
}

bool webhook_receiver::wait_for_accepted(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mu);
    return impl_->cv.wait_for(lock, timeout, [&] {
        return static_cast<std::size_t>(std::count_if(impl_->log.begin(), impl_->log.end(),
                                                      [](const auto& r) { return r.status / 100 == 2; })) >= n;
    });
}

}  // namespace subsync::emulator
