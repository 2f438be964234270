#include "response_reader.hpp"

#include <fmt/format.h>

#include <atomic>
#include <utility>

namespace subsync::sync {

namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

// One budget for the whole process: every connection of every source and account draws on it.
std::atomic<std::size_t> budget_limit{std::size_t{32} << 20};
std::atomic<std::size_t> budget_used{0};

}  // namespace

body_lease::~body_lease() { release(); }

body_lease::body_lease(body_lease&& other) noexcept : held_(std::exchange(other.held_, 0)) {}

body_lease& body_lease::operator=(body_lease&& other) noexcept {
    if (this != &other) {
        release();
        held_ = std::exchange(other.held_, 0);
    }
    return *this;
}

bool body_lease::grow(std::size_t n) noexcept {
    const std::size_t before = budget_used.fetch_add(n);
    if (before + n > budget_limit.load()) {
        budget_used.fetch_sub(n);
        return false;
    }
    held_ += n;
    return true;
}

bool body_lease::resize(std::size_t n) noexcept {
    if (n == held_) return true;
    if (n > held_) return grow(n - held_);
    budget_used.fetch_sub(held_ - n);
    held_ = n;
    return true;
}

void body_lease::release() noexcept {
    budget_used.fetch_sub(std::exchange(held_, 0));
}

void set_body_budget(std::size_t bytes) noexcept { budget_limit.store(bytes); }
std::size_t body_budget() noexcept { return budget_limit.load(); }
std::size_t body_budget_in_use() noexcept { return budget_used.load(); }

namespace detail {

void set_limits(response_parser& parser, std::size_t body_limit) {
    parser.body_limit(body_limit);
    parser.header_limit(64 * 1024);
}

bool is_interim(unsigned status) noexcept { return status / 100 == 1 && status != 101; }

void choose_body(response_parser& parser, body_shape shape, std::size_t unfiltered_up_to) {
    if (parser.get().result_int() / 100 != 2) return;
    auto& body = parser.get().body();
    body.filter.emplace(shape);
    body.unfiltered_up_to = unfiltered_up_to;
}

namespace {

error over_budget(std::string_view from, std::size_t kept) {
    return error{error_kind::network,
                 fmt::format("response from {} needs more memory than the {} MiB all answers in flight may hold "
                             "(sync.body_budget_mib): {} KiB of its listing fields kept so far",
                             from, body_budget() >> 20, kept >> 10)};
}

// simdjson reads past the end of its input: room for that avoids a copy of the body (parse.hpp).
constexpr std::size_t parser_padding = 64;

void pad_for_parser(std::string& body) {
    if (body.capacity() - body.size() < parser_padding) body.reserve(body.size() + parser_padding);
}

}  // namespace

std::optional<error> body_error(const response_parser& parser, const boost::system::error_code& ec,
                                std::string_view from, std::size_t body_limit) {
    const auto& body = parser.get().body();
    if (body.over_budget) return over_budget(from, body.kept.size());
    if (ec == http::error::body_limit)
        return error{error_kind::network, fmt::format("response from {} exceeds the {} MiB body limit", from, body_limit >> 20)};
    return std::nullopt;
}

http_response to_response(response_parser& parser) {
    auto res = parser.release();
    http_response out;
    out.status = res.result_int();
    if (auto it = res.find("X-Request-Id"); it != res.end()) out.request_id = std::string(it->value());
    if (auto it = res.find(http::field::retry_after); it != res.end()) out.retry_after = std::string(it->value());
    for (const auto& f : res) out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    auto& kept = res.body().kept;
    pad_for_parser(kept);
    out.body = std::move(kept);
    out.lease = std::move(res.body().lease);
    out.unfiltered = res.body().unfiltered();
    return out;
}

}  // namespace detail

result<void> filter_body(http_response& res, body_shape shape, body_scratch& scratch, std::string_view from) {
    if (!res.unfiltered) return {};
    res.unfiltered = false;
    detail::json_filter filter(shape);
    scratch.bytes.clear();
    // What the filter keeps is never longer than what came: room for that and the padding.
    scratch.bytes.reserve(res.body.size() + detail::parser_padding);
    filter.feed(res.body, scratch.bytes);
    detail::pad_for_parser(scratch.bytes);
    std::swap(res.body, scratch.bytes);
    // The body as it came is the scratch now: it takes its lease along, and keeps it if the
    // budget allows an idle buffer (else the buffer is freed, as http_connection::reuse() does).
    std::swap(res.lease, scratch.lease);
    if (!scratch.lease.resize(scratch.bytes.capacity())) {
        scratch.bytes = std::string();
        scratch.lease.release();
    }
    if (res.lease.resize(res.body.capacity() + filter.kept_tokens() * body_token_cost)) return {};
    res.lease.release();
    return detail::over_budget(from, res.body.size());
}

result<http_response> read_response(std::string_view bytes, body_shape shape, std::size_t body_limit,
                                    std::size_t unfiltered_up_to) {
    asio::const_buffer rest(bytes.data(), bytes.size());
    std::optional<detail::response_parser> parser;
    boost::system::error_code ec;
    // Feeds what is left to the parser until it is done, wants more than there is, or fails.
    auto feed = [&] {
        while (!parser->is_done()) {
            if (rest.size() == 0) {
                // Beast's put_eof() wants a message begun; no byte at all is no response.
                if (!parser->got_some()) ec = http::error::end_of_stream;
                else parser->put_eof(ec);
                return;
            }
            const std::size_t used = parser->put(rest, ec);
            rest += used;
            if (ec == http::error::need_more && used == 0) {
                ec = {};
                if (!parser->got_some()) ec = http::error::end_of_stream;
                else parser->put_eof(ec);
                return;
            }
            if (ec == http::error::need_more) ec = {};
            if (ec) return;
            if (parser->is_header_done() && !parser->is_done() && !parser->get().body().filter &&
                parser->get().result_int() / 100 == 2)
                return;  // the header is in: the caller decides the body's filter
        }
    };
    for (int interim = 0;; ++interim) {
        parser.emplace();
        detail::set_limits(*parser, body_limit);
        parser->eager(false);  // stop after the header
        feed();
        if (auto e = detail::body_error(*parser, ec, "the server", body_limit)) return *e;
        if (ec) return error{error_kind::network, fmt::format("read response: {}", ec.message())};
        if (!parser->is_header_done()) return error{error_kind::network, "read response: no complete header"};
        if (!detail::is_interim(parser->get().result_int())) break;
        if (interim == 16) return error{error_kind::network, "read response: more than 16 interim 1xx answers"};
    }
    detail::choose_body(*parser, shape, unfiltered_up_to);
    parser->eager(true);
    feed();
    if (auto e = detail::body_error(*parser, ec, "the server", body_limit)) return *e;
    if (ec) return error{error_kind::network, fmt::format("read response: {}", ec.message())};
    return detail::to_response(*parser);
}


}  // namespace subsync::sync
