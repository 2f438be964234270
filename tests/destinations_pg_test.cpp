// PostgreSQL destinations (issue 18) against a real PostgreSQL 15 started in a temp dir
// (support/pg_cluster), the real subsyncd binary and the emulator. What PostgreSQL holds is
// read with psql and compared, as JSON values, with `subsyncd export --format jsonl` of the
// same SQLite file: every column, null and absent kept apart.

#include "support/daemon_process.hpp"
#include "support/emulated_cloud.hpp"
#include "support/pg_cluster.hpp"
#include "support/test_support.hpp"

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

using test::pg_cluster;
using test::run_subsyncd;
using test::temp_dir;

constexpr const char* token = "pg-test-token";
// The connection string carries a password (ignored by the fixture's trust auth): it must
// never appear in any output.
constexpr const char* password = "pw-Zq9-never-printed";
constexpr std::array<const char*, 5> tables{"purchased_groups", "subscription_resources", "changes", "sync_runs",
                                            "alerts"};

std::string database_name() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "t_";
    for (char c : std::string(info->name())) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name.substr(0, 60);
}

/// One daemon: its directory, config file and SQLite file.
struct instance {
    std::unique_ptr<temp_dir> dir = std::make_unique<temp_dir>();
    std::string name;
    std::filesystem::path config;

    [[nodiscard]] std::filesystem::path db() const { return *dir / "snapshot.db"; }
};

instance make_instance(const std::string& name, const std::string& account, const std::string& base_url,
                       const std::filesystem::path& ca, const std::string& dsn) {
    instance i;
    i.name = name;
    i.config = *i.dir / "subsync.toml";
    test::write_file(*i.dir / "dsn", dsn + " password=" + password + "\n");
    ::chmod((*i.dir / "dsn").c_str(), 0600);
    test::write_file(i.config, fmt::format(R"([storage]
database   = "{0}/snapshot.db"
export_dir = "{0}/exports"
[sync]
page_size = 100
concurrency = 4
backoff_base = "10ms"
backoff_max = "100ms"
[tls]
ca_file = "{1}"
[[account]]
name = "{2}"
apig_endpoint = "{3}"
secmaster_endpoint = "{3}"
[account.auth]
token_env = "SUBSYNC_TEST_TOKEN"
[[destination]]
type = "postgresql"
instance = "{4}"
dsn_file = "{0}/dsn"
connect_timeout = "5s"
statement_timeout = "30s"
batch_rows = 97
)",
                                           i.dir->path().string(), ca.string(), account, base_url, name));
    return i;
}

std::map<std::string, std::string> env() { return {{"SUBSYNC_TEST_TOKEN", token}}; }

test::run_result sync_once(const instance& i) {
    return run_subsyncd({"sync", "--once", "--config", i.config.string()}, env());
}

/// The SQL that renders a PostgreSQL row as the JSON export renders the SQLite row: times as
/// ISO-8601 UTC (".mmm" only when not zero), absent fields left out.
std::string export_shaped(const std::string& table) {
    const auto cols = exporters::export_columns(*exporters::parse_table(table));
    std::string pairs, nulls;
    for (const auto& c : cols) {
        const std::string q = fmt::format("\"{}\"", c.name);
        std::string value = q;
        if (c.type == sync::column_type::time)
            value = fmt::format("to_jsonb(to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
                                "date_trunc('second', {0}) = {0} THEN '' ELSE to_char({0} AT TIME ZONE 'UTC', '.MS') "
                                "END || 'Z')",
                                q);
        pairs += fmt::format("{}'{}', {}", pairs.empty() ? "" : ", ", c.name, value);
        nulls += fmt::format("{}CASE WHEN {} IS NULL THEN '{}' END", nulls.empty() ? "" : ", ", q, c.name);
    }
    std::string doc = fmt::format("jsonb_build_object({})", pairs);
    // Item tables keep absent fields in `absent`; in the change feed every SQL NULL is absent.
    if (table == "purchased_groups" || table == "subscription_resources") doc += " - absent";
    else if (table == "changes") doc += fmt::format(" - array_remove(ARRAY[{}]::text[], NULL)", nulls);
    return doc;
}

/// "" when PostgreSQL's `table` for `inst` equals `subsyncd export --table T --format jsonl`; else what differs.
std::string compare_table(pg_cluster& pg, const std::string& database, const instance& inst, const std::string& table) {
    const auto exported = run_subsyncd({"export", "--config", inst.config.string(), "--table", table, "--format", "jsonl"});
    if (exported.exit_code != 0) return "export failed: " + exported.err;
    std::string sql = "CREATE TEMP TABLE expected (doc jsonb);\n";
    for (const auto& line : test::split_lines(exported.out))
        sql += "INSERT INTO expected VALUES ($subsync_cmp$" + line + "$subsync_cmp$);\n";
    sql += fmt::format("CREATE TEMP TABLE actual AS SELECT {} AS doc FROM subsync.{} WHERE instance = '{}';\n",
                       export_shaped(table), table, inst.name);
    sql += "SELECT (SELECT count(*) FROM expected) || ' ' || (SELECT count(*) FROM actual) || ' ' || "
           "coalesce((SELECT string_agg('missing ' || doc::text, E'\\n') FROM (SELECT doc FROM expected EXCEPT ALL "
           "SELECT doc FROM actual LIMIT 3) x), '') || coalesce((SELECT string_agg('extra ' || doc::text, E'\\n') "
           "FROM (SELECT doc FROM actual EXCEPT ALL SELECT doc FROM expected LIMIT 3) y), '');\n";
    const std::string out = pg.psql(database, sql);
    const auto rows = test::split_lines(exported.out).size();
    const std::string same = fmt::format("{} {} \n", rows, rows);
    if (out == same) return "";
    return fmt::format("{} (instance {}): expected rows, actual rows, differences: {}", table, inst.name, out);
}

void expect_equal_everywhere(pg_cluster& pg, const std::string& database, const instance& inst) {
    for (const char* t : tables) EXPECT_EQ(compare_table(pg, database, inst, t), "") << t;
}

std::string sqlite_seqs(const instance& i) {
    SQLite::Database db(i.db().string(), SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT coalesce(group_concat(seq, ','), '') FROM (SELECT seq FROM changes ORDER BY seq)")
        .getString();
}

std::string pg_seqs(pg_cluster& pg, const std::string& database, const instance& i) {
    auto s = pg.psql(database, fmt::format("SELECT coalesce(string_agg(seq::text, ',' ORDER BY seq), '') FROM "
                                           "subsync.changes WHERE instance = '{}'",
                                           i.name));
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

class Destinations : public ::testing::Test {
protected:
    void SetUp() override {
        emu_ = test::start_emulator({}, emulator::dataset::generated(120, 10, 1), token, dir_ / "ca.pem");
        dsn_ = pg_.create_database(database_);
    }
    instance make(const std::string& name, const std::string& account) {
        return make_instance(name, account, emu_->base_url(), dir_ / "ca.pem", dsn_);
    }

    pg_cluster& pg_ = pg_cluster::shared();
    std::string database_ = database_name();
    std::string dsn_;
    temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
};

// Acceptance 1: three daemons (instances), distinct accounts, one database; after syncs with
// changes, removals and alerts, each instance's tables in PostgreSQL equal its exports.
TEST_F(Destinations, ThreeInstancesReplicateIntoOneDatabaseEqualToTheirExports) {
    std::vector<instance> daemons;
    for (int i = 1; i <= 3; ++i) daemons.push_back(make(fmt::format("site-{}", i), fmt::format("acct{}", i)));
    const std::vector<emulator::dataset> rounds{
        emulator::dataset::generated(120, 10, 1), emulator::dataset::generated(140, 12, 2),
        emulator::dataset::generated(90, 7, 3),  // removals
        emulator::dataset::generated(130, 9, 4)};
    for (const auto& data : rounds) {
        emu_->set_dataset(data);
        for (const auto& d : daemons) {
            const auto r = sync_once(d);
            ASSERT_EQ(r.exit_code, 0) << r.err;
            EXPECT_EQ(r.err.find(password), std::string::npos) << "the DSN's password leaked: " << r.err;
        }
    }
    for (const auto& d : daemons) {
        SCOPED_TRACE(d.name);
        expect_equal_everywhere(pg_, database_, d);
        EXPECT_EQ(pg_seqs(pg_, database_, d), sqlite_seqs(d));
    }
    // The alerts and removals the acceptance asks for did happen.
    EXPECT_NE(pg_.psql(database_, "SELECT count(*) FROM subsync.alerts"), "0\n");
    EXPECT_NE(pg_.psql(database_, "SELECT count(*) FROM subsync.changes WHERE kind = 'removed'"), "0\n");
    EXPECT_EQ(pg_.psql(database_, "SELECT count(DISTINCT instance) FROM subsync.sync_runs"), "3\n");
}

/// The statements PostgreSQL logged for `database_` since `from` (log_statement = 'all').
std::vector<std::string> statements_since(const pg_cluster& pg, std::uintmax_t from) {
    std::ifstream log(pg.log_path());
    log.seekg(static_cast<std::streamoff>(from));
    std::vector<std::string> out;
    for (std::string line; std::getline(log, line);) {
        for (const char* mark : {"LOG:  statement: ", "LOG:  execute <unnamed>: ", "LOG:  execute "})
            if (const auto at = line.find(mark); at != std::string::npos) {
                out.push_back(line.substr(at + std::strlen(mark)));
                break;
            }
    }
    return out;
}

// Acceptance 4, the statements: a re-sync that changed nothing ships its own sync_runs row and
// moves the cursor; no item, change or alert row is sent (the alerts table was replaced on every
// pass before).
TEST_F(Destinations, UnchangedReSyncShipsOnlyItsRunRowAndTheCursor) {
    const auto d = make("quiet", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    ASSERT_EQ(sync_once(d).exit_code, 0);  // the first re-sync may still move alert state
    pg_.psql(database_, fmt::format("ALTER DATABASE {} SET log_statement = 'all'", database_));
    const auto from = std::filesystem::file_size(pg_.log_path());
    const auto r = sync_once(d);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_NE(r.err.find("added=0 changed=0 removed=0"), std::string::npos) << r.err;
    pg_.psql(database_, fmt::format("ALTER DATABASE {} RESET log_statement", database_));

    auto statements = statements_since(pg_, from);
    std::erase_if(statements, [](const std::string& s) { return s.starts_with("ALTER DATABASE"); });  // ours
    std::string all;
    for (const auto& s : statements) all += s + "\n";
    std::size_t run_rows = 0;
    for (const auto& s : statements) {
        for (const char* table : {"purchased_groups", "subscription_resources", "\"changes\"", "\"alerts\""})
            EXPECT_EQ(s.find(table), std::string::npos) << "shipped " << table << ":\n" << all;
        if (s.find("INSERT INTO \"subsync\".\"sync_runs\"") != std::string::npos) ++run_rows;
    }
    EXPECT_EQ(run_rows, 1u) << all;
    // SET statement_timeout; the schema check (BEGIN, lock, CREATE … IF NOT EXISTS, version,
    // COMMIT); the pass (BEGIN, lock, cursor, the run rows, cursor, COMMIT).
    EXPECT_LE(statements.size(), 12u) << all;
    expect_equal_everywhere(pg_, database_, d);
}

// Acceptance 2: PostgreSQL stopped for three rounds: the syncs exit 0 as before, and once it
// is back the destination catches up with no gap and no duplicate in changes.
TEST_F(Destinations, DownForThreeRoundsThenCatchesUpWithoutGapOrDuplicate) {
    const auto d = make("solo", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    expect_equal_everywhere(pg_, database_, d);

    pg_.stop();
    for (std::uint64_t seed = 2; seed <= 4; ++seed) {
        emu_->set_dataset(emulator::dataset::generated(100 + 10 * seed, 8, seed));
        const auto r = sync_once(d);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.err.find("destination unavailable"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find(password), std::string::npos) << "the DSN's password leaked: " << r.err;
    }
    // What `subsyncd status` shows: the destination cannot be reached, and says why.
    auto cfg = config::load_config(d.config);
    ASSERT_TRUE(cfg) << cfg.error().message;
    const auto down = destinations::query_lag(*cfg, config::environment::process());
    ASSERT_EQ(down.size(), 1u);
    EXPECT_FALSE(down[0].known);
    EXPECT_NE(down[0].error.find("connect"), std::string::npos) << down[0].error;
    EXPECT_EQ(down[0].error.find(password), std::string::npos) << down[0].error;
    // The real `subsyncd status`: the line says so, and the exit code stays the sources' own.
    for (const char* format : {"table", "json"}) {
        const auto st = run_subsyncd({"status", "--config", d.config.string(), "--format", format}, env());
        EXPECT_EQ(st.exit_code, 0) << "a destination never changes status's exit code:\n" << st.out << st.err;
        EXPECT_NE(st.out.find(std::string(format) == "json" ? R"("destination":"postgresql","reachable":false,)"
                                                            : "destination postgresql    unreachable: "),
                  std::string::npos)
            << st.out;
        EXPECT_EQ(st.out.find(password), std::string::npos) << "the DSN's password leaked: " << st.out;
    }

    pg_.start();
    const auto cursor_before = std::stoll(pg_.psql(
        database_, "SELECT last_seq FROM subsync.replication_cursor WHERE instance = 'solo'"));
    SQLite::Database local(d.db().string(), SQLite::OPEN_READONLY);
    const auto local_seq = local.execAndGet("SELECT max(seq) FROM changes").getInt64();
    const auto back = destinations::query_lag(*cfg, config::environment::process());
    ASSERT_TRUE(back.at(0).known) << back.at(0).error;
    EXPECT_EQ(back.at(0).cursor_seq, cursor_before);
    EXPECT_EQ(back.at(0).lag_changes, local_seq - cursor_before);
    EXPECT_GT(back.at(0).lag_changes, 0);
    const auto behind = run_subsyncd({"status", "--config", d.config.string(), "--format", "json"}, env());
    EXPECT_NE(behind.out.find(fmt::format(R"("destination":"postgresql","reachable":true,"cursor_seq":{},)"
                                          R"("lag_changes":{},)",
                                          cursor_before, local_seq - cursor_before)),
              std::string::npos)
        << behind.out;

    // The next run ships the backlog in one pass.
    ASSERT_EQ(sync_once(d).exit_code, 0);
    EXPECT_EQ(destinations::query_lag(*cfg, config::environment::process()).at(0).lag_changes, 0);
    const auto caught_up = run_subsyncd({"status", "--config", d.config.string()}, env());
    EXPECT_NE(caught_up.out.find(fmt::format("destination postgresql    cursor at change {}, 0 changes behind",
                                             local.execAndGet("SELECT max(seq) FROM changes").getInt64())),
              std::string::npos)
        << caught_up.out;
    EXPECT_EQ(pg_seqs(pg_, database_, d), sqlite_seqs(d)) << "a gap or a duplicate in changes";
    expect_equal_everywhere(pg_, database_, d);
}

// Acceptance 3: SIGKILL at 30 seeded random instants of a sync and its replication: the cursor
// never runs ahead of the rows, and after a restart the destination equals the snapshot.
TEST_F(Destinations, KillNineDuringReplicationNeverPutsTheCursorAheadOfTheRows) {
    const auto a = emulator::dataset::generated(250, 15, 1);
    const auto b = emulator::dataset::generated(250, 15, 2);
    emu_->set_dataset(a);
    const auto d = make("killed", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    const auto t0 = std::chrono::steady_clock::now();
    emu_->set_dataset(b);
    ASSERT_EQ(sync_once(d).exit_code, 0);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);

    std::mt19937 rng(20261204);
    std::uniform_int_distribution<int> delay(0, static_cast<int>(took.count()) + 20);
    const std::string invariant = fmt::format(
        "SELECT c.last_seq = coalesce(max(x.seq), 0) AND count(x.seq) = c.last_seq FROM subsync.replication_cursor c "
        "LEFT JOIN subsync.changes x ON x.instance = c.instance AND x.seq <= c.last_seq WHERE c.instance = '{}' "
        "GROUP BY c.last_seq",
        d.name);
    int killed = 0;
    int killed_before_replicated = 0;  // after the SQLite apply committed, before the destination had it
    for (int i = 0; i < 30; ++i) {
        SCOPED_TRACE(testing::Message() << "kill " << i);
        emu_->set_dataset(i % 2 == 0 ? a : b);
        auto child = test::spawn_subsyncd({"sync", "--once", "--config", d.config.string()}, env());
        std::this_thread::sleep_for(std::chrono::milliseconds(delay(rng)));
        ::kill(child.pid, SIGKILL);
        const bool was_killed = test::finish(child).exit_code == 128 + SIGKILL;
        if (was_killed) ++killed;
        ASSERT_EQ(pg_.psql(database_, invariant), "t\n") << "the cursor is ahead of (or behind) the changes it says";
        const auto cursor = std::stoll(pg_.psql(
            database_, fmt::format("SELECT last_seq FROM subsync.replication_cursor WHERE instance = '{}'", d.name)));
        {
            SQLite::Database db(d.db().string(), SQLite::OPEN_READONLY);
            const auto local = db.execAndGet("SELECT coalesce(max(seq), 0) FROM changes").getInt64();
            ASSERT_LE(cursor, local);
            if (was_killed && cursor < local) ++killed_before_replicated;
        }
        // The restart: a pass resumes from the cursor (what the daemon does at start) and the
        // destination equals the snapshot, whatever instant the kill hit.
        const auto restart = run_subsyncd({"replicate", "--config", d.config.string()}, env());
        ASSERT_EQ(restart.exit_code, 0) << restart.err;
        if (i % 10 == 9) expect_equal_everywhere(pg_, database_, d);
    }
    EXPECT_EQ(pg_seqs(pg_, database_, d), sqlite_seqs(d));
    EXPECT_GE(killed, 15) << "most kills must land while subsyncd runs";
    EXPECT_GE(killed_before_replicated, 3) << "some kills must land between the apply and the replication's commit";
}

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

int free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("no free port");
    ::close(fd);
    return ntohs(a.sin_port);
}

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

// A PostgreSQL schema written by a newer subsyncd is refused, not touched; the sync still succeeds.
TEST_F(Destinations, NewerSchemaIsRefusedAndTheSyncStillSucceeds) {
    const auto d = make("future", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    pg_.psql(database_, "UPDATE subsync.schema_version SET version = 99");
    const auto r = sync_once(d);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("version 99 is newer than this subsyncd understands"), std::string::npos) << r.err;
}

// `subsyncd replicate --full` (the one-off load for cron users) reloads a destination whose
// rows were damaged by hand, through the same code the daemon runs.
TEST_F(Destinations, ReplicateFullReloadsADamagedDestination) {
    const auto d = make("cron", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    pg_.psql(database_, "DELETE FROM subsync.purchased_groups WHERE account = 'prod' AND item_key IN "
                        "(SELECT item_key FROM subsync.purchased_groups LIMIT 5); DELETE FROM subsync.changes WHERE seq = 3");
    EXPECT_NE(compare_table(pg_, database_, d, "purchased_groups"), "");
    const auto r = run_subsyncd({"replicate", "--full", "--config", d.config.string()}, env());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("(full load)"), std::string::npos) << r.out;
    expect_equal_everywhere(pg_, database_, d);
    EXPECT_EQ(pg_seqs(pg_, database_, d), sqlite_seqs(d));
}

// The queries docs/destinations.md offers run as written against a replicated database, and
// check-config says where the DSN comes from without printing it.
TEST_F(Destinations, DocumentedQueriesRunAndCheckConfigNamesTheDsnSource) {
    const auto d = make("docs", "prod");
    ASSERT_EQ(sync_once(d).exit_code, 0);
    const std::string doc = test::read_file(SUBSYNC_DOCS_DIR "/destinations.md");
    const auto section = doc.find("## Queries");
    ASSERT_NE(section, std::string::npos);
    const auto begin = doc.find("```sql\n", section);
    const auto end = doc.find("```", begin + 7);
    ASSERT_NE(begin, std::string::npos);
    const std::string queries = doc.substr(begin + 7, end - begin - 7);
    ASSERT_GT(std::count(queries.begin(), queries.end(), ';'), 5);
    EXPECT_NO_THROW(pg_.psql(database_, queries));

    const auto check = run_subsyncd({"check-config", "--config", d.config.string()}, env());
    EXPECT_EQ(check.exit_code, 0) << check.err;
    EXPECT_NE(check.out.find("destination[0].dsn: "), std::string::npos) << check.out;
    EXPECT_EQ((check.out + check.err).find(password), std::string::npos) << "the DSN's password leaked";
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
    [[nodiscard]] std::string dsn() const { return fmt::format("host=127.0.0.1 port={} user=subsync dbname=x", port_); }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

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

/// The value of `subsync_destination_lag_changes{destination="postgresql"}` and of
/// `subsync_destination_up{...}` in a /metrics body; -1 when absent.
std::pair<long long, long long> lag_and_up(const std::string& body) {
    const auto value = [&](const std::string& series) -> long long {
        const auto at = body.find(series + " ");
        return at == std::string::npos ? -1 : std::stoll(body.substr(at + series.size() + 1));
    };
    return {value("subsync_destination_lag_changes{destination=\"postgresql\"}"),
            value("subsync_destination_up{destination=\"postgresql\"}")};
}

// The daemon (`subsyncd run`): its replication thread leaves the sync rounds alone while
// PostgreSQL is down, /metrics shows the backlog growing, and once PostgreSQL is back the
// retry (retry_interval) catches up with no gap and no duplicate.
TEST_F(Destinations, DaemonShowsLagWhileDownAndCatchesUp) {
    instance inst;
    inst.name = "daemon";
    const temp_dir& dir = *inst.dir;
    test::write_file(dir / "dsn", dsn_ + " password=" + password + "\n");
    auto c = test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string());
    c.metrics_listen = "127.0.0.1:0";
    c.interval = "1h";
    c.extra = fmt::format("[[destination]]\ntype = \"postgresql\"\ninstance = \"daemon\"\ndsn_file = \"{}\"\n"
                          "connect_timeout = \"2s\"\nretry_interval = \"200ms\"\n",
                          (dir / "dsn").string());
    const auto cfg = test::write_daemon_config(dir.path(), c);
    inst.config = cfg;

    pg_.stop();
    test::notify_socket systemd(dir / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir.path());
    auto ready = systemd.wait_for("READY=1");
    ASSERT_TRUE(ready) << systemd.transcript() << d.err();
    const auto at = ready->find("metrics 127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << *ready;
    const auto port = static_cast<std::uint16_t>(std::stoi(ready->substr(at + 18)));
    for (int round = 1; round <= 3; ++round) {
        if (round > 1) {
            emu_->set_dataset(emulator::dataset::generated(100 + 10 * static_cast<std::size_t>(round), 8,
                                                           static_cast<std::uint64_t>(round)));
            d.signal(SIGUSR1);
        }
        ASSERT_TRUE(systemd.wait_for(fmt::format("STATUS=sync {} ok", round))) << systemd.transcript() << d.err();
    }
    SQLite::Database db((dir / "snapshot.db").string(), SQLite::OPEN_READONLY);
    const long long local = db.execAndGet("SELECT max(seq) FROM changes").getInt64();
    // The thread reports after its pass; wait for the pass that saw round 3 (bounded).
    const auto until = [&](auto done, std::chrono::seconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return done();
    };
    EXPECT_TRUE(until([&] { return lag_and_up(test::http_get(port, "/metrics").body) == std::pair{local, 0LL}; },
                      std::chrono::seconds(20)))
        << test::http_get(port, "/metrics").body;

    pg_.start();
    EXPECT_TRUE(until([&] { return lag_and_up(test::http_get(port, "/metrics").body) == std::pair{0LL, 1LL}; },
                      std::chrono::seconds(20)))
        << test::http_get(port, "/metrics").body << d.err();
    EXPECT_EQ(pg_seqs(pg_, database_, inst), sqlite_seqs(inst)) << "a gap or a duplicate in changes";
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(), 0) << d.err();
    EXPECT_EQ(d.err().find(password), std::string::npos) << "the DSN's password leaked";
    expect_equal_everywhere(pg_, database_, inst);
}

}  // namespace
}  // namespace subsync
