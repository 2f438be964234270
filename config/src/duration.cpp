#include <subsync/config/load.hpp>

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <limits>

namespace subsync::config {
namespace {

struct unit {
    std::string_view name;
    std::int64_t ms;
};

// Largest first: parse_duration() requires this order, format_duration() emits it.
constexpr std::array<unit, 5> units{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

boost::system::result<std::chrono::milliseconds, std::string> parse_duration(std::string_view text) {
    const auto fail = [&](std::string_view why) {
        return fmt::format("invalid duration \"{}\": {}", text, why);
    };
    if (text.empty()) return fail("empty; write e.g. \"30s\" or \"1h30m\"");

    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    std::int64_t total = 0;
    std::size_t next_unit = 0;  // index into units: each unit at most once, largest first
    std::size_t i = 0;
    while (i < text.size()) {
        if (!is_digit(text[i]))
            return fail(fmt::format("expected a number at \"{}\"; write e.g. \"30s\" or \"1h30m\"",
                                    text.substr(i)));
        std::int64_t number = 0;
        const std::size_t digits_begin = i;
        for (; i < text.size() && is_digit(text[i]); ++i) {
            const std::int64_t digit = text[i] - '0';
            if (number > (max - digit) / 10) return fail("too large");
            number = number * 10 + digit;
        }
        const std::size_t unit_begin = i;
        while (i < text.size() && is_alpha(text[i])) ++i;
        const std::string_view name = text.substr(unit_begin, i - unit_begin);
        if (name.empty()) {
            if (i == text.size())
                return fail(fmt::format("missing unit after {}; use ms, s, m, h or d",
                                        text.substr(digits_begin)));
            return fail(fmt::format("unexpected '{}'; fractions are not supported, write e.g. \"1h30m\"",
                                    text[i]));
        }
        std::size_t u = 0;
        while (u < units.size() && units[u].name != name) ++u;
        if (u == units.size())
            return fail(fmt::format("unknown unit \"{}\"; use ms, s, m, h or d", name));
        if (u < next_unit)
            return fail("each unit may appear once, largest first, as in \"1h30m\"");
        next_unit = u + 1;
        if (number > (max - total) / units[u].ms) return fail("too large");
        total += number * units[u].ms;
    }
    return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
    std::int64_t rest = d.count();
    if (rest == 0) return "0s";
    std::string out;
    if (rest < 0) {
        out += '-';
        // -(min) overflows; durations this large are not meaningful here, clamp by one ms.
        rest = rest == std::numeric_limits<std::int64_t>::min() ? std::numeric_limits<std::int64_t>::max()
                                                                : -rest;
    }
    for (const unit& u : units) {
        if (rest >= u.ms) {
            out += fmt::format("{}{}", rest / u.ms, u.name);
            rest %= u.ms;
        }
    }
    return out;
}

}  // namespace subsync::config
