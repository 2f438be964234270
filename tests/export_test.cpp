#include "support/test_support.hpp"

#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/snapshot.hpp>

#include <gtest/gtest.h>
#include <simdjson.h>

namespace subsync::exporters {
namespace {

using sync::cell;
using sync::column_type;
using sync::field_state;
using test::temp_dir;

cell text(std::string s) { return cell{field_state::present, 0, std::move(s)}; }
cell number(std::int64_t n) { return cell{field_state::present, n, {}}; }

TEST(Csv, CellsAreQuotedAndNeutralised) {
    struct csv_case {
        const char* name;
        cell value;
        column_type type;
        std::string expected;
    };
    const csv_case cases[] = {
        {"plain", text("abc"), column_type::text, "abc"},
        {"comma", text("a,b"), column_type::text, "\"a,b\""},
        {"quote", text("say \"hi\""), column_type::text, "\"say \"\"hi\"\"\""},
        {"newline", text("a\r\nb"), column_type::text, "\"a\r\nb\""},
        {"formula =", text("=HYPERLINK(\"x\")"), column_type::text, "\"'=HYPERLINK(\"\"x\"\")\""},
        {"formula +", text("+1"), column_type::text, "\"'+1\""},
        {"formula -", text("-1"), column_type::text, "\"'-1\""},
        {"formula @", text("@SUM(A1)"), column_type::text, "\"'@SUM(A1)\""},
        {"formula tab", text("\tx"), column_type::text, "\"'\tx\""},
        {"unicode", text("分组 🚀"), column_type::text, "分组 🚀"},
        {"negative number untouched", number(-5), column_type::integer, "-5"},
        {"int64 max", number(9223372036854775807), column_type::integer, "9223372036854775807"},
        {"time", number(1514528566000), column_type::time, "2017-12-29T06:22:46Z"},
        {"bool", number(1), column_type::boolean, "true"},
        {"json", text(R"([{"key":"a","value":"b"}])"), column_type::json, R"("[{""key"":""a"",""value"":""b""}]")"},
        {"null", cell{field_state::null, 0, {}}, column_type::text, ""},
        {"absent", cell{}, column_type::integer, ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        std::string out;
        append_csv_cell(out, c.value, c.type);
        EXPECT_EQ(out, c.expected);
    }
}

class ExportTest : public ::testing::Test {
protected:
    void SetUp() override {
        sync::snapshot_store store(dir_ / "snapshot.db");
        sync::purchased_group a;
        a.id = "a";
        a.group_name = std::string("=cmd|' /C calc'!A0");
        a.group_remark = sync::field<std::string>::null();
        a.quota_left = 9007199254740993;
        a.order_time = 1514528566000;
        a.group_domains = std::vector<std::string>{"x.example.com", "y,\"z\""};
        sync::purchased_group b;
        b.id = "b";
        b.group_name = std::string("line1\nline2, 分组");
        sync::listing<sync::purchased_group> l;
        l.items = {a, b};
        l.total = 2;
        store.apply("prod", l, 1000, 2000);
    }

    temp_dir dir_;
};

TEST_F(ExportTest, CsvHasHeaderAndOneLinePerRecord) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    std::string out;
    const auto rows = write_table(db, sync::source_kind::purchased_groups, export_format::csv,
                                  [&](std::string_view b) { out += b; });
    EXPECT_EQ(rows, 2);
    EXPECT_EQ(out,
              "account,id,group_id,group_name,group_remark,order_time,start_time,expire_time,group_domains,quota_left,"
              "quota_used,app_key,app_secret\n"
              "prod,a,,\"'=cmd|' /C calc'!A0\",,2017-12-29T06:22:46Z,,,\"[\"\"x.example.com\"\",\"\"y,\\\"\"z\\\"\"\"\"]\","
              "9007199254740993,,,\n"
              "prod,b,,\"line1\nline2, 分组\",,,,,,,,,\n");
}

TEST_F(ExportTest, JsonIsValidAndKeepsNullApartFromAbsent) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    std::string out;
    write_table(db, sync::source_kind::purchased_groups, export_format::json, [&](std::string_view b) { out += b; });
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(out).get(doc)) << out;
    auto a = doc.at(0);
    EXPECT_EQ(std::string_view(a["account"]), "prod");
    EXPECT_EQ(std::string_view(a["group_name"]), "=cmd|' /C calc'!A0") << "JSON is data, not a spreadsheet: no prefix";
    EXPECT_TRUE(a["group_remark"].is_null());
    EXPECT_EQ(a["group_id"].error(), simdjson::NO_SUCH_FIELD) << "absent stays absent";
    EXPECT_EQ(int64_t(a["quota_left"]), 9007199254740993);
    EXPECT_EQ(std::string_view(a["order_time"]), "2017-12-29T06:22:46Z");
    EXPECT_EQ(std::string_view(a["group_domains"].at(1)), "y,\"z\"");
    EXPECT_EQ(std::string_view(doc.at(1)["group_name"]), "line1\nline2, 分组");
}

TEST_F(ExportTest, ExportFilesAppearWhole) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto files = write_exports(db, dir_ / "exports");
    ASSERT_EQ(files.size(), 4u);
    for (const auto& f : files) {
        EXPECT_TRUE(std::filesystem::exists(f.path)) << f.path;
        EXPECT_EQ(std::filesystem::file_size(f.path), f.bytes);
    }
    EXPECT_EQ(files[0].rows, 2);
    EXPECT_EQ(files[2].rows, 0);
    EXPECT_EQ(test::read_file(dir_ / "exports" / "subscription_resources.json"), "[]\n");
    // No temporary file is left behind.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_ / "exports")) ++entries;
    EXPECT_EQ(entries, 4u);
}

TEST(AtomicFile, UncommittedWriteLeavesTheOldFile) {
    temp_dir dir;
    test::write_file(dir / "out.csv", "old");
    {
        atomic_file f(dir / "out.csv");
        f.write("new content");
    }
    EXPECT_EQ(test::read_file(dir / "out.csv"), "old");
    {
        atomic_file f(dir / "out.csv");
        f.write("new content");
        f.commit();
    }
    EXPECT_EQ(test::read_file(dir / "out.csv"), "new content");
}

TEST(AtomicFile, UnwritableFolderNamesThePath) {
    try {
        atomic_file f("/nonexistent-dir/out.csv");
        FAIL() << "expected an error";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/out.csv"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace subsync::exporters
