#pragma once
// The standard process_* metrics every Prometheus client library exports (Linux, from /proc/self),
// read fresh at each scrape: CPU, memory, file descriptors and start time.
// https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics

#include <cstdint>
#include <optional>
#include <string>

namespace subsync::daemon {

struct process_stats {
    double cpu_seconds = 0;           ///< user + system time
    double start_time_seconds = 0;    ///< Unix time the process started
    std::uint64_t resident_bytes = 0;
    std::uint64_t virtual_bytes = 0;
    std::uint64_t open_fds = 0;
    std::optional<std::uint64_t> max_fds;  ///< RLIMIT_NOFILE's soft limit; nullopt when unlimited
};

/// This process's stats from /proc/self/stat and /proc/self/fd (both visible under the unit's
/// ProcSubset=pid); nullopt when /proc/self cannot be read.
[[nodiscard]] std::optional<process_stats> read_process_stats();

/// The exposition of `s`: process_cpu_seconds_total, process_start_time_seconds,
/// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds, process_max_fds.
[[nodiscard]] std::string render_process_metrics(const process_stats& s);

}  // namespace subsync::daemon
