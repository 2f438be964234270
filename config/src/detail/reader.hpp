#pragma once
// The validation machinery shared by the config readers: every problem found
// becomes a `FILE:LINE: KEY: what` line; typed getters leave defaults in place.

#include <subsync/config/load.hpp>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::config::detail {

using std::chrono::milliseconds;
using line_t = std::uint32_t;

inline std::string_view type_name(toml::node_type t) {
    switch (t) {
        case toml::node_type::none: return "nothing";
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "floating-point number";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
    }
    return "unknown";
}

inline line_t line_of(const toml::source_region& r) { return r.begin.line == 0 ? 1 : r.begin.line; }

inline char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

/// Levenshtein distance, case-insensitive: "Page-Size" is 1 away from "page_size".
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            const std::size_t cost = to_lower(a[i - 1]) == to_lower(b[j - 1]) ? 0 : 1;
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + cost});
            diag = up;
        }
    }
    return row[b.size()];
}

/// Everything found wrong (or merely worth a warning) in one file, and how to resolve its paths.
class validation {
public:
    validation(std::string file, std::filesystem::path base_dir)
        : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

    void error(line_t line, std::string_view key, std::string_view what) {
        errors_.push_back({line, fmt::format("{}:{}: {}: {}", file_, line, key, what)});
    }
    void warning(line_t line, std::string_view key, std::string_view what) {
        warnings_.push_back({line, fmt::format("{}:{}: {}: {}", file_, line, key, what)});
    }
    [[nodiscard]] bool failed() const { return !errors_.empty(); }
    [[nodiscard]] std::string errors() { return join(sorted(std::move(errors_)), "\n"); }
    [[nodiscard]] std::vector<std::string> warnings() { return sorted(std::move(warnings_)); }

    /// Relative paths mean "next to the config file", so the daemon's cwd never matters.
    [[nodiscard]] std::filesystem::path resolve(const std::filesystem::path& p) const {
        return (p.is_relative() ? base_dir_ / p : p).lexically_normal();
    }

private:
    struct issue {
        line_t line;
        std::string text;
    };
    // Validation walks sections in schema order; operators read the file top to bottom.
    static std::vector<std::string> sorted(std::vector<issue> v) {
        std::stable_sort(v.begin(), v.end(), [](const issue& a, const issue& b) { return a.line < b.line; });
        std::vector<std::string> out;
        for (issue& i : v) out.push_back(std::move(i.text));
        return out;
    }
    static std::string join(const std::vector<std::string>& v, std::string_view sep) {
        std::string out;
        for (const std::string& s : v) {
            if (!out.empty()) out += sep;
            out += s;
        }
        return out;
    }

    std::string file_;
    std::filesystem::path base_dir_;
    std::vector<issue> errors_;
    std::vector<issue> warnings_;
};

/// One TOML table checked against its fixed list of keys; typed getters report wrong types,
/// missing required keys and out-of-range values, and leave the default in place.
class table_reader {
public:
    table_reader(const toml::table& t, std::string path, const std::vector<std::string_view>& known,
                 validation& v)
        : t_(t), path_(std::move(path)), v_(v) {
        for (auto&& [k, node] : t_) {
            if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
            std::string_view best;
            std::size_t best_distance = 3;  // suggest only within an edit distance of 2
            for (std::string_view candidate : known) {
                const std::size_t d = edit_distance(k.str(), candidate);
                if (d < best_distance) {
                    best = candidate;
                    best_distance = d;
                }
            }
            std::string known_list;
            for (std::string_view candidate : known)
                known_list += fmt::format("{}{}", known_list.empty() ? "" : ", ", candidate);
            v_.error(line_of(k.source()), key(k.str()),
                     best.empty() ? fmt::format("unknown key; expected one of: {}", known_list)
                                  : fmt::format("unknown key; did you mean \"{}\"?", best));
        }
    }

    [[nodiscard]] std::string key(std::string_view k) const {
        return path_.empty() ? std::string(k) : fmt::format("{}.{}", path_, k);
    }
    [[nodiscard]] line_t line() const { return line_of(t_.source()); }
    [[nodiscard]] const toml::node* node(std::string_view k) const { return t_.get(k); }
    [[nodiscard]] validation& report() const { return v_; }

    void missing(std::string_view k) const { v_.error(line(), key(k), "required key is missing"); }
    void wrong_type(std::string_view k, const toml::node& n, std::string_view expected) const {
        v_.error(line_of(n.source()), key(k), fmt::format("expected {}, got {}", expected, type_name(n.type())));
    }
    void invalid(std::string_view k, std::string_view what) const {
        const toml::node* n = node(k);
        v_.error(n ? line_of(n->source()) : line(), key(k), what);
    }

    /// The sub-table at `k`; nullptr when absent (or not a table, which is reported).
    [[nodiscard]] const toml::table* table(std::string_view k) const {
        const toml::node* n = node(k);
        if (n == nullptr) return nullptr;
        if (!n->is_table()) wrong_type(k, *n, "table");
        return n->as_table();
    }

    /// The string at `k`; nullopt when absent (reported if required) or of another type (reported).
    [[nodiscard]] std::optional<std::string> string(std::string_view k, bool required = false) const {
        const toml::node* n = node(k);
        if (n == nullptr) {
            if (required) missing(k);
            return std::nullopt;
        }
        if (!n->is_string()) {
            wrong_type(k, *n, "string");
            return std::nullopt;
        }
        return n->as_string()->get();
    }

    void integer(std::string_view k, std::int64_t lo, std::int64_t hi, int& out) const {
        const toml::node* n = node(k);
        if (n == nullptr) return;
        if (!n->is_integer()) return wrong_type(k, *n, "integer");
        const std::int64_t value = n->as_integer()->get();
        if (value < lo || value > hi)
            return invalid(k, fmt::format("must be between {} and {}, got {}", lo, hi, value));
        out = static_cast<int>(value);
    }

    /// A duration string ("30s", "1h30m") or an integer number of seconds, within [lo, hi].
    void duration(std::string_view k, milliseconds lo, std::optional<milliseconds> hi, milliseconds& out) const {
        const toml::node* n = node(k);
        if (n == nullptr) return;
        milliseconds value{};
        if (n->is_integer()) {
            const std::int64_t seconds = n->as_integer()->get();
            if (seconds < 0) return invalid(k, fmt::format("must not be negative, got {}", seconds));
            if (seconds > milliseconds::max().count() / 1000) return invalid(k, "too large");
            value = std::chrono::seconds(seconds);
        } else if (n->is_string()) {
            auto parsed = parse_duration(n->as_string()->get());
            if (!parsed) return invalid(k, parsed.error());
            value = *parsed;
        } else {
            return wrong_type(k, *n, "duration string such as \"30s\" or integer seconds");
        }
        if (value < lo || (hi && value > *hi)) {
            const std::string range = hi ? fmt::format("between {} and {}", format_duration(lo), format_duration(*hi))
                                         : fmt::format("at least {}", format_duration(lo));
            return invalid(k, fmt::format("must be {}, got {}", range, format_duration(value)));
        }
        out = value;
    }

    /// A path, resolved against the config file's directory; empty allowed only if `allow_empty`.
    void path(std::string_view k, bool allow_empty, std::filesystem::path& out) const {
        std::optional<std::string> s = string(k);
        if (!s) return;
        if (s->empty()) {
            if (allow_empty) out.clear();
            else invalid(k, "must not be empty");
            return;
        }
        out = v_.resolve(*s);
    }

private:
    const toml::table& t_;
    std::string path_;
    validation& v_;
};

/// Reads `NAME_env` / `NAME_file` / `NAME_credential` (exactly one when `required`, at most one otherwise).
void read_secret_ref(const table_reader& r, std::string_view name, bool required, secret_ref& out);

/// Reads `[account.auth]` of the account table `account`.
void read_auth(const table_reader& account, auth_config& out);

/// Reads `[daemon]` (grace, log_level, log_format).
void read_daemon(const table_reader& root, daemon_config& out);

/// Reads `[metrics]` (listen).
void read_metrics(const table_reader& root, metrics_config& out);

/// Reads `[alerts]`; account names are checked against `accounts`.
void read_alerts(const table_reader& root, const std::vector<account_config>& accounts, alerts_config& out);

/// Reads every `[[destination]]`.
void read_destinations(const table_reader& root, std::vector<destination_config>& out);

/// Reads an endpoint URL key; http:// is accepted with a warning.
void read_endpoint(const table_reader& r, std::string_view k, endpoint& out);

}  // namespace subsync::config::detail
