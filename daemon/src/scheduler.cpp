// When to sync, and what one sync round does besides syncing: exports, metrics, STATUS.

#include "service.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/config/load.hpp>
#include <subsync/daemon/schedule.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <malloc.h>
#include <sqlite3.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace subsync::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

std::string format_seconds(steady_clock::duration d) {
    return fmt::format("{:.1f}s", std::chrono::duration<double>(d).count());
}

std::string format_wait(steady_clock::duration d) {
    const std::chrono::milliseconds whole = std::chrono::ceil<std::chrono::seconds>(d);
    return config::format_duration(std::max(std::chrono::milliseconds(0), whole));
}

}  // namespace

void service::schedule_next() {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    next_sync_ = last_start_ + next_sync_delay(cfg_.sync.interval, cfg_.sync.jitter, u);
}

void service::shed_memory() noexcept {
    // A sync's staging, exports and deliveries peak at tens of MiB that glibc keeps mapped after
    // they are freed, and SQLite keeps up to 2 MB of pages cached: between syncs the daemon should
    // be small (bench/README.md finding 5).
    if (store_) ::sqlite3_db_release_memory(store_->database().getHandle());
    ::malloc_trim(0);
}

asio::awaitable<void> service::scheduler() {
    const auto cs = co_await asio::this_coro::cancellation_state;
    next_sync_ = steady_clock::now();  // the first sync right at start
    for (;;) {
        // One deadline on the monotonic clock: after a suspend or a clock jump the sync that is
        // due runs once; missed ones are not caught up.
        while (!sync_requested_ && steady_clock::now() < next_sync_) {
            wake_.expires_at(next_sync_);
            co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled by SIGUSR1 or a reload
            if (cs.cancelled() != asio::cancellation_type::none) co_return;
        }
        sync_requested_ = false;
        last_start_ = steady_clock::now();
        std::string status = co_await sync_round();
        if (cs.cancelled() != asio::cancellation_type::none || stopping_) co_return;
        shed_memory();
        if (pending_config_) {
            auto next = std::move(*pending_config_);
            pending_config_.reset();
            apply_config(std::move(next));
        }
        schedule_next();
        if (sync_requested_) status += "; next sync now (requested)";
        else status += fmt::format("; next sync in {}", format_wait(next_sync_ - steady_clock::now()));
        notify_.status(status);
    }
}

asio::awaitable<std::string> service::sync_round() {
    const std::uint64_t round = ++rounds_;
    syncing_ = true;
    metrics_.set_sync_in_progress(true);
    notify_.status(fmt::format("sync {} running", round));
    logging::debug("sync round started", {{"round", round}});
    const auto t0 = steady_clock::now();
    std::optional<sync::sync_report> report;
    std::string failure;
    try {
        report = co_await engine_->run({false, &events_});
    } catch (const boost::system::system_error& e) {
        failure = e.code() == asio::error::operation_aborted ? "cancelled" : e.what();
    } catch (const std::exception& e) {
        // The store itself failed (disk full, corrupt database): nothing of this round committed
        // beyond what was already applied; the next round tries again.
        failure = e.what();
    }
    syncing_ = false;
    metrics_.set_sync_in_progress(false);
    if (!report) {
        if (stopping_) {
            logging::info("sync round cancelled", {{"round", round}}, "uncommitted changes rolled back");
        } else {
            logging::error("sync round failed", {{"round", round}, {"error", failure}});
        }
        co_return fmt::format("sync {} failed at {}: {}", round, sync::format_iso8601(wall_clock_now()), failure);
    }
    co_return after_round(*report, steady_clock::now() - t0);
}

std::string service::after_round(const sync::sync_report& report, steady_clock::duration took) {
    const std::uint64_t round = rounds_;
    int ok = 0, failed = 0, incomplete = 0;
    std::int64_t items = 0, added = 0, changed = 0, removed = 0;
    std::string failed_sources;
    for (const auto& r : report.runs) {
        metrics_.record_run(r);
        if (r.status == sync::run_status::ok) ++ok;
        else if (r.status == sync::run_status::incomplete) ++incomplete;
        else {
            ++failed;
            failed_sources +=
                fmt::format("{}{}/{}", failed_sources.empty() ? "" : ", ", r.account, sync::to_string(r.source));
        }
        items += r.items;
        added += r.added;
        changed += r.changed;
        removed += r.removed;
    }
    // A round cut short by SIGTERM writes no exports: the next start syncs and writes them.
    if (!stopping_ && ok + incomplete > 0) {
        try {
            auto db = sync::open_snapshot_readonly(cfg_.storage.database);
            const auto files = exporters::write_exports(db, cfg_.storage.export_dir,
                                                         exporters::generation_options_from(cfg_));
            logging::debug("exports written", {{"dir", cfg_.storage.export_dir.native()}, {"files", files.size()}});
        } catch (const std::exception& e) {
            logging::error("exports failed", {{"dir", cfg_.storage.export_dir.string()}, {"error", e.what()}});
        }
    }
    wake_delivery();  // what this round queued goes out now
    if (replicator_ && ok + incomplete > 0) replicator_->notify();  // ships what this round applied
    try {
        metrics_.refresh_from_db(store_->database());
    } catch (const std::exception& e) {
        logging::warn("metrics refresh failed", {{"error", e.what()}});
    }

    // Cut short by SIGTERM: the failed runs say "cancelled"; the round is not a failure of the cloud.
    const std::string outcome = stopping_ ? "cancelled" : failed > 0 ? "failed" : incomplete > 0 ? "incomplete" : "ok";
    const auto sources = report.runs.size();
    logging::info("sync round done", {{"round", round},
                                      {"status", outcome},
                                      {"sources", sources},
                                      {"ok", ok},
                                      {"incomplete", incomplete},
                                      {"failed", failed},
                                      {"items", items},
                                      {"added", added},
                                      {"changed", changed},
                                      {"removed", removed},
                                      {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(took).count()}});
    std::string status = fmt::format("sync {} {} at {}: {}/{} sources ok, {} items (+{} ~{} -{}) in {}", round, outcome,
                                     sync::format_iso8601(wall_clock_now()), ok, sources, items, added, changed,
                                     removed, format_seconds(took));
    if (!failed_sources.empty()) status += fmt::format("; failed: {}", failed_sources);
    return status;
}

}  // namespace subsync::daemon
