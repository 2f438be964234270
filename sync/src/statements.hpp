#pragma once
// Statement helpers the snapshot store and the listing stage both use.

#include <subsync/sync/columns.hpp>

#include <SQLiteCpp/Statement.h>

#include <span>
#include <string>

namespace subsync::sync::detail {

/// "a, b, c": the columns' names, for a column list in SQL.
inline std::string column_list(std::span<const column> cols) {
    std::string s;
    for (const auto& c : cols) {
        if (!s.empty()) s += ", ";
        s += c.name;
    }
    return s;
}

/// Binds *v, or NULL when v is empty (an optional or a pointer).
template <class Maybe>
void bind_or_null(SQLite::Statement& st, int index, const Maybe& v) {
    if (v) st.bind(index, *v);
    else st.bind(index);
}

}  // namespace subsync::sync::detail
