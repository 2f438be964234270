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
#include <set>

namespace subsync::daemon {
namespace {

spdlog::level::level_enum to_spdlog(severity s) noexcept {
    switch (s) {
        case severity::debug: return spdlog::level::debug;
        case severity::info: return spdlog::level::info;
        case severity::warn: return spdlog::level::warn;
        case severity::error: return spdlog::level::err;
    }
    return spdlog::level::info;
}

severity from_spdlog(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
        case spdlog::level::debug: return severity::debug;
        case spdlog::level::info: return severity::info;
        case spdlog::level::warn: return severity::warn;
        default: return severity::error;
    }
}

std::string_view name(severity s) {
    switch (s) {
        case severity::debug: return "debug";
        case severity::info: return "info";
        case severity::warn: return "warn";
        case severity::error: return "error";
    }
    return "error";
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

bool is_key_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

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
// bottom of a terminal. A plain spdlog::sinks::sink rather than base_sink: write_record() shares
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

    void log(const spdlog::details::log_msg& msg) override {
        log_record r;
        r.level = from_spdlog(msg.level);
        r.message.assign(msg.payload.data(), msg.payload.size());
        emit(r, msg.time, false);
    }

    void record(const log_record& r) { emit(r, std::chrono::system_clock::now(), true); }

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
    void emit(const log_record& raw, std::chrono::system_clock::time_point time, bool typed) {
        if (!enabled(raw.level)) return;
        log_record r = raw;
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
            line += typed ? json_record_line(time, r) : json_log_line(time, r.level, r.message);
        } else {
            if (!journal_) line += fmt::format("{} {} ", utc_time(time), name(r.level));
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
    static bool send_to_journal(const log_record& r) { return !systemd::send_journal(journal_fields(r)); }

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

std::string json_log_line(std::chrono::system_clock::time_point t, severity s, std::string_view message) {
    std::string out = "{\"time\":";
    append_json_string(out, utc_time(t));
    out += ",\"level\":";
    append_json_string(out, name(s));
    out += ",\"msg\":";
    append_json_string(out, message);
    std::set<std::string_view> seen{"time", "level", "msg"};
    for (std::size_t i = 0; i < message.size(); ++i) {
        if (i != 0 && message[i - 1] != ' ') continue;
        std::size_t eq = i;
        while (eq < message.size() && is_key_char(message[eq])) ++eq;
        if (eq == i || eq >= message.size() || message[eq] != '=') continue;
        const std::string_view key = message.substr(i, eq - i);
        std::size_t begin = eq + 1, end = 0;
        if (begin < message.size() && message[begin] == '"') {
            ++begin;
            end = std::min(message.find('"', begin), message.size());
        } else {
            end = std::min(message.find(' ', begin), message.size());
        }
        if (seen.insert(key).second) {
            out += ',';
            append_json_string(out, key);
            out += ':';
            append_json_string(out, message.substr(begin, end - begin));
        }
        i = end;
    }
    out += '}';
    return out;
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
    logger->set_level(to_spdlog(effective_level(s)));
    logger->flush_on(spdlog::level::debug);
}

bool log_enabled(severity s) noexcept { return the_sink()->enabled(s); }

void write_record(const log_record& r) { the_sink()->record(r); }

std::string json_record_line(std::chrono::system_clock::time_point t, const log_record& r) {
    std::string out = "{\"time\":";
    append_json_string(out, utc_time(t));
    out += ",\"level\":";
    append_json_string(out, name(r.level));
    out += ",\"msg\":";
    append_json_string(out, r.message);
    for (const auto& f : r.fields) {
        if (f.key == "time" || f.key == "level" || f.key == "msg") continue;
        out += ',';
        append_json_string(out, f.key);
        out += ':';
        if (const auto* v = std::get_if<std::int64_t>(&f.value)) out += std::to_string(*v);
        else append_json_string(out, std::get<std::string_view>(f.value));
    }
    out += '}';
    return out;
}

std::vector<std::string> journal_fields(const log_record& r) {
    std::vector<std::string> out;
    out.push_back("MESSAGE=" + r.message);
    out.push_back(fmt::format("PRIORITY={}", priority_of(r.level)));
    out.emplace_back("SYSLOG_IDENTIFIER=subsyncd");
    if (!r.message_id.empty()) out.push_back(fmt::format("MESSAGE_ID={}", r.message_id));
    for (const auto& f : r.fields) {
        std::string field;
        for (const char c : f.key) field += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        field += '=';
        if (const auto* v = std::get_if<std::int64_t>(&f.value)) field += std::to_string(*v);
        else field += std::get<std::string_view>(f.value);
        out.push_back(std::move(field));
    }
    return out;
}

namespace {

// The sync's events as records, and the progress line.
class sync_log_observer final : public sync::sync_observer {
public:
    void on(const sync::page_fetched& e) override {
        the_sink()->progress(fmt::format("{}/{}", e.account, e.source), std::pair{e.done, e.total});
        if (!log_enabled(severity::debug)) return;
        write_record({severity::debug,
                      {},
                      sync::message_of(e),
                      {{"account", e.account},
                       {"source", e.source},
                       {"pages_done", e.done},
                       {"pages_total", e.total},
                       {"read", sync::to_string(e.reading)}}});
    }

    void on(const sync::request_retried& e) override {
        if (!log_enabled(severity::warn)) return;
        write_record({severity::warn,
                      {},
                      sync::message_of(e),
                      {{"account", e.account},
                       {"source", e.source},
                       {"where", e.where},
                       {"reason", sync::to_string(e.reason)},
                       {"attempt", e.attempt},
                       {"wait_ms", static_cast<std::int64_t>(e.wait.count())},
                       {"request_id", e.request_id},
                       {"detail", e.detail}}});
    }

    void on(const sync::source_finished& e) override {
        const sync::run_record& r = e.run;
        const std::string source(sync::to_string(r.source));
        the_sink()->progress(r.account + "/" + source, std::nullopt);
        if (e.error) {
            write_record({severity::error,
                          message_ids::sync_failed,
                          sync::message_of(e),
                          {{"account", r.account},
                           {"source", source},
                           {"run_id", r.id},
                           {"status", sync::to_string(r.status)},
                           {"kind", sync::to_string(*e.error)},
                           {"error", r.error}}});
            return;
        }
        if (r.status == sync::run_status::incomplete) spdlog::warn("{}", sync::incomplete_message_of(r));
        write_record({severity::info,
                      message_ids::sync_done,
                      sync::message_of(e),
                      {{"account", r.account},
                       {"source", source},
                       {"run_id", r.id},
                       {"status", sync::to_string(r.status)},
                       {"pages", r.pages},
                       {"items", r.items},
                       {"added", r.added},
                       {"changed", r.changed},
                       {"removed", r.removed},
                       {"notifications", r.notifications},
                       {"retries", r.retries},
                       {"throttled", r.throttled},
                       {"ms", static_cast<std::int64_t>(e.elapsed.count())}}});
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
    const severity level = a.outcome == alerting::attempt_outcome::delivered ? severity::debug
                           : a.outcome == alerting::attempt_outcome::failed  ? severity::warn
                                                                             : severity::error;
    if (!log_enabled(level)) return;
    write_record({level,
                  a.outcome == alerting::attempt_outcome::dead ? message_ids::delivery_dead : std::string_view{},
                  alerting::alerting_log::message_of(a),
                  {{"sink", a.sink},
                   {"group", a.group},
                   {"batch", a.batch},
                   {"alerts", static_cast<std::int64_t>(a.alerts)},
                   {"outcome", alerting::to_string(a.outcome)},
                   {"attempts", a.attempts},
                   {"latency_ms", a.latency_ms},
                   {"error", a.error}}});
}

void alert_records::on(std::string_view sink, const alerting::group_notification& g) {
    const bool firing = g.fresh + g.repeated > 0;
    const severity level = firing ? severity::warn : severity::info;
    if (!log_enabled(level)) return;
    const auto& top = g.alerts.front();
    // KIND and ACCOUNT are the group's when it is grouped by them, else its most urgent alert's.
    auto label = [&](std::string_view name, std::string_view fallback) -> std::string_view {
        for (const auto& [k, v] : g.labels)
            if (k == name) return v;
        return fallback;
    };
    write_record({level,
                  firing ? message_ids::alert_firing : message_ids::alert_resolved,
                  alerting::alerting_log::message_of(sink, g),
                  {{"sink", sink},
                   {"group", g.key},
                   {"kind", label("kind", top.kind)},
                   {"account", label("account", top.account)},
                   {"source", label("source", top.source)},
                   {"severity", config::to_string(top.severity)},
                   {"alerts", static_cast<std::int64_t>(g.alerts.size())},
                   {"new", g.fresh},
                   {"repeated", g.repeated},
                   {"resolved", g.resolved}}});
}

}  // namespace subsync::daemon
