#include <subsync/config/load.hpp>

#include "detail/read_file.hpp"

#include <boost/throw_exception.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace subsync::config {
namespace {

using std::chrono::milliseconds;
using line_t = std::uint32_t;

// A config file is a few KiB; the bound keeps a wrong path (a log, a device) from being slurped.
constexpr std::size_t max_config_bytes = 1024 * 1024;

std::string_view type_name(toml::node_type t) {
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

line_t line_of(const toml::source_region& r) { return r.begin.line == 0 ? 1 : r.begin.line; }

char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

/// Levenshtein distance, case-insensitive: "Page-Size" is 1 away from "page_size".
std::size_t edit_distance(std::string_view a, std::string_view b) {
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
    table_reader(const toml::table& t, std::string path, std::initializer_list<std::string_view> known,
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

void read_storage(const table_reader& root, storage_config& out) {
    const toml::table* t = root.table("storage");
    if (t == nullptr) return;
    const table_reader r(*t, "storage", {"database", "export_dir"}, root.report());
    r.path("database", false, out.database);
    r.path("export_dir", false, out.export_dir);
}

void read_sync(const table_reader& root, sync_config& out) {
    const toml::table* t = root.table("sync");
    if (t == nullptr) return;
    const table_reader r(*t, "sync", {"interval", "page_size", "concurrency", "timeout"}, root.report());
    r.duration("interval", std::chrono::seconds(10), std::nullopt, out.interval);
    r.integer("page_size", 1, 500, out.page_size);  // 500: the API's maximum page size
    r.integer("concurrency", 1, 64, out.concurrency);
    r.duration("timeout", milliseconds(100), std::chrono::minutes(10), out.timeout);
}

void read_tls(const table_reader& root, tls_config& out) {
    const toml::table* t = root.table("tls");
    if (t == nullptr) return;
    const table_reader r(*t, "tls", {"ca_file"}, root.report());
    r.path("ca_file", true, out.ca_file);
    // Checked now rather than at the first sync, so a typo fails at startup, not minutes later.
    if (out.ca_file.empty()) return;
    if (std::string why = detail::check_readable_file(out.ca_file); !why.empty()) r.invalid("ca_file", why);
}

void read_endpoint(const table_reader& r, std::string_view k, endpoint& out) {
    std::optional<std::string> text = r.string(k, true);
    if (!text) return;
    auto ep = parse_endpoint(*text);
    if (!ep) return r.invalid(k, ep.error());
    out = std::move(*ep);
    if (!out.tls()) {
        const toml::node* n = r.node(k);
        r.report().warning(line_of(n->source()), r.key(k), "plain http:// — traffic and token are not encrypted");
    }
}

bool valid_account_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '.' || c == '-';
    });
}

void read_auth(const table_reader& account, auth_config& out) {
    const toml::table* t = account.table("auth");
    if (t == nullptr) {
        if (account.node("auth") == nullptr)
            account.report().error(account.line(), account.key("auth"), "required table [account.auth] is missing");
        return;
    }
    const table_reader r(*t, account.key("auth"), {"type", "token_env", "token_file", "token_credential"},
                         account.report());
    if (std::optional<std::string> type = r.string("type"); type && *type != "token")
        r.invalid("type", fmt::format("unknown auth type \"{}\"; valid types: \"token\"", *type));

    constexpr std::string_view one_of = "give exactly one of token_env, token_file, token_credential";
    std::string_view first;  // the source already taken, for the conflict message
    line_t first_line = 0;
    bool any_given = false;
    for (std::string_view k : {"token_env", "token_file", "token_credential"}) {
        any_given = any_given || r.node(k) != nullptr;
        std::optional<std::string> value = r.string(k);
        if (!value) continue;
        if (value->empty()) {
            r.invalid(k, "must not be empty");
            continue;
        }
        const line_t line = line_of(r.node(k)->source());
        if (!first.empty()) {
            r.invalid(k, fmt::format("conflicts with {} (line {}); {}", first, first_line, one_of));
            continue;
        }
        first = k;
        first_line = line;
        if (k == "token_env") {
            if (value->find('=') != std::string::npos || value->find('\0') != std::string::npos)
                r.invalid(k, fmt::format("\"{}\" is not a valid environment variable name", *value));
            out.token.env = std::move(*value);
        } else if (k == "token_file") {
            out.token.file = r.report().resolve(*value).string();
        } else {
            if (value->find('/') != std::string::npos || *value == "." || *value == "..")
                r.invalid(k, fmt::format("\"{}\" is not a credential name; give the name used in LoadCredential=, "
                                         "without '/'",
                                         *value));
            out.token.credential = std::move(*value);
        }
    }
    if (!any_given) r.report().error(r.line(), account.key("auth"), fmt::format("missing token source; {}", one_of));
}

void read_accounts(const table_reader& root, std::vector<account_config>& out) {
    const toml::node* n = root.node("account");
    if (n == nullptr)
        return root.report().error(root.line(), "account", "at least one [[account]] table is required");
    const toml::array* accounts = n->as_array();
    if (accounts == nullptr) return root.wrong_type("account", *n, "array of tables ([[account]])");
    if (accounts->empty())
        return root.report().error(line_of(n->source()), "account", "at least one [[account]] table is required");

    struct first_use {
        std::size_t index;
        line_t line;
    };
    std::map<std::string, first_use, std::less<>> names;
    for (std::size_t i = 0; i < accounts->size(); ++i) {
        const toml::node& element = *accounts->get(i);
        const std::string path = fmt::format("account[{}]", i);
        const toml::table* t = element.as_table();
        if (t == nullptr) {
            root.report().error(line_of(element.source()), path,
                                fmt::format("expected table, got {}", type_name(element.type())));
            continue;
        }
        const table_reader r(*t, path, {"name", "apig_endpoint", "secmaster_endpoint", "language", "auth"},
                             root.report());
        account_config a;
        if (std::optional<std::string> name = r.string("name", true)) {
            const line_t line = line_of(r.node("name")->source());
            if (!valid_account_name(*name)) {
                r.invalid("name", fmt::format("\"{}\" is not a valid account name; use 1 to 64 of A-Z a-z 0-9 _ . -",
                                              *name));
            } else if (auto [it, inserted] = names.try_emplace(*name, first_use{i, line}); !inserted) {
                r.invalid("name", fmt::format("duplicate account name \"{}\" (also account[{}], line {})", *name,
                                              it->second.index, it->second.line));
            }
            a.name = std::move(*name);
        }
        read_endpoint(r, "apig_endpoint", a.apig_endpoint);
        read_endpoint(r, "secmaster_endpoint", a.secmaster_endpoint);
        if (std::optional<std::string> language = r.string("language")) {
            if (*language != "en-us" && *language != "zh-cn")
                r.invalid("language", fmt::format("unknown language \"{}\"; expected \"en-us\" or \"zh-cn\"",
                                                  *language));
            else
                a.language = std::move(*language);
        }
        read_auth(r, a.auth);
        out.push_back(std::move(a));
    }
}

}  // namespace

void throw_exception_from_error(const config_error& e, const boost::source_location& loc) {
    boost::throw_with_location(std::runtime_error(e.message), loc);
}

boost::system::result<config, config_error> load_config(const std::filesystem::path& file) {
    auto text = detail::read_file(file, max_config_bytes);
    if (!text) return config_error{text.error()};
    return parse_config(*text, file);
}

boost::system::result<config, config_error> parse_config(std::string_view toml_text,
                                                         const std::filesystem::path& source_name) {
    const std::string file = source_name.string();
    toml::table root;
    try {
        root = toml::parse(toml_text, std::string_view(file));
    } catch (const toml::parse_error& e) {
        return config_error{fmt::format("{}:{}: syntax error: {}", file, line_of(e.source()), e.description())};
    }

    std::error_code ec;
    const std::filesystem::path absolute = std::filesystem::absolute(source_name, ec);
    validation v(file, (ec ? source_name : absolute).parent_path());
    const table_reader r(root, "", {"storage", "sync", "tls", "account"}, v);

    config c;
    c.source = source_name;
    read_storage(r, c.storage);
    read_sync(r, c.sync);
    read_tls(r, c.tls);
    read_accounts(r, c.accounts);
    if (v.failed()) return config_error{v.errors()};
    c.warnings = v.warnings();
    return c;
}

}  // namespace subsync::config

