// Which runs read which items (docs/alerts.md "When rules run"): the rules' horizon and
// fingerprint, and the runs that read only what changed or came due, checked against reading
// every item.

#include "support/alert_state_fixture.hpp"

#include <array>
#include <functional>
#include <utility>

namespace subsync::sync {
namespace {

using namespace alert_test;
using config::alert_kind;

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
        {"a silence", [](auto& c) { c.silences.push_back({"", "", "g1", std::nullopt, T0, ""}); }},
        {"a silence's end", [](auto& c) { c.silences.push_back({"prod", "", "", std::nullopt, T0 + day, ""}); }},
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
    other.silences.push_back({"staging", "", "", std::nullopt, T0, ""});
    other.scoped.push_back({"", "subscription_resources", {}});
    other.scoped.back().rules.quota_low_absolute = 7;
    EXPECT_EQ(alerts::rules_fingerprint(other, "prod", "purchased_groups"), before);
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

}  // namespace
}  // namespace subsync::sync
