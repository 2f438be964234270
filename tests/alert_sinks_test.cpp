// Each sink type against real receivers: jsonl files (fsync, rotation), webhooks over HTTPS on
// loopback (HMAC, headers, URLs from secrets), Alertmanager's v2 schema, and exec hooks as real
// child processes (argv, environment, exit codes, timeouts). Notifications are queued through the
// outbox as the state machine queues them; the dispatcher's ordering rules are in
// alert_dispatch_test.cpp.

#include "support/dispatch_fixture.hpp"

#include <subsync/exporters/generations.hpp>

#include <SQLiteCpp/Transaction.h>
#include <subsync/sync/signer.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <span>
#include <cstdlib>

namespace subsync {
namespace {

using namespace dispatch_test;
using namespace std::chrono_literals;
using emulator::webhook_receiver;

/// The sink tests share the dispatcher's fixture.
using Sinks = Dispatch;

TEST_F(Sinks, JsonlAppendsInSeqOrderFsyncedAndRecordsAttempts) {
    const auto file = dir / "alerts" / "out.jsonl";
    cfg.sinks = {jsonl_sink(file)};
    for (int i = 0; i < 3; ++i) enqueue(db, {"file"}, item("sub-" + std::to_string(i)));
    const auto r = dispatch();
    EXPECT_EQ(r.delivered, 3);
    EXPECT_EQ(r.pending, 0);
    const auto lines = test::split_lines(test::read_file(file));
    ASSERT_EQ(lines.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i)
        EXPECT_EQ(only_alert(lines[i]), payload_of(static_cast<std::int64_t>(i + 1), item("sub-" + std::to_string(i))));
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
    EXPECT_EQ(attempt_outcomes(db, "file"), (std::vector<std::string>{"1:delivered", "2:delivered", "3:delivered"}));
    EXPECT_EQ(delivery(db, "file", 2).status, "delivered");
    // Nothing due: a second dispatch sends nothing again.
    EXPECT_EQ(dispatch().delivered, 0);
}

TEST_F(Sinks, JsonlFollowsARotatedFileWithoutASignal) {
    const auto file = dir / "alerts.jsonl";
    cfg.sinks = {jsonl_sink(file)};
    enqueue(db, {"file"});
    ASSERT_EQ(dispatch().delivered, 1);
    std::filesystem::rename(file, dir / "alerts.jsonl.1");  // what logrotate does
    enqueue(db, {"file"});
    ASSERT_EQ(dispatch().delivered, 1);
    EXPECT_EQ(alerts_of(test::read_file(dir / "alerts.jsonl.1")), std::vector<std::string>{payload_of(1, {})});
    EXPECT_EQ(alerts_of(test::read_file(file)), std::vector<std::string>{payload_of(2, {})});
}

TEST_F(Sinks, WebhookSignsWithHmacAndCustomHeadersWithoutLeakingTheSecret) {
    const std::string secret = "s3cr3t-hmac-key";
    webhook_receiver rcv({.tls = true, .hmac_secret = secret, .signature_header = "X-Sig"});
    auto sink = http_sink(rcv, config::sink_type::webhook);
    sink.hmac_secret.env = "HOOK_SECRET";
    sink.signature_header = "X-Sig";
    sink.headers = {{"X-Team", "billing"}};
    cfg.sinks = {sink};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    env_vars["HOOK_SECRET"] = secret;
    EXPECT_EQ(dispatch(&rcv).delivered, 1 + 1);
    const auto reqs = rcv.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_TRUE(reqs[0].signature_ok) << reqs[0].header("X-Sig");
    EXPECT_EQ(reqs[0].header("X-Team"), "billing");
    EXPECT_EQ(reqs[0].header("X-Sig").rfind("sha256=", 0), 0u);
    EXPECT_EQ(sync::hmac_sha256_hex("key", "The quick brown fox jumps over the lazy dog"),
              "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");  // the well-known HMAC-SHA256 example

    // A wrong secret: the receiver refuses, the error names the status, never the secret.
    enqueue(db, {"hook"});
    env_vars["HOOK_SECRET"] = "wrong-secret-value";
    EXPECT_EQ(dispatch(&rcv).failed, 1);
    const auto d = delivery(db, "hook", 3);
    EXPECT_NE(d.last_error.find("HTTP 401"), std::string::npos) << d.last_error;
    // A missing secret: named by its variable.
    env_vars.erase("HOOK_SECRET");
    now += 60'000;
    EXPECT_EQ(dispatch(&rcv).failed, 1);
    EXPECT_NE(delivery(db, "hook", 3).last_error.find("HOOK_SECRET"), std::string::npos);
    const auto all = db.execAndGet("SELECT group_concat(coalesce(error, ''), '|') FROM alert_attempts").getString();
    EXPECT_EQ(all.find("wrong-secret-value"), std::string::npos);
    EXPECT_EQ(all.find(secret), std::string::npos);
}

TEST_F(Sinks, AlertmanagerPayloadValidatesAndResolvedCarriesEndsAt) {
    webhook_receiver rcv;
    cfg.sinks = {http_sink(rcv, config::sink_type::alertmanager, "am")};
    enqueue(db, {"am"});
    enqueue(db, {"am"}, resolved_at(t0 + 1000));
    now = t0 + 1000;
    EXPECT_EQ(dispatch(&rcv).delivered, 1) << "one batched POST";
    const auto reqs = rcv.requests();
    ASSERT_EQ(reqs.size(), 1u);
    for (const auto& q : reqs) {
        EXPECT_EQ(q.target, "/api/v2/alerts");
        EXPECT_EQ(q.validation_error, "") << q.body;
    }
    simdjson::dom::parser p;
    auto firing = p.parse(reqs[0].body).at(0);
    EXPECT_EQ(std::string_view(firing["labels"]["alertname"]), "expiring");
    EXPECT_EQ(std::string_view(firing["labels"]["id"]), "sub-0001");
    EXPECT_EQ(std::string_view(firing["labels"]["threshold"]), "7d");
    EXPECT_EQ(std::string_view(firing["annotations"]["days_left"]), "6.0");
    EXPECT_EQ(std::string_view(firing["startsAt"]), sync::format_iso8601(t0 - 3'600'000));
    EXPECT_EQ(std::string_view(firing["endsAt"]), sync::format_iso8601(t0 + 2 * 86'400'000));
    simdjson::dom::parser p2;
    auto resolved = p2.parse(reqs[0].body).at(1);
    EXPECT_EQ(std::string_view(resolved["endsAt"]), sync::format_iso8601(t0 + 1000));
    EXPECT_EQ(std::string_view(resolved["annotations"]["reason"]), "renewed");
}

TEST(AlertmanagerSchema, ReceiverRejectsWhatAlertmanagerWould) {
    struct tc {
        const char* name;
        const char* body;
        bool valid;
    };
    const tc cases[] = {
        {"minimal", R"([{"labels":{"alertname":"x"}}])", true},
        {"not an array", R"({"labels":{"alertname":"x"}})", false},
        {"no labels", R"([{"annotations":{"a":"b"}}])", false},
        {"label not string", R"([{"labels":{"alertname":1}}])", false},
        {"bad label name", R"([{"labels":{"alert-name":"x"}}])", false},
        {"bad time", R"([{"labels":{"a":"x"},"startsAt":"2027-01-15 08:00:00"}])", false},
        {"ends before starts", R"([{"labels":{"a":"x"},"startsAt":"2027-01-15T08:00:00Z","endsAt":"2027-01-14T08:00:00Z"}])", false},
        {"unknown key", R"([{"labels":{"a":"x"},"status":"firing"}])", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(emulator::validate_postable_alerts(c.body).empty(), c.valid);
    }
}

TEST_F(Sinks, ExecPassesArgvVerbatimWithoutAShellAndPayloadOnStdin) {
    const auto out = dir / "stdin.json";
    const auto arg = dir / "arg.txt";
    // sh is the program here, not a wrapper: "$1" reaches it as one argv element, and whatever a
    // shell would make of "; rm -rf /" never happens.
    cfg.sinks = {exec_sink({"/bin/sh", "-c", R"(cat > "$0"; printf '%s' "$1" > "$2")", out.string(),
                            "x; rm -rf / $(touch pwned)", arg.string()})};
    enqueue(db, {"hook"});
    EXPECT_EQ(dispatch().delivered, 1);
    EXPECT_EQ(only_alert(test::read_file(out)), payload_of(1, {}));
    EXPECT_EQ(test::read_file(arg), "x; rm -rf / $(touch pwned)");
    EXPECT_FALSE(std::filesystem::exists("pwned"));
}

/// The variables of a NUL-separated environ block, sorted.

std::vector<std::string> environ_entries(const std::string& block) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    for (std::size_t end; (end = block.find('\0', begin)) != std::string::npos; begin = end + 1)
        out.push_back(block.substr(begin, end - begin));
    std::sort(out.begin(), out.end());
    return out;
}

/// Sets a variable of this process for one test.

class scoped_setenv {
public:
    scoped_setenv(std::string name, const std::string& value) : name_(std::move(name)) {
        ::setenv(name_.c_str(), value.c_str(), 1);
    }
    ~scoped_setenv() { ::unsetenv(name_.c_str()); }
    scoped_setenv(const scoped_setenv&) = delete;
    scoped_setenv& operator=(const scoped_setenv&) = delete;

private:
    std::string name_;
};

TEST_F(Sinks, ExecGetsOnlyTheDocumentedEnvironmentNeverASecret) {
    // The daemon's own environment holds the token (EnvironmentFile=); a hook must not inherit it.
    const std::string token = "planted-token-7f3a91";
    const scoped_setenv planted("SUBSYNC_TEST_PLANTED_TOKEN", token);
    env_vars = {{"PATH", "/usr/bin:/bin"},
                {"LANG", "C.UTF-8"},
                {"HOME", "/var/lib/subsync"},
                {"SUBSYNC_TEST_PLANTED_TOKEN", token},
                {"HOOK_ROUTE", "pager-7"},
                {"NOT_NAMED", "x"}};
    secret_env_names = {"SUBSYNC_TEST_PLANTED_TOKEN"};
    const auto out = dir / "environ";
    // /proc/$$/environ is the block the shell was started with, before it adds PWD and the like.
    auto sink = exec_sink({"/bin/sh", "-c", R"(cat /proc/$$/environ > "$0")", out.string()});
    sink.pass_env = {"HOOK_ROUTE", "SUBSYNC_TEST_PLANTED_TOKEN", "UNSET_ONE"};
    sink.env = {{"HOOK_TEAM", "platform"}, {"LANG", "en_US.UTF-8"}};
    cfg.sinks = {sink};
    enqueue(db, {"hook"});
    EXPECT_EQ(dispatch().delivered, 1);
    const std::string block = test::read_file(out);
    EXPECT_EQ(block.find(token), std::string::npos);
    EXPECT_EQ(environ_entries(block),
              (std::vector<std::string>{"HOME=/var/lib/subsync", "HOOK_ROUTE=pager-7", "HOOK_TEAM=platform",
                                        "LANG=en_US.UTF-8", "PATH=/usr/bin:/bin"}));
}

TEST(ExecEnvironment, DefaultPathWhenTheDaemonHasNone) {
    config::environment env;
    env.lookup = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    EXPECT_EQ(alerting::exec_environment({}, env, {}), std::vector<std::string>{"PATH=/usr/local/bin:/usr/bin:/bin"});
}

TEST_F(Sinks, WebhookUrlFromASecretIsUsedButNeverShownOrStored) {
    webhook_receiver rcv;
    // Slack-style: the path is the secret, and a query string is part of it.
    const std::string secret_part = "/services/T0SECRETPATH/hook?token=Q5SECRETQUERY&x=%2F";
    env_vars["HOOK_URL"] = rcv.base_url() + secret_part;
    config::sink_config sink;
    sink.name = "hook";
    sink.type = config::sink_type::webhook;
    sink.url_secret.env = "HOOK_URL";
    sink.timeout = 2s;
    cfg.sinks = {sink};
    enqueue(db, {"hook"});
    rcv.set_status(500);
    dispatch_passes(rcv, 3);
    const auto reqs = rcv.requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].target, secret_part) << "path and query reach the receiver verbatim";
    const auto d = delivery(db, "hook", 1);
    EXPECT_EQ(d.status, "dead");
    auto shown = *config::parse_endpoint(rcv.base_url());
    EXPECT_NE(d.last_error.find("HTTP 500 from " + config::display_url(shown) + "/…"), std::string::npos)
        << d.last_error;
    // Everything the daemon wrote: the database (errors, the delivery_failed alert and its
    // notification payload) and an export generation with report.html.
    {
        auto ro = sync::open_snapshot_readonly(dir / "snapshot.db");
        exporters::write_generation(ro, dir / "exports", now, {1});
    }
    std::size_t files = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
        if (!e.is_regular_file()) continue;
        ++files;
        const std::string bytes = test::read_file(e.path());
        EXPECT_EQ(bytes.find("SECRET"), std::string::npos) << e.path();
    }
    EXPECT_GE(files, 8u);
    const auto failed = db.execAndGet("SELECT count(*) FROM alerts WHERE kind = 'delivery_failed'").getInt64();
    EXPECT_EQ(failed, 1) << "the dead letter raised delivery_failed, whose reason carries the error";
}

TEST_F(Sinks, WebhookUrlSecretThatDoesNotResolveFailsNamingTheKey) {
    config::sink_config sink;
    sink.name = "hook";
    sink.type = config::sink_type::webhook;
    sink.url_secret.env = "HOOK_URL";
    cfg.sinks = {sink};
    enqueue(db, {"hook"});
    env_vars["HOOK_URL"] = "https://hooks.example.com/T0SECRET x";
    EXPECT_EQ(dispatch().failed, 1);
    EXPECT_EQ(delivery(db, "hook", 1).last_error,
              "alerts.sink hook.url: invalid URL: a character in the path is not allowed (percent-encode it)");
    env_vars.erase("HOOK_URL");
    now += 60'000;
    EXPECT_EQ(dispatch().failed, 1);
    EXPECT_EQ(delivery(db, "hook", 1).last_error, "alerts.sink hook.url_env: environment variable HOOK_URL is not set");
}

TEST_F(Sinks, ExecNonZeroExitRetriesLaterWithItsOutput) {
    cfg.sinks = {exec_sink({"/bin/sh", "-c", "echo 'no route to pager' >&2; exit 3"})};
    enqueue(db, {"hook"});
    const auto r = dispatch();
    EXPECT_EQ(r.failed, 1);
    const auto d = delivery(db, "hook", 1);
    EXPECT_EQ(d.status, "pending");
    EXPECT_NE(d.last_error.find("exit status 3"), std::string::npos) << d.last_error;
    EXPECT_NE(d.last_error.find("no route to pager"), std::string::npos) << d.last_error;
}

TEST_F(Sinks, ExecTimeoutKillsTheChildAndItsChildren) {
    cfg.sinks = {exec_sink({"/bin/sh", "-c", "trap '' TERM; sleep 30 & wait"}, 200ms)};
    enqueue(db, {"hook"});
    const auto start = std::chrono::steady_clock::now();
    const auto r = dispatch();
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.failed, 1);
    EXPECT_NE(delivery(db, "hook", 1).last_error.find("timed out"), std::string::npos);
    EXPECT_LT(took, 4s) << "SIGKILL after the TERM grace";
}

TEST_F(Sinks, ExecMissingProgramIsAFailureNotACrash) {
    cfg.sinks = {exec_sink({"/nonexistent/hook"})};
    enqueue(db, {"hook"});
    EXPECT_EQ(dispatch().failed, 1);
    EXPECT_NE(delivery(db, "hook", 1).last_error.find("/nonexistent/hook"), std::string::npos);
}

TEST_F(Sinks, AlertmanagerGetsEveryAlertOfAStormInBatchedPosts) {
    webhook_receiver rcv;
    cfg.sinks = {http_sink(rcv, config::sink_type::alertmanager, "am")};
    {
        SQLite::Transaction tx(db);
        for (int i = 0; i < 10'000; ++i) enqueue(db, {"am"});
        tx.commit();
    }
    const auto r = dispatch(&rcv, 60s);
    EXPECT_EQ(r.pending, 0);
    const auto reqs = rcv.requests();
    EXPECT_EQ(reqs.size(), 20u) << "10,000 alerts in POSTs of max_alerts_per_notification (500)";
    std::set<std::string> ids;
    simdjson::dom::parser p;
    for (const auto& q : reqs) {
        EXPECT_EQ(q.validation_error, "");
        for (auto a : p.parse(q.body).get_array()) ids.insert(std::string(std::string_view(a["labels"]["id"])));
    }
    EXPECT_EQ(ids.size(), 10'000u);
}

}  // namespace
}  // namespace subsync
