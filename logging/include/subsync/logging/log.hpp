#pragma once
// A log event as a record: a severity, the line a person reads and the same facts as typed
// fields. Libraries write records; the process decides how they look (the daemon: text, a JSON
// object with numbers as numbers, or a journald entry with upper-cased fields). Nothing ever
// parses the text back into fields.
//
//     logging::info("short pages", {{"account", name}, {"page_size", 500}, {"served", 100}}, "...");
//     // text: short pages account=prod page_size=500 served=100: ...
//     // JSON: {"time":…,"level":"info","msg":"short pages …","account":"prod","page_size":500,…}
//
// An event below the configured level costs one comparison: no text, no fields, no allocation.

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace subsync::logging {

/// How much a record matters, lowest first.
enum class severity { debug, info, warn, error };

[[nodiscard]] std::string_view to_string(severity s) noexcept;

/// One typed field. A view: the value must outlive the write (build records in the call).
/// Text, a whole number or a flag; anything else (a double, a char, an enum, a pointer, a path,
/// nullptr) does not compile rather than turn into a flag: name it with to_string() first.
struct field {
    std::string_view key;
    std::variant<std::string_view, std::int64_t, bool> value;

    field(std::string_view k, std::string_view v) : key(k), value(v) {}
    field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
    field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
    template <std::integral I>
        requires(!std::same_as<I, bool> && !std::same_as<I, char>)
    field(std::string_view k, I v) : key(k), value(static_cast<std::int64_t>(v)) {}
    template <std::same_as<bool> B>
    field(std::string_view k, B v) : key(k), value(v) {}
    field(std::string_view, std::nullptr_t) = delete;
    template <class T>
        requires(!std::convertible_to<T, std::string_view> && !std::integral<T>)
    field(std::string_view, T) = delete;
};

/// journald MESSAGE_IDs of the events an operator filters on (docs/operations.md "journald"):
/// `journalctl MESSAGE_ID=<id> ACCOUNT=prod`. Stable across versions.
namespace message_ids {
inline constexpr std::string_view sync_done = "1eef985921994de3a5138be10554194b";
inline constexpr std::string_view sync_failed = "9aa85cfbadf04ff6860ff2f3f623ed28";
inline constexpr std::string_view alert_firing = "26ee7305ca6a41319a8c5a7852dbe57e";
inline constexpr std::string_view alert_resolved = "6e5ab7456cdd4cbd8f1a1a1c327a593d";
inline constexpr std::string_view delivery_dead = "2718d4158d0a47c6a2e51b384fd01b92";
}  // namespace message_ids

/// One event.
struct record {
    severity level = severity::info;
    std::string_view message_id;  ///< a journald MESSAGE_ID (docs/operations.md); may be empty
    std::string message;          ///< the line a text log shows
    std::vector<field> fields;    ///< the same facts, typed
};

/// `what`, then each field as key=value (a value with a space, a quote, an `=` or nothing in it
/// is quoted: value_text()), then ": " and `then` if given.
[[nodiscard]] std::string line(std::string_view what, std::span<const field> fields, std::string_view then = {});

/// A text value as line() writes it: as is, or quoted with `"`, `\`, newlines and tabs escaped.
[[nodiscard]] std::string value_text(std::string_view v);

/// Sets the process-wide level (spdlog's default logger): below it, nothing is built or written.
void set_level(severity s) noexcept;

/// Whether records at `s` are written (the process-wide level).
[[nodiscard]] bool enabled(severity s) noexcept;

/// Hands `r` to the installed writer, or to spdlog as text when none is installed.
void write(const record& r);

/// Where records go: the daemon installs its console (text, JSON, journald). The writer must
/// live as long as the process and take records from any thread.
using writer = void (*)(const record&);
void set_writer(writer w) noexcept;

/// Writes an event at `s` if that level is on: the message is line(what, fields, then).
void event(severity s, std::string_view what, std::initializer_list<field> fields, std::string_view then = {});

inline void debug(std::string_view what, std::initializer_list<field> fields = {}, std::string_view then = {}) {
    if (enabled(severity::debug)) event(severity::debug, what, fields, then);
}
inline void info(std::string_view what, std::initializer_list<field> fields = {}, std::string_view then = {}) {
    if (enabled(severity::info)) event(severity::info, what, fields, then);
}
inline void warn(std::string_view what, std::initializer_list<field> fields = {}, std::string_view then = {}) {
    if (enabled(severity::warn)) event(severity::warn, what, fields, then);
}
inline void error(std::string_view what, std::initializer_list<field> fields = {}, std::string_view then = {}) {
    if (enabled(severity::error)) event(severity::error, what, fields, then);
}

}  // namespace subsync::logging
