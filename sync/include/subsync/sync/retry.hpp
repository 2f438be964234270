#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace subsync::sync {

/// How a request is retried: at most `max_attempts` sends (the first
/// included), waiting a full-jitter exponential backoff between them.
struct retry_policy {
    int max_attempts = 5;
    std::chrono::milliseconds base{500};
    std::chrono::milliseconds cap{30000};
};

/// The wait before retry number `retry` (1 = the first retry): uniformly
/// random in [0, min(cap, base * 2^(retry-1))] ("full jitter", AWS
/// architecture blog 2015), so that many clients never retry in step.
/// `unit_random` in [0, 1) is the caller's random draw, keeping this pure.
[[nodiscard]] std::chrono::milliseconds backoff_delay(const retry_policy& p, int retry, double unit_random) noexcept;

/// Parses a Retry-After value: delay-seconds or an HTTP-date (RFC 9110
/// §10.2.3), relative to `now`. nullopt when malformed; a date in the past is 0.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) noexcept;

/// Statuses worth another try: 429 (throttled) and 500/502/503/504.
[[nodiscard]] bool retryable_status(unsigned status) noexcept;

/// A token bucket: `rate` requests per second with bursts of `burst`. Pure:
/// reserve() says how long the caller must wait before sending, given now.
class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    token_bucket(double rate, int burst) noexcept;

    /// Takes one token and returns how long to wait for it (zero when one was
    /// available). Waiters queue: each reservation moves the next slot on.
    [[nodiscard]] std::chrono::nanoseconds reserve(clock::time_point now) noexcept;

private:
    double rate_;
    double burst_;
    double tokens_;
    clock::time_point last_{};
    bool started_ = false;
};

}  // namespace subsync::sync
