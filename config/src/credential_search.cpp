#include <subsync/config/credential_search.hpp>

#include <system_error>

namespace subsync::config {

std::vector<credential_location> default_credential_search() {
    // Mirrors systemd/subsyncd.service and subsyncd-sync.service (tests/daemon_units_test.cpp
    // checks the units still say so), then systemd.exec(5)'s search path for a credential loaded
    // by name only. /usr/lib/credstore is left out: packages ship no secrets.
    return {
        {"subsync_", "/etc/subsync/credentials", "LoadCredential=subsync:/etc/subsync/credentials (subsyncd.service)"},
        {"", "/etc/credstore", "systemd credential store /etc/credstore (LoadCredential=NAME)"},
        {"", "/run/credstore", "systemd credential store /run/credstore (LoadCredential=NAME)"},
    };
}

credential_location credentials_dir_location(const std::filesystem::path& dir) {
    return {"", dir, "--credentials-dir " + dir.string()};
}

std::optional<located_credential> locate_credential(std::string_view name,
                                                    const std::vector<credential_location>& search) {
    for (const auto& loc : search) {
        if (!name.starts_with(loc.prefix) || name.size() == loc.prefix.size()) continue;
        const auto file = loc.dir / name.substr(loc.prefix.size());
        std::error_code ec;
        const auto st = std::filesystem::status(file, ec);
        if (ec == std::errc::permission_denied) return located_credential{file, loc.origin, false};
        if (!ec && std::filesystem::exists(st)) return located_credential{file, loc.origin, true};
    }
    return std::nullopt;
}

}  // namespace subsync::config
