#pragma once
// The PostgreSQL side: table shapes derived from the export columns (exporters::export_columns),
// and the versioned migrations.

#include "pg_connection.hpp"

#include <subsync/config/config.hpp>
#include <subsync/exporters/table_export.hpp>

#include <optional>
#include <string>
#include <vector>

namespace subsync::destinations::detail {

/// How one replicated table looks in PostgreSQL: `instance`, then (item tables) `item_key`,
/// the export columns typed for PostgreSQL, then (item tables) `absent`, the API fields the
/// answer left out (their value is NULL, as for a `null`; `absent` keeps the two apart).
struct table_shape {
    exporters::export_table table;
    std::vector<sync::column> cols;        ///< the export columns
    bool item = false;                     ///< has item_key and absent
    std::vector<std::string> key;          ///< primary key after instance
    [[nodiscard]] std::vector<std::string> pg_columns() const;
};

[[nodiscard]] table_shape shape_of(exporters::export_table t);
[[nodiscard]] exporters::export_table table_named(std::string_view name);

/// `"schema"."table"`.
[[nodiscard]] std::string qualified(const std::string& schema, std::string_view table);

/// Brings the destination's schema to pg_schema_version, one migration per transaction,
/// serialised across daemons by an advisory lock; refuses a newer schema (throws pg_error).
void migrate(pg_connection& c, const config::destination_config& d);

/// A cell as PostgreSQL text input; nullopt for SQL NULL (null and absent alike).
[[nodiscard]] std::optional<std::string> pg_value(const sync::cell& c, sync::column_type t);

/// A row's values in pg_columns() order.
[[nodiscard]] std::vector<std::optional<std::string>> pg_row(const table_shape& s, const std::string& instance,
                                                             const std::vector<sync::cell>& cells,
                                                             std::string_view item_key);

}  // namespace subsync::destinations::detail
