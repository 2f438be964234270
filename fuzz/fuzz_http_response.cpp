// A raw HTTP/1.1 response as the client reads it (read_response: interim answers, chunked
// bodies, limits, the body filter and budget), then what the client does with the body: an
// error body read for its message, a listing parsed. The first byte picks the listing shape and
// how long a 2xx body may be kept as it came (http_request::unfiltered_up_to): filtered after
// the fact by filter_body(), it must be what the filter kept as the bytes arrived.

#include <subsync/sync/http_client.hpp>
#include <subsync/sync/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace subsync::sync;
    if (size == 0) return 0;
    const auto shape = static_cast<body_shape>(data[0] % 3);
    const std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
    {
        auto res = read_response(raw, shape, 1 << 20);
        if (res) res->lease.release();  // the second reading has the whole budget too
        auto late = read_response(raw, shape, 1 << 20, std::size_t{1} << (data[0] / 3 % 16));
        body_scratch scratch;
        if (late) {
            if (auto kept = filter_body(*late, shape, scratch, "the server"); !kept)
                late = result<http_response>(kept.error());
        }
        // The budget may stop the two readings at other points; anything else must agree.
        const auto over_budget = [](const result<http_response>& r) {
            return !r && r.error().message.find("needs more memory") != std::string::npos;
        };
        const bool comparable = !over_budget(res) && !over_budget(late);
        if (comparable && res.has_value() != late.has_value()) std::abort();
        if (comparable && !res && res.error().message != late.error().message) std::abort();
        if (comparable && res) {
            if (late->status != res->status || late->body != res->body || late->unfiltered) std::abort();
            if (res->status / 100 != 2) (void)read_error_body(res->body);
            else if (shape == body_shape::purchases_page) (void)body_parser{}.groups(res->body);
            else if (shape == body_shape::orders_document) (void)body_parser{}.orders(res->body);
            else (void)read_error_body(res->body);
        }
    }
    if (body_budget_in_use() != 0) std::abort();  // every lease went back
    return 0;
}
