#pragma once

#include <subsync/config/config.hpp>
#include <subsync/config/secret.hpp>
#include <subsync/config/secret_source.hpp>
#include <subsync/sync/error.hpp>
#include <subsync/sync/http_client.hpp>
#include <subsync/sync/records.hpp>
#include <subsync/sync/retry.hpp>

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

    /// A new sync round begins: a failure remembered from the last one (an IAM
    /// outage, a refused password) may be tried again.
    virtual void new_round() {}

    /// The X-Project-Id requests carry (AK/SK), looked up at IAM when the config names
    /// only the project; empty when none is sent.
    virtual boost::asio::awaitable<result<std::string>> project_id();

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
                                                                         const transport& net, retry_policy retry,
                                                                         clock_fn now);

/// Resolves account `index`'s X-Project-Id now, on its own event loop (for check-config).
[[nodiscard]] result<std::string> resolve_project_id(const config::config& cfg, std::size_t index,
                                                     const config::environment& env, clock_fn now);

}  // namespace subsync::sync
