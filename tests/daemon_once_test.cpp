// `subsyncd sync --once` for cron and timers: --dry-run commits nothing, --summary json is one
// parseable object, and the log formats (journal prefixes, JSON lines) hold.

#include "support/daemon_process.hpp"

#include <subsync/daemon/json.hpp>
#include <subsync/daemon/logging.hpp>
#include <subsync/daemon/schedule.hpp>
#include <subsync/emulator/server.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <type_traits>

#include <algorithm>

namespace subsync {
namespace {

using namespace std::chrono_literals;

constexpr const char* token = "tok-once-77d2";

/// Every file below `dir` (path and bytes), to see that nothing was written.
std::string files_under(const std::filesystem::path& dir) {
    std::string out;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) out += f.string() + "\n" + test::read_file(f) + "\n";
    return out;
}

class SyncOnce : public ::testing::Test {
protected:
    void SetUp() override {
        emulator::options opts;
        opts.token = token;
        data_ = emulator::dataset::generated(200, 6, 11);
        emu_ = std::make_unique<emulator::server>(opts, data_);
        emu_->start();
        test::write_file(dir_ / "ca.pem", emu_->cert_pem());
        cfg_ = test::write_daemon_config(dir_.path(), test::cloud_config(emu_->base_url(), (dir_ / "ca.pem").string()));
    }

    test::run_result sync(std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"sync", "--once", "--config", cfg_.string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_subsyncd(args, {{"SUBSYNC_TEST_TOKEN", token}});
    }

    std::string state() {
        const auto db = dir_ / "snapshot.db";
        return test::dump_table(db, "purchased_groups", "account, item_key") +
               test::dump_table(db, "subscription_resources", "account, item_key") +
               test::dump_table(db, "changes", "seq") + test::dump_table(db, "sync_runs", "id");
    }

    test::temp_dir dir_;
    emulator::dataset data_;
    std::unique_ptr<emulator::server> emu_;
    std::filesystem::path cfg_;
};

TEST_F(SyncOnce, DryRunCommitsNothingAndSaysWhatWouldChange) {
    ASSERT_EQ(sync().exit_code, 0);
    const std::string before = state();
    const std::string exports_before = files_under(dir_ / "exports");
    ASSERT_NE(exports_before, "");

    // 20 purchases gone, 1 new.
    auto changed = data_;
    changed.purchases.erase(changed.purchases.begin(), changed.purchases.begin() + 20);
    changed.purchases.push_back(emulator::dataset::generated(1, 0, 99).purchases.front());
    emu_->set_dataset(changed);

    auto dry = sync({"--dry-run", "--summary", "json"});
    ASSERT_EQ(dry.exit_code, 0) << dry.err;
    EXPECT_EQ(state(), before) << "a dry run wrote to the database";
    EXPECT_EQ(files_under(dir_ / "exports"), exports_before) << "a dry run wrote exports";

    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(dry.out).get(doc)) << dry.out;
    EXPECT_TRUE(bool(doc["dry_run"]));
    EXPECT_EQ(std::string_view(doc["status"]), "ok");
    EXPECT_EQ(int64_t(doc["exit_code"]), 0);
    EXPECT_EQ(doc["exports"].get_array().size(), 0u);
    bool saw_groups = false;
    for (auto run : doc["runs"].get_array()) {
        EXPECT_EQ(std::string_view(run["account"]), "prod");
        EXPECT_TRUE(run["error"].is_null());
        EXPECT_GE(int64_t(run["duration_ms"]), 0);
        if (std::string_view(run["source"]) != "purchased_groups") continue;
        saw_groups = true;
        EXPECT_EQ(int64_t(run["pages"]), 2);
        EXPECT_EQ(int64_t(run["items"]), 181);
        EXPECT_EQ(int64_t(run["added"]), 1);
        EXPECT_EQ(int64_t(run["removed"]), 20);
    }
    EXPECT_TRUE(saw_groups) << dry.out;

    auto text = sync({"--dry-run"});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("dry run: would add 1, would change 0, would remove 20 items; nothing was committed"),
              std::string::npos)
        << text.out;
    EXPECT_EQ(state(), before);

    // The real run does what the dry run said.
    auto real = sync({"--summary", "json"});
    ASSERT_EQ(real.exit_code, 0) << real.err;
    ASSERT_FALSE(parser.parse(real.out).get(doc)) << real.out;
    EXPECT_FALSE(bool(doc["dry_run"]));
    EXPECT_GT(doc["exports"].get_array().size(), 0u);
    for (auto f : doc["exports"].get_array()) EXPECT_GE(int64_t(f["rows"]), 0);
    for (auto run : doc["runs"].get_array()) {
        if (std::string_view(run["source"]) == "purchased_groups") {
            EXPECT_EQ(int64_t(run["removed"]), 20);
        }
    }
    EXPECT_NE(state(), before);
}

TEST_F(SyncOnce, SummaryJsonReportsAFailedSource) {
    emu_->fail_orders(404);
    auto r = sync({"--summary", "json"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(r.out).get(doc)) << "stdout is only the JSON object: " << r.out;
    EXPECT_EQ(std::string_view(doc["status"]), "failed");
    EXPECT_EQ(int64_t(doc["exit_code"]), 1);
    for (auto run : doc["runs"].get_array()) {
        if (std::string_view(run["source"]) != "subscription_resources") continue;
        EXPECT_EQ(std::string_view(run["status"]), "failed");
        EXPECT_NE(std::string(std::string_view(run["error"])).find("HTTP 404"), std::string::npos);
    }
}

TEST_F(SyncOnce, JsonLogLinesParse) {
    std::string text = test::read_file(cfg_);
    text.replace(text.find("[daemon]\n"), 9, "[daemon]\nlog_format = \"json\"\nlog_level = \"debug\"\n");
    test::write_file(cfg_, text);
    auto r = sync();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    simdjson::dom::parser parser;
    std::size_t lines = 0, done = 0, requests = 0;
    for (std::size_t b = 0; b < r.err.size();) {
        const std::size_t e = r.err.find('\n', b);
        ASSERT_NE(e, std::string::npos) << "every line ends in a newline";
        const std::string line = r.err.substr(b, e - b);
        b = e + 1;
        simdjson::dom::element doc;
        ASSERT_FALSE(parser.parse(line).get(doc)) << line;
        ++lines;
        EXPECT_EQ(std::string_view(doc["time"]).size(), 24u) << line;
        const std::string_view msg = doc["msg"];
        if (msg.rfind("sync done ", 0) == 0) {
            ++done;
            EXPECT_EQ(std::string_view(doc["level"]), "info");
            EXPECT_EQ(std::string_view(doc["account"]), "prod") << "typed fields become members: " << line;
            EXPECT_TRUE(doc["pages"].is_int64()) << "numbers as numbers: " << line;
            EXPECT_TRUE(doc["run_id"].is_int64()) << line;
        }
        if (msg.rfind("request ", 0) == 0) {  // the sync library's own debug line, typed too
            ++requests;
            EXPECT_TRUE(doc["attempt"].is_int64()) << line;
            EXPECT_EQ(std::string_view(doc["status"]), "200") << line;
        }
    }
    EXPECT_EQ(done, 2u) << r.err;
    EXPECT_GE(requests, 2u) << r.err;
    EXPECT_GT(lines, done) << "debug lines too (log_level = debug)";
}

TEST_F(SyncOnce, JournalStreamGetsPriorityPrefixesWithoutTimestamps) {
    // stderr is "the journal" when $JOURNAL_STREAM names its device:inode.
    test::write_file(dir_ / "journal.err", "");
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / "journal.err").c_str(), &st), 0);
    emu_->fail_orders(404);
    test::daemon_process p(
        {"sync", "--once", "--config", cfg_.string()},
        {{"SUBSYNC_TEST_TOKEN", token}, {"JOURNAL_STREAM", fmt::format("{}:{}", st.st_dev, st.st_ino)}}, dir_.path(),
        "journal");
    ASSERT_EQ(p.wait(60s), 1) << p.err();
    const std::string err = p.err();
    EXPECT_NE(err.find("<6>sync done account=prod source=purchased_groups"), std::string::npos) << err;
    EXPECT_NE(err.find("<3>sync failed account=prod source=subscription_resources"), std::string::npos) << err;
    EXPECT_EQ(err.find("Z info "), std::string::npos) << "no timestamps: journald adds its own\n" << err;
}

/// The native journal protocol (systemd's JOURNAL_NATIVE_PROTOCOL): "KEY=value\n", or "KEY\n",
/// a little-endian 64-bit length, the value and "\n" for a value with a newline.
std::map<std::string, std::string> journal_entry(std::string_view d) {
    std::map<std::string, std::string> out;
    while (!d.empty()) {
        const auto nl = d.find('\n');
        const auto eq = d.find('=');
        if (eq != std::string_view::npos && eq < nl) {
            out[std::string(d.substr(0, eq))] = std::string(d.substr(eq + 1, nl - eq - 1));
            d.remove_prefix(nl == std::string_view::npos ? d.size() : nl + 1);
            continue;
        }
        const std::string key(d.substr(0, nl));
        std::uint64_t size = 0;
        std::memcpy(&size, d.data() + nl + 1, 8);
        out[key] = std::string(d.substr(nl + 9, size));
        d.remove_prefix(std::min(d.size(), nl + 9 + size + 1));
    }
    return out;
}

// journald's own socket is /run/systemd/journal/socket; the test binds one in a directory that a
// private mount namespace puts over /run for subsyncd alone, and reads what sd_journal_send sent.
TEST_F(SyncOnce, JournaldGetsEntriesWithMessageIdsAndFields) {
    if (::geteuid() != 0 || std::system("unshare -m true 2>/dev/null") != 0)
        GTEST_SKIP() << "needs root and mount namespaces (CI runs as root)";
    const auto run = dir_ / "run";
    std::filesystem::create_directories(run / "systemd" / "journal");
    const int sock = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(sock, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = (run / "systemd" / "journal" / "socket").string();
    ASSERT_LT(path.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
    const int big = 8 << 20;
    ::setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));

    emu_->fail_orders(404);
    const auto err = dir_ / "journal.err";
    const std::string script =
        R"(mount --bind "$1" /run && : > "$2" && JOURNAL_STREAM=$(stat -c %d:%i "$2") exec "$3" sync --once --config "$4" 2>"$2")";
    auto r = test::spawn({"/usr/bin/unshare", "-m", "/bin/sh", "-c", script, "sh", run.string(), err.string(), test::subsyncd_path(),
                          cfg_.string()},
                         {{"SUBSYNC_TEST_TOKEN", token}});
    const auto done = test::finish(r);
    EXPECT_EQ(done.exit_code, 1) << done.err << test::read_file(err);

    std::vector<std::map<std::string, std::string>> entries;
    std::vector<char> buf(1 << 20);
    for (;;) {
        const auto n = ::recv(sock, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n <= 0) break;
        entries.push_back(journal_entry(std::string_view(buf.data(), static_cast<std::size_t>(n))));
    }
    ::close(sock);
    ASSERT_FALSE(entries.empty()) << "nothing reached the journal socket; stderr:\n" << test::read_file(err);
    auto find = [&](std::string_view id, std::string_view source) -> const std::map<std::string, std::string>* {
        for (const auto& e : entries)
            if (e.count("MESSAGE_ID") && e.at("MESSAGE_ID") == id && (source.empty() || e.at("SOURCE") == source))
                return &e;
        return nullptr;
    };
    const auto* ok = find(logging::message_ids::sync_done, "purchased_groups");
    ASSERT_NE(ok, nullptr);
    EXPECT_EQ(ok->at("ACCOUNT"), "prod");
    EXPECT_EQ(ok->at("PRIORITY"), "6");
    EXPECT_EQ(ok->at("SYSLOG_IDENTIFIER"), "subsyncd");
    EXPECT_EQ(ok->at("STATUS"), "ok");
    EXPECT_GT(std::stoll(ok->at("RUN_ID")), 0);
    EXPECT_EQ(ok->at("MESSAGE").rfind("sync done account=prod source=purchased_groups", 0), 0u);
    const auto* failed = find(logging::message_ids::sync_failed, "subscription_resources");
    ASSERT_NE(failed, nullptr);
    EXPECT_EQ(failed->at("PRIORITY"), "3");
    EXPECT_EQ(failed->at("KIND"), "http_status");
    const auto* firing = find(logging::message_ids::alert_firing, "");
    ASSERT_NE(firing, nullptr) << "the default log sink's groups";
    EXPECT_EQ(firing->at("ACCOUNT"), "prod");
    EXPECT_FALSE(firing->at("KIND").empty());
    EXPECT_EQ(test::read_file(err).find("sync done"), std::string::npos) << "nothing doubled on stderr";
}

// The pure parts the daemon is built from.

TEST(Schedule, IntervalMovedByAtMostJitter) {
    using std::chrono::milliseconds;
    EXPECT_EQ(daemon::next_sync_delay(milliseconds(60000), milliseconds(6000), 0.0), milliseconds(54000));
    EXPECT_EQ(daemon::next_sync_delay(milliseconds(60000), milliseconds(6000), 0.5), milliseconds(60000));
    EXPECT_EQ(daemon::next_sync_delay(milliseconds(60000), milliseconds(6000), 0.999999), milliseconds(66000));
    EXPECT_EQ(daemon::next_sync_delay(milliseconds(60000), milliseconds(0), 0.9), milliseconds(60000));
}


TEST(JsonLog, TypedFieldsBecomeMembersAndTextIsEscaped) {
    const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'750'000'000'123));
    const std::string detail = "HTTP 503 \\ \"x\" \n\x01\xff";
    const logging::record r{logging::severity::warn,
                            {},
                            "retrying account=prod reason=\"not=parsed\"",
                            {{"account", "prod"}, {"attempt", 2}, {"full_load", true}, {"detail", detail}}};
    const std::string line = daemon::json_record_line(t, r);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(line).get(doc)) << line;
    EXPECT_EQ(std::string_view(doc["time"]), "2025-06-15T15:06:40.123Z");
    EXPECT_EQ(std::string_view(doc["level"]), "warn");
    EXPECT_EQ(std::string_view(doc["msg"]), r.message);
    EXPECT_EQ(std::string_view(doc["account"]), "prod");
    EXPECT_EQ(int64_t(doc["attempt"]), 2) << "numbers as numbers";
    EXPECT_EQ(bool(doc["full_load"]), true) << "flags as booleans";
    EXPECT_EQ(std::string_view(doc["detail"]), "HTTP 503 \\ \"x\" \n\x01\xef\xbf\xbd") << "escaped, invalid UTF-8 replaced";
    EXPECT_TRUE(doc["reason"].error()) << "the message's text is never parsed into fields: " << line;
    EXPECT_EQ(daemon::json_string("a\"b\\c\n\t\x7f"), "\"a\\\"b\\\\c\\n\\t\\u007f\"");
    EXPECT_EQ(daemon::json_string("\xe4\xb8\xad\xf0\x9f\x98\x80"), "\"\xe4\xb8\xad\xf0\x9f\x98\x80\"") << "UTF-8 kept";
    EXPECT_EQ(daemon::json_string("\xc0\xaf"), "\"\xef\xbf\xbd\xef\xbf\xbd\"") << "an overlong form is replaced";
}

// A field is text, a whole number or a flag; what would silently become a flag does not compile.
static_assert(std::is_constructible_v<logging::field, std::string_view, long>);
static_assert(std::is_constructible_v<logging::field, std::string_view, std::size_t>);
static_assert(std::is_constructible_v<logging::field, std::string_view, bool>);
static_assert(std::is_constructible_v<logging::field, std::string_view, char*>);
static_assert(std::is_constructible_v<logging::field, std::string_view, std::string>);
static_assert(!std::is_constructible_v<logging::field, std::string_view, double>);
static_assert(!std::is_constructible_v<logging::field, std::string_view, char>);
static_assert(!std::is_constructible_v<logging::field, std::string_view, std::nullptr_t>);
static_assert(!std::is_constructible_v<logging::field, std::string_view, std::filesystem::path>);
static_assert(!std::is_constructible_v<logging::field, std::string_view, const int*>);

TEST(LogLine, FieldsAfterTheWhatQuotedWhenTheyMustBe) {
    const std::initializer_list<logging::field> fields{
        {"account", "prod"}, {"n", -3}, {"ok", false}, {"error", "a \"b\" \\c"}, {"empty", ""}, {"eq", "k=v"}};
    EXPECT_EQ(logging::line("thing done", std::span(fields.begin(), fields.size()), "what happens next"),
              "thing done account=prod n=-3 ok=false error=\"a \\\"b\\\" \\\\c\" empty=\"\" eq=\"k=v\": what happens next");
    EXPECT_EQ(logging::line("bare", {}), "bare");
    const std::initializer_list<logging::field> multi{{"error", "first\nsecond\tthird\r"}};
    EXPECT_EQ(logging::line("failed", std::span(multi.begin(), multi.size())),
              "failed error=\"first\\nsecond\\tthird\\r\"")
        << "one event, one line";
}

TEST(LogLevel, ConfigLevelMovedByVerbosity) {
    using config::log_level;
    EXPECT_EQ(daemon::effective_level({log_level::info, config::log_format::text, 0}), daemon::severity::info);
    EXPECT_EQ(daemon::effective_level({log_level::info, config::log_format::text, 1}), daemon::severity::debug);
    EXPECT_EQ(daemon::effective_level({log_level::info, config::log_format::text, -1}), daemon::severity::warn);
    EXPECT_EQ(daemon::effective_level({log_level::warn, config::log_format::text, -5}), daemon::severity::error);
    EXPECT_EQ(daemon::effective_level({log_level::debug, config::log_format::text, 3}), daemon::severity::debug);
}

}  // namespace
}  // namespace subsync
