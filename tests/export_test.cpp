#include "support/export_fixture.hpp"
#include "support/test_support.hpp"

#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <map>
#include <random>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace subsync::exporters {
namespace {

using sync::cell;
using sync::column_type;
using sync::field_state;
using test::temp_dir;
using namespace export_test;

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
        {"empty", text(""), column_type::text, ""},
        {"carriage return only", text("a\rb"), column_type::text, "\"a\rb\""},
        {"quote only", text("\""), column_type::text, "\"\"\"\""},
        {"comma at the end", text("abc,"), column_type::text, "\"abc,\""},
        {"formula with comma", text("=1,2"), column_type::text, "\"'=1,2\""},
        {"formula cr", text("\rx"), column_type::text, "\"'\rx\""},
        {"minus in the middle", text("a-b=c"), column_type::text, "a-b=c"},
        {"long plain", text(std::string(300, 'x')), column_type::text, std::string(300, 'x')},
        {"json never a formula", text("-1"), column_type::json, "-1"},
        {"int64 min", number(INT64_MIN), column_type::integer, "-9223372036854775808"},
        {"zero", number(0), column_type::integer, "0"},
        {"time with ms", number(1578128722701), column_type::time, "2020-01-04T09:05:22.701Z"},
        {"time before 1970", number(-1), column_type::time, "1969-12-31T23:59:59.999Z"},
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

// What append_csv_text was before its one-pass check: the reference.
std::string csv_reference(std::string_view s, bool neutralise) {
    const bool formula = neutralise && !s.empty() &&
                         (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r');
    const bool quote = formula || s.find_first_of(",\"\r\n") != std::string_view::npos;
    if (!quote) return std::string(s);
    std::string out = "\"";
    if (formula) out += '\'';
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

TEST(Csv, TextMatchesTheReferenceOnRandomStrings) {
    std::mt19937_64 rng(25);
    const std::string alphabet = "ab ,\"\r\n=+-@\t'\x80\xE5";
    std::uniform_int_distribution<int> len(0, 12);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    for (int i = 0; i < 50'000; ++i) {
        std::string s(static_cast<std::size_t>(len(rng)), ' ');
        for (char& ch : s) ch = alphabet[pick(rng)];
        for (const bool neutralise : {true, false}) {
            std::string out;
            append_csv_cell(out, text(s), column_type::text, neutralise);
            if (out != csv_reference(s, neutralise)) {
                ADD_FAILURE() << "case " << i << " neutralise=" << neutralise << " differs";
                return;
            }
        }
    }
}

TEST_F(ExportTest, CsvHasHeaderAndOneLinePerRecord) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    std::string out;
    const auto rows = write_table(db, export_table::purchased_groups, export_format::csv,
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
    write_table(db, export_table::purchased_groups, export_format::json, [&](std::string_view b) { out += b; });
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

TEST_F(ExportTest, GenerationIsCompleteWithManifestAndLatestLink) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto g = write_generation(db, dir_ / "exports", 1514528566000, {1});
    ASSERT_EQ(g.files.size(), 9u) << "4 tables x csv, json, and report.html";
    for (const auto& f : g.files) {
        EXPECT_TRUE(std::filesystem::exists(f.path)) << f.path;
        EXPECT_EQ(std::filesystem::file_size(f.path), f.bytes);
        EXPECT_EQ(f.sha256.size(), 64u);
    }
    EXPECT_EQ(g.files[0].rows, 2);
    EXPECT_EQ(g.dir.filename(), "20171229T062246Z-1");
    const auto latest = dir_ / "exports" / "latest";
    EXPECT_TRUE(std::filesystem::is_symlink(latest));
    EXPECT_EQ(std::filesystem::canonical(latest), std::filesystem::canonical(g.dir));
    EXPECT_EQ(test::read_file(latest / "subscription_resources.json"), "[]\n");

    simdjson::dom::parser parser;
    simdjson::dom::element manifest;
    ASSERT_FALSE(parser.load((latest / "manifest.json").string()).get(manifest));
    EXPECT_EQ(int64_t(manifest["schema_version"]), sync::snapshot_store::schema_version);
    EXPECT_EQ(std::string_view(manifest["generated_at"]), "2017-12-29T06:22:46Z");
    std::size_t listed = 0;
    for (auto f : manifest["files"].get_array()) {
        const std::string name{std::string_view(f["name"])};
        EXPECT_EQ(uint64_t(f["bytes"]), std::filesystem::file_size(latest / name)) << name;
        ++listed;
    }
    EXPECT_EQ(listed, 9u);
    // Only complete generations exist: no hidden building folder is left.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_ / "exports" / "generations")) ++entries;
    EXPECT_EQ(entries, 1u);
    // The change feed got the two additions, once.
    EXPECT_EQ(g.changes_appended, 2);
    EXPECT_EQ(append_change_feed(db, dir_ / "exports" / "changes.jsonl"), 0);
}

/// name -> (inode, carried_from or "") of every file of a generation, from its manifest.
std::map<std::string, std::pair<ino_t, std::string>> files_of(const std::filesystem::path& gen) {
    simdjson::dom::parser parser;
    simdjson::dom::element manifest = parser.load((gen / "manifest.json").string());
    std::map<std::string, std::pair<ino_t, std::string>> out;
    for (auto f : manifest["files"].get_array()) {
        const std::string name{std::string_view(f["name"])};
        struct stat st {};
        EXPECT_EQ(::stat((gen / name).c_str(), &st), 0) << name;
        std::string_view from;
        if (f["carried_from"].get(from)) from = "";
        // What the manifest says of a carried file is still true of it.
        EXPECT_EQ(uint64_t(f["bytes"]), std::filesystem::file_size(gen / name)) << name;
        EXPECT_EQ(std::string_view(f["sha256"]), sync::sha256_hex(test::read_file(gen / name))) << name;
        out[name] = {st.st_ino, std::string(from)};
    }
    return out;
}

// Issue 19 §2: a sync that changed nothing writes no table again. Its generation hard-links the
// previous one's files (same inode), its manifest says where from, and only the run record
// (sync_runs) and the manifest are new.
TEST_F(ExportTest, UnchangedFilesAreHardLinksOfThePreviousGeneration) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto first = write_generation(db, dir_ / "exports", 1514528566000, {1});
    const auto second = write_generation(db, dir_ / "exports", 1514528567000, {2});
    const auto a = files_of(first.dir), b = files_of(second.dir);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, file] : b) {
        SCOPED_TRACE(name);
        if (name.starts_with("sync_runs.")) {
            EXPECT_NE(file.first, a.at(name).first) << "the run record is written every time";
            EXPECT_EQ(file.second, "");
        } else {
            EXPECT_EQ(file.first, a.at(name).first) << "not written again: the same file";
            EXPECT_EQ(file.second, first.dir.filename().string());
        }
    }
    EXPECT_EQ(second.carried_over, 7u) << "3 tables x 2 formats and report.html";
}

// Anything that shapes a file makes it written again: the data, the CSV style, the day (the
// report counts days).
TEST_F(ExportTest, AFileIsWrittenAgainWhenItsDataOptionsOrDayChange) {
    auto exports = dir_ / "exports";
    std::map<std::string, std::pair<ino_t, std::string>> before;
    {
        auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
        before = files_of(write_generation(db, exports, 1514528566000, {1}).dir);
    }
    {
        sync::snapshot_store store(dir_ / "snapshot.db");
        sync::purchased_group c;
        c.id = "c";
        sync::listing<sync::purchased_group> l;
        l.items = {c};
        l.total = 1;
        store.apply("prod", l, 3000, 4000);  // a and b removed, c added
    }
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    auto after = files_of(write_generation(db, exports, 1514528567000, {2}).dir);
    for (const char* name : {"purchased_groups.csv", "purchased_groups.json", "report.html"})
        EXPECT_NE(after.at(name).first, before.at(name).first) << name << " shows the change";
    for (const char* name : {"subscription_resources.csv", "alerts.json"})
        EXPECT_EQ(after.at(name).first, before.at(name).first) << name << " did not change";
    {
        // One field of one item: the table keeps its row count, and still shows the change.
        sync::snapshot_store store(dir_ / "snapshot.db");
        sync::purchased_group c;
        c.id = "c";
        c.group_name = std::string("renamed");
        sync::listing<sync::purchased_group> l;
        l.items = {c};
        l.total = 1;
        ASSERT_EQ(store.apply("prod", l, 5000, 6000).changed, 1);
    }
    db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto renamed = files_of(write_generation(db, exports, 1514528567500, {3}).dir);
    EXPECT_NE(renamed.at("purchased_groups.csv").first, after.at("purchased_groups.csv").first);
    EXPECT_EQ(renamed.at("subscription_resources.csv").first, after.at("subscription_resources.csv").first);
    {
        // Retention deletes the long-gone a and b, and nothing else the table's mark reads: the
        // run that renamed c stays the newest that changed it.
        sync::snapshot_store store(dir_ / "snapshot.db");
        ASSERT_EQ(store.prune(5000).removed_items, 2);
    }
    db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto pruned = files_of(write_generation(db, exports, 1514528567700, {3}).dir);
    EXPECT_NE(pruned.at("purchased_groups.csv").first, renamed.at("purchased_groups.csv").first) << "a and b are gone";
    EXPECT_EQ(pruned.at("subscription_resources.csv").first, renamed.at("subscription_resources.csv").first);
    after = pruned;

    generation_options crlf;
    crlf.csv.crlf = true;
    const auto styled = files_of(write_generation(db, exports, 1514528568000, {4}, crlf).dir);
    EXPECT_NE(styled.at("alerts.csv").first, after.at("alerts.csv").first) << "the CSV style changed";
    EXPECT_EQ(styled.at("alerts.json").first, after.at("alerts.json").first);

    const auto next_day = files_of(write_generation(db, exports, 1514528568000 + 86'400'000, {5}, crlf).dir);
    EXPECT_NE(next_day.at("report.html").first, styled.at("report.html").first) << "a new day: days left moved";
    EXPECT_EQ(next_day.at("alerts.csv").first, styled.at("alerts.csv").first);
}

// Pruning a generation whose files later ones link to leaves every kept generation whole.
TEST_F(ExportTest, PruningKeepsEveryGenerationWholeWhenTheyShareFiles) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    generation_options opts;
    opts.keep = 2;
    std::filesystem::path last;
    for (std::int64_t run = 1; run <= 5; ++run) last = write_generation(db, dir_ / "exports", 1000000 + run, {run}, opts).dir;
    std::size_t kept = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "exports" / "generations")) {
        files_of(e.path());  // every file listed exists with the size and digest listed
        ++kept;
    }
    EXPECT_EQ(kept, 2u);
    EXPECT_EQ(test::read_file(dir_ / "exports" / "latest" / "purchased_groups.csv"),
              test::read_file(last / "purchased_groups.csv"));
}

TEST_F(ExportTest, OldGenerationsArePruned) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    generation_options opts;
    opts.keep = 2;
    for (int i = 0; i < 4; ++i) write_generation(db, dir_ / "exports", 1000000 + i * 1000, {i + 1}, opts);
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "exports" / "generations"))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"19700101T001642Z-3", "19700101T001643Z-4"}));
}

std::vector<std::string> folder_names(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

TEST_F(ExportTest, PruningOrdersGenerationsByRunIdNotByText) {
    // Twelve syncs finishing in the same second: "-10" < "-12" < "-2" as text, and a text sort
    // once deleted the previous latest while keeping -6 and -8.
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    generation_options opts;
    opts.keep = 2;
    const auto exports = dir_ / "exports";
    for (std::int64_t run = 1; run <= 12; ++run) {
        write_generation(db, exports, 1000000, {run}, opts);
        if (run >= 2) {
            SCOPED_TRACE(run);
            std::vector<std::string> expected{"19700101T001640Z-" + std::to_string(run - 1),
                                              "19700101T001640Z-" + std::to_string(run)};
            std::sort(expected.begin(), expected.end());
            EXPECT_EQ(folder_names(exports / "generations"), expected);
        }
    }
    EXPECT_EQ(std::filesystem::read_symlink(exports / "latest"), "generations/19700101T001640Z-12");
}

TEST_F(ExportTest, KeepOneStillKeepsTheGenerationLatestJustLeft) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    generation_options opts;
    opts.keep = 1;
    for (std::int64_t run = 1; run <= 3; ++run) write_generation(db, dir_ / "exports", 1000000, {run}, opts);
    EXPECT_EQ(folder_names(dir_ / "exports" / "generations"),
              (std::vector<std::string>{"19700101T001640Z-2", "19700101T001640Z-3"}));
}

TEST_F(ExportTest, ForeignFoldersInGenerationsAreNeverPruned) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    std::filesystem::create_directories(dir_ / "exports" / "generations" / "keep-me");
    generation_options opts;
    opts.keep = 1;
    for (std::int64_t run = 1; run <= 3; ++run) write_generation(db, dir_ / "exports", 1000000, {run}, opts);
    EXPECT_TRUE(std::filesystem::is_directory(dir_ / "exports" / "generations" / "keep-me"));
}

TEST(GenerationName, ParsesOnlyWhatSubsyncMakes) {
    struct name_case {
        const char* name;
        std::optional<generation_key> expected;
    };
    const name_case cases[] = {
        {"20261125T184133Z-42", generation_key{42, "20261125T184133Z"}},
        {"20261125T184133Z-0", generation_key{0, "20261125T184133Z"}},
        {"20261125T184133Z-", std::nullopt},
        {"20261125T184133Z-4x", std::nullopt},
        {"20261125T184133Z--4", std::nullopt},
        {".20261125T184133Z-42", std::nullopt},
        {"2026112xT184133Z-42", std::nullopt},
        {"keep-me", std::nullopt},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(parse_generation_name(c.name), c.expected);
    }
}

TEST_F(ExportTest, RegularFileAtLatestIsRefusedNotOverwritten) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto exports = dir_ / "exports";
    std::filesystem::create_directories(exports);
    test::write_file(exports / "latest", "someone's notes");
    try {
        write_generation(db, exports, 1000000, {1});
        FAIL() << "expected an error";
    } catch (const std::exception& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find((exports / "latest").string() + " is a regular file"), std::string::npos) << what;
        EXPECT_NE(what.find("move it away"), std::string::npos) << what;
    }
    EXPECT_EQ(test::read_file(exports / "latest"), "someone's notes");
    EXPECT_EQ(folder_names(exports / "generations"), std::vector<std::string>{}) << "nothing written";
}

TEST_F(ExportTest, FailedExportLeavesNoHiddenLeftovers) {
    const auto exports = dir_ / "exports";
    const auto generations = exports / "generations";
    // What earlier failed exports left: an empty hidden folder, a partial one, a temporary link.
    std::filesystem::create_directories(generations / ".19700101T000000Z-7");
    std::filesystem::create_directories(generations / ".19700101T000001Z-8");
    test::write_file(generations / ".19700101T000001Z-8" / "purchased_groups.csv", "id,gr");
    std::filesystem::create_symlink("generations/nowhere", exports / ".latest.new");

    const int code = on_a_full_disk([&](const auto& fill_disk) {
        auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
        db.execAndGet("SELECT count(*) FROM sqlite_master");
        fill_disk();
        write_generation(db, exports, 1000000, {9});
    });
    ASSERT_EQ(code, 1) << "the export must fail with EFBIG";
    EXPECT_EQ(folder_names(generations), std::vector<std::string>{}) << "no hidden generation stays behind";
    EXPECT_EQ(folder_names(exports), (std::vector<std::string>{"generations"}));
}

TEST_F(ExportTest, TornChangeFeedLineIsCutBeforeAppending) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto feed = dir_ / "changes.jsonl";
    test::write_file(feed, "{\"seq\":1,\"run\":1}\n{\"seq\":2,\"ru");  // a crash mid-line
    EXPECT_EQ(append_change_feed(db, feed), 1) << "seq 2 again, whole this time";
    const auto text = test::read_file(feed);
    EXPECT_EQ(text.substr(0, 19), "{\"seq\":1,\"run\":1}\n{");
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

TEST_F(ExportTest, ChangeFeedResumesFromItsLastLineAcrossReadBlocks) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    const auto feed = dir_ / "changes.jsonl";
    // The fixture's snapshot has changes 1 and 2. The feed's last line is longer than one read
    // block (64 KiB) and is followed by a blank line and a torn one: seq 1 is whole, 2 is next.
    const std::string long_line = "{\"seq\":1,\"new_value\":\"" + std::string(200'000, 'x') + "\"}\n";
    const std::string whole = "{\"seq\":0}\n" + long_line + "\n";
    test::write_file(feed, whole + "{\"seq\":2,\"ru");
    EXPECT_EQ(append_change_feed(db, feed), 1) << "only seq 2 is new";
    const auto text = test::read_file(feed);
    EXPECT_EQ(text.substr(0, whole.size()), whole);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4);
    EXPECT_EQ(text.find("{\"seq\":2,", whole.size()), whole.size());

    // A feed without one whole line is cut to nothing and starts again from the first change.
    test::write_file(feed, std::string(70'000, 'y'));
    EXPECT_EQ(append_change_feed(db, feed), 2);
    EXPECT_EQ(test::read_file(feed).rfind("{\"seq\":1,", 0), 0u);
}

TEST_F(ExportTest, CsvStyleBomCrlfAndFormulaSwitch) {
    auto db = sync::open_snapshot_readonly(dir_ / "snapshot.db");
    std::string out;
    export_options opts;
    opts.csv = {true, true, false};
    write_table(db, export_table::purchased_groups, export_format::csv, [&](std::string_view b) { out += b; }, opts);
    EXPECT_EQ(out.substr(0, 3), "\xEF\xBB\xBF");
    EXPECT_NE(out.find("app_secret\r\n"), std::string::npos);
    EXPECT_NE(out.find(",=cmd|' /C calc'!A0,"), std::string::npos) << "neutralising off: written as is";
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
