#include <subsync/daemon/cli.hpp>

#include <csignal>

#ifdef __GLIBC__
#include <malloc.h>
#endif

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
#ifdef __GLIBC__
    // One malloc arena: `sync --once` writes the exports on a second thread while the main one
    // delivers the alerts, and glibc gave that thread an arena of its own, +4.4 MiB of peak RSS
    // for a cold 100k sync (bench/README.md, session 8). Two threads do not contend enough on
    // one arena to need more.
    mallopt(M_ARENA_MAX, 1);
#endif
    return subsync::daemon::run_cli(argc, argv);
}
