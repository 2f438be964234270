#pragma once
// Where log lines go and how they look: plain text with a UTC time on a terminal or in a file;
// journald entries with fields (sd_journal_send) when stderr is the journal; one JSON object per
// line with `log_format = "json"`. A progress line (pages fetched / total) is drawn below the log
// when stderr is a terminal. The sync's events arrive typed (sync_log()), never parsed from text.

#include <subsync/alerting/events.hpp>
#include <subsync/config/config.hpp>
#include <subsync/sync/events.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

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

/// journald MESSAGE_IDs (docs/operations.md "journald"): `journalctl MESSAGE_ID=<id> ACCOUNT=prod`.
namespace message_ids {
inline constexpr std::string_view sync_done = "1eef985921994de3a5138be10554194b";
inline constexpr std::string_view sync_failed = "9aa85cfbadf04ff6860ff2f3f623ed28";
inline constexpr std::string_view alert_firing = "26ee7305ca6a41319a8c5a7852dbe57e";
inline constexpr std::string_view alert_resolved = "6e5ab7456cdd4cbd8f1a1a1c327a593d";
inline constexpr std::string_view delivery_dead = "2718d4158d0a47c6a2e51b384fd01b92";
}  // namespace message_ids

/// One typed field of a structured record: a JSON log member (numbers as numbers) and a
/// journald field (the key upper-cased).
struct log_field {
    std::string_view key;
    std::variant<std::string_view, std::int64_t> value;
};

/// A record with typed fields: what the sync's events and the alert deliveries log.
struct log_record {
    severity level = severity::info;
    std::string_view message_id;  ///< journald MESSAGE_ID; may be empty
    std::string message;          ///< the line a text log shows
    std::vector<log_field> fields;
};

/// Whether a record at `s` is written at all (checked before one is built).
[[nodiscard]] bool log_enabled(severity s) noexcept;

/// Writes `r` in the configured format: text, a JSON object with `r.fields` typed, or a journald
/// entry with MESSAGE, PRIORITY, MESSAGE_ID and the fields. Secrets are redacted in every one.
void write_record(const log_record& r);

/// One JSON log line for a record, without the newline: {"time","level","msg", fields…}.
[[nodiscard]] std::string json_record_line(std::chrono::system_clock::time_point t, const log_record& r);

/// The journald fields of a record ("MESSAGE=…", "PRIORITY=…", "MESSAGE_ID=…", "ACCOUNT=…", …).
[[nodiscard]] std::vector<std::string> journal_fields(const log_record& r);

/// The sync's events as log records (sync done with its run id and counts, sync failed with its
/// error kind, retries, pages at debug) and the progress line. Lives as long as the process.
[[nodiscard]] sync::sync_observer& sync_log();

/// Delivery attempts (delivered at debug, failed at warn, dead at error with the delivery-dead
/// MESSAGE_ID) and the log sink's groups (alert firing / resolved MESSAGE_IDs, KIND, ACCOUNT)
/// as records; `counted` (may be empty) also hears each attempt, for the metrics.
class alert_records final : public alerting::alerting_observer {
public:
    explicit alert_records(std::function<void(const alerting::delivery_attempt&)> counted = {})
        : counted_(std::move(counted)) {}
    void on(const alerting::delivery_attempt& a) override;
    void on(std::string_view sink, const alerting::group_notification& g) override;

private:
    std::function<void(const alerting::delivery_attempt&)> counted_;
};

/// Clears the progress line, if one is drawn (before printing results to the terminal).
void clear_progress();

}  // namespace subsync::daemon
