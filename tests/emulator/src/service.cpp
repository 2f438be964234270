#include "service.hpp"

#include "iam.hpp"
#include "json_writer.hpp"

#include <algorithm>

namespace subsync::emulator::detail {

service::service(const options& opts, dataset data)
    : opts_(opts), gateway_(opts), data_(std::make_shared<const dataset>(std::move(data))) {}

decision service::handle(const incoming& request, wall_time wall, steady_time now) {
    const endpoint where = endpoint_of(request.target);
    if (where == endpoint::iam) {  // IAM is another service: no gateway limit, its own errors
        ++token_requests_;
        return {issue_token(request, opts_.users, opts_.token_ttl, gateway_, wall, now), delivery::respond};
    }
    std::optional<int> page;
    if (where == endpoint::purchases) {
        ++purchases_requests_;
        page = page_of(request.target);
        if (page) {
            const std::lock_guard lock(mutex_);
            ++page_requests_[*page];
        }
    } else if (where == endpoint::orders) {
        ++orders_requests_;
    }

    // The gateway throttles and authenticates for every API behind it, SecMaster included, so
    // these answers carry APIG codes on both listings.
    if (!admit(now)) {
        ++rate_limited_;
        return {apig_fault(429, request.request_id, where), delivery::respond};
    }
    const auto auth = gateway_.authenticate(request, wall, now);
    if (auth.outcome == auth_outcome::rejected) {
        if (auth.signature_failure) {
            ++signature_failures_;
        }
        return {{401, error_body("APIG.0301", auth.message, request.request_id), where}, delivery::respond};
    }

    request_info info;
    info.method = request.method;
    info.target = request.target;
    info.authenticated = auth.outcome == auth_outcome::accepted;
    info.language = request.header("X-Language");
    info.request_id = request.request_id;
    // Only a request that will get data triggers change_dataset_after_page().
    const auto data = dataset_for(where, info.authenticated ? page : std::nullopt);
    reply ok = route(info, *data);
    if (ok.status != 200) {
        return {std::move(ok), delivery::respond};
    }
    if (const auto f = take_fault(where, page)) {
        return apply(*f, std::move(ok), request.request_id);
    }
    return {std::move(ok), delivery::respond};
}

bool service::admit(steady_time now) {
    if (opts_.max_rps <= 0) {
        return true;
    }
    const double capacity = std::max(1.0, opts_.max_rps);
    const std::lock_guard lock(mutex_);
    if (!bucket_filled_) {
        bucket_ = capacity;
    } else {
        const std::chrono::duration<double> elapsed = now - *bucket_filled_;
        bucket_ = std::min(capacity, bucket_ + std::max(0.0, elapsed.count()) * opts_.max_rps);
    }
    bucket_filled_ = now;
    if (bucket_ < 1.0) {
        return false;
    }
    bucket_ -= 1.0;
    return true;
}

std::optional<fault> service::take_fault(endpoint where, std::optional<int> page) {
    // One use of `f`; true when that was its last.
    const auto use = [](fault& f) { return f.remaining && --*f.remaining == 0; };
    const std::lock_guard lock(mutex_);
    if (where == endpoint::orders && orders_fault_) {
        const fault taken = *orders_fault_;
        if (use(*orders_fault_)) {
            orders_fault_.reset();
        }
        return taken;
    }
    if (where == endpoint::purchases && page) {
        if (const auto it = page_faults_.find(*page); it != page_faults_.end()) {
            const fault taken = it->second;
            if (use(it->second)) {
                page_faults_.erase(it);
            }
            return taken;
        }
    }
    return std::nullopt;
}

std::shared_ptr<const dataset> service::dataset_for(endpoint where, std::optional<int> page) {
    const std::lock_guard lock(mutex_);
    if (change_ && where == endpoint::purchases && page && *page > change_->after_page) {
        data_ = std::move(change_->data);
        change_.reset();
    }
    return data_;
}

void service::set_dataset(dataset data) {
    auto next = std::make_shared<const dataset>(std::move(data));
    const std::lock_guard lock(mutex_);
    data_ = std::move(next);
}

dataset service::current_dataset() const {
    const std::lock_guard lock(mutex_);
    return *data_;
}

void service::set_page_fault(int page_no, fault f) {
    const std::lock_guard lock(mutex_);
    if (f.remaining && *f.remaining == 0) {
        page_faults_.erase(page_no);
    } else {
        page_faults_[page_no] = std::move(f);
    }
}

void service::set_orders_fault(fault f) {
    const std::lock_guard lock(mutex_);
    if (f.remaining && *f.remaining == 0) {
        orders_fault_.reset();
    } else {
        orders_fault_ = std::move(f);
    }
}

void service::change_dataset_after_page(int page_no, dataset data) {
    auto next = std::make_shared<const dataset>(std::move(data));
    const std::lock_guard lock(mutex_);
    change_ = dataset_change{page_no, std::move(next)};
}

void service::clear_faults() {
    const std::lock_guard lock(mutex_);
    page_faults_.clear();
    orders_fault_.reset();
    change_.reset();
}

void service::expire_all_tokens() { gateway_.expire_all_tokens(); }

unsigned service::consecutive_signature_failures(const std::string& ak, steady_time now) const {
    return gateway_.consecutive_failures(ak, now);
}

service_counters service::counters() const {
    return {purchases_requests_.load(), orders_requests_.load(), token_requests_.load(), signature_failures_.load(),
            rate_limited_.load()};
}

std::uint64_t service::page_requests(int page_no) const {
    const std::lock_guard lock(mutex_);
    const auto it = page_requests_.find(page_no);
    return it == page_requests_.end() ? 0 : it->second;
}

void service::reset_counters() {
    purchases_requests_ = 0;
    orders_requests_ = 0;
    token_requests_ = 0;
    signature_failures_ = 0;
    rate_limited_ = 0;
    const std::lock_guard lock(mutex_);
    page_requests_.clear();
}

}  // namespace subsync::emulator::detail
