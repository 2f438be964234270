#pragma once

#include <subsync/config/config.hpp>
#include <subsync/config/secret.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/http_client.hpp>

#include <boost/asio/awaitable.hpp>

#include <memory>

namespace subsync::sync {

/// Puts an account's credentials on a request. One per account, shared by its
/// sources and workers; implementations keep their secrets in config::secret.
class authenticator {
public:
    virtual ~authenticator() = default;

    /// Adds the credential headers for a request to `ep`.
    virtual boost::asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint& ep) = 0;
};

/// `type = "token"`: sends `X-Auth-Token` with a ready token.
[[nodiscard]] std::shared_ptr<authenticator> make_token_authenticator(config::secret token);

}  // namespace subsync::sync
