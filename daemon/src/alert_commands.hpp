#pragma once
// `subsyncd alerts`: list alerts, show deliveries, redeliver dead letters.

#include <filesystem>
#include <string>

namespace subsync::daemon {

struct alerts_options {
    bool all = false;              ///< resolved ones too
    std::string format = "table";  ///< table | json (one object per line) | csv
    bool deliveries = false;       ///< per sink: counts and recent attempts instead of alerts
    bool redeliver = false;        ///< dead letters back to pending, then deliver now
    std::string sink;              ///< --redeliver / --deliveries: only this sink
    int limit = 20;                ///< --deliveries: attempts shown per sink
};

/// Runs `subsyncd alerts`; exit code 0, or 2 for a bad config or flag.
int run_alerts(const std::filesystem::path& config_path, const alerts_options& opts);

}  // namespace subsync::daemon
