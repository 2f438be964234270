#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::config {

/// Where a secret comes from. Exactly one of the three is set in a valid config.
/// The value itself is read by resolve_secret() at sync time, never stored here.
struct secret_ref {
    std::string env;         ///< `X_env`: name of an environment variable
    std::string file;        ///< `X_file`: path of a file holding the value (one trailing newline stripped)
    std::string credential;  ///< `X_credential`: name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)

    [[nodiscard]] bool empty() const { return env.empty() && file.empty() && credential.empty(); }
};

/// A parsed endpoint URL: `https://host[:port][/base]`.
struct endpoint {
    std::string scheme;  ///< "https" or "http"
    std::string host;        ///< lower case; DNS name or IP literal (IPv6 without brackets)
    std::uint16_t port = 0;  ///< explicit or the scheme's default
    bool explicit_port = false;
    std::string base_path;  ///< without a trailing '/'; empty for the root
    std::string query;      ///< sink URLs only: what follows '?', verbatim; empty otherwise
    std::string text;       ///< for messages: as written, or display_url() for a sink URL

    [[nodiscard]] bool tls() const { return scheme == "https"; }
};

/// How an account authenticates (`[account.auth] type`).
enum class auth_type {
    token,     ///< a ready IAM token, sent as X-Auth-Token
    password,  ///< IAM user/password exchanged for a token at POST {iam_endpoint}/v3/auth/tokens
    aksk,      ///< SDK-HMAC-SHA256 request signing with an access key / secret key
};

struct auth_config {
    auth_type type = auth_type::token;
    secret_ref token;  ///< token: token_env | token_file | token_credential

    // password, and aksk's project lookup
    endpoint iam_endpoint;
    std::string user;
    std::string domain;      ///< the account (domain) name the user belongs to
    secret_ref password;     ///< password_env | password_file | password_credential
    std::string project;     ///< scope by project name (e.g. "cn-north-4") ...
    std::string project_id;  ///< ... or by id; also X-Project-Id for aksk (looked up by `project` when empty)
    /// A token is renewed this long before its expires_at (the official SDKs use 40 minutes).
    std::chrono::milliseconds refresh_margin{std::chrono::minutes(40)};

    // aksk
    secret_ref ak;              ///< ak_env | ak_file | ak_credential
    secret_ref sk;              ///< sk_env | sk_file | sk_credential
    secret_ref security_token;  ///< optional, for temporary AK/SK
};

struct account_config {
    std::string name;
    endpoint apig_endpoint;       ///< purchased API groups
    endpoint secmaster_endpoint;  ///< purchased resources
    std::string language = "en-us";  ///< X-Language: "en-us" | "zh-cn"
    auth_config auth;
};

struct storage_config {
    std::filesystem::path database = "/var/lib/subsync/snapshot.db";
    std::filesystem::path export_dir = "/var/lib/subsync/exports";
    /// How long a write waits for another writer (a second process, the sqlite3 shell) to finish.
    std::chrono::milliseconds busy_timeout{std::chrono::seconds(10)};
    /// Changes, runs and quota samples older than this many days are pruned; 0 keeps everything.
    int history_days = 0;
    /// A purchase's quota is sampled when it changed, or when its last sample is this old.
    std::chrono::milliseconds quota_sample_interval{std::chrono::hours(1)};
};

/// `[exports]`: what every generation in storage.export_dir holds (docs/exports.md).
struct exports_config {
    bool csv_bom = false;              ///< start CSV files with a UTF-8 BOM
    bool csv_crlf = false;             ///< end CSV lines with CR LF
    bool neutralise_formulas = true;   ///< prefix text cells starting with = + - @ TAB CR with '
    int keep_generations = 5;          ///< newest generations kept, 1..1000
    std::vector<std::string> formats{"csv", "json"};  ///< each "csv" | "json" | "jsonl", no repeats
    bool report = true;                ///< write report.html into every generation
};

struct sync_config {
    std::chrono::milliseconds interval{std::chrono::minutes(15)};
    /// `subsyncd run` waits interval ± a uniform random offset of at most this, so that many
    /// daemons started together do not hit the API in step. Absent in the file: interval / 10.
    std::chrono::milliseconds jitter{std::chrono::seconds(90)};
    int page_size = 100;   ///< 1..500
    int concurrency = 8;   ///< pages in flight per source, 1..64
    /// Pages one listing may fetch, whatever its `total` says: a listing that needs more is
    /// fetched this far and left incomplete (a `total` of 10^9 is not 10^7 requests).
    int max_pages = 10'000;
    /// (account, source) pairs synced at once; the rest wait their turn, so memory and
    /// connections stay bounded however many accounts the file lists.
    int source_concurrency = 16;
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};  ///< per request, every step included
    std::chrono::milliseconds source_timeout{std::chrono::minutes(15)};  ///< a whole source, retries included
    int max_attempts = 5;  ///< per request, the first included; 1 = no retries
    std::chrono::milliseconds backoff_base{500};                      ///< first retry waits up to this
    std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};  ///< cap of one backoff (and Retry-After)
    double rate_limit = 20;  ///< requests per second per endpoint; 0 = unlimited
    int rate_burst = 10;     ///< requests allowed at once before the rate applies
    std::size_t body_limit = std::size_t{64} << 20;  ///< bytes of one response body, as received
    /// Memory all response bodies in flight may hold at once (the members the parsers read, plus
    /// what parsing them costs), shared by every connection of the process.
    std::size_t body_budget = std::size_t{32} << 20;
    std::string proxy;     ///< http://host:port for CONNECT; empty = $HTTPS_PROXY/$https_proxy
    std::string no_proxy;  ///< hosts that bypass the proxy; empty = $NO_PROXY/$no_proxy
};

/// How much `subsyncd` says (`[daemon] log_level`); `-v` / `-q` move it from there.
enum class log_level { debug, info, warn, error };

/// How log lines look (`[daemon] log_format`).
enum class log_format {
    text,  ///< `TIME LEVEL message`; `<N>message` (no time) when stderr is the journal
    json,  ///< one JSON object per line
};

/// The long-running daemon (`subsyncd run`).
struct daemon_config {
    /// After SIGTERM: how long the in-flight sync may take to stop before the process exits anyway.
    std::chrono::milliseconds grace{std::chrono::seconds(10)};
    /// At start, how long `run` waits for another subsyncd (a one-shot sync) to release the
    /// database lock before exiting 4; 0 = do not wait.
    std::chrono::milliseconds lock_wait{std::chrono::seconds(60)};
    log_level level = log_level::info;
    log_format format = log_format::text;
};

/// The HTTP endpoint serving /metrics and /healthz (`[metrics]`); off unless `listen` is set.
struct metrics_config {
    std::string listen;  ///< as written, e.g. "127.0.0.1:9469"; empty = off
    std::string host;    ///< IP literal (IPv6 without brackets)
    std::uint16_t port = 0;  ///< 0 = any free port (logged and sent in the systemd STATUS)

    [[nodiscard]] bool enabled() const { return !listen.empty(); }
};

// ---------------------------------------------------------------------------------------------
// [alerts] (docs/alerts.md)

/// What an alert is about. The names are the `kind` of every notification and of the config keys.
enum class alert_kind {
    expiring,         ///< expire_time within a threshold of days
    expired,          ///< expire_time has passed and the item is still listed
    quota_low,        ///< quota_left under an absolute value or a percentage of left + used
    quota_exhausted,  ///< quota_left = 0
    quota_forecast,   ///< the burn rate predicts exhaustion within forecast_days
    resource_status,  ///< a resource's resource_status is not 0 (running)
    source_failing,   ///< a source failed failing_after syncs in a row
    source_stale,     ///< no successful sync of a source for longer than stale_after
    auth_failing,     ///< the last sync of a source was refused authentication
    delivery_failed,  ///< a notification was dead-lettered by a sink
    removed_early,    ///< a resource left the (complete) orders listing before its expire_time; off by default
};
inline constexpr std::size_t alert_kind_count = 11;
inline constexpr std::array<std::string_view, alert_kind_count> alert_kind_names{
    "expiring",       "expired",        "quota_low",    "quota_exhausted", "quota_forecast",
    "resource_status", "source_failing", "source_stale", "auth_failing",    "delivery_failed",
    "removed_early"};
[[nodiscard]] constexpr std::string_view to_string(alert_kind k) noexcept {
    return alert_kind_names[static_cast<std::size_t>(k)];
}
[[nodiscard]] constexpr std::optional<alert_kind> alert_kind_named(std::string_view name) noexcept {
    for (std::size_t i = 0; i < alert_kind_count; ++i)
        if (alert_kind_names[i] == name) return static_cast<alert_kind>(i);
    return std::nullopt;
}

/// In increasing order of urgency.
enum class severity { info, warning, critical };
[[nodiscard]] constexpr std::string_view to_string(severity s) noexcept {
    return s == severity::info ? "info" : s == severity::warning ? "warning" : "critical";
}
[[nodiscard]] constexpr std::optional<severity> severity_named(std::string_view s) noexcept {
    if (s == "info") return severity::info;
    if (s == "warning") return severity::warning;
    if (s == "critical") return severity::critical;
    return std::nullopt;
}

/// The rule settings; `[alerts]` sets them for everything, `[alerts.source.<source>]` for one
/// source, `[alerts.account.<name>]` for one account (account beats source beats global).
/// A new setting goes into alerting::rules_fingerprint() too (docs/alerts.md "When rules run").
struct alert_rules {
    std::vector<int> expiring_days{30, 7, 1};  ///< descending, each 1..3650; empty = off
    std::int64_t quota_low_absolute = 0;        ///< fires when quota_left < this; 0 = off
    double quota_low_percent = 10;              ///< fires when left < this % of left + used; 0 = off
    int forecast_days = 14;                     ///< horizon of quota_forecast; 0 = off
    std::chrono::milliseconds forecast_window{std::chrono::hours(24 * 7)};  ///< samples considered
    int forecast_min_samples = 4;   ///< fewer samples in the window: no forecast
    double forecast_min_r2 = 0.8;   ///< a worse linear fit (noise) does not forecast
    int failing_after = 3;          ///< consecutive failed runs for source_failing; 0 = off
    std::chrono::milliseconds stale_after{std::chrono::hours(6)};  ///< source_stale; 0 = off
    std::array<severity, alert_kind_count> severities{
        severity::warning,   // expiring
        severity::critical,  // expired
        severity::warning,   // quota_low
        severity::critical,  // quota_exhausted
        severity::warning,   // quota_forecast
        severity::warning,   // resource_status
        severity::critical,  // source_failing
        severity::critical,  // source_stale
        severity::critical,  // auth_failing
        severity::critical,  // delivery_failed
        severity::warning,   // removed_early
    };
    /// removed_early is off unless `enabled_kinds` names it.
    std::array<bool, alert_kind_count> enabled{true, true, true, true, true, true, true, true, true, true, false};

    [[nodiscard]] severity severity_of(alert_kind k) const { return severities[static_cast<std::size_t>(k)]; }
    [[nodiscard]] bool on(alert_kind k) const { return enabled[static_cast<std::size_t>(k)]; }
};

/// `[[alerts.silence]]`: matching alerts keep their state but notify nobody until `until`.
/// An empty field matches everything.
struct alert_silence {
    std::string account;
    std::string source;
    std::string item;
    std::optional<alert_kind> kind;  ///< none: every kind
    std::int64_t until = 0;  ///< epoch milliseconds (UTC)
    std::string comment;

    /// Whether the silence reaches a source of an account (an empty field matches any).
    [[nodiscard]] bool scopes(std::string_view acct, std::string_view src) const {
        return (account.empty() || account == acct) && (source.empty() || source == src);
    }
};

/// Which notifications a sink takes; an empty list matches everything.
struct sink_filter {
    std::vector<alert_kind> kinds;
    severity min_severity = severity::info;
    std::vector<std::string> accounts;
};

enum class sink_type { log, jsonl, webhook, alertmanager, exec };
[[nodiscard]] constexpr std::string_view to_string(sink_type t) noexcept {
    switch (t) {
        case sink_type::log: return "log";
        case sink_type::jsonl: return "jsonl";
        case sink_type::webhook: return "webhook";
        case sink_type::alertmanager: return "alertmanager";
        case sink_type::exec: return "exec";
    }
    return "log";
}

/// `[[alerts.sink]]`: one place notifications go.
/// A label notifications are grouped by (docs/alert-delivery.md "Grouping").
enum class group_label { account, source, kind, severity, item };
inline constexpr std::array<std::string_view, 5> group_label_names{"account", "source", "kind", "severity", "item"};
[[nodiscard]] constexpr std::string_view to_string(group_label l) noexcept {
    return group_label_names[static_cast<std::size_t>(l)];
}

/// How a sink groups notifications, as Alertmanager does: one notification per group and
/// delivery pass, listing the group's new, repeated and resolved alerts.
struct grouping {
    std::vector<group_label> by{group_label::account, group_label::kind};  ///< empty = one group
    /// A new group is first sent this long after its oldest alert was queued.
    std::chrono::milliseconds wait{0};
    /// A group that was sent is sent again (with what arrived since) no sooner than this.
    std::chrono::milliseconds interval{std::chrono::minutes(5)};
    /// A larger group goes out as several notifications, the most urgent alerts first.
    int max_alerts = 500;
};

struct sink_config {
    std::string name;  ///< unique; deliveries are tracked per sink name (default: the type)
    sink_type type = sink_type::log;
    sink_filter filter;
    std::filesystem::path path;  ///< jsonl: the file appended to
    endpoint url;                ///< webhook: the POST target; alertmanager: its base URL (…/api/v2/alerts is appended)
    /// webhook/alertmanager: url_env|url_file|url_credential instead of `url`, for a URL whose path
    /// or query is the secret; resolved when the sink is made, then parsed like `url`.
    secret_ref url_secret;
    std::vector<std::pair<std::string, std::string>> headers;  ///< webhook/alertmanager: extra request headers
    secret_ref hmac_secret;  ///< webhook: hmac_secret_env|_file|_credential; signs the body when set
    std::string signature_header = "X-Subsync-Signature";  ///< carries "sha256=<hex>"
    std::vector<std::string> argv;  ///< exec: program and arguments, no shell
    /// exec: variables copied from the daemon's environment when set (systemd's PassEnvironment=).
    /// Never one a secret is read from (any `*_env` key): the config check refuses that.
    std::vector<std::string> pass_env;
    /// exec: variables set to these values (systemd's Environment=); they win over pass_env.
    std::vector<std::pair<std::string, std::string>> env;
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};  ///< one delivery attempt
    /// alertmanager: `by` is empty and the timers zero (Alertmanager groups alerts itself), and
    /// max_alerts is the batch per POST.
    grouping group;
};

struct alerts_config {
    alert_rules rules;  ///< the global rules
    /// Resolved rules per (account, source) that differ from `rules`; see rules_for().
    struct scoped_rules {
        std::string account;  ///< empty = every account
        std::string source;   ///< empty = every source ("purchased_groups" | "subscription_resources")
        alert_rules rules;
    };
    std::vector<scoped_rules> scoped;
    /// A still-firing alert is notified again after this long; nothing else repeats.
    std::chrono::milliseconds repeat_interval{std::chrono::hours(24)};
    /// Delivery: attempts per (notification, sink) before it is dead-lettered, and the backoff between them.
    int max_attempts = 20;
    std::chrono::milliseconds retry_base{std::chrono::seconds(5)};
    std::chrono::milliseconds retry_max{std::chrono::minutes(10)};
    /// `sync --once`: how long to keep delivering after the sync; what is left waits for the next run.
    std::chrono::milliseconds flush_timeout{std::chrono::seconds(30)};
    std::vector<alert_silence> silences;
    std::vector<sink_config> sinks;  ///< none configured: one `log` sink named "log"

    /// The most specific rules for (account, source): account+source, account, source, global.
    [[nodiscard]] const alert_rules& rules_for(std::string_view account, std::string_view source) const {
        const alert_rules* best = &rules;
        int best_score = 0;
        for (const auto& s : scoped) {
            if ((!s.account.empty() && s.account != account) || (!s.source.empty() && s.source != source)) continue;
            const int score = (s.account.empty() ? 0 : 2) + (s.source.empty() ? 0 : 1);
            if (score > best_score) {
                best = &s.rules;
                best_score = score;
            }
        }
        return *best;
    }
};

struct tls_config {
    std::filesystem::path ca_file;  ///< empty: the system trust store
};

/// `[[destination]]`: a database the local record is replicated into (docs/destinations.md).
enum class destination_type { postgresql };

/// The tables a destination can receive, in replication order.
inline constexpr std::array<std::string_view, 5> destination_table_names{
    "purchased_groups", "subscription_resources", "changes", "sync_runs", "alerts"};

struct destination_config {
    std::string name;  ///< unique; the metric label (default: the type)
    destination_type type = destination_type::postgresql;
    /// This daemon's name in the shared database: every row is keyed by it, so several daemons
    /// (each with its own SQLite file) never collide. Required.
    std::string instance;
    secret_ref dsn;                         ///< dsn_env | dsn_file | dsn_credential: a libpq connection string
    std::string schema = "subsync";         ///< the PostgreSQL schema the tables live in
    std::vector<std::string> tables{destination_table_names.begin(), destination_table_names.end()};
    std::string sslmode;                    ///< libpq sslmode; empty: what the DSN (or libpq) says
    std::filesystem::path sslrootcert;      ///< libpq sslrootcert; empty: what the DSN says
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds statement_timeout{std::chrono::seconds(60)};  ///< every statement, COPY included
    std::chrono::milliseconds retry_interval{std::chrono::seconds(30)};    ///< a destination that is down
    int batch_rows = 500;  ///< rows per INSERT of an incremental replication

    [[nodiscard]] bool wants(std::string_view table) const {
        for (const auto& t : tables)
            if (t == table) return true;
        return false;
    }
};

struct config {
    std::filesystem::path source;  ///< the file it was loaded from, for messages
    storage_config storage;
    exports_config exports;
    sync_config sync;
    daemon_config daemon;
    metrics_config metrics;
    tls_config tls;
    alerts_config alerts;
    std::vector<account_config> accounts;
    std::vector<destination_config> destinations;
    /// Accepted but worth logging at startup (e.g. a plain http:// endpoint), as
    /// `FILE:LINE: KEY: what`.
    std::vector<std::string> warnings;
};

}  // namespace subsync::config
