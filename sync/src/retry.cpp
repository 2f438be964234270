#include <subsync/sync/retry.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>

namespace subsync::sync {

std::chrono::milliseconds backoff_delay(const retry_policy& p, int retry, double unit_random) noexcept {
    const double base = static_cast<double>(p.base.count());
    const double ceiling = std::min(static_cast<double>(p.cap.count()), base * std::ldexp(1.0, std::clamp(retry - 1, 0, 30)));
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::clamp(unit_random, 0.0, 1.0) * ceiling));
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v,
                                                           std::chrono::system_clock::time_point now) noexcept {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    if (v.empty()) return std::nullopt;
    if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (v.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24 * 365));
        std::int64_t seconds = 0;
        for (char c : v) seconds = seconds * 10 + (c - '0');
        return std::chrono::seconds(seconds);
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (the only form senders may use).
    static constexpr std::array<std::string_view, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (v.size() != 29 || v.substr(3, 2) != ", " || v.substr(25) != " GMT") return std::nullopt;
    auto num = [&](std::size_t pos, std::size_t n, int& out) {
        out = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (v[i] < '0' || v[i] > '9') return false;
            out = out * 10 + (v[i] - '0');
        }
        return true;
    };
    int day = 0, year = 0, h = 0, m = 0, s = 0;
    const auto month = std::find(months.begin(), months.end(), v.substr(8, 3));
    if (month == months.end() || !num(5, 2, day) || !num(12, 4, year) || !num(17, 2, h) || !num(20, 2, m) ||
        !num(23, 2, s))
        return std::nullopt;
    using namespace std::chrono;
    const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month - months.begin() + 1)},
                             std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) return std::nullopt;
    const auto at = sys_days{ymd} + hours{h} + minutes{m} + seconds{s};
    return std::max(milliseconds{0}, duration_cast<milliseconds>(at - now));
}

bool retryable_status(unsigned status) noexcept {
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

void adaptive_rate::sent(clock::time_point now) noexcept {
    if (now - window_start_ >= std::chrono::seconds(1)) {
        const double span = std::chrono::duration<double>(now - window_start_).count();
        last_window_rate_ = span < 2.0 ? sent_in_window_ / span : 0.0;
        window_start_ = now;
        sent_in_window_ = 0;
    }
    ++sent_in_window_;
}

void adaptive_rate::throttle(clock::time_point now) noexcept {
    // The 429s of one burst (every worker hitting the same exhausted window) are one signal:
    // halve once per second at most, or the rate would fall to the floor in one window.
    if (throttled_at_ > 0 && now - last_throttle_ < std::chrono::seconds(1)) return;
    last_throttle_ = now;
    double from = rate_;
    if (from <= 0) {
        const double span = std::chrono::duration<double>(now - window_start_).count();
        from = std::max(last_window_rate_, span > 0 ? sent_in_window_ / std::max(span, 1.0) : 0.0);
        if (from <= 0) from = 2 * floor;
    }
    rate_ = std::max(floor, from / 2);
    throttled_at_ = from;
}

void adaptive_rate::success() noexcept {
    if (rate_ <= 0) return;
    rate_ += std::max(0.1, rate_ / 20);  // +5 %: back to twice the rate in ~14 answers
    if (ceiling_ > 0) rate_ = std::min(rate_, ceiling_);
    else if (rate_ > 4 * throttled_at_) rate_ = 0;  // long past the throttle: unlimited again
}

token_bucket::token_bucket(double rate, int burst) noexcept
    : rate_(rate), burst_(std::max(1, burst)), tokens_(std::max(1, burst)) {}

std::chrono::nanoseconds token_bucket::reserve(clock::time_point now) noexcept {
    if (rate_ <= 0) return std::chrono::nanoseconds{0};
    if (started_) {
        const double elapsed = std::chrono::duration<double>(now - last_).count();
        tokens_ = std::min(burst_, tokens_ + std::max(0.0, elapsed) * rate_);
    }
    started_ = true;
    last_ = now;
    tokens_ -= 1.0;  // may go negative: a debt that later callers queue behind
    if (tokens_ >= 0) return std::chrono::nanoseconds{0};
    return std::chrono::nanoseconds(static_cast<std::int64_t>(-tokens_ / rate_ * 1e9));
}

}  // namespace subsync::sync
