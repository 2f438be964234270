// PostgreSQL destinations, their options and their edges, against a real PostgreSQL 15
// (support/pg_cluster) and the real subsyncd: `tables`, TLS as libpq takes it, what
// `subsyncd status` shows, and servers that accept a connection and never answer. The
// acceptance (three instances, down for three rounds, SIGKILL, statements) is in
// destinations_pg_test.cpp.

#include "support/daemon_process.hpp"
#include "support/destinations_fixture.hpp"

#include <subsync/emulator/server.hpp>
#include <subsync/config/load.hpp>
#include <subsync/destinations/postgresql.hpp>
#include <subsync/exporters/table_export.hpp>

#include <SQLiteCpp/Database.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <csignal>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <random>
#include <thread>

namespace subsync {
namespace {

using namespace destinations_test;  // with test::pg_cluster, run_subsyncd and temp_dir

// `tables` ships only the tables it lists; the others stay empty for this instance.
TEST_F(Destinations, TablesShipsOnlyTheListedTables) {
    auto d = make("partial", "prod");
    test::write_file(d.config, test::read_file(d.config) + "tables = [\"purchased_groups\", \"sync_runs\"]\n");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    emu_->set_dataset(emulator::dataset::generated(130, 9, 2));
    ASSERT_EQ(sync_once(d).exit_code, 0);
    for (const char* t : {"purchased_groups", "sync_runs"}) EXPECT_EQ(compare_table(pg_, database_, d, t), "") << t;
    for (const char* t : {"subscription_resources", "changes", "alerts"})
        EXPECT_EQ(pg_.psql(database_, fmt::format("SELECT count(*) FROM subsync.{} WHERE instance = 'partial'", t)),
                  "0\n")
            << t << " is not listed in tables";
    EXPECT_NE(pg_.psql(database_, "SELECT count(*) FROM subsync.purchased_groups WHERE instance = 'partial'"), "0\n");
}

// A table dropped from `tables` is left as it was: neither a full reload nor later passes
// delete, replace or add its rows for this instance, while the listed tables follow SQLite.
TEST_F(Destinations, ATableDroppedFromTablesIsLeftAsItWas) {
    auto d = make("narrowed", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    const auto snapshot = [&](const char* t) {
        return pg_.psql(database_, fmt::format("SELECT count(*) || ' ' || coalesce(max(seq), 0) FROM subsync.{} "
                                               "WHERE instance = 'narrowed'",
                                               t));
    };
    const std::string changes_before = snapshot("changes");
    ASSERT_NE(changes_before, "0 0\n");
    test::write_file(d.config, test::read_file(d.config) + "tables = [\"purchased_groups\"]\n");
    const auto full = run_subsyncd({"replicate", "--full", "--config", d.config.string()}, env());
    ASSERT_EQ(full.exit_code, 0) << full.err;
    emu_->set_dataset(emulator::dataset::generated(140, 9, 3));
    ASSERT_EQ(sync_once(d).exit_code, 0);
    EXPECT_EQ(snapshot("changes"), changes_before) << "changes is not listed: its rows must stay as they were";
    EXPECT_EQ(compare_table(pg_, database_, d, "purchased_groups"), "");
    EXPECT_NE(compare_table(pg_, database_, d, "changes"), "") << "the new round's changes were shipped anyway";
}

/// A CA and a server certificate for localhost / 127.0.0.1 signed by it, made by the openssl CLI.
struct test_pki {
    std::filesystem::path ca, cert, key, other_ca;
};

test_pki make_pki(const std::filesystem::path& dir) {
    auto sh = [](const std::string& command) {
        ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
    };
    const std::string d = dir.string();
    test::write_file(dir / "san.ext", "subjectAltName = DNS:localhost, IP:127.0.0.1\n");
    for (const char* ca : {"ca", "other-ca"})
        sh(fmt::format("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=subsync-test-{1} -keyout {0}/{1}.key "
                       "-out {0}/{1}.pem",
                       d, ca));
    sh(fmt::format("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout {0}/server.key -out {0}/server.csr",
                   d));
    sh(fmt::format("openssl x509 -req -in {0}/server.csr -CA {0}/ca.pem -CAkey {0}/ca.key -CAcreateserial -days 2 "
                   "-extfile {0}/san.ext -out {0}/server.pem",
                   d));
    return {dir / "ca.pem", dir / "server.pem", dir / "server.key", dir / "other-ca.pem"};
}

/// A TCP port on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers:
/// a PostgreSQL that hangs.
class silent_server {
public:
    silent_server() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 16) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("silent_server: cannot listen");
        port_ = ntohs(a.sin_port);
    }
    ~silent_server() { ::close(fd_); }
    silent_server(const silent_server&) = delete;
    silent_server& operator=(const silent_server&) = delete;
    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] std::string dsn() const { return fmt::format("host=127.0.0.1 port={} user=subsync dbname=x", port_); }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

/// A TCP port on 127.0.0.1 that is free now (a listener's, closed again).
int free_tcp_port() { return silent_server().port(); }

// TLS as libpq takes it: sslmode = "verify-full" with the server's CA as sslrootcert
// replicates; the wrong CA fails the pass with the reason, and the sync itself is unaffected.
TEST_F(Destinations, VerifyFullWithTheServersCaReplicatesAndAWrongCaIsRefused) {
    temp_dir keys;
    const auto pki = make_pki(keys.path());
    pg_cluster tls_pg(pg_cluster::tls_listener{free_tcp_port(), pki.cert, pki.key});
    const std::string database = "t_tls";
    tls_pg.create_database(database);
    auto d = make_instance("secure", "prod", emu_->base_url(), dir_ / "ca.pem", tls_pg.tcp_dsn(database));
    const std::string base = test::read_file(d.config);

    test::write_file(d.config, base + fmt::format("sslmode = \"verify-full\"\nsslrootcert = \"{}\"\n", pki.other_ca.string()));
    const auto refused = sync_once(d);
    EXPECT_EQ(refused.exit_code, 0) << "a destination never fails the sync: " << refused.err;
    EXPECT_NE(refused.err.find("destination unavailable"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("certificate verify failed"), std::string::npos) << refused.err;
    EXPECT_EQ(refused.err.find(password), std::string::npos) << "the DSN's password leaked: " << refused.err;

    test::write_file(d.config, base + fmt::format("sslmode = \"verify-full\"\nsslrootcert = \"{}\"\n", pki.ca.string()));
    const auto ok = sync_once(d);
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(ok.err.find("destination replicated"), std::string::npos) << ok.err;
    EXPECT_EQ(compare_table(tls_pg, database, d, "purchased_groups"), "");  // through TLS: the server takes nothing else

    test::write_file(d.config, base + "sslmode = \"disable\"\n");
    const auto plain = sync_once(d);
    EXPECT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_NE(plain.err.find("no encryption"), std::string::npos) << "the server refuses a session without TLS: "
                                                                  << plain.err;
}


// `subsyncd status` as a new user meets it: a destination added to a database synced without
// one is behind by every change (no cursor yet); `subsyncd replicate` brings it to 0; a
// PostgreSQL that never answers costs status the destination's connect_timeout (5s), says
// "unreachable", prints no DSN or password, and leaves the exit code to the sources.
TEST_F(Destinations, StatusCountsEveryChangeBeforeTheFirstPassAndAnswersASilentServerInTime) {
    const auto d = make("status", "prod");
    std::string toml;
    {
        std::ifstream in(d.config);
        toml.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto without = *d.dir / "without-destination.toml";
    test::write_file(without, toml.substr(0, toml.find("[[destination]]")));
    const auto synced = run_subsyncd({"sync", "--once", "--config", without.string()}, env());
    ASSERT_EQ(synced.exit_code, 0) << synced.err;
    SQLite::Database local(d.db().string(), SQLite::OPEN_READONLY);
    const auto changes = local.execAndGet("SELECT count(*) FROM changes").getInt64();
    ASSERT_GT(changes, 0);

    const auto before = run_subsyncd({"status", "--config", d.config.string(), "--format", "json"}, env());
    EXPECT_EQ(before.exit_code, 0) << before.out << before.err;
    EXPECT_NE(before.out.find(fmt::format(R"("destination":"postgresql","reachable":true,"cursor_seq":0,)"
                                          R"("lag_changes":{},"error":null}})",
                                          changes)),
              std::string::npos)
        << "expected every one of the " << changes << " changes as lag:\n" << before.out;

    const auto replicated = run_subsyncd({"replicate", "--config", d.config.string()}, env());
    ASSERT_EQ(replicated.exit_code, 0) << replicated.err;
    const auto after = run_subsyncd({"status", "--config", d.config.string()}, env());
    EXPECT_EQ(after.exit_code, 0) << after.out << after.err;
    EXPECT_NE(after.out.find(fmt::format("destination postgresql    cursor at change {}, 0 changes behind",
                                         local.execAndGet("SELECT max(seq) FROM changes").getInt64())),
              std::string::npos)
        << after.out;

    silent_server silent;
    test::write_file(*d.dir / "dsn", silent.dsn() + " password=" + password + "\n");
    for (const char* format : {"table", "json"}) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto st = run_subsyncd({"status", "--config", d.config.string(), "--format", format}, env());
        const auto took = std::chrono::steady_clock::now() - t0;
        EXPECT_EQ(st.exit_code, 0) << "a destination never changes status's exit code:\n" << st.out << st.err;
        EXPECT_LT(took, std::chrono::seconds(30)) << "the connect deadline did not bound status";
        EXPECT_NE(st.out.find(std::string(format) == "json" ? R"("destination":"postgresql","reachable":false,)"
                                                            : "destination postgresql    unreachable: "),
                  std::string::npos)
            << st.out;
        EXPECT_NE(st.out.find("timed out"), std::string::npos) << st.out;
        EXPECT_EQ((st.out + st.err).find(password), std::string::npos) << "the DSN's password leaked: " << st.out;
        EXPECT_EQ((st.out + st.err).find(silent.dsn()), std::string::npos) << "the DSN leaked: " << st.out;
    }
}

// A PostgreSQL that never answers costs `sync --once` its connect deadline (connect_timeout =
// 5s in make_instance) and nothing else; a stopping daemon gives up the pass at once instead
// of waiting out a 10-minute deadline.
TEST_F(Destinations, SilentServerCostsTheDeadlineAndNeverTheStop) {
    silent_server silent;
    const auto once = make_instance("silent", "prod", emu_->base_url(), dir_ / "ca.pem", silent.dsn());
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = sync_once(once);
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
    EXPECT_LT(took, std::chrono::seconds(60)) << "the connect deadline did not hold";

    instance inst;
    test::write_file(*inst.dir / "dsn", silent.dsn() + "\n");
    auto c = test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string());
    c.interval = "1h";
    c.extra = fmt::format("[[destination]]\ntype = \"postgresql\"\ninstance = \"stopping\"\ndsn_file = \"{}\"\n"
                          "connect_timeout = \"10m\"\n",
                          (*inst.dir / "dsn").string());
    const auto cfg = test::write_daemon_config(inst.dir->path(), c);
    test::notify_socket systemd(*inst.dir / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}},
                           inst.dir->path());
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();
    d.signal(SIGTERM);
    const auto code = d.wait(std::chrono::seconds(20));
    ASSERT_TRUE(code) << "subsyncd waited on the hanging destination instead of stopping\n" << d.err();
    EXPECT_EQ(*code, 0) << d.err();
}

}  // namespace
}  // namespace subsync
