#include <subsync/config/secret.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/time.hpp>

#include "fields.hpp"
#include "groups_ondemand.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

namespace subsync::sync {
namespace {

namespace dom = simdjson::dom;

// A field-level failure: the caller prefixes the item's path.
using field_error = std::optional<std::string>;

std::string_view type_name(dom::element_type t) {
    switch (t) {
        case dom::element_type::ARRAY: return "array";
        case dom::element_type::OBJECT: return "object";
        case dom::element_type::INT64:
        case dom::element_type::UINT64: return "integer";
        case dom::element_type::DOUBLE: return "number";
        case dom::element_type::STRING: return "string";
        case dom::element_type::BOOL: return "boolean";
        case dom::element_type::NULL_VALUE: return "null";
    }
    return "value";
}

std::string expected(std::string_view what, dom::element e) {
    return fmt::format("expected {}, got {}", what, type_name(e.type()));
}

field_error read(dom::element e, field<std::string>& out) {
    if (e.is_null()) { out = field<std::string>::null(); return {}; }
    std::string_view s;
    if (e.get_string().get(s)) return expected("string", e);
    out = std::string(s);
    return {};
}

field_error read(dom::element e, field<std::int64_t>& out) {
    if (e.is_null()) { out = field<std::int64_t>::null(); return {}; }
    if (e.type() == dom::element_type::UINT64) return "integer out of range (above 2^63-1)";
    std::int64_t v = 0;
    if (e.get_int64().get(v)) return expected("integer", e);
    out = v;
    return {};
}

field_error read(dom::element e, field<bool>& out) {
    if (e.is_null()) { out = field<bool>::null(); return {}; }
    bool v = false;
    if (e.get_bool().get(v)) return expected("boolean", e);
    out = v;
    return {};
}

// Times arrive as ISO-8601 strings (APIG) or epoch milliseconds (SecMaster);
// either form is accepted for either API so that a contract drift is not fatal.
field_error read_time(dom::element e, field<epoch_ms>& out) {
    if (e.is_null()) { out = field<epoch_ms>::null(); return {}; }
    if (e.is_string()) {
        std::string_view s = e.get_string().value_unsafe();
        if (s.empty()) { out = field<epoch_ms>::null(); return {}; }  // a field the API left blank
        auto t = parse_iso8601(s);
        if (!t) return fmt::format("not an ISO-8601 time: \"{}\"", s.substr(0, 40));
        out = *t;
        return {};
    }
    field<std::int64_t> v;
    if (auto err = read(e, v)) return fmt::format("expected time (ISO-8601 string or epoch ms), got {}", type_name(e.type()));
    out = clamp_time(*v);  // one rule for out-of-range epochs (time.hpp)
    return {};
}

field_error read(dom::element e, field<std::vector<std::string>>& out) {
    if (e.is_null()) { out = field<std::vector<std::string>>::null(); return {}; }
    dom::array arr;
    if (e.get_array().get(arr)) return expected("array of strings", e);
    std::vector<std::string> v;
    std::size_t i = 0;
    for (dom::element item : arr) {
        std::string_view s;
        if (item.get_string().get(s)) return fmt::format("[{}]: {}", i, expected("string", item));
        v.emplace_back(s);
        ++i;
    }
    out = std::move(v);
    return {};
}

field_error read(dom::element e, field<std::vector<tag>>& out) {
    if (e.is_null()) { out = field<std::vector<tag>>::null(); return {}; }
    dom::array arr;
    if (e.get_array().get(arr)) return expected("array of {key, value}", e);
    std::vector<tag> v;
    std::size_t i = 0;
    for (dom::element item : arr) {
        dom::object o;
        if (item.get_object().get(o)) return fmt::format("[{}]: {}", i, expected("object", item));
        tag t;
        for (auto [k, val] : o) {
            std::string* dst = k == "key" ? &t.key : k == "value" ? &t.value : nullptr;
            if (dst == nullptr) continue;
            std::string_view s;
            if (!val.is_null() && val.get_string().get(s))
                return fmt::format("[{}].{}: {}", i, k, expected("string", val));
            *dst = std::string(s);
        }
        v.push_back(std::move(t));
        ++i;
    }
    out = std::move(v);
    return {};
}

// Which of an object's known keys were seen: a key sent twice makes the object
// ambiguous (JSON parsers disagree on which value wins), so it is refused.
class seen_keys {
public:
    /// False when `slot` was seen before in this object.
    bool first(unsigned slot) noexcept {
        const std::uint64_t bit = std::uint64_t{1} << slot;
        const bool fresh = (bits_ & bit) == 0;
        bits_ |= bit;
        return fresh;
    }

    [[nodiscard]] bool contains(unsigned slot) const noexcept { return (bits_ >> slot & 1U) != 0; }

private:
    std::uint64_t bits_ = 0;
};

constexpr std::string_view duplicate_key = "key appears twice in the object";

// The API returns app_secret masked ("******"). Anything else would be a real
// secret: it is never kept, only its masked form (DESIGN.md: secrets never stored).
void mask_secret(field<std::string>& s) {
    if (s.has_value() && std::any_of(s->begin(), s->end(), [](char c) { return c != '*'; }))
        s = std::string("******");
}

using detail::purchase_keys;  // in the order of the slots seen_keys tracks

// `failed_field`, when given, receives the key of the field that could not be read.
result<purchased_group> parse_purchase(dom::element e, std::size_t index, std::string* failed_field = nullptr) {
    auto fail = [&](std::string_view key, std::string_view what) {
        if (failed_field) *failed_field = std::string(key);
        return error{error_kind::parse, fmt::format("purchases[{}].{}: {}", index, key, what)};
    };
    dom::object o;
    if (e.get_object().get(o)) return error{error_kind::parse, fmt::format("purchases[{}]: {}", index, expected("object", e))};
    purchased_group g;
    bool has_id = false;
    seen_keys seen;
    for (auto [key, value] : o) {
        const auto slot = static_cast<unsigned>(std::find(purchase_keys.begin(), purchase_keys.end(), key) - purchase_keys.begin());
        if (slot == purchase_keys.size()) continue;  // a field this version does not keep
        if (!seen.first(slot)) return fail(key, duplicate_key);
        field_error err;
        switch (slot) {
            case 0: {
                std::string_view s;
                if (value.get_string().get(s)) err = expected("string", value);
                else if (s.empty()) err = "empty id";
                else { g.id = std::string(s); has_id = true; }
                break;
            }
            case 1: err = read(value, g.group_id); break;
            case 2: err = read(value, g.group_name); break;
            case 3: err = read(value, g.group_remark); break;
            case 4: err = read_time(value, g.order_time); break;
            case 5: err = read_time(value, g.start_time); break;
            case 6: err = read_time(value, g.expire_time); break;
            case 7: err = read(value, g.group_domains); break;
            case 8: err = read(value, g.quota_left); break;
            case 9: err = read(value, g.quota_used); break;
            case 10: err = read(value, g.app_key); break;
            default: err = read(value, g.app_secret); break;
        }
        if (err) return fail(key, *err);
    }
    if (!has_id) return fail("id", "missing");
    mask_secret(g.app_secret);
    return g;
}

using detail::resource_keys;

result<subscription_resource> parse_resource(dom::element e, std::size_t group, std::size_t index,
                                             const subscription_resource& scope, std::string* failed_field = nullptr) {
    auto where = [&] { return fmt::format("resources[{}].resources[{}]", group, index); };
    dom::object o;
    if (e.get_object().get(o)) return error{error_kind::parse, fmt::format("{}: {}", where(), expected("object", e))};
    subscription_resource r = scope;
    bool has_id = false;
    seen_keys seen;
    for (auto [key, value] : o) {
        const auto slot = static_cast<unsigned>(std::find(resource_keys.begin(), resource_keys.end(), key) - resource_keys.begin());
        if (slot == resource_keys.size()) continue;
        field_error err;
        if (!seen.first(slot)) err = std::string(duplicate_key);
        else switch (slot) {
            case 0: {
                std::string_view s;
                if (value.get_string().get(s)) err = expected("string", value);
                else if (s.empty()) err = "empty resource_id";
                else { r.resource_id = std::string(s); has_id = true; }
                break;
            }
            case 1: err = read(value, r.resource_size); break;
            case 2: err = read(value, r.resource_type); break;
            case 3: err = read(value, r.resource_spec_code); break;
            case 4: err = read_time(value, r.create_time); break;
            case 5: err = read_time(value, r.expire_time); break;
            case 6: err = read(value, r.resource_status); break;
            case 7: err = read(value, r.order_id); break;
            case 8: err = read(value, r.charging_mode); break;
            case 9: err = read(value, r.to_period); break;
            default: err = read(value, r.tag_list); break;
        }
        if (err) {
            if (failed_field) *failed_field = std::string(key);
            return error{error_kind::parse, fmt::format("{}.{}: {}", where(), key, *err)};
        }
    }
    if (!has_id) {
        if (failed_field) *failed_field = "resource_id";
        return error{error_kind::parse, fmt::format("{}.resource_id: missing", where())};
    }
    return r;
}

// The id of an item that could not be read, when its id itself is readable:
// errors about the item name it (the field that failed may be another one).
std::string readable_id(dom::element item, std::string_view key) {
    std::string_view id;
    if (item.at_key(key).get_string().get(id)) return {};
    return std::string(id.substr(0, 200));
}

// A 200 answer whose body is an error document (some gateways do this): the
// listing it replaces is unknown, never empty.
std::optional<error> error_document(dom::object root) {
    for (std::string_view key : {"error_code", "error_msg", "errorCode", "errorMsg"}) {
        dom::element ignored;
        if (!root.at_key(key).get(ignored)) {
            return error{error_kind::parse,
                         "HTTP 200 with an error body instead of a listing: " + describe_error_body(simdjson::to_string(root))};
        }
    }
    return std::nullopt;
}

error json_error(simdjson::error_code code) {
    return error{error_kind::parse, fmt::format("body is not valid JSON: {}", simdjson::error_message(code))};
}

}  // namespace

namespace detail {

result<groups_page> read_groups_dom(dom::parser& parser, const std::string& body) {
    dom::element doc;
    if (auto code = parser.parse(body).get(doc)) return json_error(code);
    dom::object root;
    if (doc.get_object().get(root)) return error{error_kind::parse, "body: " + expected("object", doc)};
    if (auto e = error_document(root)) return *e;

    groups_page page;
    bool has_size = false;
    dom::array purchases;
    bool has_purchases = false;
    bool purchases_null = false;
    seen_keys seen;
    for (auto [key, value] : root) {
        const unsigned slot = key == "total" ? 0 : key == "size" ? 1 : key == "purchases" ? 2 : 3;
        if (slot == 3) continue;
        if (!seen.first(slot)) return error{error_kind::parse, fmt::format("{}: {}", key, duplicate_key)};
        if (slot < 2) {
            std::int64_t v = 0;
            if (value.get_int64().get(v) || v < 0)
                return error{error_kind::parse, fmt::format("{}: expected a non-negative integer, got {}", key, type_name(value.type()))};
            (slot == 0 ? page.total : page.size) = v;
            has_size |= slot == 1;
        } else if (value.is_null()) {
            purchases_null = true;
        } else {
            if (value.get_array().get(purchases)) return error{error_kind::parse, "purchases: " + expected("array", value)};
            has_purchases = true;
        }
    }
    if (!seen.contains(0)) return error{error_kind::parse, "total: missing"};
    // An empty listing may come as `null`, but only when total says it is empty.
    if (!has_purchases && page.total > 0)
        return error{error_kind::parse, fmt::format("purchases: {} while total is {}", purchases_null ? "null" : "missing", page.total)};
    if (has_purchases) {
        page.purchases.reserve(purchases.size());
        std::size_t i = 0;
        for (dom::element item : purchases) {
            std::string failed;
            auto g = parse_purchase(item, i, &failed);
            if (g) page.purchases.push_back(std::move(*g));
            else page.unreadable.push_back({i, readable_id(item, "id"), std::move(failed), std::move(g.error().message)});
            ++i;
        }
        page.served = static_cast<std::int64_t>(i);
    }
    if (!has_size) page.size = page.served;
    return page;
}

}  // namespace detail

struct body_parser::impl {
    dom::parser parser;
    simdjson::ondemand::parser ondemand;
    std::string padded;          // a body copied with room for simdjson's padding (groups_ondemand.cpp)

    // A worker's parser keeps the capacity of the largest page it has read; past a typical page
    // it is dropped, so that one large answer does not stay in memory for the rest of the sync.
    void trim() {
        constexpr std::size_t keep = std::size_t{2} << 20;
        if (parser.capacity() > keep) parser = dom::parser{};
        if (ondemand.capacity() > keep) ondemand = simdjson::ondemand::parser{};
        if (padded.capacity() > keep) padded = std::string{};
    }

    // Trims when the parse is over, whichever way it ended.
    struct trim_after {
        impl& owner;
        ~trim_after() { owner.trim(); }
    };
};

body_parser::body_parser() : impl_(std::make_unique<impl>()) {}
body_parser::~body_parser() = default;
body_parser::body_parser(body_parser&&) noexcept = default;
body_parser& body_parser::operator=(body_parser&&) noexcept = default;

result<groups_page> body_parser::groups(const std::string& body) {
    groups_page page;
    if (auto r = groups(body, page); !r) return r.error();
    return page;
}

result<void> body_parser::groups(const std::string& body, groups_page& into) {
    const impl::trim_after trim{*impl_};
    // One On-Demand pass reads a page whose items all read; any other page is read again
    // through the DOM, which says what is wrong (docs/decisions.md).
    if (detail::read_groups_ondemand(impl_->ondemand, body, impl_->padded, into)) return {};
    auto page = detail::read_groups_dom(impl_->parser, body);
    if (!page) return page.error();
    into = std::move(*page);
    return {};
}

result<orders_document> body_parser::orders(const std::string& body) {
    const impl::trim_after trim{*impl_};
    dom::element doc;
    if (auto code = impl_->parser.parse(body).get(doc)) return json_error(code);
    dom::object root;
    if (doc.get_object().get(root)) return error{error_kind::parse, "body: " + expected("object", doc)};
    if (auto e = error_document(root)) return *e;
    dom::element groups_el;
    bool has_groups = false;
    for (auto [key, value] : root) {
        if (key != "resources") continue;
        if (has_groups) return error{error_kind::parse, fmt::format("resources: {}", duplicate_key)};
        groups_el = value;
        has_groups = true;
    }
    // The orders API has no total: a null or missing array is an unknown listing, not an empty one.
    if (!has_groups) return error{error_kind::parse, "resources: missing"};
    dom::array groups;
    if (groups_el.get_array().get(groups)) return error{error_kind::parse, "resources: " + expected("array", groups_el)};

    orders_document out;
    std::size_t gi = 0;
    for (dom::element group_el : groups) {
        dom::object group;
        if (group_el.get_object().get(group))
            return error{error_kind::parse, fmt::format("resources[{}]: {}", gi, expected("object", group_el))};
        subscription_resource scope;
        dom::array items;
        bool has_items = false;
        seen_keys seen;
        for (auto [key, value] : group) {
            const unsigned slot = key == "region_id" ? 0 : key == "project_id" ? 1 : key == "resources" ? 2 : 3;
            if (slot == 3) continue;
            field_error err;
            if (!seen.first(slot)) err = std::string(duplicate_key);
            else if (slot == 0) err = read(value, scope.region_id);
            else if (slot == 1) err = read(value, scope.project_id);
            else if (value.get_array().get(items)) err = expected("array", value);
            else has_items = true;
            if (err) return error{error_kind::parse, fmt::format("resources[{}].{}: {}", gi, key, *err)};
        }
        if (!has_items) return error{error_kind::parse, fmt::format("resources[{}].resources: missing", gi)};
        std::size_t ri = 0;
        for (dom::element item : items) {
            std::string failed;
            auto r = parse_resource(item, gi, ri, scope, &failed);
            if (r) out.items.push_back(std::move(*r));
            else out.unreadable.push_back({ri, readable_id(item, "resource_id"), std::move(failed), std::move(r.error().message)});
            ++ri;
        }
        ++gi;
    }
    return out;
}

std::string describe(const unreadable_item& item) {
    return fmt::format("item={} field={}: {}", item.id.empty() ? "(unknown)" : item.id,
                       item.field.empty() ? "(none)" : item.field, item.message);
}

result<std::vector<cell>> parse_item_cells(source_kind source, const std::string& json_object) {
    dom::parser parser;
    dom::element doc;
    if (auto code = parser.parse(json_object).get(doc)) return json_error(code);
    std::vector<cell> cells;
    if (source == source_kind::purchased_groups) {
        auto g = parse_purchase(doc, 0);
        if (!g) return g.error();
        to_cells(*g, cells);
        return cells;
    }
    dom::object o;
    if (doc.get_object().get(o)) return error{error_kind::parse, "item: " + expected("object", doc)};
    subscription_resource scope;
    for (auto [key, value] : o) {
        field_error err;
        if (key == "region_id") err = read(value, scope.region_id);
        else if (key == "project_id") err = read(value, scope.project_id);
        if (err) return error{error_kind::parse, fmt::format("item.{}: {}", key, *err)};
    }
    auto r = parse_resource(doc, 0, 0, scope);
    if (!r) return r.error();
    to_cells(*r, cells);
    return cells;
}

result<epoch_ms> parse_token_expiry(const std::string& body) {
    dom::parser parser;
    dom::element doc;
    if (auto code = parser.parse(body).get(doc)) return json_error(code);
    std::string_view text;
    if (doc.at_pointer("/token/expires_at").get(text))
        return error{error_kind::parse, "token.expires_at: missing or not a string"};
    auto t = parse_iso8601(text);
    if (!t) return error{error_kind::parse, fmt::format("token.expires_at: not an ISO-8601 time: \"{}\"", text.substr(0, 40))};
    return *t;
}

result<std::vector<std::string>> parse_project_ids(const std::string& body, std::string_view name) {
    dom::parser parser;
    dom::element doc;
    if (auto code = parser.parse(body).get(doc)) return json_error(code);
    dom::array projects;
    if (doc.at_key("projects").get_array().get(projects))
        return error{error_kind::parse, "projects: missing or not an array"};
    std::vector<std::string> ids;
    for (dom::element p : projects) {
        std::string_view n, id;
        if (p.at_key("name").get_string().get(n) || n != name) continue;
        if (p.at_key("id").get_string().get(id) || id.empty())
            return error{error_kind::parse, fmt::format("projects: the project named \"{}\" has no id", name)};
        ids.emplace_back(id);
    }
    return ids;
}

namespace {

// The first string (or integer) among `keys` in `o`.
std::string text_of(dom::object o, std::initializer_list<std::string_view> keys) {
    for (auto k : keys) {
        dom::element e;
        if (o.at_key(k).get(e)) continue;
        if (e.is_string()) return std::string(e.get_string().value_unsafe());
        if (e.is_int64()) return std::to_string(e.get_int64().value_unsafe());
    }
    return {};
}

// An error code and message in `o` or, breadth first, in an object nested in it
// (IAM: {"error": {"code": 401, "message": …}}; some services wrap the pair deeper).
bool find_error_pair(dom::object o, int depth, std::string& code, std::string& msg) {
    code = text_of(o, {"error_code", "errorCode", "code"});
    msg = text_of(o, {"error_msg", "errorMsg", "message"});
    if (!code.empty() || !msg.empty()) {
        if (code.empty()) code = text_of(o, {"title"});
        return true;
    }
    if (depth == 3) return false;
    for (auto [key, value] : o) {
        dom::object nested;
        if (!value.get_object().get(nested) && find_error_pair(nested, depth + 1, code, msg)) return true;
    }
    return false;
}

}  // namespace

error_body read_error_body(const std::string& raw) {
    // A gateway may echo what it was sent (the token, the AK): hidden before any of it
    // is kept, and before the first-bytes fallback could cut a secret in half.
    const std::string body = config::redacted(raw);
    error_body out;
    dom::parser parser;
    dom::element doc;
    dom::object o;
    if (!parser.parse(body).get(doc) && !doc.get_object().get(o)) {
        std::string code, msg;
        find_error_pair(o, 0, code, msg);
        std::string text = code.empty() ? msg : msg.empty() ? code : code + ": " + msg;
        // details[]: [{"error_code": …, "error_msg": …}] or plain strings, as the SDKs print them.
        dom::array details;
        if (!o["details"].get_array().get(details)) {
            for (dom::element d : details) {
                std::string dc, dm;
                dom::object dobj;
                if (!d.get_object().get(dobj)) find_error_pair(dobj, 2, dc, dm);
                else if (d.is_string()) dm = std::string(d.get_string().value_unsafe());
                const std::string one = dc.empty() ? dm : dm.empty() ? dc : dc + ": " + dm;
                if (!one.empty()) text += (text.empty() ? "" : "; ") + one;
            }
        }
        if (auto enc = text_of(o, {"encoded_authorization_message"}); !enc.empty())
            text += (text.empty() ? "" : " ") + fmt::format("(encoded_authorization_message: {} characters; decode it "
                                                            "with IAM to see which policy refused)", enc.size());
        out.request_id = text_of(o, {"request_id", "requestId", "X-Request-Id"});
        if (!text.empty()) {
            out.message = std::move(text);
            return out;
        }
    }
    // Not a recognised error document: keep its first bytes, printable only.
    std::string head = body.substr(0, 200);
    for (char& c : head)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    out.message = head.empty() ? "(empty body)" : "body: \"" + head + (body.size() > 200 ? "…\"" : "\"");
    return out;
}

std::string describe_error_body(const std::string& body) { return read_error_body(body).message; }

}  // namespace subsync::sync
