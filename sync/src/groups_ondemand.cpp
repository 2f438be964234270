#include "groups_ondemand.hpp"

#include "fields.hpp"

#include <subsync/sync/time.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::sync::detail {
namespace {

namespace od = simdjson::ondemand;
using od::json_type;

// Every reader returns false to give the page up to the DOM parser: it never has to say why.

// A key as it is written between its quotes; false when it holds an escape, which the DOM
// parser (unescaping keys) may read as a known key.
bool plain_key(od::raw_json_string key, std::string_view& out) noexcept {
    const char* p = key.raw();
    const char* q = p;
    while (*q != '"') {
        if (*q == '\\') return false;
        ++q;
    }
    out = std::string_view(p, static_cast<std::size_t>(q - p));
    return true;
}

// The slot of a purchase key in purchase_keys, or its size for a key this version does not keep.
unsigned purchase_slot(std::string_view key) noexcept {
    return static_cast<unsigned>(std::find(purchase_keys.begin(), purchase_keys.end(), key) - purchase_keys.begin());
}

bool read_null(od::value& v) noexcept {
    bool is_null = false;
    return !v.is_null().get(is_null) && is_null;
}

bool read(od::value& v, field<std::string>& out) {
    json_type t;
    if (v.type().get(t)) return false;
    if (t == json_type::null) {
        out = field<std::string>::null();
        return read_null(v);
    }
    std::string_view s;
    if (t != json_type::string || v.get_string().get(s)) return false;
    out = std::string(s);
    return true;
}

bool read(od::value& v, field<std::int64_t>& out) {
    json_type t;
    if (v.type().get(t)) return false;
    if (t == json_type::null) {
        out = field<std::int64_t>::null();
        return read_null(v);
    }
    std::int64_t n = 0;
    if (t != json_type::number || v.get_int64().get(n)) return false;
    out = n;
    return true;
}

// As parse.cpp read_time(): an ISO-8601 string, "" for unset, or epoch milliseconds.
bool read_time(od::value& v, field<epoch_ms>& out) {
    json_type t;
    if (v.type().get(t)) return false;
    if (t == json_type::string) {
        std::string_view s;
        if (v.get_string().get(s)) return false;
        if (s.empty()) {
            out = field<epoch_ms>::null();
            return true;
        }
        const auto ms = parse_iso8601(s);
        if (!ms) return false;
        out = *ms;
        return true;
    }
    field<std::int64_t> n;
    if (!read(v, n)) return false;
    out = n.has_value() ? field<epoch_ms>(clamp_time(*n)) : field<epoch_ms>::null();
    return true;
}

bool read(od::value& v, field<std::vector<std::string>>& out) {
    json_type t;
    if (v.type().get(t)) return false;
    if (t == json_type::null) {
        out = field<std::vector<std::string>>::null();
        return read_null(v);
    }
    od::array arr;
    if (t != json_type::array || v.get_array().get(arr)) return false;
    std::vector<std::string> items;
    for (auto item : arr) {
        od::value e;
        std::string_view s;
        if (std::move(item).get(e) || e.get_string().get(s)) return false;
        items.emplace_back(s);
    }
    out = std::move(items);
    return true;
}

// A value the parser does not keep is still read through, so that a page the DOM parser would
// refuse as invalid JSON is not accepted here because On-Demand skips what it is not asked for.
bool validate(od::value v) {
    json_type t;
    if (v.type().get(t)) return false;
    switch (t) {
        case json_type::string: {
            std::string_view s;
            return !v.get_string().get(s);
        }
        case json_type::number: {
            od::number n;
            return !v.get_number().get(n);
        }
        case json_type::boolean: {
            bool b = false;
            return !v.get_bool().get(b);
        }
        case json_type::null: return read_null(v);
        case json_type::array: {
            od::array arr;
            if (v.get_array().get(arr)) return false;
            for (auto item : arr) {
                od::value e;
                if (std::move(item).get(e) || !validate(e)) return false;
            }
            return true;
        }
        case json_type::object: {
            od::object obj;
            if (v.get_object().get(obj)) return false;
            for (auto f : obj) {
                std::string_view key;
                if (f.unescaped_key().get(key)) return false;
                od::value e;
                if (std::move(f).value().get(e) || !validate(e)) return false;
            }
            return true;
        }
    }
    return false;
}

// The DOM parser's "a masked secret only" rule (parse.cpp mask_secret).
void mask_secret(field<std::string>& s) {
    if (s.has_value() && std::any_of(s->begin(), s->end(), [](char c) { return c != '*'; })) s = std::string("******");
}

bool read_purchase(od::value item, purchased_group& g) {
    od::object obj;
    if (item.get_object().get(obj)) return false;
    std::uint32_t seen = 0;
    for (auto f : obj) {
        od::field kv;
        if (std::move(f).get(kv)) return false;
        std::string_view key;
        if (!plain_key(kv.key(), key)) return false;
        od::value& v = kv.value();
        const unsigned slot = purchase_slot(key);
        if (slot == purchase_keys.size()) {
            if (!validate(v)) return false;
            continue;
        }
        const std::uint32_t bit = std::uint32_t{1} << slot;
        if ((seen & bit) != 0) return false;  // a key twice: the DOM parser names it
        seen |= bit;
        bool ok = false;
        switch (slot) {
            case 0: {
                std::string_view s;
                ok = !v.get_string().get(s) && !s.empty();
                if (ok) g.id.assign(s);
                break;
            }
            case 1: ok = read(v, g.group_id); break;
            case 2: ok = read(v, g.group_name); break;
            case 3: ok = read(v, g.group_remark); break;
            case 4: ok = read_time(v, g.order_time); break;
            case 5: ok = read_time(v, g.start_time); break;
            case 6: ok = read_time(v, g.expire_time); break;
            case 7: ok = read(v, g.group_domains); break;
            case 8: ok = read(v, g.quota_left); break;
            case 9: ok = read(v, g.quota_used); break;
            case 10: ok = read(v, g.app_key); break;
            default: ok = read(v, g.app_secret); break;
        }
        if (!ok) return false;
    }
    if ((seen & 1U) == 0) return false;  // no id
    mask_secret(g.app_secret);
    return true;
}

bool read_count(od::value& v, std::int64_t& out) {
    return !v.get_int64().get(out) && out >= 0;
}

// The keys by which a 200 answer is an error document (parse.cpp error_document()).
bool error_document_key(std::string_view key) noexcept {
    return key == "error_code" || key == "error_msg" || key == "errorCode" || key == "errorMsg";
}

}  // namespace

std::optional<groups_page> read_groups_ondemand(od::parser& parser, const std::string& body, std::string& scratch,
                                                std::size_t expected_items) {
    const char* data = body.data();
    std::size_t capacity = body.capacity();
    if (capacity - body.size() < simdjson::SIMDJSON_PADDING) {
        // Beast's string_body leaves no room for the padding: one copy into a kept buffer.
        scratch.reserve(body.size() + simdjson::SIMDJSON_PADDING);
        scratch.assign(body);
        data = scratch.data();
        capacity = scratch.capacity();
    }
    od::document doc;
    if (parser.iterate(data, body.size(), capacity).get(doc)) return std::nullopt;
    od::object root;
    if (doc.get_object().get(root)) return std::nullopt;

    groups_page page;
    bool has_total = false, has_size = false, has_purchases = false, purchases_null = false;
    for (auto f : root) {
        od::field kv;
        if (std::move(f).get(kv)) return std::nullopt;
        std::string_view key;
        if (!plain_key(kv.key(), key) || error_document_key(key)) return std::nullopt;
        od::value& v = kv.value();
        if (key == "total") {
            if (has_total || !read_count(v, page.total)) return std::nullopt;
            has_total = true;
        } else if (key == "size") {
            if (has_size || !read_count(v, page.size)) return std::nullopt;
            has_size = true;
        } else if (key == "purchases") {
            if (has_purchases || purchases_null) return std::nullopt;
            json_type t;
            if (v.type().get(t)) return std::nullopt;
            if (t == json_type::null) {
                if (!read_null(v)) return std::nullopt;
                purchases_null = true;
                continue;
            }
            od::array items;
            if (t != json_type::array || v.get_array().get(items)) return std::nullopt;
            has_purchases = true;
            page.purchases.reserve(expected_items);
            for (auto item : items) {
                od::value e;
                if (std::move(item).get(e) || !read_purchase(e, page.purchases.emplace_back())) return std::nullopt;
            }
            page.served = static_cast<std::int64_t>(page.purchases.size());
        } else if (!validate(v)) {
            return std::nullopt;
        }
    }
    // Past the root's end only when the iterator is alive and nothing follows (trailing content
    // would make the body not one JSON document).
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) return std::nullopt;
    if (!has_total || (!has_purchases && page.total > 0)) return std::nullopt;
    if (!has_size) page.size = page.served;
    return page;
}

}  // namespace subsync::sync::detail
