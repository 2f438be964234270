#pragma once

#include <algorithm>
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

/// A request rate that adapts to throttling: `ceiling` requests per second at
/// most (0 = no ceiling), halved by throttle() (once per second at most: the 429s
/// of one burst are one signal) and raised 5 % (at least 0.1/s) by each
/// success(). Pure; time is a parameter.
class adaptive_rate {
public:
    using clock = std::chrono::steady_clock;

    explicit adaptive_rate(double ceiling) noexcept : ceiling_(ceiling), rate_(ceiling) {}

    /// A throttled answer: halves the rate in force, never below `floor`. With no
    /// rate in force yet (unlimited), starts from what was sent over the last second.
    void throttle(clock::time_point now) noexcept;
    /// A successful answer: one additive step up, up to the ceiling (or unlimited again
    /// once far above the rate that was throttled, when there is no ceiling).
    void success() noexcept;
    /// Notes a send, for the rate observed when unlimited.
    void sent(clock::time_point now) noexcept;

    /// Requests per second in force; 0 = unlimited.
    [[nodiscard]] double rate() const noexcept { return rate_; }

    static constexpr double floor = 0.2;  ///< one request per 5 s at the slowest

private:
    double ceiling_;
    double rate_;
    double throttled_at_ = 0;  ///< the rate when last throttled (0 = never)
    clock::time_point last_throttle_{};
    clock::time_point window_start_{};
    int sent_in_window_ = 0;
    double last_window_rate_ = 0;
};

/// A token bucket: `rate` requests per second with bursts of `burst`. Pure:
/// reserve() says how long the caller must wait before sending, given now.
class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    token_bucket(double rate, int burst) noexcept;

    /// Takes one token and returns how long to wait for it (zero when one was
    /// available). Waiters queue: each reservation moves the next slot on.
    [[nodiscard]] std::chrono::nanoseconds reserve(clock::time_point now) noexcept;

    /// Changes the rate from now on (0 = unlimited); tokens already earned are kept.
    void set_rate(double rate) noexcept { rate_ = rate; }
    /// Forgets the burst saved up: after a throttle, the next request waits its turn.
    void drain() noexcept { tokens_ = std::min(tokens_, 0.0); }

private:
    double rate_;
    double burst_;
    double tokens_;
    clock::time_point last_{};
    bool started_ = false;
};

}  // namespace subsync::sync
