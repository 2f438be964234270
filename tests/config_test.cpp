#include <subsync/config/load.hpp>
#include <subsync/config/secret_source.hpp>

#include "support/config_fixtures.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace cfg = subsync::config;
using namespace std::chrono_literals;

/// One [[account]] that passes validation; `extra` lines go at the end of the account table.
std::string account(std::string_view name = "prod", std::string_view extra = "",
                    std::string_view auth = "token_env = \"SUBSYNC_TOKEN\"") {
    return fmt::format(
        "[[account]]\n"
        "name = \"{}\"\n"
        "apig_endpoint = \"https://apig.example.com\"\n"
        "secmaster_endpoint = \"https://secmaster.example.com\"\n"
        "{}"
        "[account.auth]\n"
        "{}\n",
        name, extra, auth);
}

/// The 1-based line of the first line of `text` containing `snippet`.
std::uint32_t line_with(std::string_view text, std::string_view snippet) {
    const std::size_t at = text.find(snippet);
    if (at == std::string_view::npos) throw std::logic_error(fmt::format("snippet not found: {}", snippet));
    const auto newlines = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
    return static_cast<std::uint32_t>(newlines) + 1;
}

using subsync::test::TempDirTest;
using subsync::test::fake_environment;

using ConfigFile = TempDirTest;

TEST_F(ConfigFile, ReadsEveryKey) {
    write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    const fs::path file = write("etc/subsync.toml", R"(
[storage]
database   = "../data/snapshot.db"
export_dir = "/srv/exports"

[sync]
interval    = "1h30m"
page_size   = 500
concurrency = 1
timeout     = 45

[tls]
ca_file = "../ca.pem"

[[account]]
name               = "prod"
apig_endpoint      = "https://apig.example.com:8443/v1/"
secmaster_endpoint = "https://[2001:db8::1]"
language           = "zh-cn"
[account.auth]
type      = "token"
token_file = "token.txt"

[[account]]
name               = "test-2.b_c"
apig_endpoint      = "https://10.0.0.1"
secmaster_endpoint = "https://SecMaster.Example.com/base"
[account.auth]
token_credential = "test-token"
)");
    auto c = cfg::load_config(file);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->source, file);
    EXPECT_EQ(c->storage.database, dir_ / "data/snapshot.db");
    EXPECT_EQ(c->storage.export_dir, fs::path("/srv/exports"));
    EXPECT_EQ(c->sync.interval, 90min);
    EXPECT_EQ(c->sync.page_size, 500);
    EXPECT_EQ(c->sync.concurrency, 1);
    EXPECT_EQ(c->sync.timeout, 45s);
    EXPECT_EQ(c->tls.ca_file, dir_ / "ca.pem");
    ASSERT_EQ(c->accounts.size(), 2U);

    const cfg::account_config& prod = c->accounts[0];
    EXPECT_EQ(prod.name, "prod");
    EXPECT_EQ(prod.apig_endpoint.host, "apig.example.com");
    EXPECT_EQ(prod.apig_endpoint.port, 8443);
    EXPECT_EQ(prod.apig_endpoint.base_path, "/v1");
    EXPECT_EQ(prod.secmaster_endpoint.host, "2001:db8::1");
    EXPECT_EQ(prod.secmaster_endpoint.port, 443);
    EXPECT_EQ(prod.language, "zh-cn");
    EXPECT_EQ(prod.auth.type, cfg::auth_type::token);
    EXPECT_EQ(prod.auth.token.file, (dir_ / "etc/token.txt").string());
    EXPECT_TRUE(prod.auth.token.env.empty());

    const cfg::account_config& test = c->accounts[1];
    EXPECT_EQ(test.name, "test-2.b_c");
    EXPECT_EQ(test.apig_endpoint.host, "10.0.0.1");
    EXPECT_EQ(test.secmaster_endpoint.host, "secmaster.example.com");
    EXPECT_EQ(test.secmaster_endpoint.base_path, "/base");
    EXPECT_EQ(test.language, "en-us");
    EXPECT_EQ(test.auth.token.credential, "test-token");
    EXPECT_TRUE(c->warnings.empty());
}

TEST_F(ConfigFile, DefaultsWhenOptionalKeysAreAbsent) {
    const fs::path file = write("subsync.toml", account());
    auto c = cfg::load_config(file);
    ASSERT_TRUE(c) << c.error().message;
    const cfg::config defaults;
    EXPECT_EQ(c->storage.database, defaults.storage.database);
    EXPECT_EQ(c->storage.export_dir, defaults.storage.export_dir);
    EXPECT_EQ(c->sync.interval, 15min);
    EXPECT_EQ(c->sync.page_size, 100);
    EXPECT_EQ(c->sync.concurrency, 8);
    EXPECT_EQ(c->sync.timeout, 30s);
    EXPECT_TRUE(c->tls.ca_file.empty());
    ASSERT_EQ(c->accounts.size(), 1U);
    EXPECT_EQ(c->accounts[0].language, "en-us");
    EXPECT_EQ(c->accounts[0].auth.token.env, "SUBSYNC_TOKEN");
    EXPECT_TRUE(c->warnings.empty());
}

TEST_F(ConfigFile, ReadsDaemonKeys) {
    struct daemon_case {
        std::string name;
        std::string toml;
        std::chrono::milliseconds jitter, grace;
        cfg::log_level level;
        cfg::log_format format;
        std::string listen, host;
        std::uint16_t port;
    };
    const std::vector<daemon_case> cases = {
        {"Defaults", "", 90s, 10s, cfg::log_level::info, cfg::log_format::text, "", "", 0},
        {"JitterDefaultsToATenthOfInterval", "[sync]\ninterval = \"1h\"\n", 6min, 10s, cfg::log_level::info,
         cfg::log_format::text, "", "", 0},
        {"Everything",
         "[sync]\ninterval = \"10m\"\njitter = \"5m\"\n[daemon]\ngrace = \"30s\"\nlog_level = \"debug\"\n"
         "log_format = \"json\"\n[metrics]\nlisten = \"127.0.0.1:9469\"\n",
         5min, 30s, cfg::log_level::debug, cfg::log_format::json, "127.0.0.1:9469", "127.0.0.1", 9469},
        {"NoJitter", "[sync]\njitter = 0\n[daemon]\nlog_level = \"error\"\n", 0s, 10s, cfg::log_level::error,
         cfg::log_format::text, "", "", 0},
        {"Ipv6AnyPort", "[metrics]\nlisten = \"[::1]:0\"\n", 90s, 10s, cfg::log_level::info, cfg::log_format::text,
         "[::1]:0", "::1", 0},
        {"EmptyListenIsOff", "[metrics]\nlisten = \"\"\n", 90s, 10s, cfg::log_level::info, cfg::log_format::text, "",
         "", 0},
    };
    for (const daemon_case& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = cfg::load_config(write(c.name + ".toml", c.toml + account()));
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->sync.jitter, c.jitter);
        EXPECT_EQ(r->daemon.grace, c.grace);
        EXPECT_EQ(r->daemon.level, c.level);
        EXPECT_EQ(r->daemon.format, c.format);
        EXPECT_EQ(r->metrics.listen, c.listen);
        EXPECT_EQ(r->metrics.enabled(), !c.listen.empty());
        EXPECT_EQ(r->metrics.host, c.host);
        EXPECT_EQ(r->metrics.port, c.port);
        EXPECT_TRUE(r->warnings.empty());
    }
}

TEST_F(ConfigFile, MetricsOnANonLoopbackAddressWarns) {
    const fs::path file = write("open.toml", "[metrics]\nlisten = \"0.0.0.0:9469\"\n" + account());
    auto c = cfg::load_config(file);
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->warnings.size(), 1U);
    EXPECT_EQ(c->warnings[0], fmt::format("{}:2: metrics.listen: not a loopback address — /metrics and /healthz are "
                                          "served to the network, unauthenticated",
                                          file.string()));
}

TEST_F(ConfigFile, PlainHttpIsAcceptedWithAWarning) {
    const std::string text = "[[account]]\nname = \"lab\"\napig_endpoint = \"http://127.0.0.1:8080\"\n"
                             "secmaster_endpoint = \"https://s.example\"\n[account.auth]\ntoken_env = \"T\"\n";
    const fs::path file = write("lab.toml", text);
    auto c = cfg::load_config(file);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->accounts[0].apig_endpoint.port, 8080);
    ASSERT_EQ(c->warnings.size(), 1U);
    EXPECT_EQ(c->warnings[0], fmt::format("{}:3: account[0].apig_endpoint: plain http:// — traffic and token are "
                                          "not encrypted",
                                          file.string()));
}

struct bad_case {
    std::string name;
    std::string toml;
    std::string at;    ///< a snippet of the offending line in `toml`
    std::string key;
    std::string what;  ///< a substring of the explanation
};

std::vector<bad_case> bad_cases() {
    return {
        {"WrongType", "[sync]\npage_size = \"x\"\n" + account(), "page_size", "sync.page_size",
         "expected integer, got string"},
        {"UnknownKeyWithSuggestion", "[sync]\npagesize = 5\n" + account(), "pagesize", "sync.pagesize",
         "unknown key; did you mean \"page_size\"?"},
        {"UnknownKeyWithoutSuggestion", "[sync]\nflavour = 5\n" + account(), "flavour", "sync.flavour",
         "expected one of: interval, page_size, concurrency, timeout"},
        {"UnknownTableWithSuggestion", "[[accounts]]\nname = \"x\"\n", "[[accounts]]", "accounts",
         "did you mean \"account\"?"},
        {"UnknownAuthKey", account("prod", "", "token_env = \"T\"\ntokn_file = \"f\""), "tokn_file",
         "account[0].auth.tokn_file", "did you mean \"token_file\"?"},
        {"MissingEndpoint",
         "[[account]]\nname = \"prod\"\napig_endpoint = \"https://a.example\"\n[account.auth]\ntoken_env = \"T\"\n",
         "[[account]]", "account[0].secmaster_endpoint", "required key is missing"},
        {"MissingName", "\n[[account]]\napig_endpoint = \"https://a\"\nsecmaster_endpoint = \"https://b\"\n"
                        "[account.auth]\ntoken_env = \"T\"\n",
         "[[account]]", "account[0].name", "required key is missing"},
        {"PageSizeZero", "[sync]\npage_size = 0\n" + account(), "page_size", "sync.page_size",
         "must be between 1 and 500, got 0"},
        {"PageSize501", "[sync]\npage_size = 501\n" + account(), "page_size", "sync.page_size",
         "must be between 1 and 500, got 501"},
        {"Concurrency65", "[sync]\nconcurrency = 65\n" + account(), "concurrency", "sync.concurrency",
         "must be between 1 and 64, got 65"},
        {"DuplicateAccountNames",
         account("prod") + "[[account]]\nname = 'prod'\napig_endpoint = \"https://a\"\n"
                           "secmaster_endpoint = \"https://b\"\n[account.auth]\ntoken_env = \"T\"\n",
         "'prod'", "account[1].name", "duplicate account name \"prod\" (also account[0], line 2)"},
        {"BadAccountName", account("prod env"), "prod env", "account[0].name", "not a valid account name"},
        {"EndpointScheme",
         "[[account]]\nname = \"p\"\napig_endpoint = \"ftp://x\"\nsecmaster_endpoint = \"https://b\"\n"
         "[account.auth]\ntoken_env = \"T\"\n",
         "ftp", "account[0].apig_endpoint", "scheme \"ftp\" is not supported"},
        {"EndpointUserinfo",
         "[[account]]\nname = \"p\"\napig_endpoint = \"https://u:pw@a.example\"\nsecmaster_endpoint = "
         "\"https://b\"\n[account.auth]\ntoken_env = \"T\"\n",
         "u:pw@", "account[0].apig_endpoint", "user info (user@) is not allowed"},
        {"EndpointQuery",
         "[[account]]\nname = \"p\"\napig_endpoint = \"https://a\"\nsecmaster_endpoint = "
         "\"https://b/x?y=1\"\n[account.auth]\ntoken_env = \"T\"\n",
         "?y=1", "account[0].secmaster_endpoint", "a query (?...) is not allowed"},
        {"BadDuration", "[sync]\ninterval = \"15x\"\n" + account(), "15x", "sync.interval",
         "invalid duration \"15x\": unknown unit \"x\""},
        {"IntervalTooShort", "[sync]\ninterval = \"5s\"\n" + account(), "5s", "sync.interval",
         "must be at least 10s, got 5s"},
        {"TimeoutTooLong", "[sync]\ntimeout = \"20m\"\n" + account(), "20m", "sync.timeout",
         "must be between 100ms and 10m, got 20m"},
        {"NegativeSeconds", "[sync]\ntimeout = -1\n" + account(), "-1", "sync.timeout", "must not be negative"},
        {"DurationWrongType", "[sync]\ninterval = 1.5\n" + account(), "1.5", "sync.interval",
         "got floating-point number"},
        {"BadLanguage", account("prod", "language = \"fr\"\n"), "fr", "account[0].language",
         "unknown language \"fr\"; expected \"en-us\" or \"zh-cn\""},
        {"ZeroAccounts", "[sync]\npage_size = 5\n", "[sync]", "account", "at least one [[account]] table"},
        {"EmptyAccountArray", "\naccount = []\n", "account = []", "account", "at least one [[account]] table"},
        {"AccountIsATable", "[account]\nname = \"x\"\n", "[account]", "account",
         "expected array of tables ([[account]]), got table"},
        {"MissingAuth",
         "[[account]]\nname = \"p\"\napig_endpoint = \"https://a\"\nsecmaster_endpoint = \"https://b\"\n",
         "[[account]]", "account[0].auth", "required table [account.auth] is missing"},
        {"NoTokenSource", account("prod", "", "type = \"token\""), "[account.auth]", "account[0].auth.token",
         "missing token source; give exactly one of token_env, token_file, token_credential"},
        {"TwoTokenSources", account("prod", "", "token_env = \"T\"\ntoken_file = \"/t\""), "token_file",
         "account[0].auth.token_file", "conflicts with token_env (line 6)"},
        {"UnknownAuthType", account("prod", "", "type = \"kerberos\"\ntoken_env = \"T\""), "kerberos",
         "account[0].auth.type", "unknown auth type \"kerberos\"; valid types: \"token\", \"password\", \"aksk\""},
        {"KeyOfAnotherType", account("prod", "", "type = \"aksk\"\nak_env = \"A\"\nsk_env = \"S\"\ntoken_env = \"T\""),
         "token_env", "account[0].auth.token_env", "only used with type = \"token\" (this account has type = \"aksk\")"},
        {"PasswordWithoutUser",
         account("prod", "", "type = \"password\"\niam_endpoint = \"https://iam.example.com\"\ndomain = \"d\"\n"
                             "project = \"cn-north-4\"\npassword_env = \"P\""),
         "[account.auth]", "account[0].auth.user", "required key is missing"},
        {"PasswordWithTwoScopes",
         account("prod", "", "type = \"password\"\niam_endpoint = \"https://iam.example.com\"\nuser = \"u\"\n"
                             "domain = \"d\"\nproject = \"cn-north-4\"\nproject_id = \"abc\"\npassword_env = \"P\""),
         "[account.auth]", "account[0].auth.project", "give exactly one of project"},
        {"AkskWithoutSk", account("prod", "", "type = \"aksk\"\nak_env = \"A\""), "[account.auth]",
         "account[0].auth.sk", "missing sk source; give exactly one of sk_env, sk_file, sk_credential"},
        {"NegativeRate", "[sync]\nrate_limit = -1\n" + account(), "rate_limit", "sync.rate_limit",
         "must be between 0 and 10000"},
        {"HttpsProxy", "[sync]\nproxy = \"https://proxy:3128\"\n" + account(), "proxy", "sync.proxy",
         "is not an http://host:port proxy address"},
        {"CredentialWithSlash", account("prod", "", "token_credential = \"../x\""), "../x",
         "account[0].auth.token_credential", "is not a credential name"},
        {"EmptyDatabase", "[storage]\ndatabase = \"\"\n" + account(), "database", "storage.database",
         "must not be empty"},
        {"MissingCaFile", "[tls]\nca_file = \"nope.pem\"\n" + account(), "nope.pem", "tls.ca_file",
         "nope.pem: No such file or directory"},
        {"SectionOfWrongType", "sync = 5\n" + account(), "sync = 5", "sync", "expected table, got integer"},
        {"JitterOverHalfInterval", "[sync]\ninterval = \"10m\"\njitter = \"6m\"\n" + account(), "6m", "sync.jitter",
         "must be between 0s and 5m, got 6m"},
        {"GraceTooShort", "[daemon]\ngrace = \"10ms\"\n" + account(), "10ms", "daemon.grace",
         "must be between 100ms and 1h, got 10ms"},
        {"UnknownDaemonKey", "[daemon]\ngrase = 5\n" + account(), "grase", "daemon.grase", "did you mean \"grace\"?"},
        {"BadLogLevel", "[daemon]\nlog_level = \"verbose\"\n" + account(), "verbose", "daemon.log_level",
         "unknown level \"verbose\"; expected \"debug\", \"info\", \"warn\" or \"error\""},
        {"BadLogFormat", "[daemon]\nlog_format = \"xml\"\n" + account(), "xml", "daemon.log_format",
         "unknown format \"xml\"; expected \"text\" or \"json\""},
        {"MetricsListenWithoutPort", "[metrics]\nlisten = \"127.0.0.1\"\n" + account(), "listen", "metrics.listen",
         "has no port"},
        {"MetricsListenHostName", "[metrics]\nlisten = \"localhost:9469\"\n" + account(), "listen", "metrics.listen",
         "\"localhost\" is not an IPv4 address"},
        {"MetricsListenBadPort", "[metrics]\nlisten = \"127.0.0.1:70000\"\n" + account(), "listen", "metrics.listen",
         "invalid port \"70000\""},
        {"MetricsListenBadIpv6", "[metrics]\nlisten = \"[::g]:9469\"\n" + account(), "listen", "metrics.listen",
         "is not an IPv6 address"},
        {"AlertsUnknownKey", account() + "[alerts]\nexpiring_day = [3]\n", "expiring_day", "alerts.expiring_day",
         "did you mean \"expiring_days\"?"},
        {"AlertsBadThreshold", account() + "[alerts]\nexpiring_days = [30, 0]\n", "expiring_days",
         "alerts.expiring_days", "between 1 and 3650"},
        {"AlertsBadSeverity", account() + "[alerts.severity]\nexpired = \"loud\"\n", "loud",
         "alerts.severity.expired", "unknown severity \"loud\""},
        {"AlertsUnknownKind", account() + "[alerts]\ndisabled_kinds = [\"expirng\"]\n", "disabled_kinds",
         "alerts.disabled_kinds", "unknown alert kind \"expirng\""},
        {"AlertsUnknownAccount", account() + "[alerts.account.staging]\nforecast_days = 3\n", "[alerts.account.staging]",
         "alerts.account.staging", "no [[account]] is named \"staging\""},
        {"AlertsPercentRange", account() + "[alerts.source.purchased_groups]\nquota_low_percent = 120\n",
         "quota_low_percent", "alerts.source.purchased_groups.quota_low_percent", "between 0 and 100"},
        {"SinkUnknownType", account() + "[[alerts.sink]]\ntype = \"pager\"\n", "pager", "alerts.sink[0].type",
         "unknown sink type \"pager\""},
        {"SinkKeyOfAnotherType", account() + "[[alerts.sink]]\ntype = \"log\"\nargv = [\"x\"]\n", "argv",
         "alerts.sink[0].argv", "not used by a sink of type \"log\""},
        {"SinkJsonlWithoutPath", account() + "\n[[alerts.sink]]\ntype = \"jsonl\"\n", "[[alerts.sink]]",
         "alerts.sink[0].path", "required key is missing"},
        {"SinkExecEmptyArgv", account() + "[[alerts.sink]]\ntype = \"exec\"\nargv = []\n", "argv",
         "alerts.sink[0].argv", "must name a program"},
        {"SinkPassEnvOfASecret",
         account() + "[[alerts.sink]]\ntype = \"exec\"\nargv = [\"x\"]\npass_env = [\"TZ\", \"SUBSYNC_TOKEN\"]\n",
         "pass_env", "alerts.sink[0].pass_env",
         "SUBSYNC_TOKEN holds a secret (account[0].auth.token_env); a hook never gets it"},
        {"SinkPassEnvOfAHookSecret",
         account() + "[[alerts.sink]]\ntype = \"webhook\"\nurl_env = \"HOOK_URL\"\n[[alerts.sink]]\ntype = \"exec\"\n"
                     "argv = [\"x\"]\npass_env = [\"HOOK_URL\"]\n",
         "pass_env", "alerts.sink[1].pass_env", "HOOK_URL holds a secret (alerts.sink[0].url_env)"},
        {"SinkPassEnvBadName", account() + "[[alerts.sink]]\ntype = \"exec\"\nargv = [\"x\"]\npass_env = [\"A=B\"]\n",
         "pass_env", "alerts.sink[0].pass_env", "\"A=B\" is not a variable name"},
        {"SinkEnvNotAString", account() + "[[alerts.sink]]\ntype = \"exec\"\nargv = [\"x\"]\n[alerts.sink.env]\nN = 1\n",
         "N = 1", "alerts.sink[0].env.N", "expected string, got integer"},
        {"SinkEnvOnWebhook", account() + "[[alerts.sink]]\ntype = \"webhook\"\nurl = \"https://h/x\"\npass_env = []\n",
         "pass_env", "alerts.sink[0].pass_env", "not used by a sink of type \"webhook\""},
        {"SinkUrlAndUrlEnv",
         account() + "[[alerts.sink]]\ntype = \"webhook\"\nurl = \"https://h/x\"\nurl_env = \"HOOK_URL\"\n", "url = ",
         "alerts.sink[0].url", "conflicts with url_env/url_file/url_credential"},
        {"SinkWithoutUrl", account() + "\n[[alerts.sink]]\ntype = \"alertmanager\"\n", "[[alerts.sink]]",
         "alerts.sink[0].url", "required key is missing; give url, or url_env, url_file or url_credential"},
        {"SinkUrlFragment", account() + "[[alerts.sink]]\ntype = \"webhook\"\nurl = \"https://h/T0PSECRET#x\"\n",
         "url = ", "alerts.sink[0].url", "invalid URL: a fragment (#...) is not allowed"},
        {"SinkDuplicateName", account() + "[[alerts.sink]]\ntype = \"log\"\n[[alerts.sink]]  # again\ntype = \"log\"\n",
         "# again", "alerts.sink[1].name",
         "duplicate sink name \"log\""},
        {"SilenceWithoutUntil", account() + "[[alerts.silence]]\nkind = \"expired\"\n", "[[alerts.silence]]",
         "alerts.silence[0].until", "required key is missing"},
        {"SilenceUntilWithoutOffset", account() + "[[alerts.silence]]\nkind = \"expired\"\nuntil = 2026-12-01T00:00:00\n",
         "until", "alerts.silence[0].until", "date-time with offset"},
    };
}

TEST_F(ConfigFile, ReadsAlertKeysWithAccountBeatingSourceBeatingGlobal) {
    const std::string text = account("prod") + account("dev") + R"(
[alerts]
expiring_days = [7, 30]
quota_low_absolute = 1000
quota_low_percent = 5
forecast_days = 10
forecast_window = "3d"
repeat_interval = "12h"
max_attempts = 4
disabled_kinds = ["resource_status"]
[alerts.severity]
expiring = "critical"
[alerts.source.purchased_groups]
forecast_days = 20
quota_low_percent = 15
[alerts.account.dev]
quota_low_percent = 50
[[alerts.silence]]
account = "dev"
kind = "expiring"
until = 2026-12-01T06:00:00+02:00
comment = "renewal ordered"
[[alerts.sink]]
type = "jsonl"
path = "alerts.jsonl"
kinds = ["expired", "expiring"]
min_severity = "warning"
[[alerts.sink]]
name = "ops"
type = "webhook"
url = "https://hooks.example.com/subsync"
headers = { "X-Team" = "platform" }
hmac_secret_env = "HOOK_SECRET"
accounts = ["prod"]
[[alerts.sink]]
type = "exec"
argv = ["/usr/local/bin/page", "--quiet"]
timeout = "5s"
pass_env = ["PAGER_ROUTE"]
[alerts.sink.env]
PAGER_TEAM = "platform"
[[alerts.sink]]
name = "slack"
type = "webhook"
url = "https://hooks.example.com:8443/services/T0/B0/XyZ?thread=1&x=%2F"
[[alerts.sink]]
name = "am"
type = "alertmanager"
url_file = "am.url"
)";
    const fs::path file = write("alerts.toml", text);
    auto c = cfg::load_config(file);
    ASSERT_TRUE(c) << c.error().message;
    const auto& a = c->alerts;
    EXPECT_EQ(a.rules.expiring_days, (std::vector<int>{30, 7}));  // sorted, tightest last
    EXPECT_EQ(a.rules.quota_low_absolute, 1000);
    EXPECT_EQ(a.repeat_interval, 12h);
    EXPECT_EQ(a.max_attempts, 4);
    EXPECT_FALSE(a.rules.on(cfg::alert_kind::resource_status));
    EXPECT_TRUE(a.rules.on(cfg::alert_kind::expired));
    EXPECT_EQ(a.rules.severity_of(cfg::alert_kind::expiring), cfg::severity::critical);
    EXPECT_EQ(a.rules.forecast_window, 72h);

    const auto& prod_groups = a.rules_for("prod", "purchased_groups");
    EXPECT_EQ(prod_groups.forecast_days, 20);
    EXPECT_EQ(prod_groups.quota_low_percent, 15);
    EXPECT_EQ(prod_groups.severity_of(cfg::alert_kind::expiring), cfg::severity::critical);
    EXPECT_EQ(a.rules_for("prod", "subscription_resources").forecast_days, 10);
    const auto& dev_groups = a.rules_for("dev", "purchased_groups");
    EXPECT_EQ(dev_groups.quota_low_percent, 50) << "account beats source";
    EXPECT_EQ(dev_groups.forecast_days, 20) << "the source's own keys still apply";
    EXPECT_EQ(a.rules_for("dev", "subscription_resources").quota_low_percent, 50);

    ASSERT_EQ(a.silences.size(), 1u);
    EXPECT_EQ(a.silences[0].until, 1'796'097'600'000);  // 2026-12-01T04:00:00Z
    ASSERT_EQ(a.sinks.size(), 5u);
    EXPECT_EQ(a.sinks[0].name, "jsonl");
    EXPECT_EQ(a.sinks[0].path, dir_ / "alerts.jsonl");
    EXPECT_EQ(a.sinks[0].filter.min_severity, cfg::severity::warning);
    EXPECT_EQ(a.sinks[0].filter.kinds.size(), 2u);
    EXPECT_EQ(a.sinks[1].name, "ops");
    EXPECT_EQ(a.sinks[1].url.host, "hooks.example.com");
    EXPECT_EQ(a.sinks[1].headers.at(0), (std::pair<std::string, std::string>{"X-Team", "platform"}));
    EXPECT_EQ(a.sinks[1].hmac_secret.env, "HOOK_SECRET");
    EXPECT_EQ(a.sinks[1].filter.accounts, std::vector<std::string>{"prod"});
    EXPECT_EQ(a.sinks[2].argv, (std::vector<std::string>{"/usr/local/bin/page", "--quiet"}));
    EXPECT_EQ(a.sinks[2].timeout, 5s);
    EXPECT_EQ(a.sinks[2].pass_env, std::vector<std::string>{"PAGER_ROUTE"});
    EXPECT_EQ(a.sinks[2].env, (std::vector<std::pair<std::string, std::string>>{{"PAGER_TEAM", "platform"}}));
    EXPECT_EQ(a.sinks[3].url.base_path, "/services/T0/B0/XyZ");
    EXPECT_EQ(a.sinks[3].url.query, "thread=1&x=%2F");
    EXPECT_EQ(a.sinks[3].url.text, "https://hooks.example.com:8443/…") << "what messages show";
    EXPECT_EQ(a.sinks[4].url_secret.file, (dir_ / "am.url").string());
}

TEST_F(ConfigFile, SinkUrlErrorsNeverRepeatTheUrl) {
    // A Slack-style URL carries its secret in the path: a typo must not print it to the journal.
    const fs::path file = write("hook.toml", account() + "[[alerts.sink]]\ntype = \"webhook\"\n"
                                                          "url = \"https://hooks.example.com/T0PSECRET/x y\"\n");
    auto c = cfg::load_config(file);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("alerts.sink[0].url: invalid URL: a character in the path is not allowed"),
              std::string::npos)
        << c.error().message;
    EXPECT_EQ(c.error().message.find("T0PSECRET"), std::string::npos) << c.error().message;
}

TEST_F(ConfigFile, RejectsBadValuesNamingFileLineAndKey) {
    for (const bad_case& c : bad_cases()) {
        SCOPED_TRACE(c.name);
        const fs::path file = write(c.name + ".toml", c.toml);
        auto result = cfg::load_config(file);
        ASSERT_FALSE(result) << c.toml;
        const std::string& message = result.error().message;
        const std::string where = fmt::format("{}:{}: {}: ", file.string(), line_with(c.toml, c.at), c.key);
        EXPECT_NE(message.find(where), std::string::npos) << message << "\nexpected: " << where;
        EXPECT_NE(message.find(c.what), std::string::npos) << message << "\nexpected: " << c.what;
    }
}

TEST_F(ConfigFile, ReportsEveryErrorSortedByLine) {
    const std::string text = "[sync]\npage_size = 0\nconcurrency = \"many\"\n" +
                             account("prod", "language = \"fr\"\n") + "[tls]\ncafile = \"x\"\n";
    auto result = cfg::load_config(write("many.toml", text));
    ASSERT_FALSE(result);
    const std::string& m = result.error().message;
    EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), 3) << m;
    const std::size_t a = m.find("sync.page_size");
    const std::size_t b = m.find("sync.concurrency");
    const std::size_t c = m.find("account[0].language");
    const std::size_t d = m.find("tls.cafile: unknown key; did you mean \"ca_file\"?");
    ASSERT_NE(d, std::string::npos) << m;
    EXPECT_LT(a, b);
    EXPECT_LT(b, c);
    EXPECT_LT(c, d);
}

TEST_F(ConfigFile, SyntaxErrorNamesFileAndLine) {
    const fs::path file = write("syntax.toml", "[sync]\npage_size = \n");
    auto result = cfg::load_config(file);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message.rfind(fmt::format("{}:2: syntax error: ", file.string()), 0), 0U)
        << result.error().message;
}

TEST_F(ConfigFile, UnreadableFileNamesPathAndErrno) {
    const fs::path file = dir_ / "missing.toml";
    auto result = cfg::load_config(file);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, fmt::format("cannot read {}: No such file or directory", file.string()));
    EXPECT_THROW(
        {
            try {
                (void)result.value();
            } catch (const std::runtime_error& e) {
                EXPECT_EQ(std::string(e.what()), result.error().message);
                throw;
            }
        },
        std::runtime_error);
}

TEST_F(ConfigFile, RelativeTokenFileResolvesAgainstConfigDirectory) {
    write("conf/token", "s3cr3t-value\n");
    const fs::path file = write("conf/subsync.toml", account("prod", "", "token_file = \"token\""));
    auto c = cfg::load_config(file);
    ASSERT_TRUE(c) << c.error().message;
    auto s = cfg::resolve_secret(c->accounts[0].auth.token, "account[0].auth.token", fake_environment({}));
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->reveal(), "s3cr3t-value");
}

TEST_F(ConfigFile, ReadsExportsKeys) {
    auto defaults = cfg::load_config(write("defaults.toml", account()));
    ASSERT_TRUE(defaults) << defaults.error().message;
    EXPECT_FALSE(defaults->exports.csv_bom);
    EXPECT_FALSE(defaults->exports.csv_crlf);
    EXPECT_TRUE(defaults->exports.neutralise_formulas);
    EXPECT_EQ(defaults->exports.keep_generations, 5);
    EXPECT_EQ(defaults->exports.formats, (std::vector<std::string>{"csv", "json"}));
    EXPECT_TRUE(defaults->exports.report);

    auto c = cfg::load_config(write("exports.toml", "[exports]\ncsv_bom = true\ncsv_crlf = true\n"
                                                    "neutralise_formulas = false\nkeep_generations = 12\n"
                                                    "formats = [\"jsonl\", \"csv\"]\nreport = false\n" +
                                                        account()));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(c->exports.csv_bom);
    EXPECT_TRUE(c->exports.csv_crlf);
    EXPECT_FALSE(c->exports.neutralise_formulas);
    EXPECT_EQ(c->exports.keep_generations, 12);
    EXPECT_EQ(c->exports.formats, (std::vector<std::string>{"jsonl", "csv"}));
    EXPECT_FALSE(c->exports.report);
}

TEST_F(ConfigFile, RejectsBadExportsKeysNamingFileLineAndKey) {
    const std::vector<bad_case> cases = {
        {"BomNotBoolean", "[exports]\ncsv_bom = \"yes\"\n" + account(), "csv_bom", "exports.csv_bom",
         "expected boolean (true or false), got string"},
        {"UnknownKeyWithSuggestion", "[exports]\nkeep_generation = 3\n" + account(), "keep_generation",
         "exports.keep_generation", "did you mean \"keep_generations\"?"},
        {"KeepZero", "[exports]\nkeep_generations = 0\n" + account(), "keep_generations",
         "exports.keep_generations", "must be between 1 and 1000, got 0"},
        {"UnknownFormat", "[exports]\nformats = [\"csv\", \"xlsx\"]\n" + account(), "xlsx", "exports.formats",
         "unknown format \"xlsx\""},
        {"RepeatedFormat", "[exports]\nformats = [\"csv\", \"csv\"]\n" + account(), "formats", "exports.formats",
         "\"csv\" is listed twice"},
        {"NoFormat", "[exports]\nformats = []\n" + account(), "formats", "exports.formats", "at least one"},
        {"FormatsNotArray", "[exports]\nformats = \"csv\"\n" + account(), "formats", "exports.formats",
         "expected array of strings"},
    };
    for (const bad_case& c : cases) {
        SCOPED_TRACE(c.name);
        const fs::path file = write(c.name + ".toml", c.toml);
        auto result = cfg::load_config(file);
        ASSERT_FALSE(result) << c.toml;
        const std::string& message = result.error().message;
        const std::string where = fmt::format("{}:{}: {}: ", file.string(), line_with(c.toml, c.at), c.key);
        EXPECT_NE(message.find(where), std::string::npos) << message << "\nexpected: " << where;
        EXPECT_NE(message.find(c.what), std::string::npos) << message << "\nexpected: " << c.what;
    }
}

TEST_F(ConfigFile, ReadsDestinationKeys) {
    const std::string dest = "[[destination]]\ntype = \"postgresql\"\ninstance = \"site-1\"\n"
                             "dsn_credential = \"subsync-pg\"\n";
    auto defaults = cfg::load_config(write("dest-defaults.toml", account() + dest));
    ASSERT_TRUE(defaults) << defaults.error().message;
    ASSERT_EQ(defaults->destinations.size(), 1u);
    const auto& d = defaults->destinations[0];
    EXPECT_EQ(d.name, "postgresql");
    EXPECT_EQ(d.instance, "site-1");
    EXPECT_EQ(d.dsn.credential, "subsync-pg");
    EXPECT_EQ(d.schema, "subsync");
    EXPECT_EQ(d.tables, (std::vector<std::string>{"purchased_groups", "subscription_resources", "changes",
                                                  "sync_runs", "alerts"}));
    EXPECT_EQ(d.sslmode, "");
    EXPECT_EQ(d.connect_timeout, 10s);
    EXPECT_EQ(d.statement_timeout, 60s);

    auto c = cfg::load_config(write("dest.toml", account() +
                                                     "[[destination]]\ntype = \"postgresql\"\nname = \"cmdb\"\n"
                                                     "instance = \"site-2\"\ndsn_env = \"PG_DSN\"\nschema = \"inv\"\n"
                                                     "tables = [\"changes\", \"alerts\"]\nsslmode = \"verify-full\"\n"
                                                     "connect_timeout = \"3s\"\nstatement_timeout = \"20s\"\n"
                                                     "retry_interval = \"1m\"\nbatch_rows = 50\n"));
    ASSERT_TRUE(c) << c.error().message;
    const auto& e = c->destinations.at(0);
    EXPECT_EQ(e.name, "cmdb");
    EXPECT_EQ(e.dsn.env, "PG_DSN");
    EXPECT_EQ(e.schema, "inv");
    EXPECT_EQ(e.tables, (std::vector<std::string>{"changes", "alerts"}));
    EXPECT_EQ(e.sslmode, "verify-full");
    EXPECT_EQ(e.connect_timeout, 3s);
    EXPECT_EQ(e.statement_timeout, 20s);
    EXPECT_EQ(e.retry_interval, 60s);
    EXPECT_EQ(e.batch_rows, 50);
    // The DSN's variable is a secret's: never passed to an exec hook.
    EXPECT_EQ(cfg::secret_env_names(*c), (std::vector<std::string>{"PG_DSN", "SUBSYNC_TOKEN"}));
}

TEST_F(ConfigFile, RejectsBadDestinationKeysNamingFileLineAndKey) {
    const std::string head = account() + "[[destination]]\ntype = \"postgresql\"\n";
    const std::vector<bad_case> cases = {
        {"NoInstance", head + "dsn_env = \"X\"\n", "[[destination]]", "destination[0].instance",
         "required key is missing"},
        {"BadInstance", head + "instance = \"a b\"\ndsn_env = \"X\"\n", "instance", "destination[0].instance",
         "not a valid instance name"},
        {"NoDsn", head + "instance = \"i\"\n", "[[destination]]", "destination[0].dsn",
         "give exactly one of dsn_env, dsn_file, dsn_credential"},
        {"TwoDsns", head + "instance = \"i\"\ndsn_env = \"X\"\ndsn_credential = \"c\"\n", "dsn_credential",
         "destination[0].dsn_credential", "conflicts with dsn_env"},
        {"UnknownType", account() + "[[destination]]\ntype = \"mysql\"\ninstance = \"i\"\ndsn_env = \"X\"\n",
         "mysql", "destination[0].type", "unknown type \"mysql\""},
        {"UnknownTable", head + "instance = \"i\"\ndsn_env = \"X\"\ntables = [\"quota_samples\"]\n", "tables",
         "destination[0].tables",
         "unknown table \"quota_samples\"; expected purchased_groups, subscription_resources, changes, sync_runs or "
         "alerts"},
        {"BadSchema", head + "instance = \"i\"\ndsn_env = \"X\"\nschema = \"Bad-Name\"\n", "schema",
         "destination[0].schema", "not a valid schema name"},
        {"BadSslmode", head + "instance = \"i\"\ndsn_env = \"X\"\nsslmode = \"on\"\n", "sslmode",
         "destination[0].sslmode", "unknown sslmode \"on\""},
        {"UnknownKey", head + "instance = \"i\"\ndsn_env = \"X\"\ndsn = \"host=x\"\n", "dsn =",
         "destination[0].dsn", "unknown key"},
        {"DuplicateName", head + "instance = \"i\"\ndsn_env = \"X\"\n[[destination]]\ntype = \"postgresql\"\n"
                                 "instance = \"j\"\ndsn_env = \"Y\"\n",
         "instance = \"j\"", "destination[1].name", "duplicate destination name \"postgresql\""},
    };
    for (const bad_case& c : cases) {
        SCOPED_TRACE(c.name);
        const fs::path file = write(c.name + ".toml", c.toml);
        auto result = cfg::load_config(file);
        ASSERT_FALSE(result) << c.toml;
        const std::string& message = result.error().message;
        EXPECT_NE(message.find(c.key), std::string::npos) << message << "\nexpected key: " << c.key;
        EXPECT_NE(message.find(c.what), std::string::npos) << message << "\nexpected: " << c.what;
    }
}

}  // namespace
