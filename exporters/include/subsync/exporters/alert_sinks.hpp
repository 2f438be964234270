#pragma once
// Alert sinks: where one notification (an alert_outbox row's payload, docs/alerts.md) goes.
// Each deliver() is one attempt within the sink's timeout; the dispatcher
// (alert_dispatch.hpp) decides order, retries and dead-lettering. docs/alert-delivery.md.

#include <subsync/config/config.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/sync/http_client.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::exporters {

/// The fields of a notification payload, parsed once (docs/alerts.md "Notification format").
struct notification {
    std::int64_t seq = 0;  ///< alert_outbox.seq
    std::string payload;   ///< the JSON object exactly as queued: what webhook, jsonl and exec send
    std::string idempotency_key, kind, severity, state, account, source, id, threshold, summary;
    std::string reason;  ///< empty when null
    std::int64_t since = 0;
    std::optional<std::int64_t> resolved_at;
    std::int64_t created_at = 0;
    std::int64_t number = 1;  ///< "notification": 1, 2, … within one episode
    /// "values" flattened: strings as they are, other JSON values as compact JSON text.
    std::vector<std::pair<std::string, std::string>> values;
};

/// Parses an outbox payload; the error names the field.
[[nodiscard]] boost::system::result<notification, std::string> parse_notification(std::int64_t seq,
                                                                                   std::string_view payload);

/// The outcome of one delivery attempt. `error` never holds a secret.
struct delivery_outcome {
    bool delivered = false;
    std::string error;
};

/// What sinks share: the event loop, TLS trust, the proxy, where secrets come from.
struct sink_context {
    boost::asio::any_io_executor ex;
    std::shared_ptr<sync::tls_context> tls;  ///< for https URLs; may be null when none is configured
    sync::proxy_settings proxy;
    config::environment env = config::environment::process();
    /// Variables secrets are read from (config::secret_env_names): never in a hook's environment.
    std::vector<std::string> secret_env_names;
    std::chrono::milliseconds repeat_interval{std::chrono::hours(24)};  ///< alertmanager endsAt of firing alerts
};

/// One configured sink. deliver() never throws for expected failures (down, timeout, non-2xx,
/// non-zero exit): they come back as an outcome that is not delivered.
class alert_sink {
public:
    virtual ~alert_sink() = default;
    /// One attempt, finished by `cap` at the latest (and by the sink's own timeout).
    virtual boost::asio::awaitable<delivery_outcome> deliver(const notification& n,
                                                             std::chrono::steady_clock::time_point cap) = 0;
    /// How many notifications the dispatcher delivers before it calls flush() and commits their
    /// outcomes in one transaction. A crash inside a batch sends it again (at-least-once), so
    /// local sinks take large batches and remote ones small.
    [[nodiscard]] virtual std::size_t batch_size() const { return 64; }
    /// Makes the deliveries of the batch durable (jsonl: one fsync). A failure turns them into
    /// failed attempts, retried later.
    virtual delivery_outcome flush() { return {true, {}}; }
};

/// Builds the sink `cfg` describes.
[[nodiscard]] std::unique_ptr<alert_sink> make_sink(const config::sink_config& cfg, const sink_context& ctx);

/// The body posted to Alertmanager's /api/v2/alerts for `n`: a one-element `postableAlerts` array.
/// A firing alert ends at created_at + 2 × repeat_interval, so it stays active until the next
/// repeat refreshes it (or a resolved notification ends it at resolved_at).
[[nodiscard]] std::string alertmanager_body(const notification& n, std::chrono::milliseconds repeat_interval);


/// The exec sink's child process, on its own: argv without a shell, `input` on stdin, killed
/// (SIGTERM, then SIGKILL) at `deadline`. Exposed for tests.
struct exec_result {
    bool started = false;
    bool timed_out = false;
    int exit_code = -1;    ///< when it exited
    int term_signal = 0;   ///< when a signal ended it
    std::string output;    ///< stdout then stderr, each truncated
    std::string error;     ///< why it could not be started or waited for
};
[[nodiscard]] boost::asio::awaitable<exec_result> run_exec(const std::vector<std::string>& argv, std::string input,
                                                           std::chrono::steady_clock::time_point deadline,
                                                           const std::vector<std::string>& envp);

/// The whole environment ("NAME=value") an exec sink's program gets, nothing inherited:
/// PATH (default /usr/local/bin:/usr/bin:/bin), LANG, LC_ALL, TZ and HOME as the daemon has them,
/// then `cfg.pass_env` from the daemon, then `cfg.env`. A name in `never` is left out, wherever
/// it comes from.
[[nodiscard]] std::vector<std::string> exec_environment(const config::sink_config& cfg,
                                                        const config::environment& env,
                                                        const std::vector<std::string>& never);

}  // namespace subsync::exporters
