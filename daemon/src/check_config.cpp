// `subsyncd check-config`: the config file, then every secret it names, resolved as the service
// would. Outside the unit there is no $CREDENTIALS_DIRECTORY, so `X_credential` names are looked
// up where LoadCredential= would read them (credential_search.hpp), or in --credentials-dir.

#include "commands.hpp"

#include <subsync/config/credential_search.hpp>
#include <subsync/config/load.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/daemon/cli.hpp>
#include <subsync/sync/engine.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <utility>
#include <vector>

namespace subsync::daemon {
namespace {

/// Where `ref`'s value comes from, for the operator (never the value).
std::string describe_source(const config::secret_ref& ref, const std::optional<std::filesystem::path>& unit_dir,
                            const std::optional<config::located_credential>& found) {
    if (!ref.env.empty()) return fmt::format("environment variable {}", ref.env);
    if (!ref.file.empty()) return fmt::format("file {}", ref.file);
    if (unit_dir) return fmt::format("credential \"{}\" in $CREDENTIALS_DIRECTORY ({})", ref.credential,
                                     (*unit_dir / ref.credential).string());
    return fmt::format("credential \"{}\" from {} ({})", ref.credential, found->file.string(), found->origin);
}

std::string searched_places(const std::string& name, const std::vector<config::credential_location>& search) {
    std::string out;
    for (const auto& loc : search) {
        if (!std::string_view(name).starts_with(loc.prefix) || name.size() == loc.prefix.size()) continue;
        if (!out.empty()) out += ", ";
        out += (loc.dir / name.substr(loc.prefix.size())).string();
    }
    return out.empty() ? "nowhere (no location serves this name)" : out;
}

}  // namespace

int run_check_config(const std::filesystem::path& path, const check_options& opts) {
    auto cfg = load_or_report(path);
    if (!cfg) return exit_usage;
    for (const auto& w : cfg->warnings) spdlog::warn("{}", w);

    // Credentials: --credentials-dir, else the unit's $CREDENTIALS_DIRECTORY, else the search.
    auto env = process_environment_with_warnings();  // a secret file others may read is named
    std::optional<std::filesystem::path> unit_dir = opts.credentials_dir ? std::nullopt : env.credentials_dir();
    std::vector<config::credential_location> search =
        opts.credentials_dir ? std::vector{config::credentials_dir_location(*opts.credentials_dir)}
                             : config::default_credential_search();
    if (!unit_dir) {
        env.credentials_dir = [] { return std::optional<std::filesystem::path>(); };
        env.credential_file = [search](const std::string& name) -> std::optional<std::filesystem::path> {
            auto found = config::locate_credential(name, search);
            if (!found) return std::nullopt;
            return found->file;
        };
    }

    int missing = 0;
    // Every secret: the accounts' credentials, then each destination's connection string.
    std::vector<std::pair<std::string, const config::secret_ref*>> secrets;
    for (std::size_t i = 0; i < cfg->accounts.size(); ++i)
        for (const auto& [name, ref] : secrets_of(cfg->accounts[i].auth))
            secrets.emplace_back(fmt::format("account[{}].auth.{}", i, name), ref);
    for (std::size_t i = 0; i < cfg->destinations.size(); ++i)
        secrets.emplace_back(fmt::format("destination[{}].dsn", i), &cfg->destinations[i].dsn);
    for (const auto& [key, ref] : secrets) {
        std::optional<config::located_credential> found;
        if (!ref->credential.empty() && !unit_dir) {
            found = config::locate_credential(ref->credential, search);
            if (!found) {
                fmt::print(stderr, "{}: {}_credential: no file for credential \"{}\"; looked in {} "
                           "(give the directory with --credentials-dir DIR)\n",
                           path.string(), key, ref->credential, searched_places(ref->credential, search));
                ++missing;
                continue;
            }
            if (!found->accessible) {
                // /etc/subsync/credentials is root-only: systemd reads it as root for the unit.
                fmt::print("{}_credential: credential \"{}\" would come from {} ({}); not checked: uid {} "
                           "may not look into {} (systemd reads it as root); run check-config as root to "
                           "check the file too\n",
                           key, ref->credential, found->file.string(), found->origin, ::getuid(),
                           found->file.parent_path().string());
                continue;
            }
        }
        auto s = config::resolve_secret(*ref, key, env);
        if (!s) {
            fmt::print(stderr, "{}: {}\n", path.string(), s.error());
            ++missing;
            continue;
        }
        fmt::print("{}: {}\n", key, describe_source(*ref, unit_dir, found));
    }
    if (missing > 0) {
        fmt::print(stderr, "{}\n", secret_failure_trailer);
        return exit_usage;
    }
    // An AK/SK account that names its project but not its id: ask IAM now, as a sync would.
    for (std::size_t i = 0; i < cfg->accounts.size(); ++i) {
        const auto& a = cfg->accounts[i];
        if (a.auth.type != config::auth_type::aksk || !a.auth.project_id.empty() || a.auth.project.empty()) continue;
        auto id = sync::resolve_project_id(*cfg, i, env, wall_clock_now);
        if (!id) {
            fmt::print(stderr, "{}: account[{}] ({}): {}\n", path.string(), i, a.name, id.error().message);
            ++missing;
        } else {
            fmt::print("account[{}] ({}): project \"{}\" is project_id {}\n", i, a.name, a.auth.project, *id);
        }
    }
    if (missing > 0) return exit_usage;
    fmt::print("{}: ok ({} account{}, database {}, exports in {})\n", path.string(), cfg->accounts.size(),
               cfg->accounts.size() == 1 ? "" : "s", cfg->storage.database.string(), cfg->storage.export_dir.string());
    return exit_ok;
}

}  // namespace subsync::daemon
