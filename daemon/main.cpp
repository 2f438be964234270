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
    return subsync::daemon::run_cli(argc, argv);
}
