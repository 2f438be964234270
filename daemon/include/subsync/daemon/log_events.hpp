#pragma once
// What the sync engine reports only in its log lines (retries, error kinds, page progress),
// read back as events for metrics and the progress line. The engine's lines are `key=value`
// in a stable order (house style), so this parser is the one place that knows their wording;
// daemon_log_test pins it, so a rewording fails a test instead of silently zeroing a metric.

#include <optional>
#include <string>
#include <string_view>

namespace subsync::daemon {

struct sync_event {
    enum class kind {
        page,    ///< a page arrived: `done` of `total`
        retry,   ///< a request is sent again (after a retryable failure or a rejected token)
        failed,  ///< a source failed; `error_kind` says why (network, timeout, tls, http_status, auth, parse, …)
        done,    ///< a source applied (ok or incomplete)
    };
    kind what = kind::page;
    std::string account;
    std::string source;
    int done = 0;
    int total = 0;
    std::string error_kind;
};

/// The event a sync log message stands for, or nullopt for any other message.
[[nodiscard]] std::optional<sync_event> parse_sync_event(std::string_view message);

/// The value of `key=` in a `key=value` log message (unquoted: up to the next space; quoted: the
/// text between the quotes), or nullopt when the key is absent.
[[nodiscard]] std::optional<std::string_view> log_field(std::string_view message, std::string_view key);

}  // namespace subsync::daemon
