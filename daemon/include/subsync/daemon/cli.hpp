#pragma once

namespace subsync::daemon {

/// Exit codes, as documented in `subsyncd --help`.
enum exit_code : int { exit_ok = 0, exit_source_failed = 1, exit_usage = 2 };

/// Runs the `subsyncd` command line and returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace subsync::daemon
