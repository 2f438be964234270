#include <subsync/sync/columns.hpp>

#include <array>
#include <charconv>
#include <cstdint>

namespace subsync::sync {
namespace {

using enum column_type;

constexpr std::array group_columns{
    column{"id", text},           column{"group_id", text},      column{"group_name", text},
    column{"group_remark", text}, column{"order_time", time},    column{"start_time", time},
    column{"expire_time", time},  column{"group_domains", json}, column{"quota_left", integer},
    column{"quota_used", integer}, column{"app_key", text},      column{"app_secret", text},
};

constexpr std::array resource_columns{
    column{"region_id", text},          column{"project_id", text},     column{"resource_id", text},
    column{"resource_size", integer},   column{"resource_type", text},  column{"resource_spec_code", text},
    column{"create_time", time},        column{"expire_time", time},    column{"resource_status", integer},
    column{"order_id", text},           column{"charging_mode", text},  column{"to_period", boolean},
    column{"tag_list", json},
};

cell text_cell(std::string s) { return cell{field_state::present, 0, std::move(s)}; }

cell make(const field<std::string>& f) {
    return f.has_value() ? text_cell(*f) : cell{f.status(), 0, {}};
}
cell make(const field<std::int64_t>& f) { return cell{f.status(), f.has_value() ? *f : 0, {}}; }
cell make(const field<bool>& f) { return cell{f.status(), f.has_value() && *f ? 1 : 0, {}}; }
cell make(const field<std::vector<std::string>>& f) {
    if (!f.has_value()) return cell{f.status(), 0, {}};
    std::string j = "[";
    for (const auto& s : *f) {
        if (j.size() > 1) j += ',';
        append_json_string(j, s);
    }
    j += ']';
    return text_cell(std::move(j));
}
cell make(const field<std::vector<tag>>& f) {
    if (!f.has_value()) return cell{f.status(), 0, {}};
    std::string j = "[";
    for (const auto& t : *f) {
        if (j.size() > 1) j += ',';
        j += "{\"key\":";
        append_json_string(j, t.key);
        j += ",\"value\":";
        append_json_string(j, t.value);
        j += '}';
    }
    j += ']';
    return text_cell(std::move(j));
}

}  // namespace

std::span<const column> columns(source_kind k) noexcept {
    if (k == source_kind::purchased_groups) return group_columns;
    return resource_columns;
}

void to_cells(const purchased_group& g, std::vector<cell>& out) {
    out.clear();
    out.push_back(text_cell(g.id));
    out.push_back(make(g.group_id));
    out.push_back(make(g.group_name));
    out.push_back(make(g.group_remark));
    out.push_back(make(g.order_time));
    out.push_back(make(g.start_time));
    out.push_back(make(g.expire_time));
    out.push_back(make(g.group_domains));
    out.push_back(make(g.quota_left));
    out.push_back(make(g.quota_used));
    out.push_back(make(g.app_key));
    out.push_back(make(g.app_secret));
}

void to_cells(const subscription_resource& r, std::vector<cell>& out) {
    out.clear();
    out.push_back(make(r.region_id));
    out.push_back(make(r.project_id));
    out.push_back(text_cell(r.resource_id));
    out.push_back(make(r.resource_size));
    out.push_back(make(r.resource_type));
    out.push_back(make(r.resource_spec_code));
    out.push_back(make(r.create_time));
    out.push_back(make(r.expire_time));
    out.push_back(make(r.resource_status));
    out.push_back(make(r.order_id));
    out.push_back(make(r.charging_mode));
    out.push_back(make(r.to_period));
    out.push_back(make(r.tag_list));
}

std::uint64_t content_hash(const std::vector<cell>& cells) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    auto mix = [&h](const void* p, std::size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) {
            h ^= b[i];
            h *= 0x100000001b3ULL;
        }
    };
    for (const auto& c : cells) {
        mix(&c.state, sizeof c.state);
        mix(&c.number, sizeof c.number);
        const std::uint64_t len = c.text.size();
        mix(&len, sizeof len);  // length-prefixed, so ("ab","c") and ("a","bc") differ
        mix(c.text.data(), c.text.size());
    }
    return h;
}

namespace {

// std::to_string without the temporary string.
void append_integer(std::string& out, std::int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

/// Length of the valid UTF-8 sequence starting at s[i], or 0 (RFC 3629: no overlongs, no surrogates).
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
    const std::uint8_t c = b(i);
    std::size_t n = 0;
    std::uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    if (b(i + 1) < lo || b(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
    return n;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    // Bytes that go out unchanged (printable ASCII but '"' and '\\', and whole valid
    // UTF-8 sequences) are appended a run at a time: `+=` per character was 5 % of
    // a sync's CPU (bench/README.md, fix 9).
    std::size_t run = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u >= 0x20 && u < 0x7F && u != '"' && u != '\\') {
            ++i;
            continue;
        }
        if (u >= 0x80) {
            if (const std::size_t n = utf8_length(s, i); n != 0) {
                i += n;
                continue;
            }
        }
        out.append(s.data() + run, i - run);
        switch (u) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (u >= 0x80) {
                    // Bytes that are not UTF-8 (a log message, a file name) become U+FFFD: the output always parses.
                    out += "\xEF\xBF\xBD";
                } else {  // the other controls and DEL
                    out += "\\u00";
                    out += hex[u >> 4];
                    out += hex[u & 0xf];
                }
        }
        ++i;
        run = i;
    }
    out.append(s.data() + run, s.size() - run);
    out += '"';
}

void append_json_literal(std::string& out, const cell& c, column_type t) {
    if (c.state != field_state::present) {
        out += "null";
        return;
    }
    switch (t) {
        case column_type::text: append_json_string(out, c.text); break;
        case column_type::json: out += c.text; break;
        case column_type::boolean: out += c.number != 0 ? "true" : "false"; break;
        case column_type::integer:
        case column_type::time: append_integer(out, c.number); break;
    }
}

}  // namespace subsync::sync

#include <subsync/sync/time.hpp>

namespace subsync::sync {

void append_json_object(std::string& out, std::span<const column> cols, const std::vector<cell>& cells,
                        time_style times) {
    out += '{';
    bool first = true;
    for (std::size_t i = 0; i < cols.size(); ++i) {
        const cell& c = cells[i];
        if (c.state == field_state::absent) continue;
        if (!first) out += ',';
        first = false;
        append_json_string(out, cols[i].name);
        out += ':';
        if (cols[i].type == column_type::time && times == time_style::iso8601 && c.state == field_state::present)
        {
            out += '"';  // the digits, '-', ':', 'T', '.' and 'Z' of a time never need escaping
            append_iso8601(out, c.number);
            out += '"';
        }
        else
            append_json_literal(out, c, cols[i].type);
    }
    out += '}';
}

}  // namespace subsync::sync
