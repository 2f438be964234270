// The command line as a user meets it: exit codes and messages of the real binary.

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

namespace subsync {
namespace {

using test::run_subsyncd;
using test::temp_dir;

const std::string valid_account = R"(
[[account]]
name               = "prod"
apig_endpoint      = "https://127.0.0.1:1"
secmaster_endpoint = "https://127.0.0.1:1"
[account.auth]
type      = "token"
token_env = "SUBSYNC_TEST_TOKEN"
)";

TEST(Cli, BadConfigExitsTwoNamingFileLineAndKey) {
    struct config_case {
        const char* name;
        std::string toml;
        std::string expected;  // after "<file>:"
    };
    const config_case cases[] = {
        {"wrong type", "[sync]\npage_size = \"many\"\n" + valid_account, "2: sync.page_size:"},
        {"unknown key", "[sync]\npage_sise = 10\n" + valid_account, "2: sync.page_sise:"},
        {"page_size zero", "[sync]\npage_size = 0\n" + valid_account, "2: sync.page_size:"},
        {"missing endpoint",
         "[[account]]\nname = \"prod\"\nsecmaster_endpoint = \"https://x\"\n[account.auth]\ntoken_env = \"T\"\n",
         "1: account[0].apig_endpoint: required key is missing"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        temp_dir dir;
        const auto file = dir / "subsync.toml";
        test::write_file(file, c.toml);
        for (const auto* cmd : {"check-config", "sync"}) {
            std::vector<std::string> args{cmd, "--config", file.string()};
            if (std::string(cmd) == "sync") args.push_back("--once");
            auto r = run_subsyncd(args);
            EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
            EXPECT_NE(r.err.find(file.string() + ":" + c.expected), std::string::npos) << cmd << ": " << r.err;
        }
    }
}

std::string token_file_account(const std::string& file) {
    return "[[account]]\nname = \"prod\"\napig_endpoint = \"https://127.0.0.1:1\"\n"
           "secmaster_endpoint = \"https://127.0.0.1:1\"\n[account.auth]\ntoken_file = \"" +
           file + "\"\n";
}

/// The lines of `text` that mention `needle`.
std::string lines_with(const std::string& text, const std::string& needle) {
    std::string out;
    std::size_t begin = 0;
    while (begin < text.size()) {
        const std::size_t end = std::min(text.find('\n', begin), text.size());
        const std::string line = text.substr(begin, end - begin);
        if (line.find(needle) != std::string::npos) out += line + "\n";
        begin = end + 1;
    }
    return out;
}

TEST(Cli, UnreadableOrInjectedSecretExitsTwoWithOneMessageInCheckConfigAndSync) {
    struct secret_case {
        const char* name;
        std::string content;  ///< of the token file; nullopt-like "" = no file
        std::string expected;  ///< after "<config>: account[0].auth.token_file: <token file> "
    };
    const secret_case cases[] = {
        {"missing file", "", ""},
        {"header injection", "tok\r\nX-Injected: evil",
         "contains a control character (CR, LF, TAB, NUL...); a secret is one line of printable text"},
        {"header injection and a final newline", "tok\nX-Injected: evil\n", "contains a control character"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        temp_dir dir;
        const auto token = dir / "prod.token";
        if (!c.content.empty()) {
            test::write_file(token, c.content);
            std::filesystem::permissions(token, std::filesystem::perms::owner_read);
        }
        const auto file = dir / "subsync.toml";
        test::write_file(file, "[storage]\ndatabase = \"" + (dir / "snap.db").string() + "\"\n" +
                                   token_file_account(token.string()));
        const std::string expected =
            file.string() + ": account[0].auth.token_file: " +
            (c.content.empty() ? "cannot read " + token.string() + ": No such file or directory"
                               : token.string() + " " + c.expected);
        std::string first;
        for (const auto* cmd : {"check-config", "sync"}) {
            std::vector<std::string> args{cmd, "--config", file.string()};
            if (std::string(cmd) == "sync") args.push_back("--once");
            auto r = run_subsyncd(args);
            EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
            EXPECT_NE(r.err.find(expected), std::string::npos) << cmd << ": " << r.err;
            EXPECT_EQ(r.err.find("evil"), std::string::npos) << cmd << ": " << r.err;
            const std::string said = lines_with(r.err, "account[0]") + lines_with(r.err, "secret could not");
            if (first.empty()) first = said;
            else EXPECT_EQ(said, first) << "the same message from both commands";
        }
        EXPECT_FALSE(std::filesystem::exists(dir / "snap.db")) << "sync --once stops before the database";
    }
}

TEST(Cli, TokenFileOthersCanReadIsWarnedAboutByName) {
    temp_dir dir;
    const auto token = dir / "prod.token";
    test::write_file(token, "tok-cli-warn\n");
    std::filesystem::permissions(token, std::filesystem::perms(0644));
    const auto file = dir / "subsync.toml";
    test::write_file(file, token_file_account(token.string()));
    auto r = run_subsyncd({"check-config", "--config", file.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("account[0].auth.token_file: " + token.string() +
                         " is accessible by group or others (mode 0644); chmod 600 it"),
              std::string::npos)
        << r.err;

    std::filesystem::permissions(token, std::filesystem::perms(0600));
    r = run_subsyncd({"check-config", "--config", file.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("accessible by group or others"), std::string::npos) << r.err;
}

TEST(Cli, UsageErrorsExitTwo) {
    EXPECT_EQ(run_subsyncd({}).exit_code, 2);
    EXPECT_EQ(run_subsyncd({"frobnicate"}).exit_code, 2);
    auto r = run_subsyncd({"sync"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--once"), std::string::npos) << r.err;
    temp_dir dir;
    r = run_subsyncd({"export", "--table", "nope", "--config", (dir / "missing.toml").string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("purchased_groups, subscription_resources"), std::string::npos) << r.err;
}

TEST(Cli, MissingConfigFileSaysWhich) {
    temp_dir dir;
    auto r = run_subsyncd({"check-config", "--config", (dir / "nope.toml").string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find((dir / "nope.toml").string()), std::string::npos) << r.err;
}

// The shipped config names token_credential = "subsync_prod-token". The documented
// `subsyncd check-config` runs outside the unit (no $CREDENTIALS_DIRECTORY): it reads the
// credential where LoadCredential= would, or from --credentials-dir, and says which.
TEST(Cli, CheckConfigOfTheShippedConfigReadsCredentialsDir) {
    const std::string secret_value = "tok-shipped-5e1d";
    temp_dir creds;
    test::write_file(creds / "subsync_prod-token", secret_value + "\n");
    auto r = run_subsyncd({"check-config", "--config", SUBSYNC_SHIPPED_CONFIG, "--credentials-dir", creds.path().string()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find(fmt::format("account[0].auth.token: credential \"subsync_prod-token\" from {} (--credentials-dir {})",
                                     (creds / "subsync_prod-token").string(), creds.path().string())),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(": ok (1 account"), std::string::npos) << r.out;
    EXPECT_EQ((r.out + r.err).find(secret_value), std::string::npos) << "the value is never printed";

    // --credentials-dir wins over $CREDENTIALS_DIRECTORY; an empty file is still an error.
    temp_dir empty;
    test::write_file(empty / "subsync_prod-token", "\n");
    r = run_subsyncd({"check-config", "--config", SUBSYNC_SHIPPED_CONFIG, "--credentials-dir", empty.path().string()},
                     {{"CREDENTIALS_DIRECTORY", creds.path().string()}});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(fmt::format("account[0].auth.token_credential: {} is empty",
                                     (empty / "subsync_prod-token").string())),
              std::string::npos)
        << r.err;

    // Under the unit: $CREDENTIALS_DIRECTORY, named as such.
    r = run_subsyncd({"check-config", "--config", SUBSYNC_SHIPPED_CONFIG}, {{"CREDENTIALS_DIRECTORY", creds.path().string()}});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("account[0].auth.token: credential \"subsync_prod-token\" in $CREDENTIALS_DIRECTORY"),
              std::string::npos)
        << r.out;
}

TEST(Cli, CheckConfigSaysWhereItLookedForAMissingCredential) {
    for (const char* p : {"/etc/subsync/credentials/prod-token", "/etc/credstore/subsync_prod-token",
                          "/run/credstore/subsync_prod-token"}) {
        std::error_code ec;
        if (std::filesystem::exists(p, ec) || ec) GTEST_SKIP() << p << " exists or is hidden on this host";
    }
    auto r = run_subsyncd({"check-config", "--config", SUBSYNC_SHIPPED_CONFIG});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("account[0].auth.token_credential: no file for credential \"subsync_prod-token\"; looked in "
                         "/etc/subsync/credentials/prod-token, /etc/credstore/subsync_prod-token, "
                         "/run/credstore/subsync_prod-token (give the directory with --credentials-dir DIR)"),
              std::string::npos)
        << r.err;
}

TEST(Cli, HelpListsEveryExitCode) {
    auto help = run_subsyncd({"--help"});
    EXPECT_EQ(help.exit_code, 0);
    for (const char* code : {"0 ok", "1 a source failed", "2 bad config or usage", "3 every source answered",
                             "4 another subsyncd\nholds the database"})
        EXPECT_NE(help.out.find(code), std::string::npos) << code << " in " << help.out;
}

TEST(Cli, HelpAndVersionExitZero) {
    auto help = run_subsyncd({"--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("Exit codes"), std::string::npos) << help.out;
    auto version = run_subsyncd({"--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_NE(version.out.find("subsyncd "), std::string::npos) << version.out;
}

TEST(Cli, ExportWithoutSnapshotSaysWhatToRun) {
    temp_dir dir;
    const auto file = dir / "subsync.toml";
    test::write_file(file, "[storage]\ndatabase = \"" + (dir / "snap.db").string() + "\"\n" + valid_account);
    auto r = run_subsyncd({"export", "--table", "purchased_groups", "--config", file.string()});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("sync --once"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace subsync
