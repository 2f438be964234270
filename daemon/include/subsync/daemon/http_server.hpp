#pragma once
// A tiny HTTP/1.1 server for /metrics and /healthz on the daemon's event loop. Beast stays in
// http_server.cpp; this header exposes plain types only.

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace subsync::daemon {

struct http_response {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

/// Answers a GET (or HEAD) of `path` (the target without its query string).
using http_handler = std::function<http_response(std::string_view path)>;

class http_server {
public:
    /// Binds `host:port` (an IP literal; port 0 = any free port) and starts accepting on `ex`.
    /// Throws std::system_error naming the address when it cannot bind.
    http_server(boost::asio::any_io_executor ex, const std::string& host, std::uint16_t port, http_handler handler);
    ~http_server();  ///< stop()s
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    /// The bound address, "127.0.0.1:9469" or "[::1]:9469".
    [[nodiscard]] std::string address() const;
    [[nodiscard]] std::uint16_t port() const;

    /// Closes the listener and every open connection; idempotent.
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace subsync::daemon
