#include <subsync/daemon/schedule.hpp>

#include <algorithm>
#include <cmath>

namespace subsync::daemon {

std::chrono::milliseconds next_sync_delay(std::chrono::milliseconds interval, std::chrono::milliseconds jitter,
                                          double unit_random) noexcept {
    const double u = std::clamp(unit_random, 0.0, 1.0);
    const auto offset = static_cast<std::int64_t>(std::llround(static_cast<double>(jitter.count()) * (2 * u - 1)));
    return std::max(std::chrono::milliseconds(0), interval + std::chrono::milliseconds(offset));
}

}  // namespace subsync::daemon
