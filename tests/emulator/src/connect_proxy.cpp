// The CONNECT proxy: one io_context on one thread, a coroutine per connection. Every connection
// has one deadline, the idle timeout, watched across both directions of the tunnel (a per-read
// deadline would cut a tunnel whose client waits quietly for a slow answer). Both the deadline and
// stop() end a connection by closing its sockets (see `connection`).

#include "subsync/emulator/connect_proxy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <future>
#include <iostream>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace subsync::emulator {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t head_limit = 8 * 1024;  // a CONNECT request is one line and a few headers
constexpr std::chrono::seconds stop_timeout{5};
using clock = std::chrono::steady_clock;

void log_exception(std::string_view where, const std::exception_ptr& e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::cerr << "subsync-emulator: connect proxy: " << where << ": " << ex.what() << std::endl;
    } catch (...) {
        std::cerr << "subsync-emulator: connect proxy: " << where << ": unknown exception" << std::endl;
    }
}

std::string error_response(std::string_view status, std::string_view extra_header = {}) {
    std::string out = "HTTP/1.1 " + std::string(status) + "\r\n";
    if (!extra_header.empty()) {
        out += std::string(extra_header) + "\r\n";
    }
    return out + "Content-Length: 0\r\nConnection: close\r\n\r\n";
}

struct connect_request {
    std::string method, target;
};

// "METHOD SP target SP HTTP/1.x" from the head's first line; nullopt when it is not one.
std::optional<connect_request> parse_request_line(std::string_view head) {
    const std::string_view line = head.substr(0, head.find("\r\n"));
    const auto first = line.find(' ');
    const auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos || first == 0 || second == first + 1 ||
        !line.substr(second + 1).starts_with("HTTP/1.")) {
        return std::nullopt;
    }
    return connect_request{std::string(line.substr(0, first)), std::string(line.substr(first + 1, second - first - 1))};
}

struct host_port {
    std::string host, port;
};

// "host:port" or "[v6]:port" (RFC 9110 authority-form).
std::optional<host_port> split_authority(std::string_view target) {
    const auto colon = target.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == target.size()) {
        return std::nullopt;
    }
    std::string_view host = target.substr(0, colon);
    if (host.starts_with('[') && host.ends_with(']')) {
        host = host.substr(1, host.size() - 2);
    }
    return host_port{std::string(host), std::string(target.substr(colon + 1))};
}

// One client connection and, once connected, its upstream. Ended by close(): every pending
// operation on the sockets then fails, and any started later fails at once. (Per-operation
// cancellation is not enough here: a cancellation emitted before the tunnel's two pipe coroutines
// have started would be lost, and a tunnel would outlive stop().)
struct connection {
    tcp::socket client;
    tcp::socket upstream;
    asio::steady_timer idle;
    clock::time_point last_activity = clock::now();
    bool closed = false;

    explicit connection(tcp::socket socket)
        : client(std::move(socket)), upstream(client.get_executor()), idle(client.get_executor()) {}

    void close() {
        closed = true;
        boost::system::error_code ignored;
        client.close(ignored);
        upstream.close(ignored);
        idle.cancel();
    }
};

}  // namespace

struct connect_proxy::impl {
    connect_proxy_options opts;

    mutable std::mutex mutex;  // guards `targets`
    std::vector<std::string> targets;
    std::atomic<std::uint64_t> tunnels{0};

    // Touched on the io thread only.
    bool stopping = false;
    std::list<std::shared_ptr<connection>> connections;  // closed on stop

    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    std::uint16_t port = 0;
    std::thread thread;
    std::future<void> finished;

    explicit impl(connect_proxy_options o) : opts(std::move(o)) {}

    // Copies `from` to `to` until `from` ends, then half-closes `to` so the other side sees EOF.
    static asio::awaitable<void> pipe(tcp::socket& from, tcp::socket& to, clock::time_point& last_activity) {
        std::array<char, 16384> buffer{};
        for (;;) {
            const auto [read_ec, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
            if (read_ec) {
                break;
            }
            last_activity = clock::now();
            const auto [write_ec, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n), use_tuple);
            if (write_ec) {
                break;
            }
            last_activity = clock::now();
        }
        boost::system::error_code ignored;
        to.shutdown(tcp::socket::shutdown_send, ignored);
    }

    // Closes `c` once it has been idle in both directions for opts.idle_timeout; ends when it closes.
    asio::awaitable<void> watchdog(std::shared_ptr<connection> c) const {
        while (!c->closed) {
            const auto deadline = c->last_activity + opts.idle_timeout;
            if (clock::now() >= deadline) {
                c->close();
                co_return;
            }
            c->idle.expires_at(deadline);
            [[maybe_unused]] const auto [ec] = co_await c->idle.async_wait(use_tuple);  // close() cancels it
        }
    }

    static asio::awaitable<void> refuse(tcp::socket& client, std::string response) {
        [[maybe_unused]] const auto [ec, n] = co_await asio::async_write(client, asio::buffer(response), use_tuple);
    }

    asio::awaitable<void> tunnel(connection& c) {
        asio::streambuf head(head_limit);
        const auto [read_ec, head_size] = co_await asio::async_read_until(c.client, head, "\r\n\r\n", use_tuple);
        if (read_ec == asio::error::not_found) {
            co_await refuse(c.client, error_response("431 Request Header Fields Too Large"));
            co_return;
        }
        if (read_ec) {
            co_return;
        }
        c.last_activity = clock::now();
        const std::string text(asio::buffers_begin(head.data()),
                               asio::buffers_begin(head.data()) + static_cast<std::ptrdiff_t>(head_size));
        head.consume(head_size);  // what is left is the client's first tunnelled bytes, if it did not wait

        const auto request = parse_request_line(text);
        if (!request) {
            co_await refuse(c.client, error_response("400 Bad Request"));
            co_return;
        }
        if (request->method != "CONNECT") {
            co_await refuse(c.client, error_response("405 Method Not Allowed", "Allow: CONNECT"));
            co_return;
        }
        {
            const std::lock_guard lock(mutex);
            targets.push_back(request->target);
        }
        const auto authority = split_authority(request->target);
        if (!authority) {
            co_await refuse(c.client, error_response("400 Bad Request"));
            co_return;
        }

        tcp::resolver resolver(c.client.get_executor());
        const auto [resolve_ec, results] = co_await resolver.async_resolve(authority->host, authority->port, use_tuple);
        if (c.closed) {
            co_return;  // stop() or the idle deadline came during the lookup; connecting would reopen a socket
        }
        if (resolve_ec) {
            co_await refuse(c.client, error_response("502 Bad Gateway"));
            co_return;
        }
        std::vector<tcp::endpoint> loopback;
        for (const auto& entry : results) {
            if (entry.endpoint().address().is_loopback()) {
                loopback.push_back(entry.endpoint());
            }
        }
        if (loopback.empty()) {
            co_await refuse(c.client, error_response("403 Forbidden"));
            co_return;
        }
        if (const auto [connect_ec, endpoint] = co_await asio::async_connect(c.upstream, loopback, use_tuple);
            connect_ec || c.closed) {
            co_await refuse(c.client, error_response("502 Bad Gateway"));
            co_return;
        }

        // Counted before the client can read the 200, so a client that has it sees the count.
        ++tunnels;
        if (opts.on_tunnel) {
            opts.on_tunnel(request->target);
        }
        const std::string established = "HTTP/1.1 200 Connection established\r\n\r\n";
        if (const auto [ec, n] = co_await asio::async_write(c.client, asio::buffer(established), use_tuple); ec) {
            co_return;
        }
        if (head.size() > 0) {
            if (const auto [ec, n] = co_await asio::async_write(c.upstream, head.data(), use_tuple); ec) {
                co_return;
            }
        }
        using namespace asio::experimental::awaitable_operators;
        co_await (pipe(c.client, c.upstream, c.last_activity) && pipe(c.upstream, c.client, c.last_activity));
    }

    asio::awaitable<void> session(tcp::socket socket) {
        if (stopping) {
            co_return;  // accepted just before stop()
        }
        // Registered for stop() while it lives; closed and forgotten however the tunnel ends.
        struct registration {
            std::list<std::shared_ptr<connection>>& list;
            std::list<std::shared_ptr<connection>>::iterator entry;
            registration(std::list<std::shared_ptr<connection>>& l, std::shared_ptr<connection> c)
                : list(l), entry(l.insert(l.end(), std::move(c))) {}
            ~registration() {
                (*entry)->close();
                list.erase(entry);
            }
            registration(const registration&) = delete;
            registration& operator=(const registration&) = delete;
        };
        const auto c = std::make_shared<connection>(std::move(socket));
        const registration registered(connections, c);
        asio::co_spawn(ioc, watchdog(c), [](const std::exception_ptr& e) { log_exception("idle watchdog", e); });
        co_await tunnel(*c);
    }

    asio::awaitable<void> listen() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            if (ec) {
                std::cerr << "subsync-emulator: connect proxy: accept: " << ec.message() << std::endl;
                asio::steady_timer pause(ioc, std::chrono::milliseconds(50));  // e.g. out of descriptors
                co_await pause.async_wait(use_tuple);
                continue;
            }
            asio::co_spawn(ioc, session(std::move(socket)),
                           [](const std::exception_ptr& e) { log_exception("connection", e); });
        }
    }
};

connect_proxy::connect_proxy(connect_proxy_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {
    impl& p = *impl_;
    const tcp::endpoint endpoint{asio::ip::make_address_v4("127.0.0.1"), p.opts.port};
    boost::system::error_code ec;
    if (p.acceptor.open(endpoint.protocol(), ec); !ec) {
        p.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        p.acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        p.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw std::system_error(ec, "emulator connect proxy: cannot listen on 127.0.0.1:" + std::to_string(p.opts.port));
    }
    p.port = p.acceptor.local_endpoint().port();
    asio::co_spawn(p.ioc, p.listen(), [](const std::exception_ptr& e) { log_exception("listener", e); });

    std::promise<void> finished;
    p.finished = finished.get_future();
    p.thread = std::thread([&p, done = std::move(finished)]() mutable {
        try {
            p.ioc.run();
        } catch (const std::exception& e) {
            std::cerr << "subsync-emulator: connect proxy: io thread: " << e.what() << std::endl;
        }
        done.set_value();
    });
}

connect_proxy::~connect_proxy() {
    impl& p = *impl_;
    asio::post(p.ioc, [&p] {
        p.stopping = true;
        boost::system::error_code ignored;
        p.acceptor.close(ignored);
        for (const auto& c : p.connections) {
            c->close();
        }
    });
    if (p.finished.wait_for(stop_timeout) == std::future_status::timeout) {
        std::cerr << "subsync-emulator: connect proxy: tunnels did not end within 5 s of stop; forcing" << std::endl;
        p.ioc.stop();
    }
    p.thread.join();
}

std::uint16_t connect_proxy::port() const { return impl_->port; }

std::string connect_proxy::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }

std::vector<std::string> connect_proxy::targets() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->targets;
}

std::uint64_t connect_proxy::tunnels() const { return impl_->tunnels.load(); }

}  // namespace subsync::emulator
