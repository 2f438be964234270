// A purchases page: the body filter then the parser, as a 200 answer goes through them, and the
// parser on the raw bytes. The filter must give the same output however the bytes are split.

#include "body_filter.hpp"

#include <subsync/sync/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace subsync::sync;
    const std::string body(reinterpret_cast<const char*>(data), size);
    body_parser parser;
    (void)parser.groups(body);

    detail::json_filter whole(body_shape::purchases_page);
    std::string kept;
    whole.feed(body, kept);
    detail::json_filter split(body_shape::purchases_page);
    std::string kept_split;
    const std::size_t cut = size == 0 ? 0 : data[0] % size;
    split.feed(std::string_view(body).substr(0, cut), kept_split);
    split.feed(std::string_view(body).substr(cut), kept_split);
    if (kept != kept_split || whole.kept_tokens() != split.kept_tokens()) std::abort();
    (void)parser.groups(kept);
    return 0;
}
