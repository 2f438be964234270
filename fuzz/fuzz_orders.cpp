// The orders document: the parser on the raw bytes and on what the body filter keeps.

#include "body_filter.hpp"

#include <subsync/sync/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace subsync::sync;
    const std::string body(reinterpret_cast<const char*>(data), size);
    body_parser parser;
    (void)parser.orders(body);
    detail::json_filter filter(body_shape::orders_document);
    std::string kept;
    filter.feed(body, kept);
    (void)parser.orders(kept);
    return 0;
}
