#pragma once
// The transactional outbox: the one owner of alert_outbox (what was queued), alert_deliveries
// (what each sink owes, and the group notification each went out in), alert_batches (each group
// notification's status: pending, delivered or dead) and alert_attempts (every try).
// No other code runs SQL on those tables. docs/alert-delivery.md, docs/schema.md.

#include <subsync/alerting/notification.hpp>
#include <subsync/config/config.hpp>
#include <subsync/sync/records.hpp>

#include <boost/system/result.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::alerting {

using sync::epoch_ms;

enum class delivery_status { pending, delivered, dead };
/// What one attempt at one group notification came to.
enum class attempt_outcome { delivered, failed, dead };

[[nodiscard]] std::string_view to_string(delivery_status s) noexcept;
[[nodiscard]] std::string_view to_string(attempt_outcome o) noexcept;
/// The outcome of a stored name; nullopt for another name.
[[nodiscard]] std::optional<attempt_outcome> attempt_outcome_named(std::string_view s) noexcept;

/// One alert notification as the state machine queues it: one alert_outbox row. The JSON object
/// a sink receives (docs/alerts.md "Notification format") is rendered from these fields when it
/// is delivered, not stored: it repeated them at three times their size.
struct queued_notification {
    std::string idempotency_key;
    epoch_ms created_at = 0;
    std::optional<std::int64_t> run_id;
    std::string account, source, item_key;
    config::alert_kind kind = config::alert_kind::expiring;
    std::string threshold;
    alert_state state = alert_state::firing;
    config::severity severity = config::severity::warning;
    epoch_ms since = 0;                   ///< when this firing episode began
    std::optional<epoch_ms> resolved_at;  ///< resolved notifications only
    std::string reason;                   ///< why it resolved; empty while firing
    std::string summary;
    std::string detail;                   ///< JSON object of the values behind it; empty = {}
    std::int64_t number = 0;              ///< which notification of its episode
};

/// A sink's pending delivery, without its payload: what grouping decides on.
struct pending_delivery {
    std::int64_t seq = 0;
    std::int64_t attempts = 0;
    epoch_ms next_attempt_at = 0;
    epoch_ms created_at = 0;
    std::optional<std::int64_t> batch;  ///< the group notification it was put in; none before it was grouped
    std::string account, source, item_key;
    std::string kind;  ///< as stored: a kind this binary may not know still groups
    std::string threshold;
    config::severity severity = config::severity::warning;
    alert_state state = alert_state::firing;
};

/// One attempt at one group notification (`batch`), recorded for every member.
struct batch_outcome {
    std::int64_t batch = 0;
    attempt_outcome outcome = attempt_outcome::delivered;
    std::int64_t attempts = 0;          ///< the group's attempts so far, this one included
    epoch_ms at = 0;
    std::int64_t latency_ms = 0;
    epoch_ms next_attempt_at = 0;       ///< failed only
    std::string error;                  ///< empty when delivered; never a secret
};

/// Deliveries of one sink, by status.
struct sink_counts {
    std::string sink;
    std::int64_t pending = 0, delivered = 0, dead = 0;
};

/// One recorded attempt, newest first, for `subsyncd alerts --deliveries`.
struct attempt_record {
    std::int64_t batch = 0;  ///< the group notification's first seq
    epoch_ms time = 0;
    attempt_outcome outcome = attempt_outcome::failed;
    std::int64_t latency_ms = 0;
    std::string error;
    std::string what;  ///< "kind state account/item" of its first alert, or "?" once pruned
    std::string group_key;  ///< "account=prod,kind=expiring" ("" under group_by = [] and for Alertmanager)
    bool group_known = false;  ///< its alert_batches row is there: false once --redeliver or pruning dissolved it
    std::int64_t alerts = 0;  ///< the alerts of the group notification of that seq as it is now
};

class outbox {
public:
    /// `db` is borrowed (schema v4 or later). Statements are prepared on first use and kept.
    explicit outbox(SQLite::Database& db);
    ~outbox();
    outbox(const outbox&) = delete;
    outbox& operator=(const outbox&) = delete;

    // ---- inside the apply's transaction (the state machine) --------------------------------

    /// Queues `n` for every sink in `sinks`, due at once, and returns its seq. Nothing checks
    /// that its idempotency key is new: the state machine derives a new one for every
    /// notification (docs/alerts.md), and a UNIQUE index on random keys cost a first sync more
    /// than any other index (schema 7).
    std::int64_t enqueue(const queued_notification& n, std::span<const std::string> sinks);
    /// As enqueue(), but the `alert_deliveries` rows wait in memory (up to 500 per sink) and go
    /// in with one statement per sink and batch, when flush_deliveries() runs or a sink's batch
    /// is full. flush_deliveries() must run in the same transaction, before it commits; if rows
    /// still wait when the outbox is destroyed with no exception unwinding, the process aborts,
    /// so that transaction never commits (nothing is lost) and the missing flush is found.
    std::int64_t enqueue_deferred(const queued_notification& n, std::span<const std::string> sinks);
    /// Writes the deliveries enqueue_deferred() keeps waiting.
    void flush_deliveries();

    // ---- the dispatcher ------------------------------------------------------------------

    /// Pending deliveries of `sink` in seq order, at most `limit`, one at a time into `f` (the
    /// row is reused: copy what you keep; a sink may owe 100,000).
    void for_each_pending(std::string_view sink, std::int64_t limit,
                          const std::function<void(const pending_delivery&)>& f) const;
    /// Puts `seqs` of `sink` into group notification `batch` (its first member's seq) under
    /// `group_key`, in one transaction: a restart sends that same group again.
    void assign(std::string_view sink, std::int64_t batch, std::string_view group_key,
                std::span<const std::int64_t> seqs);
    /// One group notification for assign().
    struct group_assignment {
        std::int64_t batch = 0;
        std::string_view key;
        std::span<const std::int64_t> seqs;
    };
    /// As assign(), every group in one transaction: one commit, and each page of
    /// alert_deliveries written once, however many groups a pass sends.
    void assign(std::string_view sink, std::span<const group_assignment> groups);
    /// Undoes assign() for group notifications of `sink` never attempted: their members are
    /// ungrouped again, to be grouped afresh with what arrives meanwhile. One transaction.
    void release(std::string_view sink, std::span<const std::int64_t> batches);
    /// The members of one group notification in the order they were assigned (seq order), each
    /// with its payload rendered when `render` (else "", unless stored by schema 4). The error
    /// names a member queued by schema 4 or before whose stored payload cannot be read (it never
    /// will be).
    [[nodiscard]] boost::system::result<std::vector<notification>, std::string> members(std::string_view sink,
                                                                                      std::int64_t batch,
                                                                                      bool render = true) const;
    /// When a group notification of `group_key` was last delivered to `sink`.
    [[nodiscard]] std::optional<epoch_ms> last_delivered(std::string_view sink, std::string_view group_key) const;
    /// Records the outcomes of group notifications for every member, in one transaction.
    void record(std::string_view sink, std::span<const batch_outcome> outcomes);

    // ---- the CLI, the metrics, retention --------------------------------------------------

    [[nodiscard]] std::int64_t count(std::string_view sink, delivery_status status) const;
    /// Every sink that has deliveries on record, with its counts, by name.
    [[nodiscard]] std::vector<sink_counts> counts() const;
    /// The latest `limit` attempts of `sink`, newest first.
    [[nodiscard]] std::vector<attempt_record> attempts(std::string_view sink, std::int64_t limit) const;
    /// Dead deliveries of `sink` (every sink when empty) become pending again, ungrouped, with
    /// no attempts, due at once, in one transaction. Returns how many.
    std::int64_t requeue_dead(std::string_view sink);
    /// Deletes notifications created before `cutoff` that no sink still owes, and attempts
    /// older than it (inside the caller's transaction). Returns the rows deleted.
    std::int64_t prune(epoch_ms cutoff);

private:
    /// The alert_outbox row of `n`; returns its seq.
    std::int64_t insert_notification(const queued_notification& n);
    struct waiting_deliveries {
        std::string sink;
        std::string seqs = "[";  ///< a JSON array without its "]"
        std::size_t rows = 0;
    };
    void flush_deliveries(waiting_deliveries& w);

    SQLite::Database& db_;
    int unwinding_ = 0;  ///< std::uncaught_exceptions() when constructed
    std::optional<SQLite::Statement> insert_, deliver_many_;
    std::vector<waiting_deliveries> waiting_;  ///< per sink, what enqueue_deferred() keeps waiting
    std::size_t waiting_rows_ = 0;
    std::optional<SQLite::Statement> new_batch_, pin_, unbatch_, unpin_, delivered_, dead_, failed_, attempt_;
    mutable std::optional<SQLite::Statement> pending_, members_, last_delivered_, count_;
};

}  // namespace subsync::alerting
