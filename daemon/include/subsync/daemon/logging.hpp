#pragma once
// Where log lines go and how they look: plain text with a UTC time on a terminal or in a file;
// `<N>` syslog priority prefixes and no time when stderr is the journal (journald stamps lines
// itself); one JSON object per line with `log_format = "json"`. A progress line (pages fetched /
// total) is drawn below the log when stderr is a terminal.

#include <subsync/config/config.hpp>
#include <subsync/daemon/log_events.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace subsync::daemon {

/// The severities the daemon logs at, lowest first (spdlog's debug..error).
enum class severity { debug, info, warn, error };

struct log_settings {
    config::log_level level = config::log_level::info;  ///< from the config file
    config::log_format format = config::log_format::text;
    int verbosity = 0;  ///< -v each +1 (more), -q each -1 (less), applied on top of `level`
};

/// The level `s` asks for: the config level moved by -v / -q, clamped to debug..error.
[[nodiscard]] severity effective_level(const log_settings& s) noexcept;

/// True when $JOURNAL_STREAM names the file stderr is (device:inode), i.e. stderr goes to journald.
[[nodiscard]] bool stderr_is_journal();

/// The journal's priority prefix for `s` (sd-daemon.h: `<7>` debug … `<3>` error).
[[nodiscard]] std::string_view journal_prefix(severity s) noexcept;

/// One JSON log line without the newline: {"time":…,"level":…,"msg":…} followed by every
/// `key=value` field of the message as a string member (fields named time/level/msg are skipped).
[[nodiscard]] std::string json_log_line(std::chrono::system_clock::time_point t, severity s, std::string_view message);

/// Installs the process-wide logger on stderr. Safe to call again (reload, or once the config
/// is known): the new settings replace the old ones.
void setup_logging(const log_settings& s);

/// Receives every sync event parsed from the log (see log_events.hpp), whatever the level;
/// pass an empty function to stop. Called on the thread that logged.
void set_sync_event_listener(std::function<void(const sync_event&)> listener);

/// Clears the progress line, if one is drawn (before printing results to the terminal).
void clear_progress();

}  // namespace subsync::daemon
