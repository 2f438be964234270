#pragma once

namespace subsync::daemon {

/// Exit codes, as documented in `subsyncd --help`.
/// Never renumbered: scripts and timers branch on them.
enum exit_code : int { exit_ok = 0, exit_source_failed = 1, exit_usage = 2, exit_incomplete = 3 };

/// Runs the `subsyncd` command line and returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace subsync::daemon
