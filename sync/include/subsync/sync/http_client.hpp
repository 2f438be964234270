#pragma once

#include <subsync/config/config.hpp>
#include <subsync/sync/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace subsync::sync {

/// A request header. Values may be credentials: never log them.
struct header {
    std::string name;
    std::string value;
};

/// A GET request to one endpoint; `target` is the path and query as sent.
struct http_request {
    std::string target;
    std::vector<header> headers;
};

struct http_response {
    unsigned status = 0;
    std::string body;
    std::string request_id;   ///< X-Request-Id, when present
    std::string retry_after;  ///< Retry-After, when present
};

/// The TLS settings shared by every connection: peer verification against
/// the system store or `tls.ca_file`.
class tls_context;

/// Builds the client TLS context; throws std::runtime_error naming the CA file
/// when it cannot be loaded.
[[nodiscard]] std::shared_ptr<tls_context> make_tls_context(const config::tls_config& cfg);

/// One keep-alive HTTP/1.1 connection to one endpoint, opened on first use and
/// reopened when the server closed it. Not shared between coroutines: each
/// worker owns one, which bounds connections per source by the concurrency.
class http_connection {
public:
    http_connection(boost::asio::any_io_executor ex, config::endpoint ep, std::shared_ptr<tls_context> tls,
                    std::chrono::milliseconds timeout, std::size_t body_limit = 64u << 20);
    ~http_connection();
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    /// Sends a GET and reads the whole response within `timeout` (resolve,
    /// connect, handshake, write and read all share that deadline). Any status
    /// is a success here; transport failures are errors.
    boost::asio::awaitable<result<http_response>> get(const http_request& req);

    /// Connections opened so far (keep-alive reuse keeps this low).
    [[nodiscard]] std::size_t connects() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::sync
