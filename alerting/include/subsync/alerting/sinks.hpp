#pragma once
// Alert sinks: where one group notification (grouping.hpp, docs/alert-delivery.md) goes.
// Each deliver() is one attempt within the sink's timeout; the dispatcher (dispatch.hpp)
// decides grouping, order, retries and dead-lettering.

#include <subsync/alerting/events.hpp>
#include <subsync/alerting/grouping.hpp>
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

namespace subsync::alerting {

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
    /// Hears every delivery attempt and the log sink's groups; borrowed. None: they are logged as text.
    alerting_observer* observer = nullptr;
};

/// One configured sink. deliver() never throws for expected failures (down, timeout, non-2xx,
/// non-zero exit): they come back as an outcome that is not delivered.
class alert_sink {
public:
    virtual ~alert_sink() = default;
    /// One attempt, finished by `cap` at the latest (and by the sink's own timeout).
    virtual boost::asio::awaitable<delivery_outcome> deliver(const group_notification& g,
                                                             std::chrono::steady_clock::time_point cap) = 0;
    /// Makes the last delivery durable (jsonl: fsync) before the dispatcher marks it delivered.
    /// A failure turns it into a failed attempt, retried later.
    virtual delivery_outcome flush() { return {true, {}}; }
    /// Whether deliver() reads the JSON payloads (the group's and its alerts'): the log sink and
    /// Alertmanager build their own text from the fields, so the dispatcher leaves them unrendered.
    [[nodiscard]] virtual bool needs_payload() const { return true; }
};

/// Builds the sink `cfg` describes.
[[nodiscard]] std::unique_ptr<alert_sink> make_sink(const config::sink_config& cfg, const sink_context& ctx);

/// The body posted to Alertmanager's /api/v2/alerts for `g`: a `postableAlerts` array, one
/// element per alert. A firing alert ends at created_at + 2 × repeat_interval, so it stays
/// active until the next repeat refreshes it (or a resolved notification ends it at resolved_at).
[[nodiscard]] std::string alertmanager_body(const group_notification& g, std::chrono::milliseconds repeat_interval);


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

}  // namespace subsync::alerting
