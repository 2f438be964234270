#pragma once

#include <SQLiteCpp/Database.h>

namespace subsync::sync::detail {

/// Brings the database to the newest schema, one migration per transaction.
/// Throws when the file's user_version is newer than this binary knows.
void migrate(SQLite::Database& db, int target_version);

}  // namespace subsync::sync::detail
