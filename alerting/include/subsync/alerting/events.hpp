#pragma once
// What delivery reports, typed: every attempt at a group notification, and the log sink's group
// lines. alerting_log writes them as logging::records (with journald MESSAGE_IDs); the daemon
// also counts the attempts for its metrics.

#include <subsync/alerting/grouping.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/logging/log.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace subsync::alerting {

/// One attempt at one group notification.
struct delivery_attempt {
    std::string_view sink;
    std::string_view group;  ///< its group key
    std::int64_t batch = 0;
    std::size_t alerts = 0;
    attempt_outcome outcome = attempt_outcome::delivered;
    std::int64_t attempts = 0;
    std::int64_t latency_ms = 0;
    std::string_view error;  ///< never a secret
};

class alerting_observer {
public:
    virtual ~alerting_observer() = default;
    /// After every attempt, once its outcome is recorded.
    virtual void on(const delivery_attempt& a) = 0;
    /// The log sink delivering `g`: one record per group notification.
    virtual void on(std::string_view sink, const group_notification& g) = 0;
};

/// An attempt as a record: delivered at debug, failed at warn, dead at error (delivery-dead
/// MESSAGE_ID). The fields view `a`.
[[nodiscard]] logging::record record_of(const delivery_attempt& a);
/// A log sink's group notification as a record: at warn with the alert-firing MESSAGE_ID when it
/// holds a firing alert, else info with alert-resolved. KIND, ACCOUNT and SOURCE are the group's
/// labels when it is grouped by them, else its most urgent alert's. The fields view `sink`, `g`.
[[nodiscard]] logging::record record_of(std::string_view sink, const group_notification& g);

/// Writes each record when its level is on.
class alerting_log : public alerting_observer {
public:
    void on(const delivery_attempt& a) override;
    void on(std::string_view sink, const group_notification& g) override;
};

/// The process-wide log, for when nothing else observes.
[[nodiscard]] alerting_observer& default_alerting_log();

}  // namespace subsync::alerting
