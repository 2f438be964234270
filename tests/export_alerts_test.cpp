// The alerts files of an export generation (issue 16): written from a second reader on a thread
// of their own, behind a gate that never holds the generation back; and the alerts table's
// documented columns.

#include "support/export_fixture.hpp"

#include <subsync/exporters/table_export.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::exporters {
namespace {

using namespace export_test;

// Issue 16: the alerts files may be written from a second connection on a thread of their own
// (sync --once does). They are the same bytes, listed in the same place, as when written one
// after the other; and a second connection that sees other alerts than the first is not used.
TEST_F(ExportTest, AlertsFromASecondReaderAreTheSameFiles) {
    add_alerts(dir_ / "snapshot.db", 0, 3000);
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto one_by_one = write_generation(db, dir_ / "a", 1514528566000, {1});

    second_reader reader(dir_ / "snapshot.db");
    generation_options opts;
    opts.alerts_reader = &reader.db;
    const auto beside = write_generation(db, dir_ / "b", 1514528566000, {1}, opts);
    EXPECT_EQ(digests_of(beside.dir), digests_of(one_by_one.dir)) << "same files, same order in the manifest";
    ASSERT_EQ(beside.files.size(), one_by_one.files.size());
    for (std::size_t i = 0; i < beside.files.size(); ++i) {
        SCOPED_TRACE(beside.files[i].path.filename().string());
        EXPECT_EQ(beside.files[i].path.filename(), one_by_one.files[i].path.filename());
        EXPECT_EQ(beside.files[i].rows, one_by_one.files[i].rows);
    }
    EXPECT_EQ(beside.files[6].path.filename(), "alerts.csv");
    EXPECT_EQ(beside.files[6].rows, 3000);

    // The reader's snapshot is now older than the alerts: the generation shows the first
    // connection's alerts, all 3,001 of them.
    add_alerts(dir_ / "snapshot.db", 3000, 1);
    auto later = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto stale_reader = write_generation(later, dir_ / "c", 1514528567000, {1}, opts);
    EXPECT_EQ(stale_reader.files[6].path.filename(), "alerts.csv");
    EXPECT_EQ(stale_reader.files[6].rows, 3001) << "the stale second reader was not used";
}

// The alerts files' thread waits at a gate (sync --once opens it when delivery ends). A
// delivery that waits out a slow receiver must not hold the generation back: once the other
// files are written, the exports write the alerts files themselves. Here nobody else ever opens
// the gate; with a latch only delivery could release, this generation never finished.
TEST_F(ExportTest, AlertsFilesDoNotWaitForAGateThatStaysShut) {
    add_alerts(dir_ / "snapshot.db", 0, 300);
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto one_by_one = write_generation(db, dir_ / "a", 1514528566000, {1});

    second_reader reader(dir_ / "snapshot.db");
    start_gate shut;
    generation_options opts;
    opts.alerts_reader = &reader.db;
    opts.alerts_after = &shut;
    const auto g = write_generation(db, dir_ / "b", 1514528566000, {1}, opts);
    EXPECT_EQ(digests_of(g.dir), digests_of(one_by_one.dir));

    // Opened before the generation starts: the second thread writes them; the same files.
    start_gate open;
    open.open();
    opts.alerts_after = &open;
    const auto h = write_generation(db, dir_ / "c", 1514528566000, {1}, opts);
    EXPECT_EQ(digests_of(h.dir), digests_of(one_by_one.dir));
}

// The same failure with the alerts files on a second reader behind a gate nobody opens: the
// export fails as it should instead of waiting for the gate forever.
TEST_F(ExportTest, AFailedExportDoesNotWaitAtTheAlertsGate) {
    add_alerts(dir_ / "snapshot.db", 0, 300);
    const int code = on_a_full_disk([&](const auto& fill_disk) {
        auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
        db.execAndGet("SELECT count(*) FROM sqlite_master");
        second_reader reader(dir_ / "snapshot.db");
        start_gate shut;
        generation_options opts;
        opts.alerts_reader = &reader.db;
        opts.alerts_after = &shut;
        fill_disk();
        write_generation(db, dir_ / "exports", 1000000, {9}, opts);
    });
    EXPECT_EQ(code, 1) << "the export fails with EFBIG, and returns";
}

void insert_alerts(SQLite::Database& db) {
    db.exec("INSERT INTO alerts (account, source, item_key, kind, threshold, state, severity, since, resolved_at, "
            "reason, last_notified, notifications, summary, detail, updated_at) VALUES "
            "('prod', 'purchased_groups', 'b', 'quota_low', 'pct:10', 'firing', 'warning', 1514528566000, NULL, NULL, "
            "1514528566000, 1, '=1+1 left, \"low\"', '{\"quota_left\":9007199254740993,\"pct\":9.5}', 1514528566000),"
            "('prod', 'purchased_groups', 'a', 'expiring', '30d', 'resolved', 'critical', 1514528566000, "
            "1514528567000, 'renewed', NULL, 2, 'line1\nline2', '{}', 1514528567000)");
}

TEST_F(ExportTest, AlertsTableInDocumentedColumnOrder) {
    {
        SQLite::Database rw((dir_ / "snapshot.db").string(), SQLite::OPEN_READWRITE);
        insert_alerts(rw);
    }
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    std::string csv;
    EXPECT_EQ(write_table(db, export_table::alerts, export_format::csv, [&](std::string_view b) { csv += b; }), 2);
    EXPECT_EQ(csv,
              "account,source,id,kind,threshold,state,severity,since,resolved_at,reason,last_notified,notifications,"
              "summary,detail,updated_at\n"
              "prod,purchased_groups,a,expiring,30d,resolved,critical,2017-12-29T06:22:46Z,2017-12-29T06:22:47Z,renewed,"
              ",2,\"line1\nline2\",{},2017-12-29T06:22:47Z\n"
              "prod,purchased_groups,b,quota_low,pct:10,firing,warning,2017-12-29T06:22:46Z,,,2017-12-29T06:22:46Z,1,"
              "\"'=1+1 left, \"\"low\"\"\",\"{\"\"quota_left\"\":9007199254740993,\"\"pct\"\":9.5}\","
              "2017-12-29T06:22:46Z\n");

    std::string json;
    write_table(db, export_table::alerts, export_format::json, [&](std::string_view b) { json += b; });
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(json).get(doc)) << json;
    auto b = doc.at(1);
    EXPECT_EQ(std::string_view(b["id"]), "b");
    EXPECT_TRUE(b["resolved_at"].is_null()) << "null, not absent: the column exists for every alert";
    EXPECT_EQ(int64_t(b["detail"]["quota_left"]), 9007199254740993) << "detail is an object in JSON";
    EXPECT_EQ(std::string_view(b["summary"]), "=1+1 left, \"low\"");
    std::vector<std::string_view> keys;
    for (auto [k, v] : doc.at(0).get_object()) keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string_view>{"account", "source", "id", "kind", "threshold", "state", "severity",
                                                   "since", "resolved_at", "reason", "last_notified", "notifications",
                                                   "summary", "detail", "updated_at"}));

    std::string jsonl;
    export_options only_other;
    only_other.account = "other";
    EXPECT_EQ(write_table(db, export_table::alerts, export_format::jsonl, [&](std::string_view b2) { jsonl += b2; },
                          only_other),
              0);
    EXPECT_EQ(jsonl, "");
}

}  // namespace
}  // namespace subsync::exporters
