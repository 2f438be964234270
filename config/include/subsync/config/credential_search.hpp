#pragma once
// Where a `X_credential` name points when the process does not run under its unit (no
// $CREDENTIALS_DIRECTORY): the places systemd's LoadCredential= would have read it from. Used by
// `subsyncd check-config`, so the documented `sudo -u subsync subsyncd check-config` checks the
// shipped config's credentials instead of failing because it is not a service.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::config {

/// One place a credential can come from: names starting with `prefix` are the file
/// `dir / <name without prefix>` (LoadCredential=ID:DIR names each file ID_<file name>).
struct credential_location {
    std::string prefix;         ///< "subsync_" for the units' LoadCredential=subsync:DIR; "" for a store
    std::filesystem::path dir;  ///< where the files are
    std::string origin;         ///< what systemd setting this mirrors, for messages
};

/// The search list of check-config: the shipped units' `LoadCredential=subsync:/etc/subsync/credentials`,
/// then the stores systemd searches for `LoadCredential=NAME` without a path (/etc/credstore,
/// /run/credstore).
[[nodiscard]] std::vector<credential_location> default_credential_search();

/// `--credentials-dir DIR`: every credential is DIR/<name>, as in $CREDENTIALS_DIRECTORY.
[[nodiscard]] credential_location credentials_dir_location(const std::filesystem::path& dir);

/// Where a credential was found.
struct located_credential {
    std::filesystem::path file;
    std::string origin;  ///< the credential_location's origin
    /// False when the file's existence cannot be checked by this user (EACCES on it or its
    /// directory; /etc/subsync/credentials is root-only and systemd reads it as root).
    bool accessible = true;
};

/// The first location of `search` holding a file for credential `name`, or one this user may not
/// look into; nullopt when no location has it. `name` must be a plain file name (no '/').
[[nodiscard]] std::optional<located_credential> locate_credential(std::string_view name,
                                                                  const std::vector<credential_location>& search);

}  // namespace subsync::config
