#pragma once
// The two systemd interfaces subsyncd speaks, written against their documents instead of linking
// libsystemd, which mapped gcrypt, lzma, zstd, lz4 and libcap into every process for three calls
// (issue 19: resident memory). Both are declared stable and meant to be reimplemented:
// - the service notification protocol, sd_notify(3) "Notes":
//   https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html#Notes
// - the journal's native protocol: https://systemd.io/JOURNAL_NATIVE_PROTOCOL/

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace subsync::daemon::systemd {

/// Where journald listens for native-protocol datagrams.
inline constexpr const char* journal_socket = "/run/systemd/journal/socket";

/// Sends `message` (`KEY=VALUE` lines) as one datagram to the AF_UNIX socket `socket_name`
/// names ($NOTIFY_SOCKET): a path starting with '/', or an abstract name after '@'. An empty
/// error_code once sent; EINVAL for any other name or one longer than sun_path.
[[nodiscard]] std::error_code notify(std::string_view socket_name, std::string_view message);

/// The watchdog timeout systemd set for process `self`: $WATCHDOG_USEC when it is a positive
/// number of microseconds and $WATCHDOG_PID is unset or `self`; zero otherwise (as
/// sd_watchdog_enabled(3): a watchdog meant for another process, e.g. a parent that did not
/// unset it, is not ours). Null pointers stand for unset variables.
[[nodiscard]] std::chrono::microseconds watchdog_timeout(const char* watchdog_usec, const char* watchdog_pid,
                                                         pid_t self) noexcept;

/// One journal entry in the native protocol: each `KEY=VALUE` field as that line, or, when the
/// value holds a newline, `KEY\n`, its length as 64-bit little-endian, the bytes and `\n`.
/// Throws std::invalid_argument for a field without '='.
[[nodiscard]] std::string journal_datagram(const std::vector<std::string>& fields);

/// Sends journal_datagram(fields) to `socket_path`. An error when the entry did not reach it:
/// nobody listening (ENOENT, ECONNREFUSED), or too large for one datagram (EMSGSIZE, ENOBUFS;
/// systemd's own client then passes a sealed memfd, we leave that to the caller's fallback,
/// stderr, which journald reads too).
[[nodiscard]] std::error_code send_journal(const std::vector<std::string>& fields,
                                           const char* socket_path = journal_socket);

}  // namespace subsync::daemon::systemd
