#include <subsync/daemon/cli.hpp>

#include <csignal>

int main(int argc, char** argv) {
    // A file-size limit (or a full quota) must surface as a write error that
    // rolls the transaction back and names the database, not kill the process.
    std::signal(SIGXFSZ, SIG_IGN);
    return subsync::daemon::run_cli(argc, argv);
}
