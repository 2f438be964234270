// The alert rules (pure, fixed clock) and the state machine with its outbox
// (a real SQLite snapshot, every notification read back from alert_outbox).

#include "support/alert_state_fixture.hpp"

namespace subsync::sync {
namespace {

using namespace alert_test;
using namespace std::chrono_literals;
using config::alert_kind;

std::string describe(const std::vector<alerts::active_alert>& v) {
    std::string s;
    for (const auto& a : v) s += fmt::format("{}{}:{}", s.empty() ? "" : " ", config::to_string(a.kind), a.threshold);
    return s.empty() ? "-" : s;
}

std::string item_alerts(const alerts::item_facts& item, epoch_ms now, const config::alert_rules& rules = {},
                        std::span<const alerts::quota_point> series = {}) {
    return describe(alerts::evaluate_item(item, series, now, rules, "purchased_groups"));
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

// ---- state machine and outbox -----------------------------------------------------------------

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

// The state machine works on alert_kind, not on names. A row of a kind this binary does not
// know (a newer subsyncd wrote it, then was downgraded) has no rule that holds it true: it
// resolves as rule_off once its item is read again, with no notification (nothing here can word
// one), and never stops the run.
TEST_F(AlertState, AFiringAlertOfAKindThisBinaryDoesNotKnowResolvesQuietly) {
    apply({group("a", T0 + 5 * day)}, T0);
    ASSERT_EQ(brief(drain()), "a expiring:7d firing");
    store_.database().exec("UPDATE alerts SET kind = 'from_a_newer_version' WHERE item_key = 'a'");
    apply({group("a", T0 + 5 * day + hour)}, T0 + hour);  // a changed: its alerts are read again
    EXPECT_EQ(brief(drain()), "a expiring:7d firing") << "the known kind fires anew; the unknown one says nothing";
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE kind = 'from_a_newer_version' AND state = 'resolved' "
                    "AND reason = 'rule_off' AND resolved_at = " + std::to_string(T0 + hour)),
              1);
    apply({group("a", T0 + 5 * day + hour)}, T0 + 2 * hour);
    EXPECT_EQ(brief(drain()), "-");
}

// Only a scope that reads an unknown kind's row retires it: the dispatcher's delivery_failed
// update for one sink reads that sink's row alone, and leaves another row of the alerts source be.
TEST_F(AlertState, AnUnknownKindOutsideTheLoadedScopeIsLeftAlone) {
    store_.database().exec(
        "INSERT INTO alerts (account, source, item_key, kind, threshold, state, severity, since, notifications, "
        "summary, detail, updated_at) VALUES ('', 'alerts', 'other-sink', 'from_a_newer_version', '', 'firing', "
        "'critical', 1, 1, 's', '{}', 1)");
    EXPECT_EQ(alerts::update_delivery_failed(store_.database(), cfg_, "all", 0, "", T0), 0);
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE item_key = 'other-sink' AND state = 'firing'"), 1);
}

// The export's marks read data_versions instead of scanning the alerts: every run that writes an
// alert row, and every prune that deletes one, counts there; a run that writes none does not.
TEST_F(AlertState, EveryWriteOfAnAlertRowIsCountedInDataVersions) {
    auto& db = store_.database();
    auto version = [&] { return data_version(db, versioned_table::alerts); };
    const std::vector<purchased_group> items{group("a", T0 + 5 * day + 12 * hour), group("b", T0 + 100 * day)};
    const auto v0 = version();
    apply(items, T0);
    const auto v1 = version();
    EXPECT_GT(v1, v0) << "a fired";
    apply(items, T0 + hour);
    EXPECT_EQ(version(), v1) << "nothing written";
    apply({group("b", T0 + 100 * day)}, T0 + 2 * hour);  // a is gone: resolved
    const auto v2 = version();
    EXPECT_GT(v2, v1);
    ASSERT_GT(store_.prune(T0 + 3 * hour).alerts, 0);
    EXPECT_GT(version(), v2) << "the resolved alert was pruned";
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
    cfg_.silences.push_back({"prod", "", "a", config::alert_kind::expiring, T0 + 2 * hour, "renewal ordered"});
    apply({group("a", T0 + 5 * day), group("b", T0 + 5 * day)}, T0);
    EXPECT_EQ(brief(drain()), "b expiring:7d firing") << "a is silenced";
    EXPECT_EQ(count("SELECT count(*) FROM alerts WHERE state = 'firing'"), 2);
    apply({group("a", T0 + 5 * day), group("b", T0 + 5 * day)}, T0 + hour);
    EXPECT_EQ(brief(drain()), "-");
    apply({group("a", T0 + 5 * day), group("b", T0 + 5 * day)}, T0 + 2 * hour);
    EXPECT_EQ(brief(drain()), "a expiring:7d firing") << "the silence ended";
}

TEST_F(AlertState, AResolvedAlertThatNeverNotifiedStaysQuiet) {
    cfg_.silences.push_back({"", "", "", config::alert_kind::expiring, T0 + 10 * day, ""});
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

// Issue 16: a run's deliveries are written a statement per 500 rows of a sink, after its
// notifications. A run of more than two batches still gives every notification exactly the
// deliveries its sinks' filters take, and none other.
TEST_F(AlertState, DeliveriesOfALargeRunFollowTheSinkFilters) {
    std::vector<purchased_group> items;
    for (int i = 0; i < 1201; ++i)
        items.push_back(group(fmt::format("g{:04}", i), i % 3 == 0 ? T0 - day : T0 + 5 * day));
    EXPECT_EQ(apply(std::move(items), T0), 1201);
    EXPECT_EQ(count("SELECT count(*) FROM alert_outbox"), 1201);
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries WHERE sink = 'all'"), 1201);
    EXPECT_EQ(count("SELECT count(*) FROM alert_outbox o WHERE NOT EXISTS (SELECT 1 FROM alert_deliveries d "
                    "WHERE d.sink = 'all' AND d.seq = o.seq)"),
              0);
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries WHERE sink = 'pager'"), 401) << "the critical ones";
    EXPECT_EQ(count("SELECT count(*) FROM alert_deliveries d JOIN alert_outbox o USING (seq) WHERE d.sink = 'pager' "
                    "AND o.severity = 'critical'"),
              401);
    EXPECT_EQ(count("SELECT count(*) FROM alert_delivery_status WHERE status = 'pending'"), 1602);
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
    EXPECT_EQ(firing[0].severity, config::severity::critical);
    const auto all = alerts::read_alerts(store_.database(), true);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].state, alerts::alert_state::resolved);
    EXPECT_EQ(all[1].reason, "removed");
}

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

// A resolved alert is pruned with its episode while the sink that is down still owes its
// notifications. When the same alert fires again it starts over at episode 1, notification 1:
// its key must still be new, or the outbox took it for the one it already holds and dropped it
// (and a receiver would drop it as a duplicate).
TEST_F(AlertState, AnAlertThatFiresAgainAfterItsEpisodeWasPrunedIsQueuedUnderANewKey) {
    apply({group("a", T0 + 5 * day)}, T0);
    apply({group("a", T0 + 365 * day)}, T0 + hour);  // renewed: resolved
    const auto first = drain();
    ASSERT_EQ(brief(first), "a expiring:7d firing | a expiring:7d resolved (renewed)");
    store_.prune(T0 + 2 * hour);
    ASSERT_EQ(count("SELECT count(*) FROM alerts"), 0) << "the resolved episode is gone";
    ASSERT_EQ(count("SELECT count(*) FROM alert_outbox"), 2) << "what no sink has taken is kept";

    EXPECT_EQ(apply({group("a", T0 + 3 * hour + 5 * day)}, T0 + 3 * hour), 1);
    const auto again = drain();
    ASSERT_EQ(brief(again), "a expiring:7d firing");
    EXPECT_EQ(again[0].number, 1);
    EXPECT_NE(again[0].key, first[0].key);
    EXPECT_EQ(keys_.size(), total_) << "every notification has its own idempotency key";
}

TEST(AlertRules, SummariesStayOnOneLineWhateverTheNameHolds) {
    auto item = expiring_at(T0 + day);
    item.name = "multi\nline \"quoted\"\x1b[31m";
    item.key = "id\r\n";
    const auto a = alerts::evaluate_item(item, {}, T0, {}, "purchased_groups");
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].summary.find_first_of("\r\n\x1b"), std::string::npos) << a[0].summary;
    EXPECT_NE(a[0].summary.find(R"("multi\nline \"quoted\"\u001b[31m")"), std::string::npos) << a[0].summary;
}

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
