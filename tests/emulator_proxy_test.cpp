// The emulator's CONNECT proxy mode over real loopback: a TLS exchange with the emulator through
// the tunnel, what it refuses, its idle deadline and its stop. Every client step has a deadline
// (beast::tcp_stream), so a broken proxy fails a test instead of hanging it.

#include "subsync/emulator/connect_proxy.hpp"
#include "subsync/emulator/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace {

namespace emu = subsync::emulator;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ::testing::ElementsAre;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr auto deadline = 10s;

// Runs `task` on `ioc` to its end; rethrows what it threw.
template <class T>
T run(asio::io_context& ioc, asio::awaitable<T> task) {
    auto result = asio::co_spawn(ioc, std::move(task), asio::use_future);
    ioc.restart();
    ioc.run();
    return result.get();
}

std::string authority(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Connects to the proxy, sends `head` and returns the proxy's answer head; `stream` stays open.
asio::awaitable<std::string> ask(beast::tcp_stream& stream, std::uint16_t proxy_port, std::string head) {
    stream.expires_after(deadline);
    co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), proxy_port), asio::use_awaitable);
    co_await asio::async_write(stream, asio::buffer(head), asio::use_awaitable);
    asio::streambuf answer;
    const std::size_t n = co_await asio::async_read_until(stream, answer, "\r\n\r\n", asio::use_awaitable);
    co_return std::string(asio::buffers_begin(answer.data()),
                          asio::buffers_begin(answer.data()) + static_cast<std::ptrdiff_t>(n));
}

std::string connect_head(const std::string& target) {
    return "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n";
}

struct tunnelled_get {
    std::string proxy_answer;
    unsigned status = 0;
    std::string body;
};

// CONNECT through the proxy to the (TLS) emulator, then a verified TLS handshake and one GET
// inside the tunnel.
asio::awaitable<tunnelled_get> get_through(std::uint16_t proxy_port, const emu::server& emulator, std::string target) {
    tunnelled_get out;
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    out.proxy_answer = co_await ask(stream, proxy_port, connect_head(authority(emulator.port())));
    if (!out.proxy_answer.starts_with("HTTP/1.1 200 ")) {
        co_return out;
    }
    asio::ssl::context tls_context(asio::ssl::context::tls_client);
    const std::string pem = emulator.cert_pem();
    tls_context.add_certificate_authority(asio::buffer(pem));
    tls_context.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), tls_context);
    tls.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(tls).expires_after(deadline);
    co_await tls.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, authority(emulator.port()));
    req.set("X-Auth-Token", "emulator-token");
    co_await http::async_write(tls, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    co_await http::async_read(tls, buffer, res, asio::use_awaitable);
    out.status = res.result_int();
    out.body = std::move(res.body());
    co_return out;
}

// Waits for the peer to end the connection; returns how it ended (beast::error::timeout: it did not).
asio::awaitable<boost::system::error_code> wait_for_close(beast::tcp_stream& stream) {
    stream.expires_after(deadline);
    std::array<char, 256> buffer{};
    for (;;) {
        const auto [ec, n] = co_await stream.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
        if (ec) {
            co_return ec;
        }
    }
}

TEST(EmulatorProxy, TunnelsTlsToTheEmulatorAndCountsIt) {
    emu::server emulator(emu::options{}, emu::dataset::seeds());
    emulator.start();
    std::promise<std::string> seen;
    emu::connect_proxy_options opts;
    opts.on_tunnel = [&seen](std::string_view target) { seen.set_value(std::string(target)); };
    emu::connect_proxy proxy(std::move(opts));
    EXPECT_EQ(proxy.url(), "http://127.0.0.1:" + std::to_string(proxy.port()));

    asio::io_context ioc;
    const auto got = run(ioc, get_through(proxy.port(), emulator, "/v1.0/apigw/purchases/groups"));
    EXPECT_THAT(got.proxy_answer, StartsWith("HTTP/1.1 200 Connection established\r\n"));
    EXPECT_EQ(got.status, 200U);
    EXPECT_THAT(got.body, StartsWith(R"({"total":3,)"));
    EXPECT_THAT(proxy.targets(), ElementsAre(authority(emulator.port())));
    EXPECT_EQ(proxy.tunnels(), 1U);
    auto target = seen.get_future();
    ASSERT_EQ(target.wait_for(0s), std::future_status::ready) << "on_tunnel runs before the 200";
    EXPECT_EQ(target.get(), authority(emulator.port()));
    EXPECT_EQ(emulator.get_stats().purchases_requests, 1U);
}

TEST(EmulatorProxy, RefusesWhatItDoesNotTunnel) {
    std::uint16_t closed_port = 0;
    {
        asio::io_context probe;
        tcp::acceptor bound(probe, {asio::ip::make_address("127.0.0.1"), 0});
        closed_port = bound.local_endpoint().port();
    }  // closed: connecting to it is refused
    const struct {
        const char* name;
        std::string head;
        std::string answer;
    } cases[] = {
        {"a plain GET", "GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"},
        {"not an HTTP request line", "CONNECT\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
        {"no port", connect_head("127.0.0.1"), "HTTP/1.1 400 Bad Request\r\n"},
        {"outside loopback", connect_head("192.0.2.1:443"), "HTTP/1.1 403 Forbidden\r\n"},
        {"nothing listening", connect_head(authority(closed_port)), "HTTP/1.1 502 Bad Gateway\r\n"},
    };
    emu::connect_proxy proxy;
    asio::io_context ioc;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        beast::tcp_stream stream(ioc);
        EXPECT_THAT(run(ioc, ask(stream, proxy.port(), c.head)), StartsWith(c.answer));
        EXPECT_EQ(run(ioc, wait_for_close(stream)), asio::error::eof) << "and it closes";
    }
    EXPECT_THAT(proxy.targets(), ElementsAre("127.0.0.1", "192.0.2.1:443", authority(closed_port)))
        << "every CONNECT is recorded, refused ones too";
    EXPECT_EQ(proxy.tunnels(), 0U);
}

TEST(EmulatorProxy, ClosesAnIdleTunnelAfterTheIdleTimeout) {
    emu::options plain;
    plain.tls = false;
    emu::server emulator(plain, emu::dataset::seeds());
    emulator.start();
    emu::connect_proxy_options opts;
    opts.idle_timeout = 200ms;
    emu::connect_proxy proxy(std::move(opts));

    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_THAT(run(ioc, ask(stream, proxy.port(), connect_head(authority(emulator.port())))),
                StartsWith("HTTP/1.1 200 "));
    EXPECT_EQ(run(ioc, wait_for_close(stream)), asio::error::eof);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms) << "not before the idle timeout";
    EXPECT_EQ(proxy.tunnels(), 1U);
}

TEST(EmulatorProxy, DestructionEndsOpenTunnelsPromptly) {
    emu::options plain;
    plain.tls = false;
    emu::server emulator(plain, emu::dataset::seeds());
    emulator.start();
    auto proxy = std::make_unique<emu::connect_proxy>();

    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    EXPECT_THAT(run(ioc, ask(stream, proxy->port(), connect_head(authority(emulator.port())))),
                StartsWith("HTTP/1.1 200 "));
    const auto before = std::chrono::steady_clock::now();
    proxy.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 4s) << "stopped by cancellation, not the 5 s fallback";
    EXPECT_NE(run(ioc, wait_for_close(stream)), beast::error::timeout) << "the client's end is closed too";
}

}  // namespace
