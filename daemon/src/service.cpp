#include "service.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/config/load.hpp>
#include <subsync/daemon/cli.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace subsync::daemon {

namespace asio = boost::asio;

namespace {

// Exits at once, for when waiting longer is worse than leaving work unfinished. Safe for the
// snapshot: every apply is one SQLite transaction that either committed or never will.
[[noreturn]] void exit_now(int code) {
    spdlog::default_logger()->flush();
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(code);
}

std::string_view signal_name(int signal_number) {
    switch (signal_number) {
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        case SIGHUP: return "SIGHUP";
        case SIGUSR1: return "SIGUSR1";
        default: return "signal";
    }
}

/// A co_spawn completion handler that logs what ended the coroutine `what`.
auto log_exit(std::string_view what) {
    return [what](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const boost::system::system_error& x) {
            if (x.code() != asio::error::operation_aborted)
                logging::error(fmt::format("{} failed", what), {{"error", x.what()}});
        } catch (const std::exception& x) {
            logging::error(fmt::format("{} failed", what), {{"error", x.what()}});
        }
    };
}

}  // namespace

service::service(std::filesystem::path config_path, config::config cfg, int verbosity)
    : config_path_(std::move(config_path)), cfg_(std::move(cfg)), verbosity_(verbosity),
      // Registered first: from here on these signals are ours, never their default action.
      signals_(io_, SIGTERM, SIGINT, SIGHUP), wake_(io_), grace_(io_), metrics_(SUBSYNC_VERSION, wall_clock_now()), alert_wake_(io_) {
    signals_.add(SIGUSR1);
}

service::~service() = default;

int service::run() {
    for (const auto& w : cfg_.warnings) spdlog::warn("{}", w);
    std::error_code ec;
    std::filesystem::create_directories(cfg_.storage.database.parent_path(), ec);  // open() reports what fails
    std::string holder;
    lock_ = instance_lock::try_acquire(cfg_.storage.database, holder);
    if (!lock_) {
        const auto waited = wait_for_lock(holder);
        if (waited == lock_wait_result::stopped) return exit_ok;
        if (waited == lock_wait_result::timed_out) {
            logging::error("database locked",
                           {{"holder", holder}, {"lock_wait", config::format_duration(cfg_.daemon.lock_wait)}},
                           "still held after daemon.lock_wait, not starting a second daemon on the same database");
            return exit_locked;
        }
    }
    start();
    io_.run();
    return exit_code_;
}

service::lock_wait_result service::wait_for_lock(std::string& holder) {
    using namespace std::chrono_literals;
    const auto wait = cfg_.daemon.lock_wait;
    if (wait <= 0ms) return lock_wait_result::timed_out;
    // A one-shot sync (timer, cron, by hand) is the usual holder: it ends within minutes, so wait
    // rather than exit and have systemd restart us. Polled: flock(2) has no timeout, and a
    // poll keeps SIGTERM and the watchdog on this one thread.
    constexpr auto poll = 250ms;
    logging::warn("waiting for the database lock", {{"holder", holder}, {"lock_wait", config::format_duration(wait)}});
    // Start-up now takes up to the wait plus the unit's own TimeoutStartSec= budget for the rest.
    notify_.extend_startup(std::chrono::duration_cast<std::chrono::microseconds>(wait + 60s),
                           fmt::format("waiting for the database lock: {}", holder));
    const auto deadline = std::chrono::steady_clock::now() + wait;
    auto result = lock_wait_result::timed_out;
    asio::steady_timer timer(io_);
    std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int signal_number) {
        if (ec) return;
        if (signal_number == SIGTERM || signal_number == SIGINT) {
            logging::info("stopping while waiting for the database lock", {{"signal", signal_name(signal_number)}});
            result = lock_wait_result::stopped;
            timer.cancel();
            return;
        }
        signals_.async_wait(on_signal);  // SIGHUP, SIGUSR1: nothing to reload or sync yet
    };
    std::function<void()> try_once = [&] {
        if (auto l = instance_lock::try_acquire(cfg_.storage.database, holder)) {
            lock_ = std::move(l);
            result = lock_wait_result::acquired;
            signals_.cancel();
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            signals_.cancel();
            return;
        }
        if (notify_.watchdog_pace().count() > 0) notify_.watchdog();
        timer.expires_after(std::min<std::chrono::steady_clock::duration>(poll, deadline - now));
        timer.async_wait([&](boost::system::error_code ec) {
            if (!ec) try_once();
        });
    };
    signals_.async_wait(on_signal);
    try_once();
    io_.run();
    io_.restart();  // start() runs the loop again
    return result;
}

void service::start() {
    store_ = std::make_unique<sync::snapshot_store>(cfg_.storage);
    store_->set_run_hook(&alert_hook_);
    metrics_.declare_series(cfg_);
    metrics_.load_history(store_->database());
    metrics_.refresh_from_db(store_->database());
    engine_ = std::make_unique<sync::sync_engine>(io_.get_executor(), cfg_, *store_, env_, wall_clock_now);
    // Its first pass (what changed while we were stopped) starts now, beside the first sync.
    if (!cfg_.destinations.empty()) replicator_ = std::make_unique<destinations::replicator>(cfg_, env_);
    std::string metrics_at = "off";
    if (cfg_.metrics.enabled()) {
        http_ = std::make_unique<http_server>(io_.get_executor(), cfg_.metrics.host, cfg_.metrics.port,
                                              [this](std::string_view path) { return serve(path); });
        metrics_at = http_->address();
    }

    asio::co_spawn(io_, signal_loop(), log_exit("signal handler"));
    delivery_running_ = true;
    asio::co_spawn(io_, delivery_loop(), [this](std::exception_ptr e) {
        delivery_running_ = false;
        log_exit("alert delivery")(e);
        if (stopping_) complete_stop();
    });
    asio::co_spawn(io_, notify_.pet_watchdog(),
                   asio::bind_cancellation_slot(stop_watchdog_.slot(), log_exit("watchdog")));
    asio::co_spawn(io_, scheduler(), asio::bind_cancellation_slot(stop_scheduler_.slot(), [this](std::exception_ptr e) {
                       if (e && !stopping_) {
                           try {
                               std::rethrow_exception(e);
                           } catch (const std::exception& x) {
                               logging::error("scheduler stopped", {{"error", x.what()}});
                           }
                           exit_code_ = exit_source_failed;
                       }
                       finish();
                   }));

    logging::info("subsyncd started",
                  {{"version", SUBSYNC_VERSION},
                   {"pid", ::getpid()},
                   {"config", config_path_.string()},
                   {"database", cfg_.storage.database.string()},
                   {"accounts", cfg_.accounts.size()},
                   {"interval", config::format_duration(cfg_.sync.interval)},
                   {"jitter", config::format_duration(cfg_.sync.jitter)},
                   {"metrics", metrics_at},
                   {"watchdog_pace",
                    notify_.watchdog_pace().count() > 0
                        ? config::format_duration(
                              std::chrono::duration_cast<std::chrono::milliseconds>(notify_.watchdog_pace()))
                        : std::string("off")}});
    notify_.ready(fmt::format("ready: {} account{}, database {}, metrics {}", cfg_.accounts.size(),
                              cfg_.accounts.size() == 1 ? "" : "s", cfg_.storage.database.string(), metrics_at));
}

void service::begin_stop(int signal_number) {
    if (stopping_) {
        logging::warn("stopping", {{"signal", signal_name(signal_number)}}, "second signal, exiting now");
        exit_now(exit_ok);
    }
    stopping_ = true;
    const bool cancelling = syncing_;
    logging::info("stopping",
                  {{"signal", signal_name(signal_number)}, {"grace", config::format_duration(cfg_.daemon.grace)}},
                  cancelling ? "cancelling the running sync, its uncommitted changes roll back" : "");
    notify_.stopping(cancelling ? "stopping: cancelling the running sync" : "stopping");
    grace_.expires_after(cfg_.daemon.grace);
    // The last delivery attempt ends a little before the grace, so the process exits on its own.
    stop_deadline_ = std::chrono::steady_clock::now() + cfg_.daemon.grace -
                     std::min<std::chrono::steady_clock::duration>(cfg_.daemon.grace / 5, std::chrono::seconds(1));
    grace_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        logging::warn("stopping", {{"grace", config::format_duration(cfg_.daemon.grace)}},
                      "the running sync did not end within the grace; exiting without waiting for it");
        exit_now(exit_ok);
    });
    stop_scheduler_.emit(asio::cancellation_type::terminal);
}

void service::finish() {
    if (!stopping_) stop_deadline_ = std::chrono::steady_clock::now() + cfg_.daemon.grace;
    stopping_ = true;
    // Alert delivery gets its last attempt first (bounded by stop_deadline_, the grace timer
    // still running); the delivery loop calls complete_stop() when it is done.
    if (delivery_running_) {
        wake_delivery();
        return;
    }
    complete_stop();
}

void service::complete_stop() {
    if (stopped_) return;
    stopped_ = true;
    grace_.cancel();
    alert_wake_.cancel();
    wake_.cancel();
    stop_watchdog_.emit(asio::cancellation_type::terminal);
    signals_.cancel();
    if (http_) http_->stop();
    logging::info("stopped", {{"exit_code", exit_code_}});
}

http_response service::serve(std::string_view path) {
    if (path == "/metrics")
        return {200, "text/plain; version=0.0.4; charset=utf-8",
                metrics_.render() + (replicator_ ? replicator_->render_metrics() : std::string())};
    if (path == "/healthz") {
        const auto h = evaluate_health(metrics_.sources_for(cfg_), wall_clock_now(), 2 * cfg_.sync.interval);
        return {h.healthy ? 200u : 503u, "application/json", h.json + "\n"};
    }
    if (path == "/") return {200, "text/plain; charset=utf-8", "subsyncd: /metrics (Prometheus), /healthz\n"};
    return {404, "text/plain; charset=utf-8", "not found; try /metrics or /healthz\n"};
}

int run_daemon(const std::filesystem::path& config_path, int verbosity) {
    auto cfg = load_or_report(config_path);
    if (!cfg) return exit_usage;
    setup_logging({cfg->daemon.level, cfg->daemon.format, verbosity});
    // Before the first sync reads a token: the daemon holds secrets from then on.
    protect_secrets_in_memory();
    service s(config_path, std::move(*cfg), verbosity);
    return s.run();
}

}  // namespace subsync::daemon
