#include "json_writer.hpp"

#include <array>

namespace subsync::emulator::detail {

void append_string(std::string& out, std::string_view s) {
    static constexpr std::array<char, 16> hex{'0', '1', '2', '3', '4', '5', '6', '7',
                                              '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
    out.push_back('"');
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (u < 0x20) {
                out += "\\u00";
                out.push_back(hex[u >> 4U]);
                out.push_back(hex[u & 0x0FU]);
            } else {
                out.push_back(c);  // UTF-8 bytes (>= 0x80) are kept as they are
            }
        }
    }
    out.push_back('"');
}

void append_key(std::string& out, std::string_view key) {
    append_string(out, key);
    out.push_back(':');
}

void append_field(std::string& out, std::string_view key, const std::optional<std::string>& value) {
    append_key(out, key);
    if (value) {
        append_string(out, *value);
    } else {
        out += "null";
    }
    out.push_back(',');
}

void append_field(std::string& out, std::string_view key, std::int64_t value) {
    append_key(out, key);
    out += std::to_string(value);
    out.push_back(',');
}

void close_with(std::string& out, char close) {
    if (!out.empty() && out.back() == ',') {
        out.back() = close;
    } else {
        out.push_back(close);
    }
}

std::string error_body(std::string_view code, std::string_view msg, std::string_view request_id) {
    std::string out = "{";
    append_key(out, "error_code");
    append_string(out, code);
    out.push_back(',');
    append_key(out, "error_msg");
    append_string(out, msg);
    if (!request_id.empty()) {
        out.push_back(',');
        append_key(out, "request_id");
        append_string(out, request_id);
    }
    out.push_back('}');
    return out;
}

}  // namespace subsync::emulator::detail
