#include "support/test_support.hpp"

#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

namespace subsync::sync {
namespace {

using test::temp_dir;

purchased_group group(std::string id, std::int64_t quota_left = 100) {
    purchased_group g;
    g.id = std::move(id);
    g.group_name = "name-" + g.id;
    g.group_remark = field<std::string>::null();
    g.quota_left = quota_left;
    g.quota_used = 0;
    g.expire_time = 1546300800000;
    return g;
}

listing<purchased_group> complete(std::vector<purchased_group> items) {
    listing<purchased_group> l;
    l.total = static_cast<std::int64_t>(items.size());
    l.pages = 1;
    l.items = std::move(items);
    return l;
}

std::int64_t count(SQLite::Database& db, const std::string& sql) { return db.execAndGet(sql).getInt64(); }

class SnapshotTest : public ::testing::Test {
protected:
    temp_dir dir_;
    snapshot_store store_{dir_ / "snapshot.db"};
};

TEST_F(SnapshotTest, FirstApplyAddsEveryItem) {
    auto run = store_.apply("prod", complete({group("a"), group("b"), group("c")}), 1000, 2000);
    EXPECT_EQ(run.status, run_status::ok);
    EXPECT_EQ(run.added, 3);
    EXPECT_EQ(run.changed, 0);
    EXPECT_EQ(run.removed, 0);
    auto& db = store_.database();
    EXPECT_EQ(count(db, "SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"), 3);
    EXPECT_EQ(count(db, "SELECT count(*) FROM changes WHERE kind = 'added'"), 3);
    EXPECT_EQ(count(db, "SELECT added FROM sync_runs WHERE id = " + std::to_string(run.id)), 3);
    EXPECT_EQ(count(db, "SELECT first_seen FROM purchased_groups WHERE item_key = 'a'"), 2000);
}

TEST_F(SnapshotTest, UnchangedResyncWritesOnlyTheRunRecord) {
    store_.apply("prod", complete({group("a"), group("b")}), 1000, 2000);
    auto& db = store_.database();
    const int before = db.getTotalChanges();
    auto run = store_.apply("prod", complete({group("a"), group("b")}), 3000, 4000);
    EXPECT_EQ(run.added + run.changed + run.removed, 0);
    // One INSERT and one UPDATE of sync_runs; nothing in the item or change tables.
    EXPECT_EQ(db.getTotalChanges() - before, 2);
}

TEST_F(SnapshotTest, ChangedFieldsAreRecordedOldToNew) {
    store_.apply("prod", complete({group("a", 100)}), 1000, 2000);
    auto changed = group("a", 40);
    changed.group_remark = std::string("now \"quoted\"");
    changed.expire_time = field<epoch_ms>{};  // absent
    auto run = store_.apply("prod", complete({changed}), 3000, 4000);
    EXPECT_EQ(run.changed, 1);

    SQLite::Statement q(store_.database(),
                        "SELECT field, old_value, new_value FROM changes WHERE kind = 'changed' ORDER BY field");
    std::vector<std::tuple<std::string, std::string, std::string>> rows;
    while (q.executeStep())
        rows.emplace_back(q.getColumn(0).getString(), q.getColumn(1).isNull() ? "<absent>" : q.getColumn(1).getString(),
                          q.getColumn(2).isNull() ? "<absent>" : q.getColumn(2).getString());
    const decltype(rows) expected{
        {"expire_time", "1546300800000", "<absent>"},
        {"group_remark", "null", R"("now \"quoted\"")"},
        {"quota_left", "100", "40"},
    };
    EXPECT_EQ(rows, expected);
}

TEST_F(SnapshotTest, RemovesOnlyWhenListingComplete) {
    store_.apply("prod", complete({group("a"), group("b")}), 1000, 2000);

    auto partial = complete({group("a")});
    partial.complete = false;
    partial.total = 2;
    partial.incomplete_reason = "listed 1 distinct items but total is 2";
    auto run = store_.apply("prod", partial, 3000, 4000);
    EXPECT_EQ(run.status, run_status::incomplete);
    EXPECT_EQ(run.removed, 0);
    EXPECT_NE(run.error.find("total is 2"), std::string::npos);
    EXPECT_EQ(count(store_.database(), "SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"), 2);

    run = store_.apply("prod", complete({group("a")}), 5000, 6000);
    EXPECT_EQ(run.status, run_status::ok);
    EXPECT_EQ(run.removed, 1);
    EXPECT_EQ(count(store_.database(), "SELECT removed_at FROM purchased_groups WHERE item_key = 'b'"), 6000);
    auto old = store_.database().execAndGet("SELECT old_value FROM changes WHERE kind = 'removed'").getString();
    EXPECT_NE(old.find(R"("id":"b")"), std::string::npos) << old;

    // Listed again later: added back, not duplicated.
    run = store_.apply("prod", complete({group("a"), group("b")}), 7000, 8000);
    EXPECT_EQ(run.added, 1);
    EXPECT_EQ(count(store_.database(), "SELECT count(*) FROM purchased_groups"), 2);
    EXPECT_EQ(count(store_.database(), "SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"), 2);
}

TEST_F(SnapshotTest, AccountsDoNotTouchEachOther) {
    store_.apply("prod", complete({group("a")}), 1000, 2000);
    store_.apply("test", complete({group("a"), group("z")}), 1000, 2000);
    auto run = store_.apply("prod", complete({}), 3000, 4000);
    EXPECT_EQ(run.removed, 1);
    EXPECT_EQ(count(store_.database(),
                    "SELECT count(*) FROM purchased_groups WHERE account = 'test' AND removed_at IS NULL"),
              2);
}

TEST_F(SnapshotTest, FailedRunChangesNoItem) {
    store_.apply("prod", complete({group("a")}), 1000, 2000);
    auto run = store_.record_failure("prod", source_kind::purchased_groups, "page=7: HTTP 500", 3000, 4000);
    EXPECT_EQ(run.status, run_status::failed);
    EXPECT_EQ(store_.database().execAndGet("SELECT error FROM sync_runs WHERE id = " + std::to_string(run.id)).getString(),
              "page=7: HTTP 500");
    EXPECT_EQ(count(store_.database(), "SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"), 1);
}

std::vector<std::string> strings(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement q(db, sql);
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
}

// Rows are written in key order, but the change feed keeps the listing's order.
TEST_F(SnapshotTest, ChangesKeepListingOrder) {
    store_.apply("prod", complete({group("c"), group("a"), group("d"), group("b")}), 1000, 2000);
    auto& db = store_.database();
    EXPECT_EQ(strings(db, "SELECT item_key FROM changes ORDER BY seq"),
              (std::vector<std::string>{"c", "a", "d", "b"}));
    auto run = store_.apply("prod", complete({group("d", 1), group("b", 2), group("a"), group("c", 3), group("e")}),
                            3000, 4000);
    EXPECT_EQ(run.added, 1);
    EXPECT_EQ(run.changed, 3);
    EXPECT_EQ(strings(db, "SELECT item_key || ':' || kind FROM changes WHERE time = 4000 ORDER BY seq"),
              (std::vector<std::string>{"d:changed", "b:changed", "c:changed", "e:added"}));
    EXPECT_EQ(strings(db, "SELECT item_key || '=' || quota_left FROM purchased_groups ORDER BY item_key"),
              (std::vector<std::string>{"a=100", "b=2", "c=3", "d=1", "e=100"}));
    EXPECT_EQ(count(db, "SELECT count(*) FROM purchased_groups WHERE updated_at = 4000"), 4);
    EXPECT_EQ(count(db, "SELECT count(*) FROM purchased_groups WHERE first_seen = 2000"), 4);
}

// A key listed twice keeps its first listing, and the listing is incomplete: the API
// contradicted itself, so nothing may be marked removed on its word.
TEST_F(SnapshotTest, KeyListedTwiceKeepsItsFirstListingAndRemovesNothing) {
    auto run = store_.apply("prod", complete({group("b"), group("a", 100), group("c"), group("a", 40)}), 1000, 2000);
    EXPECT_EQ(run.status, run_status::incomplete);
    EXPECT_NE(run.error.find("id a listed twice"), std::string::npos) << run.error;
    EXPECT_EQ(run.items, 3);
    EXPECT_EQ(run.added, 3);
    EXPECT_EQ(run.changed, 0);
    auto& db = store_.database();
    EXPECT_EQ(strings(db, "SELECT item_key FROM changes ORDER BY seq"), (std::vector<std::string>{"b", "a", "c"}));
    EXPECT_EQ(count(db, "SELECT quota_left FROM purchased_groups WHERE item_key = 'a'"), 100);
    EXPECT_EQ(count(db, "SELECT quota_left FROM quota_samples WHERE purchase_id = 'a'"), 100);
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_samples"), 3);

    // c is missing and a repeats: incomplete again, so c stays; a's first listing equals its row.
    run = store_.apply("prod", complete({group("a", 100), group("b"), group("a", 40)}), 3000, 4000);
    EXPECT_EQ(run.status, run_status::incomplete);
    EXPECT_EQ(run.added + run.changed + run.removed, 0);
    EXPECT_EQ(count(db, "SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"), 3);
}

// Pages arrive in any order; the stage puts them back in listing order, so changes
// follow the API's order and a repeated key keeps its first position, even when
// that page came last.
TEST_F(SnapshotTest, StagedPagesApplyInListingOrderWhateverOrderTheyArrive) {
    store_.apply("prod", complete({group("x", 7)}), 500, 600);
    listing_stage stage(store_, "prod", source_kind::purchased_groups);
    const std::vector<purchased_group> page1{group("b"), group("a", 100)};
    const std::vector<purchased_group> page2{group("c"), group("a", 40), group("x", 8)};
    const std::vector<purchased_group> page3{group("d")};
    stage.add(listing_stage::position(3, 0), page3);
    stage.add(listing_stage::position(2, 0), page2);
    stage.add(listing_stage::position(1, 0), page1);
    stage.pages = 3;
    EXPECT_EQ(stage.distinct_items(), 5);
    const auto run = store_.apply(stage, 1000, 2000);
    EXPECT_EQ(run.status, run_status::incomplete);
    EXPECT_NE(run.error.find("id a listed twice (pages 1 and 2)"), std::string::npos) << run.error;
    EXPECT_EQ(run.pages, 3);
    EXPECT_EQ(run.items, 5);
    EXPECT_EQ(run.added, 4);
    EXPECT_EQ(run.changed, 1);
    auto& db = store_.database();
    EXPECT_EQ(strings(db, "SELECT item_key || ':' || kind FROM changes WHERE run_id = " + std::to_string(run.id) +
                              " ORDER BY seq"),
              (std::vector<std::string>{"b:added", "a:added", "c:added", "x:changed", "d:added"}));
    EXPECT_EQ(count(db, "SELECT quota_left FROM purchased_groups WHERE item_key = 'a'"), 100);
    EXPECT_EQ(count(db, "SELECT first_seen FROM purchased_groups WHERE item_key = 'x'"), 600);
    EXPECT_EQ(count(db, "SELECT updated_at FROM purchased_groups WHERE item_key = 'x'"), 2000);
}

// Whether an unchanged quota is due again is decided at the time the sync applies,
// not when its stage opened: a long fetch must not stretch the sampling interval.
TEST_F(SnapshotTest, AnUnchangedQuotaIsDueByTheTimeOfTheApply) {
    const epoch_ms hour = 3'600'000;
    auto& db = store_.database();
    store_.apply("prod", complete({group("a", 5), group("b", 6)}), 1000, 2000);
    listing_stage stage(store_, "prod", source_kind::purchased_groups);
    const std::vector<purchased_group> page{group("a", 5), group("b", 7)};
    stage.add(listing_stage::position(1, 0), page);  // staged "early"; b's quota changed
    stage.pages = 1;
    store_.apply(stage, 2000 + hour - 10, 2000 + hour);
    EXPECT_EQ(strings(db, "SELECT purchase_id || '@' || time || '=' || quota_left FROM quota_samples "
                          "ORDER BY time, purchase_id"),
              (std::vector<std::string>{"a@2000=5", "b@2000=6", "a@3602000=5", "b@3602000=7"}));
}

// A fetch reads the stored keys and latest samples a few at a time, between its network
// turns: read in chunks of two, the stage diffs and samples exactly as one read would.
TEST_F(SnapshotTest, AStageLoadedAFewKeysAtATimeDiffsAsOneLoad) {
    const epoch_ms hour = 3'600'000;
    auto& db = store_.database();
    store_.apply("prod", complete({group("a", 1), group("b", 2), group("c", 3), group("d", 4), group("e", 5)}), 1000,
                 2000);
    // Later samples for a and b: the stage must compare with these, not the first ones.
    store_.apply("prod", complete({group("a", 10), group("b", 20), group("c", 3), group("d", 4), group("e", 5)}),
                 2000 + hour, 2000 + 2 * hour);
    ASSERT_EQ(count(db, "SELECT count(*) FROM quota_samples"), 10) << "the second apply sampled all five";

    listing_stage stage(store_, "prod", source_kind::purchased_groups);
    int calls = 1;
    while (!stage.load_some(2)) ++calls;
    EXPECT_EQ(calls, 5) << "5 keys, then 5 latest samples, 2 at a time (the third call reads both kinds)";
    EXPECT_TRUE(stage.load_some(2)) << "done stays done";
    // a, d, e as stored; b's quota moved; c is gone; f is new.
    const std::vector<purchased_group> page{group("a", 10), group("b", 21), group("d", 4), group("e", 5),
                                            group("f", 6)};
    stage.add(listing_stage::position(1, 0), page);
    stage.pages = 1;
    const auto run = store_.apply(stage, 2000 + 2 * hour + 10, 2000 + 2 * hour + 20);
    EXPECT_EQ(run.added, 1);
    EXPECT_EQ(run.changed, 1);
    EXPECT_EQ(run.removed, 1);
    EXPECT_EQ(strings(db, "SELECT purchase_id || '=' || quota_left FROM quota_samples WHERE time > 2000 + 2 * 3600000 "
                          "ORDER BY purchase_id"),
              (std::vector<std::string>{"b=21", "f=6"}))
        << "a, d and e equal their latest samples and are not due yet";
}

// A stage that is never applied leaves the snapshot as it was.
TEST_F(SnapshotTest, AnAbandonedStageWritesNothing) {
    store_.apply("prod", complete({group("a")}), 500, 600);
    auto& db = store_.database();
    const auto before = db.getTotalChanges();
    {
        listing_stage stage(store_, "prod", source_kind::purchased_groups);
        const std::vector<purchased_group> page{group("a", 1), group("b")};
        stage.add(listing_stage::position(1, 0), page);
    }
    EXPECT_EQ(count(db, "SELECT count(*) FROM sync_runs"), 1);
    EXPECT_EQ(count(db, "SELECT quota_left FROM purchased_groups WHERE item_key = 'a'"), 100);
    EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_temp_master"), 0) << "the stage's tables are dropped";
    EXPECT_GT(db.getTotalChanges(), before) << "the stage did write, to its temporary tables";
}

// Sampling compares with each purchase's latest sample, not an older one.
TEST_F(SnapshotTest, QuotaSamplesCompareWithTheLatestSample) {
    const epoch_ms hour = 3'600'000;
    auto& db = store_.database();
    store_.apply("prod", complete({group("a", 100), group("b", 100)}), 1000, 2000);
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_samples"), 2);
    store_.apply("prod", complete({group("a", 90), group("b", 100)}), 3000, 4000);  // a changed, b not yet due
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_samples"), 3);
    store_.apply("prod", complete({group("b", 100), group("a", 90)}), 5000, 6000);  // a equals its latest sample
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_samples"), 3);
    store_.apply("prod", complete({group("a", 100), group("b", 100)}), 7000, 8000);  // back to an older value
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_samples"), 4);
    store_.apply("prod", complete({group("a", 100), group("b", 100)}), 9000, 8000 + hour);  // both due again
    EXPECT_EQ(strings(db, "SELECT purchase_id || '@' || time || '=' || quota_left FROM quota_samples "
                          "ORDER BY time, purchase_id"),
              (std::vector<std::string>{"a@2000=100", "b@2000=100", "a@4000=90", "a@8000=100",
                                        "a@3608000=100", "b@3608000=100"}));
}

TEST_F(SnapshotTest, NullAbsentAndValuesRoundTrip) {
    subscription_resource r;
    r.region_id = field<std::string>::null();
    r.project_id = std::string("p");
    r.resource_id = "r1";
    r.to_period = true;
    r.tag_list = std::vector<tag>{{"k", "v \"q\""}};
    listing<subscription_resource> l;
    l.items = {r};
    l.total = 1;
    store_.apply("prod", l, 1000, 2000);

    SQLite::Statement q(store_.database(),
                        "SELECT region_id, project_id, resource_id, resource_size, resource_type, resource_spec_code, "
                        "create_time, expire_time, resource_status, order_id, charging_mode, to_period, tag_list, "
                        "absent_mask FROM subscription_resources");
    ASSERT_TRUE(q.executeStep());
    std::vector<cell> back;
    read_cells(q, columns(source_kind::subscriptions), 0, back);
    std::vector<cell> expected;
    to_cells(r, expected);
    EXPECT_EQ(back, expected);
    EXPECT_EQ(back[0].state, field_state::null);
    EXPECT_EQ(back[3].state, field_state::absent);
}

TEST(Snapshot, DatabaseIsPrivateAndVersioned) {
    temp_dir dir;
    const auto file = dir / "nested" / "snapshot.db";
    { snapshot_store store(file); }
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    {
        SQLite::Database db(file.string(), SQLite::OPEN_READWRITE);
        EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(), snapshot_store::schema_version);
        EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal");
        db.exec("PRAGMA user_version = 99");
    }
    try {
        snapshot_store store(file);
        FAIL() << "a newer schema must be refused";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("schema version 99 is newer"), std::string::npos) << e.what();
    }
}

// A first listing of 5,000 items or more records its changes with changes_by_item and the
// items with purchased_groups_by_expiry set aside, and builds them again after (a cold sync's
// random-order inserts): the indexes are there after it, list every item, and a dry run's
// rollback leaves them too.
TEST(Snapshot, ABulkFirstApplyLeavesItsIndexesWhole) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    std::vector<purchased_group> items;
    for (int i = 0; i < 6'000; ++i) {
        items.push_back(group(fmt::format("g{:04}", (i * 7919) % 6'000)));
        items.back().expire_time = 1546300800000 + std::int64_t{i % 97} * 86'400'000;
    }
    auto& db = store.database();
    const auto index_sql = [&] {
        return db.execAndGet("SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema WHERE name IN "
                             "('changes_by_item', 'purchased_groups_by_expiry') ORDER BY name)")
            .getString();
    };
    const std::string before = index_sql();
    ASSERT_NE(before.find("purchased_groups_by_expiry"), std::string::npos);
    EXPECT_EQ(store.apply("prod", complete(items), 1000, 2000, /*dry_run=*/true).added, 6'000);
    EXPECT_EQ(index_sql(), before);
    EXPECT_EQ(count(db, "SELECT count(*) FROM changes"), 0);
    EXPECT_EQ(store.apply("prod", complete(items), 1000, 2000).added, 6'000);
    EXPECT_EQ(index_sql(), before);
    EXPECT_EQ(count(db, "SELECT count(*) FROM changes INDEXED BY changes_by_item WHERE account = 'prod' AND "
                        "source = 'purchased_groups' AND item_key >= 'g0000'"),
              6'000);
    EXPECT_EQ(count(db, "SELECT count(*) FROM purchased_groups INDEXED BY purchased_groups_by_expiry WHERE account = "
                        "'prod' AND expire_time >= 1546300800000 + 96 * 86400000"),
              6'000 / 97);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
}

// A new file gets 16 KiB pages (docs/decisions.md); a file made with 4 KiB pages by an older
// version keeps them, and syncs into it as before.
TEST(Snapshot, ANewFileHas16KiBPagesAndAnOldOneKeepsItsOwn) {
    temp_dir dir;
    const auto page_size = [](const std::filesystem::path& f) {
        SQLite::Database db(f.string(), SQLite::OPEN_READONLY);
        return db.execAndGet("PRAGMA page_size").getInt();
    };
    {
        snapshot_store store(dir / "new.db");
        EXPECT_EQ(store.database().execAndGet("PRAGMA temp.cache_size").getInt(), -snapshot_store::temp_cache_kib)
            << "the staging tables' cache is small: they are read in the order they were written";
    }
    EXPECT_EQ(page_size(dir / "new.db"), snapshot_store::new_file_page_size);
    {  // as an older version made it: 4 KiB pages (a page size changes only out of WAL, by VACUUM)
        snapshot_store store(dir / "old.db");
        store.database().exec("PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; VACUUM; "
                              "PRAGMA journal_mode = WAL");
    }
    ASSERT_EQ(page_size(dir / "old.db"), 4096);
    {
        snapshot_store store(dir / "old.db");
        EXPECT_EQ(store.apply("prod", complete({group("a")}), 1000, 2000).added, 1);
    }
    EXPECT_EQ(page_size(dir / "old.db"), 4096);
}

}  // namespace
}  // namespace subsync::sync
