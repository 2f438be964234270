#pragma once
// The export tests' shared fixture: a snapshot with two purchases that test every quoting and
// number rule, and the helpers for the alerts files (a second reader, alerts added in bulk,
// a generation's digests) and for a full disk. Used by export_test.cpp and
// export_alerts_test.cpp.

#include "support/test_support.hpp"

#include <subsync/exporters/generations.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace subsync::exporters::export_test {

class ExportTest : public ::testing::Test {
protected:
    void SetUp() override {
        sync::snapshot_store store(dir_ / "snapshot.db");
        sync::purchased_group a;
        a.id = "a";
        a.group_name = std::string("=cmd|' /C calc'!A0");
        a.group_remark = sync::field<std::string>::null();
        a.quota_left = 9007199254740993;
        a.order_time = 1514528566000;
        a.group_domains = std::vector<std::string>{"x.example.com", "y,\"z\""};
        sync::purchased_group b;
        b.id = "b";
        b.group_name = std::string("line1\nline2, 分组");
        sync::listing<sync::purchased_group> l;
        l.items = {a, b};
        l.total = 2;
        store.apply("prod", l, 1000, 2000);
    }

    test::temp_dir dir_;
};

/// Writes `n` firing alerts of account prod into the snapshot at `db`, counted in data_versions
/// as alerting's writer counts them.
inline void add_alerts(const std::filesystem::path& db, int first, int n) {
    sync::snapshot_store store(db);
    SQLite::Statement ins(store.database(),
                          "INSERT INTO alerts (account, source, item_key, kind, threshold, state, severity, since, "
                          "summary, detail, updated_at) VALUES ('prod', 'purchased_groups', ?, 'expired', '', 'firing', "
                          "'critical', 1514528566000, ?, '{\"days_left\":-1}', 1514528566000)");
    for (int i = first; i < first + n; ++i) {
        ins.bind(1, fmt::format("item-{:05}", i));
        ins.bind(2, fmt::format("purchased group \"g,{}\" has expired", i));
        ins.exec();
        ins.reset();
    }
    sync::bump_data_version(store.database(), sync::versioned_table::alerts);
}

/// file name -> sha256 of a generation's files, from its manifest, in the manifest's order.
inline std::vector<std::pair<std::string, std::string>> digests_of(const std::filesystem::path& gen) {
    simdjson::dom::parser parser;
    simdjson::dom::element manifest = parser.load((gen / "manifest.json").string());
    std::vector<std::pair<std::string, std::string>> out;
    for (auto f : manifest["files"].get_array())
        out.emplace_back(std::string(std::string_view(f["name"])), std::string(std::string_view(f["sha256"])));
    return out;
}

/// A second read-only connection whose read transaction is open and its snapshot fixed, as
/// sync --once hands the exports for the alerts files (rolled back when it goes).
struct second_reader {
    explicit second_reader(const std::filesystem::path& file)
        : db(sync::open_snapshot_readonly(file)), snapshot(db) {
        (void)db.execAndGet("SELECT count(*) FROM alerts");  // a read fixes the snapshot
    }
    SQLite::Database db;
    SQLite::Transaction snapshot;
};

/// Disk full, simulated: runs `run` in a child whose files may not grow past 256 bytes once it
/// calls the `fill_disk` it is given (what it opens and reads first is not limited: SQLite's
/// shared-memory file is larger). The child's exit code: 1 when `run` failed with EFBIG, 0
/// when it succeeded, 2 or 3 for another error; -1 when the child did not exit.
inline int on_a_full_disk(const std::function<void(const std::function<void()>& fill_disk)>& run) {
    const pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);  // a write error (EFBIG), as the daemon's main() arranges
        int code = 3;
        try {
            run([] {
                const ::rlimit limit{256, 256};
                ::setrlimit(RLIMIT_FSIZE, &limit);
            });
            code = 0;
        } catch (const std::system_error& e) {
            code = e.code() == std::errc::file_too_large ? 1 : 2;
            if (code != 1) std::fprintf(stderr, "child: %s\n", e.what());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
        }
        ::_exit(code);
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

}  // namespace subsync::exporters::export_test
