// Every row of docs/faults.md: a fault injected by the emulator over HTTPS,
// what subsyncd does about it, and that the last good snapshot survives.

#include "support/emulated_cloud.hpp"
#include "support/test_support.hpp"

#include <subsync/emulator/connect_proxy.hpp>
#include <subsync/emulator/server.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

namespace subsync {
namespace {

using test::config_spec;
using test::run_subsyncd;
using test::temp_dir;
using clock = std::chrono::steady_clock;

constexpr const char* token = "fault-test-token";

class Faults : public ::testing::Test {
protected:
    void start(emulator::options opts = {}, emulator::dataset data = emulator::dataset::generated(450, 12, 5)) {
        emu_ = test::start_emulator(std::move(opts), std::move(data), token, dir_ / "ca.pem");
    }

    std::filesystem::path config(config_spec spec = {}) {
        spec.base_url = emu_->base_url();
        spec.ca_file = (dir_ / "ca.pem").string();
        spec.page_size = 50;
        spec.concurrency = 4;
        spec.token_env = "SUBSYNC_TEST_TOKEN";
        return test::write_config(dir_, spec);
    }

    test::run_result sync(const std::filesystem::path& cfg, std::map<std::string, std::string> env = {}) {
        env.emplace("SUBSYNC_TEST_TOKEN", token);
        return run_subsyncd({"sync", "--once", "--config", cfg.string()}, env);
    }

    // Every item table, in full, to compare snapshots.
    std::string snapshot() {
        SQLite::Database db((dir_ / "snapshot.db").string(), SQLite::OPEN_READONLY);
        std::string out;
        for (const char* table : {"purchased_groups", "subscription_resources"}) {
            SQLite::Statement q(db, std::string("SELECT * FROM ") + table + " ORDER BY account, item_key");
            while (q.executeStep()) {
                for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
                out += '\n';
            }
        }
        EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
        return out;
    }

    // A first good sync, so that a fault has something to destroy.
    std::string good_sync(const std::filesystem::path& cfg) {
        auto r = sync(cfg);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        emu_->reset_stats();
        return snapshot();
    }

    std::string last_run(const char* source, const char* column) {
        SQLite::Database db((dir_ / "snapshot.db").string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, std::string("SELECT ") + column + " FROM sync_runs WHERE source = ? ORDER BY id DESC");
        q.bind(1, source);
        return q.executeStep() ? q.getColumn(0).getString() : "";
    }

    temp_dir dir_;
    std::unique_ptr<emulator::server> emu_;
};

TEST_F(Faults, ThrottledWithRetryAfterWaitsAsTold) {
    start();
    config_spec spec;
    spec.extra_sync = "backoff_max = \"10s\"\n";
    const auto cfg = config(spec);
    good_sync(cfg);
    emu_->fail_page_times(3, 429, 1, "2");
    const auto t0 = clock::now();
    auto r = sync(cfg);
    const auto took = clock::now() - t0;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GE(took, std::chrono::seconds(2)) << "Retry-After: 2 was honoured";
    EXPECT_EQ(emu_->page_requests(3), 2u);
    EXPECT_NE(r.err.find("retrying account=prod source=purchased_groups page=3 throttled=1 rate="), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(" wait=2000ms"),
              std::string::npos)
        << r.err;
}

TEST_F(Faults, ThrottledAndServerErrorsBackOffWithJitterAndRecover) {
    start();
    const auto cfg = config();
    const auto before = good_sync(cfg);
    emu_->fail_page_times(2, 429, 2);
    emu_->fail_page_times(4, 503, 3);
    emu_->fail_orders_times(502, 1);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->page_requests(2), 3u);
    EXPECT_EQ(emu_->page_requests(4), 4u);
    EXPECT_EQ(emu_->get_stats().orders_requests, 2u);
    EXPECT_EQ(snapshot(), before) << "same data, nothing changed";
}

TEST_F(Faults, PersistentServerErrorFailsTheSourceAfterCappedAttempts) {
    start();
    config_spec spec;
    spec.extra_sync = "max_attempts = 3\n";
    const auto cfg = config(spec);
    const auto before = good_sync(cfg);
    emu_->fail_page_times(5, 500, 100);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(emu_->page_requests(5), 3u);
    EXPECT_NE(last_run("purchased_groups", "error").find("page=5: HTTP 500"), std::string::npos);
    EXPECT_NE(last_run("purchased_groups", "error").find("(after 3 attempts)"), std::string::npos);
    EXPECT_EQ(last_run("subscription_resources", "status"), "ok");
    EXPECT_EQ(snapshot(), before);
}

TEST_F(Faults, ConnectionResetMidBodyIsRetried) {
    start();
    const auto cfg = config();
    const auto before = good_sync(cfg);
    emu_->reset_page(6, 1);
    emu_->reset_orders(1);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->page_requests(6), 2u);
    EXPECT_EQ(snapshot(), before);
}

TEST_F(Faults, StalledServerFailsWithinTheDeadlineAndTheOtherSourceApplies) {
    start();
    config_spec spec;
    spec.timeout = "700ms";
    spec.extra_sync = "max_attempts = 2\n";
    const auto cfg = config(spec);
    const auto before = good_sync(cfg);
    emu_->stall_page(2);
    const auto t0 = clock::now();
    auto r = sync(cfg);
    const auto took = clock::now() - t0;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    // Two attempts of 700 ms each plus a short backoff, with slack for a loaded machine.
    EXPECT_LT(took, std::chrono::seconds(5)) << "a stalled server must fail in bounded time";
    EXPECT_NE(last_run("purchased_groups", "error").find("page=2"), std::string::npos);
    EXPECT_EQ(last_run("subscription_resources", "status"), "ok");
    EXPECT_EQ(snapshot(), before);
}

// The bytes of purchases page `page_no` at `page_size` a page, without the listing's wrapper: a
// lower bound of the body's size, so a drip's duration is known before it starts.
std::size_t page_bytes(const emulator::dataset& data, int page_no, int page_size) {
    std::size_t bytes = 0;
    const auto first = static_cast<std::size_t>((page_no - 1) * page_size);
    for (std::size_t i = first; i < std::min(data.purchases.size(), first + static_cast<std::size_t>(page_size)); ++i) {
        bytes += data.purchases[i].json.size();
    }
    return bytes;
}

TEST_F(Faults, SlowDripPastTheTimeoutFailsWithinTheDeadlineAndTheOtherSourceApplies) {
    const auto data = emulator::dataset::generated(450, 12, 5);
    start({}, data);
    config_spec spec;
    spec.timeout = "700ms";
    spec.extra_sync = "max_attempts = 2\n";
    const auto cfg = config(spec);
    const auto before = good_sync(cfg);
    // Every byte comes quickly after the last, but the page needs at least 40 ticks of 100 ms:
    // 4 s against a 700 ms budget. Only a deadline on the whole request ends it.
    emu_->drip_page(2, page_bytes(data, 2, 50) / 40, std::chrono::milliseconds(100));
    const auto t0 = clock::now();
    auto r = sync(cfg);
    const auto took = clock::now() - t0;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    // Two attempts of 700 ms each plus a short backoff, with slack for a loaded machine; a single
    // attempt allowed to finish would already take 4 s.
    EXPECT_LT(took, std::chrono::seconds(5)) << "a dripping server must fail in bounded time";
    EXPECT_EQ(emu_->page_requests(2), 2u) << "the timeout is retried like a stall";
    const auto error = last_run("purchased_groups", "error");
    EXPECT_NE(error.find("page=2"), std::string::npos) << error;
    EXPECT_NE(error.find("timeout"), std::string::npos) << error;
    EXPECT_EQ(last_run("subscription_resources", "status"), "ok");
    EXPECT_EQ(snapshot(), before);
}

TEST_F(Faults, SlowDripWithinTheTimeoutSucceeds) {
    const auto data = emulator::dataset::generated(450, 12, 5);
    start({}, data);
    config_spec spec;
    spec.timeout = "5s";
    spec.extra_sync = "max_attempts = 2\n";
    const auto cfg = config(spec);
    const auto before = good_sync(cfg);
    // At least 10 ticks of 60 ms for the page and 10 of 60 ms for the orders: slow, and well inside 5 s.
    emu_->drip_page(2, page_bytes(data, 2, 50) / 10, std::chrono::milliseconds(60));
    emu_->drip_orders(data.orders_json.size() / 10, std::chrono::milliseconds(60));
    const auto t0 = clock::now();
    auto r = sync(cfg);
    const auto took = clock::now() - t0;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GE(took, std::chrono::milliseconds(600)) << "the page really dripped";
    EXPECT_EQ(emu_->page_requests(2), 1u) << "a slow answer inside the timeout is not retried";
    EXPECT_EQ(emu_->get_stats().orders_requests, 1u);
    EXPECT_EQ(last_run("purchased_groups", "status"), "ok");
    EXPECT_EQ(last_run("subscription_resources", "status"), "ok");
    EXPECT_EQ(snapshot(), before) << "same data, nothing changed";
}

// A body that is not JSON fails its page (exit 1); items of the wrong type leave the
// listing incomplete (exit 3) with the rest applied (issue 14 §2). Either way the
// snapshot keeps every row it had.
TEST_F(Faults, MalformedBodiesFailThePageNamingIt) {
    struct malformed_case {
        const char* name;
        emulator::malformation kind;
        int exit_code;
        const char* message;
    };
    const malformed_case cases[] = {
        {"truncated", emulator::malformation::truncated_json, 1, "page=3: body is not valid JSON"},
        {"html", emulator::malformation::not_json, 1, "page=3: body is not valid JSON"},
        {"wrong type", emulator::malformation::wrong_type, 3,
         "account=prod source=purchased_groups page=3 item="},
    };
    start();
    const auto cfg = config();
    const auto before = good_sync(cfg);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        emu_->clear_faults();
        emu_->malform_page(3, c.kind);
        auto r = sync(cfg);
        EXPECT_EQ(r.exit_code, c.exit_code) << r.err;
        EXPECT_NE(last_run("purchased_groups", "error").find(c.message), std::string::npos)
            << last_run("purchased_groups", "error");
        EXPECT_EQ(snapshot(), before);
    }
}

TEST_F(Faults, DatasetChangingBetweenPagesIsFetchedAgain) {
    auto data = emulator::dataset::generated(450, 12, 5);
    start({}, data);
    const auto cfg = config();
    good_sync(cfg);
    auto changed = data;
    changed.purchases.erase(changed.purchases.begin());  // one purchase expires mid-listing
    emu_->change_dataset_after_page(4, changed);
    auto r = run_subsyncd({"-v", "sync", "--once", "--config", cfg.string()}, {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->page_requests(1), 2u) << "fetched again from page 1";
    EXPECT_NE(r.err.find("fetching again from page 1"), std::string::npos) << r.err;
    EXPECT_EQ(last_run("purchased_groups", "removed"), "1");
    // The second pass's progress goes on from the first's: it never steps back.
    const auto progress = test::progress_of(r.err, "purchased_groups");
    ASSERT_FALSE(progress.empty());
    for (std::size_t i = 1; i < progress.size(); ++i) EXPECT_GT(progress[i].done, progress[i - 1].done) << i;
    EXPECT_EQ(progress.back().done, progress.back().total);
}

TEST_F(Faults, ListingThatNeverAddsUpAppliesWithoutRemovingAndExitsThree) {
    auto data = emulator::dataset::generated(120, 4, 9);
    start({}, data);
    const auto cfg = config();
    good_sync(cfg);
    auto broken = data;
    broken.purchases.pop_back();                            // one item gone...
    broken.purchases.push_back(broken.purchases.front());  // ...and a duplicate id instead
    emu_->set_dataset(broken);
    auto r = sync(cfg);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(last_run("purchased_groups", "status"), "incomplete");
    EXPECT_EQ(last_run("purchased_groups", "removed"), "0") << "an incomplete listing removes nothing";
    EXPECT_NE(last_run("purchased_groups", "error").find("also after fetching again from page 1"), std::string::npos);
    EXPECT_NE(last_run("purchased_groups", "error").find("id " + data.purchases.front().id + " listed twice"),
              std::string::npos)
        << last_run("purchased_groups", "error");
    EXPECT_EQ(last_run("purchased_groups", "items"), "119") << "the repeated id is kept once";
}

TEST_F(Faults, ExpiredTokenIsRefreshedOnceAndTheSyncSucceeds) {
    emulator::options opts;
    opts.users = {{"ops", "pa55word", "tenant"}};
    start(opts);
    config_spec spec;
    spec.auth = "type = \"password\"\niam_endpoint = \"" + emu_->base_url() +
                "\"\nuser = \"ops\"\ndomain = \"tenant\"\nproject = \"cn-north-4\"\npassword_env = \"PW\"\n";
    const auto cfg = config(spec);
    emu_->fail_page_times(5, 401, 1);  // the token "expires" in the middle of the listing
    auto r = sync(cfg, {{"PW", "pa55word"}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->get_stats().token_requests, 2u) << "one token, one refresh";
    EXPECT_EQ(emu_->page_requests(5), 2u);
    EXPECT_EQ(r.err.find("pa55word"), std::string::npos);
}

TEST_F(Faults, PasswordAuthSharesOneTokenAcrossFiftyConcurrentPages) {
    emulator::options opts;
    opts.users = {{"ops", "pa55word", "tenant"}};
    opts.latency = std::chrono::milliseconds(5);
    start(opts, emulator::dataset::generated(2500, 10, 3));
    config_spec spec;
    spec.auth = "type = \"password\"\niam_endpoint = \"" + emu_->base_url() +
                "\"\nuser = \"ops\"\ndomain = \"tenant\"\nproject_id = \"0123456789abcdef\"\npassword_env = \"PW\"\n";
    auto cfg = config(spec);
    auto r = sync(cfg, {{"PW", "pa55word"}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->get_stats().purchases_requests, 50u);
    EXPECT_EQ(emu_->get_stats().token_requests, 1u);

    auto wrong = sync(cfg, {{"PW", "wrong"}});
    EXPECT_EQ(wrong.exit_code, 1);
    EXPECT_NE(wrong.err.find("IAM rejected user \"ops\" of domain \"tenant\""), std::string::npos) << wrong.err;
    EXPECT_EQ(wrong.err.find("wrong"), wrong.err.find("wrong")) << "no password in messages";
}

TEST_F(Faults, AkSkSignedSyncSucceedsAndABadKeyCostsOneRequestPerSource) {
    emulator::options opts;
    opts.keys = {{"HPUAEXAMPLEAK0000001", "ExampleSecretKey0123456789abcdefghijklmn", std::nullopt}};
    start(opts);
    config_spec spec;
    spec.auth = "type = \"aksk\"\nak_env = \"HW_AK\"\nsk_env = \"HW_SK\"\nproject_id = \"0123456789abcdef\"\n";
    const auto cfg = config(spec);
    auto r = sync(cfg, {{"HW_AK", "HPUAEXAMPLEAK0000001"}, {"HW_SK", "ExampleSecretKey0123456789abcdefghijklmn"}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->get_stats().signature_failures, 0u);

    emu_->reset_stats();
    const auto before = snapshot();
    auto bad = sync(cfg, {{"HW_AK", "HPUAEXAMPLEAK0000001"}, {"HW_SK", "not-the-secret-key"}});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_EQ(emu_->get_stats().purchases_requests, 1u) << "a rejected signature is never retried";
    EXPECT_EQ(emu_->get_stats().orders_requests, 1u);
    EXPECT_EQ(bad.err.find("not-the-secret-key"), std::string::npos);
    EXPECT_EQ(snapshot(), before);
}

TEST_F(Faults, SyncThroughAConnectProxy) {
    start();
    emulator::connect_proxy proxy;
    const auto cfg = config();
    auto r = sync(cfg, {{"HTTPS_PROXY", proxy.url()}, {"NO_PROXY", ""}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto targets = proxy.targets();
    ASSERT_FALSE(targets.empty()) << "the emulator must be reached through the tunnel";
    for (const auto& t : targets) EXPECT_EQ(t, "127.0.0.1:" + std::to_string(emu_->port()));
    EXPECT_EQ(proxy.tunnels(), targets.size()) << "every CONNECT was tunnelled";
    EXPECT_GE(emu_->get_stats().connections, proxy.tunnels()) << "the emulator saw the tunnelled connections";

    auto bypass = sync(cfg, {{"HTTPS_PROXY", proxy.url()}, {"NO_PROXY", "127.0.0.1"}});
    EXPECT_EQ(bypass.exit_code, 0) << bypass.err;
    EXPECT_EQ(proxy.targets().size(), targets.size()) << "NO_PROXY goes direct";
    EXPECT_EQ(proxy.tunnels(), targets.size());
}

TEST_F(Faults, ClientRateLimitKeepsUnderTheGatewayThrottle) {
    emulator::options opts;
    opts.max_rps = 30;
    start(opts, emulator::dataset::generated(1500, 5, 4));  // 30 pages + 1
    config_spec spec;
    spec.extra_sync = "rate_limit = 20\nrate_burst = 5\nmax_attempts = 1\n";
    auto r = sync(config(spec));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(emu_->get_stats().rate_limited, 0u);
}

}  // namespace
}  // namespace subsync
