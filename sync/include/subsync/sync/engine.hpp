#pragma once

#include <subsync/config/config.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/sync/auth.hpp>
#include <subsync/sync/snapshot.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace subsync::sync {

/// The outcome of one sync of every account: one run per (account, source).
struct sync_report {
    std::vector<run_record> runs;

    /// True when every source listed completely and applied.
    [[nodiscard]] bool all_ok() const;
};

/// What a sync does besides fetching.
class sync_observer;

struct sync_options {
    bool dry_run = false;  ///< fetch and diff, report what would change, commit nothing
    /// Hears every page, retry and finished source (events.hpp); borrowed. None: each is logged.
    sync_observer* observer = nullptr;
};

/// Syncs the accounts of one config on an event loop, as often as asked.
/// Credentials live as long as the engine: an IAM token is reused across
/// syncs until shortly before it expires.
class sync_engine {
public:
    /// `cfg`, `store` and `env` are borrowed and must outlive the engine.
    sync_engine(boost::asio::any_io_executor ex, const config::config& cfg, snapshot_store& store,
                const config::environment& env, clock_fn now);
    ~sync_engine();
    sync_engine(const sync_engine&) = delete;
    sync_engine& operator=(const sync_engine&) = delete;

    /// One sync of every account, both sources of each concurrently; each
    /// (account, source) applies in its own transaction as soon as it is
    /// fetched. Cancelling it rolls back what has not committed. Not reentrant:
    /// await one run before starting the next.
    boost::asio::awaitable<sync_report> run(sync_options opts = {});

private:
    class impl;
    std::unique_ptr<impl> impl_;
};

/// Syncs every account of `cfg` once, both sources of every account
/// concurrently, and applies each (account, source) listing to `store` as soon
/// as it is complete. A failed source is recorded as a failed run and changes
/// nothing; the others still apply. Runs its own event loop until done.
/// Throws only when the store itself fails (disk full, corrupt database).
sync_report sync_once(const config::config& cfg, snapshot_store& store, const config::environment& env,
                      const clock_fn& now, sync_options opts = {});

}  // namespace subsync::sync
