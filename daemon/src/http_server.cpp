#include <subsync/logging/log.hpp>
#include <subsync/daemon/http_server.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <map>
#include <system_error>

namespace subsync::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// A scraper or probe sends one small request; anything slower or larger is not one of those.
constexpr auto io_timeout = std::chrono::seconds(10);
constexpr std::size_t max_connections = 32;
constexpr std::uint32_t header_limit = 8 * 1024;

void log_failure(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        logging::warn("metrics endpoint failed", {{"error", x.what()}});
    }
}

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, http_handler h) : acceptor(ex), handler(std::move(h)) {}

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (stopped) co_return;
            if (ec) {
                // EMFILE and friends: wait a little instead of spinning on the listener.
                logging::warn("metrics endpoint accept failed", {{"error", ec.message()}});
                asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
                co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
                continue;
            }
            if (connections.size() >= max_connections) continue;  // the socket closes as it goes out of scope
            auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
            const std::uint64_t id = next_id++;
            connections.emplace(id, stream);
            asio::co_spawn(acceptor.get_executor(), serve(stream, id), log_failure);
        }
    }

    asio::awaitable<void> serve(std::shared_ptr<beast::tcp_stream> stream, std::uint64_t id) {
        auto self = shared_from_this();
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(header_limit);
            parser.body_limit(1024);
            stream->expires_after(io_timeout);
            auto [rec, rn] = co_await http::async_read(*stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            if (rec) break;
            const auto& req = parser.get();
            http::response<http::string_body> res;
            res.version(req.version());
            res.set(http::field::server, "subsyncd");
            res.set(http::field::cache_control, "no-store");
            res.keep_alive(req.keep_alive());
            if (req.method() != http::verb::get && req.method() != http::verb::head) {
                res.result(http::status::method_not_allowed);
                res.set(http::field::allow, "GET, HEAD");
                res.set(http::field::content_type, "text/plain; charset=utf-8");
                res.body() = "only GET and HEAD are supported\n";
            } else {
                const std::string_view target = req.target();
                const auto answer = handler(target.substr(0, target.find('?')));
                res.result(answer.status);
                res.set(http::field::content_type, answer.content_type);
                res.body() = answer.body;
            }
            res.prepare_payload();
            if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays the GET's
            stream->expires_after(io_timeout);
            auto [wec, wn] = co_await http::async_write(*stream, res, asio::as_tuple(asio::use_awaitable));
            if (wec || !res.keep_alive()) break;
        }
        beast::error_code ignored;
        stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
        connections.erase(id);
    }

    void stop() {
        if (stopped) return;
        stopped = true;
        beast::error_code ignored;
        acceptor.close(ignored);
        for (auto& [id, weak] : connections)
            if (auto s = weak.lock()) s->socket().close(ignored);
    }

    tcp::acceptor acceptor;
    http_handler handler;
    std::map<std::uint64_t, std::weak_ptr<beast::tcp_stream>> connections;
    std::uint64_t next_id = 0;
    bool stopped = false;
};

http_server::http_server(asio::any_io_executor ex, const std::string& host, std::uint16_t port, http_handler handler)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(handler))) {
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) throw std::system_error(ec, fmt::format("metrics.listen: \"{}\" is not an IP address", host));
    const tcp::endpoint ep(address, port);
    auto& a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::system_error(
            ec, fmt::format("metrics.listen: cannot listen on {}",
                            address.is_v6() ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port)));
    asio::co_spawn(a.get_executor(), impl_->accept_loop(), log_failure);
}

http_server::~http_server() { stop(); }

std::string http_server::address() const {
    beast::error_code ec;
    const auto ep = impl_->acceptor.local_endpoint(ec);
    if (ec) return "closed";
    return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::uint16_t http_server::port() const {
    beast::error_code ec;
    const auto ep = impl_->acceptor.local_endpoint(ec);
    return ec ? std::uint16_t{0} : ep.port();
}

void http_server::stop() { impl_->stop(); }

}  // namespace subsync::daemon
