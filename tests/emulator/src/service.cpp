#include "service.hpp"

#include "iam.hpp"
#include "json_writer.hpp"

#include <algorithm>

namespace subsync::emulator::detail {

service::service(const options& opts, dataset data)
    : opts_(opts), gateway_(opts), data_(std::make_shared<const dataset>(std::move(data))) {}

decision service::handle(const incoming& request, wall_time wall, steady_time now) {
    const endpoint where = endpoint_of(request.target);
    if (auto answer = iam(request, where, wall, now)) {  // IAM is another service: no gateway limit
        decision d{std::move(*answer), delivery::respond};
        if (d.answer.status == 0) {  // an outage that closes the connection
            d.how = delivery::drop;
        }
        finish(d);
        return d;
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
    if (auto refused = throttle(where, now, request.request_id)) {
        return {std::move(*refused), delivery::respond};
    }
    const auto auth = gateway_.authenticate(request, wall, now);
    if (auth.outcome == auth_outcome::rejected) {
        if (auth.signature_failure) {
            ++signature_failures_;
        }
        return {{401, error_body("APIG.0301", auth.message, request.request_id), where}, delivery::respond};
    }
    if (auth.outcome == auth_outcome::accepted) {
        if (auto refused = gateway_checks(request, where, page)) {
            return {std::move(*refused), delivery::respond};
        }
    }

    request_info info;
    info.method = request.method;
    info.target = request.target;
    info.authenticated = auth.outcome == auth_outcome::accepted;
    info.language = request.header("X-Language");
    info.request_id = request.request_id;
    listing_modes listing;
    {
        const std::lock_guard lock(mutex_);
        listing = modes_.listing;
    }
    // Only a request that will get data triggers change_dataset_after_page().
    const auto data = dataset_for(where, info.authenticated ? page : std::nullopt);
    decision d{route(info, *data, listing), delivery::respond};
    if (d.answer.status == 200) {
        if (const auto f = take_fault(where, page)) {
            d = apply(*f, std::move(d.answer), request.request_id);
        }
    }
    finish(d);
    return d;
}

std::optional<reply> service::iam(const incoming& request, endpoint where, wall_time wall, steady_time now) {
    if (where == endpoint::iam_projects) {
        ++project_requests_;
        const auto auth = gateway_.authenticate(request, wall, now);
        if (auth.outcome == auth_outcome::rejected) {
            if (auth.signature_failure) {
                ++signature_failures_;
            }
            return iam_error(401, "Unauthorized", auth.message);
        }
        std::vector<project> projects;
        {
            const std::lock_guard lock(mutex_);
            projects = modes_.projects;
        }
        return list_projects(request, auth.outcome == auth_outcome::accepted, projects);
    }
    if (where != endpoint::iam) {
        return std::nullopt;
    }
    ++token_requests_;
    {
        const std::lock_guard lock(mutex_);
        if (modes_.iam_outage_left > 0) {
            --modes_.iam_outage_left;
            if (modes_.iam_outage == outage_kind::close_connection) {
                return reply{0, {}, endpoint::iam};
            }
            return iam_error(503, "Service Unavailable", "The service is temporarily unavailable.");
        }
        if (echo_iam_) {
            return echo_iam_request(request);
        }
    }
    return issue_token(request, opts_.users, opts_.token_ttl, gateway_, wall, now);
}

std::optional<reply> service::throttle(endpoint where, steady_time now, std::string_view request_id) {
    if (where != endpoint::purchases && where != endpoint::orders) {
        return std::nullopt;
    }
    const std::lock_guard lock(mutex_);
    if (modes_.throttle_max == 0) {
        return std::nullopt;
    }
    auto& w = windows_[where];
    if (!w.start || now - *w.start >= modes_.throttle_window) {
        w = {now, 0};
    }
    if (w.used < modes_.throttle_max) {
        ++w.used;
        return std::nullopt;
    }
    ++throttled_;
    // The real gateway's words, limit and period included; no Retry-After.
    const auto ms = modes_.throttle_window.count();
    const std::string period = ms % 60000 == 0 ? std::to_string(ms / 60000) + " minute"
                               : ms % 1000 == 0 ? std::to_string(ms / 1000) + " second"
                                                : std::to_string(ms) + " millisecond";
    return reply{429,
                 error_body("APIG.0308",
                            "The throttling threshold has been reached: policy user over ratelimit,limit:" +
                                std::to_string(modes_.throttle_max) + ",time:" + period,
                            request_id),
                 where};
}

std::optional<reply> service::gateway_checks(const incoming& request, endpoint where, std::optional<int> page) {
    if (where != endpoint::purchases && where != endpoint::orders) {
        return std::nullopt;
    }
    const std::lock_guard lock(mutex_);
    const bool echo = where == endpoint::orders ? echo_orders_ : page && echo_pages_.contains(*page);
    if (echo) {
        // A broken gateway copying the credentials into its message.
        const auto authorization = request.header("Authorization");
        const std::string what =
            authorization ? "Incorrect IAM authentication information: Authorization " + std::string(*authorization)
                          : "Incorrect token " + std::string(request.header("X-Auth-Token").value_or("")) +
                                " or token resolution failed";
        return reply{401, error_body("APIG.1002", what, request.request_id), where};
    }
    if (modes_.required_project_id && request.header("Authorization")) {
        const auto sent = request.header("X-Project-Id");
        if (!sent) {
            return reply{401,
                         error_body("APIG.0301",
                                    std::string(aksk_message_prefix) + "X-Project-Id is required for this API",
                                    request.request_id),
                         where};
        }
        if (*sent != *modes_.required_project_id) {
            return reply{403,
                         error_body("APIG.0302", "The IAM user is not authorized to access the API (X-Project-Id)",
                                    request.request_id),
                         where};
        }
    }
    if (modes_.require_content_type) {
        const std::string_view type = request.header("Content-Type").value_or("");
        if (type.substr(0, type.find(';')) != "application/json") {
            return reply{400, error_body("APIG.0201", "Content-Type must be application/json", request.request_id),
                         where};
        }
    }
    return std::nullopt;
}

void service::finish(decision& d) {
    const std::lock_guard lock(mutex_);
    if (modes_.continue_always) {
        d.interim_continue = true;
    } else if (modes_.continue_left > 0) {
        d.interim_continue = true;
        --modes_.continue_left;
    }
    const bool listing = d.answer.where == endpoint::purchases || d.answer.where == endpoint::orders;
    if (listing && d.answer.status == 200 && d.how == delivery::respond && !d.answer.body.empty() &&
        d.answer.body.front() == '{') {
        if (modes_.endless) {
            d.how = delivery::endless;
        } else if (modes_.pad_bytes > 0) {
            std::string padded;
            padded.reserve(d.answer.body.size() + modes_.pad_bytes + 16);
            padded += R"({"x_padding":")";
            padded.append(modes_.pad_bytes, 'x');
            padded += d.answer.body.size() > 2 ? R"(",)" : R"(")";
            padded.append(d.answer.body, 1);
            d.answer.body = std::move(padded);
        }
    }
    if (modes_.close_left > 0 && listing && d.how == delivery::respond) {
        d.close_after = true;
        --modes_.close_left;
    }
}

void service::echo_secrets(endpoint where, int page_no) {
    const std::lock_guard lock(mutex_);
    if (where == endpoint::orders) {
        echo_orders_ = true;
    } else if (where == endpoint::iam) {
        echo_iam_ = true;
    } else {
        echo_pages_[page_no] = true;
    }
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
    echo_pages_.clear();
    echo_orders_ = false;
    echo_iam_ = false;
}

void service::expire_all_tokens() { gateway_.expire_all_tokens(); }

unsigned service::consecutive_signature_failures(const std::string& ak, steady_time now) const {
    return gateway_.consecutive_failures(ak, now);
}

service_counters service::counters() const {
    return {purchases_requests_.load(), orders_requests_.load(), token_requests_.load(), signature_failures_.load(),
            rate_limited_.load(),       throttled_.load(),       project_requests_.load()};
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
    throttled_ = 0;
    project_requests_ = 0;
    const std::lock_guard lock(mutex_);
    page_requests_.clear();
}

}  // namespace subsync::emulator::detail
