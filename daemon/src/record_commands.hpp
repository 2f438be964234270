#pragma once
// `subsyncd history` and `subsyncd export`: reading the record.

#include <filesystem>
#include <optional>
#include <string>

namespace subsync::daemon {

/// `history` flags; every filter optional.
struct history_options {
    std::string account;
    std::string item;
    std::string since;   ///< ISO-8601 time
    std::string kind;    ///< added | removed | changed
    std::string source;  ///< purchased_groups | subscription_resources
    std::string format = "table";  ///< table | json | csv
};

/// Prints the change history; exit code 0, or 2 for a bad flag.
int run_history(const std::filesystem::path& config_path, const history_options& opts);

/// `export` flags.
struct export_options {
    std::string table;
    std::string format;  ///< empty: csv, or html for the report
    std::string output;  ///< file (written atomically) or "-"/empty for stdout
    std::string account;
    std::string as_of;  ///< run id or ISO-8601 time
    std::optional<long long> since;  ///< changes: seq after which to start
};

/// Writes one table; exit code 0, or 2 for a bad flag.
int run_export(const std::filesystem::path& config_path, const export_options& opts);

}  // namespace subsync::daemon
