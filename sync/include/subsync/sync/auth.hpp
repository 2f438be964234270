#pragma once

#include <subsync/config/config.hpp>
#include <subsync/config/secret.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/http_client.hpp>
#include <subsync/sync/records.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>

namespace subsync::sync {

struct transport;

/// Puts an account's credentials on a request. One per account, shared by its
/// sources and workers; implementations keep their secrets in config::secret.
class authenticator {
public:
    virtual ~authenticator() = default;

    /// Adds the credential headers for a request to `ep` (and may rewrite its
    /// target into the canonical form it signed).
    virtual boost::asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint& ep) = 0;

    /// The API answered 401 to `sent`. True when authorising again may succeed
    /// (a token that can be renewed); false when a retry would only repeat the
    /// failure (a fixed token, a bad signature: an AK locks after 5 failures).
    virtual bool rejected(const http_request& sent);

    /// Token requests made so far (IAM password auth), for logs and tests.
    [[nodiscard]] virtual int token_requests() const noexcept { return 0; }
};

/// The wall clock, as epoch milliseconds (injected: only daemon/ reads the real one).
using clock_fn = std::function<epoch_ms()>;

/// Builds the account's authenticator, resolving its secrets now. The error
/// names the config key and the variable or file, never a value.
/// `net` must outlive the authenticator (the password type uses it to reach IAM).
[[nodiscard]] result<std::shared_ptr<authenticator>> make_authenticator(const config::account_config& account,
                                                                         std::size_t index,
                                                                         const config::environment& env,
                                                                         const transport& net, clock_fn now);

}  // namespace subsync::sync
