#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>  // renameat2
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <system_error>
#include <thread>

namespace subsync::exporters {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what, const fs::path& p) {
    throw std::system_error(errno, std::generic_category(), fmt::format("{} {}", what, p.string()));
}

void fsync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot open folder", dir);
    ::fsync(fd);
    ::close(fd);
}

// 2026-11-25T18:41:33Z -> 20261125T184133Z: sorts by time, safe in any file system.
std::string compact_time(sync::epoch_ms t) {
    std::string iso = sync::format_iso8601(t - t % 1000);
    std::string out;
    for (char c : iso)
        if (c != '-' && c != ':') out += c;
    return out;
}

written_file write_one(SQLite::Database& db, const fs::path& dir, export_table table, export_format format,
                       const generation_options& opts) {
    atomic_file file(dir / fmt::format("{}.{}", to_string(table), extension(format)));
    export_options eo;
    eo.csv = opts.csv;
    const auto rows = write_table(db, table, format, [&](std::string_view b) { file.write(b); }, eo);
    file.commit();
    return {file.target(), rows, file.bytes_written(), file.sha256_hex()};
}

// ---- carrying unchanged files over -----------------------------------------------------------
//
// Each file's manifest entry names what it was rendered from (`inputs`: a digest of the data
// marks and the options that shape it). When the next generation would render a file from the
// same inputs, it hard-links the previous generation's file instead of writing it again
// (docs/exports.md "Unchanged files"): an unchanged re-sync writes no table bytes.

/// `newest key, row count` of what a table is rendered from; every write to an item table goes
/// with a change row, every write of an alert sets its updated_at, and pruning lowers a count.
std::string data_mark(SQLite::Database& db, export_table t) {
    switch (t) {
        case export_table::purchased_groups:
        case export_table::subscription_resources: {
            // Item tables: the newest run that changed the source, and the write counter of
            // retention's removal of long-gone items. Every other write of an item row comes
            // with a count in its run; sync_runs is small, where `changes` is the largest table
            // and scanning it for its source's newest seq cost 60 ms of an unchanged 100k re-sync
            // (and counting the table's rows, 8 ms).
            const std::string_view table = to_string(t);
            const auto deletions = sync::data_version(db, t == export_table::purchased_groups
                                                              ? sync::versioned_table::purchased_groups
                                                              : sync::versioned_table::subscription_resources);
            return fmt::format("{}/v{}",
                               db.execAndGet(fmt::format("SELECT coalesce(max(id), 0) FROM sync_runs WHERE source = "
                                                         "'{}' AND added + changed + removed > 0",
                                                         table))
                                   .getInt64(),
                               deletions);
        }
        case export_table::alerts:
            // Counted by its one writer (alerting's alert table and prune): scanning 63k alerts
            // for max(updated_at) and count(*) was 3 % of an unchanged 100k re-sync.
            return fmt::format("v{}", sync::data_version(db, sync::versioned_table::alerts));
        default: return {};  // sync_runs and changes: new rows every sync, never carried over
    }
}

std::string columns_mark(export_table t) {
    std::string m;
    for (const auto& c : export_columns(t)) {
        m += c.name;
        m += ',';
    }
    return m;
}

/// One consistent view of the snapshot for a whole export: a read transaction of its own, or
/// the caller's when it already holds one (its snapshot is the one to show, and it ends it).
class read_snapshot {
public:
    explicit read_snapshot(SQLite::Database& db) {
        if (sqlite3_get_autocommit(db.getHandle()) != 0) tx_.emplace(db);
    }
    void end() {
        if (tx_) tx_->commit();
    }

private:
    std::optional<SQLite::Transaction> tx_;
};

/// The inputs digest of every file a generation may carry over (by file name); empty for the
/// ones always written.
std::map<std::string, std::string> file_inputs(SQLite::Database& db, sync::epoch_ms now,
                                               const generation_options& opts) {
    std::map<std::string, std::string> out;
    std::string all;
    for (auto table : {export_table::purchased_groups, export_table::subscription_resources, export_table::alerts}) {
        const std::string data = data_mark(db, table) + "|" + columns_mark(table);
        all += data + "|";
        for (auto format : opts.formats)
            out[fmt::format("{}.{}", to_string(table), extension(format))] = sync::sha256_hex(fmt::format(
                "v{}|{}|{}|{}", sync::snapshot_store::schema_version, data, extension(format),
                format != export_format::csv ? std::string()
                                             : fmt::format("bom={},crlf={},neutralise={}", opts.csv.bom, opts.csv.crlf,
                                                           opts.csv.neutralise_formulas)));
    }
    if (opts.report) {
        // The report also shows quota history and counts days from `now`: same UTC day only.
        const auto& r = *opts.report;
        const auto& f = r.forecast;
        out["report.html"] = sync::sha256_hex(fmt::format(
            "v{}|{}|samples={}|day={}|{},{},{},{},{}|{},{},{},{}", sync::snapshot_store::schema_version, all,
            sync::data_version(db, sync::versioned_table::quota_samples),
            now / 86'400'000, r.horizon_days, r.max_timeline_marks, r.max_alerts, r.max_charts, r.max_chart_samples,
            f.forecast_days, f.forecast_window.count(), f.forecast_min_samples, f.forecast_min_r2));
    }
    return out;
}

/// A file of the previous generation, as its manifest describes it.
struct manifest_entry {
    written_file file;
    std::string inputs;
};

/// The previous generation's files that say what they were rendered from; empty when it has no
/// manifest or an older one.
std::map<std::string, manifest_entry> previous_files(const fs::path& dir) {
    std::map<std::string, manifest_entry> out;
    std::error_code ec;
    if (dir.empty() || !fs::exists(dir / "manifest.json", ec)) return out;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.load((dir / "manifest.json").string()).get(doc)) return out;
    simdjson::dom::array files;
    if (doc["files"].get(files)) return out;
    for (auto f : files) {
        std::string_view name, sha, inputs;
        std::int64_t rows = 0, bytes = 0;
        if (f["name"].get(name) || f["sha256"].get(sha) || f["rows"].get(rows) || f["bytes"].get(bytes) ||
            f["inputs"].get(inputs))
            continue;
        out[std::string(name)] = {{dir / name, rows, static_cast<std::size_t>(bytes), std::string(sha)},
                                  std::string(inputs)};
    }
    return out;
}

/// Hard-links `from` as `to`; false when the file system cannot (the caller writes it instead).
bool link_file(const fs::path& from, const fs::path& to) { return ::link(from.c_str(), to.c_str()) == 0; }

void write_manifest(const fs::path& dir, sync::epoch_ms now, const std::vector<std::int64_t>& run_ids,
                    const std::vector<written_file>& files, const std::map<std::string, std::string>& inputs,
                    const std::map<std::string, std::string>& carried_from) {
    std::string m = "{\n  \"schema_version\": ";
    m += std::to_string(sync::snapshot_store::schema_version);
    m += ",\n  \"generated_at\": ";
    sync::append_json_string(m, sync::format_iso8601(now));
    m += ",\n  \"run_ids\": [";
    for (std::size_t i = 0; i < run_ids.size(); ++i) m += (i ? ", " : "") + std::to_string(run_ids[i]);
    m += "],\n  \"files\": [";
    for (std::size_t i = 0; i < files.size(); ++i) {
        m += i ? ",\n    {" : "\n    {";
        m += "\"name\": ";
        sync::append_json_string(m, files[i].path.filename().string());
        m += fmt::format(", \"rows\": {}, \"bytes\": {}, \"sha256\": \"{}\"", files[i].rows, files[i].bytes,
                         files[i].sha256);
        const std::string name = files[i].path.filename().string();
        if (auto it = inputs.find(name); it != inputs.end()) m += fmt::format(", \"inputs\": \"{}\"", it->second);
        if (auto it = carried_from.find(name); it != carried_from.end()) {
            m += ", \"carried_from\": ";
            sync::append_json_string(m, it->second);
        }
        m += '}';
    }
    m += "\n  ]\n}\n";
    atomic_file f(dir / "manifest.json");
    f.write(m);
    f.commit();
}

// Points `link` at `target` with one rename(2): readers see the old or the new link.
void swap_symlink(const fs::path& link, const fs::path& target) {
    const fs::path temp = link.parent_path() / fmt::format(".{}.new", link.filename().string());
    ::unlink(temp.c_str());
    if (::symlink(target.c_str(), temp.c_str()) != 0) fail("cannot create symlink", temp);
    if (::rename(temp.c_str(), link.c_str()) != 0) {
        const int e = errno;
        ::unlink(temp.c_str());
        errno = e;
        fail("cannot replace", link);
    }
    fsync_dir(link.parent_path());
}

/// The folder `latest` points to (a name under generations/), or empty when there is no
/// `latest` yet. Anything but a symlink is refused before a byte is written: rename(2) would
/// silently replace a regular file someone put there (and fail late on a folder).
fs::path current_latest(const fs::path& link) {
    std::error_code ec;
    const auto st = fs::symlink_status(link, ec);
    if (ec || st.type() == fs::file_type::not_found) return {};
    if (st.type() != fs::file_type::symlink)
        throw std::runtime_error(fmt::format(
            "{} is {}, not the symlink subsyncd maintains; move it away (or delete it) and export again",
            link.string(),
            st.type() == fs::file_type::directory ? "a folder"
            : st.type() == fs::file_type::regular ? "a regular file"
                                                  : "not a symlink"));
    return fs::read_symlink(link).filename();
}

/// Drops what an interrupted or failed export left: hidden generations (never pointed to) and
/// the temporary `.latest.new` link. Safe because one process exports at a time (the lock).
void remove_leftovers(const fs::path& export_dir) {
    std::error_code ec;
    fs::remove(export_dir / ".latest.new", ec);
    const fs::path generations = export_dir / "generations";
    if (!fs::is_directory(generations, ec)) return;
    std::vector<fs::path> hidden;  // collected first: removing while iterating skips entries
    for (const auto& e : fs::directory_iterator(generations, ec))
        if (e.path().filename().string().front() == '.') hidden.push_back(e.path());
    for (const auto& p : hidden) fs::remove_all(p, ec);
}

void remove_old_generations(const fs::path& generations, const std::string& current, const fs::path& previous,
                            int keep) {
    std::vector<std::pair<generation_key, fs::path>> dirs;
    for (const auto& e : fs::directory_iterator(generations)) {
        if (!e.is_directory()) continue;
        // Folders whose name is not ours (hidden ones included) are never pruned here.
        if (auto key = parse_generation_name(e.path().filename().string())) dirs.emplace_back(*key, e.path());
    }
    std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    // Oldest first, by run id: never by text, where "-10" sorts before "-9".
    std::size_t left = dirs.size();
    const auto wanted = static_cast<std::size_t>(std::max(1, keep));
    for (const auto& [key, dir] : dirs) {
        if (left <= wanted) break;
        const std::string name = dir.filename().string();
        // The new latest, and the one it replaced: a reader may have resolved latest a moment ago.
        if (name == current || (!previous.empty() && name == previous.string())) continue;
        fs::remove_all(dir);
        --left;
    }
}

/// Whether `reader` (may be null) holds a read transaction that sees the alerts table as `db`
/// does: its write counter (data_versions) is the same.
bool same_alerts(SQLite::Database& db, SQLite::Database* reader) {
    if (reader == nullptr || sqlite3_get_autocommit(reader->getHandle()) != 0) return false;
    return sync::data_version(db, sync::versioned_table::alerts) ==
           sync::data_version(*reader, sync::versioned_table::alerts);
}

/// Builds the generation in `building` (files, report, manifest), every file fsynced; a file
/// whose inputs are those of the same file in `previous` is a hard link to it.
std::vector<written_file> build_generation(SQLite::Database& db, const fs::path& building, const fs::path& previous,
                                           sync::epoch_ms now, const std::vector<std::int64_t>& run_ids,
                                           const generation_options& opts, std::size_t& carried) {
    const auto inputs = file_inputs(db, now, opts);
    const auto before = previous_files(previous);
    std::map<std::string, std::string> carried_from;
    // The previous file, when this one would be rendered from the same inputs and can be linked.
    auto carry = [&](const std::string& name) -> std::optional<written_file> {
        const auto in = inputs.find(name);
        const auto old = before.find(name);
        if (in == inputs.end() || old == before.end() || old->second.inputs != in->second) return std::nullopt;
        if (!link_file(old->second.file.path, building / name)) return std::nullopt;
        carried_from[name] = previous.filename().string();
        ++carried;
        written_file f = old->second.file;
        f.path = building / name;
        return f;
    };
    // The alerts files from the second reader, on a thread of their own: with a first sync's
    // 63,000 alerts they are 57 MB, a quarter of the export's work, and the exports are the tail
    // of `sync --once` (bench/README.md, issue 16). Decided (and carried over) before the thread
    // starts; only the thread uses the second connection until it is joined.
    std::vector<std::optional<written_file>> alert_files(opts.formats.size());
    for (std::size_t i = 0; i < opts.formats.size(); ++i)
        alert_files[i] = carry(fmt::format("{}.{}", to_string(export_table::alerts), extension(opts.formats[i])));
    // With a gate (sync --once: delivery first), the alerts files go to whichever thread is
    // free first: the second one once the gate opens, or this one once the other files are
    // written, so that a delivery that waits out a slow receiver never holds the generation back.
    std::exception_ptr alerts_error;
    std::atomic<bool> alerts_claimed{false};
    const bool alerts_left = std::any_of(alert_files.begin(), alert_files.end(), [](const auto& f) { return !f; });
    std::jthread alerts_writer;
    if (alerts_left && same_alerts(db, opts.alerts_reader))
        alerts_writer = std::jthread([&] {
            try {
                if (opts.alerts_after != nullptr) opts.alerts_after->wait();
                if (alerts_claimed.exchange(true)) return;
                for (std::size_t i = 0; i < opts.formats.size(); ++i)
                    if (!alert_files[i])
                        alert_files[i] = write_one(*opts.alerts_reader, building, export_table::alerts,
                                                   opts.formats[i], opts);
            } catch (...) {
                alerts_error = std::current_exception();
            }
        });
    // If a file below fails, the alerts thread must not wait for a gate nobody may open (on_exit
    // goes before alerts_writer is joined); claimed, it writes nothing into the folder given up.
    struct let_go {
        std::atomic<bool>& claimed;
        start_gate* gate;
        ~let_go() {
            claimed.store(true);
            if (gate != nullptr) gate->open();
        }
    } on_exit{alerts_claimed, alerts_writer.joinable() ? opts.alerts_after : nullptr};
    std::vector<written_file> files;
    for (auto table : {export_table::purchased_groups, export_table::subscription_resources, export_table::sync_runs})
        for (auto format : opts.formats) {
            auto linked = carry(fmt::format("{}.{}", to_string(table), extension(format)));
            files.push_back(linked ? *linked : write_one(db, building, table, format, opts));
        }
    std::optional<written_file> report;
    if (opts.report) {
        if (auto linked = carry("report.html")) {
            report = *linked;
        } else {
            atomic_file file(building / "report.html");
            const auto expiring = write_report(db, now, [&](std::string_view b) { file.write(b); }, *opts.report);
            file.commit();
            report = written_file{file.target(), expiring, file.bytes_written(), file.sha256_hex()};
        }
    }
    if (alerts_writer.joinable()) {
        // Not started yet: this thread writes them below, from its own connection (the same
        // snapshot), and lets the other one go.
        if (!alerts_claimed.exchange(true) && opts.alerts_after != nullptr) opts.alerts_after->open();
        alerts_writer.join();
    }
    if (alerts_error) std::rethrow_exception(alerts_error);
    for (std::size_t i = 0; i < opts.formats.size(); ++i)
        files.push_back(alert_files[i] ? *alert_files[i]
                                       : write_one(db, building, export_table::alerts, opts.formats[i], opts));
    if (report) files.push_back(*report);
    write_manifest(building, now, run_ids, files, inputs, carried_from);
    fsync_dir(building);
    return files;
}

/// Moves the finished `building` folder to `target`. A folder already there (the same runs
/// exported again) is exchanged atomically, never removed first: `latest` may point at it.
void publish(const fs::path& building, const fs::path& target) {
    if (::renameat2(AT_FDCWD, building.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) return;
    if (errno != EEXIST) fail("cannot publish generation", target);
    if (::renameat2(AT_FDCWD, building.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0)
        fail("cannot publish generation", target);
    fs::remove_all(building);  // now the old content
}

/// Where a change feed ends: its size, the bytes up to its last newline (what follows is a torn
/// write), and the seq of its last complete line that has one.
struct feed_tail {
    std::uintmax_t file_bytes = 0;
    std::uintmax_t keep_bytes = 0;
    std::int64_t last_seq = 0;
};

/// Reads the feed backwards in blocks until a complete line with a `"seq":` is found.
feed_tail read_feed_tail(const fs::path& feed) {
    feed_tail t;
    const int fd = ::open(feed.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return t;
        fail("cannot open change feed", feed);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        fail("cannot read change feed", feed);
    }
    t.file_bytes = static_cast<std::uintmax_t>(st.st_size);
    constexpr std::size_t block = 64 * 1024;
    std::string text;  // the file's bytes from `start` to its end
    std::uintmax_t start = t.file_bytes;
    bool cut_found = false;
    std::size_t line_end = 0;  // in `text`: one past the newline that ends the line being looked at
    for (;;) {
        if (start == 0) break;
        const std::size_t n = static_cast<std::size_t>(std::min<std::uintmax_t>(block, start));
        start -= n;
        std::string chunk(n, '\0');
        std::size_t got = 0;
        while (got < n) {
            const auto r = ::pread(fd, chunk.data() + got, n - got, static_cast<off_t>(start + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                ::close(fd);
                fail("cannot read change feed", feed);
            }
            got += static_cast<std::size_t>(r);
        }
        text.insert(0, chunk);
        line_end += n;
        if (!cut_found) {
            const auto nl = text.rfind('\n');
            if (nl == std::string::npos) continue;
            cut_found = true;
            t.keep_bytes = start + nl + 1;
            line_end = nl + 1;
        }
        // Lines ending at line_end, newest first; a line is whole once its start is in `text`.
        while (line_end > 0) {
            const auto prev = line_end >= 2 ? text.rfind('\n', line_end - 2) : std::string::npos;
            if (prev == std::string::npos && start != 0) break;  // its start is in an earlier block
            const std::size_t from = prev == std::string::npos ? 0 : prev + 1;
            const std::string_view line(text.data() + from, line_end - 1 - from);
            if (const auto pos = line.find("\"seq\":"); pos != std::string_view::npos) {
                const char* p = line.data() + pos + 6;
                std::from_chars(p, line.data() + line.size(), t.last_seq);
                ::close(fd);
                return t;
            }
            line_end = from;
        }
        text.resize(line_end);  // what is left to look at
    }
    ::close(fd);
    return t;
}

}  // namespace

std::int64_t append_change_feed(SQLite::Database& db, const fs::path& feed) {
    // The resume point is the feed itself: its last complete line's seq, read from the end, so a
    // run costs what it appends and not what the feed has grown to.
    const feed_tail tail = read_feed_tail(feed);
    if (tail.file_bytes != tail.keep_bytes && ::truncate(feed.c_str(), static_cast<off_t>(tail.keep_bytes)) != 0)
        fail("cannot cut the torn last line of change feed", feed);
    const std::int64_t last_seq = tail.last_seq;
    const int fd = ::open(feed.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot open change feed", feed);
    std::int64_t rows = 0;
    std::string pending;
    auto flush = [&] {
        std::size_t off = 0;
        while (off < pending.size()) {
            const auto n = ::write(fd, pending.data() + off, pending.size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                ::close(fd);
                fail("cannot append to change feed", feed);
            }
            off += static_cast<std::size_t>(n);
        }
        pending.clear();
    };
    export_options eo;
    eo.since_seq = last_seq;
    rows = write_table(db, export_table::changes, export_format::jsonl,
                       [&](std::string_view b) {
                           pending += b;
                           if (pending.size() > (1u << 20)) flush();
                       },
                       eo);
    flush();
    ::fsync(fd);
    ::close(fd);
    return rows;
}

std::optional<generation_key> parse_generation_name(std::string_view name) {
    // 20261125T184133Z-42: a 16-character UTC time, '-', the newest run id.
    constexpr std::size_t time_len = 16;
    if (name.size() < time_len + 2 || name[time_len] != '-') return std::nullopt;
    const std::string_view time = name.substr(0, time_len);
    if (time[8] != 'T' || time[15] != 'Z') return std::nullopt;
    for (std::size_t i = 0; i < time_len; ++i)
        if (i != 8 && i != 15 && (time[i] < '0' || time[i] > '9')) return std::nullopt;
    const std::string_view digits = name.substr(time_len + 1);
    generation_key key{0, std::string(time)};
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), key.run_id);
    if (ec != std::errc() || end != digits.data() + digits.size() || key.run_id < 0) return std::nullopt;
    return key;
}

generation write_generation(SQLite::Database& db, const fs::path& export_dir, sync::epoch_ms now,
                            const std::vector<std::int64_t>& run_ids, const generation_options& opts) {
    const fs::path generations = export_dir / "generations";
    fs::create_directories(generations);
    const fs::path previous = current_latest(export_dir / "latest");
    remove_leftovers(export_dir);
    const std::string name =
        fmt::format("{}-{}", compact_time(now), run_ids.empty() ? 0 : *std::max_element(run_ids.begin(), run_ids.end()));
    const fs::path building = generations / ("." + name);

    generation g;
    g.dir = generations / name;
    try {
        fs::create_directory(building);
        read_snapshot snapshot(db);  // every file shows the same snapshot
        g.files = build_generation(db, building, previous.empty() ? fs::path() : generations / previous, now,
                                   run_ids, opts, g.carried_over);
        publish(building, g.dir);
        fsync_dir(generations);
        for (auto& f : g.files) f.path = g.dir / f.path.filename();
        swap_symlink(export_dir / "latest", fs::path("generations") / name);
        g.changes_appended = append_change_feed(db, export_dir / "changes.jsonl");
        snapshot.end();
    } catch (...) {
        // Disk full, quota, a write error: a partial hidden generation would stay until a later
        // export succeeds, and one per failed sync adds up.
        remove_leftovers(export_dir);
        throw;
    }
    remove_old_generations(generations, name, previous, opts.keep);
    return g;
}

generation_options generation_options_from(const config::config& cfg) {
    generation_options o;
    o.formats.clear();
    for (const auto& f : cfg.exports.formats)
        if (auto parsed = parse_format(f)) o.formats.push_back(*parsed);
    o.csv = {cfg.exports.csv_bom, cfg.exports.csv_crlf, cfg.exports.neutralise_formulas};
    o.keep = cfg.exports.keep_generations;
    if (cfg.exports.report) o.report->forecast = cfg.alerts.rules;
    else o.report.reset();
    return o;
}

std::vector<written_file> write_exports(SQLite::Database& db, const fs::path& export_dir,
                                        const generation_options& opts) {
    read_snapshot snapshot(db);  // the runs named and the files written come from one snapshot
    std::vector<std::int64_t> run_ids;
    sync::epoch_ms newest = 0;
    SQLite::Statement q(db, "SELECT max(id), max(finished_at) FROM sync_runs GROUP BY account, source ORDER BY 1");
    while (q.executeStep()) {
        run_ids.push_back(q.getColumn(0).getInt64());
        newest = std::max<sync::epoch_ms>(newest, q.getColumn(1).getInt64());
    }
    auto files = write_generation(db, export_dir, newest, run_ids, opts).files;
    snapshot.end();
    return files;
}

}  // namespace subsync::exporters
