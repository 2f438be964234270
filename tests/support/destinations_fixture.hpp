#pragma once
// The PostgreSQL destination tests' shared fixture: a database per test in the shared throwaway
// PostgreSQL 15 (support/pg_cluster), the emulator, daemons (instances) with their config and
// SQLite file, and the comparison of a PostgreSQL table with `subsyncd export` of the same
// SQLite file. Used by destinations_pg_test.cpp (the acceptance) and
// destinations_options_test.cpp (tables, TLS, status, servers that never answer).

#include "support/emulated_cloud.hpp"
#include "support/pg_cluster.hpp"
#include "support/test_support.hpp"

#include <subsync/emulator/server.hpp>
#include <subsync/exporters/table_export.hpp>

#include <SQLiteCpp/Database.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <array>
#include <cctype>
#include <map>
#include <memory>
#include <string>

namespace subsync::destinations_test {

using test::pg_cluster;
using test::run_subsyncd;
using test::temp_dir;

inline constexpr const char* token = "pg-test-token";
// The connection string carries a password (ignored by the fixture's trust auth): it must
// never appear in any output.
inline constexpr const char* password = "pw-Zq9-never-printed";
inline constexpr std::array<const char*, 5> tables{"purchased_groups", "subscription_resources", "changes", "sync_runs",
                                            "alerts"};

inline std::string database_name() {
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

inline instance make_instance(const std::string& name, const std::string& account, const std::string& base_url,
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

inline std::map<std::string, std::string> env() { return {{"SUBSYNC_TEST_TOKEN", token}}; }

inline test::run_result sync_once(const instance& i) {
    return run_subsyncd({"sync", "--once", "--config", i.config.string()}, env());
}

/// The SQL that renders a PostgreSQL row as the JSON export renders the SQLite row: times as
/// ISO-8601 UTC (".mmm" only when not zero), absent fields left out.
inline std::string export_shaped(const std::string& table) {
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
inline std::string compare_table(pg_cluster& pg, const std::string& database, const instance& inst, const std::string& table) {
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

inline void expect_equal_everywhere(pg_cluster& pg, const std::string& database, const instance& inst) {
    for (const char* t : tables) EXPECT_EQ(compare_table(pg, database, inst, t), "") << t;
}

inline std::string sqlite_seqs(const instance& i) {
    SQLite::Database db(i.db().string(), SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT coalesce(group_concat(seq, ','), '') FROM (SELECT seq FROM changes ORDER BY seq)")
        .getString();
}

inline std::string pg_seqs(pg_cluster& pg, const std::string& database, const instance& i) {
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

}  // namespace subsync::destinations_test
