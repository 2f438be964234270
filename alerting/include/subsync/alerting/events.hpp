#pragma once
// What delivery reports, typed: every attempt at a group notification, and the log sink's group
// lines. The daemon turns them into metrics and journald records with MESSAGE_IDs; without an
// observer they are logged as text (alerting_log).

#include <subsync/alerting/grouping.hpp>
#include <subsync/alerting/outbox.hpp>

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

/// The text log lines: delivered at debug, failed at warn, dead at error; a group at warn when
/// it holds a firing alert, else info.
class alerting_log : public alerting_observer {
public:
    void on(const delivery_attempt& a) override;
    void on(std::string_view sink, const group_notification& g) override;

    /// The log line of a group notification.
    [[nodiscard]] static std::string message_of(std::string_view sink, const group_notification& g);
    /// The log line of a delivery attempt.
    [[nodiscard]] static std::string message_of(const delivery_attempt& a);
};

/// The process-wide text logger, for when nothing else observes.
[[nodiscard]] alerting_observer& default_alerting_log();

}  // namespace subsync::alerting
