#pragma once
// The systemd service protocol (sd_notify(3)): READY, STATUS, RELOADING, STOPPING and the
// watchdog, spoken without libsystemd (src/systemd_protocol.hpp). Every call is a no-op when
// $NOTIFY_SOCKET is unset, so the daemon runs the same without systemd.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace subsync::daemon {

class notifier {
public:
    notifier();

    /// True when $NOTIFY_SOCKET is set.
    [[nodiscard]] bool enabled() const noexcept { return enabled_; }
    /// Half of $WATCHDOG_USEC (the pace systemd recommends), or zero when no watchdog is asked for.
    [[nodiscard]] std::chrono::microseconds watchdog_pace() const noexcept { return watchdog_pace_; }

    /// READY=1 with a STATUS line: startup is done, or a reload finished.
    void ready(std::string_view status) const;
    /// STATUS= alone (shown by `systemctl status`).
    void status(std::string_view status) const;
    /// EXTEND_TIMEOUT_USEC with a STATUS line: startup takes up to `by` more (systemd 236+), so a
    /// wait longer than the unit's TimeoutStartSec= is not killed.
    void extend_startup(std::chrono::microseconds by, std::string_view status) const;
    /// RELOADING=1 with MONOTONIC_USEC (systemd 253+ checks it; older ones ignore it).
    void reloading() const;
    /// STOPPING=1 with a STATUS line.
    void stopping(std::string_view status) const;
    /// WATCHDOG=1.
    void watchdog() const;

    /// Sends WATCHDOG=1 every watchdog_pace() from the event loop, so a stuck loop stops the
    /// petting and systemd restarts the service. Returns at once when no watchdog is asked for;
    /// runs until cancelled otherwise.
    boost::asio::awaitable<void> pet_watchdog() const;

private:
    void send(const std::string& message) const;

    bool enabled_ = false;
    std::string socket_;  // $NOTIFY_SOCKET
    std::chrono::microseconds watchdog_pace_{0};
};

}  // namespace subsync::daemon
