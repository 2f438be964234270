#pragma once
// `subsyncd run`: the long-running daemon. One io_context on one thread runs the scheduler,
// the signal handler, the watchdog and the metrics endpoint; a sync never overlaps another.
//   service.cpp    start-up, the stop sequence, the run loop
//   scheduler.cpp  when to sync, and one sync round (report, exports, metrics, STATUS)
//   signals.cpp    SIGTERM/SIGINT (stop), SIGHUP (reload), SIGUSR1 (sync now)
//   delivery.cpp   alert delivery: after every sync, on the retry timer, once more at stop

#include "commands.hpp"

#include <subsync/config/config.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/daemon/daemon_metrics.hpp>
#include <subsync/daemon/http_server.hpp>
#include <subsync/daemon/lock.hpp>
#include <subsync/daemon/logging.hpp>
#include <subsync/daemon/notify.hpp>
#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/dispatch.hpp>
#include <subsync/sync/engine.hpp>
#include <subsync/sync/snapshot.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>

namespace subsync::daemon {

class service {
public:
    /// `cfg` has been loaded from `config_path` (reloads read that file again).
    service(std::filesystem::path config_path, config::config cfg, int verbosity);
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    /// Runs until SIGTERM/SIGINT; returns the exit code (0 after a clean stop).
    int run();

private:
    // service.cpp
    enum class lock_wait_result { acquired, timed_out, stopped };
    /// Another subsyncd holds the database: polls its lock for up to daemon.lock_wait (telling
    /// systemd start-up takes longer). stopped = SIGTERM/SIGINT came first.
    lock_wait_result wait_for_lock(std::string& holder);
    void start();
    void begin_stop(int signal_number);
    void finish();
    [[nodiscard]] http_response serve(std::string_view path);

    // scheduler.cpp
    boost::asio::awaitable<void> scheduler();
    /// One sync of every account; returns the STATUS text describing it.
    boost::asio::awaitable<std::string> sync_round();
    [[nodiscard]] std::string after_round(const sync::sync_report& report, std::chrono::steady_clock::duration took);
    /// Starts the wait for the next sync, counted from the start of the last one.
    void schedule_next();

    // delivery.cpp
    /// The only caller of the dispatcher: runs when woken (after a sync), when the head of a
    /// sink is due again, and once more when stopping (within daemon.grace); then complete_stop().
    boost::asio::awaitable<void> delivery_loop();
    /// Makes the delivery loop dispatch now (or right after its running dispatch).
    void wake_delivery();
    /// Hands back what a sync round or a delivery pass freed: SQLite's page cache and the
    /// heap glibc keeps mapped (bench/README.md finding 5). Idle RSS is what is left.
    void shed_memory() noexcept;
    /// The end of the stop sequence, after the last delivery attempt.
    void complete_stop();

    // signals.cpp
    boost::asio::awaitable<void> signal_loop();
    void request_sync();
    void reload();
    void apply_config(config::config cfg);

    std::filesystem::path config_path_;
    config::config cfg_;
    int verbosity_;
    config::environment env_ = config::environment::process();

    boost::asio::io_context io_;
    boost::asio::signal_set signals_;
    boost::asio::steady_timer wake_;   ///< the wait for the next scheduled sync
    boost::asio::steady_timer grace_;  ///< bounds the stop sequence
    boost::asio::cancellation_signal stop_scheduler_;
    boost::asio::cancellation_signal stop_watchdog_;
    notifier notify_;

    std::optional<instance_lock> lock_;
    std::unique_ptr<sync::snapshot_store> store_;
    alerting::rules_hook alert_hook_{cfg_.alerts};  ///< the store runs it in every apply
    std::unique_ptr<sync::sync_engine> engine_;  ///< borrows cfg_, store_ and env_
    daemon_metrics metrics_;
    std::unique_ptr<http_server> http_;
    std::unique_ptr<alerting::alert_dispatcher> dispatcher_;  ///< built and used by delivery_loop only
    boost::asio::steady_timer alert_wake_;  ///< the next retry time of a sink's head, or a wake-up
    bool alerts_due_ = true;                ///< dispatch at the next chance (true: pending rows from before a restart)
    bool delivery_running_ = false;
    bool rebuild_dispatcher_ = false;       ///< the config was reloaded
    std::chrono::steady_clock::time_point stop_deadline_{};  ///< the last delivery attempt ends by then

    std::optional<config::config> pending_config_;  ///< a reload that waits for the running sync
    bool syncing_ = false;
    bool sync_requested_ = false;  ///< SIGUSR1: sync now (or right after the running one)
    bool stopping_ = false;
    bool stopped_ = false;  ///< complete_stop() ran
    int exit_code_ = 0;
    std::uint64_t rounds_ = 0;
    std::chrono::steady_clock::time_point last_start_{};  ///< monotonic: suspend and clock jumps do not count
    std::chrono::steady_clock::time_point next_sync_{};
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace subsync::daemon
