#include <subsync/daemon/cli.hpp>

int main(int argc, char** argv) { return subsync::daemon::run_cli(argc, argv); }
