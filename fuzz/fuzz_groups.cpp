// A purchases page: the body filter then the parser, as a 200 answer goes through them, and the
// parser on the raw bytes. The filter must give the same output however the bytes are split, and
// a page the On-Demand pass accepts must read the same through the DOM, which is its reference.

#include "body_filter.hpp"
#include "groups_ondemand.hpp"

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

    for (const std::string* page : {&body, static_cast<const std::string*>(&kept)}) {
        simdjson::ondemand::parser ondemand;
        std::string scratch;
        groups_page fast;
        if (!detail::read_groups_ondemand(ondemand, *page, scratch, fast)) continue;
        simdjson::dom::parser dom;
        const auto slow = detail::read_groups_dom(dom, *page);
        if (!slow || !slow->unreadable.empty() || slow->purchases != fast.purchases || slow->total != fast.total ||
            slow->size != fast.size || slow->served != fast.served)
            std::abort();
    }
    return 0;
}
