#include "connect_proxy.hpp"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <mutex>
#include <thread>

namespace subsync::test {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

struct connect_proxy::impl {
    asio::io_context io;
    tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    mutable std::mutex mutex;
    std::vector<std::string> targets;
    std::thread thread;

    static asio::awaitable<void> pipe(tcp::socket& from, tcp::socket& to) {
        std::array<char, 16384> buf{};
        for (;;) {
            auto [rec, n] = co_await from.async_read_some(asio::buffer(buf), tuple_awaitable);
            if (rec) break;
            auto [wec, w] = co_await asio::async_write(to, asio::buffer(buf.data(), n), tuple_awaitable);
            if (wec) break;
        }
        boost::system::error_code ignored;
        to.shutdown(tcp::socket::shutdown_send, ignored);
    }

    asio::awaitable<void> serve(tcp::socket client) {
        asio::streambuf head;
        auto [rec, n] = co_await asio::async_read_until(client, head, "\r\n\r\n", tuple_awaitable);
        if (rec) co_return;
        std::string request(asio::buffers_begin(head.data()), asio::buffers_begin(head.data()) + static_cast<std::ptrdiff_t>(n));
        head.consume(n);
        if (!request.starts_with("CONNECT ")) {
            co_await asio::async_write(client, asio::buffer(std::string("HTTP/1.1 405 Method Not Allowed\r\n\r\n")),
                                       tuple_awaitable);
            co_return;
        }
        const std::string target = request.substr(8, request.find(' ', 8) - 8);
        {
            std::lock_guard lock(mutex);
            targets.push_back(target);
        }
        const auto colon = target.rfind(':');
        tcp::resolver resolver(io);
        auto [res_ec, endpoints] =
            co_await resolver.async_resolve(target.substr(0, colon), target.substr(colon + 1), tuple_awaitable);
        tcp::socket upstream(io);
        if (!res_ec) {
            auto [cec, ep] = co_await asio::async_connect(upstream, endpoints, tuple_awaitable);
            res_ec = cec;
        }
        if (res_ec) {
            co_await asio::async_write(client, asio::buffer(std::string("HTTP/1.1 502 Bad Gateway\r\n\r\n")),
                                       tuple_awaitable);
            co_return;
        }
        co_await asio::async_write(client, asio::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")),
                                   tuple_awaitable);
        using namespace asio::experimental::awaitable_operators;
        co_await (pipe(client, upstream) && pipe(upstream, client));
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(tuple_awaitable);
            if (ec) co_return;
            asio::co_spawn(io, serve(std::move(socket)), asio::detached);
        }
    }
};

connect_proxy::connect_proxy() : impl_(std::make_unique<impl>()) {
    asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
    impl_->thread = std::thread([this] { impl_->io.run(); });
}

connect_proxy::~connect_proxy() {
    impl_->io.stop();
    impl_->thread.join();
}

std::uint16_t connect_proxy::port() const { return impl_->acceptor.local_endpoint().port(); }

std::vector<std::string> connect_proxy::targets() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->targets;
}

}  // namespace subsync::test
