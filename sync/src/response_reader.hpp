#pragma once
// How a response is read, shared by http_connection (over a socket) and read_response() (from
// bytes, for the fuzzer): the body type that filters and budgets as bytes arrive, and the steps
// around Beast's parser. No sockets, TLS or coroutines here, so the fuzz build stays light.

#include "body_filter.hpp"

#include <subsync/sync/error.hpp>
#include <subsync/sync/http_client.hpp>

#include <boost/asio/error.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace subsync::sync::detail {

namespace http = boost::beast::http;

// A Beast body that keeps a response as it streams in: a 2xx body through the listing's filter
// (unknown members dropped; or as it came, while it is no longer than `unfiltered_up_to`), an
// error body up to error_body_kept bytes; what is kept is charged to the body budget as it
// grows, so no answer holds more memory than the budget allows, whatever its Content-Length or
// however long its chunks go on.
struct budgeted_body {
    struct value_type {
        std::string kept;
        std::optional<json_filter> filter;  // set once the status is known
        std::size_t keep_limit = error_body_kept;   // without a filter
        std::size_t unfiltered_up_to = 0;           // with one: kept as it came while this long
        body_lease lease;
        bool over_budget = false;

        void take(std::string_view bytes) {
            if (!filter) {
                kept.append(bytes.substr(0, std::min(bytes.size(), keep_limit - std::min(keep_limit, kept.size()))));
                return;
            }
            if (unfiltered_up_to != 0) {
                if (bytes.size() <= unfiltered_up_to - kept.size()) {
                    kept.append(bytes);
                    return;
                }
                filter_so_far();  // too long to keep as it came
            }
            filter->feed(bytes, kept);
        }

        // Kept as it came, not filtered (yet).
        [[nodiscard]] bool unfiltered() const noexcept { return filter && unfiltered_up_to != 0; }

        // The lease made to hold what the kept part holds, and what parsing it will take; a body
        // kept as it came that does not fit is filtered from here on instead, as it would have been.
        bool charge() {
            if (fits()) return true;
            if (unfiltered()) {
                filter_so_far();
                if (fits()) return true;
            }
            over_budget = true;
            return false;
        }

    private:
        bool fits() noexcept {
            const std::size_t tokens = filter ? filter->kept_tokens() : 0;
            return lease.resize(kept.capacity() + tokens * body_token_cost);
        }

        // What came as it came goes through the filter, and what comes after it too.
        void filter_so_far() {
            unfiltered_up_to = 0;
            const std::string raw = std::exchange(kept, std::string());
            filter->feed(raw, kept);
        }
    };

    class reader {
    public:
        template <bool is_request, class Fields>
        reader(http::header<is_request, Fields>& /*head*/, value_type& v) : v_(v) {}

        void init(const boost::optional<std::uint64_t>& /*length*/, boost::system::error_code& ec) {
            ec = {};  // nothing reserved from Content-Length: memory follows what is kept
        }

        template <class ConstBufferSequence>
        std::size_t put(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
            ec = {};
            std::size_t n = 0;
            for (const auto b : boost::beast::buffers_range_ref(buffers)) {
                v_.take(std::string_view(static_cast<const char*>(b.data()), b.size()));
                n += b.size();
            }
            if (!v_.charge()) ec = boost::asio::error::no_buffer_space;
            return n;
        }

        void finish(boost::system::error_code& ec) { ec = {}; }

    private:
        value_type& v_;
    };
};

using response_parser = http::response_parser<budgeted_body>;

/// Header and body limits of a response.
void set_limits(response_parser& parser, std::size_t body_limit);

/// A 1xx answer other than 101: another answer follows.
[[nodiscard]] bool is_interim(unsigned status) noexcept;

/// Once the status is known: a 2xx body goes through the filter of its shape (or is kept as it
/// came up to `unfiltered_up_to` bytes), others are capped.
void choose_body(response_parser& parser, body_shape shape, std::size_t unfiltered_up_to);

/// What went wrong reading a body when the budget or the limit stopped it (`from` names the
/// server); else nullopt.
[[nodiscard]] std::optional<error> body_error(const response_parser& parser, const boost::system::error_code& ec,
                                              std::string_view from, std::size_t body_limit);

/// The parsed message as an http_response; the body keeps room for simdjson's padding.
[[nodiscard]] http_response to_response(response_parser& parser);

}  // namespace subsync::sync::detail
