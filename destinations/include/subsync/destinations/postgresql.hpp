#pragma once
// Replication of the local SQLite record into PostgreSQL (docs/destinations.md). The SQLite
// file stays the source of truth; a destination receives, in one PostgreSQL transaction per
// pass, what changed since its cursor (the last replicated changes.seq and sync_runs.id,
// stored in PostgreSQL beside the rows), so the cursor never runs ahead of the rows.

#include <subsync/config/config.hpp>
#include <subsync/config/secret.hpp>
#include <subsync/config/secret_source.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace subsync::destinations {

/// The PostgreSQL schema version this build writes; a newer one is refused.
inline constexpr int pg_schema_version = 2;

/// What one replication pass of one destination did.
struct replication_outcome {
    std::string destination;        ///< its name
    std::string instance;           ///< this database's name at the destination
    bool ok = false;
    bool full_load = false;         ///< everything was (re)loaded with COPY
    std::int64_t shipped_changes = 0;
    std::int64_t cursor_seq = 0;    ///< the destination's last replicated changes.seq after the pass
    std::int64_t lag_changes = 0;   ///< changes in SQLite past the cursor
    std::int64_t local_seq = 0;     ///< the newest changes.seq in SQLite when the pass read it
    std::string error;              ///< when !ok: what failed (redacted)
};

/// One pass: connect (connect_timeout), migrate, ship what changed since the cursor, or
/// everything when `full` or when the destination has no cursor for this instance. Never
/// throws; a destination that is down is an outcome, not an error of the sync. When `*cancel`
/// turns true the pass ends within about 100 ms (rolled back, the cursor unmoved).
replication_outcome replicate_once(const config::destination_config& d, const config::secret& dsn,
                                   const std::filesystem::path& database, bool full = false,
                                   const std::atomic<bool>* cancel = nullptr);

/// Logs a pass: `destination replicated` at info when it shipped changes or reloaded (or always,
/// with `every_pass`: a one-shot run confirms each pass); `destination unavailable` at warn,
/// followed by `then` (what happens next).
void log_outcome(const replication_outcome& o, std::string_view then, bool every_pass = false);

/// Resolves each destination's DSN and runs replicate_once for it, one after the other.
std::vector<replication_outcome> replicate_all(const config::config& cfg, const config::environment& env,
                                               bool full = false);

/// One destination's lag, for `subsyncd status`.
struct destination_lag {
    std::string destination;
    bool known = false;            ///< false: the destination could not be reached (see error)
    std::int64_t cursor_seq = 0;
    std::int64_t lag_changes = 0;  ///< SQLite's newest changes.seq minus the cursor
    std::string error;
};

/// Reads every destination's cursor (bounded by its connect and statement timeouts) and the
/// newest changes.seq of `cfg.storage.database`; never throws.
std::vector<destination_lag> query_lag(const config::config& cfg, const config::environment& env);

/// The daemon's replication: one dedicated thread that runs a pass for every destination when
/// woken (after each apply, after alert deliveries, at start) and retries a destination that is
/// down every retry_interval. notify() never blocks, so the sync loop never waits on the network.
class replicator {
public:
    replicator(const config::config& cfg, const config::environment& env);
    ~replicator();  ///< stops the thread, abandoning (rolling back) a pass in flight
    replicator(const replicator&) = delete;
    replicator& operator=(const replicator&) = delete;

    /// Asks for a pass as soon as the thread is free.
    void notify();
    /// The last known lag of every destination (what /metrics shows).
    [[nodiscard]] std::vector<destination_lag> lag() const;
    /// `subsync_destination_lag_changes{destination}` in the Prometheus text format.
    [[nodiscard]] std::string render_metrics() const;
    /// Passes completed (successful or not), for tests waiting on the thread.
    [[nodiscard]] std::uint64_t passes() const;

private:
    void run();

    struct target {
        config::destination_config cfg;
        config::secret dsn;
        std::string resolve_error;  ///< the DSN could not be read: this destination never connects
    };
    std::filesystem::path database_;
    std::vector<target> targets_;
    mutable std::mutex mutex_;  // guards everything below; the thread and the io_context share it
    std::condition_variable wake_;
    bool pending_ = true;  // a pass at start
    bool stop_ = false;
    std::atomic<bool> cancel_{false};  // set by the destructor: a pass in flight gives up
    std::uint64_t passes_ = 0;
    std::vector<destination_lag> lag_;
    std::int64_t last_local_seq_ = 0;  // the thread's own
    std::thread thread_;
};

}  // namespace subsync::destinations
