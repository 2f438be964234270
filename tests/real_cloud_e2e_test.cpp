// Issue 14: what real Huawei Cloud (and broken gateways in front of it) do that the documents do
// not say, switched on in the emulator, and what subsyncd must do about each. The real binary runs
// `sync --once --summary json` against the in-process emulator over HTTPS. docs/faults.md names
// every test here.

#include "support/emulated_cloud.hpp"
#include "support/send_once.hpp"
#include "support/test_support.hpp"

#include <subsync/config/load.hpp>
#include <subsync/emulator/server.hpp>
#include <subsync/sync/engine.hpp>
#include <subsync/sync/http_client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <regex>
#include <simdjson.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace subsync {
namespace {

using test::config_spec;
using test::run_subsyncd;
using test::temp_dir;
using clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr const char* token = "real-cloud-token-5b9f0c3e77a14d2a";
constexpr const char* ak = "HPUAEXAMPLEAK0000001";
constexpr const char* sk = "ExampleSecretKey0123456789abcdefghijklmn";
constexpr const char* password = "iam-pa55word-c4d1e9";

// 2019-01-01T00:00:00Z, the seeds' expire_time, in epoch ms.
constexpr std::int64_t seed_expire_ms = 1546300800000;
constexpr const char* seed_purchase = "615af8d9-f31d-4cdf-8807-b191dc969a07";

class RealCloud : public ::testing::Test {
protected:
    void start(emulator::dataset data = emulator::dataset::generated(45, 12, 5), emulator::options opts = {}) {
        opts.users = {{"ops", password, "tenant"}};
        opts.keys = {{ak, sk, std::nullopt}};
        emu_ = test::start_emulator(std::move(opts), std::move(data), token, dir_ / "ca.pem");
    }

    std::filesystem::path config(config_spec spec = {}) {
        spec.base_url = emu_->base_url();
        spec.ca_file = (dir_ / "ca.pem").string();
        if (spec.page_size == 100) spec.page_size = 20;
        spec.concurrency = 4;
        return test::write_config(dir_, spec);
    }

    std::string password_auth() const {
        return "type = \"password\"\niam_endpoint = \"" + emu_->base_url() +
               "\"\nuser = \"ops\"\ndomain = \"tenant\"\npassword_env = \"HW_PASSWORD\"\nproject = \"cn-north-4\"\n";
    }

    // AK/SK without project_id: [account.auth] project names the project (a region) to look up in IAM.
    config_spec aksk_by_region() const {
        config_spec spec;
        spec.auth = "type = \"aksk\"\nak_env = \"HW_AK\"\nsk_env = \"HW_SK\"\nproject = \"cn-north-4\"\niam_endpoint = \"" +
                    emu_->base_url() + "\"\n";
        return spec;
    }

    test::run_result sync(const std::filesystem::path& cfg) {
        return run_subsyncd({"sync", "--once", "--config", cfg.string(), "--summary", "json"},
                            {{"SUBSYNC_TEST_TOKEN", token}, {"HW_AK", ak}, {"HW_SK", sk}, {"HW_PASSWORD", password}});
    }

    SQLite::Database db() const { return SQLite::Database((dir_ / "snapshot.db").string(), SQLite::OPEN_READONLY); }

    // Every item row, to compare snapshots.
    std::string snapshot() {
        auto d = db();
        std::string out;
        for (const char* table : {"purchased_groups", "subscription_resources"}) {
            SQLite::Statement q(d, std::string("SELECT * FROM ") + table + " ORDER BY account, item_key");
            while (q.executeStep()) {
                for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
                out += '\n';
            }
        }
        return out;
    }

    std::string row(const char* table, const std::string& id_like) {
        auto d = db();
        SQLite::Statement q(d, std::string("SELECT * FROM ") + table + " WHERE item_key LIKE ?");
        q.bind(1, "%" + id_like);
        std::string out;
        while (q.executeStep()) {
            for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
        }
        return out;
    }

    std::int64_t count(const std::string& sql) {
        auto d = db();
        return d.execAndGet(sql).getInt64();
    }

    std::string last_run(const char* source, const char* column) {
        auto d = db();
        SQLite::Statement q(d, std::string("SELECT ") + column + " FROM sync_runs WHERE source = ? ORDER BY id DESC");
        q.bind(1, source);
        return q.executeStep() ? q.getColumn(0).getString() : "";
    }

    // A first good sync, so that a later fault has something to destroy.
    std::string good_sync(const std::filesystem::path& cfg) {
        auto r = sync(cfg);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        emu_->reset_stats();
        return snapshot();
    }

    temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
};

// Every file under `root` (recursively), whole.
std::vector<std::pair<fs::path, std::string>> files_under(const fs::path& root) {
    std::vector<std::pair<fs::path, std::string>> out;
    if (!fs::exists(root)) return out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (e.is_regular_file()) out.emplace_back(e.path(), test::read_file(e.path()));
    }
    return out;
}

// §1 Times ------------------------------------------------------------------------------------

// Zone-less ("2019-01-01T00:00:00") and spaced ("2019-01-01 00:00:00") times are UTC, as the
// official SDKs read them: stored as the same instant, exported with `Z`.
TEST_F(RealCloud, ZoneLessAndSpacedTimesAreReadAsUtc) {
    for (const auto style : {emulator::time_style::zone_less, emulator::time_style::spaced}) {
        SCOPED_TRACE(style == emulator::time_style::zone_less ? "zone-less" : "spaced");
        start(emulator::dataset::seeds());
        emu_->set_time_style(style);
        auto r = sync(config());
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(count(std::string("SELECT expire_time FROM purchased_groups WHERE id = '") + seed_purchase + "'"),
                  seed_expire_ms);
        // The orders' epoch ms came as "2025-12-10T06:50:00": the same instant.
        EXPECT_EQ(count("SELECT COUNT(*) FROM subscription_resources WHERE create_time = 1765349400000"), 2);
        const auto json = test::read_file(dir_ / "exports" / "latest" / "purchased_groups.json");
        EXPECT_NE(json.find("\"2019-01-01T00:00:00Z\""), std::string::npos) << json.substr(0, 600);
    }
}

TEST_F(RealCloud, BlankTimesAreStoredAsNull) {
    start(emulator::dataset::seeds());
    emu_->set_time_style(emulator::time_style::blank, 0);  // the first purchase and the first resource
    auto r = sync(config());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE expire_time IS NULL AND order_time IS NULL"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE expire_time = 1546300800000"), 2);
    EXPECT_EQ(count("SELECT COUNT(*) FROM subscription_resources WHERE create_time IS NULL"), 1);
}

// §2 One unreadable item ----------------------------------------------------------------------

TEST_F(RealCloud, OneUnreadablePurchaseKeepsItsRowAndTheRestApply) {
    start();
    const auto cfg = config();
    good_sync(cfg);
    auto data = emu_->current_dataset();
    const std::string bad_id = data.purchases[25].id;  // page 2 of 20
    const std::string bad_before = row("purchased_groups", bad_id);
    const auto added = emulator::dataset::generated(1, 0, 99).purchases.front();
    data.purchases.push_back(added);
    emu_->set_dataset(data);
    emu_->unreadable_purchase(25);

    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(row("purchased_groups", bad_id), bad_before) << "the unreadable item keeps its previous row";
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE id = '" + added.id + "' AND removed_at IS NULL"), 1)
        << "the other items applied";
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NOT NULL"), 0);
    const std::string error = last_run("purchased_groups", "error");
    for (const std::string& part : std::vector<std::string>{"account=prod", "source=purchased_groups", "page=2", bad_id, "quota_left"}) {
        EXPECT_NE(error.find(part), std::string::npos) << "sync_runs.error lacks " << part << ": " << error;
        EXPECT_NE(r.out.find(part), std::string::npos) << "--summary json lacks " << part << ": " << r.out;
    }
}

TEST_F(RealCloud, OneUnreadableResourceKeepsItsRowAndTheRestApply) {
    start();
    const auto cfg = config();
    good_sync(cfg);
    // Resource 1 (counted across entries) is made unreadable; resource 0 changes its size.
    auto data = emu_->current_dataset();
    const auto first_size = data.orders_json.find("\"resource_size\":");
    ASSERT_NE(first_size, std::string::npos);
    const auto value_end = data.orders_json.find_first_of(",}", first_size);
    data.orders_json.replace(first_size, value_end - first_size, "\"resource_size\":777");
    emu_->set_dataset(data);
    emu_->unreadable_resource(1);

    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM subscription_resources WHERE resource_size = 777"), 1)
        << "the changed resource applied";
    EXPECT_EQ(count("SELECT COUNT(*) FROM subscription_resources WHERE removed_at IS NOT NULL"), 0);
    const std::string error = last_run("subscription_resources", "error");
    for (const std::string& part : std::vector<std::string>{"account=prod", "source=subscription_resources", "resource_size"}) {
        EXPECT_NE(error.find(part), std::string::npos) << "sync_runs.error lacks " << part << ": " << error;
        EXPECT_NE(r.out.find(part), std::string::npos) << "--summary json lacks " << part << ": " << r.out;
    }
}

// §3 Broken answers ---------------------------------------------------------------------------

TEST_F(RealCloud, BrokenAnswersFailTheSourceAndKeepTheSnapshot) {
    start();
    const auto cfg = config();
    const auto before = good_sync(cfg);
    struct broken {
        const char* name;
        bool orders;
        emulator::malformation kind;
    };
    const broken cases[] = {
        {"orders {\"resources\":null}", true, emulator::malformation::null_list},
        {"orders entry with \"resources\":null", true, emulator::malformation::null_entry},
        {"orders 200 with an error body", true, emulator::malformation::error_body},
        {"orders duplicate \"resources\" key", true, emulator::malformation::duplicate_key},
        {"purchases null with total > 0", false, emulator::malformation::null_list},
        {"purchases 200 with an error body", false, emulator::malformation::error_body},
        {"purchases duplicate \"purchases\" key", false, emulator::malformation::duplicate_key},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        emu_->clear_faults();
        if (c.orders) {
            emu_->malform_orders(c.kind);
        } else {
            emu_->malform_page(1, c.kind);
        }
        auto r = sync(cfg);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(last_run(c.orders ? "subscription_resources" : "purchased_groups", "status"), "failed");
        EXPECT_EQ(snapshot(), before);
        EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NOT NULL") +
                      count("SELECT COUNT(*) FROM subscription_resources WHERE removed_at IS NOT NULL"),
                  0);
    }
}

// §4 Pages ------------------------------------------------------------------------------------

TEST_F(RealCloud, PageCapBelowPageSizeCompletes) {
    start(emulator::dataset::generated(130, 5, 5));
    config_spec spec;
    spec.page_size = 50;
    const auto cfg = config(spec);
    emu_->max_page_size(20);
    auto r = sync(cfg);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 130);
    EXPECT_EQ(last_run("purchased_groups", "status"), "ok");
    auto again = sync(cfg);
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 130);
}

TEST_F(RealCloud, LyingTotalEndsQuicklyAsIncomplete) {
    start(emulator::dataset::generated(45, 5, 5));  // 3 real pages of 20
    // A bound for a client that would walk all 5e7 pages: the test then fails on time and requests.
    config_spec spec;
    spec.extra_sync = "source_timeout = \"8s\"\n";
    const auto cfg = config(spec);
    emu_->lying_total(1'000'000'000);
    const auto t0 = clock::now();
    auto r = sync(cfg);
    const auto took = clock::now() - t0;
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_LT(took, std::chrono::seconds(10));
    EXPECT_LE(emu_->get_stats().purchases_requests, 3u + 8u) << "a handful of requests past the real pages";
    EXPECT_EQ(last_run("purchased_groups", "status"), "incomplete");
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 45);
}

TEST_F(RealCloud, InterimContinueAnswersAreSkipped) {
    start();
    emu_->interim_continue(std::nullopt);
    auto r = sync(config());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 45);
}

// §5 Throttling -------------------------------------------------------------------------------

TEST_F(RealCloud, WindowedThrottlingWithoutRetryAfterFinishes) {
    start(emulator::dataset::generated(1010, 5, 5));  // 51 pages of 20
    config_spec spec;
    spec.extra_sync = "source_timeout = \"60s\"\nbackoff_base = \"100ms\"\nbackoff_max = \"2s\"\n";
    const auto cfg = config(spec);
    // APIG's shape (20 per 5 s in production), scaled down: 10 per second, 429 without Retry-After.
    emu_->throttle_window(10, std::chrono::seconds(1));
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(emu_->get_stats().throttled, 0u) << "the window was reached";
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 1010);
    // The summary says how throttled each source was.
    simdjson::dom::parser parser;
    simdjson::dom::element summary;
    ASSERT_FALSE(parser.parse(r.out).get(summary)) << r.out;
    std::int64_t throttled = 0;
    for (simdjson::dom::element run : summary["runs"].get_array()) throttled += run["throttled"].get_int64().value();
    EXPECT_GT(throttled, 0) << r.out;
    EXPECT_LE(static_cast<std::uint64_t>(throttled), emu_->get_stats().throttled) << r.out;
}

// §6 Authentication ---------------------------------------------------------------------------

TEST_F(RealCloud, IamOutageTwiceThenRecoveredSyncSucceeds) {
    start();
    config_spec spec;
    spec.auth = password_auth();
    const auto cfg = config(spec);
    emu_->iam_outage(2);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->get_stats().token_requests, 3u) << "two 503s retried, then one token";
}

TEST_F(RealCloud, IamClosingTheConnectionTwiceThenRecoveredSyncSucceeds) {
    start();
    config_spec spec;
    spec.auth = password_auth();
    const auto cfg = config(spec);
    emu_->iam_outage(2, emulator::outage_kind::close_connection);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->get_stats().token_requests, 3u);
}

TEST_F(RealCloud, AkSkWithoutProjectIdLooksItUpByRegion) {
    start();
    emu_->set_projects({{"cn-north-4", "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, {"ap-southeast-1", "ffff"}});
    emu_->require_project_id("a1b2c3d4e5f60718293a4b5c6d7e8f90");
    auto r = sync(config(aksk_by_region()));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GE(emu_->get_stats().project_requests, 1u);
    EXPECT_EQ(emu_->get_stats().signature_failures, 0u);
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 45);
}

// No project of that name, or two: the sync fails (exit 1) and check-config says so (exit 2),
// both naming the project to fix.
TEST_F(RealCloud, AkSkProjectLookupWithNoneOrTwoMatchesFailsNamingTheRegion) {
    const std::vector<emulator::project> none{{"ap-southeast-1", "ffff"}};
    const std::vector<emulator::project> two{{"cn-north-4", "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, {"cn-north-4", "0000"}};
    for (const auto* projects : {&none, &two}) {
        SCOPED_TRACE(projects == &none ? "none" : "two");
        start();
        emu_->set_projects(*projects);
        const auto cfg = config(aksk_by_region());
        auto r = sync(cfg);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE((r.out + r.err).find("cn-north-4"), std::string::npos) << r.err;
        auto check = run_subsyncd({"check-config", "--config", cfg.string()}, {{"HW_AK", ak}, {"HW_SK", sk}});
        EXPECT_EQ(check.exit_code, 2) << check.out << check.err;
        EXPECT_NE((check.out + check.err).find("cn-north-4"), std::string::npos) << check.err;
    }
}

TEST_F(RealCloud, ContentTypeIsSentOnListings) {
    start();
    emu_->require_content_type(true);
    auto r = sync(config());
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(RealCloud, TlsClosedWithoutCloseNotifyOnKeptAliveConnectionsIsRetried) {
    start(emulator::dataset::generated(200, 5, 5));
    const auto cfg = config();
    emu_->close_without_notify(6);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM purchased_groups WHERE removed_at IS NULL"), 200);
}

// §7 A resource that disappears before its expire_time ---------------------------------------

TEST_F(RealCloud, ResourceGoneBeforeItsExpiryAlertsWhenEnabled) {
    const auto orders = [](bool both) {
        std::string r = R"({"resources":[{"region_id":"cn-north-4","project_id":"p1","resources":[)";
        if (both) r += R"({"resource_id":"gone-early","resource_type":"hss","expire_time":4102444800000},)";
        return r + R"({"resource_id":"stays","resource_type":"hss","expire_time":4102444800000}]}]})";
    };
    auto data = emulator::dataset::generated(5, 0, 5);
    data.orders_json = orders(true);
    start(data);
    config_spec spec;
    spec.extra_tables = "[alerts]\nenabled_kinds = [\"removed_early\"]\n";
    const auto cfg = config(spec);
    ASSERT_EQ(sync(cfg).exit_code, 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM alerts WHERE kind = 'removed_early'"), 0);

    data.orders_json = orders(false);
    emu_->set_dataset(data);
    auto r = sync(cfg);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM alerts WHERE kind = 'removed_early' AND state = 'firing' AND "
                    "item_key = 'cn-north-4/p1/gone-early'"),
              1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM alerts WHERE kind = 'removed_early'"), 1) << "only the one that left";
}

// Many accounts: sync.source_concurrency bounds the sources in flight (issue 19 §1).
TEST_F(RealCloud, SourcesInFlightAreBoundedBySourceConcurrency) {
    start(emulator::dataset::generated(60, 4, 5));
    config_spec spec;
    spec.page_size = 20;
    spec.concurrency = 1;
    spec.extra_sync = "source_concurrency = 1\n";
    for (const char* name : {"second", "third"})
        spec.extra_tables += fmt::format("\n[[account]]\nname = \"{}\"\napig_endpoint = \"{}\"\nsecmaster_endpoint = "
                                         "\"{}\"\n[account.auth]\ntoken_env = \"SUBSYNC_TEST_TOKEN\"\n",
                                         name, emu_->base_url(), emu_->base_url());
    auto r = sync(config(spec));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count("SELECT COUNT(*) FROM sync_runs WHERE status = 'ok'"), 6) << "three accounts, two sources each";
    EXPECT_EQ(emu_->get_stats().max_in_flight, 1u) << "one source at a time, one page at a time";
}

// Echoed secrets (issue 15, acceptance 1) -----------------------------------------------------

// Every text a run leaves: stdout, stderr, the database and its WAL, every exported file.
std::vector<std::pair<std::string, std::string>> outputs_of(const fs::path& dir, const test::run_result& r) {
    std::vector<std::pair<std::string, std::string>> out{{"stdout", r.out}, {"stderr", r.err}};
    for (const char* name : {"snapshot.db", "snapshot.db-wal"})
        if (fs::exists(dir / name)) out.emplace_back(name, test::read_file(dir / name));
    for (const auto& [path, bytes] : files_under(dir / "exports")) out.emplace_back(path.string(), bytes);
    return out;
}

std::string around(const std::string& text, std::size_t at) { return text.substr(at < 80 ? 0 : at - 80, 200); }

// Zero hits for `secret` in every output.
void expect_nowhere(const fs::path& dir, const test::run_result& r, const std::string& secret) {
    for (const auto& [name, text] : outputs_of(dir, r)) {
        const auto at = text.find(secret);
        EXPECT_EQ(at, std::string::npos) << name << ": " << (at == std::string::npos ? "" : around(text, at));
    }
}

// No AK/SK signature value (Signature=<hex>) in any output: an echoed Authorization header
// may be quoted only as `Signature=<redacted>`.
void expect_no_signature(const fs::path& dir, const test::run_result& r) {
    const std::regex signature("Signature=[0-9a-fA-F]{16}");
    for (const auto& [name, text] : outputs_of(dir, r)) {
        std::smatch m;
        EXPECT_FALSE(std::regex_search(text, m, signature))
            << name << ": " << around(text, static_cast<std::size_t>(m.position(0)));
    }
}

// Issue 15, acceptance 1: with a jsonl sink and an exec sink (which records its stdin and its
// environment), the auth_failing alert the echoed 401 raises carries no token either.
TEST_F(RealCloud, EchoedTokenReachesNoOutputNorFile) {
    start();
    const auto hook = dir_ / "hook.sh";
    test::write_file(hook, "#!/bin/sh\ncat >> \"$0.stdin\"\nenv >> \"$0.env\"\n");
    fs::permissions(hook, fs::perms::owner_all);
    config_spec spec;
    spec.extra_tables = fmt::format("[[alerts.sink]]\ntype = \"jsonl\"\npath = \"{}\"\n\n"
                                    "[[alerts.sink]]\ntype = \"exec\"\nargv = [\"{}\"]\n",
                                    (dir_ / "exports" / "alerts.jsonl").string(), hook.string());
    const auto cfg = config(spec);
    good_sync(cfg);
    emu_->echo_secrets_page(2);
    emu_->echo_secrets_orders();
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(last_run("purchased_groups", "error").find("APIG.1002"), std::string::npos)
        << "the error is reported, only the secret is not";
    const auto jsonl = test::read_file(dir_ / "exports" / "alerts.jsonl");
    EXPECT_NE(jsonl.find("auth_failing"), std::string::npos) << "the alert was sent: " << jsonl;
    ASSERT_TRUE(fs::exists(dir_ / "hook.sh.stdin")) << r.err;
    ASSERT_TRUE(fs::exists(dir_ / "hook.sh.env")) << r.err;
    fs::rename(dir_ / "hook.sh.stdin", dir_ / "exports" / "hook.stdin");  // searched with the exports
    fs::rename(dir_ / "hook.sh.env", dir_ / "exports" / "hook.env");
    expect_nowhere(dir_.path(), r, token);
}

TEST_F(RealCloud, EchoedAccessKeyReachesNoOutputNorFile) {
    start();
    config_spec spec;
    spec.auth = "type = \"aksk\"\nak_env = \"HW_AK\"\nsk_env = \"HW_SK\"\nproject_id = \"0123456789abcdef\"\n";
    const auto cfg = config(spec);
    good_sync(cfg);
    emu_->echo_secrets_page(1);
    emu_->echo_secrets_orders();
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    expect_nowhere(dir_.path(), r, ak);
    expect_no_signature(dir_.path(), r);
}

TEST_F(RealCloud, EchoedIamPasswordReachesNoOutputNorFile) {
    start();
    config_spec spec;
    spec.auth = password_auth();
    const auto cfg = config(spec);
    good_sync(cfg);
    emu_->echo_secrets_iam();
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    expect_nowhere(dir_.path(), r, password);
}

}  // namespace
}  // namespace subsync

namespace subsync {
namespace {

// Issue 14 §6: an IAM outage longer than one round's retries fails that round, and the next
// round of the same long-lived engine (as `subsyncd run` keeps it) asks IAM again and succeeds.
TEST(RealCloudRounds, IamFailureIsForgottenByTheNextRound) {
    test::temp_dir dir;
    emulator::options opts;
    opts.users = {{"ops", "rounds-password-1", "tenant"}};
    auto emu = test::start_emulator(std::move(opts), emulator::dataset::generated(30, 3, 5), "rounds-token",
                                    dir / "ca.pem");
    config_spec spec;
    spec.base_url = emu->base_url();
    spec.ca_file = (dir / "ca.pem").string();
    spec.extra_sync = "max_attempts = 2\nbackoff_base = \"10ms\"\nbackoff_max = \"20ms\"\n";
    spec.auth = "type = \"password\"\niam_endpoint = \"" + emu->base_url() +
                "\"\nuser = \"ops\"\ndomain = \"tenant\"\npassword_env = \"ROUNDS_PASSWORD\"\nproject = \"cn-north-4\"\n";
    auto cfg = config::load_config(test::write_config(dir, spec));
    ASSERT_TRUE(cfg) << cfg.error().message;
    config::environment env;
    env.lookup = [](const std::string& name) -> std::optional<std::string> {
        if (name == "ROUNDS_PASSWORD") return "rounds-password-1";
        return std::nullopt;
    };
    env.credentials_dir = [] { return std::optional<std::filesystem::path>(); };
    sync::snapshot_store store(cfg->storage.database);
    boost::asio::io_context io;
    // The real wall clock: IAM's token expiry is in real time.
    sync::sync_engine engine(io.get_executor(), *cfg, store, env, [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    });
    auto round = [&] {
        std::optional<sync::sync_report> report;
        boost::asio::co_spawn(io, engine.run(), [&](std::exception_ptr e, sync::sync_report r) {
            if (e) std::rethrow_exception(e);
            report = std::move(r);
        });
        io.restart();
        io.run();
        return std::move(*report);
    };

    emu->iam_outage(4);  // more than one round's two attempts, shared by both sources
    const auto first = round();
    EXPECT_FALSE(first.all_ok());
    const auto during = emu->get_stats().token_requests;
    EXPECT_LE(during, 4u) << "one round never retries authentication in a loop";

    emu->iam_outage(0);
    const auto second = round();
    EXPECT_TRUE(second.all_ok()) << (second.runs.empty() ? "" : second.runs[0].error);
    EXPECT_GT(emu->get_stats().token_requests, during) << "the next round asked IAM again";
}

}  // namespace
}  // namespace subsync

namespace subsync {
namespace {

// Issue 15 §3: a header value with CR or LF (a secret file holding "tok\r\nX-Injected: evil")
// is refused before anything is written, naming the header and never its value.
TEST(HeaderInjection, ControlCharactersInAHeaderAreNeverWritten) {
    test::temp_dir dir;
    auto emu = test::start_emulator({}, emulator::dataset::generated(3, 1, 5), "injection-token", dir / "ca.pem");
    config::tls_config tls;
    tls.ca_file = dir / "ca.pem";
    auto ep = config::parse_endpoint(emu->base_url());
    ASSERT_TRUE(ep);
    boost::asio::io_context io;
    sync::http_connection conn(io.get_executor(), *ep, sync::make_tls_context(tls), std::chrono::seconds(5));
    const std::string bad_values[] = {"injection-token\r\nX-Injected: evil", std::string("tok\0en", 6), "tok\nen"};
    for (const auto& bad : bad_values) {
        sync::http_request req;
        req.target = "/v1.0/apigw/purchases/groups";
        req.headers.push_back({"X-Auth-Token", bad});
        const auto out = test::send_once(io, conn, req);
        ASSERT_FALSE(out) << "status " << out->status;
        EXPECT_NE(out.error().message.find("refused to send header \"X-Auth-Token\""), std::string::npos)
            << out.error().message;
        EXPECT_EQ(out.error().message.find("evil"), std::string::npos) << "never the value";
    }
    EXPECT_EQ(emu->get_stats().requests, 0u) << "nothing reached the server";
}

}  // namespace
}  // namespace subsync
