#pragma once
// The little JSON the daemon writes (log lines, run summaries, /healthz): strings only need escaping.

#include <string>
#include <string_view>

namespace subsync::daemon {

/// Appends `s` as a JSON string literal, quotes included: control characters escaped, and bytes
/// that are not valid UTF-8 replaced by U+FFFD, so the output always parses.
void append_json_string(std::string& out, std::string_view s);

/// `s` as a JSON string literal.
[[nodiscard]] std::string json_string(std::string_view s);

}  // namespace subsync::daemon
