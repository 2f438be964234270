#include "reshape.hpp"

#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

namespace subsync::emulator::detail {

namespace {

// The index just past the JSON value starting at `at` (compact JSON: no whitespace).
std::size_t skip_value(std::string_view j, std::size_t at) {
    if (at >= j.size()) return j.size();
    if (j[at] == '"') {
        for (std::size_t i = at + 1; i < j.size(); ++i) {
            if (j[i] == '\\') {
                ++i;
            } else if (j[i] == '"') {
                return i + 1;
            }
        }
        return j.size();
    }
    if (j[at] == '{' || j[at] == '[') {
        int depth = 0;
        for (std::size_t i = at; i < j.size(); ++i) {
            if (j[i] == '"') {
                i = skip_value(j, i) - 1;
            } else if (j[i] == '{' || j[i] == '[') {
                ++depth;
            } else if ((j[i] == '}' || j[i] == ']') && --depth == 0) {
                return i + 1;
            }
        }
        return j.size();
    }
    const auto end = j.find_first_of(",}]", at);
    return end == std::string_view::npos ? j.size() : end;
}

struct span {
    std::size_t begin = 0, end = 0;
};

// Calls `f(key, value)` for each member of the object at `at`; the key without its quotes.
void for_each_member(std::string_view j, std::size_t at, const std::function<void(std::string_view, span)>& f) {
    if (at >= j.size() || j[at] != '{') return;
    std::size_t pos = at + 1;
    while (pos < j.size() && j[pos] == '"') {
        const std::size_t key_end = skip_value(j, pos);
        const std::string_view key = j.substr(pos + 1, key_end - pos - 2);
        const std::size_t value = key_end + 1;  // past ':'
        const std::size_t value_end = skip_value(j, value);
        f(key, {value, value_end});
        pos = value_end < j.size() && j[value_end] == ',' ? value_end + 1 : value_end;
    }
}

// Calls `f(element)` for each element of the array at `at`.
void for_each_element(std::string_view j, std::size_t at, const std::function<void(span)>& f) {
    if (at >= j.size() || j[at] != '[') return;
    std::size_t pos = at + 1;
    while (pos < j.size() && j[pos] != ']') {
        const std::size_t end = skip_value(j, pos);
        f({pos, end});
        pos = end < j.size() && j[end] == ',' ? end + 1 : end;
    }
}

struct edit {
    span where;
    std::string raw;
};

std::string apply_edits(std::string_view j, std::vector<edit> edits) {
    std::string out;
    std::size_t from = 0;
    for (const auto& e : edits) {  // made in document order
        out.append(j.substr(from, e.where.begin - from));
        out += e.raw;
        from = e.where.end;
    }
    out.append(j.substr(from));
    return out;
}

// "YYYY-MM-DDTHH:MM:SS" of a served ISO time, restyled; nullopt when it is not one.
std::string restyle(std::string_view iso_date_time, time_style style) {
    std::string t(iso_date_time.substr(0, 19));
    switch (style) {
    case time_style::as_is: return std::string(iso_date_time);
    case time_style::zone_less: return t;
    case time_style::spaced:
        if (t.size() > 10) t[10] = ' ';
        return t;
    case time_style::blank: return {};
    }
    return t;
}

std::string from_epoch_ms(std::string_view digits) {
    long long ms = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') return std::string(digits);
        ms = ms * 10 + (c - '0');
    }
    using namespace std::chrono;
    const sys_seconds t = floor<seconds>(sys_time<milliseconds>(milliseconds(ms)));
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss hms{t - day};
    char text[32];
    std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return text;
}

// Appended, not "\"" + std::string(s): GCC 12 -O3 -Wrestrict false positive (see faults.cpp).
std::string in_quotes(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out += s;
    out += '"';
    return out;
}

}  // namespace

std::string reshape_purchase(std::string_view json, std::size_t index, const item_modes& modes) {
    const bool times = modes.times != time_style::as_is && (!modes.time_item || *modes.time_item == index);
    const bool unreadable = modes.unreadable_purchase == index;
    if (!times && !unreadable) return std::string(json);
    std::vector<edit> edits;
    for_each_member(json, 0, [&](std::string_view key, span value) {
        if (times && (key == "order_time" || key == "start_time" || key == "expire_time") && json[value.begin] == '"') {
            const auto text = json.substr(value.begin + 1, value.end - value.begin - 2);
            edits.push_back({value, in_quotes(restyle(text, modes.times))});
        } else if (unreadable && key == "quota_left") {
            edits.push_back({value, "\"12\""});
        }
    });
    return apply_edits(json, std::move(edits));
}

std::string reshape_orders(std::string_view body, const item_modes& modes) {
    if (!modes.touches_orders()) return std::string(body);
    std::vector<edit> edits;
    std::size_t index = 0;
    for_each_member(body, 0, [&](std::string_view key, span groups) {
        if (key != "resources") return;
        for_each_element(body, groups.begin, [&](span group) {
            for_each_member(body, group.begin, [&](std::string_view group_key, span items) {
                if (group_key != "resources") return;
                for_each_element(body, items.begin, [&](span item) {
                    const bool times =
                        modes.times != time_style::as_is && (!modes.time_item || *modes.time_item == index);
                    const bool unreadable = modes.unreadable_resource == index;
                    for_each_member(body, item.begin, [&](std::string_view field, span value) {
                        const auto raw = body.substr(value.begin, value.end - value.begin);
                        if (times && (field == "create_time" || field == "expire_time") && raw != "null") {
                            edits.push_back({value, in_quotes(restyle(from_epoch_ms(raw), modes.times))});
                        } else if (unreadable && field == "resource_size") {
                            edits.push_back({value, "\"x\""});
                        }
                    });
                    ++index;
                });
            });
        });
    });
    return apply_edits(body, std::move(edits));
}

std::string replace_member(std::string_view body, std::string_view key, std::string_view raw) {
    std::vector<edit> edits;
    for_each_member(body, 0, [&](std::string_view k, span value) {
        if (k == key && edits.empty()) edits.push_back({value, std::string(raw)});
    });
    return apply_edits(body, std::move(edits));
}

std::string insert_before_member(std::string_view body, std::string_view key, std::string_view raw) {
    const std::string needle = in_quotes(key) + ":";
    std::vector<edit> edits;
    for_each_member(body, 0, [&](std::string_view k, span value) {
        if (k == key && edits.empty()) {
            const std::size_t at = value.begin - needle.size();
            edits.push_back({{at, at}, needle + std::string(raw) + ","});
        }
    });
    return apply_edits(body, std::move(edits));
}

std::string null_first_entry(std::string_view body) {
    std::vector<edit> edits;
    for_each_member(body, 0, [&](std::string_view key, span groups) {
        if (key != "resources") return;
        for_each_element(body, groups.begin, [&](span group) {
            if (!edits.empty()) return;
            for_each_member(body, group.begin, [&](std::string_view group_key, span items) {
                if (group_key == "resources") edits.push_back({items, "null"});
            });
        });
    });
    return apply_edits(body, std::move(edits));
}

}  // namespace subsync::emulator::detail
