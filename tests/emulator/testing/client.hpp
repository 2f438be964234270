#pragma once
// A small HTTP(S) client for the emulator's own tests, over real loopback sockets: keep-alive,
// TLS verified against the emulator's certificate, and a deadline on every exchange so a stalled
// emulator shows up as beast::error::timeout instead of a hung test. Header-only; include it as
// "emulator/testing/client.hpp" from tests/.

#include "subsync/emulator/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::emulator::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using header_list = std::vector<std::pair<std::string, std::string>>;
using response = http::response<http::string_body>;

/// One keep-alive connection to `server`; TLS when the server serves it.
class client {
public:
    explicit client(const server& s, std::chrono::milliseconds deadline = std::chrono::seconds(10))
        : deadline_(deadline), host_("127.0.0.1:" + std::to_string(s.port())), tls_context_(asio::ssl::context::tls_client) {
        const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), s.port());
        if (!s.base_url().starts_with("https://")) {
            plain_.emplace(ioc_);
            plain_->connect(endpoint);
            return;
        }
        const std::string pem = s.cert_pem();
        tls_context_.add_certificate_authority(asio::buffer(pem));
        tls_context_.set_verify_mode(asio::ssl::verify_peer);
        tls_.emplace(ioc_, tls_context_);
        tls_->set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
        beast::get_lowest_layer(*tls_).connect(endpoint);
        tls_->handshake(asio::ssl::stream_base::client);
    }

    /// "127.0.0.1:PORT", the Host header sent unless `headers` has one.
    const std::string& host() const { return host_; }

    /// Sends one request and reads the response; throws boost::system::system_error on any
    /// failure (beast::error::timeout past the deadline).
    response send(http::verb verb, std::string_view target, const header_list& headers, std::string body = {}) {
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, host_);
        for (const auto& [name, value] : headers) {
            req.set(name, value);
        }
        req.body() = std::move(body);
        req.prepare_payload();
        response res;
        if (tls_) {
            exchange(*tls_, req, res);
        } else {
            exchange(*plain_, req, res);
        }
        return res;
    }

    response get(std::string_view target, const header_list& headers) {
        return send(http::verb::get, target, headers);
    }

private:
    // Async under the hood: beast::tcp_stream deadlines apply to asynchronous operations only.
    template <class Stream>
    void exchange(Stream& stream, http::request<http::string_body>& req, response& res) {
        boost::system::error_code result;
        beast::get_lowest_layer(stream).expires_after(deadline_);
        http::async_write(stream, req, [&](boost::system::error_code ec, std::size_t) {
            if (ec) {
                result = ec;
                return;
            }
            beast::get_lowest_layer(stream).expires_after(deadline_);
            http::async_read(stream, buffer_, res, [&](boost::system::error_code read_ec, std::size_t) {
                result = read_ec;
            });
        });
        ioc_.restart();
        ioc_.run();
        if (result) {
            throw boost::system::system_error(result);
        }
    }

    std::chrono::milliseconds deadline_;
    std::string host_;
    asio::io_context ioc_;
    asio::ssl::context tls_context_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
    std::optional<beast::tcp_stream> plain_;
    beast::flat_buffer buffer_;
};

}  // namespace subsync::emulator::testing
