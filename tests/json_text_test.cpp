// JSON string escaping for exports and the change feed (append_json_string, columns.hpp),
// against the simple reference it replaced.

#include <subsync/sync/columns.hpp>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace subsync::sync {
namespace {
namespace {

// What append_json_string was before it appended runs: the reference.
std::string json_reference(std::string_view s) {
    auto utf8_length = [&](std::size_t i) -> std::size_t {
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
    };
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size();) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u >= 0x80) {
            const std::size_t n = utf8_length(i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (u) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (u < 0x20 || u == 0x7F) {
                    out += "\\u00";
                    out += hex[u >> 4];
                    out += hex[u & 0xf];
                } else {
                    out += static_cast<char>(u);
                }
        }
        ++i;
    }
    out += '"';
    return out;
}

}  // namespace

TEST(Json, StringsAreEscaped) {
    struct json_case {
        const char* name;
        std::string input;
        std::string expected;
    };
    const json_case cases[] = {
        {"empty", "", R"("")"},
        {"plain", "abc", R"("abc")"},
        {"quote and backslash", R"(a"b\c)", R"("a\"b\\c")"},
        {"escapes only", "\"\\\n\r\t\b\f", R"("\"\\\n\r\t\b\f")"},
        {"controls and DEL", std::string("\x01x\x1f\x7f", 4), R"("\u0001x\u001f\u007f")"},
        {"nul", std::string("a\0b", 3), R"("a\u0000b")"},
        {"utf-8 kept", "分组 🚀 é", "\"分组 🚀 é\""},
        {"lone continuation", "a\x80z", "\"a\xEF\xBF\xBDz\""},
        {"overlong", "\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"surrogate", "\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"truncated at end", "ok\xE2\x82", "\"ok\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"above U+10FFFF", "\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"max code point", "\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""},
        {"escape after utf-8", "é\"", "\"é\\\"\""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        std::string out = "x";
        append_json_string(out, c.input);
        EXPECT_EQ(out, "x" + c.expected);
        EXPECT_EQ(json_reference(c.input), c.expected);
    }
}

TEST(Json, StringsMatchTheReferenceOnRandomBytes) {
    std::mt19937_64 rng(9);
    // Biased towards bytes that matter: escapes, controls, UTF-8 lead and continuation bytes.
    const std::string interesting =
        std::string("\"\\\n\r\t\b\f\x01\x1f\x7f\x80\xBF\xC2\xDF\xE0\xED\xEF\xF0\xF4\xF5\xA0\x9F\x90\x8F", 24) +
        std::string(1, '\0');
    std::uniform_int_distribution<int> len(0, 40), byte(0, 255), pick(0, 3);
    std::uniform_int_distribution<std::size_t> which(0, interesting.size() - 1);
    for (int i = 0; i < 100'000; ++i) {
        std::string s(static_cast<std::size_t>(len(rng)), ' ');
        for (char& ch : s) {
            const int p = pick(rng);
            if (p == 0) ch = interesting[which(rng)];
            else if (p == 1) ch = static_cast<char>(byte(rng));
            else ch = static_cast<char>('a' + byte(rng) % 26);
        }
        std::string out;
        append_json_string(out, s);
        if (out != json_reference(s)) {
            ADD_FAILURE() << "case " << i << " differs";
            break;
        }
    }
}

}  // namespace
}  // namespace subsync::sync
