#pragma once

#include <subsync/config/config.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/sync/snapshot.hpp>

#include <functional>
#include <vector>

namespace subsync::sync {

/// The outcome of one sync of every account: one run per (account, source).
struct sync_report {
    std::vector<run_record> runs;

    /// True when every source listed completely and applied.
    [[nodiscard]] bool all_ok() const;
};

/// Syncs every account of `cfg` once, both sources of every account
/// concurrently, and applies each (account, source) listing to `store` as soon
/// as it is complete. A failed source is recorded as a failed run and changes
/// nothing; the others still apply. Runs its own event loop until done.
/// Throws only when the store itself fails (disk full, corrupt database).
sync_report sync_once(const config::config& cfg, snapshot_store& store, const config::environment& env,
                      const clock_fn& now);

}  // namespace subsync::sync
