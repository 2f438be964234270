// The config's building blocks: endpoint URLs, durations, secrets and the environment.

#include "support/config_fixtures.hpp"

#include <subsync/config/credential_search.hpp>
#include <subsync/config/load.hpp>
#include <subsync/config/secret_source.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include <tuple>

namespace {

namespace fs = std::filesystem;
namespace cfg = subsync::config;
using namespace std::chrono_literals;
using subsync::test::TempDirTest;
using subsync::test::fake_environment;

struct endpoint_case {
    std::string name;
    std::string url;
    std::string scheme, host;
    std::uint16_t port;
    std::string base_path;
};

TEST(ParseEndpoint, AcceptsHttpsAndHttpForms) {
    const std::vector<endpoint_case> cases = {
        {"DefaultHttpsPort", "https://apig.example.com", "https", "apig.example.com", 443, ""},
        {"DefaultHttpPort", "http://localhost", "http", "localhost", 80, ""},
        {"ExplicitPort", "https://a.example:8443", "https", "a.example", 8443, ""},
        {"BasePathTrailingSlash", "https://a.example/api/v1/", "https", "a.example", 443, "/api/v1"},
        {"RootSlash", "https://a.example/", "https", "a.example", 443, ""},
        {"Ipv4", "https://192.168.1.10:9000/x", "https", "192.168.1.10", 9000, "/x"},
        {"Ipv6", "https://[::1]:8443", "https", "::1", 8443, ""},
        {"UpperCase", "HTTPS://APIG.Example.COM", "https", "apig.example.com", 443, ""},
        {"PercentEncodedPath", "https://a.example/a%20b", "https", "a.example", 443, "/a%20b"},
    };
    for (const endpoint_case& c : cases) {
        SCOPED_TRACE(c.name);
        auto ep = cfg::parse_endpoint(c.url);
        ASSERT_TRUE(ep) << ep.error();
        EXPECT_EQ(ep->scheme, c.scheme);
        EXPECT_EQ(ep->host, c.host);
        EXPECT_EQ(ep->port, c.port);
        EXPECT_EQ(ep->base_path, c.base_path);
        EXPECT_EQ(ep->text, c.url);
    }
    EXPECT_TRUE(cfg::parse_endpoint("https://a.example:443")->explicit_port);
    EXPECT_FALSE(cfg::parse_endpoint("https://a.example")->explicit_port);
}

TEST(ParseEndpoint, RejectsWithAReason) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"apig.example.com", "missing scheme"},
        {"ftp://a.example", "scheme \"ftp\" is not supported"},
        {"https://", "empty host"},
        {"https://:8443", "empty host"},
        {"https:///path", "empty host"},
        {"https://a.example:", "empty port"},
        {"https://a.example:0", "invalid port \"0\""},
        {"https://a.example:65536", "invalid port \"65536\""},
        {"https://a.example:x1", "invalid port \"x1\""},
        {"https://a.example/?q=1", "a query (?...) is not allowed"},
        {"https://a.example/#top", "a fragment (#...) is not allowed"},
        {"https://user@a.example", "user info (user@) is not allowed"},
        {"https://[::1", "missing ']'"},
        {"https://[zz::1]", "not a valid IPv6 address"},
        {"https://::1", "must be in brackets"},
        {"https://999.1.1.1", "not a valid IPv4 address"},
        {"https://a..example", "invalid host"},
        {"https://-a.example", "invalid host"},
        {"https://a_b.example", "invalid host"},
        {"https://a.example/a b", "character ' ' is not allowed in the path"},
        {"https://a.example/%zz", "'%' in the path must be followed by two hex digits"},
    };
    for (const auto& [url, why] : cases) {
        SCOPED_TRACE(url);
        auto ep = cfg::parse_endpoint(url);
        ASSERT_FALSE(ep);
        EXPECT_NE(ep.error().find(fmt::format("invalid endpoint \"{}\": ", url)), std::string::npos) << ep.error();
        EXPECT_NE(ep.error().find(why), std::string::npos) << ep.error();
    }
}

TEST(ParseDuration, AcceptsUnitsAndCombinations) {
    const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
        {"500ms", 500ms}, {"30s", 30s},   {"15m", 15min},        {"1h", 1h},
        {"2d", 48h},      {"1h30m", 90min}, {"1m30s500ms", 90500ms}, {"0s", 0ms},
    };
    for (const auto& [text, expected] : cases) {
        SCOPED_TRACE(text);
        auto d = cfg::parse_duration(text);
        ASSERT_TRUE(d) << d.error();
        EXPECT_EQ(*d, expected);
        EXPECT_EQ(*cfg::parse_duration(cfg::format_duration(expected)), expected);
    }
    EXPECT_EQ(cfg::format_duration(90min), "1h30m");
    EXPECT_EQ(cfg::format_duration(100ms), "100ms");
}

TEST(ParseDuration, RejectsWithAReason) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "empty"},
        {"30", "missing unit after 30"},
        {"15x", "unknown unit \"x\""},
        {"1.5h", "fractions are not supported"},
        {"-5s", "expected a number"},
        {" 5s", "expected a number"},
        {"30m1h", "largest first"},
        {"1s1s", "largest first"},
        {"99999999999999999999s", "too large"},
        {"9999999999999999d", "too large"},
    };
    for (const auto& [text, why] : cases) {
        SCOPED_TRACE(text);
        auto d = cfg::parse_duration(text);
        ASSERT_FALSE(d);
        EXPECT_NE(d.error().find(fmt::format("invalid duration \"{}\": ", text)), std::string::npos) << d.error();
        EXPECT_NE(d.error().find(why), std::string::npos) << d.error();
    }
}

constexpr std::string_view token_value = "tok-9f8e7d6c5b4a";

using ResolveSecret = TempDirTest;

TEST_F(ResolveSecret, ReadsEachSource) {
    write("plain", std::string(token_value));
    write("lf", std::string(token_value) + "\n");
    write("crlf", std::string(token_value) + "\r\n");
    write("creds/api-token", std::string(token_value) + "\n");
    const cfg::environment env = fake_environment({{"SUBSYNC_TOKEN", std::string(token_value)}}, dir_ / "creds");

    const std::vector<std::pair<std::string, cfg::secret_ref>> cases = {
        {"Env", {"SUBSYNC_TOKEN", "", ""}},
        {"FileWithoutNewline", {"", (dir_ / "plain").string(), ""}},
        {"FileWithLf", {"", (dir_ / "lf").string(), ""}},
        {"FileWithCrLf", {"", (dir_ / "crlf").string(), ""}},
        {"Credential", {"", "", "api-token"}},
    };
    for (const auto& [name, ref] : cases) {
        SCOPED_TRACE(name);
        auto s = cfg::resolve_secret(ref, "account[0].auth.token", env);
        ASSERT_TRUE(s) << s.error();
        EXPECT_EQ(s->reveal(), token_value);
    }
}

TEST_F(ResolveSecret, StripsOnlyOneNewlineAndRefusesControlCharacters) {
    // A CR or LF inside a secret would end the HTTP header it is sent in and start another.
    write("two-newlines", std::string(token_value) + "\n\n");
    write("header-injection", std::string(token_value) + "\r\nX-Injected: evil");
    write("header-injection-lf", std::string(token_value) + "\r\nX-Injected: evil\n");
    write("tab", std::string(token_value) + "\tx");
    write("nul", std::string(token_value) + std::string(1, '\0') + "x");
    write("del", std::string(token_value) + "\x7f");
    write("creds/injected", std::string(token_value) + "\nX-Injected: evil\n");
    const cfg::environment env = fake_environment(
        {{"INJECTED", std::string(token_value) + "\r\nX-Injected: evil"}, {"TRAILING_LF", std::string(token_value) + "\n"}},
        dir_ / "creds");
    const auto file_message = [&](const std::string& name) {
        return fmt::format("account[0].auth.token_file: {} contains a control character (CR, LF, TAB, NUL...); a "
                           "secret is one line of printable text",
                           (dir_ / name).string());
    };
    const std::vector<std::tuple<std::string, cfg::secret_ref, std::string>> cases = {
        {"TwoNewlines", {"", (dir_ / "two-newlines").string(), ""}, file_message("two-newlines")},
        {"HeaderInjection", {"", (dir_ / "header-injection").string(), ""}, file_message("header-injection")},
        {"HeaderInjectionWithNewline", {"", (dir_ / "header-injection-lf").string(), ""},
         file_message("header-injection-lf")},
        {"Tab", {"", (dir_ / "tab").string(), ""}, file_message("tab")},
        {"Nul", {"", (dir_ / "nul").string(), ""}, file_message("nul")},
        {"Del", {"", (dir_ / "del").string(), ""}, file_message("del")},
        {"Credential", {"", "", "injected"},
         fmt::format("account[0].auth.token_credential: {} contains a control character (CR, LF, TAB, NUL...); a "
                     "secret is one line of printable text",
                     (dir_ / "creds" / "injected").string())},
        {"Env", {"INJECTED", "", ""},
         "account[0].auth.token_env: environment variable INJECTED contains a control character (CR, LF, TAB, "
         "NUL...); a secret is one line of printable text"},
        {"EnvNewlineIsNotStripped", {"TRAILING_LF", "", ""},
         "account[0].auth.token_env: environment variable TRAILING_LF contains a control character (CR, LF, TAB, "
         "NUL...); a secret is one line of printable text"},
    };
    for (const auto& [name, ref, expected] : cases) {
        SCOPED_TRACE(name);
        auto s = cfg::resolve_secret(ref, "account[0].auth.token", env);
        ASSERT_FALSE(s);
        EXPECT_EQ(s.error(), expected);
        EXPECT_EQ(s.error().find("evil"), std::string::npos);
    }
}

TEST_F(ResolveSecret, FileOthersCanReadIsWarnedAboutByName) {
    write("open", std::string(token_value));
    write("group", std::string(token_value));
    write("private", std::string(token_value));
    fs::permissions(dir_ / "open", fs::perms(0644));
    fs::permissions(dir_ / "group", fs::perms(0640));
    fs::permissions(dir_ / "private", fs::perms(0600));
    std::vector<std::string> warnings;
    cfg::environment env = fake_environment({});
    env.warn = [&](const std::string& w) { warnings.push_back(w); };
    for (const char* name : {"open", "group", "private"}) {
        auto s = cfg::resolve_secret({"", (dir_ / name).string(), ""}, "account[0].auth.token", env);
        ASSERT_TRUE(s) << s.error();
    }
    EXPECT_EQ(warnings,
              (std::vector<std::string>{
                  fmt::format("account[0].auth.token_file: {} is accessible by group or others (mode 0644); chmod "
                              "600 it, or use a systemd credential",
                              (dir_ / "open").string()),
                  fmt::format("account[0].auth.token_file: {} is accessible by group or others (mode 0640); chmod "
                              "600 it, or use a systemd credential",
                              (dir_ / "group").string())}));
}

TEST_F(ResolveSecret, FailuresNameTheSourceNeverTheValue) {
    write("empty", "");
    write("newline-only", "\n");
    write("creds/other", std::string(token_value));
    const fs::path missing = dir_ / "x" / "y";
    // The value sits in other variables and files, so a message that leaked a neighbour would show.
    const cfg::environment env =
        fake_environment({{"EMPTY", ""}, {"OTHER", std::string(token_value)}}, dir_ / "creds");
    const cfg::environment no_creds = fake_environment({{"OTHER", std::string(token_value)}});

    struct failure {
        std::string name;
        cfg::secret_ref ref;
        const cfg::environment* env;
        std::string expected;
    };
    const std::string k = "account[0].auth.token";
    const std::vector<failure> cases = {
        {"EnvUnset", {"SUBSYNC_TOKEN", "", ""}, &env,
         "account[0].auth.token_env: environment variable SUBSYNC_TOKEN is not set"},
        {"EnvEmpty", {"EMPTY", "", ""}, &env, "account[0].auth.token_env: environment variable EMPTY is empty"},
        {"FileMissing", {"", missing.string(), ""}, &env,
         fmt::format("account[0].auth.token_file: cannot read {}: No such file or directory", missing.string())},
        {"FileIsDirectory", {"", dir_.string(), ""}, &env,
         fmt::format("account[0].auth.token_file: cannot read {}: Is a directory", dir_.string())},
        {"FileEmpty", {"", (dir_ / "empty").string(), ""}, &env,
         fmt::format("account[0].auth.token_file: {} is empty", (dir_ / "empty").string())},
        {"FileOnlyNewline", {"", (dir_ / "newline-only").string(), ""}, &env,
         fmt::format("account[0].auth.token_file: {} is empty", (dir_ / "newline-only").string())},
        {"NoCredentialsDirectory", {"", "", "other"}, &no_creds,
         "account[0].auth.token_credential: $CREDENTIALS_DIRECTORY is not set (is the unit missing "
         "LoadCredential=?)"},
        {"CredentialMissing", {"", "", "api-token"}, &env,
         fmt::format("account[0].auth.token_credential: cannot read {}: No such file or directory",
                     (dir_ / "creds" / "api-token").string())},
        {"CredentialEscapes", {"", "", "../empty"}, &env,
         "account[0].auth.token_credential: \"../empty\" is not a credential name (no '/')"},
        {"NoSource", {}, &env,
         "account[0].auth.token: none of account[0].auth.token_env, account[0].auth.token_file, "
         "account[0].auth.token_credential is set"},
        {"TwoSources", {"OTHER", (dir_ / "creds/other").string(), ""}, &env,
         "account[0].auth.token: more than one of account[0].auth.token_env, account[0].auth.token_file, "
         "account[0].auth.token_credential is set"},
    };
    for (const failure& c : cases) {
        SCOPED_TRACE(c.name);
        auto s = cfg::resolve_secret(c.ref, k, *c.env);
        ASSERT_FALSE(s);
        EXPECT_EQ(s.error(), c.expected);
        EXPECT_EQ(s.error().find(token_value), std::string::npos);
    }
}

// check-config outside the unit: where LoadCredential= would read a credential. The search list is
// a value, so these cases stand in for /etc/subsync/credentials and /etc/credstore with temp dirs.
class CredentialSearch : public TempDirTest {};

TEST_F(CredentialSearch, FindsTheFirstLocationServingTheName) {
    const fs::path unit_dir = dir_ / "etc-subsync-credentials";  // LoadCredential=subsync:DIR
    const fs::path etc_store = dir_ / "etc-credstore";
    const fs::path run_store = dir_ / "run-credstore";
    for (const auto& d : {unit_dir, etc_store, run_store}) fs::create_directories(d);
    write(fs::relative(unit_dir / "prod-token", dir_), "a\n");
    write(fs::relative(etc_store / "subsync_prod-token", dir_), "shadowed\n");
    write(fs::relative(etc_store / "subsync_both", dir_), "etc\n");
    write(fs::relative(run_store / "subsync_both", dir_), "run\n");
    write(fs::relative(run_store / "plain", dir_), "p\n");
    write(fs::relative(unit_dir / "x", dir_), "named subsync_x only\n");
    const std::vector<cfg::credential_location> search = {
        {"subsync_", unit_dir, "unit"}, {"", etc_store, "etc"}, {"", run_store, "run"}};

    struct located_case {
        std::string name;
        std::string credential;
        std::optional<fs::path> file;  ///< nullopt: not found
        std::string origin;
    };
    const std::vector<located_case> cases = {
        {"UnitDirectoryDropsThePrefix", "subsync_prod-token", unit_dir / "prod-token", "unit"},
        {"StoreWhenTheUnitDirectoryHasNone", "subsync_both", etc_store / "subsync_both", "etc"},
        {"RunStoreLast", "plain", run_store / "plain", "run"},
        {"PrefixAloneIsNoName", "subsync_", std::nullopt, ""},
        {"FileNameWithoutPrefixIsNotTheUnitsName", "x", std::nullopt, ""},
        {"Nowhere", "subsync_missing", std::nullopt, ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto found = cfg::locate_credential(c.credential, search);
        ASSERT_EQ(found.has_value(), c.file.has_value());
        if (!found) continue;
        EXPECT_EQ(found->file, *c.file);
        EXPECT_EQ(found->origin, c.origin);
        EXPECT_TRUE(found->accessible);
    }
}

TEST_F(CredentialSearch, ARootOnlyDirectoryIsReportedNotSkipped) {
    if (::geteuid() == 0) GTEST_SKIP() << "root may look into any directory";
    const fs::path locked = dir_ / "credentials";
    fs::create_directories(locked);
    write("store/subsync_t", "t\n");
    ASSERT_EQ(::chmod(locked.c_str(), 0), 0);  // as /etc/subsync/credentials (0700 root) is to the subsync user
    const auto found = cfg::locate_credential(
        "subsync_t", {{"subsync_", locked, "unit"}, {"", dir_ / "store", "store"}});
    ::chmod(locked.c_str(), 0700);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->file, locked / "t") << "systemd would read the unit's directory first";
    EXPECT_FALSE(found->accessible);
}

TEST(CredentialSearchDefaults, AreTheUnitsDirectoryThenTheStores) {
    const auto search = cfg::default_credential_search();
    ASSERT_EQ(search.size(), 3u);
    EXPECT_EQ(search[0].prefix, "subsync_");
    EXPECT_EQ(search[0].dir, "/etc/subsync/credentials");
    EXPECT_EQ(search[1].dir, "/etc/credstore");
    EXPECT_EQ(search[2].dir, "/run/credstore");
    EXPECT_EQ(cfg::credentials_dir_location("/tmp/c").dir, "/tmp/c");
    EXPECT_EQ(cfg::credentials_dir_location("/tmp/c").prefix, "");
}

TEST_F(CredentialSearch, ResolveSecretReadsTheFoundFileWithoutCredentialsDirectory) {
    write("found", std::string(token_value) + "\n");
    cfg::environment env = fake_environment({});
    env.credential_file = [&](const std::string& name) -> std::optional<fs::path> {
        if (name == "subsync_prod-token") return dir_ / "found";
        return std::nullopt;
    };
    auto s = cfg::resolve_secret({"", "", "subsync_prod-token"}, "account[0].auth.token", env);
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->reveal(), token_value);
    auto missing = cfg::resolve_secret({"", "", "subsync_other"}, "account[0].auth.token", env);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(),
              "account[0].auth.token_credential: $CREDENTIALS_DIRECTORY is not set and no file for credential "
              "\"subsync_other\" was found where LoadCredential= would read it");
}

TEST(Environment, ProcessReadsTheRealEnvironment) {
    const std::string name = fmt::format("SUBSYNC_CONFIG_TEST_{}", ::getpid());
    ASSERT_EQ(::setenv(name.c_str(), "v", 1), 0);
    const cfg::environment env = cfg::environment::process();
    EXPECT_EQ(env.lookup(name), std::optional<std::string>("v"));
    ASSERT_EQ(::unsetenv(name.c_str()), 0);
    EXPECT_EQ(env.lookup(name), std::nullopt);
}

TEST(Secret, FormatsAsRedacted) {
    EXPECT_EQ(fmt::format("{}", cfg::secret{"x"}), "<redacted>");
    EXPECT_EQ(fmt::format("token={}", cfg::secret{std::string(token_value)}), "token=<redacted>");
}

}  // namespace

// Issue 15 §1: every value a secret held is hidden in text from outside, whole, wherever it
// appears, longest first; short values (which would hide ordinary words) are not registered.
TEST(Secret, RedactHidesEveryHeldValueWhole) {
    const subsync::config::secret token("tok-0123456789-abcdef");
    const subsync::config::secret longer("tok-0123456789-abcdef-and-more");
    subsync::config::remember_secret("abc");  // too short: never registered
    std::string text = R"({"error_msg":"Incorrect token tok-0123456789-abcdef-and-more and tok-0123456789-abcdef","x":"abc"})";
    subsync::config::redact(text);
    EXPECT_EQ(text, R"({"error_msg":"Incorrect token <redacted> and <redacted>","x":"abc"})");
    EXPECT_EQ(subsync::config::redacted("no secret here"), "no secret here");
    EXPECT_EQ(subsync::config::redacted("tok-0123456789-abcdeftok-0123456789-abcdef"), "<redacted><redacted>");
}
