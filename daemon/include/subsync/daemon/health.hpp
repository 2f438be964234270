#pragma once
// /healthz: healthy when the last sync of every configured (account, source) succeeded, and
// succeeded recently enough (within 2 × interval). A pure function of what the daemon knows.

#include <subsync/sync/snapshot.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace subsync::daemon {

/// The latest known outcome of one (account, source).
struct source_status {
    std::string account;
    std::string source;                        ///< "purchased_groups" | "subscription_resources"
    std::optional<sync::run_status> last_status;  ///< none: never synced
    std::int64_t last_finished = 0;            ///< epoch ms of the last run's end
    std::optional<std::int64_t> last_success;  ///< epoch ms of the last "ok" run's end
    std::string last_error;
};

struct health_result {
    bool healthy = false;
    std::string json;  ///< {"status":"ok"|"unhealthy","reasons":[…],"sources":[…]}
};

/// Evaluates `sources` (one per configured (account, source)) at `now` (epoch ms): every last
/// run must be "ok" and its success no older than `max_age`.
[[nodiscard]] health_result evaluate_health(const std::vector<source_status>& sources, std::int64_t now,
                                            std::chrono::milliseconds max_age);

}  // namespace subsync::daemon
