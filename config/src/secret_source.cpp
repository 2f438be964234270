#include <subsync/config/secret_source.hpp>

#include "detail/read_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include <sys/stat.h>
#include <utility>

namespace subsync::config {
namespace {

using secret_result = boost::system::result<secret, std::string>;

/// secret is explicitly constructible from std::string, which disables result's implicit error
/// constructor: errors are built with the tag.
secret_result failure(std::string message) { return {boost::system::in_place_error, std::move(message)}; }

// A token is a few KiB at most; anything larger is a wrong path, not a secret.
constexpr std::size_t max_secret_bytes = 64 * 1024;

/// Drops one trailing "\n" or "\r\n": what `echo` and editors append, never part of a token.
void strip_one_newline(std::string& s) {
    if (s.ends_with("\r\n"))
        s.resize(s.size() - 2);
    else if (s.ends_with('\n'))
        s.pop_back();
}

/// A secret goes into an HTTP header or a signature: a CR or LF would end the header and start
/// another (`tok\r\nX-Injected: evil`), other control bytes are never part of a real one.
bool has_control_character(std::string_view value) {
    return std::any_of(value.begin(), value.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

std::string control_character_message(const std::string& key, std::string_view where) {
    return fmt::format("{}: {} contains a control character (CR, LF, TAB, NUL...); a secret is one line of "
                       "printable text",
                       key, where);
}

/// Like ssh with a private key: a secret others can read is worth a word, not a refusal.
void warn_if_readable_by_others(const std::filesystem::path& file, const std::string& key, const environment& env) {
    struct ::stat st {};
    if (!env.warn || ::stat(file.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return;
    env.warn(fmt::format("{}: {} is accessible by group or others (mode {:04o}); chmod 600 it, or use a systemd "
                         "credential",
                         key, file.string(), st.st_mode & 07777));
}

secret_result from_file(const std::filesystem::path& file, const std::string& key, const environment& env) {
    auto content = detail::read_file(file, max_secret_bytes);
    if (!content) return failure(fmt::format("{}: {}", key, content.error()));
    warn_if_readable_by_others(file, key, env);
    std::string value = std::move(*content);
    strip_one_newline(value);
    if (value.empty()) return failure(fmt::format("{}: {} is empty", key, file.string()));
    if (has_control_character(value)) return failure(control_character_message(key, file.string()));
    return secret(std::move(value));
}

}  // namespace

environment environment::process() {
    return {
        [](const std::string& name) -> std::optional<std::string> {
            // The daemon reads the environment from its one thread; nothing calls setenv().
            const char* v = std::getenv(name.c_str());
            if (v == nullptr) return std::nullopt;
            return std::string(v);
        },
        []() -> std::optional<std::filesystem::path> {
            const char* v = std::getenv("CREDENTIALS_DIRECTORY");
            if (v == nullptr || *v == '\0') return std::nullopt;
            return std::filesystem::path(v);
        },
        {},  // credential_file: only check-config searches outside the unit
        {},  // warn: set by the commands that print warnings
    };
}

secret_result resolve_secret(const secret_ref& ref, std::string_view key, const environment& env) {
    const int given = int{!ref.env.empty()} + int{!ref.file.empty()} + int{!ref.credential.empty()};
    if (given == 0)
        return failure(fmt::format("{}: none of {}_env, {}_file, {}_credential is set", key, key, key, key));
    if (given > 1)
        return failure(fmt::format("{}: more than one of {}_env, {}_file, {}_credential is set", key, key, key, key));

    if (!ref.env.empty()) {
        const std::string k = fmt::format("{}_env", key);
        std::optional<std::string> value = env.lookup(ref.env);
        if (!value) return failure(fmt::format("{}: environment variable {} is not set", k, ref.env));
        if (value->empty()) return failure(fmt::format("{}: environment variable {} is empty", k, ref.env));
        if (has_control_character(*value))
            return failure(control_character_message(k, fmt::format("environment variable {}", ref.env)));
        return secret(std::move(*value));
    }
    if (!ref.file.empty()) return from_file(ref.file, fmt::format("{}_file", key), env);

    const std::string k = fmt::format("{}_credential", key);
    const std::optional<std::filesystem::path> dir = env.credentials_dir();
    if (!dir && !env.credential_file)
        return failure(fmt::format("{}: $CREDENTIALS_DIRECTORY is not set (is the unit missing LoadCredential=?)", k));
    // A credential is a plain name inside the directory; parse_config() enforces it, a
    // hand-built secret_ref might not.
    if (ref.credential.find('/') != std::string::npos || ref.credential == "." || ref.credential == "..")
        return failure(fmt::format("{}: \"{}\" is not a credential name (no '/')", k, ref.credential));
    if (dir) return from_file(*dir / ref.credential, k, env);
    const std::optional<std::filesystem::path> file = env.credential_file(ref.credential);
    if (!file)
        return failure(fmt::format("{}: $CREDENTIALS_DIRECTORY is not set and no file for credential \"{}\" was found "
                                   "where LoadCredential= would read it",
                                   k, ref.credential));
    return from_file(*file, k, env);
}

std::vector<std::string> secret_env_names(const config& cfg) {
    std::vector<std::string> names;
    const auto add = [&](const secret_ref& ref) {
        if (!ref.env.empty()) names.push_back(ref.env);
    };
    for (const auto& a : cfg.accounts) {
        add(a.auth.token);
        add(a.auth.password);
        add(a.auth.ak);
        add(a.auth.sk);
        add(a.auth.security_token);
    }
    for (const auto& s : cfg.alerts.sinks) {
        add(s.hmac_secret);
        add(s.url_secret);
    }
    for (const auto& d : cfg.destinations) add(d.dsn);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

}  // namespace subsync::config
