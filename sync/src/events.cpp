#include <subsync/sync/events.hpp>

#include <fmt/format.h>

#include <span>

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

namespace {

std::string message_of(const page_fetched& e) {
    return fmt::format("page fetched account={} source={} pages={}/{} read={}", e.account, e.source, e.done, e.total,
                       to_string(e.reading));
}

std::string message_of(const request_retried& e) {
    if (e.reason == retry_reason::token_rejected)
        return fmt::format("token rejected account={} source={} {} request_id={}: re-authenticating once", e.account,
                           e.source, e.where, e.request_id);
    return fmt::format("retrying account={} source={} {} {} wait={}ms request_id={} error={}", e.account,
                       e.source, e.where,
                       e.reason == retry_reason::throttled ? fmt::format("throttled={} rate={:.2g}/s", e.throttled, e.rate)
                                                           : fmt::format("attempt={}/{}", e.attempt, e.max_attempts),
                       e.wait.count(), e.request_id, logging::value_text(e.detail));
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

logging::severity level_of(const source_finished& e) {
    return e.error ? logging::severity::error : logging::severity::info;
}

}  // namespace

logging::record record_of(const page_fetched& e) {
    return {logging::severity::debug,
            {},
            message_of(e),
            {{"account", e.account},
             {"source", e.source},
             {"pages_done", e.done},
             {"pages_total", e.total},
             {"read", to_string(e.reading)}}};
}

logging::record record_of(const request_retried& e) {
    return {logging::severity::warn,
            {},
            message_of(e),
            {{"account", e.account},
             {"source", e.source},
             {"where", e.where},
             {"reason", to_string(e.reason)},
             {"attempt", e.attempt},
             {"throttled", e.throttled},
             {"wait_ms", e.wait.count()},
             {"request_id", e.request_id},
             {"error", e.detail}}};
}

logging::record record_of(const source_finished& e) {
    const run_record& r = e.run;
    if (e.error)
        return {level_of(e),
                logging::message_ids::sync_failed,
                message_of(e),
                {{"account", r.account},
                 {"source", to_string(r.source)},
                 {"run_id", r.id},
                 {"status", to_string(r.status)},
                 {"kind", to_string(*e.error)},
                 {"error", r.error}}};
    return {level_of(e),
            logging::message_ids::sync_done,
            message_of(e),
            {{"account", r.account},
             {"source", to_string(r.source)},
             {"run_id", r.id},
             {"status", to_string(r.status)},
             {"pages", r.pages},
             {"items", r.items},
             {"added", r.added},
             {"changed", r.changed},
             {"removed", r.removed},
             {"notifications", r.notifications},
             {"retries", r.retries},
             {"throttled", r.throttled},
             {"ms", e.elapsed.count()}}};
}

logging::record record_of(const alerts_queued& e) {
    const run_record& r = e.run;
    logging::record out{logging::severity::debug,
                        {},
                        {},
                        {{"account", r.account},
                         {"source", to_string(r.source)},
                         {"run_id", r.id},
                         {"firing", r.queued.firing_total()},
                         {"resolved", r.queued.resolved_total()}}};
    out.message = logging::line("alerts queued", out.fields);
    return out;
}

logging::record incomplete_record_of(const run_record& r) {
    logging::record out{logging::severity::warn,
                        {},
                        {},
                        {{"account", r.account}, {"source", to_string(r.source)}, {"error", r.error}, {"run_id", r.id}}};
    out.message = logging::line("incomplete listing", std::span(out.fields).first(3), "nothing is marked removed");
    return out;
}

void log_observer::on(const page_fetched& e) {
    if (logging::enabled(logging::severity::debug)) logging::write(record_of(e));
}

void log_observer::on(const request_retried& e) {
    if (logging::enabled(logging::severity::warn)) logging::write(record_of(e));
}

void log_observer::on(const alerts_queued& e) {
    if (logging::enabled(logging::severity::debug)) logging::write(record_of(e));
}

void log_observer::on(const source_finished& e) {
    if (!e.error && e.run.status == run_status::incomplete && logging::enabled(logging::severity::warn))
        logging::write(incomplete_record_of(e.run));
    if (logging::enabled(level_of(e))) logging::write(record_of(e));
}

void observer_list::on(const page_fetched& e) {
    for (auto* o : observers_) o->on(e);
}

void observer_list::on(const request_retried& e) {
    for (auto* o : observers_) o->on(e);
}

void observer_list::on(const alerts_queued& e) {
    for (auto* o : observers_) o->on(e);
}

void observer_list::on(const source_finished& e) {
    for (auto* o : observers_) o->on(e);
}

}  // namespace subsync::sync
