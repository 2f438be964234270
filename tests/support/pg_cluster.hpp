#pragma once
// A throwaway PostgreSQL 15 cluster for the destination tests: initdb + pg_ctl in a temporary
// directory, listening on a unix socket there only (no TCP port to collide on). As root (CI),
// the server runs as `nobody` through runuser, since postgres refuses to run as root.

#include "test_support.hpp"

#include <string>

namespace subsync::test {

class pg_cluster {
public:
    pg_cluster();   ///< initdb and start; throws with the server's log when either fails
    ~pg_cluster();  ///< stops the server (immediate) and removes the directory
    pg_cluster(const pg_cluster&) = delete;
    pg_cluster& operator=(const pg_cluster&) = delete;

    void stop();   ///< pg_ctl stop -m fast: clients see the server go away
    void start();  ///< pg_ctl start -w: returns when it accepts connections

    /// A new, empty database; its libpq connection string.
    std::string create_database(const std::string& name);
    [[nodiscard]] std::string dsn(const std::string& database) const;

    /// Runs `sql` with psql (-X -A -t -q, ON_ERROR_STOP) against `database` and returns its
    /// output; throws with psql's stderr when it fails. psql, not our client, reads the results.
    std::string psql(const std::string& database, const std::string& sql) const;

    /// The server's log (pg_ctl -l): what `log_statement` writes, for tests that count statements.
    [[nodiscard]] std::filesystem::path log_path() const { return dir_ / "server.log"; }

    /// The shared cluster of this test binary, started on first use and stopped at exit.
    static pg_cluster& shared();

private:
    void as_server_user(const std::string& command) const;

    temp_dir dir_;
    std::string bin_;
    std::string user_prefix_;  // "runuser -u nobody -- " as root, else empty
    bool running_ = false;
};

}  // namespace subsync::test
