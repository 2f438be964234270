#include <subsync/exporters/atomic_file.hpp>
#include <subsync/exporters/generations.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

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

void write_manifest(const fs::path& dir, sync::epoch_ms now, const std::vector<std::int64_t>& run_ids,
                    const std::vector<written_file>& files) {
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
        m += fmt::format(", \"rows\": {}, \"bytes\": {}, \"sha256\": \"{}\"}}", files[i].rows, files[i].bytes,
                         files[i].sha256);
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
    if (::rename(temp.c_str(), link.c_str()) != 0) fail("cannot replace", link);
    fsync_dir(link.parent_path());
}

void remove_old_generations(const fs::path& generations, const fs::path& current, int keep) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(generations))
        if (e.is_directory() && e.path().filename().string().front() != '.') dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    const auto excess = static_cast<std::ptrdiff_t>(dirs.size()) - std::max(1, keep);
    for (std::ptrdiff_t i = 0; i < excess; ++i)
        if (dirs[static_cast<std::size_t>(i)] != current) fs::remove_all(dirs[static_cast<std::size_t>(i)]);
    // A hidden folder is a generation a crash interrupted: never pointed to, safe to drop.
    for (const auto& e : fs::directory_iterator(generations))
        if (e.is_directory() && e.path().filename().string().front() == '.') fs::remove_all(e.path());
}

}  // namespace

std::int64_t append_change_feed(SQLite::Database& db, const fs::path& feed) {
    // The resume point is the feed itself: its last complete line's seq.
    std::int64_t last_seq = 0;
    std::uintmax_t keep_bytes = 0;
    if (fs::exists(feed)) {
        std::ifstream in(feed, std::ios::binary);
        std::string line;
        std::uintmax_t offset = 0;
        while (std::getline(in, line)) {
            if (in.eof()) break;  // no trailing newline: a torn write, cut below
            offset += line.size() + 1;
            keep_bytes = offset;
            if (auto pos = line.find("\"seq\":"); pos != std::string::npos) last_seq = std::stoll(line.substr(pos + 6));
        }
        if (fs::file_size(feed) != keep_bytes) fs::resize_file(feed, keep_bytes);
    }
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

generation write_generation(SQLite::Database& db, const fs::path& export_dir, sync::epoch_ms now,
                            const std::vector<std::int64_t>& run_ids, const generation_options& opts) {
    const fs::path generations = export_dir / "generations";
    fs::create_directories(generations);
    const std::string name =
        fmt::format("{}-{}", compact_time(now), run_ids.empty() ? 0 : *std::max_element(run_ids.begin(), run_ids.end()));
    const fs::path building = generations / ("." + name);
    fs::remove_all(building);
    fs::create_directory(building);

    generation g;
    SQLite::Transaction read_tx(db);  // every file shows the same snapshot
    for (auto table : {export_table::purchased_groups, export_table::subscription_resources, export_table::sync_runs,
                       export_table::alerts})
        for (auto format : opts.formats) g.files.push_back(write_one(db, building, table, format, opts));
    if (opts.report) {
        atomic_file file(building / "report.html");
        const auto expiring = write_report(db, now, [&](std::string_view b) { file.write(b); }, *opts.report);
        file.commit();
        g.files.push_back({file.target(), expiring, file.bytes_written(), file.sha256_hex()});
    }
    write_manifest(building, now, run_ids, g.files);
    fsync_dir(building);
    g.dir = generations / name;
    fs::remove_all(g.dir);
    if (::rename(building.c_str(), g.dir.c_str()) != 0) fail("cannot publish generation", g.dir);
    fsync_dir(generations);
    for (auto& f : g.files) f.path = g.dir / f.path.filename();

    swap_symlink(export_dir / "latest", fs::path("generations") / name);
    g.changes_appended = append_change_feed(db, export_dir / "changes.jsonl");
    read_tx.commit();
    remove_old_generations(generations, g.dir, opts.keep);
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
    std::vector<std::int64_t> run_ids;
    sync::epoch_ms newest = 0;
    SQLite::Statement q(db, "SELECT max(id), max(finished_at) FROM sync_runs GROUP BY account, source ORDER BY 1");
    while (q.executeStep()) {
        run_ids.push_back(q.getColumn(0).getInt64());
        newest = std::max<sync::epoch_ms>(newest, q.getColumn(1).getInt64());
    }
    return write_generation(db, export_dir, newest, run_ids, opts).files;
}

}  // namespace subsync::exporters
