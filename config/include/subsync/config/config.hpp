#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
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
    std::string text;       ///< as written in the file, for messages

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

    // password
    endpoint iam_endpoint;
    std::string user;
    std::string domain;      ///< the account (domain) name the user belongs to
    secret_ref password;     ///< password_env | password_file | password_credential
    std::string project;     ///< scope by project name (e.g. "cn-north-4") ...
    std::string project_id;  ///< ... or by id; also X-Project-Id for aksk
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

struct sync_config {
    std::chrono::milliseconds interval{std::chrono::minutes(15)};
    /// `subsyncd run` waits interval ± a uniform random offset of at most this, so that many
    /// daemons started together do not hit the API in step. Absent in the file: interval / 10.
    std::chrono::milliseconds jitter{std::chrono::seconds(90)};
    int page_size = 100;   ///< 1..500
    int concurrency = 8;   ///< pages in flight per source, 1..64
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};  ///< per request, every step included
    std::chrono::milliseconds source_timeout{std::chrono::minutes(15)};  ///< a whole source, retries included
    int max_attempts = 5;  ///< per request, the first included; 1 = no retries
    std::chrono::milliseconds backoff_base{500};                      ///< first retry waits up to this
    std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};  ///< cap of one backoff (and Retry-After)
    double rate_limit = 20;  ///< requests per second per endpoint; 0 = unlimited
    int rate_burst = 10;     ///< requests allowed at once before the rate applies
    std::size_t body_limit = std::size_t{64} << 20;  ///< bytes of one response body
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

struct tls_config {
    std::filesystem::path ca_file;  ///< empty: the system trust store
};

struct config {
    std::filesystem::path source;  ///< the file it was loaded from, for messages
    storage_config storage;
    sync_config sync;
    daemon_config daemon;
    metrics_config metrics;
    tls_config tls;
    std::vector<account_config> accounts;
    /// Accepted but worth logging at startup (e.g. a plain http:// endpoint), as
    /// `FILE:LINE: KEY: what`.
    std::vector<std::string> warnings;
};

}  // namespace subsync::config
