#pragma once
// Binding text to the statements a first sync runs once per alert, without copying it, and
// reading nullable values back.

#include <SQLiteCpp/Column.h>
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace subsync::alerting::detail {

/// Binds a string that outlives the statement's next step without a copy. Every parameter is
/// bound again before each step, so no binding dangles.
inline void bind_static(SQLite::Statement& st, int index, const std::string& text) { st.bindNoCopy(index, text); }

/// The same for an enum's name: `to_string` of our enums returns a view of a string literal,
/// which is NUL-terminated and lives for the whole program.
inline void bind_name(SQLite::Statement& st, int index, std::string_view literal) {
    st.bindNoCopy(index, literal.data());
}

/// A nullable integer column.
inline std::optional<std::int64_t> opt_int(const SQLite::Column& c) {
    return c.isNull() ? std::nullopt : std::optional<std::int64_t>(c.getInt64());
}

}  // namespace subsync::alerting::detail
