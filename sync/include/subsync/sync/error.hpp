#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace subsync::sync {

/// What kind of thing went wrong; decides retry and exit behaviour.
enum class error_kind {
    network,      ///< resolve/connect/reset/EOF mid-response
    timeout,      ///< a deadline expired
    tls,          ///< handshake or certificate verification failed
    http_status,  ///< the API answered a non-success status
    auth,         ///< credentials missing or rejected
    parse,        ///< the body is not what the contract says
    incomplete,   ///< the listing does not add up (count vs total)
    cancelled,    ///< the operation was stopped
};

[[nodiscard]] std::string_view to_string(error_kind k) noexcept;

/// A failure that is a normal outcome of talking to a cloud API. The message
/// names where (account, source, page, field) and never holds a secret.
struct error {
    error() = default;
    error(error_kind k, std::string msg, unsigned status = 0, std::string request = {})
        : kind(k), message(std::move(msg)), http_status(status), request_id(std::move(request)) {}

    error_kind kind = error_kind::network;
    std::string message;
    unsigned http_status = 0;  ///< for http_status and auth
    std::string request_id;    ///< the API's X-Request-Id, when it sent one
};

/// Lets boost::system::result<T, error>::value() throw a std::runtime_error.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

template <class T>
using result = boost::system::result<T, error>;

}  // namespace subsync::sync
