#include <subsync/daemon/log_events.hpp>

#include <charconv>

namespace subsync::daemon {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

int to_int(std::string_view s) {
    int v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

}  // namespace

std::optional<std::string_view> log_field(std::string_view message, std::string_view key) {
    for (std::size_t at = 0; (at = message.find(key, at)) != std::string_view::npos; at += key.size()) {
        const std::size_t eq = at + key.size();
        if ((at != 0 && message[at - 1] != ' ') || eq >= message.size() || message[eq] != '=') continue;
        const std::size_t begin = eq + 1;
        if (begin < message.size() && message[begin] == '"') {
            const std::size_t close = message.find('"', begin + 1);
            if (close == std::string_view::npos) return message.substr(begin + 1);
            return message.substr(begin + 1, close - begin - 1);
        }
        const std::size_t end = message.find(' ', begin);
        return message.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    }
    return std::nullopt;
}

std::optional<sync_event> parse_sync_event(std::string_view message) {
    sync_event e;
    if (starts_with(message, "page fetched ")) e.what = sync_event::kind::page;
    else if (starts_with(message, "retrying ") || starts_with(message, "token rejected "))
        e.what = sync_event::kind::retry;
    else if (starts_with(message, "sync failed ")) e.what = sync_event::kind::failed;
    else if (starts_with(message, "sync done ")) e.what = sync_event::kind::done;
    else return std::nullopt;

    const auto account = log_field(message, "account");
    const auto source = log_field(message, "source");
    if (!account || !source) return std::nullopt;
    e.account = std::string(*account);
    e.source = std::string(*source);
    if (e.what == sync_event::kind::page) {
        const auto pages = log_field(message, "pages");
        if (!pages) return std::nullopt;
        const std::size_t slash = pages->find('/');
        if (slash == std::string_view::npos) return std::nullopt;
        e.done = to_int(pages->substr(0, slash));
        e.total = to_int(pages->substr(slash + 1));
    } else if (e.what == sync_event::kind::failed) {
        // The kind is the last field; the error text before it may contain anything.
        const std::size_t at = message.rfind(" kind=");
        e.error_kind = at == std::string_view::npos ? "unknown" : std::string(message.substr(at + 6));
    }
    return e;
}

}  // namespace subsync::daemon
