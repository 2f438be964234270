#pragma once
// Everything the emulator decides, without sockets: rate limit, IAM, authentication, routing,
// faults and the counters about them. The server reads a request, asks handle(), and delivers the
// decision. Thread-safe: handle() runs on the io thread, the rest is called by tests.

#include "faults.hpp"
#include "gateway.hpp"
#include "routes.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace subsync::emulator::detail {

/// Counters kept by the service (the server keeps the connection ones).
struct service_counters {
    std::uint64_t purchases_requests = 0, orders_requests = 0, token_requests = 0, signature_failures = 0,
                  rate_limited = 0, throttled = 0, project_requests = 0;
};

/// The switchable modes of server.hpp, as one value the service copies per request.
struct modes {
    listing_modes listing;
    unsigned throttle_max = 0;  ///< 0: no windowed throttle
    std::chrono::milliseconds throttle_window{0};
    unsigned iam_outage_left = 0;
    outage_kind iam_outage = outage_kind::status_503;
    std::vector<project> projects;
    std::optional<std::string> required_project_id;
    bool require_content_type = false;
    unsigned close_left = 0;
    unsigned continue_left = 0;  ///< answers still to be preceded by 100 Continue
    bool continue_always = false;
    std::size_t pad_bytes = 0;  ///< "x_padding" of this many characters in listing answers
    bool endless = false;       ///< listing answers are chunked and never end
};

class service {
public:
    service(const options& opts, dataset data);

    /// The answer to `request`, read at `wall` (compared with X-Sdk-Date, printed by IAM) and
    /// `now` (token expiry, lockouts, rate limit).
    decision handle(const incoming& request, wall_time wall, steady_time now);

    void set_dataset(dataset data);
    dataset current_dataset() const;

    /// Sets the fault of purchases page `page_no`, replacing any.
    void set_page_fault(int page_no, fault f);
    /// Sets the fault of the orders listing, replacing any.
    void set_orders_fault(fault f);
    void change_dataset_after_page(int page_no, dataset data);
    void clear_faults();

    /// Runs `change` on the modes under the lock.
    template <class F>
    void update_modes(F change) {
        const std::lock_guard lock(mutex_);
        change(modes_);
    }
    void echo_secrets(endpoint where, int page_no);

    void expire_all_tokens();
    unsigned consecutive_signature_failures(const std::string& ak, steady_time now) const;

    service_counters counters() const;
    std::uint64_t page_requests(int page_no) const;
    void reset_counters();

private:
    struct dataset_change {
        int after_page = 0;
        std::shared_ptr<const dataset> data;
    };

    bool admit(steady_time now);  // the max_rps token bucket
    std::optional<reply> throttle(endpoint where, steady_time now, std::string_view request_id);
    std::optional<reply> iam(const incoming& request, endpoint where, wall_time wall, steady_time now);
    std::optional<reply> gateway_checks(const incoming& request, endpoint where, std::optional<int> page);
    void finish(decision& d);  // interim 100 Continue, the abrupt close, padding and endless bodies
    std::optional<fault> take_fault(endpoint where, std::optional<int> page);
    std::shared_ptr<const dataset> dataset_for(endpoint where, std::optional<int> page);

    const options opts_;
    gateway gateway_;

    mutable std::mutex mutex_;              // guards everything below but the atomics
    std::shared_ptr<const dataset> data_;  // swapped whole, so a request sees one version
    std::map<int, fault> page_faults_;
    std::optional<fault> orders_fault_;
    std::optional<dataset_change> change_;
    std::map<int, std::uint64_t> page_requests_;
    modes modes_;
    std::map<int, bool> echo_pages_;
    bool echo_orders_ = false, echo_iam_ = false;
    struct window {
        std::optional<steady_time> start;
        unsigned used = 0;
    };
    std::map<endpoint, window> windows_;
    double bucket_ = 0;  // requests the rate limit still admits
    std::optional<steady_time> bucket_filled_;

    std::atomic<std::uint64_t> purchases_requests_{0}, orders_requests_{0}, token_requests_{0},
        signature_failures_{0}, rate_limited_{0}, throttled_{0}, project_requests_{0};
};

}  // namespace subsync::emulator::detail
