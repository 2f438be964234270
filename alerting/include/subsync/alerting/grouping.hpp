#pragma once
// Grouping: which pending notifications of a sink go out together, and when (Alertmanager's
// group_by / group_wait / group_interval), and the group notification's payload.
// docs/alert-delivery.md "Grouping".

#include <subsync/alerting/outbox.hpp>
#include <subsync/config/config.hpp>

#include <boost/system/result.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::alerting {

/// One notification to a sink: a group's alerts that go out together.
struct group_notification {
    std::int64_t batch = 0;  ///< its first seq: names it in alert_deliveries and alert_attempts
    std::string key;         ///< "account=prod,kind=expiring"; "" for the single group of group_by = []
    std::vector<std::pair<std::string, std::string>> labels;  ///< group_by's labels and their values
    std::string idempotency_key;  ///< the same on every attempt, across restarts
    std::vector<notification> alerts;  ///< most urgent first
    int fresh = 0, repeated = 0, resolved = 0;  ///< new firing, repeated firing, resolved alerts
    std::string payload;  ///< {"group": {…}, "alerts": [payloads]}: what webhook, jsonl and exec send ("" for
                          ///< sinks that do not read it: alert_sink::needs_payload)
};

/// The group key of a pending delivery under `by`: "label=value" pairs joined by ",", in
/// `by`'s order (values percent-encode "%", "," and "="). The `item` label's value is the alert
/// itself, "account/source/item/kind/threshold": `group_by = ["item"]` is one notification per alert.
[[nodiscard]] std::string group_key(const pending_delivery& d, std::span<const config::group_label> by);
/// The same, appended to `key`.
void append_group_key(std::string& key, const pending_delivery& d, std::span<const config::group_label> by);

/// Whether `a` goes before `b` inside a notification: critical first, firing before resolved,
/// then queue order.
[[nodiscard]] bool more_urgent(config::severity severity_a, alert_state state_a, std::int64_t seq_a,
                               config::severity severity_b, alert_state state_b, std::int64_t seq_b) noexcept;

/// One group notification a sink owes.
struct planned_notification {
    std::int64_t batch = 0;
    std::string key;
    std::vector<std::int64_t> seqs;  ///< its members, most urgent first
    bool assigned = false;           ///< grouped in an earlier pass (alert_deliveries.batch is set)
    std::int64_t attempts = 0;
    epoch_ms due = 0;  ///< when it may go: grouping timers, or the retry backoff of an earlier attempt
    bool retrying = false;  ///< an attempt failed: the sink's head of line waits for it
};

/// Plans a sink's notifications from its pending deliveries, fed one at a time in seq order:
/// it keeps 16 bytes per alert and one key per group, not the rows (a sink may owe 100,000).
class notification_planner {
public:
    explicit notification_planner(const config::grouping& g);
    void add(const pending_delivery& r);
    /// The plans of what was added (as plan_notifications says); empties the planner.
    [[nodiscard]] std::vector<planned_notification> finish(
        const std::function<std::optional<epoch_ms>(const std::string&)>& last_delivered);

private:
    struct member {
        std::int64_t seq = 0;
        config::severity severity = config::severity::warning;
        alert_state state = alert_state::firing;
    };
    struct group {
        std::int64_t first_seq = 0;
        epoch_ms oldest = 0;
        std::vector<member> members;
    };
    config::grouping g_;
    std::map<std::int64_t, planned_notification> assigned_;  ///< grouped in an earlier pass: sent as it was
    std::map<std::string, group> fresh_;
    std::string key_;
};

/// Plans a sink's notifications from its pending deliveries (seq order). Deliveries already
/// grouped keep their group; the others are grouped by `g.by`, each group split by
/// `g.max_alerts` (most urgent first). A group is due `g.wait` after its oldest alert, or
/// `g.interval` after `last_delivered(key)`. In queue order of each group's first alert.
[[nodiscard]] std::vector<planned_notification> plan_notifications(
    std::span<const pending_delivery> rows, const config::grouping& g,
    const std::function<std::optional<epoch_ms>(const std::string&)>& last_delivered);

/// A group notification's idempotency key: "group:" and 32 hex digits of the SHA-256 of its
/// alerts' own keys in queue order. It names the content: a retry or a restart sends the same
/// members under the same key, and a dead group that `--redeliver` groups again with alerts
/// queued since is a new notification under a new key (under the old one, a receiver that had
/// the dead attempt would drop those alerts as duplicates).
[[nodiscard]] std::string group_idempotency_key(std::span<const notification> members);

/// The group notification of `members` (as outbox::members reads them; any order), its payload
/// rendered from theirs when `with_payload`. The error says the group has no pending member.
[[nodiscard]] boost::system::result<group_notification, std::string> make_group_notification(
    const planned_notification& p, std::string_view sink, std::span<const config::group_label> by,
    std::vector<notification> members, bool with_payload = true);

}  // namespace subsync::alerting
