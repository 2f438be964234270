#include "systemd_protocol.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>

namespace subsync::daemon::systemd {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

/// An AF_UNIX address and its length: a path is NUL-terminated, an abstract name ('@' stands for
/// the leading NUL byte) is exactly as long as the name, with no terminator (unix(7)).
struct unix_address {
    sockaddr_un addr{};
    socklen_t length = 0;
};

std::optional<unix_address> address_of(std::string_view name) {
    unix_address a;
    a.addr.sun_family = AF_UNIX;
    const bool abstract = !name.empty() && name.front() == '@';
    if (name.empty() || (name.front() != '/' && !abstract)) return std::nullopt;
    // A path needs room for its terminator; an abstract name uses all of sun_path.
    if (name.size() + (abstract ? 0 : 1) > sizeof(a.addr.sun_path)) return std::nullopt;
    std::memcpy(a.addr.sun_path, name.data(), name.size());
    if (abstract) a.addr.sun_path[0] = '\0';
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
    return a;
}

/// A datagram socket closed at scope exit.
class datagram_socket {
public:
    datagram_socket() : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
    ~datagram_socket() {
        if (fd_ >= 0) ::close(fd_);
    }
    datagram_socket(const datagram_socket&) = delete;
    datagram_socket& operator=(const datagram_socket&) = delete;

    [[nodiscard]] int fd() const noexcept { return fd_; }

private:
    int fd_;
};

std::error_code send_datagram(const unix_address& to, std::string_view bytes, int send_buffer) {
    datagram_socket s;
    if (s.fd() < 0) return last_error();
    // Best effort, as systemd's client: the kernel caps it at net.core.wmem_max, and the
    // datagram's size limit follows the send buffer.
    if (send_buffer > 0) ::setsockopt(s.fd(), SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
    // MSG_NOSIGNAL: a peer that went away is an error to report, not a SIGPIPE.
    const ssize_t n = ::sendto(s.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&to.addr), to.length);  // NOLINT: C API
    if (n < 0) return last_error();
    return {};
}

template <typename T>
std::optional<T> parse_decimal(const char* s) noexcept {
    if (s == nullptr) return std::nullopt;
    const std::string_view text(s);
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

}  // namespace

std::error_code notify(std::string_view socket_name, std::string_view message) {
    const auto to = address_of(socket_name);
    if (!to) return std::make_error_code(std::errc::invalid_argument);
    return send_datagram(*to, message, 0);
}

std::chrono::microseconds watchdog_timeout(const char* watchdog_usec, const char* watchdog_pid, pid_t self) noexcept {
    const auto usec = parse_decimal<std::uint64_t>(watchdog_usec);
    // 0 and UINT64_MAX (USEC_INFINITY) mean "no timeout" to systemd.
    if (!usec || *usec == 0 || *usec > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return std::chrono::microseconds{0};
    if (watchdog_pid != nullptr) {
        const auto pid = parse_decimal<pid_t>(watchdog_pid);
        if (!pid || *pid <= 0 || *pid != self) return std::chrono::microseconds{0};
    }
    return std::chrono::microseconds(static_cast<std::int64_t>(*usec));
}

std::string journal_datagram(const std::vector<std::string>& fields) {
    std::string out;
    for (const auto& f : fields) {
        const auto eq = f.find('=');
        if (eq == std::string::npos) throw std::invalid_argument("journal field without '=': " + f.substr(0, 64));
        const std::string_view key(f.data(), eq);
        const std::string_view value = std::string_view(f).substr(eq + 1);
        if (value.find('\n') == std::string_view::npos) {
            out += f;
            out += '\n';
            continue;
        }
        // The binary-safe form: the protocol fixes little-endian whatever the host's order.
        out += key;
        out += '\n';
        auto size = static_cast<std::uint64_t>(value.size());
        for (int i = 0; i < 8; ++i, size >>= 8) out += static_cast<char>(size & 0xffu);
        out += value;
        out += '\n';
    }
    return out;
}

std::error_code send_journal(const std::vector<std::string>& fields, const char* socket_path) {
    const auto to = address_of(socket_path);
    if (!to) return std::make_error_code(std::errc::invalid_argument);
    constexpr int journal_send_buffer = 8 << 20;  // what systemd's client asks for
    return send_datagram(*to, journal_datagram(fields), journal_send_buffer);
}

}  // namespace subsync::daemon::systemd
