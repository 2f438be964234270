#include <subsync/sync/parse.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
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
        auto t = parse_iso8601(s);
        if (!t) return fmt::format("not an ISO-8601 time: \"{}\"", s.substr(0, 40));
        out = *t;
        return {};
    }
    field<std::int64_t> v;
    if (auto err = read(e, v)) return fmt::format("expected time (ISO-8601 string or epoch ms), got {}", type_name(e.type()));
    out = *v;
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

// The API returns app_secret masked ("******"). Anything else would be a real
// secret: it is never kept, only its masked form (DESIGN.md: secrets never stored).
void mask_secret(field<std::string>& s) {
    if (s.has_value() && std::any_of(s->begin(), s->end(), [](char c) { return c != '*'; }))
        s = std::string("******");
}

result<purchased_group> parse_purchase(dom::element e, std::size_t index) {
    auto fail = [&](std::string_view key, std::string_view what) {
        return error{error_kind::parse, fmt::format("purchases[{}].{}: {}", index, key, what)};
    };
    dom::object o;
    if (e.get_object().get(o)) return error{error_kind::parse, fmt::format("purchases[{}]: {}", index, expected("object", e))};
    purchased_group g;
    bool has_id = false;
    for (auto [key, value] : o) {
        field_error err;
        if (key == "id") {
            std::string_view s;
            if (value.get_string().get(s)) err = expected("string", value);
            else if (s.empty()) err = "empty id";
            else { g.id = std::string(s); has_id = true; }
        }
        else if (key == "group_id") err = read(value, g.group_id);
        else if (key == "group_name") err = read(value, g.group_name);
        else if (key == "group_remark") err = read(value, g.group_remark);
        else if (key == "order_time") err = read_time(value, g.order_time);
        else if (key == "start_time") err = read_time(value, g.start_time);
        else if (key == "expire_time") err = read_time(value, g.expire_time);
        else if (key == "group_domains") err = read(value, g.group_domains);
        else if (key == "quota_left") err = read(value, g.quota_left);
        else if (key == "quota_used") err = read(value, g.quota_used);
        else if (key == "app_key") err = read(value, g.app_key);
        else if (key == "app_secret") err = read(value, g.app_secret);
        if (err) return fail(key, *err);
    }
    if (!has_id) return fail("id", "missing");
    mask_secret(g.app_secret);
    return g;
}

result<subscription_resource> parse_resource(dom::element e, std::size_t group, std::size_t index,
                                             const subscription_resource& scope) {
    auto where = [&] { return fmt::format("resources[{}].resources[{}]", group, index); };
    dom::object o;
    if (e.get_object().get(o)) return error{error_kind::parse, fmt::format("{}: {}", where(), expected("object", e))};
    subscription_resource r = scope;
    bool has_id = false;
    for (auto [key, value] : o) {
        field_error err;
        if (key == "resource_id") {
            std::string_view s;
            if (value.get_string().get(s)) err = expected("string", value);
            else if (s.empty()) err = "empty resource_id";
            else { r.resource_id = std::string(s); has_id = true; }
        }
        else if (key == "resource_size") err = read(value, r.resource_size);
        else if (key == "resource_type") err = read(value, r.resource_type);
        else if (key == "resource_spec_code") err = read(value, r.resource_spec_code);
        else if (key == "create_time") err = read_time(value, r.create_time);
        else if (key == "expire_time") err = read_time(value, r.expire_time);
        else if (key == "resource_status") err = read(value, r.resource_status);
        else if (key == "order_id") err = read(value, r.order_id);
        else if (key == "charging_mode") err = read(value, r.charging_mode);
        else if (key == "to_period") err = read(value, r.to_period);
        else if (key == "tag_list") err = read(value, r.tag_list);
        if (err) return error{error_kind::parse, fmt::format("{}.{}: {}", where(), key, *err)};
    }
    if (!has_id) return error{error_kind::parse, fmt::format("{}.resource_id: missing", where())};
    return r;
}

error json_error(simdjson::error_code code) {
    return error{error_kind::parse, fmt::format("body is not valid JSON: {}", simdjson::error_message(code))};
}

}  // namespace

struct body_parser::impl {
    dom::parser parser;
};

body_parser::body_parser() : impl_(std::make_unique<impl>()) {}
body_parser::~body_parser() = default;
body_parser::body_parser(body_parser&&) noexcept = default;
body_parser& body_parser::operator=(body_parser&&) noexcept = default;

result<groups_page> body_parser::groups(const std::string& body) {
    dom::element doc;
    if (auto code = impl_->parser.parse(body).get(doc)) return json_error(code);
    dom::object root;
    if (doc.get_object().get(root)) return error{error_kind::parse, "body: " + expected("object", doc)};

    groups_page page;
    bool has_total = false;
    bool has_size = false;
    dom::array purchases;
    bool has_purchases = false;
    for (auto [key, value] : root) {
        if (key == "total" || key == "size") {
            std::int64_t v = 0;
            if (value.get_int64().get(v) || v < 0)
                return error{error_kind::parse, fmt::format("{}: expected a non-negative integer, got {}", key, type_name(value.type()))};
            (key == "total" ? page.total : page.size) = v;
            (key == "total" ? has_total : has_size) = true;
        } else if (key == "purchases") {
            if (value.is_null()) continue;  // an empty listing may come as null
            if (value.get_array().get(purchases)) return error{error_kind::parse, "purchases: " + expected("array", value)};
            has_purchases = true;
        }
    }
    if (!has_total) return error{error_kind::parse, "total: missing"};
    if (has_purchases) {
        page.purchases.reserve(purchases.size());
        std::size_t i = 0;
        for (dom::element item : purchases) {
            auto g = parse_purchase(item, i++);
            if (!g) return g.error();
            page.purchases.push_back(std::move(*g));
        }
    }
    if (!has_size) page.size = static_cast<std::int64_t>(page.purchases.size());
    return page;
}

result<std::vector<subscription_resource>> body_parser::orders(const std::string& body) {
    dom::element doc;
    if (auto code = impl_->parser.parse(body).get(doc)) return json_error(code);
    dom::object root;
    if (doc.get_object().get(root)) return error{error_kind::parse, "body: " + expected("object", doc)};
    dom::element groups_el;
    if (root.at_key("resources").get(groups_el)) return error{error_kind::parse, "resources: missing"};
    std::vector<subscription_resource> out;
    if (groups_el.is_null()) return out;
    dom::array groups;
    if (groups_el.get_array().get(groups)) return error{error_kind::parse, "resources: " + expected("array", groups_el)};

    std::size_t gi = 0;
    for (dom::element group_el : groups) {
        dom::object group;
        if (group_el.get_object().get(group))
            return error{error_kind::parse, fmt::format("resources[{}]: {}", gi, expected("object", group_el))};
        subscription_resource scope;
        dom::array items;
        bool has_items = false;
        for (auto [key, value] : group) {
            field_error err;
            if (key == "region_id") err = read(value, scope.region_id);
            else if (key == "project_id") err = read(value, scope.project_id);
            else if (key == "resources" && !value.is_null()) {
                if (value.get_array().get(items)) err = expected("array", value);
                else has_items = true;
            }
            if (err) return error{error_kind::parse, fmt::format("resources[{}].{}: {}", gi, key, *err)};
        }
        if (has_items) {
            std::size_t ri = 0;
            for (dom::element item : items) {
                auto r = parse_resource(item, gi, ri++, scope);
                if (!r) return r.error();
                out.push_back(std::move(*r));
            }
        }
        ++gi;
    }
    return out;
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

std::string describe_error_body(const std::string& body) {
    dom::parser parser;
    dom::element doc;
    dom::object o;
    if (!parser.parse(body).get(doc) && !doc.get_object().get(o)) {
        auto text = [&](std::initializer_list<std::string_view> keys) -> std::string {
            for (auto k : keys) {
                dom::element e;
                if (o.at_key(k).get(e)) continue;
                if (e.is_string()) return std::string(e.get_string().value_unsafe());
                if (e.is_int64()) return std::to_string(e.get_int64().value_unsafe());
            }
            return {};
        };
        std::string code = text({"error_code", "errorCode", "code"});
        std::string msg = text({"error_msg", "errorMsg", "message"});
        dom::object nested;
        if (code.empty() && msg.empty() && !o["error"].get_object().get(nested)) {
            o = nested;  // IAM: {"error": {"code": 401, "message": "...", "title": "..."}}
            code = text({"code", "title"});
            msg = text({"message"});
        }
        if (!code.empty() || !msg.empty()) return code.empty() ? msg : msg.empty() ? code : code + ": " + msg;
    }
    // Not a recognised error document: keep its first bytes, printable only.
    std::string head = body.substr(0, 200);
    for (char& c : head)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    return head.empty() ? "(empty body)" : "body: \"" + head + (body.size() > 200 ? "…\"" : "\"");
}

}  // namespace subsync::sync
