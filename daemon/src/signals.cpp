// What the daemon does on signals: SIGTERM/SIGINT stop it, SIGHUP reloads the config file,
// SIGUSR1 asks for a sync now. Handled on the event loop (asio::signal_set), so a handler
// never races the scheduler.

#include "service.hpp"

#include <subsync/logging/log.hpp>
#include <subsync/config/load.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>

namespace subsync::daemon {

namespace asio = boost::asio;

asio::awaitable<void> service::signal_loop() {
    for (;;) {
        auto [ec, signal_number] = co_await signals_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;  // finish() cancelled the wait
        switch (signal_number) {
            case SIGTERM:
            case SIGINT: begin_stop(signal_number); break;
            case SIGHUP:
                if (!stopping_) reload();
                break;
            case SIGUSR1:
                if (!stopping_) request_sync();
                break;
            default: break;
        }
    }
}

void service::request_sync() {
    sync_requested_ = true;
    if (syncing_) {
        logging::info("sync requested", {{"signal", "SIGUSR1"}}, "a sync is running; another one follows it");
        return;
    }
    logging::info("sync requested", {{"signal", "SIGUSR1"}});
    wake_.cancel();
}

void service::reload() {
    notify_.reloading();
    logging::info("reloading config", {{"file", config_path_.string()}, {"signal", "SIGHUP"}});
    auto loaded = config::load_config(config_path_);
    std::string problem;
    if (!loaded) {
        problem = loaded.error().message;
    } else if (loaded->storage.database != cfg_.storage.database) {
        problem = fmt::format("{}: storage.database: changing the database needs a restart (running on {})",
                              config_path_.string(), cfg_.storage.database.string());
    }
    if (!problem.empty()) {
        // One line per problem, each `FILE:LINE: KEY: what`, as check-config prints them.
        std::size_t begin = 0;
        while (begin < problem.size()) {
            const std::size_t end = std::min(problem.find('\n', begin), problem.size());
            spdlog::error("config reload rejected: {}", std::string_view(problem).substr(begin, end - begin));
            begin = end + 1;
        }
        spdlog::error("config reload rejected: still running on the previous configuration");
        metrics_.count_reload(false);
        notify_.ready(fmt::format("reload rejected ({}); running on the previous configuration",
                                  problem.substr(0, problem.find('\n'))));
        return;
    }
    for (const auto& w : loaded->warnings) spdlog::warn("{}", w);
    metrics_.count_reload(true);
    if (syncing_) {
        spdlog::info("config reload accepted: applies when the running sync ends");
        pending_config_ = std::move(*loaded);
        return;
    }
    apply_config(std::move(*loaded));
}

void service::apply_config(config::config cfg) {
    if (cfg.metrics.listen != cfg_.metrics.listen) {
        logging::warn("metrics.listen changed",
                      {{"listen", cfg.metrics.listen}, {"serving", http_ ? http_->address() : "nothing"}},
                      "takes effect after a restart");
        cfg.metrics = cfg_.metrics;
    }
    const bool timing_changed = cfg.sync.interval != cfg_.sync.interval || cfg.sync.jitter != cfg_.sync.jitter;
    // The engine borrows the config: it goes first, and is rebuilt on the new one (IAM tokens
    // are fetched again, as credentials may have changed too).
    engine_.reset();
    cfg_ = std::move(cfg);
    engine_ = std::make_unique<sync::sync_engine>(io_.get_executor(), cfg_, *store_, env_, wall_clock_now);
    metrics_.declare_series(cfg_);  // a new account's series start at 0
    rebuild_dispatcher_ = true;  // sinks and retry settings take effect at the next dispatch
    setup_logging({cfg_.daemon.level, cfg_.daemon.format, verbosity_});
    if (timing_changed && !syncing_ && rounds_ > 0) {
        schedule_next();
        wake_.cancel();  // the scheduler waits again, for the new deadline
    }
    logging::info("config reloaded", {{"file", config_path_.string()},
                                      {"accounts", cfg_.accounts.size()},
                                      {"interval", config::format_duration(cfg_.sync.interval)},
                                      {"jitter", config::format_duration(cfg_.sync.jitter)}});
    notify_.ready(fmt::format("config reloaded: {} account{}, interval {}", cfg_.accounts.size(),
                              cfg_.accounts.size() == 1 ? "" : "s", config::format_duration(cfg_.sync.interval)));
}

}  // namespace subsync::daemon
