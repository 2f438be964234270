#include <subsync/logging/log.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>

namespace subsync::logging {
namespace {

std::atomic<writer> installed{nullptr};

spdlog::level::level_enum to_spdlog(severity s) noexcept {
    switch (s) {
        case severity::debug: return spdlog::level::debug;
        case severity::info: return spdlog::level::info;
        case severity::warn: return spdlog::level::warn;
        case severity::error: return spdlog::level::err;
    }
    return spdlog::level::err;
}

bool needs_quotes(std::string_view v) {
    return v.empty() || v.find_first_of(" \"=\\\t\n\r") != std::string_view::npos;
}

// One line stays one line: a newline in an exception's text is written \n.
void append_text(std::string& out, std::string_view v) {
    if (!needs_quotes(v)) {
        out += v;
        return;
    }
    out += '"';
    for (const char c : v) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default: out += c;
        }
    }
    out += '"';
}

void append_value(std::string& out, const field& f) {
    if (const auto* n = std::get_if<std::int64_t>(&f.value)) {
        fmt::format_to(std::back_inserter(out), "{}", *n);
        return;
    }
    if (const auto* b = std::get_if<bool>(&f.value)) {
        out += *b ? "true" : "false";
        return;
    }
    append_text(out, std::get<std::string_view>(f.value));
}

}  // namespace

std::string_view to_string(severity s) noexcept {
    switch (s) {
        case severity::debug: return "debug";
        case severity::info: return "info";
        case severity::warn: return "warn";
        case severity::error: return "error";
    }
    return "error";
}

std::string value_text(std::string_view v) {
    std::string out;
    append_text(out, v);
    return out;
}

std::string line(std::string_view what, std::span<const field> fields, std::string_view then) {
    std::string out(what);
    for (const auto& f : fields) {
        out += ' ';
        out += f.key;
        out += '=';
        append_value(out, f);
    }
    if (!then.empty()) {
        out += ": ";
        out += then;
    }
    return out;
}

void set_level(severity s) noexcept { spdlog::set_level(to_spdlog(s)); }

bool enabled(severity s) noexcept { return spdlog::should_log(to_spdlog(s)); }

void write(const record& r) {
    if (const writer w = installed.load(std::memory_order_acquire)) return w(r);
    spdlog::log(to_spdlog(r.level), "{}", r.message);
}

void set_writer(writer w) noexcept { installed.store(w, std::memory_order_release); }

void event(severity s, std::string_view what, std::initializer_list<field> fields, std::string_view then) {
    write({s, {}, line(what, std::span<const field>(fields.begin(), fields.size()), then), std::vector<field>(fields)});
}

}  // namespace subsync::logging
