#pragma once
// The fast path of body_parser::groups(): simdjson On-Demand, one pass over the page in document
// order. It only ever accepts a page whose every item reads cleanly; on anything else it gives up
// and the DOM parser (parse.cpp) reads the page again and says what is wrong, so that the errors
// and unreadable items stay the DOM parser's, word for word (docs/decisions.md).

#include <subsync/sync/parse.hpp>

#include <simdjson.h>

#include <cstddef>
#include <string>

namespace subsync::sync::detail {

/// Fills `page` (reusing its records and their strings' storage) and returns true, or returns
/// false, leaving `page` unspecified, when the body is anything but a listing whose items all read
/// (an error document, a key twice, a value of another type, invalid JSON): the caller then parses
/// it with the DOM. `scratch` holds a padded copy when `body` has no room for simdjson's padding.
[[nodiscard]] bool read_groups_ondemand(simdjson::ondemand::parser& parser, const std::string& body,
                                        std::string& scratch, groups_page& page);

/// The DOM reading of a purchases page (parse.cpp): the fallback of read_groups_ondemand(), and the
/// one that names errors and unreadable items. Where both accept a page, they agree (fuzz_groups).
[[nodiscard]] result<groups_page> read_groups_dom(simdjson::dom::parser& parser, const std::string& body);

}  // namespace subsync::sync::detail
