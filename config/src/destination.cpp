// `[[destination]]`: where the local record is replicated (docs/destinations.md). The
// connection string is a secret (it usually carries a password): only where it comes from
// is kept here, and resolve_secret() reads it when the destination connects.

#include "detail/read_file.hpp"
#include "detail/reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>

namespace subsync::config {
namespace {

using namespace detail;

/// An instance, schema or destination name: it is a key in the shared database and a label.
bool valid_name(std::string_view s) {
    return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '.' || c == '-';
    });
}

/// A PostgreSQL identifier we splice into SQL (quoted): lower case, digits, '_', not leading digit.
bool valid_schema(std::string_view s) {
    return !s.empty() && s.size() <= 63 && !(s[0] >= '0' && s[0] <= '9') &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

void read_tables(const table_reader& r, destination_config& d) {
    const toml::node* n = r.node("tables");
    if (n == nullptr) return;
    const toml::array* a = n->as_array();
    if (a == nullptr) return r.wrong_type("tables", *n, "array of table names such as [\"changes\"]");
    std::vector<std::string> tables;
    for (const toml::node& e : *a) {
        const std::string* s = e.is_string() ? &e.as_string()->get() : nullptr;
        const bool known = s != nullptr && std::find(destination_table_names.begin(), destination_table_names.end(),
                                                     *s) != destination_table_names.end();
        if (!known)
            return r.invalid("tables", s == nullptr ? fmt::format("expected strings, got {}", type_name(e.type()))
                                                    : fmt::format("unknown table \"{}\"; expected purchased_groups, "
                                                                  "subscription_resources, changes, sync_runs or alerts",
                                                                  *s));
        if (std::find(tables.begin(), tables.end(), *s) != tables.end())
            return r.invalid("tables", fmt::format("\"{}\" is listed twice", *s));
        tables.push_back(*s);
    }
    if (tables.empty()) return r.invalid("tables", "must list at least one table");
    d.tables = std::move(tables);
}

void read_one(const table_reader& r, destination_config& d) {
    if (auto type = r.string("type", true)) {
        if (*type != "postgresql") r.invalid("type", fmt::format("unknown type \"{}\"; expected \"postgresql\"", *type));
    }
    d.name = "postgresql";
    if (auto name = r.string("name")) {
        if (!valid_name(*name)) r.invalid("name", fmt::format("\"{}\" is not a valid name; use 1 to 63 of A-Z a-z 0-9 _ . -", *name));
        d.name = std::move(*name);
    }
    if (auto instance = r.string("instance", true)) {
        if (!valid_name(*instance))
            r.invalid("instance",
                      fmt::format("\"{}\" is not a valid instance name; use 1 to 63 of A-Z a-z 0-9 _ . -", *instance));
        d.instance = std::move(*instance);
    }
    read_secret_ref(r, "dsn", true, d.dsn);
    if (auto schema = r.string("schema")) {
        if (!valid_schema(*schema))
            r.invalid("schema", fmt::format("\"{}\" is not a valid schema name; use 1 to 63 of a-z 0-9 _, not starting "
                                            "with a digit",
                                            *schema));
        else d.schema = std::move(*schema);
    }
    read_tables(r, d);
    if (auto mode = r.string("sslmode")) {
        static constexpr std::array<std::string_view, 6> modes{"disable", "allow",     "prefer",
                                                                "require", "verify-ca", "verify-full"};
        if (std::find(modes.begin(), modes.end(), *mode) == modes.end())
            r.invalid("sslmode", fmt::format("unknown sslmode \"{}\"; expected disable, allow, prefer, require, "
                                             "verify-ca or verify-full",
                                             *mode));
        else d.sslmode = std::move(*mode);
    }
    r.path("sslrootcert", true, d.sslrootcert);
    if (!d.sslrootcert.empty())
        if (std::string why = check_readable_file(d.sslrootcert); !why.empty()) r.invalid("sslrootcert", why);
    r.duration("connect_timeout", milliseconds(100), std::chrono::minutes(10), d.connect_timeout);
    r.duration("statement_timeout", milliseconds(100), std::chrono::hours(1), d.statement_timeout);
    r.duration("retry_interval", milliseconds(100), std::chrono::hours(24), d.retry_interval);
    r.integer("batch_rows", 1, 100000, d.batch_rows);
}

}  // namespace

void detail::read_destinations(const table_reader& root, std::vector<destination_config>& out) {
    const toml::node* n = root.node("destination");
    if (n == nullptr) return;
    const toml::array* a = n->as_array();
    if (a == nullptr) return root.wrong_type("destination", *n, "array of tables ([[destination]])");
    std::map<std::string, line_t, std::less<>> names;
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::table* t = a->get(i)->as_table();
        const std::string path = fmt::format("destination[{}]", i);
        if (t == nullptr) {
            root.report().error(line_of(a->get(i)->source()), path, "expected table");
            continue;
        }
        const table_reader r(*t, path,
                             {"type", "name", "instance", "dsn_env", "dsn_file", "dsn_credential", "schema", "tables",
                              "sslmode", "sslrootcert", "connect_timeout", "statement_timeout", "retry_interval",
                              "batch_rows"},
                             root.report());
        destination_config d;
        read_one(r, d);
        const line_t line = r.node("name") ? line_of(r.node("name")->source()) : r.line();
        if (auto [it, inserted] = names.try_emplace(d.name, line); !inserted)
            r.invalid("name", fmt::format("duplicate destination name \"{}\" (also line {}); give each a distinct name",
                                          d.name, it->second));
        out.push_back(std::move(d));
    }
}

}  // namespace subsync::config
