// The server's test-facing controls: data, faults, token and key hooks. Thin forwards to the
// service, kept out of server.cpp so this TU pays nothing for Beast.

#include "subsync/emulator/server.hpp"

#include "service.hpp"

#include <stdexcept>
#include <utility>

namespace subsync::emulator {

namespace {

detail::fault status_fault(unsigned status, std::optional<unsigned> times, std::string retry_after) {
    detail::fault f;
    f.what = detail::fault::kind::status;
    f.status = status;
    f.remaining = times;
    f.retry_after = std::move(retry_after);
    return f;
}

detail::fault kind_fault(detail::fault::kind what, std::optional<unsigned> times) {
    detail::fault f;
    f.what = what;
    f.remaining = times;
    return f;
}

detail::fault drip_fault(std::size_t bytes_per_tick, std::chrono::milliseconds tick) {
    if (bytes_per_tick == 0 || tick.count() < 0) {
        throw std::invalid_argument("emulator: a drip needs bytes_per_tick > 0 and tick >= 0");
    }
    detail::fault f;
    f.what = detail::fault::kind::drip;
    f.pace = {bytes_per_tick, tick};
    return f;
}

detail::fault malform_fault(malformation kind) {
    detail::fault f;
    f.what = detail::fault::kind::malform;
    f.malformed = kind;
    return f;
}

}  // namespace

void server::set_dataset(dataset data) { service_->set_dataset(std::move(data)); }

dataset server::current_dataset() const { return service_->current_dataset(); }

void server::fail_page(int page_no, unsigned status) {
    service_->set_page_fault(page_no, status_fault(status, std::nullopt, {}));
}

void server::fail_page_times(int page_no, unsigned status, unsigned n, std::string retry_after) {
    service_->set_page_fault(page_no, status_fault(status, n, std::move(retry_after)));
}

void server::reset_page(int page_no, unsigned n) {
    service_->set_page_fault(page_no, kind_fault(detail::fault::kind::reset, n));
}

void server::stall_page(int page_no) {
    service_->set_page_fault(page_no, kind_fault(detail::fault::kind::stall, std::nullopt));
}

void server::malform_page(int page_no, malformation kind) { service_->set_page_fault(page_no, malform_fault(kind)); }

void server::drip_page(int page_no, std::size_t bytes_per_tick, std::chrono::milliseconds tick) {
    service_->set_page_fault(page_no, drip_fault(bytes_per_tick, tick));
}

void server::change_dataset_after_page(int page_no, dataset data) {
    service_->change_dataset_after_page(page_no, std::move(data));
}

void server::fail_orders(unsigned status) { service_->set_orders_fault(status_fault(status, std::nullopt, {})); }

void server::fail_orders_times(unsigned status, unsigned n, std::string retry_after) {
    service_->set_orders_fault(status_fault(status, n, std::move(retry_after)));
}

void server::reset_orders(unsigned n) { service_->set_orders_fault(kind_fault(detail::fault::kind::reset, n)); }

void server::stall_orders() { service_->set_orders_fault(kind_fault(detail::fault::kind::stall, std::nullopt)); }

void server::malform_orders(malformation kind) { service_->set_orders_fault(malform_fault(kind)); }

void server::drip_orders(std::size_t bytes_per_tick, std::chrono::milliseconds tick) {
    service_->set_orders_fault(drip_fault(bytes_per_tick, tick));
}

void server::clear_faults() { service_->clear_faults(); }

void server::set_time_style(time_style style, std::optional<std::size_t> item) {
    service_->update_modes([&](detail::modes& m) {
        m.listing.items.times = style;
        m.listing.items.time_item = item;
    });
}

void server::max_page_size(std::size_t n) {
    service_->update_modes([&](detail::modes& m) { m.listing.max_page_size = n; });
}

void server::lying_total(std::optional<std::uint64_t> t) {
    service_->update_modes([&](detail::modes& m) { m.listing.lying_total = t; });
}

void server::unreadable_purchase(std::optional<std::size_t> index) {
    service_->update_modes([&](detail::modes& m) { m.listing.items.unreadable_purchase = index; });
}

void server::unreadable_resource(std::optional<std::size_t> index) {
    service_->update_modes([&](detail::modes& m) { m.listing.items.unreadable_resource = index; });
}

void server::throttle_window(unsigned max_requests, std::chrono::milliseconds window) {
    if (max_requests > 0 && window.count() <= 0) {
        throw std::invalid_argument("emulator: a throttle window must be positive");
    }
    service_->update_modes([&](detail::modes& m) {
        m.throttle_max = max_requests;
        m.throttle_window = window;
    });
}

void server::iam_outage(unsigned n, outage_kind kind) {
    service_->update_modes([&](detail::modes& m) {
        m.iam_outage_left = n;
        m.iam_outage = kind;
    });
}

void server::set_projects(std::vector<project> projects) {
    service_->update_modes([&](detail::modes& m) { m.projects = std::move(projects); });
}

void server::require_project_id(std::optional<std::string> id) {
    service_->update_modes([&](detail::modes& m) { m.required_project_id = std::move(id); });
}

void server::require_content_type(bool on) {
    service_->update_modes([&](detail::modes& m) { m.require_content_type = on; });
}

void server::close_without_notify(unsigned n) {
    service_->update_modes([&](detail::modes& m) { m.close_left = n; });
}

void server::pad_listings(std::size_t bytes) {
    service_->update_modes([&](detail::modes& m) { m.pad_bytes = bytes; });
}

void server::endless_listings(bool on) {
    service_->update_modes([&](detail::modes& m) { m.endless = on; });
}

void server::interim_continue(std::optional<unsigned> n) {
    service_->update_modes([&](detail::modes& m) {
        m.continue_always = !n.has_value();
        m.continue_left = n.value_or(0);
    });
}

void server::echo_secrets_page(int page_no) { service_->echo_secrets(detail::endpoint::purchases, page_no); }

void server::echo_secrets_orders() { service_->echo_secrets(detail::endpoint::orders, 0); }

void server::echo_secrets_iam() { service_->echo_secrets(detail::endpoint::iam, 0); }

void server::expire_all_tokens() { service_->expire_all_tokens(); }

unsigned server::consecutive_signature_failures(const std::string& ak) const {
    return service_->consecutive_signature_failures(ak, std::chrono::steady_clock::now());
}

std::uint64_t server::page_requests(int page_no) const { return service_->page_requests(page_no); }

}  // namespace subsync::emulator
