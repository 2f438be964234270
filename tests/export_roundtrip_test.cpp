// Issue 8, acceptance 1: exports of awkward values read back with independent
// readers (Python's csv and json modules, jq) equal the snapshot exactly.
// tests/tools/roundtrip.py does the reading; this file builds the data and the
// expected cells, typed and hex-encoded so that nothing needs escaping.

#include "support/test_support.hpp"

#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/fetch.hpp>
#include <subsync/sync/history.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <random>

namespace subsync::exporters {
namespace {

using sync::cell;
using sync::column_type;
using sync::field_state;
using test::temp_dir;

const std::vector<std::string> awkward_text = {
    "plain",
    "unicode 分组 🚀 é",
    "say \"hi\"",
    "a, b, c",
    "line1\nline2",
    "crlf\r\nend",
    "=HYPERLINK(\"https://example.com\")",
    "-1+2",
    "@SUM(A1)",
    "+1",
    "\tleading tab",
    "'quoted",
    "",
    "trailing space ",
    "back\\slash",
};

std::string hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        out += digits[c >> 4];
        out += digits[c & 0xf];
    }
    return out;
}

std::string typed_cell(const cell& c, column_type t) {
    if (c.state == field_state::absent) return "A";
    if (c.state == field_state::null) return "N";
    switch (t) {
        case column_type::text: return "S" + hex(c.text);
        case column_type::json: return "J" + hex(c.text);
        case column_type::integer: return "I" + std::to_string(c.number);
        case column_type::time: return "T" + sync::format_iso8601(c.number);
        case column_type::boolean: return c.number ? "B1" : "B0";
    }
    return "?";
}

template <class Record>
std::string expected_tsv(sync::source_kind k, const std::string& account, std::vector<Record> items) {
    std::sort(items.begin(), items.end(), [](const Record& a, const Record& b) { return sync::item_key(a) < sync::item_key(b); });
    std::string out = "account";
    for (const auto& c : sync::columns(k)) out += "\t" + std::string(c.name);
    out += '\n';
    std::vector<cell> cells;
    for (const auto& r : items) {
        sync::to_cells(r, cells);
        out += "S" + hex(account);
        for (std::size_t i = 0; i < cells.size(); ++i) out += "\t" + typed_cell(cells[i], sync::columns(k)[i].type);
        out += '\n';
    }
    return out;
}

std::vector<sync::purchased_group> awkward_groups() {
    std::vector<sync::purchased_group> out;
    for (std::size_t i = 0; i < awkward_text.size(); ++i) {
        sync::purchased_group g;
        g.id = "id-" + std::to_string(100 + i);
        g.group_name = awkward_text[i];
        g.group_remark = awkward_text[(i + 3) % awkward_text.size()];
        if (i % 3 == 0) g.group_id = sync::field<std::string>::null();
        if (i % 3 == 1) g.group_id = "g-" + awkward_text[(i + 5) % awkward_text.size()];
        g.order_time = 1514528566000 + static_cast<std::int64_t>(i) * 1001;  // some with milliseconds
        if (i % 4 == 0) g.expire_time = sync::field<sync::epoch_ms>::null();
        else g.expire_time = 1800000000000 + static_cast<std::int64_t>(i);
        if (i % 5 == 0) g.group_domains = std::vector<std::string>{};
        else if (i % 5 == 1) g.group_domains = std::vector<std::string>{awkward_text[i], "x.example.com"};
        const std::int64_t ints[] = {0, -1, 9007199254740993, 9223372036854775807, -9223372036854775807 - 1, 42};
        g.quota_left = ints[i % 6];
        if (i % 2 == 0) g.quota_used = ints[(i + 2) % 6];
        else if (i % 7 == 1) g.quota_used = sync::field<std::int64_t>::null();
        g.app_secret = std::string("******");
        out.push_back(g);
    }
    return out;
}

std::vector<sync::subscription_resource> awkward_resources() {
    std::vector<sync::subscription_resource> out;
    for (std::size_t i = 0; i < awkward_text.size(); ++i) {
        sync::subscription_resource r;
        if (i % 4 == 0) r.region_id = sync::field<std::string>::null();
        else r.region_id = std::string("cn-north-4");
        r.project_id = "p" + std::to_string(i % 3);
        r.resource_id = "res-" + std::to_string(i);
        r.resource_size = static_cast<std::int64_t>(i) - 3;
        r.resource_type = awkward_text[i];
        r.create_time = 1765349400000 + static_cast<std::int64_t>(i);
        if (i % 2 == 0) r.expire_time = 1796885400000;
        r.charging_mode = std::string(i % 2 ? "PREPAID" : "postPaid");
        r.to_period = i % 3 == 0;
        if (i % 3 == 1) r.tag_list = std::vector<sync::tag>{};
        else if (i % 3 == 2) r.tag_list = std::vector<sync::tag>{{"dept", awkward_text[i]}, {"=k", "v,\"w\""}};
        out.push_back(r);
    }
    return out;
}

std::string run_python(const std::vector<std::filesystem::path>& args) {
    std::string cmd = "python3 " SUBSYNC_TEST_TOOLS "/roundtrip.py";
    for (const auto& a : args) cmd += " '" + a.string() + "'";
    cmd += " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("cannot run python3");
    std::string out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    ::pclose(pipe);
    return out;
}

TEST(ExportRoundTrip, PythonCsvJsonAndJqReadBackExactlyTheSnapshot) {
    temp_dir dir;
    const auto groups = awkward_groups();
    const auto resources = awkward_resources();
    {
        sync::snapshot_store store(dir / "snapshot.db");
        sync::listing<sync::purchased_group> g;
        g.items = groups;
        g.total = static_cast<std::int64_t>(groups.size());
        store.apply("prod", g, 1000, 2000);
        sync::listing<sync::subscription_resource> r;
        r.items = resources;
        r.total = static_cast<std::int64_t>(resources.size());
        store.apply("prod", r, 1000, 2000);
    }
    auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
    const auto write = [&](export_table t, export_format f, const std::filesystem::path& p, csv_style csv = {}) {
        std::ofstream out(p, std::ios::binary);
        export_options o;
        o.csv = csv;
        write_table(db, t, f, [&](std::string_view b) { out.write(b.data(), static_cast<std::streamsize>(b.size())); }, o);
    };
    for (auto table : {export_table::purchased_groups, export_table::subscription_resources}) {
        const std::string name(to_string(table));
        SCOPED_TRACE(name);
        const auto base = dir / name;
        test::write_file(base.string() + ".expected.tsv",
                         table == export_table::purchased_groups
                             ? expected_tsv(sync::source_kind::purchased_groups, "prod", groups)
                             : expected_tsv(sync::source_kind::subscriptions, "prod", resources));
        write(table, export_format::csv, base.string() + ".csv");
        write(table, export_format::csv, base.string() + ".plain.csv", {false, false, false});
        write(table, export_format::json, base.string() + ".json");
        write(table, export_format::jsonl, base.string() + ".jsonl");
        EXPECT_EQ(run_python({base.string() + ".expected.tsv", base.string() + ".csv", base.string() + ".plain.csv",
                              base.string() + ".json", base.string() + ".jsonl"}),
                  "ok\n");
    }
}

// Issue 8, acceptance 3: a consumer that asks for `--since` its last seq after
// every sync, and applies what it gets, ends with exactly the final snapshot.
using item_fields = std::map<std::string, std::string>;  // field -> minified JSON value
using replica = std::map<std::string, item_fields>;      // "account source id" -> fields

item_fields fields_of(simdjson::dom::object o) {
    item_fields f;
    for (auto [k, v] : o) f[std::string(k)] = simdjson::minify(v);
    return f;
}

template <class Record>
void mutate(std::vector<Record>& items, std::mt19937& rng, int sync_no) {
    std::uniform_int_distribution<int> pick(0, 9);
    std::vector<Record> next;
    for (auto& r : items) {
        const int roll = pick(rng);
        if (roll == 0) continue;  // removed
        if constexpr (std::is_same_v<Record, sync::purchased_group>) {
            if (roll == 1) r.quota_left = 9007199254740993 - sync_no;
            if (roll == 2) r.group_name = sync::field<std::string>::null();
            if (roll == 3) r.group_name = awkward_text[static_cast<std::size_t>(sync_no) % awkward_text.size()];
            if (roll == 4) r.group_remark = sync::field<std::string>();  // absent now
            if (roll == 5) r.group_domains = std::vector<std::string>{"s" + std::to_string(sync_no)};
        } else {
            if (roll == 1) r.resource_size = sync_no;
            if (roll == 2) r.tag_list = sync::field<std::vector<sync::tag>>::null();
            if (roll == 3) r.expire_time = 1796885400000 + sync_no;
        }
        next.push_back(r);
    }
    std::vector<Record> extra;
    if constexpr (std::is_same_v<Record, sync::purchased_group>) {
        extra = awkward_groups();
        for (auto& g : extra) g.id += "-s" + std::to_string(sync_no);
    } else {
        extra = awkward_resources();
        for (auto& r : extra) r.resource_id += "-s" + std::to_string(sync_no);
    }
    extra.resize(3);
    next.insert(next.end(), extra.begin(), extra.end());
    items = std::move(next);
}

TEST(ExportRoundTrip, ChangeFeedConsumerWithSinceReconstructsTheSnapshotAcrossTenSyncs) {
    temp_dir dir;
    sync::snapshot_store store(dir / "snapshot.db");
    auto groups = awkward_groups();
    auto resources = awkward_resources();
    std::mt19937 rng(8);
    replica mirror;
    std::int64_t last_seq = 0;
    simdjson::dom::parser parser;
    for (int s = 1; s <= 10; ++s) {
        if (s > 1) {
            mutate(groups, rng, s);
            mutate(resources, rng, s);
        }
        sync::listing<sync::purchased_group> g;
        g.items = groups;
        g.total = static_cast<std::int64_t>(groups.size());
        store.apply("prod", g, s * 10000, s * 10000 + 1);
        sync::listing<sync::subscription_resource> r;
        r.items = resources;
        r.total = static_cast<std::int64_t>(resources.size());
        store.apply("prod", r, s * 10000, s * 10000 + 2);

        // The consumer: everything after the last seq it saw, as JSON Lines.
        std::string feed;
        export_options o;
        o.since_seq = last_seq;
        write_table(store.database(), export_table::changes, export_format::jsonl,
                    [&](std::string_view b) { feed += b; }, o);
        std::size_t start = 0;
        for (std::size_t nl; (nl = feed.find('\n', start)) != std::string::npos; start = nl + 1) {
            simdjson::dom::element c;
            ASSERT_FALSE(parser.parse(feed.substr(start, nl - start)).get(c));
            const std::int64_t seq = int64_t(c["seq"]);
            ASSERT_GT(seq, last_seq) << "seq increases";
            last_seq = seq;
            const std::string key = std::string(std::string_view(c["account"])) + " " +
                                    std::string(std::string_view(c["source"])) + " " + std::string(std::string_view(c["id"]));
            const std::string_view kind = c["kind"];
            if (kind == "added") mirror[key] = fields_of(c["new"].get_object());
            else if (kind == "removed") mirror.erase(key);
            else {
                const std::string field{std::string_view(c["field"])};
                simdjson::dom::element v;
                if (c["new"].get(v) == simdjson::SUCCESS) mirror[key][field] = simdjson::minify(v);
                else mirror[key].erase(field);  // absent now
            }
        }
    }
    // The final snapshot, rendered as the feed renders items (epoch-ms times).
    replica expected;
    for (auto kind : {sync::source_kind::purchased_groups, sync::source_kind::subscriptions}) {
        for (const auto& row : sync::rows_as_of(store.database(), kind, {std::nullopt, 4102444800000})) {
            std::string obj;
            sync::append_json_object(obj, sync::columns(kind), row.cells, sync::time_style::epoch_millis);
            simdjson::dom::element e;
            ASSERT_FALSE(parser.parse(obj).get(e)) << obj;
            expected[row.account + " " + std::string(sync::to_string(kind)) + " " + row.key] = fields_of(e.get_object());
        }
    }
    EXPECT_GT(expected.size(), 20u);
    EXPECT_EQ(mirror, expected);
}

}  // namespace
}  // namespace subsync::exporters
