// The record: as-of rebuilds, quota samples, retention and migrations,
// against real SQLite files.

#include "support/test_support.hpp"

#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/history.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

namespace subsync::sync {
namespace {

using test::temp_dir;

std::string export_live(SQLite::Database& db, source_kind t) {
    std::string out;
    const auto table = t == source_kind::purchased_groups ? exporters::export_table::purchased_groups
                                                          : exporters::export_table::subscription_resources;
    exporters::write_table(db, table, exporters::export_format::json, [&](std::string_view b) { out += b; });
    return out;
}

std::string export_as_of(SQLite::Database& db, source_kind t, as_of_point p) {
    std::string out;
    exporters::write_rows(t, exporters::export_format::json, [&](std::string_view b) { out += b; }, rows_as_of(db, t, p));
    return out;
}

// Random but reproducible edits of a small tenant, with the awkward values.
class tenant {
public:
    explicit tenant(std::uint64_t seed) : rng_(seed) {}

    void mutate() {
        const int adds = pick(0, 3);
        for (int i = 0; i < adds; ++i) add();
        for (auto it = groups_.begin(); it != groups_.end();) {
            const int roll = pick(0, 9);
            if (roll == 0) {
                it = groups_.erase(it);
                continue;
            }
            if (roll <= 3) change(it->second);
            ++it;
        }
        for (auto it = resources_.begin(); it != resources_.end();) {
            if (pick(0, 7) == 0) it = resources_.erase(it);
            else {
                if (pick(0, 3) == 0) it->second.expire_time = pick(0, 1) ? field<epoch_ms>{} : field<epoch_ms>(pick(0, 1 << 30));
                ++it;
            }
        }
        if (pick(0, 2) == 0) add_resource();
    }

    listing<purchased_group> groups() const {
        listing<purchased_group> l;
        for (const auto& [k, g] : groups_) l.items.push_back(g);
        l.total = static_cast<std::int64_t>(l.items.size());
        return l;
    }
    listing<subscription_resource> resources() const {
        listing<subscription_resource> l;
        for (const auto& [k, r] : resources_) l.items.push_back(r);
        l.total = static_cast<std::int64_t>(l.items.size());
        return l;
    }

private:
    int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    field<std::string> text() {
        static const std::vector<std::string> values{"plain", "分组 \"quoted\"", "a,b\r\nc", "=1+2", "🚀", ""};
        const int roll = pick(0, 7);
        if (roll == 6) return field<std::string>::null();
        if (roll == 7) return {};
        return values[static_cast<std::size_t>(roll)];
    }

    void change(purchased_group& g) {
        switch (pick(0, 4)) {
            case 0: g.group_name = text(); break;
            case 1: g.group_remark = text(); break;
            case 2: g.quota_left = pick(0, 1) ? field<std::int64_t>::null() : field<std::int64_t>(pick(0, 1000)); break;
            case 3:
                g.group_domains = pick(0, 1) ? field<std::vector<std::string>>::null()
                                             : field<std::vector<std::string>>(std::vector<std::string>{"x.example.com"});
                break;
            default: g.expire_time = field<epoch_ms>(std::int64_t{1700000000000} + pick(0, 1 << 30)); break;
        }
    }

    void add() {
        purchased_group g;
        g.id = "g" + std::to_string(next_++);
        g.group_name = text();
        g.group_remark = text();
        g.quota_left = std::int64_t{9223372036854775807};
        g.quota_used = 0;
        g.app_secret = std::string("******");
        groups_[g.id] = g;
    }

    void add_resource() {
        subscription_resource r;
        r.region_id = pick(0, 1) ? field<std::string>::null() : field<std::string>(std::string("cn-north-4"));
        r.project_id = std::string("p1");
        r.resource_id = "r" + std::to_string(next_++);
        r.to_period = pick(0, 1) == 0;
        r.tag_list = std::vector<tag>{{"k", "v,\"w\""}};
        resources_[item_key(r)] = r;
    }

    std::mt19937_64 rng_;
    int next_ = 0;
    std::map<std::string, purchased_group> groups_;
    std::map<std::string, subscription_resource> resources_;
};

TEST(History, AsOfEveryRunEqualsTheSnapshotOfThatMoment) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    tenant t(2026);
    struct moment {
        std::int64_t run;
        epoch_ms time;
        std::string groups;
        std::string resources;
    };
    std::vector<moment> moments;
    epoch_ms now = 1'700'000'000'000;
    for (int sync = 0; sync < 24; ++sync) {
        t.mutate();
        now += 60'000;
        store.apply("prod", t.groups(), now - 1000, now);
        auto run = store.apply("prod", t.resources(), now - 1000, now);
        moments.push_back({run.id, now, export_live(store.database(), source_kind::purchased_groups),
                           export_live(store.database(), source_kind::subscriptions)});
    }
    ASSERT_GT(store.database().execAndGet("SELECT count(*) FROM changes WHERE kind = 'changed'").getInt64(), 20);
    ASSERT_GT(store.database().execAndGet("SELECT count(*) FROM changes WHERE kind = 'removed'").getInt64(), 3);
    for (const auto& m : moments) {
        SCOPED_TRACE(testing::Message() << "run " << m.run);
        EXPECT_EQ(export_as_of(store.database(), source_kind::purchased_groups, {m.run, std::nullopt}), m.groups);
        EXPECT_EQ(export_as_of(store.database(), source_kind::subscriptions, {m.run, std::nullopt}), m.resources);
        EXPECT_EQ(export_as_of(store.database(), source_kind::purchased_groups, {std::nullopt, m.time}), m.groups);
    }

    // Retention: prune everything before the 12th sync; as-of stays exact inside the window.
    const auto p = store.prune(moments[11].time);
    EXPECT_GT(p.changes, 0);
    for (std::size_t i = 11; i < moments.size(); ++i) {
        SCOPED_TRACE(testing::Message() << "after prune, run " << moments[i].run);
        EXPECT_EQ(export_as_of(store.database(), source_kind::purchased_groups, {moments[i].run, std::nullopt}),
                  moments[i].groups);
    }
    EXPECT_EQ(store.database().execAndGet("PRAGMA integrity_check").getString(), "ok");
    SQLite::Statement fk(store.database(), "PRAGMA foreign_key_check");
    EXPECT_FALSE(fk.executeStep()) << "pruning left a change or sample without its run";
}

TEST(History, UnchangedResyncOfTenThousandWritesNoItemOrChangeRow) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    listing<purchased_group> l;
    for (int i = 0; i < 10000; ++i) {
        purchased_group g;
        g.id = "id-" + std::to_string(i);
        g.group_name = "group " + std::to_string(i);
        g.quota_left = i;
        g.quota_used = 10000 - i;
        l.items.push_back(g);
    }
    l.total = 10000;
    store.apply("prod", l, 1000, 2000);
    auto& db = store.database();
    const auto samples = db.execAndGet("SELECT count(*) FROM quota_samples").getInt64();
    EXPECT_EQ(samples, 10000);
    const int before = db.getTotalChanges();
    auto run = store.apply("prod", l, 3000, 4000);  // well inside the sampling interval
    EXPECT_EQ(run.added + run.changed + run.removed, 0);
    EXPECT_EQ(db.getTotalChanges() - before, 2) << "only the sync_runs row (insert + counts)";
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM quota_samples").getInt64(), samples);
}

TEST(History, QuotaSamplesOnChangeOrWhenStale) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db", store_options{std::chrono::seconds(10), std::chrono::hours(1)});
    auto listing_with = [](std::int64_t left) {
        listing<purchased_group> l;
        purchased_group g;
        g.id = "a";
        g.quota_left = left;
        g.quota_used = 100 - left;
        l.items = {g};
        l.total = 1;
        return l;
    };
    const epoch_ms t0 = 1'700'000'000'000;
    store.apply("prod", listing_with(100), t0, t0);                   // first: sampled
    store.apply("prod", listing_with(100), t0 + 60'000, t0 + 60'000);  // same, fresh: not
    store.apply("prod", listing_with(90), t0 + 120'000, t0 + 120'000);  // changed: sampled
    store.apply("prod", listing_with(90), t0 + 3'800'000, t0 + 3'800'000);  // same, stale: sampled
    SQLite::Statement q(store.database(), "SELECT time, quota_left, quota_used FROM quota_samples ORDER BY time");
    std::vector<std::tuple<epoch_ms, std::int64_t, std::int64_t>> rows;
    while (q.executeStep()) rows.emplace_back(q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64());
    const decltype(rows) expected{{t0, 100, 0}, {t0 + 120'000, 90, 10}, {t0 + 3'800'000, 90, 10}};
    EXPECT_EQ(rows, expected);
}

TEST(History, PreviousSchemaIsMigratedWithItsData) {
    temp_dir dir;
    std::filesystem::copy_file(SUBSYNC_TEST_DATA "/snapshot_v1.db", dir / "snapshot.db");
    {
        SQLite::Database old((dir / "snapshot.db").string());
        ASSERT_EQ(old.execAndGet("PRAGMA user_version").getInt(), 1) << "the fixture is a version 1 file";
    }
    snapshot_store store(dir / "snapshot.db");
    auto& db = store.database();
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(), snapshot_store::schema_version);
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM purchased_groups").getInt64(), 3);
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM subscription_resources").getInt64(), 2);
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM changes").getInt64(), 5);
    EXPECT_EQ(db.execAndGet("SELECT count(*) FROM quota_samples").getInt64(), 0);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
}

TEST(History, ParsesAsOfPoints) {
    EXPECT_EQ(parse_as_of("42")->run_id, 42);
    EXPECT_EQ(parse_as_of("2017-12-29T06:22:46Z")->time, 1514528566000);
    EXPECT_FALSE(parse_as_of("yesterday"));
    EXPECT_FALSE(parse_as_of(""));
}

TEST(History, ListsChangesWithFilters) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    listing<purchased_group> l;
    purchased_group g;
    g.id = "a";
    g.quota_left = 5;
    l.items = {g};
    l.total = 1;
    store.apply("prod", l, 1000, 2000);
    l.items[0].quota_left = 4;
    store.apply("prod", l, 3000, 4000);
    std::vector<change_row> rows;
    for_each_change(store.database(), change_filter{{}, {}, std::string("a"), change_kind::changed, {}, {}},
                    [&](const change_row& r) { rows.push_back(r); });
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].field, "quota_left");
    EXPECT_EQ(rows[0].old_value, "5");
    EXPECT_EQ(rows[0].new_value, "4");
    EXPECT_EQ(rows[0].time, 4000);
}

}  // namespace
}  // namespace subsync::sync
