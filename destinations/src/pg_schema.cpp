#include "pg_schema.hpp"

#include <subsync/destinations/postgresql.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <array>
#include <stdexcept>

namespace subsync::destinations::detail {
namespace {

using exporters::export_table;
using sync::column_type;

std::string_view pg_type(column_type t) {
    switch (t) {
        case column_type::text: return "text";
        case column_type::integer: return "bigint";
        case column_type::time: return "timestamptz";
        case column_type::boolean: return "boolean";
        case column_type::json: return "jsonb";
    }
    return "text";
}

constexpr std::array all_tables{export_table::purchased_groups, export_table::subscription_resources,
                                export_table::changes, export_table::sync_runs, export_table::alerts};

std::string create_table(const std::string& schema, const table_shape& s) {
    std::string sql = fmt::format("CREATE TABLE {} (\n  instance text NOT NULL", qualified(schema, to_string(s.table)));
    if (s.item) sql += ",\n  item_key text NOT NULL";
    for (const auto& c : s.cols) sql += fmt::format(",\n  {} {}", quote_ident(c.name), pg_type(c.type));
    if (s.item) sql += ",\n  absent text[] NOT NULL DEFAULT '{}'";
    sql += ",\n  PRIMARY KEY (instance";
    for (const auto& k : s.key) sql += ", " + quote_ident(k);
    sql += ")\n);\n";
    return sql;
}

// Migration 1 is built from the export columns as they are at schema version 1. A column
// added to the exports later needs a migration 2 that adds it here too (ALTER TABLE ... ADD).
std::string migration_1(const std::string& schema) {
    std::string sql;
    for (auto t : all_tables) sql += create_table(schema, shape_of(t));
    sql += fmt::format(
        "CREATE INDEX ON {0} (instance, account, source, id, seq);\n"
        "CREATE INDEX ON {1} (expire_time);\n"
        "CREATE INDEX ON {2} (expire_time);\n"
        "CREATE TABLE {3} (\n  instance text PRIMARY KEY,\n  last_seq bigint NOT NULL,\n  last_run bigint NOT NULL,\n"
        "  updated_at timestamptz NOT NULL DEFAULT now()\n);\n",
        qualified(schema, "changes"), qualified(schema, "purchased_groups"), qualified(schema, "subscription_resources"),
        qualified(schema, "replication_cursor"));
    return sql;
}

// Migration 2: the cursor also remembers the alerts table as it shipped it (newest updated_at
// and row count), so a pass after which no alert changed does not replace that table.
std::string migration_2(const std::string& schema) {
    return fmt::format("ALTER TABLE {} ADD COLUMN alerts_updated_at bigint, ADD COLUMN alerts_count bigint;\n",
                       qualified(schema, "replication_cursor"));
}

}  // namespace

std::vector<std::string> table_shape::pg_columns() const {
    std::vector<std::string> out{"instance"};
    if (item) out.emplace_back("item_key");
    for (const auto& c : cols) out.emplace_back(c.name);
    if (item) out.emplace_back("absent");
    return out;
}

table_shape shape_of(export_table t) {
    table_shape s{t, exporters::export_columns(t), exporters::source_of(t).has_value(), {}};
    switch (t) {
        case export_table::purchased_groups:
        case export_table::subscription_resources: s.key = {"account", "item_key"}; break;
        case export_table::changes: s.key = {"seq"}; break;
        case export_table::sync_runs: s.key = {"id"}; break;
        case export_table::alerts: s.key = {"account", "source", "id", "kind", "threshold"}; break;
    }
    return s;
}

export_table table_named(std::string_view name) {
    if (auto t = exporters::parse_table(name)) return *t;
    throw std::invalid_argument(fmt::format("unknown table \"{}\"", name));
}

std::string qualified(const std::string& schema, std::string_view table) {
    return quote_ident(schema) + "." + quote_ident(table);
}

void migrate(pg_connection& c, const config::destination_config& d) {
    const auto t = d.statement_timeout;
    const std::string version_table = qualified(d.schema, "schema_version");
    while (true) {
        c.exec("BEGIN", t);
        // Three daemons starting against an empty database must not all create the tables.
        c.exec("SELECT pg_advisory_xact_lock(hashtext($1))", {"subsync.migrate." + d.schema}, t);
        c.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {} (version integer NOT NULL)",
                           quote_ident(d.schema), version_table),
               t);
        const auto rows = c.exec(fmt::format("SELECT coalesce(max(version), 0) FROM {}", version_table), t);
        const int version = std::stoi(rows.rows.at(0).at(0).value_or("0"));
        if (version > pg_schema_version) {
            c.exec("ROLLBACK", t);
            throw pg_error(fmt::format("schema {}: version {} is newer than this subsyncd understands ({}); upgrade "
                                       "subsyncd",
                                       d.schema, version, pg_schema_version));
        }
        if (version == pg_schema_version) {
            c.exec("COMMIT", t);
            return;
        }
        // Ordered, append-only, like the SQLite migrations (sync/src/schema.cpp).
        if (version == 0) c.exec(migration_1(d.schema), t);
        if (version == 1) c.exec(migration_2(d.schema), t);
        c.exec(fmt::format("DELETE FROM {0}; INSERT INTO {0} VALUES ({1})", version_table, version + 1), t);
        c.exec("COMMIT", t);
    }
}

std::optional<std::string> pg_value(const sync::cell& c, column_type t) {
    if (c.state != sync::field_state::present) return std::nullopt;
    switch (t) {
        case column_type::text:
        case column_type::json: return c.text;
        case column_type::integer: return std::to_string(c.number);
        case column_type::boolean: return std::string(c.number != 0 ? "true" : "false");
        case column_type::time: {
            std::string s;
            sync::append_iso8601(s, c.number);
            return s;
        }
    }
    return std::nullopt;
}

std::vector<std::optional<std::string>> pg_row(const table_shape& s, const std::string& instance,
                                               const std::vector<sync::cell>& cells, std::string_view item_key) {
    std::vector<std::optional<std::string>> row;
    row.reserve(s.cols.size() + 3);
    row.emplace_back(instance);
    if (s.item) row.emplace_back(std::string(item_key));
    std::string absent = "{";
    for (std::size_t i = 0; i < s.cols.size(); ++i) {
        row.push_back(pg_value(cells[i], s.cols[i].type));
        if (s.item && cells[i].state == sync::field_state::absent) {
            if (absent.size() > 1) absent += ',';
            absent += s.cols[i].name;  // column names are plain identifiers: no array quoting needed
        }
    }
    if (s.item) row.emplace_back(absent + "}");
    return row;
}

}  // namespace subsync::destinations::detail
