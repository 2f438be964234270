#pragma once

namespace subsync::daemon {

/// Exit codes, as documented in `subsyncd --help`.
/// Never renumbered: scripts and timers branch on them. exit_locked is apart from exit_usage
/// because it is transient: the unit's RestartPreventExitStatus=2 must not keep the daemon down
/// after it met a one-shot sync's lock.
enum exit_code : int {
    exit_ok = 0,
    exit_source_failed = 1,
    exit_usage = 2,
    exit_incomplete = 3,
    exit_locked = 4,  ///< another subsyncd holds the database lock
    exit_stale = 5,   ///< status: a source never synced, or its last run ended longer ago than 2 × interval
};

/// Runs the `subsyncd` command line and returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace subsync::daemon
