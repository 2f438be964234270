#include <subsync/config/secret.hpp>
#include <subsync/daemon/json.hpp>
#include <subsync/daemon/logging.hpp>

#include "systemd_protocol.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>

namespace subsync::daemon {
namespace {

severity from_spdlog(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
        case spdlog::level::debug: return severity::debug;
        case spdlog::level::info: return severity::info;
        case spdlog::level::warn: return severity::warn;
        default: return severity::error;
    }
}

std::string utc_time(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

int priority_of(severity s) noexcept {
    switch (s) {
        case severity::debug: return 7;
        case severity::info: return 6;
        case severity::warn: return 4;
        case severity::error: return 3;
    }
    return 3;
}

// Writes to stderr (or journald) in the configured format and keeps the progress line at the
// bottom of a terminal. A plain spdlog::sinks::sink rather than base_sink: logging::write() shares
// its lock.
class console_sink final : public spdlog::sinks::sink {
public:
    void configure(severity out_level, config::log_format format, bool journal, bool tty) {
        std::lock_guard lock(mutex_);
        out_level_ = out_level;
        format_ = format;
        journal_ = journal;
        // Native entries only when journald is listening; otherwise, and whenever a send fails,
        // stderr (with priority prefixes) is the fallback.
        journal_native_ = journal && ::access(systemd::journal_socket, W_OK) == 0;
        progress_enabled_ = tty && !journal && format == config::log_format::text;
        if (!progress_enabled_) erase_progress();
    }

    [[nodiscard]] bool enabled(severity s) const noexcept { return s >= out_level_.load(); }

    void clear() {
        std::lock_guard lock(mutex_);
        erase_progress();
        progress_.clear();
    }

    // A plain spdlog line: a record without fields.
    void log(const spdlog::details::log_msg& msg) override {
        logging::record r;
        r.level = from_spdlog(msg.level);
        r.message.assign(msg.payload.data(), msg.payload.size());
        emit(r, msg.time);
    }

    void record(const logging::record& r) { emit(r, std::chrono::system_clock::now()); }

    void progress(const std::string& key, std::optional<std::pair<int, int>> pages) {
        std::lock_guard lock(mutex_);
        if (!progress_enabled_) return;
        if (pages) progress_[key] = *pages;
        else progress_.erase(key);
        draw_progress();
    }

    void flush() override { std::fflush(stderr); }
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

private:
    // Every line passes the one secret filter: a message may quote what a server sent.
    void emit(const logging::record& raw, std::chrono::system_clock::time_point time) {
        if (!enabled(raw.level)) return;
        logging::record r = raw;
        r.message = config::redacted(r.message);
        std::vector<std::string> redacted_values;
        redacted_values.reserve(r.fields.size());
        for (auto& f : r.fields)  // reserved: the views into redacted_values stay valid
            if (auto* v = std::get_if<std::string_view>(&f.value)) *v = redacted_values.emplace_back(config::redacted(*v));
        std::lock_guard lock(mutex_);
        if (journal_native_ && send_to_journal(r)) return;
        std::string line;
        if (journal_) line = journal_prefix(r.level);
        if (format_ == config::log_format::json) {
            line += json_record_line(time, r);
        } else {
            if (!journal_) line += fmt::format("{} {} ", utc_time(time), logging::to_string(r.level));
            line += r.message;
        }
        line += '\n';
        erase_progress();
        std::fwrite(line.data(), 1, line.size(), stderr);
        if (progress_enabled_) draw_progress();
        std::fflush(stderr);
    }

    // The journal's native protocol: journald keeps the fields (journalctl MESSAGE_ID=…
    // ACCOUNT=…). False when the entry did not reach it (journald gone, or an entry too large
    // for one datagram): the line goes to stderr instead.
    static bool send_to_journal(const logging::record& r) { return !systemd::send_journal(journal_fields(r)); }

    void erase_progress() {
        if (!progress_shown_) return;
        std::fputs("\r\033[K", stderr);
        progress_shown_ = false;
    }

    void draw_progress() {
        erase_progress();
        if (progress_.empty()) return;
        std::string line = "pages:";
        for (const auto& [key, p] : progress_) line += fmt::format(" {} {}/{}", key, p.first, p.second);
        winsize ws{};
        if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && line.size() >= ws.ws_col)
            line.resize(ws.ws_col - 1u);  // never wrap: \r could not take a wrapped line back
        std::fputs(line.c_str(), stderr);
        progress_shown_ = true;
    }

    std::mutex mutex_;
    std::atomic<severity> out_level_ = severity::info;
    config::log_format format_ = config::log_format::text;
    bool journal_ = false;
    bool journal_native_ = false;
    bool progress_enabled_ = false;
    bool progress_shown_ = false;
    std::map<std::string, std::pair<int, int>> progress_;
};

std::shared_ptr<console_sink>& the_sink() {
    static auto sink = std::make_shared<console_sink>();
    return sink;
}

}  // namespace

severity effective_level(const log_settings& s) noexcept {
    int level = static_cast<int>(s.level) - s.verbosity;  // config::log_level has severity's order
    level = std::clamp(level, static_cast<int>(severity::debug), static_cast<int>(severity::error));
    return static_cast<severity>(level);
}

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

std::string_view journal_prefix(severity s) noexcept {
    switch (s) {
        case severity::debug: return "<7>";
        case severity::info: return "<6>";
        case severity::warn: return "<4>";
        case severity::error: return "<3>";
    }
    return "<3>";
}

void setup_logging(const log_settings& s) {
    auto& sink = the_sink();
    sink->configure(effective_level(s), s.format, stderr_is_journal(), ::isatty(STDERR_FILENO) == 1);
    auto logger = spdlog::default_logger();
    if (!logger || logger->name() != "subsyncd" || logger->sinks().size() != 1 || logger->sinks()[0] != sink) {
        logger = std::make_shared<spdlog::logger>("subsyncd", sink);
        spdlog::set_default_logger(logger);
    }
    // Lines below the configured level are neither formatted nor written: spdlog checks the
    // logger's level before it formats.
    logging::set_level(effective_level(s));
    logger->flush_on(spdlog::level::debug);
    logging::set_writer([](const logging::record& r) { the_sink()->record(r); });
}

std::string json_record_line(std::chrono::system_clock::time_point t, const logging::record& r) {
    std::string out = "{\"time\":";
    append_json_string(out, utc_time(t));
    out += ",\"level\":";
    append_json_string(out, logging::to_string(r.level));
    out += ",\"msg\":";
    append_json_string(out, r.message);
    for (const auto& f : r.fields) {
        if (f.key == "time" || f.key == "level" || f.key == "msg") continue;
        out += ',';
        append_json_string(out, f.key);
        out += ':';
        if (const auto* n = std::get_if<std::int64_t>(&f.value)) out += std::to_string(*n);
        else if (const auto* b = std::get_if<bool>(&f.value)) out += *b ? "true" : "false";
        else append_json_string(out, std::get<std::string_view>(f.value));
    }
    out += '}';
    return out;
}

std::vector<std::string> journal_fields(const logging::record& r) {
    std::vector<std::string> out;
    out.push_back("MESSAGE=" + r.message);
    out.push_back(fmt::format("PRIORITY={}", priority_of(r.level)));
    out.emplace_back("SYSLOG_IDENTIFIER=subsyncd");
    if (!r.message_id.empty()) out.push_back(fmt::format("MESSAGE_ID={}", r.message_id));
    for (const auto& f : r.fields) {
        std::string field;
        for (const char c : f.key) field += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        field += '=';
        if (const auto* n = std::get_if<std::int64_t>(&f.value)) field += std::to_string(*n);
        else if (const auto* b = std::get_if<bool>(&f.value)) field += *b ? "true" : "false";
        else field += std::get<std::string_view>(f.value);
        out.push_back(std::move(field));
    }
    return out;
}

namespace {

// The sync's events as records (sync::log_observer), and the progress line.
class sync_log_observer final : public sync::log_observer {
public:
    void on(const sync::page_fetched& e) override {
        the_sink()->progress(fmt::format("{}/{}", e.account, e.source), std::pair{e.done, e.total});
        log_observer::on(e);
    }

    void on(const sync::source_finished& e) override {
        the_sink()->progress(e.run.account + "/" + std::string(sync::to_string(e.run.source)), std::nullopt);
        log_observer::on(e);
    }
};

}  // namespace

sync::sync_observer& sync_log() {
    static sync_log_observer observer;
    return observer;
}

void clear_progress() { the_sink()->clear(); }

void alert_records::on(const alerting::delivery_attempt& a) {
    if (counted_) counted_(a);
    alerting::alerting_log::on(a);
}

}  // namespace subsync::daemon
