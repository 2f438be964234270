#include <subsync/logging/log.hpp>
#include <subsync/daemon/notify.hpp>

#include "systemd_protocol.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

namespace subsync::daemon {
namespace {

namespace asio = boost::asio;

// One assignment per line in the protocol: a newline inside STATUS would start another.
std::string one_line(std::string_view s) {
    std::string out(s);
    std::replace(out.begin(), out.end(), '\n', ' ');
    return out;
}

}  // namespace

notifier::notifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && *socket != '\0';
    if (!enabled_) return;
    socket_ = socket;
    // A watchdog meant for another process (WATCHDOG_PID) is not ours.
    const auto timeout = systemd::watchdog_timeout(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), getpid());
    watchdog_pace_ = timeout / 2;
}

void notifier::send(const std::string& message) const {
    if (!enabled_) return;
    if (const auto ec = systemd::notify(socket_, message))
        logging::warn("sd_notify failed", {{"error", ec.message()}});
}

void notifier::ready(std::string_view status) const { send(fmt::format("READY=1\nSTATUS={}", one_line(status))); }

void notifier::status(std::string_view status) const { send(fmt::format("STATUS={}", one_line(status))); }

void notifier::reloading() const {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
    send(fmt::format("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC={}", usec));
}

void notifier::stopping(std::string_view status) const { send(fmt::format("STOPPING=1\nSTATUS={}", one_line(status))); }

void notifier::watchdog() const { send("WATCHDOG=1"); }

void notifier::extend_startup(std::chrono::microseconds by, std::string_view status) const {
    send(fmt::format("EXTEND_TIMEOUT_USEC={}\nSTATUS={}", by.count(), one_line(status)));
}

asio::awaitable<void> notifier::pet_watchdog() const {
    if (watchdog_pace_.count() <= 0) co_return;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto next = asio::steady_timer::clock_type::now();
    for (;;) {
        watchdog();
        // Paced from the previous deadline, so the pace does not drift; after a stall, from now
        // (no burst of pets to catch up).
        next = std::max(next + watchdog_pace_, asio::steady_timer::clock_type::now());
        timer.expires_at(next);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
    }
}

}  // namespace subsync::daemon
