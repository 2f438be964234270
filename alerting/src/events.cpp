#include <subsync/alerting/events.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace subsync::alerting {

std::string alerting_log::message_of(const delivery_attempt& a) {
    switch (a.outcome) {
        case attempt_outcome::delivered:
            return fmt::format("alerts delivered sink={} group=\"{}\" batch={} alerts={} attempt={} ms={}", a.sink,
                               a.group, a.batch, a.alerts, a.attempts, a.latency_ms);
        case attempt_outcome::dead:
            return fmt::format("alerts dead-lettered sink={} group=\"{}\" batch={} alerts={} attempts={} error=\"{}\"",
                               a.sink, a.group, a.batch, a.alerts, a.attempts, a.error);
        case attempt_outcome::failed: break;
    }
    return fmt::format("alert delivery failed sink={} group=\"{}\" batch={} alerts={} attempt={} ms={} error=\"{}\"",
                       a.sink, a.group, a.batch, a.alerts, a.attempts, a.latency_ms, a.error);
}

void alerting_log::on(const delivery_attempt& a) {
    const auto level = a.outcome == attempt_outcome::delivered ? spdlog::level::debug
                       : a.outcome == attempt_outcome::dead    ? spdlog::level::err
                                                               : spdlog::level::warn;
    if (spdlog::should_log(level)) spdlog::log(level, "{}", message_of(a));
}

std::string alerting_log::message_of(std::string_view sink, const group_notification& g) {
    const notification& top = g.alerts.front();
    return fmt::format("alerts sink={} group=\"{}\" alerts={} new={} repeated={} resolved={} top=\"{} {} {}/{}: {}\"",
                       sink, g.key, g.alerts.size(), g.fresh, g.repeated, g.resolved, config::to_string(top.severity),
                       to_string(top.state),
                       top.account, top.id, top.summary);
}

void alerting_log::on(std::string_view sink, const group_notification& g) {
    spdlog::log(g.fresh + g.repeated == 0 ? spdlog::level::info : spdlog::level::warn, "{}", message_of(sink, g));
}

alerting_observer& default_alerting_log() {
    static alerting_log log;
    return log;
}

}  // namespace subsync::alerting
