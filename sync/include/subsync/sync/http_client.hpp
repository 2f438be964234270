#pragma once

#include <subsync/config/config.hpp>
#include <subsync/sync/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

/// A request header. Values may be credentials: never log them.
struct header {
    std::string name;
    std::string value;
};

/// What a 2xx answer's body is expected to be: for a listing, only the members its parser reads
/// are kept as the bytes arrive (the others, however large, are dropped unread).
enum class body_shape { any, purchases_page, orders_document };

/// A request to one endpoint; `target` is the path and query as sent.
struct http_request {
    std::string target;
    std::vector<header> headers;
    std::string method = "GET";
    std::string body;  ///< sent with Content-Length when the method is not GET
    body_shape shape = body_shape::any;  ///< what the answer's body holds
    /// A 2xx body of at most this many bytes is kept as it came, unfiltered, for the caller to
    /// recognise by its digest and to filter only when it must (filter_body()); a longer one is
    /// filtered from the byte that passes the limit on. 0: filtered as its bytes arrive.
    std::size_t unfiltered_up_to = 0;

    /// Whether a header of that name (case-insensitive) is set.
    [[nodiscard]] bool has_header(std::string_view name) const;
};

/// Memory that response bodies hold, counted against one budget shared by every connection of
/// the process: the bytes kept plus an allowance per JSON token for what parsing them costs.
/// Returned to the budget when the lease is destroyed (the response with it).
class body_lease {
public:
    body_lease() = default;
    ~body_lease();
    body_lease(body_lease&& other) noexcept;
    body_lease& operator=(body_lease&& other) noexcept;

    /// Takes `n` more bytes of the budget; false (nothing taken) when the budget has not that much left.
    [[nodiscard]] bool grow(std::size_t n) noexcept;
    /// Gives back everything this lease holds.
    void release() noexcept;
    /// Takes or gives back what it takes to hold `n` bytes; false (nothing changed) when the
    /// budget has not that much left.
    [[nodiscard]] bool resize(std::size_t n) noexcept;
    /// Bytes this lease holds.
    [[nodiscard]] std::size_t held() const noexcept { return held_; }

private:
    std::size_t held_ = 0;
};

/// Sets the process-wide budget of body memory (sync.body_budget_mib; 32 MiB by default).
void set_body_budget(std::size_t bytes) noexcept;
/// The budget, and how much of it leases hold now.
[[nodiscard]] std::size_t body_budget() noexcept;
[[nodiscard]] std::size_t body_budget_in_use() noexcept;

/// Allowance per kept JSON token for the parser's tape and index and for the records made of it.
inline constexpr std::size_t body_token_cost = 64;
/// An error answer (non-2xx) keeps this much of its body; the rest is read and dropped.
inline constexpr std::size_t error_body_kept = 64 * 1024;

struct http_response {
    unsigned status = 0;
    std::string body;
    std::string request_id;   ///< X-Request-Id, when present
    std::string retry_after;  ///< Retry-After, when present
    std::vector<header> headers;  ///< every response header, in order received
    body_lease lease;             ///< the body's share of the body budget
    bool unfiltered = false;      ///< a 2xx body as it came (http_request::unfiltered_up_to)

    /// The first header of that name (case-insensitive), or empty.
    [[nodiscard]] std::string_view header_value(std::string_view name) const;
};

/// Reads one complete HTTP/1.1 response from `bytes` as http_connection::send() reads one from
/// the network: interim 1xx answers skipped, the same header and body limits, the body filtered
/// for `shape` (2xx; kept as it came up to `unfiltered_up_to` bytes, as http_request says) or
/// capped (other statuses) and charged to the body budget. For the fuzzer and tests; an
/// incomplete response is an error.
[[nodiscard]] result<http_response> read_response(std::string_view bytes, body_shape shape,
                                                  std::size_t body_limit = 64u << 20,
                                                  std::size_t unfiltered_up_to = 0);

/// An idle buffer with its share of the body budget while it waits: what filter_body() writes
/// into, and the body a connection keeps for its next answer (http_connection::reuse()).
struct body_scratch {
    std::string bytes;
    body_lease lease;
};

/// Filters an unfiltered body (http_response::unfiltered) for `shape`, as if its bytes had
/// gone through the filter as they arrived, and charges the result to its lease; nothing to do
/// for any other. The filter writes into `scratch`, which then holds the body as it came (or
/// nothing, when the budget has no room for an idle buffer): a caller that filters one body
/// after another passes the same scratch, so no page allocates. `from` names the server in the
/// error an over-budget body gets.
[[nodiscard]] result<void> filter_body(http_response& res, body_shape shape, body_scratch& scratch,
                                       std::string_view from);

/// The Host header for an endpoint: `host`, `host:port` when the URL named a
/// port, with brackets around an IPv6 literal. Also what AK/SK signing signs.
[[nodiscard]] std::string host_header(const config::endpoint& ep);

/// Where to tunnel through (HTTP CONNECT), when a proxy applies to a host.
struct proxy_settings {
    std::string url;       ///< http://host:port; empty = no proxy
    std::string no_proxy;  ///< comma-separated hosts/domains ("*" = all) that go direct

    /// From the config when set there, else $HTTPS_PROXY/$https_proxy and $NO_PROXY/$no_proxy.
    static proxy_settings resolve(const std::string& config_proxy, const std::string& config_no_proxy);

    /// The proxy endpoint to use for `host`, or nullopt to connect directly.
    [[nodiscard]] std::optional<config::endpoint> for_host(std::string_view host) const;
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
                    std::chrono::milliseconds timeout, std::size_t body_limit = 64u << 20,
                    std::optional<config::endpoint> proxy = std::nullopt);
    ~http_connection();
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    /// Sends the request and reads the whole response within `timeout`, and
    /// never past `cap` (resolve, proxy tunnel, connect, handshake, write and
    /// read all share that deadline). Any status is a success here; transport
    /// failures are errors.
    boost::asio::awaitable<result<http_response>> send(
        const http_request& req,
        std::chrono::steady_clock::time_point cap = std::chrono::steady_clock::time_point::max());

    /// Opens the connection (TCP, proxy tunnel, TLS handshake) ahead of the first
    /// request, within `timeout`. A failure is not reported: send() opens it again and
    /// reports what fails then.
    boost::asio::awaitable<void> warm_up();

    /// Connections opened so far (keep-alive reuse keeps this low).
    [[nodiscard]] std::size_t connects() const noexcept;

    /// Gives a body the caller is done with back, for the next 2xx body to be kept in: its pages
    /// are already mapped, where a new string of a page's size faulted each one in afresh
    /// (4 % of an unchanged 100k re-sync). Only one of up to 1 MiB is kept, and only while the
    /// body budget has room for its capacity: an idle buffer holds its share of the budget like
    /// an answer in flight, and hands it on to the next body kept in it.
    void reuse(std::string&& body) noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::sync
