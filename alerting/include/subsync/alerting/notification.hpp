#pragma once
// One alert notification as a sink receives it (docs/alerts.md "Notification format"): read from
// its alert_outbox row when its group goes out, and its JSON object rendered from those fields.

#include <subsync/config/config.hpp>
#include <subsync/sync/records.hpp>

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::alerting {

using sync::epoch_ms;

/// Whether a notification says an alert fires or resolved.
enum class alert_state { firing, resolved };
[[nodiscard]] constexpr std::string_view to_string(alert_state s) noexcept {
    return s == alert_state::firing ? "firing" : "resolved";
}
[[nodiscard]] constexpr std::optional<alert_state> alert_state_named(std::string_view s) noexcept {
    if (s == to_string(alert_state::firing)) return alert_state::firing;
    if (s == to_string(alert_state::resolved)) return alert_state::resolved;
    return std::nullopt;
}

struct notification {
    std::int64_t seq = 0;  ///< alert_outbox.seq
    std::string idempotency_key;
    std::string kind;  ///< as stored: a kind this binary may not know is still sent
    config::severity severity = config::severity::warning;
    alert_state state = alert_state::firing;
    std::string account, source, id, threshold;
    epoch_ms since = 0;
    std::optional<epoch_ms> resolved_at;
    std::string reason;  ///< empty when null (every reason the state machine gives is a word)
    std::string summary;
    std::string values = "{}";  ///< the "values" object, compact JSON
    std::int64_t number = 1;    ///< "notification": 1, 2, … within one episode
    epoch_ms created_at = 0;
    std::string payload;  ///< the JSON object exactly as it is sent
};

/// Renders `n`'s JSON object from its fields into n.payload (docs/alerts.md "Notification format").
void render_payload(notification& n);

/// Reads a payload stored whole by schema 4 and before, which is sent as it was stored; the
/// error names the field.
[[nodiscard]] boost::system::result<notification, std::string> parse_notification(std::int64_t seq,
                                                                                   std::string_view payload);

/// The members of a "values" object: strings as they are, other JSON values as compact JSON
/// text. Empty when `values` is not a JSON object.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> flatten_values(std::string_view values);

}  // namespace subsync::alerting
