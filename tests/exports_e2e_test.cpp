// Generations under fire: a reader looping over latest/ while subsyncd syncs
// (and exports) 50 times, and SIGKILL at random instants of an export. The
// reader's rule is the documented one: resolve `latest` once, read everything
// through that folder, check each file against that folder's manifest.

#include "support/emulated_cloud.hpp"
#include "support/test_support.hpp"

#include <subsync/emulator/server.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/sync/snapshot.hpp>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <random>
#include <set>
#include <thread>

namespace subsync {
namespace {

namespace fs = std::filesystem;
using test::temp_dir;

constexpr const char* token = "exports-test-token";

std::string sha256_hex(const std::string& bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (unsigned i = 0; i < len; ++i) {
        hex += digits[digest[i] >> 4];
        hex += digits[digest[i] & 0xf];
    }
    return hex;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + p.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Checks one generation folder against its own manifest; "" when whole, else what is wrong.
std::string check_generation(const fs::path& dir, std::size_t expected_files) {
    simdjson::dom::parser parser;
    const std::string manifest = slurp(dir / "manifest.json");
    simdjson::dom::element doc;
    if (parser.parse(manifest).get(doc)) return "manifest.json does not parse: " + manifest;
    std::size_t n = 0;
    for (auto f : doc["files"].get_array()) {
        const std::string name{std::string_view(f["name"])};
        const std::string bytes = slurp(dir / name);
        if (bytes.size() != uint64_t(f["bytes"])) return name + ": size differs from the manifest";
        if (sha256_hex(bytes) != std::string_view(f["sha256"])) return name + ": sha256 differs from the manifest";
        ++n;
    }
    if (n != expected_files) return "manifest lists " + std::to_string(n) + " files";
    return "";
}

TEST(ExportsE2E, ReaderOfLatestNeverSeesTwoGenerationsDuringFiftySyncs) {
    temp_dir dir;
    const std::vector<emulator::dataset> datasets{emulator::dataset::generated(25, 3, 1),
                                                  emulator::dataset::generated(30, 2, 2),
                                                  emulator::dataset::generated(20, 4, 3)};
    auto emu = test::start_emulator({}, datasets[0], token, dir / "ca.pem");
    test::config_spec spec;
    spec.base_url = emu->base_url();
    spec.ca_file = (dir / "ca.pem").string();
    // Nothing is pruned while the reader runs, so a missing file can only be a bug.
    spec.extra_tables = "[exports]\nkeep_generations = 100\n";
    const auto cfg = test::write_config(dir, spec);
    const std::map<std::string, std::string> env{{"SUBSYNC_TEST_TOKEN", token}};
    const auto first = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, env);
    ASSERT_EQ(first.exit_code, 0) << first.err;

    const fs::path exports = dir / "exports";
    std::atomic<bool> stop{false};
    std::vector<std::string> problems;
    std::set<std::string> seen;
    int reads = 0;
    std::thread reader([&] {
        while (!stop.load()) {
            const fs::path gen = exports / fs::read_symlink(exports / "latest");  // resolved once per read
            std::string why;
            try {
                why = check_generation(gen, 9);
            } catch (const std::exception& e) {
                why = e.what();
            }
            if (!why.empty()) problems.push_back(gen.filename().string() + ": " + why);
            seen.insert(gen.filename().string());
            ++reads;
        }
    });
    for (int i = 1; i <= 50; ++i) {
        emu->set_dataset(datasets[static_cast<std::size_t>(i) % datasets.size()]);
        const auto r = test::run_subsyncd({"sync", "--once", "--config", cfg.string()}, env);
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    stop = true;
    reader.join();
    EXPECT_TRUE(problems.empty()) << problems.size() << " bad reads, first: " << problems.front();
    EXPECT_GE(seen.size(), 10u) << "the reader must overlap many syncs (" << reads << " reads)";
    EXPECT_EQ(check_generation(exports / fs::read_symlink(exports / "latest"), 9), "");
}

TEST(ExportsE2E, SigkillDuringExportLeavesLatestAtACompleteGeneration) {
    temp_dir dir;
    {
        sync::snapshot_store store(dir / "snapshot.db");
        sync::listing<sync::purchased_group> l;
        for (int i = 0; i < 3000; ++i) {
            sync::purchased_group g;
            g.id = "g" + std::to_string(i);
            g.group_name = "group, \"" + std::to_string(i) + "\"\nline two";
            g.expire_time = 1'800'000'000'000 + i * 3'600'000LL;
            g.quota_left = 1000 - i;
            l.items.push_back(g);
        }
        l.total = static_cast<std::int64_t>(l.items.size());
        store.apply("prod", l, 1'799'000'000'000, 1'799'000'000'000);
    }
    const fs::path exports = dir / "exports";
    const auto export_forever = [&](std::int64_t first_run) {
        // The child only exports, so every kill lands inside write_generation.
        try {
            auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
            exporters::generation_options opts;
            opts.keep = 3;
            for (std::int64_t run = first_run;; ++run)
                exporters::write_generation(db, exports, 1'799'000'000'000 + run * 1000, {run}, opts);
        } catch (...) {
        }
        ::_exit(1);
    };
    // One uninterrupted generation to start from, and how long one takes.
    const auto t0 = std::chrono::steady_clock::now();
    {
        auto db = sync::open_snapshot_readonly(dir / "snapshot.db");
        exporters::write_generation(db, exports, 1'799'000'000'000, {0});
    }
    const auto one = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);

    std::mt19937 rng(20261125);
    std::uniform_int_distribution<long> delay(0, 3 * one.count());
    std::set<std::string> latest_seen;
    int torn = 0;
    for (int i = 0; i < 30; ++i) {
        SCOPED_TRACE(testing::Message() << "kill " << i);
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) export_forever((i + 1) * 1000);
        std::this_thread::sleep_for(std::chrono::microseconds(delay(rng)));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "the child must die by the kill, not on its own";
        for (const auto& e : fs::directory_iterator(exports / "generations"))
            if (e.path().filename().string().front() == '.') ++torn;  // a generation the kill cut short
        const fs::path latest = exports / fs::read_symlink(exports / "latest");
        ASSERT_TRUE(fs::is_directory(latest)) << latest;
        EXPECT_EQ(check_generation(latest, 9), "");
        latest_seen.insert(latest.filename().string());
    }
    EXPECT_GE(torn, 10) << "most kills must land mid-generation";
    EXPECT_GE(latest_seen.size(), 5u) << "exports must progress between kills";
}

}  // namespace
}  // namespace subsync
