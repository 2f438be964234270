// The alert rules (pure, fixed clock) and the state machine with its outbox
// (a real SQLite snapshot, every notification read back from alert_outbox).

#include "support/test_support.hpp"

#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <functional>
#include <random>
#include <set>

namespace subsync::sync {
namespace {

namespace alerts = alerting;
using namespace std::chrono_literals;
using config::alert_kind;
using test::temp_dir;

constexpr epoch_ms second = 1000;
constexpr epoch_ms hour = 3'600'000;
constexpr epoch_ms day = 86'400'000;
constexpr epoch_ms T0 = 1'790'000'000'000;  // 2026-09-21, an arbitrary fixed "now"

std::string describe(const std::vector<alerts::active_alert>& v) {
    std::string s;
    for (const auto& a : v) s += fmt::format("{}{}:{}", s.empty() ? "" : " ", config::to_string(a.kind), a.threshold);
    return s.empty() ? "-" : s;
}

std::string item_alerts(const alerts::item_facts& item, epoch_ms now, const config::alert_rules& rules = {},
                        std::span<const alerts::quota_point> series = {}) {
    return describe(alerts::evaluate_item(item, series, now, rules, "purchased_groups"));
}

alerts::item_facts expiring_at(epoch_ms expire) {
    alerts::item_facts f;
    f.key = "sub-1";
    f.name = "payments";
    f.expire_time = expire;
    return f;
}

alerts::item_facts quota(std::int64_t left, std::optional<std::int64_t> used) {
    alerts::item_facts f;
    f.key = "sub-1";
    f.quota_left = left;
    f.quota_used = used;
    return f;
}

// ---- rules: each boundary exactly at, one second before and one after --------------------

TEST(AlertRules, ExpiryThresholdsAtTheirBoundaries) {
    const epoch_ms E = T0 + 40 * day;
    struct row {
        epoch_ms now;
        std::string expected;
    };
    const std::vector<row> rows{
        {E - 30 * day - second, "-"},
        {E - 30 * day, "expiring:30d"},  // exactly at the threshold: crossed
        {E - 30 * day + second, "expiring:30d"},
        {E - 7 * day - second, "expiring:30d"},
        {E - 7 * day, "expiring:7d"},  // only the tightest crossed threshold is active
        {E - 7 * day + second, "expiring:7d"},
        {E - 1 * day - second, "expiring:7d"},
        {E - 1 * day, "expiring:1d"},
        {E - second, "expiring:1d"},
        {E, "expired:"},  // at the instant of expiry it has expired
        {E + second, "expired:"},
    };
    for (const auto& r : rows)
        EXPECT_EQ(item_alerts(expiring_at(E), r.now), r.expected) << "at E" << (r.now - E) / 1000 << "s";
}

TEST(AlertRules, QuotaLowAbsoluteAndPercentAreStrictlyUnder) {
    config::alert_rules rules;
    rules.quota_low_absolute = 1000;
    rules.quota_low_percent = 10;
    EXPECT_EQ(item_alerts(quota(1001, 0), T0, rules), "-");
    EXPECT_EQ(item_alerts(quota(1000, 0), T0, rules), "-");
    EXPECT_EQ(item_alerts(quota(999, 0), T0, rules), "quota_low:abs:1000");
    // 10 % of left + used: 100 of 1000 is not under, 99 of 1000 is.
    rules.quota_low_absolute = 0;
    EXPECT_EQ(item_alerts(quota(101, 899), T0, rules), "-");
    EXPECT_EQ(item_alerts(quota(100, 900), T0, rules), "-");
    EXPECT_EQ(item_alerts(quota(99, 901), T0, rules), "quota_low:pct:10");
    EXPECT_EQ(item_alerts(quota(99, std::nullopt), T0, rules), "-") << "no total, no percentage";
    rules.quota_low_absolute = 1000;
    EXPECT_EQ(item_alerts(quota(99, 901), T0, rules), "quota_low:abs:1000 quota_low:pct:10");
}

TEST(AlertRules, ExhaustedAtZeroReplacesLow) {
    config::alert_rules rules;
    rules.quota_low_absolute = 1000;
    EXPECT_EQ(item_alerts(quota(1, 999), T0, rules), "quota_low:abs:1000 quota_low:pct:10");
    EXPECT_EQ(item_alerts(quota(0, 1000), T0, rules), "quota_exhausted:0");
    EXPECT_EQ(item_alerts(quota(-1, 1000), T0, rules), "quota_exhausted:0");
}

TEST(AlertRules, ResourceStatusFiresWhenNotRunning) {
    alerts::item_facts r;
    r.key = "res-1";
    r.resource_status = 0;
    EXPECT_EQ(describe(alerts::evaluate_item(r, {}, T0, {}, "subscription_resources")), "-");
    r.resource_status = 2;
    const auto a = alerts::evaluate_item(r, {}, T0, {}, "subscription_resources");
    EXPECT_EQ(describe(a), "resource_status:");
    EXPECT_EQ(a.at(0).values, R"({"resource_status":2})");
}

// Issue 14 §7: a resource that leaves the orders listing before its expire_time was
// unsubscribed or frozen. Off by default; once on, it fires until the expire_time.
TEST(AlertRules, RemovedEarlyFiresOnlyWhenOnAndBeforeExpiry) {
    alerts::item_facts r;
    r.key = "cn-north-4/p/res-1";
    r.expire_time = T0 + 10 * day;
    r.removed_at = T0 - hour;
    EXPECT_EQ(describe(alerts::evaluate_item(r, {}, T0, {}, "subscription_resources")), "-") << "off by default";
    config::alert_rules rules;
    rules.enabled[static_cast<std::size_t>(alert_kind::removed_early)] = true;
    const auto a = alerts::evaluate_item(r, {}, T0, rules, "subscription_resources");
    EXPECT_EQ(describe(a), "removed_early:");
    EXPECT_NE(a.at(0).summary.find("before its expire_time"), std::string::npos) << a.at(0).summary;
    EXPECT_EQ(describe(alerts::evaluate_item(r, {}, T0 + 11 * day, rules, "subscription_resources")), "-")
        << "past its expire_time it is simply gone";
}

TEST(AlertRules, DisabledKindsNeverFire) {
    config::alert_rules rules;
    rules.enabled[static_cast<std::size_t>(alert_kind::expired)] = false;
    EXPECT_EQ(item_alerts(expiring_at(T0 - day), T0, rules), "-");
    rules.expiring_days.clear();
    EXPECT_EQ(item_alerts(expiring_at(T0 + hour), T0, rules), "-");
}

TEST(AlertRules, SelfMonitoringBoundaries) {
    config::alert_rules rules;  // failing_after 3, stale_after 6h
    alerts::source_health h;
    h.last_ok = T0 - 6 * hour;
    h.consecutive_failures = 2;
    h.last_error = "HTTP 500";
    EXPECT_EQ(describe(alerts::evaluate_health(h, T0, rules)), "-") << "exactly stale_after old is not stale yet";
    h.consecutive_failures = 3;
    EXPECT_EQ(describe(alerts::evaluate_health(h, T0, rules)), "source_failing:3");
    EXPECT_EQ(describe(alerts::evaluate_health(h, T0 + 1, rules)), "source_failing:3 source_stale:6h");
    h.auth_rejected = true;
    h.consecutive_failures = 1;
    EXPECT_EQ(describe(alerts::evaluate_health(h, T0, rules)), "auth_failing:");
    alerts::source_health never;  // never succeeded: stale counts from the first attempt
    never.first_run = T0 - 7 * hour;
    EXPECT_EQ(describe(alerts::evaluate_health(never, T0, rules)), "source_stale:6h");
}

// ---- forecast -------------------------------------------------------------------------------

std::vector<alerts::quota_point> linear(epoch_ms start, int samples, epoch_ms step, double left0, double per_day,
                                        double noise = 0, unsigned seed = 1) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> n(0, noise);
    std::vector<alerts::quota_point> v;
    for (int i = 0; i < samples; ++i) {
        const epoch_ms t = start + i * step;
        const double y = left0 - per_day * static_cast<double>(t - start) / day + (noise > 0 ? n(rng) : 0);
        v.push_back({t, static_cast<std::int64_t>(std::llround(y))});
    }
    return v;
}

TEST(AlertForecast, LinearBurnPredictsExhaustionWithinOnePercent) {
    config::alert_rules rules;
    // 1,000,000 left, 25,000 a day, sampled hourly for 3 days: runs out 40 days after the start.
    const epoch_ms start = T0 - 3 * day;
    const auto series = linear(start, 72, hour, 1'000'000, 25'000);
    const epoch_ms truth = start + 40 * day;
    auto f = alerts::fit_forecast(series, T0, rules);
    ASSERT_TRUE(f);
    EXPECT_NEAR(f->burn_per_day, 25'000, 25'000 * 0.01);
    EXPECT_LE(std::abs(static_cast<double>(f->exhaustion - truth)), 0.01 * static_cast<double>(truth - T0));
    // The same burn seen through noise (σ = 500) still forecasts, within 5 % of the remaining
    // time: extrapolating 37 days from 3 days of data amplifies the noise.
    auto noisy = alerts::fit_forecast(linear(start, 72, hour, 1'000'000, 25'000, 500, 7), T0, rules);
    ASSERT_TRUE(noisy);
    EXPECT_LE(std::abs(static_cast<double>(noisy->exhaustion - truth)), 0.05 * static_cast<double>(truth - T0));
}

TEST(AlertForecast, FlatNoisyRisingOrShortSeriesDoNotForecast) {
    config::alert_rules rules;
    const epoch_ms start = T0 - 3 * day;
    EXPECT_FALSE(alerts::fit_forecast(linear(start, 72, hour, 5000, 0), T0, rules)) << "flat";
    for (unsigned seed = 1; seed <= 200; ++seed)
        EXPECT_FALSE(alerts::fit_forecast(linear(start, 72, hour, 5000, 0, 300, seed), T0, rules))
            << "pure noise, seed " << seed;
    EXPECT_FALSE(alerts::fit_forecast(linear(start, 72, hour, 5000, -100), T0, rules)) << "rising";
    EXPECT_FALSE(alerts::fit_forecast(linear(start, 3, hour, 5000, 100), T0, rules)) << "fewer than min samples";
    EXPECT_FALSE(alerts::fit_forecast(linear(T0 - 30 * day, 20, hour, 5000, 100), T0, rules)) << "outside the window";
}

TEST(AlertForecast, ATopUpStartsANewSeries) {
    config::alert_rules rules;
    auto series = linear(T0 - 3 * day, 48, hour, 1000, 200);          // burning fast
    auto after = linear(T0 - 24 * hour + hour, 24, hour, 100000, 0);  // topped up, flat since
    series.insert(series.end(), after.begin(), after.end());
    EXPECT_FALSE(alerts::fit_forecast(series, T0, rules)) << "the burn before the top-up must not count";
}

TEST(AlertForecast, FiresWhenExhaustionIsWithinTheHorizon) {
    config::alert_rules rules;  // forecast_days 14
    const epoch_ms start = T0 - 2 * day;
    const auto soon = linear(start, 49, hour, 12'000, 1'000);  // runs out 12 days after start: in 10 days
    auto a = alerts::evaluate_item(quota(10'000, 2'000), soon, T0, rules, "purchased_groups");
    ASSERT_EQ(describe(a), "quota_forecast:14d");
    EXPECT_NE(a[0].values.find(R"("exhaustion":")" + format_iso8601(start + 12 * day).substr(0, 13)),
              std::string::npos)
        << a[0].values;
    const auto later = linear(start, 49, hour, 20'000, 1'000);  // in 18 days
    EXPECT_EQ(item_alerts(quota(18'000, 2'000), T0, rules, later), "-");
}

// An unchanged re-sync skips the item rules until next_change (docs/alerts.md "When rules run"):
// that is sound only if the rules answer exactly as they did at every instant before it. Checked
// on a five-minute grid, for expiries on both sides of every threshold and a forecast series.
TEST(AlertRules, NextChangeIsNoLaterThanTheFirstInstantTheAnswerDiffers) {
    config::alert_rules rules;
    auto answer = [&](const alerts::item_facts& item, std::span<const alerts::quota_point> series, epoch_ms now) {
        std::string out;
        for (const auto& a : alerts::evaluate_item(item, series, now, rules, "purchased_groups"))
            out += fmt::format("{}:{} {} {}\n", config::to_string(a.kind), a.threshold, a.summary, a.values);
        return out;
    };
    std::vector<std::pair<alerts::item_facts, std::vector<alerts::quota_point>>> cases;
    for (epoch_ms e : {T0 + 31 * day + 5 * 60 * second, T0 + 7 * day + hour, T0 + 20 * hour, T0 + 3 * hour,
                       T0 - 2 * hour, T0 - 40 * day})
        cases.emplace_back(expiring_at(e), std::vector<alerts::quota_point>{});
    auto removed = expiring_at(T0 + 5 * hour);
    removed.removed_at = T0 - day;
    rules.enabled[static_cast<std::size_t>(alert_kind::removed_early)] = true;
    cases.emplace_back(removed, std::vector<alerts::quota_point>{});
    // Burning 1,000 a day from 20,000 two days ago: the forecast's 14 days are reached in ~4 days,
    // and the oldest sample leaves the 7-day window in 5.
    cases.emplace_back(quota(18'000, 2'000), linear(T0 - 2 * day, 49, hour, 20'000, 1'000));
    cases.emplace_back(quota(18'000, 2'000), linear(T0 - 7 * day + 2 * hour, 6, day, 30'000, 2'000));
    for (const auto& [item, series] : cases) {
        epoch_ms now = T0;
        int changes = 0;
        while (now < T0 + 40 * day) {
            const epoch_ms next = alerts::next_change(item, series, now, rules);
            ASSERT_GT(next, now) << "every case here has an answer that holds for a while";
            const std::string then = answer(item, series, now);
            // Every five minutes up to the horizon (or 6 hours of it) answers the same.
            const epoch_ms until = std::min({next, now + 6 * hour, T0 + 40 * day});
            for (epoch_ms t = now + 300 * second; t < until; t += 300 * second)
                ASSERT_EQ(answer(item, series, t), then) << "at T0+" << (t - T0) / 60'000 << "min; horizon T0+"
                                                         << (next - T0) / 60'000 << "min";
            if (next - now <= 6 * hour) ++changes;
            now = until;
        }
        EXPECT_GT(changes, 0) << "each case changes its answer within 40 days";
    }
}

// A run reads only what changed or came due while the rules' fingerprint is the one of the last
// full read: a setting missing from it would keep answers of the old rules until 00:00 UTC.
TEST(AlertRules, EveryRuleSettingChangesTheFingerprint) {
    const config::alerts_config base;
    const std::string before = alerts::rules_fingerprint(base, "prod", "purchased_groups");
    using change = std::function<void(config::alerts_config&)>;
    const std::vector<std::pair<std::string, change>> changes{
        {"expiring_days", [](auto& c) { c.rules.expiring_days = {30, 7}; }},
        {"quota_low_absolute", [](auto& c) { c.rules.quota_low_absolute = 5; }},
        {"quota_low_percent", [](auto& c) { c.rules.quota_low_percent = 10.5; }},
        {"forecast_days", [](auto& c) { c.rules.forecast_days = 15; }},
        {"forecast_window", [](auto& c) { c.rules.forecast_window = std::chrono::hours(24 * 8); }},
        {"forecast_min_samples", [](auto& c) { c.rules.forecast_min_samples = 5; }},
        {"forecast_min_r2", [](auto& c) { c.rules.forecast_min_r2 = 0.81; }},
        {"failing_after", [](auto& c) { c.rules.failing_after = 4; }},
        {"stale_after", [](auto& c) { c.rules.stale_after = std::chrono::hours(7); }},
        {"severity", [](auto& c) { c.rules.severities[0] = config::severity::critical; }},
        {"enabled_kinds", [](auto& c) { c.rules.enabled[static_cast<std::size_t>(alert_kind::removed_early)] = true; }},
        {"repeat_interval", [](auto& c) { c.repeat_interval = std::chrono::hours(25); }},
        {"a silence", [](auto& c) { c.silences.push_back({"", "", "g1", "", T0, ""}); }},
        {"a silence's end", [](auto& c) { c.silences.push_back({"prod", "", "", "", T0 + day, ""}); }},
        {"rules of this account", [](auto& c) {
             config::alerts_config::scoped_rules r{"prod", "", {}};
             r.rules.quota_low_absolute = 7;
             c.scoped.push_back(r);
         }},
    };
    for (const auto& [name, apply] : changes) {
        config::alerts_config cfg = base;
        apply(cfg);
        EXPECT_NE(alerts::rules_fingerprint(cfg, "prod", "purchased_groups"), before) << name;
    }
    // What cannot touch this source leaves it as it was.
    config::alerts_config other = base;
    other.silences.push_back({"staging", "", "", "", T0, ""});
    other.scoped.push_back({"", "subscription_resources", {}});
    other.scoped.back().rules.quota_low_absolute = 7;
    EXPECT_EQ(alerts::rules_fingerprint(other, "prod", "purchased_groups"), before);
}

// ---- state machine and outbox -----------------------------------------------------------------

purchased_group group(std::string id, epoch_ms expire, std::int64_t left = 5000, std::int64_t used = 5000) {
    purchased_group g;
    g.id = std::move(id);
    g.group_name = "group " + g.id;
    g.expire_time = expire;
    g.quota_left = left;
    g.quota_used = used;
    return g;
}

listing<purchased_group> complete(std::vector<purchased_group> items) {
    listing<purchased_group> l;
    l.total = static_cast<std::int64_t>(items.size());
    l.pages = 1;
    l.items = std::move(items);
    return l;
}

struct notification {
    std::string kind, state, id, threshold, reason, key, severity;
    std::int64_t number = 0;
};

class AlertState : public ::testing::Test {
protected:
    void SetUp() override {
        config::sink_config all;
        all.name = "all";
        config::sink_config critical;
        critical.name = "pager";
        critical.filter.min_severity = config::severity::critical;
        cfg_.sinks = {all, critical};
        store_.set_run_hook(&hook_);
    }

    int apply(std::vector<purchased_group> items, epoch_ms now) {
        return store_.apply("prod", complete(std::move(items)), now - 1000, now).notifications;
    }

    /// Notifications queued since the last call, in order.
    std::vector<notification> drain() {
        std::vector<notification> out;
        SQLite::Statement q(store_.database(),
                            "SELECT seq, kind, state, item_key, threshold, severity, idempotency_key, notification, "
                            "coalesce(reason, ''), summary, detail FROM alert_outbox WHERE seq > ? ORDER BY seq");
        q.bind(1, last_seq_);
        while (q.executeStep()) {
            last_seq_ = q.getColumn(0).getInt64();
            notification n;
            n.kind = q.getColumn(1).getString();
            n.state = q.getColumn(2).getString();
            n.id = q.getColumn(3).getString();
            n.threshold = q.getColumn(4).getString();
            n.severity = q.getColumn(5).getString();
            n.key = q.getColumn(6).getString();
            n.number = q.getColumn(7).getInt64();
            n.reason = q.getColumn(8).getString();
            EXPECT_FALSE(q.getColumn(9).getString().empty());
            simdjson::dom::parser parser;
            EXPECT_TRUE(parser.parse(q.getColumn(10).getString()).is_object());
            keys_.insert(n.key);
            ++total_;
            out.push_back(std::move(n));
        }
        return out;
    }

    static std::string brief(const std::vector<notification>& v) {
        std::string s;
        for (const auto& n : v)
            s += fmt::format("{}{} {}:{} {}{}", s.empty() ? "" : " | ", n.id, n.kind, n.threshold, n.state,
                             n.reason.empty() ? "" : " (" + n.reason + ")");
        return s.empty() ? "-" : s;
    }

    std::int64_t count(const std::string& sql) { return store_.database().execAndGet(sql).getInt64(); }

    temp_dir dir_;
    config::alerts_config cfg_;
    snapshot_store store_{dir_ / "snapshot.db"};
    alerts::rules_hook hook_{cfg_};
    std::int64_t last_seq_ = 0;
    std::set<std::string> keys_;
    std::size_t total_ = 0;
};

TEST_F(AlertState, FiresOnceThenRepeatsOnlyAfterTheRepeatInterval) {
    const epoch_ms E = T0 + 5 * day;
    EXPECT_EQ(apply({group("a", E), group("b", T0 + 100 * day)}, T0), 1);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing");
    // Unchanged re-syncs within the repeat interval: nothing at all.
    for (epoch_ms t = T0 + hour; t < T0 + 24 * hour; t += 3 * hour) EXPECT_EQ(apply({group("a", E), group("b", T0 + 100 * day)}, t), 0);
    EXPECT_EQ(brief(drain()), "-");
    apply({group("a", E), group("b", T0 + 100 * day)}, T0 + 24 * hour);
    auto repeat = drain();
    ASSERT_EQ(brief(repeat), "a expiring:7d firing");
    EXPECT_EQ(repeat[0].number, 2);
    EXPECT_EQ(keys_.size(), total_) << "every notification has its own idempotency key";
}

TEST_F(AlertState, AnUnchangedResyncWritesNoAlertRow) {
    const std::vector<purchased_group> items{group("a", T0 + 5 * day + 12 * hour), group("b", T0 - day - 12 * hour)};
    apply(items, T0);
    ASSERT_EQ(count("SELECT count(*) FROM alerts WHERE state = 'firing'"), 2);
    const int before = store_.database().getTotalChanges();
    EXPECT_EQ(apply(items, T0 + 10 * 60 * 1000), 0);
    EXPECT_EQ(store_.database().getTotalChanges() - before, 2) << "only the sync_runs row (insert + counts)";
}

// Issue 19 §2: an unchanged re-sync of 100k items spent a fifth of its time re-evaluating rules
// whose answers could not have changed. Until the recorded horizon, with the same rules, an
// unchanged run reads only the items an expiry or a repeat makes due. The stored row below is
// edited behind the snapshot's back (its row hash kept) to tell a run that reads it from one
// that does not.
TEST_F(AlertState, UnchangedRunsReadNoItemUntilTheirHorizonOrNewRules) {
    const std::vector<purchased_group> items{group("a", T0 + 40 * day)};
    apply(items, T0);
    EXPECT_EQ(brief(drain()), "-");
    auto horizon = [&] { return count("SELECT valid_until FROM alert_horizons WHERE source = 'purchased_groups'"); };
    EXPECT_EQ(horizon(), T0 + day - T0 % day) << "expiry texts count days: the next 00:00 UTC";
    store_.database().exec(fmt::format("UPDATE purchased_groups SET expire_time = {} WHERE item_key = 'a'", T0 + 5 * day));

    // Within the hour: no quota sample is due either (quota_sample_interval).
    EXPECT_EQ(store_.apply("prod", complete(items), T0 + 20 * 60 * second - 1000, T0 + 20 * 60 * second).changed, 0);
    EXPECT_EQ(brief(drain()), "-") << "an unchanged run before the horizon does not read the item";
    cfg_.rules.quota_low_percent = 5;  // other rules: everything is read again
    apply(items, T0 + 40 * 60 * second);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing");

    // A prune that deletes quota samples (which a forecast reads) forgets every horizon.
    store_.prune(T0 + 3 * hour);
    EXPECT_EQ(count("SELECT count(*) FROM alert_horizons"), 0);
}

// A run that changed a few items reads those, and what time made due; one that wrote quota
// samples of items it did not change (aged past quota_sample_interval) reads every item.
TEST_F(AlertState, AChangedRunReadsItsChangedItemsUnlessItSampledOthers) {
    auto without_quota = [](purchased_group g) {
        g.quota_left = {};
        g.quota_used = {};
        return g;
    };
    std::vector<purchased_group> items{without_quota(group("a", T0 + 40 * day)),
                                       without_quota(group("b", T0 + 50 * day)), group("q", T0 + 60 * day),
                                       without_quota(group("x", T0 + 70 * day)), without_quota(group("y", T0 + 80 * day))};
    apply(items, T0);
    EXPECT_EQ(brief(drain()), "-");
    store_.database().exec(fmt::format("UPDATE purchased_groups SET expire_time = {} WHERE item_key = 'a'", T0 + 5 * day));

    items[1].expire_time = T0 + 6 * day;  // b changes; q's sample is not due yet
    const auto run = store_.apply("prod", complete(items), T0 + 20 * 60 * second - 1000, T0 + 20 * 60 * second);
    EXPECT_EQ(run.changed, 1);
    EXPECT_EQ(brief(drain()), "b expiring:7d firing") << "a was not read: it did not change";

    // An hour after q was sampled, its unchanged quota is sampled again: every item is read.
    EXPECT_EQ(store_.apply("prod", complete(items), T0 + hour - 1000, T0 + hour).changed, 0);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing");
}

// Reading only what changed or came due is an optimization: it must give exactly what reading
// every item gives. Two snapshots take the same random history of listings over five days
// (expiries and quotas moved, items removed and listed again, syncs a minute to nine hours
// apart); one forgets its horizon before every run, so it reads every item every time. Their
// alert rows and notifications must be equal after every run.
TEST(AlertIncremental, GivesExactlyWhatReadingEveryItemGives) {
    config::alerts_config cfg;
    cfg.repeat_interval = std::chrono::hours(3);
    cfg.rules.quota_low_absolute = 1000;
    alerts::rules_hook hook(cfg);
    temp_dir dir;
    // Quotas are sampled when they change, and unchanged ones once a day: most runs of a day are
    // then not `wide`, and repeats and thresholds come due between full reads.
    store_options daily;
    daily.quota_sample_interval = std::chrono::hours(24);
    snapshot_store fast(dir / "fast.db", daily), full(dir / "full.db", daily);
    fast.set_run_hook(&hook);
    full.set_run_hook(&hook);

    std::mt19937 rng(11);
    auto uniform = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
    std::vector<purchased_group> items;
    std::vector<bool> listed;
    for (int i = 0; i < 60; ++i) {
        purchased_group g = group(fmt::format("g{:02}", i), T0 + uniform(-2 * day, 35 * day));
        if (i % 3 == 0) {
            g.quota_left = {};
            g.quota_used = {};
        } else {
            g.quota_left = uniform(0, 3000);
        }
        items.push_back(g);
        listed.push_back(true);
    }
    auto dump = [](snapshot_store& store) {
        std::string out;
        SQLite::Statement alerts(store.database(),
                                 "SELECT item_key, kind, threshold, state, severity, since, resolved_at, reason, "
                                 "last_notified, notifications, episode, summary, detail, measure, updated_at FROM "
                                 "alerts ORDER BY source, item_key, kind, threshold");
        SQLite::Statement outbox(store.database(), "SELECT item_key, kind, threshold, state, notification, reason, "
                                                   "summary, detail FROM alert_outbox ORDER BY seq");
        for (auto* q : {&alerts, &outbox})
            while (q->executeStep()) {
                for (int c = 0; c < q->getColumnCount(); ++c) out += q->getColumn(c).getString() + "|";
                out += "\n";
            }
        return out;
    };
    auto evaluated_at = [&] {
        return fast.database().execAndGet("SELECT evaluated_at FROM alert_horizons WHERE source = 'purchased_groups'")
            .getInt64();
    };
    const std::array<epoch_ms, 7> steps{60 * second, 7 * 60 * second, 25 * 60 * second, 59 * 60 * second,
                                        3 * hour, 9 * hour, 5 * 60 * second};
    epoch_ms now = T0;
    int partial = 0;
    for (int run = 0; run < 150; ++run) {
        now += steps[static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(steps.size()) - 1))];
        // Most runs change nothing; the others one or two items.
        for (std::int64_t k = uniform(0, 3) - 1; k > 0; --k) {
            auto& g = items[static_cast<std::size_t>(uniform(0, 59))];
            const auto i = static_cast<std::size_t>(&g - items.data());
            switch (uniform(0, 3)) {
                case 0: g.expire_time = now + uniform(-day, 40 * day); break;
                case 1:
                    if (g.quota_left.has_value()) g.quota_left = uniform(0, 3000);
                    break;
                default: listed[i] = !listed[i]; break;
            }
        }
        std::vector<purchased_group> listing;
        for (std::size_t i = 0; i < items.size(); ++i)
            if (listed[i]) listing.push_back(items[i]);
        const epoch_ms before = run > 0 ? evaluated_at() : 0;
        full.database().exec("DELETE FROM alert_horizons");
        fast.apply("prod", complete(listing), now - 1000, now);
        full.apply("prod", complete(listing), now - 1000, now);
        const std::string a = dump(fast), b = dump(full);
        if (a != b) {  // the first line that differs, not two pages of rows
            std::size_t at = 0;
            while (at < a.size() && at < b.size() && a[at] == b[at]) ++at;
            const std::size_t line = a.rfind('\n', at) == std::string::npos ? 0 : a.rfind('\n', at) + 1;
            FAIL() << "after run " << run << " at T0+" << (now - T0) / 60'000 << " min, incremental:\n"
                   << a.substr(line, a.find('\n', at) - line) << "\nreading every item:\n"
                   << b.substr(line, b.find('\n', at) - line);
        }
        partial += run > 0 && evaluated_at() == before ? 1 : 0;
    }
    EXPECT_GT(partial, 75) << "most runs read only what changed or came due";
}

// What an unchanged run re-reads: the items whose expiry or a threshold before it was reached
// since the last run, and the alerts due to repeat. T0 is 14:13 UTC: every run below is on
// T0's day, so none re-reads everything for the date.
TEST_F(AlertState, UnchangedRunsCatchEveryThresholdExpiryAndRepeatTimeBringsWithinTheDay) {
    cfg_.repeat_interval = std::chrono::hours(1);
    auto without_quota = [](purchased_group g) {  // no quota sample becomes due, hour after hour
        g.quota_left = {};
        g.quota_used = {};
        return g;
    };
    const std::vector<purchased_group> items{without_quota(group("a", T0 + 30 * day + 2 * hour)),
                                             without_quota(group("b", T0 + 3 * hour)),
                                             without_quota(group("c", T0 + 40 * day))};
    auto unchanged = [&](epoch_ms now) {
        const auto run = store_.apply("prod", complete(items), now - 1000, now);
        EXPECT_EQ(run.added + run.changed + run.removed, 0);
        return brief(drain());
    };
    apply(items, T0);
    EXPECT_EQ(brief(drain()), "b expiring:1d firing");
    const auto evaluated = count("SELECT evaluated_at FROM alert_horizons WHERE source = 'purchased_groups'");
    EXPECT_EQ(unchanged(T0 + 30 * 60 * second), "-");
    EXPECT_EQ(unchanged(T0 + 90 * 60 * second), "b expiring:1d firing") << "repeated after an hour";
    EXPECT_EQ(unchanged(T0 + 2 * hour + second), "a expiring:30d firing");
    EXPECT_EQ(unchanged(T0 + 3 * hour), "b expired: firing");
    EXPECT_EQ(unchanged(T0 + 3 * hour + 30 * 60 * second), "a expiring:30d firing") << "a repeats; b not yet";
    EXPECT_EQ(count("SELECT evaluated_at FROM alert_horizons WHERE source = 'purchased_groups'"), evaluated)
        << "no run read every item again";
}

TEST_F(AlertState, AlertTextsCountCalendarDaysAndChangeOnlyAtUtcMidnight) {
    // T0 is 12:53 UTC. "a" expires in 5 days and 20 minutes, "b" expired 23 hours 40 minutes ago:
    // counted in 24-hour days, both cross a whole day within the next half hour, which rewrote
    // their rows (and the alert exports) in every re-sync of the day.
    const std::vector<purchased_group> items{group("a", T0 + 5 * day + 20 * 60 * second),
                                             group("b", T0 - day + 20 * 60 * second)};
    apply(items, T0);
    auto texts = [&](const char* key) {
        return store_.database()
            .execAndGet(fmt::format("SELECT summary || ' ' || detail FROM alerts WHERE item_key = '{}'", key))
            .getString();
    };
    EXPECT_NE(texts("a").find("expires in 5 days,"), std::string::npos) << texts("a");
    EXPECT_NE(texts("a").find("\"days_left\":5}"), std::string::npos) << texts("a");
    EXPECT_NE(texts("b").find("\"days_left\":-1}"), std::string::npos) << texts("b") << ": expired yesterday";
    const int before = store_.database().getTotalChanges();
    EXPECT_EQ(apply(items, T0 + 30 * 60 * second), 0);
    EXPECT_EQ(store_.database().getTotalChanges() - before, 2) << "only the sync_runs row (insert + counts)";
    // The next UTC day (00:53): both texts move by one day.
    EXPECT_EQ(apply(items, T0 + 12 * hour), 0);
    EXPECT_NE(texts("a").find("expires in 4 days,"), std::string::npos) << texts("a");
    EXPECT_NE(texts("b").find("\"days_left\":-2}"), std::string::npos) << texts("b");

    // The last day reads "tomorrow", then "today", and counts no hours: "c" expires at 12:00 UTC
    // two days after T0's day.
    const std::vector<purchased_group> last_day{group("c", T0 + 2 * day - (53 * 60 + 20) * second)};
    auto updated = [&] {
        return store_.database().execAndGet("SELECT updated_at FROM alerts WHERE item_key = 'c'").getInt64();
    };
    apply(last_day, T0 + 24 * hour);  // 12:53, 23 hours left
    EXPECT_NE(texts("c").find("expires tomorrow, on"), std::string::npos) << texts("c");
    EXPECT_NE(texts("c").find("(threshold 1 day)"), std::string::npos) << texts("c");
    const auto written = updated();
    apply(last_day, T0 + 29 * hour);  // 17:53, 18 hours left
    EXPECT_EQ(updated(), written) << "the row is not written again: " << texts("c");
    apply(last_day, T0 + 36 * hour);  // 00:53 on the day itself
    EXPECT_NE(texts("c").find("expires today, on"), std::string::npos) << texts("c");
}

TEST_F(AlertState, CrossingATighterThresholdNotifiesOnceAndSupersedesSilently) {
    const epoch_ms E = T0 + 10 * day;
    apply({group("a", E)}, T0);
    EXPECT_EQ(brief(drain()), "a expiring:30d firing");
    apply({group("a", E)}, E - 7 * day);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing");
    apply({group("a", E)}, E - day + second);
    EXPECT_EQ(brief(drain()), "a expiring:1d firing");
    apply({group("a", E)}, E);
    EXPECT_EQ(brief(drain()), "a expired: firing");
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE state = 'firing'"), 1);
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE reason = 'superseded'"), 3);
}

TEST_F(AlertState, RenewalResolvesWithItsReason) {
    const epoch_ms E = T0 + 5 * day;
    apply({group("a", E)}, T0);
    drain();
    apply({group("a", E + 365 * day)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "a expiring:7d resolved (renewed)");
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE state = 'firing'"), 0);
    // Expiring again later is a new episode with a new key.
    apply({group("a", E)}, T0 + 2 * hour);
    const auto again = drain();
    ASSERT_EQ(brief(again), "a expiring:7d firing");
    EXPECT_EQ(again[0].number, 1);
    EXPECT_EQ(keys_.size(), total_);
}

TEST_F(AlertState, RemovalResolvesWithItsReason) {
    apply({group("a", T0 + 5 * day), group("b", T0 + 100 * day)}, T0);
    drain();
    apply({group("b", T0 + 100 * day)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "a expiring:7d resolved (removed)");
}

TEST_F(AlertState, ResourceRemovedBeforeExpiryFiresUntilItsExpiryWhenEnabled) {
    cfg_.rules.enabled[static_cast<std::size_t>(alert_kind::removed_early)] = true;
    cfg_.rules.expiring_days.clear();
    auto resource = [](std::string id, epoch_ms expire) {
        subscription_resource r;
        r.region_id = std::string("cn-north-4");
        r.project_id = std::string("p");
        r.resource_id = std::move(id);
        r.expire_time = expire;
        return r;
    };
    auto apply_resources = [&](std::vector<subscription_resource> items, epoch_ms now) {
        listing<subscription_resource> l;
        l.items = std::move(items);
        l.pages = 1;
        l.total = static_cast<std::int64_t>(l.items.size());
        return store_.apply("prod", l, now - 1000, now).notifications;
    };
    apply_resources({resource("r1", T0 + 10 * day), resource("r2", T0 + 100 * day)}, T0);
    EXPECT_EQ(brief(drain()), "-");
    apply_resources({resource("r2", T0 + 100 * day)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "cn-north-4/p/r1 removed_early: firing");
    apply_resources({resource("r2", T0 + 100 * day)}, T0 + 11 * day);
    EXPECT_EQ(brief(drain()), "cn-north-4/p/r1 removed_early: resolved (expired)");
}

TEST_F(AlertState, QuotaTopUpResolves) {
    cfg_.rules.quota_low_absolute = 100;
    apply({group("a", T0 + 100 * day, 50, 9950)}, T0);
    EXPECT_EQ(brief(drain()), "a quota_low:abs:100 firing | a quota_low:pct:10 firing");
    apply({group("a", T0 + 100 * day, 0, 10000)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "a quota_exhausted:0 firing");
    apply({group("a", T0 + 100 * day, 100000, 10000)}, T0 + 2 * hour);
    EXPECT_EQ(brief(drain()), "a quota_exhausted:0 resolved (topped_up)");
}

TEST_F(AlertState, SilencedAlertsKeepStateAndNotifyWhenTheSilenceEnds) {
    cfg_.silences.push_back({"prod", "", "a", "expiring", T0 + 2 * hour, "renewal ordered"});
    apply({group("a", T0 + 5 * day), group("b", T0 + 5 * day)}, T0);
    EXPECT_EQ(brief(drain()), "b expiring:7d firing") << "a is silenced";
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE state = 'firing'"), 2);
    apply({group("a", T0 + 5 * day), group("b", T0 + 5 * day)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "-");
    apply({group("a", T0 + 5 * day), group("b", T0 + 5 * day)}, T0 + 2 * hour);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing") << "the silence ended";
}

TEST_F(AlertState, AResolvedAlertThatNeverNotifiedStaysQuiet) {
    cfg_.silences.push_back({"", "", "", "expiring", T0 + 10 * day, ""});
    apply({group("a", T0 + 5 * day)}, T0);
    apply({group("a", T0 + 400 * day)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "-");
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE state = 'resolved' AND reason = 'renewed'"), 1);
}

TEST_F(AlertState, SourceFailingAndAuthFailingFireOnFailuresAndResolveOnSuccess) {
    apply({group("a", T0 + 100 * day)}, T0);
    for (int i = 1; i <= 3; ++i)
        store_.record_failure("prod", source_kind::purchased_groups, "HTTP 500", T0 + i * 1000, T0 + i * 1000 + 1, false,
                              "http_status");
    EXPECT_EQ(brief(drain()), " source_failing:3 firing");
    store_.record_failure("prod", source_kind::purchased_groups, "HTTP 401", T0 + 5000, T0 + 5001, false, "auth");
    EXPECT_EQ(brief(drain()), " auth_failing: firing");
    apply({group("a", T0 + 100 * day)}, T0 + 6000);
    EXPECT_EQ(brief(drain()), " auth_failing: resolved (recovered) |  source_failing:3 resolved (recovered)");
}

TEST_F(AlertState, DeliveriesFollowTheSinkFilters) {
    apply({group("warn", T0 + 5 * day), group("crit", T0 - day)}, T0);
    const auto n = drain();
    ASSERT_EQ(n.size(), 2u);
    EXPECT_EQ(count("SELECT count(*) FROM alert_delivery_status WHERE sink = 'all' AND status = 'pending'"), 2);
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries WHERE sink = 'pager'"), 1);
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries d JOIN alert_outbox o USING (seq) WHERE d.sink = 'pager' "
                    "AND o.kind = 'expired'"),
              1);
}

TEST_F(AlertState, DryRunQueuesNothing) {
    const auto run = store_.apply("prod", complete({group("a", T0 + 5 * day)}), T0 - 1, T0, true);
    EXPECT_EQ(run.notifications, 1) << "a dry run says what it would send";
    EXPECT_EQ(count("SELECT count(*) FROM alert_outbox"), 0);
    EXPECT_EQ(count("SELECT count(*) FROM alerts"), 0);
}

TEST_F(AlertState, NotificationsCommitWithTheSnapshotChangeOrNotAtAll) {
    apply({group("a", T0 + 100 * day)}, T0);
    // A failing transaction (a trigger aborts the run's last write) leaves neither the
    // changed row nor the notification behind.
    store_.database().exec(
        "CREATE TRIGGER boom BEFORE INSERT ON alert_deliveries BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    EXPECT_THROW(apply({group("a", T0 + 5 * day)}, T0 + hour), std::exception);
    EXPECT_EQ(count("SELECT count(*) FROM alert_outbox"), 0);
    EXPECT_EQ(count("SELECT expire_time FROM purchased_groups WHERE item_key = 'a'"), T0 + 100 * day);
    store_.database().exec("DROP TRIGGER boom");
    apply({group("a", T0 + 5 * day)}, T0 + 2 * hour);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing");
}

TEST_F(AlertState, DeliveryFailedGoesToTheOtherSinksAndResolves) {
    EXPECT_EQ(alerts::update_delivery_failed(store_.database(), cfg_, "all", 2, "HTTP 503", T0), 1);
    const auto n = drain();
    ASSERT_EQ(brief(n), "all delivery_failed: firing");
    EXPECT_EQ(n[0].severity, "critical");
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries WHERE sink = 'all'"), 0) << "not to the broken sink";
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries WHERE sink = 'pager'"), 1);
    EXPECT_EQ(alerts::update_delivery_failed(store_.database(), cfg_, "all", 2, "HTTP 503", T0 + 1), 0);
    EXPECT_EQ(alerts::update_delivery_failed(store_.database(), cfg_, "all", 0, "", T0 + 2), 1);
    EXPECT_EQ(brief(drain()), "all delivery_failed: resolved (redelivered)");
}

TEST_F(AlertState, ReadAlertsListsFiringMostSevereFirst) {
    apply({group("warn", T0 + 5 * day), group("crit", T0 - day), group("ok", T0 + 100 * day)}, T0);
    apply({group("crit", T0 - day), group("ok", T0 + 100 * day)}, T0 + hour);
    const auto firing = alerts::read_alerts(store_.database(), false);
    ASSERT_EQ(firing.size(), 1u);
    EXPECT_EQ(firing[0].item_key, "crit");
    EXPECT_EQ(firing[0].severity, "critical");
    const auto all = alerts::read_alerts(store_.database(), true);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].state, "resolved");
    EXPECT_EQ(all[1].reason, "removed");
}

}  // namespace
}  // namespace subsync::sync

namespace subsync::sync {
namespace {

TEST_F(AlertState, PruneKeepsWhatIsFiringOrUndelivered) {
    apply({group("gone", T0 + 5 * day), group("stays", T0 + 5 * day)}, T0);
    apply({group("stays", T0 + 5 * day)}, T0 + hour);  // "gone" resolves (removed)
    ASSERT_EQ(count("SELECT count(*) FROM alert_outbox"), 3);
    // Every delivery of the firing notification of "gone" is done; the rest still waits.
    {
        std::vector<std::pair<std::string, std::int64_t>> done;
        SQLite::Statement q(store_.database(),
                            "SELECT d.sink, d.seq FROM alert_deliveries d JOIN alert_outbox o USING (seq) "
                            "WHERE o.item_key = 'gone'");
        while (q.executeStep()) done.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getInt64());
        ASSERT_FALSE(done.empty());
        alerting::outbox ob(store_.database());
        for (const auto& [sink, seq] : done) {
            ob.assign(sink, seq, "g", std::vector<std::int64_t>{seq});
            const alerting::batch_outcome delivered{seq, alerting::attempt_outcome::delivered, 1, T0 + 3 * hour, 1, 0, ""};
            ob.record(sink, std::span(&delivered, 1));
        }
    }
    const auto p = store_.prune(T0 + 2 * hour);
    EXPECT_EQ(p.alerts, 3) << "the resolved alert and both finished notifications of \"gone\"";
    EXPECT_EQ(count("SELECT count(*) FROM alerts"), 1);
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE item_key = 'stays' AND state = 'firing'"), 1);
    EXPECT_EQ(count("SELECT count(*) FROM alert_outbox WHERE item_key = 'stays'"), 1);
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries"), 1) << "deliveries go with their notification";
}

}  // namespace
}  // namespace subsync::sync

namespace subsync::sync {
namespace {

TEST(AlertRules, SummariesStayOnOneLineWhateverTheNameHolds) {
    auto item = expiring_at(T0 + day);
    item.name = "multi\nline \"quoted\"\x1b[31m";
    item.key = "id\r\n";
    const auto a = alerts::evaluate_item(item, {}, T0, {}, "purchased_groups");
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].summary.find_first_of("\r\n\x1b"), std::string::npos) << a[0].summary;
    EXPECT_NE(a[0].summary.find(R"("multi\nline \"quoted\"\u001b[31m")"), std::string::npos) << a[0].summary;
}

}  // namespace
}  // namespace subsync::sync

namespace subsync::sync {
namespace {

TEST(AlertRules, ExtremeApiValuesNeitherOverflowNorFireWrongly) {
    constexpr auto max = std::numeric_limits<std::int64_t>::max();
    constexpr auto min = std::numeric_limits<std::int64_t>::min();
    EXPECT_EQ(item_alerts(quota(max, max), T0), "-");
    EXPECT_EQ(item_alerts(quota(1, max), T0), "quota_low:pct:10");
    EXPECT_EQ(item_alerts(expiring_at(max), T0), "-");
    EXPECT_EQ(item_alerts(expiring_at(min), T0), "expired:");
    const std::vector<alerts::quota_point> wild{{T0 - 3 * hour, max}, {T0 - 2 * hour, 0}, {T0 - hour, min}, {T0, max}};
    config::alert_rules rules;
    rules.forecast_min_samples = 2;
    (void)alerts::fit_forecast(wild, T0, rules);  // must not overflow (UBSan checks)
    EXPECT_EQ(item_alerts(quota(max - 1, 0), T0, rules, wild), "-");
}

}  // namespace
}  // namespace subsync::sync
