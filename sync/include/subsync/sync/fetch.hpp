#pragma once

#include <subsync/config/config.hpp>
#include <subsync/sync/auth.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/http_client.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/request.hpp>
#include <subsync/sync/records.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

class listing_stage;

/// What became of a fetched page (docs/decisions.md "An unchanged listing is recognised by its pages").
enum class page_reading {
    parsed,                ///< parsed and staged
    as_before,             ///< passed over: what the filter kept has the digest it had
    as_before_unfiltered,  ///< passed over: its body as it came has the digest it had, never filtered
};
[[nodiscard]] std::string_view to_string(page_reading r) noexcept;

/// What reading a purchases page takes besides the page: the parser (its buffers grow to the
/// largest page it read, up to 2 MiB) and the scratch the body filter writes into. Each is in use
/// only between two awaits, and the sync runs on one thread, so the engine keeps one for every
/// listing of a run: a set per listing held one per source in flight, 20 MiB of parsers when 16
/// sources of 1,000 purchases each were (docs/decisions.md "Memory").
struct page_readers {
    body_parser parser;
    body_scratch filtered;
};

/// Everything a source fetch needs; borrowed for the duration of the fetch.
struct fetch_context {
    request_context request;  ///< transport, credentials, retries, rate limit, deadline
    const config::account_config* account = nullptr;
    int page_size = 100;
    int concurrency = 8;
    int max_pages = 10'000;  ///< sync.max_pages
    /// Pages the previous listing had (0 = unknown): that many connections, up to
    /// `concurrency`, are opened while page 1 is in flight, so the workers do not
    /// wait for their TLS handshakes once page 1 tells the total.
    int expected_pages = 0;
    /// Called after each page arrives (pages done, pages total, what became of it), for progress output.
    std::function<void(int, int, page_reading)> on_page;
    /// Shared with the other listings of the run; required for a purchases listing.
    page_readers* readers = nullptr;
};

/// A source's full listing, as the API sent it. `complete` is false when the pages do
/// not add up: such a listing may add and update items but must never remove any.
/// snapshot_store::apply also makes a listing with a repeated key incomplete.
template <class Record>
struct listing {
    std::vector<Record> items;
    int pages = 0;
    std::int64_t total = 0;
    bool complete = true;
    std::string incomplete_reason;
};

/// Fetches every page of `GET /v1.0/apigw/purchases/groups` into `stage`: page 1
/// first to learn `total`, then the rest with at most `concurrency` requests in
/// flight, each worker on its own keep-alive connection, each page staged as it
/// arrives. Any failed page fails the whole listing; the error names the page.
/// A listing that does not add up (count differs from `total`, a repeated id,
/// `total` moved between pages) is fetched once more from page 1; if it still
/// does not, the stage is left marked incomplete.
boost::asio::awaitable<result<void>> fetch_purchased_groups(const fetch_context& ctx, listing_stage& stage);

/// Fetches `GET /v1/subscriptions/orders` (one document, no paging).
boost::asio::awaitable<result<listing<subscription_resource>>> fetch_subscriptions(const fetch_context& ctx);

}  // namespace subsync::sync
