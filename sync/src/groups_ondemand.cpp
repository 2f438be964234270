#include "groups_ondemand.hpp"

#include "fields.hpp"
#include "time_common.hpp"

#include <subsync/sync/time.hpp>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::sync::detail {
namespace {

namespace od = simdjson::ondemand;
using od::json_type;

// Every reader returns false to give the page up to the DOM parser: it never has to say why.

// Whether a key, from just past its opening quote, is exactly the slot's name. The name holds no
// quote or backslash, so bytes equal to it are the key's own and the quote after them closes it;
// a compare past a shorter key stays inside the padded buffer. The length is a constant, so the
// memcmp is a few inlined loads.
template <unsigned slot>
bool is_key(const char* raw) noexcept {
    constexpr std::string_view name = purchase_keys[slot];
    return std::memcmp(raw, name.data(), name.size()) == 0 && raw[name.size()] == '"';
}

// True when the key (from just past its opening quote) holds an escape: the DOM parser,
// unescaping keys, might read it as a known key, so the page goes its way.
bool escaped_key(const char* raw) noexcept {
    for (; *raw != '"'; ++raw)
        if (*raw == '\\') return true;
    return false;
}

constexpr unsigned no_slot = purchase_keys.size();

// The slot of a purchase key in purchase_keys, or no_slot for a key this version does not keep,
// by its first byte: a linear search of the twelve names cost more than reading their values.
unsigned purchase_slot(const char* raw) noexcept {
    switch (raw[0]) {
        case 'i': return is_key<0>(raw) ? 0 : no_slot;
        case 'g':
            if (is_key<1>(raw)) return 1;
            if (is_key<2>(raw)) return 2;
            if (is_key<3>(raw)) return 3;
            return is_key<7>(raw) ? 7 : no_slot;
        case 'o': return is_key<4>(raw) ? 4 : no_slot;
        case 's': return is_key<5>(raw) ? 5 : no_slot;
        case 'e': return is_key<6>(raw) ? 6 : no_slot;
        case 'q':
            if (is_key<8>(raw)) return 8;
            return is_key<9>(raw) ? 9 : no_slot;
        case 'a':
            if (is_key<10>(raw)) return 10;
            return is_key<11>(raw) ? 11 : no_slot;
        default: return no_slot;
    }
}
static_assert(purchase_keys[0][0] == 'i' && purchase_keys[1][0] == 'g' && purchase_keys[2][0] == 'g' &&
                  purchase_keys[3][0] == 'g' && purchase_keys[4][0] == 'o' && purchase_keys[5][0] == 's' &&
                  purchase_keys[6][0] == 'e' && purchase_keys[7][0] == 'g' && purchase_keys[8][0] == 'q' &&
                  purchase_keys[9][0] == 'q' && purchase_keys[10][0] == 'a' && purchase_keys[11][0] == 'a',
              "purchase_slot() dispatches on these first bytes");

bool read_null(od::value& v) noexcept {
    bool is_null = false;
    return !v.is_null().get(is_null) && is_null;
}

// The value's type, a null read into `out` here; nullopt on an error.
template <class T>
std::optional<json_type> type_or_null(od::value& v, field<T>& out) {
    json_type t;
    if (v.type().get(t)) return std::nullopt;
    if (t == json_type::null) {
        out.set_null();
        if (!read_null(v)) return std::nullopt;
    }
    return t;
}

// Where a page's backslashes are, found by one memchr at a time as the reading moves through
// the page: a string holds an escape only if the first backslash at or after its start lies before
// its end. One scan of the page in all, where a memchr per string cost 7 % of the parse.
class backslashes {
public:
    backslashes(const char* page, std::size_t size) noexcept : from_(page), end_(page + size) { seek(page); }

    /// Whether `text`, which lies in the page, holds a backslash.
    [[nodiscard]] bool within(std::string_view text) noexcept {
        // The next one is known for anything from from_ on; a text before that (not in document
        // order, which the reading never does) is looked at afresh.
        if (text.data() < from_ || next_ < text.data()) seek(text.data());
        return next_ < text.data() + text.size();
    }

private:
    void seek(const char* from) noexcept {
        from_ = from;
        const void* at = std::memchr(from, '\\', static_cast<std::size_t>(end_ - from));
        next_ = at != nullptr ? static_cast<const char*>(at) : end_;
    }

    const char* from_;
    const char* end_;
    const char* next_ = nullptr;
};

// A string value's text when it holds no escape, read from the input where it lies: no copy into
// the parser's string buffer, no unescaping; the value is consumed. Stage 1 has already refused
// the page if a string holds invalid UTF-8 or an unescaped control character, so the text is what
// get_string() would give. Nullopt, the value not consumed, for any other value or a string with
// a backslash, which then goes the long way.
std::optional<std::string_view> plain_string(od::value& v, backslashes& escapes) noexcept {
    const std::string_view token = v.raw_json_token();  // the quotes, then any spaces
    if (token.size() < 2 || token.front() != '"') return std::nullopt;
    std::size_t end = token.size();
    while (end > 2 && token[end - 1] != '"') --end;
    const std::string_view text = token.substr(1, end - 2);
    if (escapes.within(text)) return std::nullopt;
    // Consumed, as get_string() would: a value left for the iterator to skip is not checked, and
    // skipping reads a string followed by a colon as a key, so `"a":"b"` in a value's place
    // would pass (fuzz_groups found it).
    od::raw_json_string consumed;
    if (v.get_raw_json_string().get(consumed)) return std::nullopt;
    return text;
}

bool read(od::value& v, field<std::string>& out, backslashes& escapes) {
    if (const auto text = plain_string(v, escapes)) {
        out.assign_in_place().assign(*text);
        return true;
    }
    const auto t = type_or_null(v, out);
    if (!t || *t == json_type::null) return t.has_value();
    std::string_view s;
    if (*t != json_type::string || v.get_string().get(s)) return false;
    out.assign_in_place().assign(s);
    return true;
}

// The value of eight ASCII digits, the first most significant, in a little-endian word: pairs,
// then quads, then the eight combined by three multiplications (the classic SWAR reading).
constexpr std::uint64_t eight_digits(std::uint64_t w) noexcept {
    w = (w & 0x0F0F0F0F0F0F0F0FULL) * 2561 >> 8;
    w = (w & 0x00FF00FF00FF00FFULL) * 6553601 >> 16;
    return (w & 0x0000FFFF0000FFFFULL) * 42949672960001ULL >> 32;
}

// An integer token in the int64 range, read a word at a time: `-`, then 1 to 19 digits (the first
// not a 0 unless alone), then whitespace or the token's end (simdjson's stage 1 starts a new token
// after whitespace, so the byte after the digits is all there is to look at). False for anything
// else, which get_int64() then reads or refuses. The value is left for the iterator to pass over:
// a token that is an integer and nothing else cannot be misread by the skip, unlike a string (see
// plain_string()). The page is padded, so words read past the token stay in its buffer.
bool plain_integer(std::string_view token, std::int64_t& out) noexcept {
    const bool negative = !token.empty() && token[0] == '-';
    const char* digits = token.data() + (negative ? 1 : 0);
    const std::size_t room = token.size() - (negative ? 1 : 0);
    constexpr std::uint64_t zeros = 0x3030303030303030ULL;
    std::size_t n = 0;  // digits, 8 at most per word
    for (int word = 0; word < 3; ++word) {
        const std::uint64_t not_digit = over_nine(load_le<std::uint64_t>(digits + n) ^ zeros);
        if (not_digit != 0) {
            n += static_cast<std::size_t>(std::countr_zero(not_digit)) / 8;
            break;
        }
        n += 8;
    }
    if (n == 0 || n > 19 || n > room || (digits[0] == '0' && n > 1)) return false;
    if (n < room && digits[n] != ' ' && digits[n] != '\n' && digits[n] != '\r' && digits[n] != '\t') return false;
    std::uint64_t value = 0;
    std::size_t at = 0;
    for (; at + 8 <= n; at += 8) value = value * 100'000'000 + eight_digits(load_le<std::uint64_t>(digits + at));
    if (const std::size_t rest = n - at; rest != 0) {
        // The last 1..7 digits moved to the word's top, the zero bytes before them read as 0s.
        static constexpr std::uint64_t scale[8] = {1, 10, 100, 1'000, 10'000, 100'000, 1'000'000, 10'000'000};
        value = value * scale[rest] + eight_digits(load_le<std::uint64_t>(digits + at) << (8 * (8 - rest)));
    }
    constexpr std::uint64_t max = std::numeric_limits<std::int64_t>::max();
    if (value > max + (negative ? 1 : 0)) return false;
    out = negative ? static_cast<std::int64_t>(0 - value) : static_cast<std::int64_t>(value);
    return true;
}

bool read(od::value& v, field<std::int64_t>& out) {
    if (std::int64_t n = 0; plain_integer(v.raw_json_token(), n)) {
        out.assign_in_place() = n;
        return true;
    }
    const auto t = type_or_null(v, out);
    if (!t || *t == json_type::null) return t.has_value();
    return *t == json_type::number && !v.get_int64().get(out.assign_in_place());
}

// As parse.cpp read_time(): an ISO-8601 string, "" for unset, or epoch milliseconds.
bool read_time(od::value& v, field<epoch_ms>& out, backslashes& escapes) {
    // The common form first, straight from the page: a quote, the 20 bytes, a quote. Its bytes
    // are digits and separators only, so the quote after them closes the string and no escape or
    // invalid byte can hide in it; the value is consumed as plain_string() does.
    if (const std::string_view token = v.raw_json_token(); token.size() >= 22 && token[0] == '"' && token[21] == '"') {
        epoch_ms ms = 0;
        od::raw_json_string consumed;
        if (read_common_iso8601(token.data() + 1, ms) && !v.get_raw_json_string().get(consumed)) {
            out.assign_in_place() = ms;
            return true;
        }
    }
    if (const auto text = plain_string(v, escapes)) {  // consumed: read here, even when blank
        if (text->empty()) {
            out.set_null();  // a field the API left blank
            return true;
        }
        epoch_ms ms = 0;
        if (!read_iso8601(*text, ms)) return false;
        out.assign_in_place() = ms;
        return true;
    }
    json_type t;
    if (v.type().get(t)) return false;
    if (t == json_type::string) {
        std::string_view s;
        if (v.get_string().get(s)) return false;
        if (s.empty()) {
            out.set_null();
            return true;
        }
        const auto ms = parse_iso8601(s);
        if (!ms) return false;
        out.assign_in_place() = *ms;
        return true;
    }
    if (!read(v, out)) return false;
    if (out.has_value()) out.assign_in_place() = clamp_time(*out);
    return true;
}

bool read(od::value& v, field<std::vector<std::string>>& out, backslashes& escapes) {
    const auto t = type_or_null(v, out);
    if (!t || *t == json_type::null) return t.has_value();
    od::array arr;
    if (*t != json_type::array || v.get_array().get(arr)) return false;
    auto& items = out.assign_in_place();  // empty: the record was reset
    for (auto item : arr) {
        if (item.error()) return false;
        od::value& e = item.value_unsafe();  // in place, as read_purchase() reads its fields
        if (const auto plain = plain_string(e, escapes)) {
            items.emplace_back(*plain);
            continue;
        }
        std::string_view s;
        if (e.get_string().get(s)) return false;
        items.emplace_back(s);
    }
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
    if (s.has_value() && std::any_of(s->begin(), s->end(), [](char c) { return c != '*'; }))
        s.assign_in_place().assign("******");
}

// A record of the previous page made empty, its strings keeping their storage.
void reset(purchased_group& g) noexcept {
    g.id.clear();
    g.group_id.set_absent();
    g.group_name.set_absent();
    g.group_remark.set_absent();
    g.order_time.set_absent();
    g.start_time.set_absent();
    g.expire_time.set_absent();
    g.group_domains.set_absent();
    g.quota_left.set_absent();
    g.quota_used.set_absent();
    g.app_key.set_absent();
    g.app_secret.set_absent();
}

// One record, with every call inside it inlined (flatten): the readers and simdjson's iteration
// then share registers instead of passing the value's state through memory at each call. The
// parse pass took 0.88 x the time and 0.92 x the instructions (docs/decisions.md "How a purchases
// page is read"). Forcing the readers inline one by one made it twice as slow, and flattening the
// whole page's reading was slower too: it is this function, and only it.
[[gnu::flatten]] bool read_purchase(od::value& item, purchased_group& g, backslashes& escapes) {
    reset(g);
    od::object obj;
    if (item.get_object().get(obj)) return false;
    std::uint32_t seen = 0;
    for (auto f : obj) {
        if (f.error()) return false;
        // Read in place: copying the field (or the value) out of its result cost a store-forwarding
        // stall per field, a fifth of the whole parse (docs/decisions.md "How a purchases page is read").
        od::field& kv = f.value_unsafe();
        const char* raw = kv.key().raw();
        od::value& v = kv.value();
        const unsigned slot = purchase_slot(raw);
        if (slot == no_slot) {
            if (escaped_key(raw) || !validate(v)) return false;
            continue;
        }
        const std::uint32_t bit = std::uint32_t{1} << slot;
        if ((seen & bit) != 0) return false;  // a key twice: the DOM parser names it
        seen |= bit;
        bool ok = false;
        switch (slot) {
            case 0: {
                std::string_view s;
                if (const auto plain = plain_string(v, escapes)) s = *plain;
                else if (v.get_string().get(s)) break;
                ok = !s.empty();
                if (ok) g.id.assign(s);
                break;
            }
            case 1: ok = read(v, g.group_id, escapes); break;
            case 2: ok = read(v, g.group_name, escapes); break;
            case 3: ok = read(v, g.group_remark, escapes); break;
            case 4: ok = read_time(v, g.order_time, escapes); break;
            case 5: ok = read_time(v, g.start_time, escapes); break;
            case 6: ok = read_time(v, g.expire_time, escapes); break;
            case 7: ok = read(v, g.group_domains, escapes); break;
            case 8: ok = read(v, g.quota_left); break;
            case 9: ok = read(v, g.quota_used); break;
            case 10: ok = read(v, g.app_key, escapes); break;
            default: ok = read(v, g.app_secret, escapes); break;
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

bool read_groups_ondemand(od::parser& parser, const std::string& body, std::string& scratch, groups_page& page) {
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
    if (parser.iterate(data, body.size(), capacity).get(doc)) return false;
    backslashes escapes(data, body.size());  // in the buffer iterated, where the raw tokens lie
    od::object root;
    if (doc.get_object().get(root)) return false;

    page.total = page.size = page.served = 0;
    page.unreadable.clear();
    std::size_t kept = 0;  // records of page.purchases filled so far; the others are the last page's
    bool has_total = false, has_size = false, has_purchases = false, purchases_null = false;
    for (auto f : root) {
        if (f.error()) return false;
        od::field& kv = f.value_unsafe();
        const char* raw = kv.key().raw();
        if (escaped_key(raw)) return false;
        const std::string_view key(raw, static_cast<std::size_t>(std::strchr(raw, '"') - raw));
        if (error_document_key(key)) return false;
        od::value& v = kv.value();
        if (key == "total") {
            if (has_total || !read_count(v, page.total)) return false;
            has_total = true;
        } else if (key == "size") {
            if (has_size || !read_count(v, page.size)) return false;
            has_size = true;
        } else if (key == "purchases") {
            if (has_purchases || purchases_null) return false;
            json_type t;
            if (v.type().get(t)) return false;
            if (t == json_type::null) {
                if (!read_null(v)) return false;
                purchases_null = true;
                continue;
            }
            od::array items;
            if (t != json_type::array || v.get_array().get(items)) return false;
            has_purchases = true;
            for (auto item : items) {
                if (item.error()) return false;
                od::value& e = item.value_unsafe();
                auto& g = kept < page.purchases.size() ? page.purchases[kept] : page.purchases.emplace_back();
                ++kept;
                if (!read_purchase(e, g, escapes)) return false;
            }
        } else if (!validate(v)) {
            return false;
        }
    }
    // Past the root's end only when the iterator is alive and nothing follows (trailing content
    // would make the body not one JSON document).
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) return false;
    if (!has_total || (!has_purchases && page.total > 0)) return false;
    page.purchases.resize(kept);
    page.served = static_cast<std::int64_t>(kept);
    if (!has_size) page.size = page.served;
    return true;
}

}  // namespace subsync::sync::detail
