#pragma once

#include <subsync/config/config.hpp>
#include <subsync/exporters/report.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::exporters {

/// One file written into a generation.
struct written_file {
    std::filesystem::path path;
    std::int64_t rows = 0;
    std::size_t bytes = 0;
    std::string sha256;
};

/// A gate the alerts files' thread waits at (generation_options::alerts_after). Opening it is
/// idempotent and may come from any thread: `sync --once` opens it when delivery ends, and the
/// generation itself once the other files are written, so the files never wait for delivery.
class start_gate {
public:
    void open() noexcept {
        open_.store(true);
        open_.notify_all();
    }
    void wait() const noexcept { open_.wait(false); }

private:
    std::atomic<bool> open_{false};
};

/// What a sync's exports contain and how many generations stay.
struct generation_options {
    std::vector<export_format> formats{export_format::csv, export_format::json};
    csv_style csv;
    int keep = 5;  ///< generations kept, the newest; at least 1
    std::optional<report_options> report{std::in_place};  ///< report.html; nullopt: none
    /// A second connection whose open read transaction shows the same snapshot as the one the
    /// generation is written from (nullptr: none). The alerts files are then written from it on
    /// a thread of their own, beside the other files; without it, or when it shows another
    /// version of the alerts, they are written one after the other as before.
    SQLite::Database* alerts_reader = nullptr;
    /// With alerts_reader: the alerts files' thread waits at this gate before it reads (nullptr:
    /// it starts at once). Whichever comes first, the gate opening or the other files being
    /// written, starts the alerts files: on that thread, or on the exports' own.
    start_gate* alerts_after = nullptr;
};

/// The options `[exports]` asks for, with the forecast settings of the global `[alerts]` rules.
[[nodiscard]] generation_options generation_options_from(const config::config& cfg);

/// What write_generation() made.
struct generation {
    std::filesystem::path dir;  ///< export_dir/generations/<UTC time>-<run id>
    std::vector<written_file> files;
    std::size_t carried_over = 0;  ///< files hard-linked from the previous generation (unchanged inputs)
    std::int64_t changes_appended = 0;  ///< new lines in export_dir/changes.jsonl
};

/// What orders generations: the newest run id, then the time (a folder is "<time>-<run id>").
struct generation_key {
    std::int64_t run_id = 0;
    std::string time;  ///< 20261125T184133Z
    friend auto operator<=>(const generation_key&, const generation_key&) = default;
};

/// The key of a generation folder name, or nullopt for a name subsyncd does not make.
[[nodiscard]] std::optional<generation_key> parse_generation_name(std::string_view name);

/// Writes every table in every format and report.html, then manifest.json, into a new
/// generation folder (built under a hidden name, fsynced, renamed), then
/// swaps `export_dir/latest` to it with one rename, so a reader of latest/
/// never sees files of two syncs. Appends new changes to the append-only feed
/// export_dir/changes.jsonl. Removes the oldest generations (by run id) beyond `keep`,
/// never the new one nor the one `latest` pointed to before. A `latest` that is not a symlink
/// is refused before anything is written. Hidden leftovers of an interrupted or failed export
/// are removed at the start and when this one fails. All tables are read in one transaction:
/// the caller's, if `db` is in one (its snapshot then decides what the files hold), else its own.
generation write_generation(SQLite::Database& db, const std::filesystem::path& export_dir, sync::epoch_ms now,
                            const std::vector<std::int64_t>& run_ids, const generation_options& opts = {});

/// write_generation() for the snapshot's newest run of every (account,
/// source), named after the latest finish time: the data says when, not the clock. The runs and
/// the files come from one snapshot (the caller's read transaction, if `db` is in one).
std::vector<written_file> write_exports(SQLite::Database& db, const std::filesystem::path& export_dir,
                                        const generation_options& opts = {});

/// Appends the changes after the feed's last `seq` to `feed` (creating it),
/// first cutting a torn last line left by a crash. Returns the lines added.
std::int64_t append_change_feed(SQLite::Database& db, const std::filesystem::path& feed);

}  // namespace subsync::exporters
