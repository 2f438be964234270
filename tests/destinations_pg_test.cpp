// PostgreSQL destinations (issue 18) against a real PostgreSQL 15 started in a temp dir
// (support/pg_cluster), the real subsyncd binary and the emulator. What PostgreSQL holds is
// read with psql and compared, as JSON values, with `subsyncd export --format jsonl` of the
// same SQLite file: every column, null and absent kept apart.

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
