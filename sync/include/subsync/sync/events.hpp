#pragma once
// What a sync reports as it goes, as typed events: metrics, the progress line, the JSON log and
// journald subscribe to a sync_observer; nothing reads log text. log_observer writes each event
// as a logging::record (its line and the same facts typed), built only when its level is on.

#include <subsync/logging/log.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/snapshot.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync {

/// Why a request is sent again.
enum class retry_reason {
    transport,       ///< the connection failed or timed out
    server_status,   ///< a retryable HTTP status (5xx, 408, …)
    throttled,       ///< HTTP 429: the rate adapts
    token_rejected,  ///< a 401 with a token that may have expired: re-authenticated once
};
[[nodiscard]] std::string_view to_string(retry_reason r) noexcept;

/// A page of a listing arrived: `done` of `total` known so far.
struct page_fetched {
    std::string_view account;
    std::string_view source;
    int done = 0;
    int total = 0;
    page_reading reading = page_reading::parsed;
};

/// A request is sent again after `wait`.
struct request_retried {
    std::string_view account;
    std::string_view source;
    std::string_view where;       ///< "page=7", "token", …
    retry_reason reason = retry_reason::transport;
    int attempt = 0;              ///< the attempt about to be made (not for throttled / token_rejected)
    int max_attempts = 0;
    int throttled = 0;            ///< 429s of this request so far
    double rate = 0;              ///< requests per second the endpoint is held to now (throttled)
    std::chrono::milliseconds wait{0};
    std::string_view request_id;
    std::string_view detail;      ///< what failed, for a human
};

/// One (account, source) finished: applied (ok or incomplete) or failed (`error` set).
struct source_finished {
    const run_record& run;
    std::optional<error_kind> error;  ///< why it failed; none when it applied
    std::chrono::milliseconds elapsed{0};
};

/// A run queued alert notifications, inside its transaction: heard once it committed (a dry
/// run's roll back and are not heard), before the run's source_finished.
struct alerts_queued {
    const run_record& run;  ///< run.queued: the counts by kind, firing and resolved
};

/// Receives a sync's events on the sync's thread. Every member has a do-nothing default.
class sync_observer {
public:
    virtual ~sync_observer() = default;
    virtual void on(const page_fetched&) {}
    virtual void on(const request_retried&) {}
    virtual void on(const alerts_queued&) {}
    virtual void on(const source_finished&) {}
};

/// Each event as a log record: page fetched at debug, a retry at warn, sync done at info (with
/// the sync-done MESSAGE_ID, its run id and counts), sync failed at error (sync-failed, with its
/// error kind). The fields view `e`: write the record before `e` goes.
[[nodiscard]] logging::record record_of(const page_fetched& e);
[[nodiscard]] logging::record record_of(const request_retried& e);
[[nodiscard]] logging::record record_of(const source_finished& e);
/// Queued alerts at debug: one record per run, with the firing and resolved totals.
[[nodiscard]] logging::record record_of(const alerts_queued& e);
/// The warning written before an incomplete listing's sync-done record.
[[nodiscard]] logging::record incomplete_record_of(const run_record& r);

/// Writes each event's record when its level is on. The engine's default; the daemon adds the
/// progress line on top.
class log_observer : public sync_observer {
public:
    void on(const page_fetched& e) override;
    void on(const request_retried& e) override;
    void on(const alerts_queued& e) override;
    void on(const source_finished& e) override;
};

/// Hands each event to every observer in turn.
class observer_list final : public sync_observer {
public:
    explicit observer_list(std::vector<sync_observer*> observers) : observers_(std::move(observers)) {}
    void on(const page_fetched& e) override;
    void on(const request_retried& e) override;
    void on(const alerts_queued& e) override;
    void on(const source_finished& e) override;

private:
    std::vector<sync_observer*> observers_;
};

}  // namespace subsync::sync
