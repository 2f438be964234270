#pragma once
// Compact JSON output for the emulator. Written by hand rather than with a JSON library so the
// bytes served are exactly the bytes the dataset holds (numbers as written, key order kept).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace subsync::emulator::detail {

/// Appends `s` as a JSON string: quotes, backslash and control characters escaped per RFC 8259
/// (\b \f \n \r \t, others \u00XX); UTF-8 passes through unchanged.
void append_string(std::string& out, std::string_view s);

/// Appends `"key":`.
void append_key(std::string& out, std::string_view key);

/// Appends `"key":"value",` — or `"key":null,` when value is empty.
void append_field(std::string& out, std::string_view key, const std::optional<std::string>& value);

/// Appends `"key":123,`.
void append_field(std::string& out, std::string_view key, std::int64_t value);

/// Replaces a trailing ',' by `close` (or appends `close` when there is none).
void close_with(std::string& out, char close);

/// `{"error_code":…,"error_msg":…,"request_id":…}`; request_id left out when empty.
std::string error_body(std::string_view code, std::string_view msg, std::string_view request_id);

}  // namespace subsync::emulator::detail
