// `subsyncd run`: alert delivery. One loop owns the dispatcher, so two dispatches never drain a
// sink at once (order and at-most-one attempt in flight per sink depend on it).

#include "service.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/config/load.hpp>
#include <subsync/alerting/alerts.hpp>
#include <subsync/sync/time.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace subsync::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

void service::wake_delivery() {
    alerts_due_ = true;
    alert_wake_.cancel();
}

asio::awaitable<void> service::delivery_loop() {
    alert_wake_.expires_at(steady_clock::time_point::max());
    for (;;) {
        while (!alerts_due_ && !stopping_) {
            auto [ec] = co_await alert_wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!ec) alerts_due_ = true;  // a sink's head is due again
        }
        const bool last = stopping_;
        alerts_due_ = false;
        alert_wake_.expires_at(steady_clock::time_point::max());
        std::optional<alerting::dispatch_report> report;
        try {
            if (!dispatcher_ || rebuild_dispatcher_) {
                rebuild_dispatcher_ = false;
                dispatcher_.reset();
                auto ctx = alerting::make_sink_context(io_.get_executor(), cfg_, env_);
                ctx.observer = &alert_events_;
                dispatcher_ = std::make_unique<alerting::alert_dispatcher>(
                    cfg_.alerts, ctx, store_->database(), alerting::dispatch_clock{wall_clock_now, {}});
                std::vector<std::string> names;
                for (const auto& s : alerting::effective_sinks(cfg_.alerts)) names.push_back(s.name);
                metrics_.declare_sinks(names);
            }
            report = co_await dispatcher_->run(last ? stop_deadline_ : steady_clock::time_point::max());
        } catch (const std::exception& e) {
            // The database failed under us, or a sink could not be built: try again later.
            logging::error("alert delivery failed", {{"error", e.what()}});
        }
        try {
            metrics_.refresh_from_db(store_->database());
        } catch (const std::exception& e) {
            logging::warn("metrics refresh failed", {{"error", e.what()}});
        }
        if (report && (report->delivered + report->failed + report->dead > 0 || last))
            logging::info("alert delivery done",
                          {{"delivered", report->delivered},
                           {"failed", report->failed},
                           {"dead", report->dead},
                           {"pending", report->pending}},
                          last && report->pending > 0 ? "the pending ones are delivered after the next start" : "");
        // Deliveries change alert rows (last_notified, notifications): the destinations follow.
        if (replicator_ && report && report->delivered + report->failed + report->dead > 0) replicator_->notify();
        if (last) break;
        shed_memory();
        if (!report) {
            alert_wake_.expires_after(cfg_.alerts.retry_max);
        } else if (report->next_due) {
            const auto wait = std::chrono::milliseconds(std::max<std::int64_t>(0, *report->next_due - wall_clock_now()));
            alert_wake_.expires_after(wait);
        }
    }
    complete_stop();
}

}  // namespace subsync::daemon
