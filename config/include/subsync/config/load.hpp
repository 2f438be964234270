#pragma once

#include <subsync/config/config.hpp>

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

namespace subsync::config {

/// Why a config file was rejected: one `FILE:LINE: KEY: what is wrong` line per problem,
/// sorted by line and joined with '\n'. KEY is a dotted path; array indices are 0-based
/// (`account[0].auth.token_env`). A TOML syntax error is reported as `FILE:LINE: syntax error: ...`.
struct config_error {
    std::string message;
};

/// Found by ADL from result<T, config_error>::value(): throws std::runtime_error(e.message).
[[noreturn]] void throw_exception_from_error(const config_error& e, const boost::source_location& loc);

/// Reads and validates `file`; an unreadable file is an error naming the path and the errno text.
boost::system::result<config, config_error> load_config(const std::filesystem::path& file);

/// Validates TOML text as if read from `source_name`: messages name it, relative paths resolve
/// against its directory, and a non-empty tls.ca_file must be a readable file now.
boost::system::result<config, config_error> parse_config(std::string_view toml_text,
                                                         const std::filesystem::path& source_name);

/// Parses `https://host[:port][/base/path]` or `http://...` (host: DNS name, IPv4, or `[v6]`;
/// the brackets are dropped in endpoint::host). The error is a sentence naming the input.
/// Note: read the value with `*r` after checking; Boost 1.81 cannot `.value()`-throw a std::string.
boost::system::result<endpoint, std::string> parse_endpoint(std::string_view url);

/// parse_endpoint() for an alert sink's URL: a query (`?a=b`) is accepted and kept in
/// endpoint::query, endpoint::text is display_url(), and the error never repeats the input,
/// whose path or query may be a secret (a Slack-style webhook).
boost::system::result<endpoint, std::string> parse_sink_url(std::string_view url);

/// How a sink URL is shown anywhere (logs, database, exports, payloads): scheme, host and
/// port, and "/…" in place of any path or query: `https://hooks.example.com/…`.
[[nodiscard]] std::string display_url(const endpoint& ep);

/// Parses "500ms", "30s", "15m", "1h", "2d" and descending combinations such as "1h30m".
/// The error is a sentence naming the input.
boost::system::result<std::chrono::milliseconds, std::string> parse_duration(std::string_view text);

/// The shortest form parse_duration() reads back: 90000ms -> "1m30s", 0 -> "0s".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace subsync::config
