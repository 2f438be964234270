#include <subsync/alerting/events.hpp>

#include <fmt/format.h>

namespace subsync::alerting {

namespace {

std::string message_of(const delivery_attempt& a) {
    switch (a.outcome) {
        case attempt_outcome::delivered:
            return fmt::format("alerts delivered sink={} group={} batch={} alerts={} attempts={} latency_ms={}", a.sink,
                               logging::value_text(a.group), a.batch, a.alerts, a.attempts, a.latency_ms);
        case attempt_outcome::dead:
            return fmt::format("alerts dead-lettered sink={} group={} batch={} alerts={} attempts={} error={}", a.sink,
                               logging::value_text(a.group), a.batch, a.alerts, a.attempts, logging::value_text(a.error));
        case attempt_outcome::failed: break;
    }
    return fmt::format("alert delivery failed sink={} group={} batch={} alerts={} attempts={} latency_ms={} error={}",
                       a.sink, logging::value_text(a.group), a.batch, a.alerts, a.attempts, a.latency_ms,
                       logging::value_text(a.error));
}

std::string message_of(std::string_view sink, const group_notification& g) {
    const notification& top = g.alerts.front();
    return fmt::format("alerts sink={} group={} alerts={} new={} repeated={} resolved={} top={}", sink,
                       logging::value_text(g.key), g.alerts.size(), g.fresh, g.repeated, g.resolved,
                       logging::value_text(fmt::format("{} {} {}/{}: {}", config::to_string(top.severity),
                                                       to_string(top.state), top.account, top.id, top.summary)));
}

logging::severity level_of(const delivery_attempt& a) {
    switch (a.outcome) {
        case attempt_outcome::delivered: return logging::severity::debug;
        case attempt_outcome::failed: return logging::severity::warn;
        case attempt_outcome::dead: return logging::severity::error;
    }
    return logging::severity::error;
}

bool firing(const group_notification& g) { return g.fresh + g.repeated > 0; }

}  // namespace

logging::record record_of(const delivery_attempt& a) {
    return {level_of(a),
            a.outcome == attempt_outcome::dead ? logging::message_ids::delivery_dead : std::string_view{},
            message_of(a),
            {{"sink", a.sink},
             {"group", a.group},
             {"batch", a.batch},
             {"alerts", a.alerts},
             {"outcome", to_string(a.outcome)},
             {"attempts", a.attempts},
             {"latency_ms", a.latency_ms},
             {"error", a.error}}};
}

logging::record record_of(std::string_view sink, const group_notification& g) {
    const notification& top = g.alerts.front();
    auto label = [&](std::string_view name, std::string_view fallback) -> std::string_view {
        for (const auto& [k, v] : g.labels)
            if (k == name) return v;
        return fallback;
    };
    return {firing(g) ? logging::severity::warn : logging::severity::info,
            firing(g) ? logging::message_ids::alert_firing : logging::message_ids::alert_resolved,
            message_of(sink, g),
            {{"sink", sink},
             {"group", g.key},
             {"kind", label("kind", top.kind)},
             {"account", label("account", top.account)},
             {"source", label("source", top.source)},
             {"severity", config::to_string(top.severity)},
             {"alerts", g.alerts.size()},
             {"new", g.fresh},
             {"repeated", g.repeated},
             {"resolved", g.resolved}}};
}

void alerting_log::on(const delivery_attempt& a) {
    if (logging::enabled(level_of(a))) logging::write(record_of(a));
}

void alerting_log::on(std::string_view sink, const group_notification& g) {
    if (logging::enabled(firing(g) ? logging::severity::warn : logging::severity::info))
        logging::write(record_of(sink, g));
}

alerting_observer& default_alerting_log() {
    static alerting_log log;
    return log;
}

}  // namespace subsync::alerting
