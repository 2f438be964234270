#pragma once
// A throwaway PostgreSQL 15 cluster for the destination tests: initdb + pg_ctl in a temporary
// directory, listening on a unix socket there only (no TCP port to collide on). As root (CI),
// the server runs as `nobody` through runuser, since postgres refuses to run as root.

#include "test_support.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace subsync::test {

class pg_cluster {
public:
    /// A cluster that also listens on 127.0.0.1:`port` with TLS (ssl = on), serving `cert`/`key`
    /// (copied into the cluster's directory, owned by the server's user, mode 0600), and that
    /// refuses TCP connections without TLS (hostssl).
    struct tls_listener {
        int port = 0;
        std::filesystem::path cert, key;
    };

    explicit pg_cluster(std::optional<tls_listener> tls = std::nullopt);  ///< initdb and start; throws with the server's log when either fails
    ~pg_cluster();  ///< stops the server (immediate) and removes the directory
    pg_cluster(const pg_cluster&) = delete;
    pg_cluster& operator=(const pg_cluster&) = delete;

    void stop();   ///< pg_ctl stop -m fast: clients see the server go away
    void start();  ///< pg_ctl start -w: returns when it accepts connections

    /// A new, empty database; its libpq connection string.
    std::string create_database(const std::string& name);
    [[nodiscard]] std::string dsn(const std::string& database) const;
    /// The TCP connection string of a TLS cluster (no sslmode: the caller's config says it).
    [[nodiscard]] std::string tcp_dsn(const std::string& database) const;

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
    std::optional<tls_listener> tls_;
    int port_ = 5432;  // names the socket file in our own directory (and the TCP port with TLS)
    bool running_ = false;
};

}  // namespace subsync::test
