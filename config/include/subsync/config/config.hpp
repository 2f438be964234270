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

enum class auth_type { token };

struct auth_config {
    auth_type type = auth_type::token;
    secret_ref token;  ///< token_env | token_file | token_credential
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
};

struct sync_config {
    std::chrono::milliseconds interval{std::chrono::minutes(15)};
    int page_size = 100;   ///< 1..500
    int concurrency = 8;   ///< pages in flight per source, 1..64
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};  ///< per request
};

struct tls_config {
    std::filesystem::path ca_file;  ///< empty: the system trust store
};

struct config {
    std::filesystem::path source;  ///< the file it was loaded from, for messages
    storage_config storage;
    sync_config sync;
    tls_config tls;
    std::vector<account_config> accounts;
    /// Accepted but worth logging at startup (e.g. a plain http:// endpoint), as
    /// `FILE:LINE: KEY: what`.
    std::vector<std::string> warnings;
};

}  // namespace subsync::config
