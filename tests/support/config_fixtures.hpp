#pragma once
// Fixtures shared by the config tests: an environment made of values, and a scratch directory.

#include <subsync/config/secret_source.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <stdlib.h>

namespace subsync::test {

/// An environment built from values, so tests never touch the process environment.
inline config::environment fake_environment(std::map<std::string, std::string> vars,
                                           std::optional<std::filesystem::path> credentials_dir = std::nullopt) {
    return {
        [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
            auto it = vars.find(name);
            if (it == vars.end()) return std::nullopt;
            return it->second;
        },
        [credentials_dir] { return credentials_dir; },
        {},
        {},
    };
}

/// Owns a fresh directory under the system temp dir; files are written into it.
class TempDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "subsync-config-test-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::filesystem::path write(const std::filesystem::path& name, std::string_view content) const {
        const std::filesystem::path p = dir_ / name;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << content;
        return p;
    }

    std::filesystem::path dir_;
};

}  // namespace subsync::test
