// How pending alerts become group notifications (alerting::plan_notifications): which alerts go
// together, in what order, split how, and when each group is due. Pure planning, no database;
// the dispatcher sending these plans is in alert_dispatch_test.cpp.

#include <subsync/alerting/grouping.hpp>
#include <subsync/config/config.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <span>
#include <string>
#include <vector>

namespace subsync {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t t0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z

alerting::pending_delivery row(std::int64_t seq, std::string account, std::string source, std::string kind,
                               std::string severity, std::string item, std::string state = "firing") {
    alerting::pending_delivery d;
    d.seq = seq;
    d.created_at = t0;
    d.account = std::move(account);
    d.source = std::move(source);
    d.kind = std::move(kind);
    d.severity = *config::severity_named(severity);
    d.item_key = std::move(item);
    d.threshold = "7d";
    d.state = state == "firing" ? alerting::alert_state::firing : alerting::alert_state::resolved;
    return d;
}

std::vector<std::string> planned(std::span<const alerting::pending_delivery> rows, const config::grouping& g,
                                 std::optional<std::int64_t> last = std::nullopt) {
    std::vector<std::string> out;
    for (const auto& p : alerting::plan_notifications(rows, g, [&](const std::string&) { return last; })) {
        std::string seqs;
        for (auto s : p.seqs) seqs += (seqs.empty() ? "" : ",") + std::to_string(s);
        out.push_back(p.key + " [" + seqs + "]");
    }
    return out;
}

TEST(Grouping, ByEachLabelOneNotificationPerDistinctValueInQueueOrder) {
    const std::vector<alerting::pending_delivery> rows{
        row(1, "prod", "purchased_groups", "expiring", "warning", "a"),
        row(2, "dev", "purchased_groups", "expiring", "warning", "b"),
        row(3, "prod", "subscription_resources", "expired", "critical", "c"),
        row(4, "prod", "purchased_groups", "quota_low", "warning", "a"),
        row(5, "dev", "subscription_resources", "expired", "critical", "d"),
    };
    using L = config::group_label;
    auto by = [](std::vector<L> labels) {
        config::grouping g;
        g.by = std::move(labels);
        return g;
    };
    EXPECT_EQ(planned(rows, by({L::account})),
              (std::vector<std::string>{"account=prod [3,1,4]", "account=dev [5,2]"}))
        << "critical first inside a group; groups in the order of their first alert";
    EXPECT_EQ(planned(rows, by({L::source})), (std::vector<std::string>{"source=purchased_groups [1,2,4]",
                                                                        "source=subscription_resources [3,5]"}));
    EXPECT_EQ(planned(rows, by({L::kind})),
              (std::vector<std::string>{"kind=expiring [1,2]", "kind=expired [3,5]", "kind=quota_low [4]"}));
    EXPECT_EQ(planned(rows, by({L::severity})),
              (std::vector<std::string>{"severity=warning [1,2,4]", "severity=critical [3,5]"}));
    EXPECT_EQ(planned(rows, by({L::item})),
              (std::vector<std::string>{"item=prod/purchased_groups/a/expiring/7d [1]",
                                        "item=dev/purchased_groups/b/expiring/7d [2]",
                                        "item=prod/subscription_resources/c/expired/7d [3]",
                                        "item=prod/purchased_groups/a/quota_low/7d [4]",
                                        "item=dev/subscription_resources/d/expired/7d [5]"}))
        << "the item label is the alert: one notification per alert";
    EXPECT_EQ(planned(rows, config::grouping{}),
              (std::vector<std::string>{"account=prod,kind=expiring [1]", "account=dev,kind=expiring [2]",
                                        "account=prod,kind=expired [3]", "account=prod,kind=quota_low [4]",
                                        "account=dev,kind=expired [5]"}))
        << "the default: account and kind";
    EXPECT_EQ(planned(rows, by({})), (std::vector<std::string>{" [3,5,1,2,4]"})) << "group_by = []: one group";
    EXPECT_EQ(planned(std::vector{row(1, "a,b=c%", "s", "k", "info", "i")}, by({L::account})),
              (std::vector<std::string>{"account=a%2Cb%3Dc%25 [1]"}))
        << "label values cannot forge another group's key";
}

// group_by = ["item"] restores one notification per alert: an alert is (account, source, item,
// kind, threshold), so neither an item's two kinds or two thresholds nor every account's
// source-level alerts (item "") share one. A firing and a resolved notification of one alert,
// both pending, are that alert's one notification.
TEST(Grouping, ByItemIsOneNotificationPerAlert) {
    std::vector<alerting::pending_delivery> rows{
        row(1, "prod", "purchased_groups", "expiring", "warning", "a"),
        row(2, "prod", "purchased_groups", "expiring", "critical", "a"),
        row(3, "prod", "purchased_groups", "quota_low", "warning", "a"),
        row(4, "prod", "subscription_resources", "source_failing", "critical", ""),
        row(5, "dev", "subscription_resources", "source_failing", "critical", ""),
        row(6, "prod", "subscription_resources", "expired", "critical", "cn-north-4/p,1=x/r"),
        row(7, "prod", "purchased_groups", "expiring", "warning", "a", "resolved"),
    };
    rows[0].threshold = "30d";
    rows[3].threshold = rows[4].threshold = "0";
    rows[6].threshold = "30d";
    config::grouping g;
    g.by = {config::group_label::item};
    EXPECT_EQ(planned(rows, g), (std::vector<std::string>{
                                    "item=prod/purchased_groups/a/expiring/30d [1,7]",
                                    "item=prod/purchased_groups/a/expiring/7d [2]",
                                    "item=prod/purchased_groups/a/quota_low/7d [3]",
                                    "item=prod/subscription_resources//source_failing/0 [4]",
                                    "item=dev/subscription_resources//source_failing/0 [5]",
                                    "item=prod/subscription_resources/cn-north-4/p%2C1%3Dx/r/expired/7d [6]",
                                }));
}

TEST(Grouping, MaxAlertsSplitsAGroupMostUrgentFirstAndResolvedLast) {
    std::vector<alerting::pending_delivery> rows;
    for (int i = 1; i <= 5; ++i) rows.push_back(row(i, "prod", "p", "expiring", "warning", "i" + std::to_string(i)));
    rows[3].severity = config::severity::critical;
    rows[0].state = alerting::alert_state::resolved;
    config::grouping g;
    g.max_alerts = 2;
    EXPECT_EQ(planned(rows, g), (std::vector<std::string>{"account=prod,kind=expiring [4,2]",
                                                          "account=prod,kind=expiring [3,5]",
                                                          "account=prod,kind=expiring [1]"}));
}

TEST(Grouping, WaitAndIntervalSetWhenAGroupIsDue) {
    const std::vector<alerting::pending_delivery> rows{row(1, "prod", "p", "expiring", "warning", "a")};
    config::grouping g;
    g.wait = 30s;
    g.interval = 5min;
    auto due = [&](std::optional<std::int64_t> last) {
        return alerting::plan_notifications(rows, g, [&](const std::string&) { return last; }).at(0).due;
    };
    EXPECT_EQ(due(std::nullopt), t0 + 30'000) << "a new group waits group_wait after its oldest alert";
    EXPECT_EQ(due(t0 - 60'000), t0 - 60'000 + 300'000) << "a group sent a minute ago waits out group_interval";
    EXPECT_EQ(due(t0 - 3'600'000), t0) << "long after the last one: as soon as its alert is queued";
}

}  // namespace
}  // namespace subsync
