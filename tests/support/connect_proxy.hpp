#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace subsync::test {

/// A minimal HTTP CONNECT proxy on 127.0.0.1 (its own thread), as corporate
/// networks put in front of the cloud: it tunnels bytes and records targets.
class connect_proxy {
public:
    connect_proxy();
    ~connect_proxy();
    connect_proxy(const connect_proxy&) = delete;
    connect_proxy& operator=(const connect_proxy&) = delete;

    [[nodiscard]] std::uint16_t port() const;
    /// "host:port" of every CONNECT it tunnelled, in order.
    [[nodiscard]] std::vector<std::string> targets() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::test
