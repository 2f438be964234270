#include <subsync/sync/auth.hpp>

namespace subsync::sync {
namespace {

class token_authenticator final : public authenticator {
public:
    explicit token_authenticator(config::secret token) : token_(std::move(token)) {}

    boost::asio::awaitable<result<void>> authorize(http_request& req, const config::endpoint&) override {
        req.headers.push_back({"X-Auth-Token", token_.reveal()});
        co_return result<void>{};
    }

private:
    config::secret token_;
};

}  // namespace

std::shared_ptr<authenticator> make_token_authenticator(config::secret token) {
    return std::make_shared<token_authenticator>(std::move(token));
}

}  // namespace subsync::sync
