// A listing whose every page has the digest it had in the last complete listing is that listing
// again (docs/decisions.md "An unchanged listing is recognised by its pages"): the store applies
// it without reading or diffing the items, and samples quotas exactly as a full apply would.

#include "schema.hpp"
#include "support/test_support.hpp"

#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace subsync::sync {
namespace {

using test::temp_dir;

constexpr epoch_ms minute = 60'000, hour = 3'600'000;

purchased_group group(std::string id, std::optional<std::int64_t> quota_left) {
    purchased_group g;
    g.id = std::move(id);
    g.group_name = "name-" + g.id;
    g.expire_time = 1546300800000;
    if (quota_left) {
        g.quota_left = *quota_left;
        g.quota_used = 0;
    } else {
        g.quota_left = field<std::int64_t>::null();
        g.quota_used = field<std::int64_t>::null();
    }
    return g;
}

page_digest digest(int page, int version = 0) {
    page_digest d{};
    d[0] = static_cast<std::uint8_t>(page);
    d[1] = static_cast<std::uint8_t>(version + 1);
    return d;
}

using pages = std::vector<std::vector<purchased_group>>;

// A listing fetched page by page, each page with its digest, applied at `at`.
run_record apply_pages(snapshot_store& store, const pages& listing, epoch_ms at, int version = 0) {
    listing_stage stage(store, "prod", source_kind::purchased_groups);
    for (std::size_t i = 0; i < listing.size(); ++i) {
        const int page_no = static_cast<int>(i) + 1;
        stage.set_digest(page_no, digest(page_no, version));
        stage.add(listing_stage::position(page_no, 0), listing[i]);
    }
    stage.pages = static_cast<int>(listing.size());
    return store.apply(stage, at - 10, at);
}

// The same pages found as before: nothing added, only the digests recorded.
run_record apply_as_before(snapshot_store& store, int page_count, epoch_ms at) {
    listing_stage stage(store, "prod", source_kind::purchased_groups);
    for (int p = 1; p <= page_count; ++p) {
        EXPECT_NE(stage.previous_digest(p), nullptr) << "page " << p;
        stage.set_digest(p, digest(p));
    }
    stage.pages = page_count;
    stage.mark_unchanged();
    return store.apply(stage, at - 10, at);
}

std::vector<std::string> strings(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement q(db, sql);
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
}

std::vector<std::string> samples(snapshot_store& store) {
    return strings(store.database(), "SELECT purchase_id || '@' || time || '=' || coalesce(quota_left, 'null') FROM "
                                     "quota_samples ORDER BY time, purchase_id");
}

std::int64_t count(SQLite::Database& db, const std::string& sql) { return db.execAndGet(sql).getInt64(); }

// quota_latest holds, for each purchase, the series' row of max(time): what a GROUP BY over every
// sample gives (sqlite.org/lang_select.html#bareagg takes the bare columns from that row).
void expect_latest_is_the_series_last(SQLite::Database& db) {
    const std::string row = "account || '/' || purchase_id || '@' || {} || '=' || coalesce(quota_used, 'null') || ',' "
                            "|| coalesce(quota_left, 'null')";
    const auto latest =
        strings(db, fmt::format("SELECT {} FROM quota_latest ORDER BY 1", fmt::format(fmt::runtime(row), "time")));
    const auto series = strings(db, fmt::format("SELECT {} FROM quota_samples GROUP BY account, purchase_id ORDER BY 1",
                                                fmt::format(fmt::runtime(row), "max(time)")));
    EXPECT_EQ(latest, series);
}

const pages two_pages{{group("a", 5), group("b", 6)}, {group("c", std::nullopt), group("d", 8)}};

TEST(UnchangedListing, IsAppliedWithoutReadingOrWritingItems) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    ASSERT_EQ(apply_pages(store, two_pages, 2000).added, 4);
    auto& db = store.database();
    EXPECT_EQ(count(db, "SELECT length(digests) FROM listing_digests WHERE account = 'prod'"), 2 * 32);
    EXPECT_EQ(count(db, "SELECT items FROM listing_digests WHERE account = 'prod'"), 4);

    const int before = db.getTotalChanges();
    const auto run = apply_as_before(store, 2, 3000);
    EXPECT_TRUE(run.unchanged);
    EXPECT_EQ(run.status, run_status::ok);
    EXPECT_EQ(run.pages, 2);
    EXPECT_EQ(run.items, 4);
    EXPECT_EQ(run.added + run.changed + run.removed, 0);
    // The run's INSERT and its counts' UPDATE: no item, change, sample or digest row.
    EXPECT_EQ(db.getTotalChanges() - before, 2);
    EXPECT_EQ(count(db, "SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"), 4);
}

TEST(UnchangedListing, IsRefusedForPagesThatDifferOrAStageWithItems) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    apply_pages(store, two_pages, 2000);
    {
        listing_stage stage(store, "prod", source_kind::purchased_groups);
        stage.set_digest(1, digest(1));
        stage.set_digest(2, digest(2, 1));
        EXPECT_THROW(stage.mark_unchanged(), std::logic_error);
    }
    {
        listing_stage stage(store, "prod", source_kind::purchased_groups);
        stage.set_digest(1, digest(1));
        EXPECT_THROW(stage.mark_unchanged(), std::logic_error) << "page 2 was not fetched";
    }
    listing_stage stage(store, "prod", source_kind::purchased_groups);
    stage.set_digest(1, digest(1));
    stage.set_digest(2, digest(2));
    stage.add(listing_stage::position(1, 0), two_pages[0]);
    EXPECT_THROW(stage.mark_unchanged(), std::logic_error);
}

TEST(UnchangedListing, OnlyACompleteListingFetchedPageByPageKeepsItsDigests) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    auto& db = store.database();
    auto digests = [&] { return count(db, "SELECT count(*) FROM listing_digests"); };
    apply_pages(store, two_pages, 2000);
    ASSERT_EQ(digests(), 1);

    // An incomplete listing may have left rows it did not list: the next one is diffed whole.
    {
        listing_stage stage(store, "prod", source_kind::purchased_groups);
        stage.set_digest(1, digest(1, 1));
        stage.add(listing_stage::position(1, 0), two_pages[0]);
        stage.pages = 1;
        stage.mark_incomplete("a page came back empty");
        store.apply(stage, 2990, 3000);
    }
    EXPECT_EQ(digests(), 0);
    apply_pages(store, two_pages, 4000);
    ASSERT_EQ(digests(), 1);

    // A listing passed whole (no pages, no digests) forgets them too.
    listing<purchased_group> whole;
    whole.items = {group("a", 5)};
    whole.total = 1;
    whole.pages = 1;
    store.apply("prod", whole, 4990, 5000);
    EXPECT_EQ(digests(), 0);

    // A failed run keeps them: the snapshot is still what they describe.
    apply_pages(store, two_pages, 6000);
    store.record_failure("prod", source_kind::purchased_groups, "HTTP 500", 6990, 7000);
    EXPECT_EQ(digests(), 1);
    // A dry run writes nothing.
    {
        listing_stage stage(store, "prod", source_kind::purchased_groups);
        stage.add(listing_stage::position(1, 0), two_pages[0]);
        stage.pages = 1;
        store.apply(stage, 7990, 8000, true);
    }
    EXPECT_EQ(digests(), 1);
}

// Two stores take the same listings, one recognising them as before and one diffing them in
// full: their quota samples must be the same at every step (aged, pruned, changed to null).
TEST(UnchangedListing, SamplesQuotasAsAFullApplyWould) {
    temp_dir dir;
    store_options opts;
    opts.quota_sample_interval = std::chrono::hours(1);
    snapshot_store fast(dir / "fast.db", opts), full(dir / "full.db", opts);
    const epoch_ms t0 = 1'000'000'000'000;
    // c's quota was 9 once and is null now: its latest sample stays 9 and is never aged.
    for (auto* s : {&fast, &full}) {
        listing<purchased_group> before;
        before.items = {group("a", 5), group("b", 6), group("c", 9), group("d", 8)};
        before.total = 4;
        before.pages = 1;
        s->apply("prod", before, t0 - 2 * minute, t0 - minute);
        apply_pages(*s, two_pages, t0);
    }
    ASSERT_EQ(samples(fast), samples(full));

    auto step = [&](epoch_ms at) {
        const auto a = apply_as_before(fast, 2, at);
        const auto b = apply_pages(full, two_pages, at);
        EXPECT_EQ(a.added + a.changed + a.removed, 0);
        EXPECT_EQ(b.added + b.changed + b.removed, 0);
        EXPECT_EQ(samples(fast), samples(full)) << "at t0 + " << (at - t0) / minute << " min";
        expect_latest_is_the_series_last(fast.database());
        expect_latest_is_the_series_last(full.database());
    };
    step(t0 + 30 * minute);  // nothing aged
    const auto aged_before = samples(fast).size();
    step(t0 + 61 * minute);  // every quota the listing has aged: a, b and d sampled again
    EXPECT_EQ(samples(fast).size(), aged_before + 3);

    // Retention deletes every sample, the latest ones a minute old: each item with a quota is
    // sampled afresh, long before the oldest latest sample would have aged.
    fast.prune(t0 + 62 * minute);
    full.prune(t0 + 62 * minute);
    ASSERT_TRUE(samples(fast).empty());
    step(t0 + 63 * minute);
    EXPECT_EQ(samples(fast).size(), 3u);
    step(t0 + 64 * minute);  // and nothing again until they age
    EXPECT_EQ(samples(fast).size(), 3u);
}

// A listing reads each purchase's latest sample from quota_latest, one row per purchase: it is
// the series' last row after every write (a changed quota, an aged one, a clock set back, a
// prune), and a file of schema 8 gets it from its series.
TEST(UnchangedListing, TheLatestSampleIsTheSeriesLastAfterEveryWrite) {
    temp_dir dir;
    store_options opts;
    opts.quota_sample_interval = std::chrono::hours(1);
    snapshot_store store(dir / "snapshot.db", opts);
    auto& db = store.database();
    const epoch_ms t0 = 1'000'000'000'000;
    apply_pages(store, two_pages, t0);
    expect_latest_is_the_series_last(db);
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_latest"), 3) << "a, b and d have quotas";

    auto changed = two_pages;
    changed[0][0] = group("a", 4);
    apply_pages(store, changed, t0 + minute, 1);
    expect_latest_is_the_series_last(db);
    EXPECT_EQ(count(db, "SELECT quota_left FROM quota_latest WHERE purchase_id = 'a'"), 4);

    apply_pages(store, changed, t0 + 2 * hour, 1);  // every quota aged
    expect_latest_is_the_series_last(db);
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_samples WHERE purchase_id = 'b'"), 2);

    // The clock set back: a sample written earlier than the latest does not become it.
    changed[0][0] = group("a", 3);
    apply_pages(store, changed, t0 + 30 * minute, 2);
    expect_latest_is_the_series_last(db);
    EXPECT_EQ(count(db, "SELECT time FROM quota_latest WHERE purchase_id = 'b'"), t0 + 2 * hour);

    // A prune that deletes a purchase's every sample deletes its latest; one that keeps some keeps it.
    ASSERT_GT(store.prune(t0 + hour).samples, 0);
    expect_latest_is_the_series_last(db);
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_latest"), 3);
    ASSERT_GT(store.prune(t0 + 3 * hour).samples, 0);
    EXPECT_EQ(count(db, "SELECT count(*) FROM quota_latest"), 0);

    // Schema 8 had the series only.
    SQLite::Database old((dir / "v8.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    detail::migrate(old, 8);
    old.exec("INSERT INTO sync_runs (id, account, source, started_at, finished_at, status) VALUES "
             "(1, 'prod', 'purchased_groups', 0, 1, 'ok')");
    old.exec("INSERT INTO quota_samples (account, purchase_id, time, run_id, quota_used, quota_left) VALUES "
             "('prod', 'a', 10, 1, 1, 9), ('prod', 'a', 30, 1, 3, NULL), ('prod', 'a', 20, 1, 2, 8), "
             "('prod', 'b', 5, 1, NULL, 7), ('test', 'a', 40, 1, 4, 6)");
    detail::migrate(old, 9);
    expect_latest_is_the_series_last(old);
    EXPECT_EQ(count(old, "SELECT count(*) FROM quota_latest"), 3);
}

// The export's marks read data_versions instead of scanning quota_samples: every apply that
// writes a sample, recognised or diffed, and every prune that deletes one counts there.
TEST(UnchangedListing, EveryWriteOfAQuotaSampleIsCountedInDataVersions) {
    temp_dir dir;
    snapshot_store store(dir / "snapshot.db");
    auto version = [&] { return data_version(store.database(), versioned_table::quota_samples); };
    const epoch_ms t0 = 1'000'000'000'000;
    const auto v0 = version();
    apply_pages(store, two_pages, t0);
    const auto v1 = version();
    EXPECT_GT(v1, v0);
    apply_as_before(store, 2, t0 + minute);
    EXPECT_EQ(version(), v1) << "nothing due";
    apply_as_before(store, 2, t0 + 2 * hour);
    const auto v2 = version();
    EXPECT_GT(v2, v1) << "aged samples of a recognised listing";
    auto changed = two_pages;
    changed[0][0] = group("a", 4);
    apply_pages(store, changed, t0 + 2 * hour + minute, 1);
    const auto v3 = version();
    EXPECT_GT(v3, v2) << "a's quota changed";
    ASSERT_GT(store.prune(t0 + hour).samples, 0);
    EXPECT_GT(version(), v3);
}

}  // namespace
}  // namespace subsync::sync
