#pragma once
// The alert tests' shared fixture: a fixed clock, items built in a line, and AlertState (a real
// SQLite snapshot whose run hook is the alert rules, every notification read back from
// alert_outbox). Used by alerts_test.cpp (rules and state machine) and alert_horizon_test.cpp
// (which runs read only what changed or came due).

#include "support/test_support.hpp"

#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace subsync::sync::alert_test {

namespace alerts = alerting;
using test::temp_dir;

constexpr epoch_ms second = 1000;
constexpr epoch_ms hour = 3'600'000;
constexpr epoch_ms day = 86'400'000;
constexpr epoch_ms T0 = 1'790'000'000'000;  // 2026-09-21, an arbitrary fixed "now"

inline alerts::item_facts expiring_at(epoch_ms expire) {
    alerts::item_facts f;
    f.key = "sub-1";
    f.name = "payments";
    f.expire_time = expire;
    return f;
}

inline alerts::item_facts quota(std::int64_t left, std::optional<std::int64_t> used) {
    alerts::item_facts f;
    f.key = "sub-1";
    f.quota_left = left;
    f.quota_used = used;
    return f;
}

inline std::vector<alerts::quota_point> linear(epoch_ms start, int samples, epoch_ms step, double left0, double per_day,
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

inline purchased_group group(std::string id, epoch_ms expire, std::int64_t left = 5000, std::int64_t used = 5000) {
    purchased_group g;
    g.id = std::move(id);
    g.group_name = "group " + g.id;
    g.expire_time = expire;
    g.quota_left = left;
    g.quota_used = used;
    return g;
}

inline listing<purchased_group> complete(std::vector<purchased_group> items) {
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

}  // namespace subsync::sync::alert_test
