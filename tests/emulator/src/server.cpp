// The network side: Beast HTTP/1.1 over TLS or plain TCP, one io_context on one thread.
// Coroutine shape after boostorg/beast example/advanced/server-flex-awaitable: as_tuple for the
// expected errors, a deadline on every step, body limits, stop by cancellation.

#include "subsync/emulator/server.hpp"

#include "json_writer.hpp"
#include "service.hpp"
#include "tls_cert.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <list>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace subsync::emulator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t header_limit = 64 * 1024;  // IAM tokens alone run to several KB
constexpr std::chrono::seconds shutdown_timeout{5};
constexpr std::chrono::seconds stop_timeout{5};

std::string read_file(const std::string& path, std::string_view what) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (!in || !(text << in.rdbuf())) {
        throw std::runtime_error(path + ": cannot read the " + std::string(what));
    }
    return text.str();
}

void log_exception(std::string_view where, const std::exception_ptr& e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::cerr << "subsync-emulator: " << where << ": " << ex.what() << std::endl;
    } catch (...) {
        std::cerr << "subsync-emulator: " << where << ": unknown exception" << std::endl;
    }
}

}  // namespace

struct server::impl {
    options opts;
    detail::pem_pair pem;
    detail::service& service;  // owned by server, outlives this

    std::atomic<std::uint64_t> requests{0}, connections{0}, max_in_flight{0};

    // Touched on the io thread only.
    std::uint64_t in_flight = 0;
    bool stopping = false;
    std::mt19937_64 request_ids{std::random_device{}()};
    std::list<asio::cancellation_signal> sessions;  // one per connection, emitted on stop

    std::optional<ssl::context> tls;  // declared before the io_context: sessions hold references
    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    std::uint16_t port = 0;
    std::thread thread;
    std::future<void> finished;
    bool running = false;

    impl(options o, detail::service& s) : opts(std::move(o)), service(s) {
        if (!opts.tls) {
            return;
        }
        if (opts.cert_file.empty() != opts.key_file.empty()) {
            throw std::runtime_error("emulator options: cert_file and key_file go together");
        }
        if (opts.cert_file.empty()) {
            pem = detail::make_self_signed_cert();
        } else {
            pem.cert = read_file(opts.cert_file, "certificate");
            pem.key = read_file(opts.key_file, "private key");
        }
        tls.emplace(ssl::context::tls_server);
        tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        const std::string cert_name = opts.cert_file.empty() ? "generated certificate" : opts.cert_file;
        const std::string key_name = opts.key_file.empty() ? "generated key" : opts.key_file;
        boost::system::error_code ec;
        if (tls->use_certificate_chain(asio::buffer(pem.cert), ec); ec) {
            throw std::runtime_error(cert_name + ": not a usable PEM certificate: " + ec.message());
        }
        if (tls->use_private_key(asio::buffer(pem.key), ssl::context::pem, ec); ec) {
            throw std::runtime_error(key_name + ": not a usable PEM private key for " + cert_name + ": " +
                                     ec.message());
        }
    }

    std::string next_request_id() {
        std::array<char, 33> text{};
        std::snprintf(text.data(), text.size(), "%016llx%016llx", static_cast<unsigned long long>(request_ids()),
                      static_cast<unsigned long long>(request_ids()));
        return std::string(text.data(), 32);
    }

    static http::response<http::string_body> make_response(detail::reply reply, const std::string& request_id,
                                                           unsigned version) {
        http::response<http::string_body> res;
        res.version(version);
        res.result(reply.status);
        res.set(http::field::server, "subsync-emulator");
        res.set(http::field::content_type, reply.content_type);
        res.set("X-Request-Id", request_id);
        for (const auto& [name, value] : reply.headers) {
            res.insert(name, value);
        }
        res.body() = std::move(reply.body);
        res.prepare_payload();
        return res;
    }

    struct prepared {
        http::response<http::string_body> response;
        detail::delivery how = detail::delivery::respond;
        detail::drip_pace pace{};
        bool interim_continue = false;
        bool close_after = false;
    };

    prepared answer(const http::request<http::string_body>& req) {
        const std::string request_id = next_request_id();
        detail::incoming in;
        in.method = req.method_string();
        in.target = req.target();
        in.body = req.body();
        for (const auto& field : req) {
            in.headers.emplace_back(field.name_string(), field.value());
        }
        in.request_id = request_id;
        auto decision = service.handle(in, std::chrono::system_clock::now(), std::chrono::steady_clock::now());
        auto res = make_response(std::move(decision.answer), request_id, req.version());
        res.keep_alive(req.keep_alive());
        return {std::move(res), decision.how, decision.pace, decision.interim_continue, decision.close_after};
    }

    // The status line and headers (with the full Content-Length) and half the body, then an RST:
    // SO_LINGER 0 makes the close that follows abort the connection, with no TLS close_notify.
    template <class Stream>
    asio::awaitable<void> reset_mid_body(Stream& stream, const http::response<http::string_body>& res) {
        std::ostringstream text;
        text << res;
        const std::string bytes = text.str();
        const std::size_t cut = bytes.size() - res.body().size() / 2 - res.body().size() % 2;
        beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
        [[maybe_unused]] const auto [ec, n] = co_await asio::async_write(stream, asio::buffer(bytes.data(), cut),
                                                                         use_tuple);
        boost::system::error_code ignored;
        beast::get_lowest_layer(stream).socket().set_option(tcp::socket::linger(true, 0), ignored);
    }

    // True once stop() has cancelled this session. An operation that had already completed when
    // the cancellation came never sees it, so a long wait checks this before it starts.
    static asio::awaitable<bool> stopped() {
        const auto state = co_await asio::this_coro::cancellation_state;
        co_return state.cancelled() != asio::cancellation_type::none;
    }

    // The status line and headers (with the full Content-Length) at once, then `pace.bytes` of the
    // body after each `pace.tick`: every write is quick, only the whole is slow, which a client sees
    // through its total deadline and never through a per-read one. True when everything was sent.
    template <class Stream>
    asio::awaitable<bool> drip(Stream& stream, http::response<http::string_body>& res, detail::drip_pace pace) {
        http::response_serializer<http::string_body> serializer(res);
        beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
        if (const auto [ec, n] = co_await http::async_write_header(stream, serializer, use_tuple); ec) {
            co_return false;
        }
        const std::string& body = res.body();
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (std::size_t sent = 0; sent < body.size();) {
            if (co_await stopped()) {
                co_return false;
            }
            timer.expires_after(pace.tick);
            if (const auto [timer_ec] = co_await timer.async_wait(use_tuple); timer_ec) {
                co_return false;  // stop()
            }
            const std::size_t n = std::min(pace.bytes, body.size() - sent);
            beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
            if (const auto [ec, written] = co_await asio::async_write(stream, asio::buffer(body.data() + sent, n),
                                                                      use_tuple);
                ec) {
                co_return false;  // typically the client gave up: its deadline passed
            }
            sent += n;
        }
        co_return true;
    }

    // The status line and headers of `res` with Transfer-Encoding: chunked, then a body that never
    // ends: `{"x_padding":"` and 64 KiB chunks of 'x' until a write fails (the client gave up) or
    // stop(). Each chunk is written under its own deadline, so only a client-side limit ends it.
    template <class Stream>
    asio::awaitable<void> endless(Stream& stream, const http::response<http::string_body>& res) {
        http::response<http::empty_body> head{res.result(), res.version()};
        for (const auto& field : res) {
            if (field.name() != http::field::content_length) {
                head.insert(field.name_string(), field.value());
            }
        }
        head.chunked(true);
        http::response_serializer<http::empty_body> serializer(head);
        beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
        if (const auto [ec, n] = co_await http::async_write_header(stream, serializer, use_tuple); ec) {
            co_return;
        }
        static constexpr std::string_view opening = R"({"x_padding":")";
        const std::string first = chunk_frame(opening);
        const std::string filler = chunk_frame(std::string(64 * 1024, 'x'));
        for (const std::string* next = &first;; next = &filler) {
            if (co_await stopped()) {
                co_return;
            }
            beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
            if (const auto [ec, n] = co_await asio::async_write(stream, asio::buffer(*next), use_tuple); ec) {
                co_return;
            }
        }
    }

    // One chunk of a chunked body (RFC 9112 section 7.1): size in hex, CRLF, data, CRLF.
    static std::string chunk_frame(std::string_view data) {
        std::array<char, 20> size{};
        const auto [end, ec] = std::to_chars(size.data(), size.data() + size.size(), data.size(), 16);
        std::string out(size.data(), end);
        out += "\r\n";
        out += data;
        out += "\r\n";
        return out;
    }

    // Counts a request from read to response written, latency included.
    struct in_flight_scope {
        impl& owner;
        explicit in_flight_scope(impl& s) : owner(s) {
            ++owner.in_flight;
            if (owner.in_flight > owner.max_in_flight.load()) {
                owner.max_in_flight.store(owner.in_flight);
            }
        }
        ~in_flight_scope() { --owner.in_flight; }
        in_flight_scope(const in_flight_scope&) = delete;
        in_flight_scope& operator=(const in_flight_scope&) = delete;
    };

    // Serves requests until the peer is done. True: close politely (TLS close_notify);
    // false: the connection is broken, timed out or cancelled — just drop it.
    template <class Stream>
    asio::awaitable<bool> serve(Stream& stream) {
        beast::flat_buffer buffer;
        for (;;) {
            const auto cancellation = co_await asio::this_coro::cancellation_state;
            if (cancellation.cancelled() != asio::cancellation_type::none) {
                co_return false;
            }
            http::request_parser<http::string_body> parser;
            parser.header_limit(header_limit);
            parser.body_limit(opts.body_limit);
            beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
            const auto [read_ec, read_n] = co_await http::async_read(stream, buffer, parser, use_tuple);
            if (read_ec == http::error::end_of_stream) {
                co_return true;
            }
            if (read_ec && read_ec.category() == http::make_error_code(http::error::bad_target).category()) {
                // Malformed or oversized request: answer once, then close (the rest of an
                // oversized body is still in the pipe).
                const unsigned status = read_ec == http::error::body_limit ? 413U : 400U;
                const std::string request_id = next_request_id();
                auto res = make_response({status, detail::error_body("APIG.0201", read_ec.message(), request_id)},
                                         request_id, 11);
                res.keep_alive(false);
                beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
                const auto [write_ec, write_n] = co_await http::async_write(stream, res, use_tuple);
                co_return !write_ec;
            }
            if (read_ec) {
                co_return false;  // timeout, reset, truncated TLS, cancelled
            }

            ++requests;
            const in_flight_scope scope(*this);
            auto [res, how, pace, interim, close_after] = answer(parser.get());
            if (opts.latency.count() > 0) {
                asio::steady_timer delay(co_await asio::this_coro::executor, opts.latency);
                if (const auto [timer_ec] = co_await delay.async_wait(use_tuple); timer_ec) {
                    co_return false;
                }
            }
            if (how == detail::delivery::stall) {
                // Never answered: held until the idle timeout, or cancelled by stop().
                if (!co_await stopped()) {
                    asio::steady_timer hold(co_await asio::this_coro::executor, opts.idle_timeout);
                    [[maybe_unused]] const auto [hold_ec] = co_await hold.async_wait(use_tuple);
                }
                co_return false;
            }
            if (how == detail::delivery::drop) {
                co_return false;  // closed unanswered, without close_notify
            }
            if (interim) {
                // An interim answer a client must read past (RFC 9110 section 15.2).
                static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
                beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
                if (const auto [ec, n] = co_await asio::async_write(
                        stream, asio::buffer(continue_line.data(), continue_line.size()), use_tuple);
                    ec) {
                    co_return false;
                }
            }
            if (how == detail::delivery::endless) {
                co_await endless(stream, res);
                co_return false;
            }
            if (how == detail::delivery::reset_mid_body) {
                co_await reset_mid_body(stream, res);
                co_return false;
            }
            if (how == detail::delivery::drip) {
                if (!co_await drip(stream, res, pace)) {
                    co_return false;
                }
            } else {
                beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
                const auto [write_ec, write_n] = co_await http::async_write(stream, res, use_tuple);
                if (write_ec) {
                    co_return false;
                }
            }
            if (close_after) {
                co_return false;  // the TCP socket is closed with no TLS close_notify
            }
            if (!res.keep_alive()) {
                co_return true;
            }
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        co_await asio::this_coro::throw_if_cancelled(false);
        if (stopping) {
            co_return;  // accepted just before stop(): its cancellation came before it started
        }
        // Like a real gateway: no Nagle delay, or each small response waits for the client's delayed ACK.
        boost::system::error_code nodelay_ignored;
        socket.set_option(tcp::no_delay(true), nodelay_ignored);
        beast::tcp_stream tcp_stream(std::move(socket));
        if (!tls) {
            if (co_await serve(tcp_stream)) {
                boost::system::error_code ignored;
                tcp_stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
            }
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), *tls);
        beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
        if (const auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple); ec) {
            co_return;  // e.g. a client that does not trust this certificate: its test's business
        }
        if (co_await serve(stream)) {
            // eof and stream_truncated are the usual answers of a client that just closes.
            beast::get_lowest_layer(stream).expires_after(shutdown_timeout);
            [[maybe_unused]] const auto [ec] = co_await stream.async_shutdown(use_tuple);
        }
    }

    asio::awaitable<void> listen() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            if (ec) {
                std::cerr << "subsync-emulator: accept: " << ec.message() << std::endl;
                asio::steady_timer pause(ioc, std::chrono::milliseconds(50));  // e.g. out of descriptors
                co_await pause.async_wait(use_tuple);
                continue;
            }
            ++connections;
            auto& signal = sessions.emplace_back();
            const auto entry = std::prev(sessions.end());
            asio::co_spawn(ioc, session(std::move(socket)),
                           asio::bind_cancellation_slot(signal.slot(), [this, entry](const std::exception_ptr& e) {
                               log_exception("connection", e);
                               // Not erased in place: the signal's slot is still in use here.
                               asio::post(ioc, [this, entry] { sessions.erase(entry); });
                           }));
        }
    }
};

server::server(options opts, dataset data)
    : service_(std::make_unique<detail::service>(opts, std::move(data))),
      impl_(std::make_unique<impl>(std::move(opts), *service_)) {}

server::~server() {
    try {
        stop();
    } catch (const std::exception& e) {
        std::cerr << "subsync-emulator: stop: " << e.what() << std::endl;
    }
}

void server::start() {
    impl& s = *impl_;
    if (s.running) {
        throw std::logic_error("emulator: start() while running");
    }
    const tcp::endpoint endpoint{asio::ip::make_address_v4("127.0.0.1"), s.opts.port};
    boost::system::error_code ec;
    if (s.acceptor.open(endpoint.protocol(), ec); !ec) {
        s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        s.acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        boost::system::error_code ignored;
        s.acceptor.close(ignored);
        throw std::system_error(ec, "emulator: cannot listen on 127.0.0.1:" + std::to_string(s.opts.port));
    }
    s.port = s.acceptor.local_endpoint().port();
    s.stopping = false;
    s.ioc.restart();
    asio::co_spawn(s.ioc, s.listen(), [](const std::exception_ptr& e) { log_exception("listener", e); });

    std::promise<void> finished;
    s.finished = finished.get_future();
    s.thread = std::thread([&s, done = std::move(finished)]() mutable {
        try {
            s.ioc.run();
        } catch (const std::exception& e) {
            std::cerr << "subsync-emulator: io thread: " << e.what() << std::endl;
        }
        done.set_value();
    });
    s.running = true;
}

void server::stop() {
    impl& s = *impl_;
    if (!s.running) {
        return;
    }
    asio::post(s.ioc, [&s] {
        s.stopping = true;
        boost::system::error_code ignored;
        s.acceptor.close(ignored);
        for (auto& signal : s.sessions) {
            signal.emit(asio::cancellation_type::terminal);
        }
    });
    if (s.finished.wait_for(stop_timeout) == std::future_status::timeout) {
        std::cerr << "subsync-emulator: connections did not end within 5 s of stop; forcing" << std::endl;
        s.ioc.stop();
    }
    s.thread.join();
    s.running = false;
}

std::uint16_t server::port() const { return impl_->port; }

std::string server::base_url() const {
    return std::string(impl_->opts.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(impl_->port);
}

std::string server::cert_pem() const { return impl_->pem.cert; }

stats server::get_stats() const {
    const impl& s = *impl_;
    const auto c = service_->counters();
    stats out;
    out.requests = s.requests.load();
    out.purchases_requests = c.purchases_requests;
    out.orders_requests = c.orders_requests;
    out.connections = s.connections.load();
    out.max_in_flight = s.max_in_flight.load();
    out.token_requests = c.token_requests;
    out.signature_failures = c.signature_failures;
    out.rate_limited = c.rate_limited;
    out.throttled = c.throttled;
    out.project_requests = c.project_requests;
    return out;
}

void server::reset_stats() {
    impl& s = *impl_;
    s.requests = 0;
    s.connections = 0;
    s.max_in_flight = 0;
    service_->reset_counters();
}

}  // namespace subsync::emulator
