// The dispatcher and the sinks against real SQLite files, a real HTTPS receiver on loopback and
// real child processes. Notifications are queued through the outbox, as the state machine
// queues them. Most tests here give every alert its own group (group_by = ["item"]) to check one
// notification's path; the Grouping tests check how alerts go out together.

#include <subsync/emulator/webhook_receiver.hpp>
#include <subsync/alerting/dispatch.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/config/load.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include "support/test_support.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>
#include <subsync/sync/signer.hpp>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <span>
#include <cstdlib>

namespace subsync {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using emulator::webhook_receiver;

constexpr std::int64_t t0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z

struct outbox_entry {
    std::string kind = "expiring";
    std::string state = "firing";
    std::string severity = "warning";
    std::string account = "prod";
    std::string id;  ///< empty: "sub-<seq>", so every notification is its own item
    std::int64_t created_at = t0;
    std::optional<std::int64_t> resolved_at;
};

outbox_entry item(std::string id) {
    outbox_entry e;
    e.id = std::move(id);
    return e;
}

outbox_entry resolved_at(std::int64_t t) {
    outbox_entry e;
    e.state = "resolved";
    e.created_at = t;
    e.resolved_at = t;
    return e;
}

std::string id_of(std::int64_t seq, const outbox_entry& e) {
    return e.id.empty() ? fmt::format("sub-{:04}", seq) : e.id;
}

std::string payload_of(std::int64_t seq, const outbox_entry& e) {
    return fmt::format(
        R"({{"idempotency_key":"key-{seq}","kind":"{kind}","severity":"{severity}","state":"{state}","account":"{account}",)"
        R"("source":"purchased_groups","id":"{id}","threshold":"7d","since":"{since}","resolved_at":{resolved},)"
        R"("reason":{reason},"summary":"purchased group \"payments\" expires in 6 days","values":{{"expire_time":)"
        R"("2027-01-21T08:00:00Z","days_left":6.0}},"notification":1,"created_at":"{created}"}})",
        fmt::arg("seq", seq), fmt::arg("kind", e.kind), fmt::arg("severity", e.severity), fmt::arg("account", e.account), fmt::arg("state", e.state), fmt::arg("id", id_of(seq, e)),
        fmt::arg("since", sync::format_iso8601(t0 - 3'600'000)),
        fmt::arg("resolved", e.resolved_at ? "\"" + sync::format_iso8601(*e.resolved_at) + "\"" : "null"),
        fmt::arg("reason", e.resolved_at ? "\"renewed\"" : "null"), fmt::arg("created", sync::format_iso8601(e.created_at)));
}

/// Queues a notification for `sinks` as the outbox writer does; returns its seq.
std::int64_t enqueue(SQLite::Database& db, const std::vector<std::string>& sinks, const outbox_entry& e = {}) {
    const std::int64_t seq = db.execAndGet("SELECT coalesce(max(seq), 0) + 1 FROM alert_outbox").getInt64();
    alerting::queued_notification n{"key-" + std::to_string(seq), e.created_at, std::nullopt, e.account,
                                    "purchased_groups", id_of(seq, e), *config::alert_kind_named(e.kind), "7d",
                                    e.state == "firing" ? alerting::alert_state::firing : alerting::alert_state::resolved,
                                    *config::severity_named(e.severity),
                                    payload_of(seq, e)};
    EXPECT_TRUE(alerting::outbox(db).enqueue(n, sinks));
    return seq;
}

/// The alerts array of a group notification's payload, as one JSON text per alert.
std::vector<std::string> alerts_of(std::string_view body) {
    simdjson::dom::parser p;
    simdjson::dom::element doc = p.parse(body);
    std::vector<std::string> out;
    for (auto a : doc["alerts"].get_array()) out.push_back(simdjson::minify(a));
    return out;
}

/// The one alert of a notification of a group of one.
std::string only_alert(std::string_view body) {
    auto v = alerts_of(body);
    EXPECT_EQ(v.size(), 1u) << body;
    return v.empty() ? std::string() : v.front();
}

/// A sink that sends every alert on its own, at once.
config::sink_config one_by_one(config::sink_config s) {
    s.group.by = {config::group_label::item};
    s.group.interval = 0ms;
    return s;
}

struct delivery_state {
    std::string status;
    std::int64_t attempts = 0;
    std::int64_t next_attempt_at = 0;
    std::string last_error;
};

delivery_state delivery(SQLite::Database& db, const std::string& sink, std::int64_t seq) {
    SQLite::Statement q(db,
                        "SELECT status, attempts, next_attempt_at, coalesce(last_error, '') FROM alert_deliveries "
                        "WHERE sink = ? AND seq = ?");
    q.bind(1, sink);
    q.bind(2, seq);
    if (!q.executeStep()) return {};
    return {q.getColumn(0).getString(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
            q.getColumn(3).getString()};
}

std::vector<std::string> attempt_outcomes(SQLite::Database& db, const std::string& sink) {
    SQLite::Statement q(db, "SELECT seq || ':' || outcome FROM alert_attempts WHERE sink = ? ORDER BY id");
    q.bind(1, sink);
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
}

config::sink_config jsonl_sink(const std::filesystem::path& path, std::string name = "file") {
    config::sink_config s;
    s.name = std::move(name);
    s.type = config::sink_type::jsonl;
    s.path = path;
    return one_by_one(std::move(s));
}

config::sink_config http_sink(const webhook_receiver& r, config::sink_type type, std::string name = "hook") {
    config::sink_config s;
    s.name = std::move(name);
    s.type = type;
    s.url = *config::parse_endpoint(type == config::sink_type::webhook ? r.base_url() + "/hook" : r.base_url());
    s.timeout = 2s;
    return type == config::sink_type::alertmanager ? s : one_by_one(std::move(s));
}

config::sink_config exec_sink(std::vector<std::string> argv, std::chrono::milliseconds timeout = 5s) {
    config::sink_config s;
    s.name = "hook";
    s.type = config::sink_type::exec;
    s.argv = std::move(argv);
    s.timeout = timeout;
    return one_by_one(std::move(s));
}

/// Owns a database, a CA file, a fake clock, and runs dispatches on a private io_context.
class Dispatch : public ::testing::Test {
protected:
    test::temp_dir dir;
    sync::snapshot_store store{dir / "snapshot.db"};
    SQLite::Database& db = store.database();
    std::int64_t now = t0;
    config::alerts_config cfg = base_config();
    std::map<std::string, std::string> env_vars;
    std::vector<std::string> secret_env_names;

    static config::alerts_config base_config() {
        config::alerts_config c;
        c.max_attempts = 3;
        c.retry_base = 10s;
        c.retry_max = 60s;
        c.repeat_interval = 24h;
        return c;
    }

    alerting::sink_context context(const webhook_receiver* r) {
        alerting::sink_context ctx;
        if (r) {
            test::write_file(dir / "ca.pem", r->cert_pem());
            config::tls_config tls;
            tls.ca_file = dir / "ca.pem";
            ctx.tls = sync::make_tls_context(tls);
        }
        ctx.env.lookup = [this](const std::string& name) -> std::optional<std::string> {
            auto it = env_vars.find(name);
            if (it == env_vars.end()) return std::nullopt;
            return it->second;
        };
        ctx.env.credentials_dir = [] { return std::optional<std::filesystem::path>{}; };
        ctx.secret_env_names = secret_env_names;
        return ctx;
    }

    alerting::dispatch_report dispatch(const webhook_receiver* r = nullptr,
                                        std::chrono::milliseconds budget = 10s) {
        asio::io_context io;
        auto ctx = context(r);
        ctx.ex = io.get_executor();
        alerting::alert_dispatcher d(cfg, ctx, db, {[this] { return now; }, [] { return 0.5; }});
        auto f = asio::co_spawn(io, d.run(std::chrono::steady_clock::now() + budget), asio::use_future);
        io.run();
        return f.get();
    }
};

TEST_F(Dispatch, JsonlAppendsInSeqOrderFsyncedAndRecordsAttempts) {
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

TEST_F(Dispatch, JsonlFollowsARotatedFileWithoutASignal) {
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

TEST_F(Dispatch, WebhookDownBlocksItsSinkHeadOfLineThenDeliversInOrder) {
    webhook_receiver rcv;
    cfg.sinks = {http_sink(rcv, config::sink_type::webhook), jsonl_sink(dir / "out.jsonl")};
    for (int i = 0; i < 3; ++i) enqueue(db, {"hook", "file"}, item("sub-" + std::to_string(i)));
    rcv.set_down(true);
    auto r = dispatch(&rcv);
    // The head failed once and blocks the rest of its sink; the other sink is not held up.
    EXPECT_EQ(r.sinks[0].failed, 1);
    EXPECT_EQ(r.sinks[1].delivered, 3);
    const auto head = delivery(db, "hook", 1);
    EXPECT_EQ(head.status, "pending");
    EXPECT_EQ(head.attempts, 1);
    EXPECT_EQ(head.next_attempt_at, now + 5000) << "full jitter: draw 0.5 of retry_base 10s";
    EXPECT_NE(head.last_error, "");
    EXPECT_EQ(delivery(db, "hook", 2).attempts, 0);
    ASSERT_TRUE(r.next_due.has_value());
    EXPECT_EQ(*r.next_due, now + 5000);

    // Not yet due: nothing is tried.
    rcv.set_down(false);
    now += 4999;
    r = dispatch(&rcv);
    EXPECT_EQ(r.delivered + r.failed, 0);
    now += 1;
    r = dispatch(&rcv);
    EXPECT_EQ(r.delivered, 3);
    const auto bodies = rcv.accepted_bodies();
    ASSERT_EQ(bodies.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i)
        EXPECT_EQ(only_alert(bodies[i]), payload_of(static_cast<std::int64_t>(i + 1), item("sub-" + std::to_string(i))));
    const auto reqs = rcv.requests();
    EXPECT_EQ(reqs.back().target, "/hook");
    EXPECT_EQ(reqs.back().method, "POST");
    EXPECT_EQ(reqs.back().header("Content-Type"), "application/json");
    EXPECT_EQ(reqs.back().header("Idempotency-Key"), "group:key-3");
    EXPECT_EQ(attempt_outcomes(db, "hook"),
              (std::vector<std::string>{"1:failed", "1:delivered", "2:delivered", "3:delivered"}));
}

TEST_F(Dispatch, WebhookSignsWithHmacAndCustomHeadersWithoutLeakingTheSecret) {
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

TEST_F(Dispatch, DeadLettersAfterMaxAttemptsMovesOnAndRequeueRedelivers) {
    webhook_receiver rcv;
    cfg.sinks = {http_sink(rcv, config::sink_type::webhook)};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    rcv.set_status(500);
    for (int i = 0; i < 3; ++i) {
        dispatch(&rcv);
        now += 60'000;  // past any backoff
    }
    EXPECT_EQ(delivery(db, "hook", 1).status, "dead");
    EXPECT_EQ(delivery(db, "hook", 1).attempts, 3);
    EXPECT_NE(delivery(db, "hook", 1).last_error.find("HTTP 500"), std::string::npos);
    // The sink moved on to seq 2 after the dead letter.
    EXPECT_EQ(attempt_outcomes(db, "hook"),
              (std::vector<std::string>{"1:failed", "1:failed", "1:dead", "2:failed"}));

    EXPECT_EQ(alerting::outbox(db).requeue_dead("other", now), 0);
    EXPECT_EQ(alerting::outbox(db).requeue_dead("hook", now), 1);
    EXPECT_EQ(delivery(db, "hook", 1).status, "pending");
    EXPECT_EQ(delivery(db, "hook", 1).attempts, 0);
    rcv.set_status(202);
    const auto r = dispatch(&rcv);
    EXPECT_EQ(r.delivered, 2);
    EXPECT_EQ(delivery(db, "hook", 1).status, "delivered");
}

TEST_F(Dispatch, RowsOfSinksNoLongerConfiguredAreLeftAlone) {
    cfg.sinks = {jsonl_sink(dir / "out.jsonl")};
    enqueue(db, {"file", "retired"});
    EXPECT_EQ(dispatch().delivered, 1);
    EXPECT_EQ(delivery(db, "retired", 1).status, "pending");
    EXPECT_EQ(delivery(db, "retired", 1).attempts, 0);
}

TEST_F(Dispatch, AlertmanagerPayloadValidatesAndResolvedCarriesEndsAt) {
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

TEST_F(Dispatch, ExecPassesArgvVerbatimWithoutAShellAndPayloadOnStdin) {
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

TEST_F(Dispatch, ExecGetsOnlyTheDocumentedEnvironmentNeverASecret) {
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

TEST_F(Dispatch, WebhookUrlFromASecretIsUsedButNeverShownOrStored) {
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
    for (int i = 0; i < 3; ++i) {
        dispatch(&rcv);
        now += 60'000;
    }
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

TEST_F(Dispatch, WebhookUrlSecretThatDoesNotResolveFailsNamingTheKey) {
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

TEST_F(Dispatch, ExecNonZeroExitRetriesLaterWithItsOutput) {
    cfg.sinks = {exec_sink({"/bin/sh", "-c", "echo 'no route to pager' >&2; exit 3"})};
    enqueue(db, {"hook"});
    const auto r = dispatch();
    EXPECT_EQ(r.failed, 1);
    const auto d = delivery(db, "hook", 1);
    EXPECT_EQ(d.status, "pending");
    EXPECT_NE(d.last_error.find("exit status 3"), std::string::npos) << d.last_error;
    EXPECT_NE(d.last_error.find("no route to pager"), std::string::npos) << d.last_error;
}

TEST_F(Dispatch, ExecTimeoutKillsTheChildAndItsChildren) {
    cfg.sinks = {exec_sink({"/bin/sh", "-c", "trap '' TERM; sleep 30 & wait"}, 200ms)};
    enqueue(db, {"hook"});
    const auto start = std::chrono::steady_clock::now();
    const auto r = dispatch();
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.failed, 1);
    EXPECT_NE(delivery(db, "hook", 1).last_error.find("timed out"), std::string::npos);
    EXPECT_LT(took, 4s) << "SIGKILL after the TERM grace";
}

TEST_F(Dispatch, ExecMissingProgramIsAFailureNotACrash) {
    cfg.sinks = {exec_sink({"/nonexistent/hook"})};
    enqueue(db, {"hook"});
    EXPECT_EQ(dispatch().failed, 1);
    EXPECT_NE(delivery(db, "hook", 1).last_error.find("/nonexistent/hook"), std::string::npos);
}

TEST_F(Dispatch, DeadlineStopsStartingAttempts) {
    cfg.sinks = {exec_sink({"/bin/sh", "-c", "sleep 30"}, 10s)};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    const auto start = std::chrono::steady_clock::now();
    const auto r = dispatch(nullptr, 300ms);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
    EXPECT_EQ(r.delivered, 0);
    EXPECT_EQ(delivery(db, "hook", 2).attempts, 0);
    EXPECT_EQ(r.pending, 2);
}


// ---- grouping, end to end (the plans themselves: alert_grouping_test.cpp) ----------------------

TEST_F(Dispatch, DefaultGroupingSendsOneNotificationPerAccountAndKindWithCountsAndResolved) {
    const auto file = dir / "out.jsonl";
    auto sink = jsonl_sink(file);
    sink.group = {};  // the defaults: by account and kind
    cfg.sinks = {sink};
    for (int i = 0; i < 3; ++i) enqueue(db, {"file"});
    enqueue(db, {"file"}, resolved_at(t0));
    outbox_entry dev;
    dev.account = "dev";
    enqueue(db, {"file"}, dev);
    outbox_entry expired;
    expired.kind = "expired";
    expired.severity = "critical";
    enqueue(db, {"file"}, expired);
    const auto r = dispatch();
    EXPECT_EQ(r.delivered, 3);
    EXPECT_EQ(r.pending, 0);
    const auto lines = test::split_lines(test::read_file(file));
    ASSERT_EQ(lines.size(), 3u);
    simdjson::dom::parser p;
    simdjson::dom::element first = p.parse(lines[0]);
    EXPECT_EQ(std::string_view(first["group"]["key"]), "account=prod,kind=expiring");
    EXPECT_EQ(std::string_view(first["group"]["labels"]["account"]), "prod");
    EXPECT_EQ(std::string_view(first["group"]["labels"]["kind"]), "expiring");
    EXPECT_EQ(std::string_view(first["group"]["idempotency_key"]), "group:key-1");
    EXPECT_EQ(int64_t(first["group"]["alerts"]), 4);
    EXPECT_EQ(int64_t(first["group"]["new"]), 3);
    EXPECT_EQ(int64_t(first["group"]["resolved"]), 1);
    const auto alerts = alerts_of(lines[0]);
    ASSERT_EQ(alerts.size(), 4u);
    EXPECT_EQ(alerts[0], payload_of(1, {}));
    EXPECT_EQ(alerts[3], payload_of(4, resolved_at(t0))) << "resolved after firing";
    EXPECT_EQ(std::string_view(p.parse(lines[1])["group"]["key"]), "account=dev,kind=expiring");
    EXPECT_EQ(std::string_view(p.parse(lines[2])["group"]["severity"]), "critical");
    EXPECT_EQ(attempt_outcomes(db, "file"), (std::vector<std::string>{"1:delivered", "5:delivered", "6:delivered"}));
}

TEST_F(Dispatch, GroupIntervalHoldsNewAlertsOfAGroupJustSentAndLetsOthersGo) {
    const auto file = dir / "out.jsonl";
    auto sink = jsonl_sink(file);
    sink.group = {};
    sink.group.interval = 5min;
    cfg.sinks = {sink};
    enqueue(db, {"file"});
    EXPECT_EQ(dispatch().delivered, 1);
    now += 60'000;
    enqueue(db, {"file"});  // the same group, a minute later
    outbox_entry other;
    other.kind = "expired";
    enqueue(db, {"file"}, other);
    auto r = dispatch();
    EXPECT_EQ(r.delivered, 1) << "the other group is not held up";
    ASSERT_TRUE(r.next_due.has_value());
    EXPECT_EQ(*r.next_due, t0 + 300'000);
    now = t0 + 299'999;
    EXPECT_EQ(dispatch().delivered, 0);
    now = t0 + 300'000;
    EXPECT_EQ(dispatch().delivered, 1);
    const auto lines = test::split_lines(test::read_file(file));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(alerts_of(lines[2]), std::vector<std::string>{payload_of(2, {})});
}

TEST_F(Dispatch, AFailedGroupIsResentWholeWithItsKeyWhileLaterAlertsWait) {
    webhook_receiver rcv;
    auto sink = http_sink(rcv, config::sink_type::webhook);
    sink.group = {};
    sink.group.interval = 0ms;
    cfg.sinks = {sink};
    enqueue(db, {"hook"});
    enqueue(db, {"hook"});
    rcv.set_down(true);
    EXPECT_EQ(dispatch(&rcv).failed, 1);
    enqueue(db, {"hook"});  // arrives while the group waits for its retry
    rcv.set_down(false);
    now += 60'000;
    EXPECT_EQ(dispatch(&rcv).delivered, 2);
    const auto reqs = rcv.requests();
    ASSERT_GE(reqs.size(), 2u);
    const auto& a = reqs[reqs.size() - 2];
    const auto& b = reqs.back();
    EXPECT_EQ(a.header("Idempotency-Key"), "group:key-1") << "the same notification as the failed attempt";
    EXPECT_EQ(alerts_of(a.body), (std::vector<std::string>{payload_of(1, {}), payload_of(2, {})}));
    EXPECT_EQ(b.header("Idempotency-Key"), "group:key-3");
    EXPECT_EQ(alerts_of(b.body), std::vector<std::string>{payload_of(3, {})});
}

TEST_F(Dispatch, AlertmanagerGetsEveryAlertOfAStormInBatchedPosts) {
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
