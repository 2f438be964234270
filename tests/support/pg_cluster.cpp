#include "pg_cluster.hpp"

#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

namespace subsync::test {
namespace {

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

std::string find_bin() {
    for (const char* dir : {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"})
        if (std::filesystem::exists(std::filesystem::path(dir) / "initdb")) return dir;
    throw std::runtime_error("PostgreSQL server binaries not found (install postgresql-15: scripts/deps)");
}

int run(const std::string& command) {
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

pg_cluster::pg_cluster(std::optional<tls_listener> tls) : bin_(find_bin()), tls_(std::move(tls)) {
    if (tls_) port_ = tls_->port;
    if (::geteuid() == 0) {
        user_prefix_ = "runuser -u nobody -- ";
        // nobody must reach the directory; only the cluster's own subfolders are its.
        ::chmod(dir_.path().c_str(), 0711);
        std::filesystem::create_directories(dir_ / "data");
        std::filesystem::create_directories(dir_ / "sock");
        if (run("chown nobody " + shell_quote((dir_ / "data").string()) + " " + shell_quote((dir_ / "sock").string()) +
                " " + shell_quote(dir_.path().string())) != 0)
            throw std::runtime_error("chown nobody failed");
    } else {
        std::filesystem::create_directories(dir_ / "sock");
    }
    as_server_user(fmt::format("{}/initdb -D {} -U subsync -A trust --no-sync -E UTF8 --locale=C >{} 2>&1", bin_,
                               shell_quote((dir_ / "data").string()), shell_quote((dir_ / "initdb.log").string())));
    if (tls_) {
        // PostgreSQL refuses a key that others can read or that another user owns.
        for (const auto& [from, name] : {std::pair{tls_->cert, "server.crt"}, std::pair{tls_->key, "server.key"}}) {
            const auto to = dir_ / "data" / name;
            std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
            ::chmod(to.c_str(), 0600);
            if (!user_prefix_.empty() && run("chown nobody " + shell_quote(to.string())) != 0)
                throw std::runtime_error("chown nobody failed");
        }
        // TCP only with TLS: a connection that gets in proves the session was encrypted.
        write_file(dir_ / "data" / "pg_hba_tls.conf", "local all all trust\nhostssl all all 127.0.0.1/32 trust\n");
    }
    start();
}

pg_cluster::~pg_cluster() {
    if (running_)
        run(user_prefix_ + fmt::format("{}/pg_ctl -D {} -m immediate -w stop >/dev/null 2>&1", bin_,
                                       shell_quote((dir_ / "data").string())));
}

void pg_cluster::as_server_user(const std::string& command) const {
    if (run(user_prefix_ + "sh -c " + shell_quote(command)) != 0) {
        std::string log;
        for (const char* f : {"initdb.log", "server.log"})
            if (std::filesystem::exists(dir_ / f)) log += read_file(dir_ / f);
        throw std::runtime_error("PostgreSQL fixture: `" + command + "` failed:\n" + log);
    }
}

void pg_cluster::start() {
    // fsync off: the tests kill subsyncd, never the server, and want speed.
    as_server_user(fmt::format("{}/pg_ctl -D {} -l {} -w -t 60 -o {} start >/dev/null", bin_,
                               shell_quote((dir_ / "data").string()), shell_quote((dir_ / "server.log").string()),
                               shell_quote(fmt::format("-k {} -p {} -c fsync=off -c full_page_writes=off "
                                                       "-c max_connections=50 {}",
                                                       (dir_ / "sock").string(), port_,
                                                       tls_ ? "-c listen_addresses=127.0.0.1 -c ssl=on "
                                                              "-c hba_file=" + (dir_ / "data" / "pg_hba_tls.conf").string()
                                                            : "-c listen_addresses="))));
    running_ = true;
}

void pg_cluster::stop() {
    as_server_user(fmt::format("{}/pg_ctl -D {} -m fast -w stop >/dev/null", bin_, shell_quote((dir_ / "data").string())));
    running_ = false;
}

std::string pg_cluster::dsn(const std::string& database) const {
    return fmt::format("host={} port={} user=subsync dbname={}", (dir_ / "sock").string(), port_, database);
}

std::string pg_cluster::tcp_dsn(const std::string& database) const {
    return fmt::format("host=localhost hostaddr=127.0.0.1 port={} user=subsync dbname={}", port_, database);
}

std::string pg_cluster::create_database(const std::string& name) {
    psql("postgres", fmt::format("CREATE DATABASE {}", name));
    return dsn(name);
}

std::string pg_cluster::psql(const std::string& database, const std::string& sql) const {
    static int n = 0;
    const auto in = dir_ / fmt::format("q{}.sql", ++n);
    const auto out = dir_ / fmt::format("q{}.out", n);
    const auto err = dir_ / fmt::format("q{}.err", n);
    write_file(in, sql);
    const int rc = run(fmt::format("{}/psql -X -A -t -q -v ON_ERROR_STOP=1 {} -f {} >{} 2>{}", bin_,
                                   shell_quote(dsn(database)), shell_quote(in.string()), shell_quote(out.string()),
                                   shell_quote(err.string())));
    std::string result = read_file(out);
    const std::string error = read_file(err);
    std::filesystem::remove(in);
    std::filesystem::remove(out);
    std::filesystem::remove(err);
    if (rc != 0) throw std::runtime_error("psql failed: " + error);
    return result;
}

pg_cluster& pg_cluster::shared() {
    static pg_cluster cluster;
    return cluster;
}

}  // namespace subsync::test
