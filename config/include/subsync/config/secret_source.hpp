#pragma once

#include <subsync/config/config.hpp>
#include <subsync/config/secret.hpp>

#include <boost/system/result.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::config {

/// What resolve_secret() may consult, as hooks so tests need not touch the process environment.
struct environment {
    /// getenv-like: the variable's value, or nullopt when it is not set.
    std::function<std::optional<std::string>(const std::string& name)> lookup;
    /// systemd's $CREDENTIALS_DIRECTORY, or nullopt when it is not set (or empty).
    std::function<std::optional<std::filesystem::path>()> credentials_dir;
    /// Without $CREDENTIALS_DIRECTORY: the file a credential name is read from, or nullopt when
    /// none is found (check-config's search, credential_search.hpp). Unset (empty) in the daemon
    /// and sync --once, where only the unit's credentials count.
    std::function<std::optional<std::filesystem::path>(const std::string& name)> credential_file;
    /// Where a warning about a secret's source goes (a file readable by group or others); unset: nowhere.
    std::function<void(const std::string& message)> warn;

    /// The real process environment (::getenv, $CREDENTIALS_DIRECTORY); `warn` is left unset.
    static environment process();
};

/// Reads the value `ref` points to: `_env` as is; `_file` and `_credential` with ONE trailing
/// "\n" or "\r\n" stripped. An empty value is an error, and so is a control character left in it
/// (CR, LF, NUL...: it would split an HTTP header). A `_file` or `_credential` file that group or
/// others may access is reported through `env.warn`. `key` names the secret in messages
/// (e.g. "account[0].auth.token" gives "account[0].auth.token_env: ..."); messages name the
/// variable or file and never contain the value.
/// Note: read the value with `*r` after checking; Boost 1.81 cannot `.value()`-throw a std::string.
boost::system::result<secret, std::string> resolve_secret(const secret_ref& ref, std::string_view key,
                                                          const environment& env);

/// Every environment variable a secret of `cfg` is read from (the values of its `*_env` keys),
/// sorted and without repeats: what must never reach a hook's environment.
[[nodiscard]] std::vector<std::string> secret_env_names(const config& cfg);

}  // namespace subsync::config
