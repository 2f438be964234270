// The shipped systemd units: `systemd-analyze verify` accepts each of them, and the daemon's
// service is hardened to an exposure of 2.0 or lower (`systemd-analyze security`).

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <regex>

#include <sys/wait.h>

namespace subsync {
namespace {

const std::filesystem::path units_dir = SUBSYNC_UNITS_DIR;

struct command_result {
    int exit_code = -1;
    std::string output;  ///< stdout and stderr
};

command_result run_shell(const std::string& command) {
    command_result r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) r.output += buf;
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

bool have_systemd_analyze() { return run_shell("command -v systemd-analyze").exit_code == 0; }

/// The units as installed, except ExecStart= points at the binary just built (verify checks it exists).
std::filesystem::path staged_units(const test::temp_dir& dir) {
    for (const char* name : {"subsyncd.service", "subsyncd-sync.service", "subsyncd-sync.timer"}) {
        std::string text = test::read_file(units_dir / name);
        for (std::size_t at = 0; (at = text.find("/usr/bin/subsyncd", at)) != std::string::npos;)
            text.replace(at, 17, SUBSYNCD_PATH);
        test::write_file(dir / name, text);
    }
    return dir.path();
}

TEST(SystemdUnits, VerifyAcceptsEveryUnit) {
    if (!have_systemd_analyze()) GTEST_SKIP() << "systemd-analyze is not installed (scripts/deps installs it)";
    test::temp_dir dir;
    const auto staged = staged_units(dir);
    for (const char* name : {"subsyncd.service", "subsyncd-sync.service", "subsyncd-sync.timer"}) {
        SCOPED_TRACE(name);
        const auto r = run_shell(fmt::format("cd '{}' && systemd-analyze verify './{}'", staged.string(), name));
        EXPECT_EQ(r.exit_code, 0) << r.output;
        EXPECT_EQ(r.output, "") << "verify warns: " << r.output;
    }
}

TEST(SystemdUnits, ServicesAreHardenedToExposureTwoOrLower) {
    if (!have_systemd_analyze()) GTEST_SKIP() << "systemd-analyze is not installed (scripts/deps installs it)";
    test::temp_dir dir;
    const auto staged = staged_units(dir);
    for (const char* name : {"subsyncd.service", "subsyncd-sync.service"}) {
        SCOPED_TRACE(name);
        const auto r = run_shell(
            fmt::format("cd '{}' && systemd-analyze security --offline=true --no-pager './{}'", staged.string(), name));
        std::smatch m;
        ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(Overall exposure level for \S+: ([0-9.]+))")))
            << r.output;
        EXPECT_LE(std::stod(m[1].str()), 2.0) << r.output;
    }
}

TEST(SystemdUnits, TimerRunsTheOneShotPersistentlyWithRandomDelay) {
    const std::string timer = test::read_file(units_dir / "subsyncd-sync.timer");
    for (const char* key : {"OnCalendar=", "RandomizedDelaySec=", "Persistent=true"})
        EXPECT_NE(timer.find(key), std::string::npos) << key;
    const std::string service = test::read_file(units_dir / "subsyncd.service");
    for (const char* key :
         {"Type=notify", "WatchdogSec=", "ExecReload=", "StateDirectory=subsync", "ConfigurationDirectory=subsync",
          "LoadCredential=", "ProtectSystem=strict", "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
          "CapabilityBoundingSet=\n"})
        EXPECT_NE(service.find(key), std::string::npos) << key;
}

TEST(SystemdUnits, ServicesNeverWriteCoreFiles) {
    // A core file of subsyncd holds its API token.
    for (const char* name : {"subsyncd.service", "subsyncd-sync.service"}) {
        SCOPED_TRACE(name);
        EXPECT_NE(test::read_file(units_dir / name).find("\nLimitCORE=0\n"), std::string::npos);
    }
}

}  // namespace
}  // namespace subsync
