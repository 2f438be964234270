#pragma once
// The alert dispatcher: groups each sink's pending notifications (grouping.hpp) and sends one
// notification per group, in queue order per sink (head-of-line: a failing one blocks its sink
// until its retry time), sinks concurrently, recording every attempt in the outbox.
// At-least-once: a group is marked delivered only after the sink confirmed.
// docs/alert-delivery.md.

#include <subsync/alerting/events.hpp>
#include <subsync/alerting/grouping.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/alerting/sinks.hpp>

#include <SQLiteCpp/Database.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace subsync::alerting {

/// What one sink did in one dispatch.
struct sink_dispatch {
    std::string sink;
    int delivered = 0;  ///< group notifications delivered
    int failed = 0;  ///< attempts that failed and will be retried
    int dead = 0;    ///< group notifications dead-lettered now
    std::int64_t pending = 0;                ///< alerts still owed afterwards
    std::optional<std::int64_t> next_due;    ///< when the head may be tried again (epoch ms)
};

struct dispatch_report {
    std::vector<sink_dispatch> sinks;
    int delivered = 0, failed = 0, dead = 0;
    std::int64_t pending = 0;              ///< pending rows of configured sinks left afterwards
    std::optional<std::int64_t> next_due;  ///< the earliest next_due over the sinks
    bool cut_short = false;                ///< the deadline stopped it while something was due
};

/// Clock and randomness, injected (tests fix them; the daemon passes the wall clock).
struct dispatch_clock {
    std::function<std::int64_t()> now;  ///< epoch milliseconds
    std::function<double()> unit_random;  ///< in [0, 1): the backoff's jitter draw; empty = std::mt19937_64
};

class alert_dispatcher {
public:
    /// `db` (schema v3 or later) is borrowed and used only between awaits on the caller's loop;
    /// `cfg` is copied. Builds one sink per effective sink (effective_sinks).
    alert_dispatcher(const config::alerts_config& cfg, sink_context ctx, SQLite::Database& db, dispatch_clock clock);
    ~alert_dispatcher();
    alert_dispatcher(const alert_dispatcher&) = delete;
    alert_dispatcher& operator=(const alert_dispatcher&) = delete;

    /// Delivers every due group notification of every configured sink until none is due, or
    /// until `deadline` (no attempt starts after it; a running one is cut at it).
    boost::asio::awaitable<dispatch_report> run(std::chrono::steady_clock::time_point deadline);

    /// Alerts owed to configured sinks, and the earliest time one of their notifications is due.
    [[nodiscard]] std::pair<std::int64_t, std::optional<std::int64_t>> pending() const;


    /// Pending deliveries read per sink and plan: a larger backlog goes out over later passes.
    static constexpr std::int64_t plan_window = 100'000;

private:
    struct sink_slot;
    [[nodiscard]] std::vector<planned_notification> plan(const sink_slot& s) const;
    [[nodiscard]] std::vector<std::size_t> assign_due(const sink_slot& s, std::vector<planned_notification>& plans,
                                                      std::size_t from);
    boost::asio::awaitable<sink_dispatch> drain(sink_slot& s, std::chrono::steady_clock::time_point deadline);
    struct pass_result {
        bool sent = false;     ///< something was attempted
        bool blocked = false;  ///< a failure, a retry not yet due or the deadline stopped the pass
        std::string last_dead_error;
    };
    boost::asio::awaitable<pass_result> send(sink_slot& s, std::vector<planned_notification> plans,
                                             std::chrono::steady_clock::time_point deadline, sink_dispatch& d);
    boost::asio::awaitable<batch_outcome> attempt(sink_slot& s, const planned_notification& p,
                                                  std::chrono::steady_clock::time_point deadline);
    double draw();
    [[nodiscard]] alerting_observer& observer() const {
        return ctx_.observer != nullptr ? *ctx_.observer : default_alerting_log();
    }

    config::alerts_config cfg_;
    sink_context ctx_;
    SQLite::Database& db_;
    mutable outbox outbox_;
    dispatch_clock clock_;
    std::mt19937_64 rng_{std::random_device{}()};
    std::vector<std::unique_ptr<sink_slot>> sinks_;
    int queued_ = 0;  ///< delivery_failed notifications queued by the current pass
};

/// The sink context for a whole config: TLS trust (when a sink posts to https), the proxy.
[[nodiscard]] sink_context make_sink_context(boost::asio::any_io_executor ex, const config::config& cfg,
                                             config::environment env);

/// Delivers on a private event loop for at most `budget`, waiting out retry backoffs that end
/// inside it (`sync --once`, `alerts --redeliver`). The report counts the attempts of every
/// pass; what is left (pending, next_due, cut_short) is the last pass's.
dispatch_report deliver_for(const config::config& cfg, SQLite::Database& db, config::environment env,
                            std::function<std::int64_t()> now, std::chrono::milliseconds budget,
                            alerting_observer* observer = nullptr);


}  // namespace subsync::alerting
