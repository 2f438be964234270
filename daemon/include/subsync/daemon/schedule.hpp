#pragma once

#include <chrono>

namespace subsync::daemon {

/// The time from one sync's start to the next: `interval` moved by a uniform random offset in
/// [-jitter, +jitter] (`unit_random` in [0, 1) is the caller's draw, keeping this pure). Never
/// less than zero; with jitter <= interval / 2 (config enforces it) never less than interval / 2.
[[nodiscard]] std::chrono::milliseconds next_sync_delay(std::chrono::milliseconds interval,
                                                        std::chrono::milliseconds jitter, double unit_random) noexcept;

}  // namespace subsync::daemon
