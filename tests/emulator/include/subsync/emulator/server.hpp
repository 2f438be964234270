#pragma once
// A fake Huawei Cloud for tests and local runs: serves the APIG "purchased API groups" listing
// (GET /v1.0/apigw/purchases/groups) and the SecMaster "purchased resources" listing
// (GET /v1/subscriptions/orders) over HTTPS or HTTP on 127.0.0.1, with switchable faults.
// Standalone on purpose: it links no subsync library, so a bug in the client cannot hide
// itself by being shared with the server. Asio/Beast stay out of this header (pimpl).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace subsync::emulator {

/// One purchased API group; `json` is the object exactly as served (compact JSON).
struct purchase {
    std::string id, group_id, group_name;
    std::string json;
};

/// The "now" that generated() spreads its times around: 2025-06-01T00:00:00Z.
inline constexpr std::chrono::sys_seconds generated_base_time{
    std::chrono::sys_days{std::chrono::year{2025} / std::chrono::June / 1}};

/// Everything the emulator serves.
struct dataset {
    std::vector<purchase> purchases;
    std::string orders_json;  ///< the whole 200 body of GET /v1/subscriptions/orders

    /// The example responses of seeds 001 and 003, field values byte-for-byte. Addition to the
    /// seeds: `orders_json` has a second entry with `"region_id": null` (project
    /// 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e) holding one POSTPAID resource without `expire_time` and
    /// without `order_id`, with an empty `tag_list`, so clients meet a null region and a missing
    /// expiry on the smallest dataset.
    static dataset seeds();

    /// A deterministic dataset of `purchases` purchases and `resources` resources (spread over up
    /// to five region/project entries, one with a null region). Same seed, same bytes. Values are
    /// awkward on purpose (CJK, emoji, quotes, commas, CR/LF, control characters, leading = + - @,
    /// null remarks, null or array domains, quotas of INT64_MAX and 2^53+1, resources without
    /// expire_time/order_id, mixed-case charging modes); every awkward kind appears within the
    /// first 20 purchases and 10 resources whatever the seed. Times spread from a year before to
    /// two years after generated_base_time. Every fifth purchase repeats an earlier group.
    static dataset generated(std::size_t purchases, std::size_t resources, std::uint64_t seed);

    /// Reads {"purchases":[...], "orders":{...}} (the format of to_json()); each purchase is kept
    /// byte-for-byte, only minified. Throws std::runtime_error naming the file and the problem.
    static dataset from_file(const std::filesystem::path& file);

    /// This dataset in the from_file() format, compact.
    std::string to_json() const;

    /// Number of region/project entries in orders_json (0 when it has no "resources" array).
    std::size_t resource_group_count() const;

    /// Number of resources over all region/project entries of orders_json.
    std::size_t resource_count() const;
};

/// How a server listens and behaves.
struct options {
    bool tls = true;
    /// PEM files; both empty: a fresh self-signed EC P-256 certificate (SAN IP:127.0.0.1,
    /// DNS:localhost, valid one day) is generated in memory.
    std::string cert_file, key_file;
    std::string token = "emulator-token";  ///< the only X-Auth-Token accepted
    std::chrono::milliseconds latency{0};   ///< added before every response (requests overlap)
    std::uint16_t port = 0;                 ///< 0 = ephemeral; read back with server::port()
    std::chrono::milliseconds idle_timeout{30'000};  ///< per connection, also bounds handshake and write
    std::size_t body_limit = 1024 * 1024;             ///< larger request bodies get 413
};

/// Counters since start or the last reset_stats().
struct stats {
    std::uint64_t requests = 0;            ///< complete requests read, any path
    std::uint64_t purchases_requests = 0;  ///< requests on the purchases path (any outcome)
    std::uint64_t orders_requests = 0;     ///< requests on the orders path (any outcome)
    std::uint64_t connections = 0;         ///< accepted TCP connections
    std::uint64_t max_in_flight = 0;       ///< most requests between read and response written at once
};

/// The fake cloud: one io_context on its own thread, bound to 127.0.0.1.
class server {
public:
    /// Loads or generates the certificate; throws std::runtime_error naming a bad file.
    server(options opts, dataset data);
    ~server();  ///< stops and joins
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Binds 127.0.0.1:port and returns once listening; throws std::system_error if it cannot.
    void start();
    /// Cancels every connection, closes the listener and joins the thread; idempotent.
    void stop();
    /// The bound port (after start()).
    std::uint16_t port() const;
    /// "https://127.0.0.1:PORT" or "http://127.0.0.1:PORT".
    std::string base_url() const;
    /// The server certificate in PEM (a client's CA file); empty in plain mode.
    std::string cert_pem() const;

    /// Replaces the data served from the next request on; thread-safe.
    void set_dataset(dataset data);
    /// A copy of the data being served; thread-safe.
    dataset current_dataset() const;

    /// Purchases page `page_no` answers `status` with a Huawei-style error body until cleared.
    void fail_page(int page_no, unsigned status);
    /// The orders listing answers `status` with a SecMaster-style error body until cleared.
    void fail_orders(unsigned status);
    /// Removes every fault set by fail_page() and fail_orders().
    void clear_faults();

    /// A thread-safe snapshot of the counters.
    stats get_stats() const;
    /// Sets every counter to zero.
    void reset_stats();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::emulator
