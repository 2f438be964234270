#pragma once
// A test receiver for alert webhooks and Alertmanager's POST /api/v2/alerts: HTTPS (or http) on
// 127.0.0.1:0, its own io_context thread. It records every request, can be down (closes each
// connection unanswered), answer a given status, stall (read and never answer), verify an
// HMAC-SHA256 signature header, and validate Alertmanager v2 `postableAlerts` bodies.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace subsync::emulator {

struct receiver_options {
    bool tls = true;
    /// When set, requests must carry `signature_header: sha256=<hex HMAC-SHA256(secret, body)>`;
    /// others are answered 401 (and recorded with signature_ok = false).
    std::string hmac_secret;
    std::string signature_header = "X-Subsync-Signature";
};

/// One request the receiver read completely.
struct received_request {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    unsigned status = 0;          ///< what it answered; 0 = closed unanswered (down) or stalled
    bool signature_ok = false;    ///< only meaningful with hmac_secret
    std::string validation_error; ///< /api/v2/alerts bodies that are not valid postableAlerts

    /// The first header of that name (case-insensitive), or empty.
    [[nodiscard]] std::string header(std::string_view name) const;
};

/// Checks `body` against Alertmanager's v2 OpenAPI `postableAlerts`: a non-empty array of objects
/// with a non-empty `labels` string map (valid label names, non-empty values), optional
/// `annotations` string map, `startsAt`/`endsAt` RFC 3339 date-times with endsAt not before
/// startsAt, optional string `generatorURL`, and no other keys. Empty when valid.
[[nodiscard]] std::string validate_postable_alerts(const std::string& body);

class webhook_receiver {
public:
    explicit webhook_receiver(receiver_options opts = {});
    ~webhook_receiver();  ///< stops and joins
    webhook_receiver(const webhook_receiver&) = delete;
    webhook_receiver& operator=(const webhook_receiver&) = delete;

    /// "https://127.0.0.1:PORT" (or http).
    [[nodiscard]] std::string base_url() const;
    /// The certificate (a client's tls.ca_file); empty without TLS.
    [[nodiscard]] std::string cert_pem() const;

    /// Down: every connection is closed after its request is read, unanswered.
    void set_down(bool down);
    /// The status answered to accepted requests (default 200).
    void set_status(unsigned status);
    /// Stalled: requests are read and recorded, and never answered.
    void set_stall(bool stall);

    /// Every request read so far, in order.
    [[nodiscard]] std::vector<received_request> requests() const;
    /// The bodies of requests answered 2xx, in order.
    [[nodiscard]] std::vector<std::string> accepted_bodies() const;
    /// Waits until at least `n` requests were read; false on timeout.
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;
    /// Waits until at least `n` requests were answered 2xx; false on timeout.
    bool wait_for_accepted(std::size_t n, std::chrono::milliseconds timeout) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace subsync::emulator
