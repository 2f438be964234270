#pragma once
// Self-signed certificate generation, kept in its own TU: OpenSSL's X509 API, no Asio.

#include <string>

namespace subsync::emulator::detail {

/// A certificate and its private key, both PEM.
struct pem_pair {
    std::string cert;
    std::string key;
};

/// A fresh self-signed EC P-256 certificate for IP:127.0.0.1 and DNS:localhost, valid from five
/// minutes ago (clock skew) for one day. Throws std::runtime_error with OpenSSL's reason.
pem_pair make_self_signed_cert();

}  // namespace subsync::emulator::detail
