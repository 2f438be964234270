#include <subsync/sync/http_client.hpp>
#include <subsync/sync/retry.hpp>

#include <gtest/gtest.h>

namespace subsync::sync {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, FullJitterGrowsAndIsCapped) {
    const retry_policy p{5, 500ms, 4000ms};
    struct backoff_case {
        int retry;
        double draw;
        std::chrono::milliseconds expected;
    };
    const backoff_case cases[] = {
        {1, 0.0, 0ms},    {1, 0.999, 499ms}, {2, 0.5, 500ms},   {3, 0.5, 1000ms},
        {4, 1.0, 4000ms}, {5, 1.0, 4000ms},  {30, 1.0, 4000ms}, {1, -3.0, 0ms},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(testing::Message() << "retry " << c.retry << " draw " << c.draw);
        EXPECT_EQ(backoff_delay(p, c.retry, c.draw), c.expected);
    }
}

TEST(RetryAfter, SecondsAndHttpDates) {
    using namespace std::chrono;
    const auto now = sys_days{year{1994} / November / 6} + 8h + 49min + 30s;
    struct retry_after_case {
        const char* value;
        std::optional<milliseconds> expected;
    };
    const retry_after_case cases[] = {
        {"2", 2000ms},
        {" 120 ", 120000ms},
        {"0", 0ms},
        {"Sun, 06 Nov 1994 08:49:37 GMT", 7000ms},
        {"Sun, 06 Nov 1994 08:49:00 GMT", 0ms},  // in the past: go now
        {"Sunday, 06-Nov-94 08:49:37 GMT", std::nullopt},
        {"soon", std::nullopt},
        {"-1", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.value);
        EXPECT_EQ(parse_retry_after(c.value, now), c.expected);
    }
}

TEST(RetryableStatus, OnlyThrottlingAndServerErrors) {
    for (unsigned s : {429u, 500u, 502u, 503u, 504u}) EXPECT_TRUE(retryable_status(s)) << s;
    for (unsigned s : {200u, 400u, 401u, 403u, 404u, 413u, 501u}) EXPECT_FALSE(retryable_status(s)) << s;
}

TEST(TokenBucket, BurstThenRate) {
    token_bucket b(10.0, 3);  // 10/s, burst 3
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    EXPECT_EQ(b.reserve(t0), 0ns);
    EXPECT_EQ(b.reserve(t0), 0ns);
    EXPECT_EQ(b.reserve(t0), 0ns);
    EXPECT_EQ(b.reserve(t0), 100ms);  // the 4th waits one interval
    EXPECT_EQ(b.reserve(t0), 200ms);  // and the 5th queues behind it
    EXPECT_EQ(b.reserve(t0 + 1s), 0ns) << "refilled after a quiet second";
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
    token_bucket b(0.0, 1);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(b.reserve({}), 0ns);
}

// Issue 14 §5: a 429 halves the rate (once per burst), successes raise it back to the ceiling.
TEST(AdaptiveRate, HalvesOncePerBurstAndRecoversToTheCeiling) {
    using clock = std::chrono::steady_clock;
    const clock::time_point t0{};
    adaptive_rate r(20);
    EXPECT_EQ(r.rate(), 20);
    r.throttle(t0 + std::chrono::seconds(10));
    EXPECT_EQ(r.rate(), 10);
    r.throttle(t0 + std::chrono::seconds(10) + std::chrono::milliseconds(300));
    EXPECT_EQ(r.rate(), 10) << "the 429s of one burst are one signal";
    r.throttle(t0 + std::chrono::seconds(12));
    EXPECT_EQ(r.rate(), 5);
    for (int i = 0; i < 100; ++i) r.success();
    EXPECT_EQ(r.rate(), 20) << "never above the configured rate";
    for (int i = 0; i < 20; ++i) r.throttle(t0 + std::chrono::seconds(20 + 2 * i));
    EXPECT_EQ(r.rate(), adaptive_rate::floor);
}

TEST(AdaptiveRate, UnlimitedStartsFromTheObservedRateAndReturnsToUnlimited) {
    using clock = std::chrono::steady_clock;
    const clock::time_point t0{};
    adaptive_rate r(0);
    for (int i = 0; i < 40; ++i) r.sent(t0 + std::chrono::milliseconds(25 * i));  // 40/s for a second
    r.sent(t0 + std::chrono::milliseconds(1000));
    r.throttle(t0 + std::chrono::milliseconds(1001));
    EXPECT_NEAR(r.rate(), 20, 1) << "half of what was sent over the last second";
    for (int i = 0; i < 200 && r.rate() > 0; ++i) r.success();
    EXPECT_EQ(r.rate(), 0) << "far past the throttled rate: unlimited again";
}

TEST(Proxy, NoProxyMatchesHostsAndDomains) {
    proxy_settings p{"http://proxy.corp:3128", "localhost, .internal.example.com,10.0.0.1"};
    struct proxy_case {
        const char* host;
        bool proxied;
    };
    const proxy_case cases[] = {
        {"apig.cn-north-4.myhuaweicloud.com", true}, {"localhost", false}, {"a.internal.example.com", false},
        {"internal.example.com", false},             {"xinternal.example.com", true}, {"10.0.0.1", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.host);
        auto ep = p.for_host(c.host);
        EXPECT_EQ(ep.has_value(), c.proxied);
        if (ep) {
            EXPECT_EQ(ep->host, "proxy.corp");
        }
    }
    EXPECT_FALSE((proxy_settings{"http://proxy:1", "*"}.for_host("anything")));
    EXPECT_FALSE((proxy_settings{"", ""}.for_host("anything")));
}

TEST(HostHeader, PortOnlyWhenNamedAndBracketsForIpv6) {
    config::endpoint ep;
    ep.host = "apig.example.com";
    ep.port = 443;
    EXPECT_EQ(host_header(ep), "apig.example.com");
    ep.explicit_port = true;
    ep.port = 8443;
    EXPECT_EQ(host_header(ep), "apig.example.com:8443");
    ep.host = "::1";
    EXPECT_EQ(host_header(ep), "[::1]:8443");
}

}  // namespace
}  // namespace subsync::sync
