// End to end, as an operator runs it: the real subsyncd binary syncs from the
// emulator over HTTPS on loopback into a real SQLite file and real exports.

#include "support/emulated_cloud.hpp"
#include "support/test_support.hpp"

#include <subsync/emulator/server.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <map>
#include <regex>
#include <set>

namespace subsync {
namespace {

using test::config_spec;
using test::run_subsyncd;
using test::temp_dir;

constexpr const char* token = "tok-PLANTED-7f3a9c2e41b8";

class SyncE2E : public ::testing::Test {
protected:
    void start(emulator::dataset data, std::chrono::milliseconds latency = {}) {
        emulator::options opts;
        opts.latency = latency;
        emu_ = test::start_emulator(opts, std::move(data), token, dir_ / "ca.pem");
    }

    std::filesystem::path config(int page_size = 100, int concurrency = 8, bool trust = true) {
        config_spec spec;
        spec.base_url = emu_->base_url();
        spec.ca_file = trust ? (dir_ / "ca.pem").string() : "";
        spec.page_size = page_size;
        spec.concurrency = concurrency;
        return test::write_config(dir_, spec);
    }

    test::run_result sync(const std::filesystem::path& cfg, const std::string& tok = token) {
        return run_subsyncd({"sync", "--once", "--config", cfg.string(), "-v"}, {{"SUBSYNC_TEST_TOKEN", tok}});
    }

    SQLite::Database db() { return SQLite::Database((dir_ / "snapshot.db").string(), SQLite::OPEN_READONLY); }

    std::set<std::string> current_keys(const std::string& table) {
        auto d = db();
        SQLite::Statement q(d, "SELECT item_key FROM " + table + " WHERE removed_at IS NULL");
        std::set<std::string> keys;
        while (q.executeStep()) keys.insert(q.getColumn(0).getString());
        return keys;
    }

    // Every column of every row, for "the snapshot is unchanged" checks.
    std::string dump(const std::string& table) {
        auto d = db();
        SQLite::Statement q(d, "SELECT * FROM " + table + " ORDER BY account, item_key");
        std::string out;
        while (q.executeStep()) {
            for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
            out += '\n';
        }
        return out;
    }

    temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
};

TEST_F(SyncE2E, SeedExamplesLandFieldByField) {
    start(emulator::dataset::seeds());
    auto r = sync(config());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("snapshot: " + (dir_ / "snapshot.db").string()), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("purchased_groups.csv (3 rows)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("subscription_resources.json (2 rows)"), std::string::npos) << r.out;

    auto d = db();
    SQLite::Statement g(d,
                        "SELECT account, id, group_id, group_name, group_remark, group_domains, quota_used, quota_left, "
                        "order_time, start_time, expire_time, app_key, app_secret, absent_mask "
                        "FROM purchased_groups WHERE id = '615af8d9-f31d-4cdf-8807-b191dc969a07'");
    ASSERT_TRUE(g.executeStep());
    EXPECT_EQ(g.getColumn(0).getString(), "prod");
    EXPECT_EQ(g.getColumn(2).getString(), "f0585333-5722-4878-b7fa-31ae00b6ae3a");
    EXPECT_EQ(g.getColumn(3).getString(), "api_group_003");
    EXPECT_EQ(g.getColumn(4).getString(), "API group 003");
    EXPECT_TRUE(g.getColumn(5).isNull()) << "group_domains: null";
    EXPECT_EQ(g.getColumn(6).getInt64(), 0);
    EXPECT_EQ(g.getColumn(7).getInt64(), 2000000000);
    EXPECT_EQ(g.getColumn(8).getInt64(), 1514528566000);  // 2017-12-29T06:22:46Z
    EXPECT_EQ(g.getColumn(9).getInt64(), 1514764800000);  // 2018-01-01T00:00:00Z
    EXPECT_EQ(g.getColumn(10).getInt64(), 1546300800000); // 2019-01-01T00:00:00Z
    EXPECT_EQ(g.getColumn(11).getString(), "0e242685-661d-4254-a8bb-be9a92b04785");
    EXPECT_EQ(g.getColumn(12).getString(), "******");
    EXPECT_EQ(g.getColumn(13).getInt64(), 0) << "every field was present (group_domains as null)";
    EXPECT_EQ(current_keys("purchased_groups"),
              (std::set<std::string>{"615af8d9-f31d-4cdf-8807-b191dc969a07", "9d0bdab1-a553-4bc9-be8c-a2e6c08e4d13",
                                     "3f30d49b-220f-4b11-9e94-c2fd3c1cc587"}));

    SQLite::Statement s(d,
                        "SELECT region_id, project_id, resource_id, resource_type, resource_spec_code, resource_size, "
                        "resource_status, to_period, order_id, charging_mode, create_time, expire_time, tag_list "
                        "FROM subscription_resources WHERE resource_id = 'c9528aa2-d593-11f0-a34e-fa163e798915'");
    ASSERT_TRUE(s.executeStep());
    EXPECT_EQ(s.getColumn(0).getString(), "demo-region");
    EXPECT_EQ(s.getColumn(1).getString(), "15645222e8744afa985c93dab6341da6");
    EXPECT_EQ(s.getColumn(3).getString(), "xxx.resource.type.secmaster.typical");
    EXPECT_EQ(s.getColumn(4).getString(), "csb.professional");
    EXPECT_EQ(s.getColumn(5).getInt64(), 2);
    EXPECT_EQ(s.getColumn(6).getInt64(), 0);
    EXPECT_EQ(s.getColumn(7).getInt64(), 0);
    EXPECT_EQ(s.getColumn(8).getString(), "CS2510212051NLDL4");
    EXPECT_EQ(s.getColumn(9).getString(), "PREPAID");
    EXPECT_EQ(s.getColumn(10).getInt64(), 1765349400000);
    EXPECT_EQ(s.getColumn(11).getInt64(), 1796885400000);
    EXPECT_EQ(s.getColumn(12).getString(), R"([{"key":"dept","value":"dev"}])");

    // The emulator's extra entry: a null region and a resource without expire_time.
    SQLite::Statement n(d, "SELECT region_id, expire_time, absent_mask FROM subscription_resources "
                           "WHERE resource_id <> 'c9528aa2-d593-11f0-a34e-fa163e798915'");
    ASSERT_TRUE(n.executeStep());
    EXPECT_TRUE(n.getColumn(0).isNull());
    EXPECT_TRUE(n.getColumn(1).isNull());
    EXPECT_NE(n.getColumn(2).getInt64() & (1 << 7), 0) << "expire_time recorded as absent, not null";

    // The exports carry the same values.
    const auto csv = test::read_file(dir_ / "exports" / "latest" / "purchased_groups.csv");
    EXPECT_NE(csv.find("prod,615af8d9-f31d-4cdf-8807-b191dc969a07,f0585333-5722-4878-b7fa-31ae00b6ae3a,api_group_003,"
                       "API group 003,2017-12-29T06:22:46Z,2018-01-01T00:00:00Z,2019-01-01T00:00:00Z,,2000000000,0,"
                       "0e242685-661d-4254-a8bb-be9a92b04785,******\n"),
              std::string::npos)
        << csv;
    simdjson::dom::parser parser;
    simdjson::dom::element res;
    ASSERT_FALSE(parser.load((dir_ / "exports" / "latest" / "subscription_resources.json").string()).get(res));
    bool saw_null_region = false;
    for (auto r2 : res.get_array()) {
        if (r2["region_id"].is_null()) {
            saw_null_region = true;
            EXPECT_EQ(r2["expire_time"].error(), simdjson::NO_SUCH_FIELD);
        } else {
            EXPECT_EQ(std::string_view(r2["create_time"]), "2025-12-10T06:50:00Z");
            EXPECT_EQ(std::string_view(r2["tag_list"].at(0)["value"]), "dev");
            EXPECT_FALSE(bool(r2["to_period"]));
        }
    }
    EXPECT_TRUE(saw_null_region);
}

// The next sync opens the connections the last listing needed while page 1 is in flight
// (their handshakes are off the critical path), and never more than `concurrency`.
TEST_F(SyncE2E, ConnectionsTheLastListingNeededOpenWhilePageOneIsInFlight) {
    auto data = emulator::dataset::generated(2000, 30, 42);
    start(data, std::chrono::milliseconds(25));
    const auto cfg = config(100, 8);
    ASSERT_EQ(sync(cfg).exit_code, 0);

    emu_->reset_stats();
    auto r = sync(cfg);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto st = emu_->get_stats();
    EXPECT_EQ(st.purchases_requests, 20u);
    EXPECT_EQ(st.connections, 8u + 1u) << "8 workers (page 1's connection is one of them), plus the orders request";

    // The listing shrank to one page: the connections opened for it close unused.
    data.purchases.resize(50);
    emu_->set_dataset(data);
    emu_->reset_stats();
    r = sync(cfg);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    st = emu_->get_stats();
    EXPECT_EQ(st.purchases_requests, 1u);
    EXPECT_LE(st.connections, 8u + 1u);
    EXPECT_EQ(current_keys("purchased_groups").size(), 50u);
}

TEST_F(SyncE2E, PagesConcurrentlyRemovesExactlyAndSurvivesAFailedPage) {
    auto data = emulator::dataset::generated(2000, 30, 42);
    start(data, std::chrono::milliseconds(25));
    const auto cfg = config(100, 8);

    auto r = sync(cfg);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto st = emu_->get_stats();
    EXPECT_EQ(st.purchases_requests, 20u);
    EXPECT_GE(st.max_in_flight, 2u) << "pages 2..20 must be in flight together";
    EXPECT_LE(st.connections, 1u + 8u) << "one keep-alive connection per worker, plus the orders request";
    EXPECT_EQ(current_keys("purchased_groups").size(), 2000u);

    const auto cfg_arg = cfg.string();
    const auto first_export =
        run_subsyncd({"export", "--table", "purchased_groups", "--format", "json", "--config", cfg_arg}).out;
    const auto first_run = [&] {
        auto d = db();
        return d.execAndGet("SELECT max(id) FROM sync_runs").getString();
    }();

    // The dataset loses 100 purchases: exactly those are marked removed.
    std::set<std::string> dropped;
    for (std::size_t i = 0; i < 100; ++i) dropped.insert(data.purchases[i * 17].id);
    std::erase_if(data.purchases, [&](const auto& p) { return dropped.count(p.id) > 0; });
    emu_->set_dataset(data);
    r = sync(cfg);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    {
        auto d = db();
        SQLite::Statement q(d, "SELECT item_key FROM purchased_groups WHERE removed_at IS NOT NULL");
        std::set<std::string> removed;
        while (q.executeStep()) removed.insert(q.getColumn(0).getString());
        EXPECT_EQ(removed, dropped);
        EXPECT_EQ(d.execAndGet("SELECT removed FROM sync_runs WHERE source = 'purchased_groups' ORDER BY id DESC")
                      .getInt64(),
                  100);
    }

    // The record: the table as it was after the first sync, and the history of the removals.
    auto as_of = run_subsyncd(
        {"export", "--table", "purchased_groups", "--format", "json", "--as-of", first_run, "--config", cfg_arg});
    EXPECT_EQ(as_of.exit_code, 0) << as_of.err;
    EXPECT_EQ(as_of.out, first_export);
    auto history = run_subsyncd({"history", "--kind", "removed", "--format", "json", "--config", cfg_arg});
    EXPECT_EQ(history.exit_code, 0) << history.err;
    EXPECT_EQ(std::count(history.out.begin(), history.out.end(), '\n'), 100);
    EXPECT_NE(history.out.find("\"kind\":\"removed\""), std::string::npos);
    // The commands write through the export's row writer: the same rows, the same field names.
    auto all_history = run_subsyncd({"history", "--format", "json", "--config", cfg_arg});
    auto feed = run_subsyncd({"export", "--table", "changes", "--format", "jsonl", "--config", cfg_arg});
    EXPECT_EQ(all_history.out, feed.out);
    auto history_csv = run_subsyncd({"history", "--format", "csv", "--config", cfg_arg});
    auto feed_csv = run_subsyncd({"export", "--table", "changes", "--format", "csv", "--config", cfg_arg});
    EXPECT_EQ(history_csv.out, feed_csv.out);
    auto alerts = run_subsyncd({"alerts", "--all", "--format", "json", "--config", cfg_arg});
    auto alerts_export = run_subsyncd({"export", "--table", "alerts", "--format", "jsonl", "--config", cfg_arg});
    auto sorted_lines = [](const std::string& text) {
        auto v = test::split_lines(text);
        std::sort(v.begin(), v.end());
        return v;
    };
    EXPECT_FALSE(alerts.out.empty());
    EXPECT_EQ(sorted_lines(alerts.out), sorted_lines(alerts_export.out)) << "the same rows, most urgent first";

    // Page 7 answers 500: exit 1, a failed run naming the page, nothing changed.
    const auto before = dump("purchased_groups");
    emu_->set_dataset(emulator::dataset::generated(1500, 30, 43));  // would change everything
    emu_->fail_page(7, 500);
    r = sync(cfg);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_EQ(dump("purchased_groups"), before);
    auto d = db();
    SQLite::Statement q(d, "SELECT status, error FROM sync_runs WHERE source = 'purchased_groups' ORDER BY id DESC");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getString(), "failed");
    const auto error = q.getColumn(1).getString();
    EXPECT_NE(error.find("account=prod source=purchased_groups page=7: HTTP 500"), std::string::npos) << error;
    EXPECT_NE(r.err.find("page=7"), std::string::npos) << r.err;
    // The other source still applied in the same sync.
    SQLite::Statement o(d, "SELECT status FROM sync_runs WHERE source = 'subscription_resources' ORDER BY id DESC");
    ASSERT_TRUE(o.executeStep());
    EXPECT_EQ(o.getColumn(0).getString(), "ok");
}

// The purchased_groups run of a `sync --once --summary json`: (unchanged, added, changed, removed).
struct groups_run {
    bool unchanged = false;
    std::int64_t items = 0, added = 0, changed = 0, removed = 0;
};
groups_run summary_of(const test::run_result& r) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(r.out);
    for (simdjson::dom::element run : doc["runs"].get_array()) {
        if (std::string_view(run["source"].get_string()) != "purchased_groups") continue;
        return {bool(run["unchanged"].get_bool()), int64_t(run["items"].get_int64()), int64_t(run["added"].get_int64()),
                int64_t(run["changed"].get_int64()), int64_t(run["removed"].get_int64())};
    }
    ADD_FAILURE() << "no purchased_groups run in " << r.out;
    return {};
}

// docs/decisions.md "An unchanged listing is recognised by its pages": a listing fetched with
// every page as before is neither parsed nor diffed; one that differs late fetches the pages it
// passed over again and diffs exactly as a full sync would.
TEST_F(SyncE2E, AListingWhosePagesAreAsBeforeIsRecognisedAndADifferenceAnywhereIsDiffed) {
    auto data = emulator::dataset::generated(2000, 30, 42);
    start(data);
    const auto cfg = config(100, 8);
    auto once = [&] {
        auto r = run_subsyncd({"sync", "--once", "--summary", "json", "--config", cfg.string()},
                              {{"SUBSYNC_TEST_TOKEN", token}});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return summary_of(r);
    };
    EXPECT_FALSE(once().unchanged) << "a first sync has nothing to be as";
    const auto table = dump("purchased_groups");
    const auto changes = [&] { return db().execAndGet("SELECT count(*) FROM changes").getInt64(); };
    const auto history = changes();

    emu_->reset_stats();
    auto again = once();
    EXPECT_TRUE(again.unchanged);
    EXPECT_EQ(again.items, 2000);
    EXPECT_EQ(emu_->get_stats().purchases_requests, 20u) << "every page is still fetched";
    EXPECT_EQ(dump("purchased_groups"), table);
    EXPECT_EQ(changes(), history);

    // The last page differs: pages 2..19 were passed over as before, and are fetched again.
    const std::string last_id = data.purchases.back().id;
    data.purchases.back().json = R"({"id":")" + last_id + R"(","group_id":"g-new","group_name":"renamed"})";
    emu_->set_dataset(data);
    emu_->reset_stats();
    const auto late_run = run_subsyncd({"-v", "sync", "--once", "--summary", "json", "--config", cfg.string()},
                                       {{"SUBSYNC_TEST_TOKEN", token}});
    ASSERT_EQ(late_run.exit_code, 0) << late_run.err;
    // The progress counts fetches: the pages fetched again add to the total, and it never steps back.
    const auto progress = test::progress_of(late_run.err, "purchased_groups");
    for (std::size_t i = 1; i < progress.size(); ++i) EXPECT_GT(progress[i].done, progress[i - 1].done) << i;
    ASSERT_EQ(progress.size(), emu_->get_stats().purchases_requests);
    EXPECT_EQ(progress.back().done, progress.back().total);
    EXPECT_GT(progress.back().total, 20) << "pages 2..19 are fetched again";
    const auto late = summary_of(late_run);
    EXPECT_FALSE(late.unchanged);
    EXPECT_EQ(late.items, 2000);
    EXPECT_EQ(late.added, 0);
    EXPECT_EQ(late.changed, 1);
    EXPECT_EQ(late.removed, 0);
    EXPECT_GT(emu_->get_stats().purchases_requests, 20u);
    EXPECT_EQ(db().execAndGet("SELECT group_name FROM purchased_groups WHERE item_key = '" + last_id + "'").getString(),
              "renamed");
    EXPECT_EQ(db().execAndGet("SELECT count(DISTINCT item_key) FROM changes WHERE run_id = (SELECT max(run_id) FROM "
                              "changes)").getInt64(),
              1);

    // One purchase in the middle goes: the pages after it shift, and exactly it is removed.
    const std::string gone = data.purchases[1000].id;
    data.purchases.erase(data.purchases.begin() + 1000);
    emu_->set_dataset(data);
    auto removed = once();
    EXPECT_FALSE(removed.unchanged);
    EXPECT_EQ(removed.removed, 1);
    EXPECT_EQ(removed.added + removed.changed, 0);
    EXPECT_EQ(current_keys("purchased_groups").count(gone), 0u);
    EXPECT_EQ(current_keys("purchased_groups").size(), 1999u);
    EXPECT_TRUE(once().unchanged) << "and the listing after it is recognised again";
}

// A page is first recognised by its body as it came; a body that differs only in members the
// filter drops (a server's volatile field) is still recognised by what the filter keeps, and a
// body too long to keep as it came (over 1 MiB) by that alone.
TEST_F(SyncE2E, APageWhoseOnlyUnknownMembersMovedIsAsBefore) {
    start(emulator::dataset::generated(600, 10, 7));
    const auto cfg = config(100, 4);
    // The run's summary, and how many of its six pages were read each way (the -v lines; page 1
    // is always parsed, as it says the listing's total).
    struct run {
        groups_run summary;
        std::map<std::string, int> reading;
    };
    auto once = [&] {
        auto r = run_subsyncd({"-v", "sync", "--once", "--summary", "json", "--config", cfg.string()},
                              {{"SUBSYNC_TEST_TOKEN", token}});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        run out{summary_of(r), {}};
        const std::regex line(R"(page fetched account=\S+ source=purchased_groups pages=\d+/\d+ read=(\w+))");
        for (std::sregex_iterator m(r.err.begin(), r.err.end(), line), end; m != end; ++m) ++out.reading[(*m)[1]];
        return out;
    };
    const auto unfiltered_digests = [&] {
        return db().execAndGet("SELECT hex(unfiltered_digests) FROM listing_digests WHERE source = 'purchased_groups'")
            .getString();
    };
    using readings = std::map<std::string, int>;
    emu_->pad_listings(10);
    const auto first_run = once();
    ASSERT_EQ(first_run.summary.added, 600);
    EXPECT_EQ(first_run.reading, (readings{{"parsed", 6}}));
    const auto first = unfiltered_digests();
    EXPECT_EQ(first.size(), 6u * 64) << "six pages, 32 bytes each";
    EXPECT_EQ(first.find(std::string(64, '0')), std::string::npos) << "every page's body as it came is known";
    const auto table = dump("purchased_groups");

    emu_->pad_listings(20);  // every body differs as it came, not as kept
    const auto moved = once();
    EXPECT_TRUE(moved.summary.unchanged);
    EXPECT_EQ(moved.reading, (readings{{"parsed", 1}, {"as_before", 5}})) << "recognised by what the filter kept";
    const auto second = unfiltered_digests();
    EXPECT_NE(second, first) << "the bodies as they came this time";

    const auto same = once();
    EXPECT_TRUE(same.summary.unchanged);
    EXPECT_EQ(same.reading, (readings{{"parsed", 1}, {"as_before_unfiltered", 5}})) << "recognised as they came";
    EXPECT_EQ(unfiltered_digests(), second);

    emu_->pad_listings(std::size_t{2} << 20);  // too long to keep as they came
    const auto long_pages = once();
    EXPECT_TRUE(long_pages.summary.unchanged);
    EXPECT_EQ(long_pages.reading, (readings{{"parsed", 1}, {"as_before", 5}}));
    EXPECT_EQ(unfiltered_digests(), std::string(6 * 64, '0')) << "not known for bodies filtered as they arrived";
    EXPECT_EQ(dump("purchased_groups"), table);
}

// Pages of more than 2 MiB are not kept for the next page; page 1, kept aside while the pages
// were as before, is placed just before the page that differed, which must not be dropped then.
TEST_F(SyncE2E, APageThatDiffersAfterLargePagesAsBeforeIsStagedWhole) {
    emulator::dataset data = emulator::dataset::seeds();
    data.purchases.clear();
    const std::string remark(30'000, 'r');
    for (int i = 0; i < 200; ++i) {
        const auto id = fmt::format("big-{:03}", i);
        data.purchases.push_back({id, "g", "n", R"({"id":")" + id + R"(","group_id":"g","group_name":"n","group_remark":")" +
                                                    (i < 100 ? "small" : remark) + R"("})"});
    }
    start(data);
    const auto cfg = config(100, 2);  // page 1 small, page 2 of 3 MB
    auto once = [&] {
        auto r = run_subsyncd({"sync", "--once", "--summary", "json", "--config", cfg.string()},
                              {{"SUBSYNC_TEST_TOKEN", token}});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return summary_of(r);
    };
    ASSERT_EQ(once().added, 200);
    data.purchases.back().json = R"({"id":"big-199","group_id":"g","group_name":"renamed"})";
    emu_->set_dataset(data);
    const auto run = once();
    EXPECT_FALSE(run.unchanged);
    EXPECT_EQ(run.items, 200);
    EXPECT_EQ(run.changed, 1);
    EXPECT_EQ(run.added + run.removed, 0);
    EXPECT_EQ(db().execAndGet("SELECT status FROM sync_runs WHERE source = 'purchased_groups' ORDER BY id DESC")
                  .getString(),
              "ok");
}

TEST_F(SyncE2E, UntrustedCertificateIsRefusedUnlessCaFileNamesIt) {
    start(emulator::dataset::seeds());
    auto r = sync(config(100, 8, /*trust=*/false));
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tls.ca_file"), std::string::npos) << "the error says what to do: " << r.err;
    EXPECT_EQ(current_keys("purchased_groups").size(), 0u);

    r = sync(config(100, 8, /*trust=*/true));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(current_keys("purchased_groups").size(), 3u);
}

TEST_F(SyncE2E, TokenNeverLeavesTheProcess) {
    start(emulator::dataset::generated(300, 10, 7));
    auto ok = sync(config(50, 4));
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    // A rejected token travels every error path too.
    auto rejected = sync(config(50, 4), std::string(token) + "-wrong");
    ASSERT_EQ(rejected.exit_code, 1) << rejected.err;
    EXPECT_NE(rejected.err.find("HTTP 401"), std::string::npos) << rejected.err;
    auto exported = run_subsyncd({"export", "--table", "purchased_groups", "--format", "json", "--config",
                                  (dir_ / "subsync.toml").string()});
    ASSERT_EQ(exported.exit_code, 0) << exported.err;

    std::vector<std::pair<std::string, std::string>> places{
        {"sync stdout", ok.out},       {"sync stderr", ok.err},        {"401 stdout", rejected.out},
        {"401 stderr", rejected.err},  {"export stdout", exported.out}, {"export stderr", exported.err}};
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path()))
        if (entry.is_regular_file()) places.emplace_back(entry.path().string(), test::read_file(entry.path()));
    ASSERT_GT(places.size(), 8u) << "the database, its WAL and the exports are searched too";
    for (const auto& [where, bytes] : places) EXPECT_EQ(bytes.find(token), std::string::npos) << "token found in " << where;
}

TEST_F(SyncE2E, MissingTokenNamesTheVariable) {
    start(emulator::dataset::seeds());
    auto r = run_subsyncd({"sync", "--once", "--config", config().string()}, {{"SUBSYNC_TEST_TOKEN", ""}});
    EXPECT_EQ(r.exit_code, 2) << "a secret that cannot be read is a config problem, as in check-config";
    EXPECT_NE(r.err.find("SUBSYNC_TEST_TOKEN"), std::string::npos) << r.err;
    auto check = run_subsyncd({"check-config", "--config", (dir_ / "subsync.toml").string()},
                              {{"SUBSYNC_TEST_TOKEN", ""}});
    EXPECT_EQ(check.exit_code, 2);
    EXPECT_NE(check.err.find("account[0].auth.token_env"), std::string::npos) << check.err;
}

}  // namespace
}  // namespace subsync
