#pragma once
// Rewrites of served JSON for the emulator's modes (time styles, an unreadable item, broken
// answers), done on the compact bytes so everything not rewritten stays byte for byte.

#include "subsync/emulator/server.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace subsync::emulator::detail {

/// The item-level modes (set_time_style(), unreadable_purchase(), unreadable_resource()).
struct item_modes {
    time_style times = time_style::as_is;
    std::optional<std::size_t> time_item;  ///< empty: every item
    std::optional<std::size_t> unreadable_purchase, unreadable_resource;

    bool touches_purchases() const { return times != time_style::as_is || unreadable_purchase.has_value(); }
    bool touches_orders() const { return times != time_style::as_is || unreadable_resource.has_value(); }
};

/// Purchase `json` (dataset index `index`) as the modes serve it.
std::string reshape_purchase(std::string_view json, std::size_t index, const item_modes& modes);

/// The orders body as the modes serve it; resources are counted across entries from 0.
std::string reshape_orders(std::string_view body, const item_modes& modes);

/// `body` (compact JSON object) with the value of its top-level member `key` replaced by `raw`;
/// unchanged when there is no such member.
std::string replace_member(std::string_view body, std::string_view key, std::string_view raw);

/// `body` with `"key":raw,` inserted before its top-level member `key`.
std::string insert_before_member(std::string_view body, std::string_view key, std::string_view raw);

/// The orders body with the first entry's "resources" replaced by null.
std::string null_first_entry(std::string_view body);

}  // namespace subsync::emulator::detail
