// report.html: checked with Python's html.parser (an independent reader) for
// structure, nothing external, no script, escaping, and that every item
// expiring within the horizon is on the page.

#include "support/test_support.hpp"

#include <subsync/exporters/generations.hpp>
#include <subsync/exporters/report.hpp>
#include <subsync/sync/fetch.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>

namespace subsync::exporters {
namespace {

using sync::epoch_ms;
using test::temp_dir;

constexpr epoch_ms day = 86'400'000;
const epoch_ms now = *sync::parse_iso8601("2026-11-25T00:00:00Z");

// Names an attacker could put in an API response.
const std::string script_name = "<script>alert(\"pwned\")</script>";
const std::string attr_name = "\"><img src=x onerror=alert(1)>";
const std::string entity_name = "AT&T &amp; 'quotes' 分组 🚀";

struct expected_item {
    std::string id, name;
};

sync::purchased_group group(std::string id, std::optional<std::string> name, std::optional<epoch_ms> expire) {
    sync::purchased_group g;
    g.id = std::move(id);
    if (name) g.group_name = *name;
    if (expire) g.expire_time = *expire;
    return g;
}

// A snapshot with items inside and outside the 90-day horizon, quota history
// for a few purchases, and alerts rows (inserted directly: the rules are not here yet).
std::vector<expected_item> build(const std::filesystem::path& db_path, int burners = 3) {
    sync::snapshot_store store(db_path);
    std::vector<expected_item> inside;
    std::vector<sync::purchased_group> groups;
    const std::vector<std::pair<double, std::string>> offsets = {
        {-5, "already expired"}, {0.5, script_name}, {1, attr_name}, {3, entity_name}, {10, "ten days"},
        {29, "=HYPERLINK(\"x\")"}, {45, "forty-five"}, {89.9, "edge of horizon"}, {91, "just beyond"}, {400, "far"}};
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        const auto expire = now + static_cast<epoch_ms>(offsets[i].first * static_cast<double>(day));
        const std::string id = "g" + std::to_string(i);
        groups.push_back(group(id, offsets[i].second, expire));
        if (offsets[i].first >= 0 && offsets[i].first <= 90) inside.push_back({id, offsets[i].second});
    }
    groups.push_back(group("unnamed", std::nullopt, now + 2 * day));
    inside.push_back({"unnamed", "unnamed"});
    for (int b = 0; b < burners; ++b) groups.push_back(group("burn" + std::to_string(b), "burner " + std::to_string(b), std::nullopt));
    groups.push_back(group("flat", "flat quota", std::nullopt));

    sync::listing<sync::subscription_resource> resources;
    for (int i = 0; i < 3; ++i) {
        sync::subscription_resource r;
        r.region_id = std::string("cn-north-4");
        r.project_id = std::string("p1");
        r.resource_id = "res-" + std::to_string(i);
        r.resource_type = std::string("secmaster");
        r.resource_spec_code = std::string(i == 1 ? "<b>pro</b>" : "basic");
        r.expire_time = now + (i == 2 ? 200 : 20 + i) * day;
        if (i != 2) inside.push_back({"cn-north-4/p1/res-" + std::to_string(i), i == 1 ? "secmaster <b>pro</b>" : "secmaster basic"});
        resources.items.push_back(r);
    }
    resources.total = static_cast<std::int64_t>(resources.items.size());

    // Six daily syncs: burners lose 100·(b+1) a day from 1000, "flat" keeps its quota.
    for (int k = 0; k < 6; ++k) {
        const epoch_ms t = now - (5 - k) * day;
        for (auto& g : groups) {
            if (g.id.rfind("burn", 0) == 0) {
                const int b = g.id.back() - '0';
                g.quota_left = 1000 - 100 * (b + 1) * k;
                g.quota_used = 100 * (b + 1) * k;
            } else if (g.id == "flat") {
                g.quota_left = 500;
                g.quota_used = 0;
            }
        }
        sync::listing<sync::purchased_group> l;
        l.items = groups;
        l.total = static_cast<std::int64_t>(groups.size());
        store.apply("prod", l, t - 1000, t);
        store.apply("prod", resources, t - 1000, t);
    }
    auto& db = store.database();
    db.exec("INSERT INTO alerts (account, source, item_key, kind, threshold, state, severity, since, summary, detail, "
            "updated_at) VALUES "
            "('prod', 'purchased_groups', 'g1', 'expiring', '1d', 'firing', 'critical', 1764000000000, "
            "'<script>alert(\"summary\")</script> expires', '{\"expire_time\":1}', 1764000000000),"
            "('prod', 'purchased_groups', 'g4', 'expiring', '30d', 'firing', 'warning', 1764000000000, "
            "'ten days left', '{}', 1764000000000),"
            "('prod', 'purchased_groups', 'g9', 'expiring', '30d', 'resolved', 'warning', 1764000000000, "
            "'resolved one', '{}', 1764000000000)");
    return inside;
}

struct parsed_page {
    std::string raw;
    std::string text;  ///< every text node, entities decoded
    std::vector<std::string> errors, external;
    std::map<std::string, std::int64_t> tags;
};

parsed_page parse_with_python(const temp_dir& dir, const std::string& html) {
    parsed_page p;
    p.raw = html;
    test::write_file(dir / "report.html", html);
    const std::string cmd =
        std::string("python3 " SUBSYNC_TEST_TOOLS "/check_html.py ") + (dir / "report.html").string() + " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("cannot run python3");
    std::string out;
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    if (::pclose(pipe) != 0) throw std::runtime_error("python3 check_html.py failed (is python3 installed?): " + out);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(out).get(doc)) throw std::runtime_error("check_html.py printed no JSON: " + out);
    p.text = std::string(std::string_view(doc["text"]));
    for (auto e : doc["errors"].get_array()) p.errors.emplace_back(std::string_view(e));
    for (auto e : doc["external"].get_array()) p.external.emplace_back(std::string_view(e));
    for (auto [k, v] : doc["tags"].get_object()) p.tags[std::string(k)] = int64_t(v);
    return p;
}

std::string render(SQLite::Database& db, const report_options& opts = {}) {
    std::string out;
    write_report(db, now, [&](std::string_view b) { out += b; }, opts);
    return out;
}

TEST(Report, IsWellFormedSelfContainedAndListsEveryItemExpiringWithin90Days) {
    temp_dir dir;
    const auto inside = build(dir / "snapshot.db");
    auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
    const auto page = parse_with_python(dir, render(db));

    EXPECT_TRUE(page.errors.empty()) << ::testing::PrintToString(page.errors);
    EXPECT_TRUE(page.external.empty()) << ::testing::PrintToString(page.external);
    for (const char* banned : {"script", "link", "img", "iframe", "object", "embed", "base", "form", "image", "use"})
        EXPECT_EQ(page.tags.count(banned), 0u) << "<" << banned << "> in the page";
    EXPECT_EQ(page.raw.find("<script"), std::string::npos);
    EXPECT_EQ(page.raw.find("<img"), std::string::npos);
    EXPECT_EQ(page.raw.find("@import"), std::string::npos);
    EXPECT_EQ(page.raw.find("url("), std::string::npos);
    EXPECT_NE(page.raw.find("@media print"), std::string::npos) << "printable";
    EXPECT_GE(page.tags.at("svg"), 2) << "a timeline and quota charts";

    ASSERT_EQ(inside.size(), 10u);
    for (const auto& item : inside) {
        SCOPED_TRACE(item.id);
        EXPECT_NE(page.text.find(item.id), std::string::npos) << "id missing";
        EXPECT_NE(page.text.find(item.name), std::string::npos) << "name missing (or mangled)";
    }
    for (const char* outside : {"already expired", "just beyond", "g8", "res-2"})
        EXPECT_EQ(page.text.find(outside), std::string::npos) << outside << " is not within 90 days";
    // Injected markup is text to the parser, shown exactly as the API sent it.
    EXPECT_NE(page.text.find("<script>alert(\"summary\")</script> expires"), std::string::npos);
    EXPECT_NE(page.raw.find("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"), std::string::npos);
    EXPECT_NE(page.text.find("Expiring in the next 90 days (10)"), std::string::npos);
    EXPECT_NE(page.text.find("Alerts firing (2)"), std::string::npos);
    EXPECT_EQ(page.text.find("resolved one"), std::string::npos) << "resolved alerts are not firing";
}

TEST(Report, QuotaChartsAreCappedByUsedShareAndDrawTheForecast) {
    temp_dir dir;
    build(dir / "snapshot.db", 5);
    auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
    report_options opts;
    opts.max_charts = 2;
    const auto page = parse_with_python(dir, render(db, opts));
    EXPECT_TRUE(page.errors.empty()) << ::testing::PrintToString(page.errors);
    EXPECT_EQ(page.tags.at("figure"), 2);
    EXPECT_NE(page.text.find("2 of 6 purchases with quota samples"), std::string::npos) << "the cap is said";
    // burn4 loses 500/day from 1000: exhausted on day 2 of six; burn3 (400/day) is next by used share.
    EXPECT_NE(page.text.find("burner 4"), std::string::npos);
    EXPECT_NE(page.text.find("burner 3"), std::string::npos);
    EXPECT_EQ(page.text.find("burner 0"), std::string::npos);
    EXPECT_NE(page.raw.find("class=\"q-forecast\""), std::string::npos);
    EXPECT_NE(page.text.find("exhausted"), std::string::npos);
}

TEST(Report, FlatQuotaHasNoForecastAndEmptySnapshotStillRenders) {
    temp_dir dir;
    build(dir / "snapshot.db", 0);
    auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
    const auto page = parse_with_python(dir, render(db));
    EXPECT_NE(page.text.find("no forecast"), std::string::npos);
    EXPECT_EQ(page.raw.find("class=\"q-forecast\""), std::string::npos);

    temp_dir empty;
    { sync::snapshot_store store(empty / "snapshot.db"); }
    auto edb = sync::open_snapshot_readonly(empty / "snapshot.db");
    const auto blank = parse_with_python(empty, render(edb));
    EXPECT_TRUE(blank.errors.empty()) << ::testing::PrintToString(blank.errors);
    EXPECT_NE(blank.text.find("No sync on record yet."), std::string::npos);
    EXPECT_NE(blank.text.find("No alert is firing."), std::string::npos);
}

TEST(Report, TimelineIsCappedButTheTableListsEveryItem) {
    temp_dir dir;
    const auto inside = build(dir / "snapshot.db");
    auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
    report_options opts;
    opts.max_timeline_marks = 3;
    const auto page = parse_with_python(dir, render(db, opts));
    EXPECT_NE(page.text.find("The timeline shows the 3 soonest of 10 items"), std::string::npos);
    std::size_t marks = 0;
    for (auto at = page.raw.find("class=\"mark "); at != std::string::npos; at = page.raw.find("class=\"mark ", at + 1))
        ++marks;
    EXPECT_EQ(marks, 3u);
    for (const auto& item : inside) EXPECT_NE(page.text.find(item.id), std::string::npos) << item.id;
}

TEST(Report, GenerationHoldsReportInItsManifest) {
    temp_dir dir;
    build(dir / "snapshot.db");
    auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
    const auto g = write_generation(db, dir / "exports", now, {1});
    const auto it = std::find_if(g.files.begin(), g.files.end(),
                                 [](const written_file& f) { return f.path.filename() == "report.html"; });
    ASSERT_NE(it, g.files.end());
    EXPECT_EQ(it->rows, 10) << "rows of the report = items expiring within the horizon";
    EXPECT_EQ(test::read_file(dir / "exports" / "latest" / "report.html"), render(db));

    generation_options no_report;
    no_report.report.reset();
    const auto g2 = write_generation(db, dir / "exports", now + 1000, {2}, no_report);
    EXPECT_FALSE(std::filesystem::exists(g2.dir / "report.html"));
}

}  // namespace
}  // namespace subsync::exporters
