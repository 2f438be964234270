#pragma once
// Where log lines go and how they look: plain text with a UTC time on a terminal or in a file;
// journald entries with fields (sd_journal_send) when stderr is the journal; one JSON object per
// line with `log_format = "json"`. A progress line (pages fetched / total) is drawn below the log
// when stderr is a terminal. The sync's events arrive typed (sync_log()), never parsed from text.

#include <subsync/alerting/events.hpp>
#include <subsync/config/config.hpp>
#include <subsync/logging/log.hpp>
#include <subsync/sync/events.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::daemon {

using logging::severity;

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

/// Installs the process-wide logger on stderr and makes it the writer of every library's
/// logging::record. Safe to call again (reload, or once the config is known): the new settings
/// replace the old ones.
void setup_logging(const log_settings& s);

// Records are written in the configured format: text, a JSON object with the fields typed
// (numbers and flags as JSON numbers and booleans), or a journald entry with MESSAGE, PRIORITY,
// MESSAGE_ID and the fields. Secrets are redacted in every one. A plain spdlog line (a config
// warning) is a record without fields.

/// One JSON log line for a record, without the newline: {"time","level","msg", fields…}.
[[nodiscard]] std::string json_record_line(std::chrono::system_clock::time_point t, const logging::record& r);

/// The journald fields of a record ("MESSAGE=…", "PRIORITY=…", "MESSAGE_ID=…", "ACCOUNT=…", …).
[[nodiscard]] std::vector<std::string> journal_fields(const logging::record& r);

/// The sync's events as log records (sync done with its run id and counts, sync failed with its
/// error kind, retries, pages at debug) and the progress line. Lives as long as the process.
[[nodiscard]] sync::sync_observer& sync_log();

/// Delivery attempts and the log sink's groups as records (alerting::alerting_log); `counted`
/// (may be empty) also hears each attempt, for the metrics.
class alert_records final : public alerting::alerting_log {
public:
    explicit alert_records(std::function<void(const alerting::delivery_attempt&)> counted = {})
        : counted_(std::move(counted)) {}
    void on(const alerting::delivery_attempt& a) override;
    using alerting::alerting_log::on;

private:
    std::function<void(const alerting::delivery_attempt&)> counted_;
};

/// Clears the progress line, if one is drawn (before printing results to the terminal).
void clear_progress();

}  // namespace subsync::daemon
