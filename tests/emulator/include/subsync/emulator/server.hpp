#pragma once
// A fake Huawei Cloud for tests and local runs: serves the APIG "purchased API groups" listing
// (GET /v1.0/apigw/purchases/groups), the SecMaster "purchased resources" listing
// (GET /v1/subscriptions/orders) and IAM token issuing (POST /v3/auth/tokens) over HTTPS or HTTP
// on 127.0.0.1, with X-Auth-Token and AK/SK (SDK-HMAC-SHA256) authentication, a rate limit and
// switchable faults. It shares no code with the client: AK/SK verification rebuilds the canonical
// request from the headers as received with its own canonicalisation (src/aksk.cpp), pinned by
// the official vectors in emulator_signing_test.
// Asio/Beast stay out of this header (pimpl).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace subsync::emulator {

namespace detail {
class service;
}

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
    /// two years after `base`. Every fifth purchase repeats an earlier group.
    static dataset generated(std::size_t purchases, std::size_t resources, std::uint64_t seed,
                             std::chrono::sys_seconds base = generated_base_time);

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

/// An IAM user that may get a token with the password method.
struct iam_user {
    std::string name, password;
    std::string domain;  ///< the account name ("domain" in IAM's JSON)
};

/// An AK/SK pair; with a security token it is a temporary key, whose requests must carry (and sign)
/// `X-Security-Token` with exactly that value, while permanent keys' requests must not carry one.
struct access_key {
    std::string ak, sk;
    std::optional<std::string> security_token;
};

/// How malform_page() / malform_orders() break a 200 answer.
enum class malformation {
    truncated_json,  ///< the JSON cut in half, Content-Length matching what is sent
    not_json,        ///< an HTML error page (text/html), still status 200
    wrong_type,      ///< purchases: every "quota_left" a string; orders: every "create_time" a string
    null_list,       ///< purchases: "purchases":null (total kept); orders: {"resources":null}
    null_entry,      ///< orders: the first region/project entry's "resources" is null; purchases: as null_list
    error_body,      ///< status 200 whose body is an error: {"error_code":"APIG.0201"|"SecMaster.20050001",...}
    duplicate_key,   ///< the list key twice, empty first: {"resources":[],"resources":[...real...]}
};

/// How the purchases' order_time/start_time/expire_time (and the orders' create_time/expire_time,
/// normally epoch ms) are served; set_time_style().
enum class time_style {
    as_is,      ///< the dataset's values, unchanged
    zone_less,  ///< "2020-08-03T13:09:13" (meaning UTC)
    spaced,     ///< "2020-08-03 13:09:13" (meaning UTC)
    blank,      ///< ""
};

/// What an IAM outage does to POST /v3/auth/tokens; iam_outage().
enum class outage_kind {
    status_503,        ///< 503 with IAM's error body
    close_connection,  ///< the request is read and the connection closed unanswered
};

/// An IAM project, for GET /v3/projects?name=...; set_projects().
struct project {
    std::string name;  ///< the region name, e.g. "cn-north-4"
    std::string id;
};

/// How a server listens and behaves.
struct options {
    bool tls = true;
    /// PEM files; both empty: a fresh self-signed EC P-256 certificate (SAN IP:127.0.0.1,
    /// DNS:localhost, valid one day) is generated in memory.
    std::string cert_file, key_file;
    std::string token = "emulator-token";  ///< an X-Auth-Token accepted forever, besides issued tokens
    std::chrono::milliseconds latency{0};   ///< added before every response (requests overlap)
    std::uint16_t port = 0;                 ///< 0 = ephemeral; read back with server::port()
    std::chrono::milliseconds idle_timeout{30'000};  ///< per connection, also bounds handshake and write
    std::size_t body_limit = 1024 * 1024;             ///< larger request bodies get 413

    std::vector<iam_user> users;          ///< who POST /v3/auth/tokens accepts; none: every attempt is 401
    std::chrono::seconds token_ttl{86400};  ///< lifetime of an issued token (real IAM: 24 h); 0: born expired
    std::vector<access_key> keys;         ///< AK/SK pairs accepted in `Authorization: SDK-HMAC-SHA256 ...`
    /// How long an AK stays refused after more than 5 consecutive failed signatures (real cloud: 5 min).
    std::chrono::milliseconds lockout{std::chrono::minutes(5)};
    /// Requests per second above which APIG and SecMaster answer 429 APIG.0308; 0 = no limit. A token
    /// bucket holding max(1, max_rps) requests, refilled at max_rps per second. IAM is not limited.
    double max_rps = 0;
};

/// Counters since start or the last reset_stats().
struct stats {
    std::uint64_t requests = 0;            ///< complete requests read, any path
    std::uint64_t purchases_requests = 0;  ///< requests on the purchases path (any outcome)
    std::uint64_t orders_requests = 0;     ///< requests on the orders path (any outcome)
    std::uint64_t connections = 0;         ///< accepted TCP connections
    std::uint64_t max_in_flight = 0;       ///< most requests between read and response written at once
    std::uint64_t token_requests = 0;      ///< requests on /v3/auth/tokens (any method, any outcome)
    std::uint64_t signature_failures = 0;  ///< AK/SK requests refused by verification (not those refused by a lock)
    std::uint64_t rate_limited = 0;        ///< requests refused by options::max_rps
    std::uint64_t throttled = 0;           ///< requests refused by throttle_window()
    std::uint64_t project_requests = 0;    ///< requests on /v3/projects (any outcome)
};

/// The fake cloud: one io_context on its own thread, bound to 127.0.0.1. What the gateway itself
/// refuses (rate limit, bad signature, locked AK, expired token) carries APIG codes on both listings,
/// as the real gateway fronts SecMaster too; a missing or unknown token gets each listing's own 401.
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

    // Faults. Thread-safe; one fault per page (and one for orders): setting another replaces it.
    // A fault only replaces an answer that would have been 200: authentication, the rate limit and
    // parameter checks come first. Page numbers are the purchases' `page_no` (absent = 1). A count
    // `n` of 0 removes the fault.

    /// Purchases page `page_no` answers `status` with a Huawei-style error body until cleared.
    void fail_page(int page_no, unsigned status);
    /// Page `page_no` answers `status` (APIG body; 429 is APIG.0308) `n` times, then normally.
    /// A non-empty `retry_after` is sent verbatim as `Retry-After` (delta-seconds or HTTP-date).
    void fail_page_times(int page_no, unsigned status, unsigned n, std::string retry_after = "");
    /// Page `page_no`, `n` times: the 200 status line and headers (with the full Content-Length)
    /// and half the body are sent, then the connection is reset (RST, no TLS close_notify).
    void reset_page(int page_no, unsigned n);
    /// Page `page_no` is read and never answered, until cleared; a stalled connection is dropped
    /// after options::idle_timeout or at stop(), which it does not delay.
    void stall_page(int page_no);
    /// Page `page_no` answers 200 with its real body, slowly, until cleared: the status line and
    /// headers (with the full Content-Length) at once, then `bytes_per_tick` bytes of the body after
    /// each `tick`, so the whole body takes ceil(size / bytes_per_tick) ticks. Throws
    /// std::invalid_argument when bytes_per_tick is 0 or tick negative. stop() is not delayed by a drip.
    void drip_page(int page_no, std::size_t bytes_per_tick, std::chrono::milliseconds tick);
    /// Page `page_no` answers 200 with a body broken as `kind`, until cleared.
    void malform_page(int page_no, malformation kind);
    /// The first purchases request for a page after `page_no` replaces the dataset with `data`
    /// (as set_dataset()), so a listing sees the data change between its pages; that request and all
    /// later ones, any page, get the new data. Fires once; clear_faults() before that cancels it.
    void change_dataset_after_page(int page_no, dataset data);

    /// The orders listing answers `status` with a SecMaster-style error body until cleared.
    void fail_orders(unsigned status);
    /// fail_page_times() for the orders listing (SecMaster-style body).
    void fail_orders_times(unsigned status, unsigned n, std::string retry_after = "");
    /// reset_page() for the orders listing.
    void reset_orders(unsigned n);
    /// stall_page() for the orders listing.
    void stall_orders();
    /// drip_page() for the orders listing.
    void drip_orders(std::size_t bytes_per_tick, std::chrono::milliseconds tick);
    /// malform_page() for the orders listing.
    void malform_orders(malformation kind);

    /// Removes every fault and a pending change_dataset_after_page(); requests already stalled stay so.
    /// Also removes the echo_secrets_*() faults; the modes below stay as set.
    void clear_faults();

    // Modes: how real Huawei Cloud and broken gateways differ from the documents. Thread-safe; each
    // stays until set again (a count of 0 or an empty optional turns it off).

    /// Serves the time fields in `style`: every item when `item` is empty, else only the purchase of
    /// dataset index `item` and the orders resource of index `item` (counted across all entries).
    /// Orders' epoch-ms create_time/expire_time become strings in that style (blank: "").
    void set_time_style(time_style style, std::optional<std::size_t> item = std::nullopt);
    /// The gateway serves at most `n` purchases per page whatever page_size asks (0 = no cap): `size`
    /// is what was served and `total` stays true, pages counted in units of `n`.
    void max_page_size(std::size_t n);
    /// `total` says `t` on every purchases page; pages past the real data come back with
    /// "purchases":[] (size 0). Empty: the true total.
    void lying_total(std::optional<std::uint64_t> t);
    /// Purchase of dataset index `index` is served with "quota_left":"12" (a string); the rest intact.
    void unreadable_purchase(std::optional<std::size_t> index);
    /// Orders resource of index `index` (counted across all entries) is served with
    /// "resource_size":"x"; the rest intact.
    void unreadable_resource(std::optional<std::size_t> index);
    /// APIG-style throttling: at most `max_requests` per fixed `window` on each listing path (the
    /// window starts with its first request); above it 429 APIG.0308 "...policy user over
    /// ratelimit,limit:N,time:1 minute" with no Retry-After, counted in stats::throttled.
    /// max_requests 0 turns it off.
    void throttle_window(unsigned max_requests, std::chrono::milliseconds window);
    /// The next `n` POST /v3/auth/tokens fail as `kind`, then IAM works again.
    void iam_outage(unsigned n, outage_kind kind = outage_kind::status_503);
    /// The projects GET /v3/projects?name=REGION lists (IAM; token or AK/SK, verified as the gateway).
    /// Default: none, so every lookup answers an empty list.
    void set_projects(std::vector<project> projects);
    /// AK/SK-signed listing requests must carry X-Project-Id equal to `id`: missing → 401 APIG.0301,
    /// another id → 403 APIG.0302. Empty: not required. Token requests are not affected.
    void require_project_id(std::optional<std::string> id);
    /// Strict mode: listing requests without `Content-Type: application/json` (parameters after ';'
    /// allowed) get 400 APIG.0201. The real gateway is lenient; this proves the client sends it.
    void require_content_type(bool on);
    /// The next `n` answers on the listings are followed by an abrupt close of their connection (TCP
    /// FIN without TLS close_notify, whatever keep-alive said): the client's next request on that
    /// connection meets EOF / stream_truncated.
    void close_without_notify(unsigned n);
    /// Every 200 answer of the listings carries, first in its top-level object, a member no client
    /// knows, "x_padding", holding a string of `bytes` characters (0 turns it off): an answer tens of
    /// megabytes long whose listing is small.
    void pad_listings(std::size_t bytes);
    /// The listings' 200 answers never end: status line and headers with Transfer-Encoding: chunked,
    /// then `{"x_padding":"` and 64 KiB chunks of `x` until the client goes away or stop().
    void endless_listings(bool on);
    /// Every answer (empty `n`) or the next `n` answers are preceded by an interim
    /// "HTTP/1.1 100 Continue" response. 0 turns it off.
    void interim_continue(std::optional<unsigned> n);
    /// Purchases page `page_no` answers 401 APIG.1002 whose error_msg copies the credentials the
    /// request carried (the X-Auth-Token value, or the whole Authorization header), as broken
    /// gateways do; until clear_faults().
    void echo_secrets_page(int page_no);
    /// echo_secrets_page() for the orders listing.
    void echo_secrets_orders();
    /// POST /v3/auth/tokens answers 401 with IAM's error body whose message copies the request body
    /// (user name and password included); until clear_faults().
    void echo_secrets_iam();

    /// Makes every token issued so far expired: its next use gets 401 APIG.0301 "The token expires.".
    /// Tokens issued afterwards are fresh. The fixed options::token is not affected.
    void expire_all_tokens();
    /// Current run of failed signatures for `ak` (0 after a success or once a lockout has ended).
    unsigned consecutive_signature_failures(const std::string& ak) const;

    /// A thread-safe snapshot of the counters.
    stats get_stats() const;
    /// Requests for purchases page `page_no` (no page_no counts as 1; any method, any outcome, stalled
    /// and reset ones included) since start or reset_stats().
    std::uint64_t page_requests(int page_no) const;
    /// Sets every counter to zero.
    void reset_stats();

private:
    struct impl;
    std::unique_ptr<detail::service> service_;  // what each request gets, Beast-free; impl refers to it
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::emulator
