#include <subsync/config/secret.hpp>
#include <subsync/daemon/json.hpp>
#include <subsync/daemon/logging.hpp>

#include <fmt/format.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>

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

// Writes to stderr in the configured format, feeds the sync event listener, and keeps the
// progress line at the bottom of a terminal. A plain spdlog::sinks::sink rather than base_sink,
// so the listener runs outside the sink's lock and may itself log.
class console_sink final : public spdlog::sinks::sink {
public:
    void configure(severity out_level, config::log_format format, bool journal, bool tty) {
        std::lock_guard lock(mutex_);
        out_level_ = out_level;
        format_ = format;
        journal_ = journal;
        progress_enabled_ = tty && !journal && format == config::log_format::text;
        if (!progress_enabled_) erase_progress();
    }

    void set_listener(std::function<void(const sync_event&)> f) {
        std::lock_guard lock(mutex_);
        listener_ = std::move(f);
    }

    void clear() {
        std::lock_guard lock(mutex_);
        erase_progress();
        progress_.clear();
    }

    void log(const spdlog::details::log_msg& msg) override {
        // Every line passes the one secret filter: a message may quote what a server sent.
        const std::string redacted = config::redacted(std::string_view(msg.payload.data(), msg.payload.size()));
        const std::string_view text(redacted);
        const auto event = parse_sync_event(text);
        if (event) {
            std::function<void(const sync_event&)> listener;
            {
                std::lock_guard lock(mutex_);
                listener = listener_;
            }
            if (listener) listener(*event);
        }
        const severity s = from_spdlog(msg.level);
        std::lock_guard lock(mutex_);
        if (event && progress_enabled_) track(*event);
        if (s < out_level_) {
            if (event && progress_enabled_) draw_progress();
            return;
        }
        std::string line;
        if (journal_) line = journal_prefix(s);
        if (format_ == config::log_format::json) {
            line += json_log_line(msg.time, s, text);
        } else {
            if (!journal_) line += fmt::format("{} {} ", utc_time(msg.time), name(s));
            line += text;
        }
        line += '\n';
        erase_progress();
        std::fwrite(line.data(), 1, line.size(), stderr);
        if (progress_enabled_) draw_progress();
        std::fflush(stderr);
    }

    void flush() override { std::fflush(stderr); }
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

private:
    void track(const sync_event& e) {
        const std::string key = e.account + "/" + e.source;
        if (e.what == sync_event::kind::page) progress_[key] = {e.done, e.total};
        else if (e.what != sync_event::kind::retry) progress_.erase(key);
    }

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
    severity out_level_ = severity::info;
    config::log_format format_ = config::log_format::text;
    bool journal_ = false;
    bool progress_enabled_ = false;
    bool progress_shown_ = false;
    std::map<std::string, std::pair<int, int>> progress_;
    std::function<void(const sync_event&)> listener_;
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
    // Debug always reaches the sink: sync events (page progress) are debug lines; the sink
    // itself drops what is below the configured level.
    logger->set_level(spdlog::level::debug);
    logger->flush_on(spdlog::level::debug);
}

void set_sync_event_listener(std::function<void(const sync_event&)> listener) {
    the_sink()->set_listener(std::move(listener));
}

void clear_progress() { the_sink()->clear(); }

}  // namespace subsync::daemon
