// The daemon's replication thread. libpq is driven with deadlines (pg_connection), but a pass
// still takes as long as PostgreSQL takes; on its own thread it never delays a sync, an alert
// delivery or a /metrics answer on the io_context. The thread only reads SQLite (its own
// read-only connection) and talks to PostgreSQL; what it shares is the lag table below.

#include <subsync/destinations/postgresql.hpp>

#include <fmt/format.h>

#include <chrono>

namespace subsync::destinations {

replicator::replicator(const config::config& cfg, const config::environment& env)
    : database_(cfg.storage.database) {
    for (std::size_t i = 0; i < cfg.destinations.size(); ++i) {
        target t{cfg.destinations[i], {}, {}};
        auto dsn = config::resolve_secret(t.cfg.dsn, fmt::format("destination[{}].dsn", i), env);
        if (dsn) t.dsn = std::move(*dsn);
        else t.resolve_error = dsn.error();
        destination_lag l;
        l.destination = t.cfg.name;
        l.error = t.resolve_error;
        lag_.push_back(std::move(l));
        targets_.push_back(std::move(t));
    }
    if (!targets_.empty()) thread_ = std::thread([this] { run(); });
}

replicator::~replicator() {
    cancel_ = true;
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void replicator::notify() {
    {
        std::lock_guard lock(mutex_);
        pending_ = true;
    }
    wake_.notify_all();
}

std::vector<destination_lag> replicator::lag() const {
    std::lock_guard lock(mutex_);
    return lag_;
}

std::uint64_t replicator::passes() const {
    std::lock_guard lock(mutex_);
    return passes_;
}

std::string replicator::render_metrics() const {
    std::string out;
    const auto lags = lag();
    if (lags.empty()) return out;
    out += "# HELP subsync_destination_lag_changes Changes in the local record not yet replicated to the destination.\n"
           "# TYPE subsync_destination_lag_changes gauge\n";
    for (const auto& l : lags)
        out += fmt::format("subsync_destination_lag_changes{{destination=\"{}\"}} {}\n", l.destination, l.lag_changes);
    out += "# HELP subsync_destination_up Whether the last replication pass to the destination succeeded.\n"
           "# TYPE subsync_destination_up gauge\n";
    for (const auto& l : lags)
        out += fmt::format("subsync_destination_up{{destination=\"{}\"}} {}\n", l.destination, l.known ? 1 : 0);
    return out;
}

void replicator::run() {
    using clock = std::chrono::steady_clock;
    // A destination that failed is retried after its retry_interval even if nothing notifies.
    // time_point::max() = no retry due (not an optional: GCC 12 at -O3 warns it maybe-uninitialized).
    constexpr auto never = clock::time_point::max();
    clock::time_point retry_at = never;
    while (true) {
        {
            std::unique_lock lock(mutex_);
            const auto ready = [&] { return stop_ || pending_; };
            if (retry_at != never) wake_.wait_until(lock, retry_at, ready);
            else wake_.wait(lock, ready);
            if (stop_) return;
            pending_ = false;
        }
        retry_at = never;
        for (std::size_t i = 0; i < targets_.size(); ++i) {
            const auto& t = targets_[i];
            destination_lag l;
            l.destination = t.cfg.name;
            if (!t.resolve_error.empty()) {
                l.error = t.resolve_error;
            } else {
                const auto o = replicate_once(t.cfg, t.dsn, database_, false, &cancel_);
                if (o.local_seq > 0) last_local_seq_ = o.local_seq;
                l.known = o.ok;
                l.cursor_seq = o.cursor_seq;
                l.lag_changes = o.lag_changes;
                l.error = o.error;
                log_outcome(o, fmt::format("retrying in {} ms, the sync is not affected", t.cfg.retry_interval.count()));
                if (!o.ok) {
                    const auto at = clock::now() + t.cfg.retry_interval;
                    retry_at = std::min(retry_at, at);
                }
            }
            std::lock_guard lock(mutex_);
            // Keep the last known cursor while the destination is down: the lag still grows.
            if (!l.known && lag_[i].cursor_seq > 0 && l.cursor_seq == 0) {
                l.cursor_seq = lag_[i].cursor_seq;
                if (last_local_seq_ > 0) l.lag_changes = std::max<std::int64_t>(0, last_local_seq_ - l.cursor_seq);
            }
            lag_[i] = std::move(l);
        }
        std::lock_guard lock(mutex_);
        ++passes_;
    }
}

}  // namespace subsync::destinations
