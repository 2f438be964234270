#include <subsync/daemon/cli.hpp>

#include <csignal>

#include <sqlite3.h>

int main(int argc, char** argv) {
    // A file-size limit (or a full quota) must surface as a write error that
    // rolls the transaction back and names the database, not kill the process.
    std::signal(SIGXFSZ, SIG_IGN);
    // No memory statistics: with them every SQLite allocation takes a global mutex, and nothing
    // here reads sqlite3_memory_used(). Must come before the first connection opens.
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    // The sorter keeps at least this many pages in memory before it writes a sorted run to a
    // temporary file: SQLite's 250 were 1 MB of 4 KiB pages and are 4 MB of the 16 KiB pages a
    // new snapshot has (docs/decisions.md "SQLite pages of 16 KiB"). 64 keeps it at 1 MB.
    sqlite3_config(SQLITE_CONFIG_PMASZ, 64);
    return subsync::daemon::run_cli(argc, argv);
}
