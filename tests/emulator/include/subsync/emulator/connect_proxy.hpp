#pragma once
// The emulator's CONNECT proxy mode: a minimal HTTP proxy on 127.0.0.1, as corporate networks put
// in front of the cloud, so tests (and `subsync-emulator --connect-proxy-port-file`) can run a sync
// with HTTPS_PROXY set and check that it went through the tunnel. It answers CONNECT only, tunnels
// raw bytes (TLS stays end to end between the client and the emulator) and records what it saw.
// Asio stays out of this header (pimpl).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::emulator {

/// How a connect_proxy listens and behaves.
struct connect_proxy_options {
    std::uint16_t port = 0;  ///< 0 = ephemeral; read back with connect_proxy::port()
    /// A connection with no byte either way for this long is closed (also bounds reading the
    /// CONNECT request).
    std::chrono::milliseconds idle_timeout{30'000};
    /// Called on the proxy's thread with "host:port" when a tunnel is established, before the
    /// client is told so.
    std::function<void(std::string_view target)> on_tunnel;
};

/// A CONNECT proxy on its own io_context thread, bound to 127.0.0.1 and listening from
/// construction. It tunnels to loopback addresses only (403 otherwise), so the emulator process
/// never relays to the outside; other methods get 405, unreachable targets 502.
class connect_proxy {
public:
    /// Binds 127.0.0.1:opts.port and starts; throws std::system_error if it cannot.
    explicit connect_proxy(connect_proxy_options opts = {});
    ~connect_proxy();  ///< closes every tunnel and joins
    connect_proxy(const connect_proxy&) = delete;
    connect_proxy& operator=(const connect_proxy&) = delete;

    /// The bound port.
    [[nodiscard]] std::uint16_t port() const;
    /// "http://127.0.0.1:PORT", a value for HTTPS_PROXY.
    [[nodiscard]] std::string url() const;
    /// "host:port" of every CONNECT request received, in order, refused ones included; thread-safe.
    [[nodiscard]] std::vector<std::string> targets() const;
    /// Tunnels established (upstream connected, answered 200) since start; counted before the 200
    /// is sent, so a client that has read it sees its tunnel here. Thread-safe.
    [[nodiscard]] std::uint64_t tunnels() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::emulator
