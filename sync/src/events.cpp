#include <subsync/sync/events.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace subsync::sync {

std::string_view to_string(retry_reason r) noexcept {
    switch (r) {
        case retry_reason::transport: return "transport";
        case retry_reason::server_status: return "server_status";
        case retry_reason::throttled: return "throttled";
        case retry_reason::token_rejected: return "token_rejected";
    }
    return "transport";
}

std::string message_of(const page_fetched& e) {
    return fmt::format("page fetched account={} source={} pages={}/{} read={}", e.account, e.source, e.done, e.total,
                       to_string(e.reading));
}

std::string message_of(const request_retried& e) {
    if (e.reason == retry_reason::token_rejected)
        return fmt::format("token rejected account={} source={} {} request_id={}: re-authenticating once", e.account,
                           e.source, e.where, e.request_id);
    return fmt::format("retrying account={} source={} {} {} wait={}ms request_id={} reason=\"{}\"", e.account,
                       e.source, e.where,
                       e.reason == retry_reason::throttled ? fmt::format("throttled={} rate={:.2g}/s", e.throttled, e.rate)
                                                           : fmt::format("attempt={}/{}", e.attempt, e.max_attempts),
                       e.wait.count(), e.request_id, e.detail);
}

std::string message_of(const source_finished& e) {
    const run_record& r = e.run;
    if (e.error)
        return fmt::format("sync failed {} kind={}", r.error, to_string(*e.error));
    return fmt::format("sync done account={} source={} status={} pages={} items={} added={} changed={} removed={} "
                       "notifications={} retries={} throttled={} ms={}",
                       r.account, to_string(r.source), to_string(r.status), r.pages, r.items, r.added, r.changed, r.removed,
                       r.notifications, r.retries, r.throttled, e.elapsed.count());
}

std::string incomplete_message_of(const run_record& r) {
    return fmt::format("incomplete listing account={} source={} error=\"{}\": nothing is marked removed", r.account,
                       to_string(r.source), r.error);
}

void log_observer::on(const page_fetched& e) {
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("{}", message_of(e));
}

void log_observer::on(const request_retried& e) {
    if (spdlog::should_log(spdlog::level::warn)) spdlog::warn("{}", message_of(e));
}

void log_observer::on(const source_finished& e) {
    if (e.error) {
        spdlog::error("{}", message_of(e));
        return;
    }
    if (e.run.status == run_status::incomplete) spdlog::warn("{}", incomplete_message_of(e.run));
    spdlog::info("{}", message_of(e));
}

void observer_list::on(const page_fetched& e) {
    for (auto* o : observers_) o->on(e);
}

void observer_list::on(const request_retried& e) {
    for (auto* o : observers_) o->on(e);
}

void observer_list::on(const source_finished& e) {
    for (auto* o : observers_) o->on(e);
}

}  // namespace subsync::sync
