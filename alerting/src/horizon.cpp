#include "horizon.hpp"

#include "bind.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace subsync::alerting::detail {
namespace {

constexpr std::string_view groups = "purchased_groups";

std::string_view item_table(std::string_view source) {
    return source == groups ? "purchased_groups" : "subscription_resources";
}

std::string select_items(std::string_view source, bool by_key) {
    return fmt::format("{} {}",
                       source == groups
                           ? "SELECT item_key, group_name, expire_time, quota_left, quota_used, NULL, NULL, NULL "
                             "FROM purchased_groups WHERE account = ?1 AND removed_at IS NULL"
                           // Removed resources are read too while removed_early is on and they
                           // have not expired yet.
                           : "SELECT item_key, resource_type, expire_time, NULL, NULL, resource_status, "
                             "resource_spec_code, removed_at FROM subscription_resources WHERE account = ?1 "
                             "AND (removed_at IS NULL OR (?2 AND expire_time > ?3))",
                       by_key ? "AND item_key = ?4" : "ORDER BY item_key");
}

}  // namespace

std::optional<epoch_ms> last_evaluation(SQLite::Database& db, std::string_view account, std::string_view source,
                                        const std::string& fingerprint, epoch_ms now, std::int64_t run_id) {
    SQLite::Statement q(db, "SELECT h.rules, h.evaluated_at, h.valid_until, (SELECT finished_at FROM sync_runs WHERE "
                            "account = ?1 AND source = ?2 AND id < ?3 ORDER BY id DESC LIMIT 1) FROM alert_horizons h "
                            "WHERE h.account = ?1 AND h.source = ?2");
    q.bind(1, std::string(account));
    q.bind(2, std::string(source));
    q.bind(3, run_id);
    if (!q.executeStep() || q.getColumn(0).getString() != fingerprint || q.getColumn(3).isNull()) return std::nullopt;
    const horizon h{q.getColumn(1).getInt64(), q.getColumn(2).getInt64()};
    const epoch_ms previous = q.getColumn(3).getInt64();
    if (previous < h.evaluated_at || now < previous || now >= h.valid_until) return std::nullopt;
    return previous;
}

void record_horizon(SQLite::Database& db, std::string_view account, std::string_view source,
                    const std::string& fingerprint, const horizon& h) {
    SQLite::Statement q(db, "INSERT OR REPLACE INTO alert_horizons (account, source, rules, evaluated_at, valid_until) "
                            "VALUES (?, ?, ?, ?, ?)");
    q.bind(1, std::string(account));
    q.bind(2, std::string(source));
    q.bind(3, fingerprint);
    q.bind(4, static_cast<std::int64_t>(h.evaluated_at));
    q.bind(5, static_cast<std::int64_t>(h.valid_until));
    q.exec();
}

std::vector<std::string> due_items(SQLite::Database& db, const config::alerts_config& cfg,
                                   const config::alert_rules& rules, std::string_view account,
                                   std::string_view source, epoch_ms last, epoch_ms now) {
    // One range of the expiry index per threshold: ORed in one WHERE, SQLite read the whole index.
    std::string reached;
    for (epoch_ms offset : expiry_offsets(rules))
        reached += fmt::format("SELECT item_key FROM {0} INDEXED BY {0}_by_expiry WHERE account = ?1 AND expire_time "
                               "> {1} AND expire_time <= {2} UNION ",
                               item_table(source), last + offset, now + offset);
    SQLite::Statement q(db, fmt::format("{}SELECT item_key FROM alerts WHERE account = ?1 AND source = ?2 AND state = "
                                        "'firing' AND item_key <> '' AND last_notified <= ?3 ORDER BY 1",
                                        reached));
    q.bind(1, std::string(account));
    q.bind(2, std::string(source));
    q.bind(3, static_cast<std::int64_t>(now - cfg.repeat_interval.count()));
    std::vector<std::string> keys;
    while (q.executeStep()) keys.push_back(q.getColumn(0).getString());
    return keys;
}

void lower_horizon(SQLite::Database& db, std::string_view account, std::string_view source, epoch_ms until) {
    SQLite::Statement q(db, "UPDATE alert_horizons SET valid_until = ?1 WHERE account = ?2 AND source = ?3 AND "
                            "valid_until > ?1");
    q.bind(1, static_cast<std::int64_t>(until));
    q.bind(2, std::string(account));
    q.bind(3, std::string(source));
    q.exec();
}

bool add_changed_items(SQLite::Database& db, std::int64_t run_id, std::vector<std::string>& keys) {
    SQLite::Statement counts(db, "SELECT items, added + changed + removed FROM sync_runs WHERE id = ?");
    counts.bind(1, run_id);
    if (!counts.executeStep()) return false;
    const std::int64_t listed = counts.getColumn(0).getInt64(), changed_count = counts.getColumn(1).getInt64();
    if (changed_count > 1024 && changed_count * 4 > listed) return false;
    SQLite::Statement q(db, "SELECT DISTINCT item_key FROM changes WHERE run_id = ? ORDER BY item_key");
    q.bind(1, run_id);
    std::vector<std::string> changed;
    while (q.executeStep()) changed.push_back(q.getColumn(0).getString());
    std::vector<std::string> merged;
    merged.reserve(keys.size() + changed.size());
    std::set_union(keys.begin(), keys.end(), changed.begin(), changed.end(), std::back_inserter(merged));
    keys = std::move(merged);
    return true;
}

item_reader::item_reader(SQLite::Database& db, const config::alert_rules& rules, std::string_view account,
                         std::string_view source, epoch_ms now, const std::vector<std::string>* keys)
    : groups_(source == groups), keys_(keys), account_(account), q_(db, select_items(source, keys != nullptr)) {
    q_.bind(1, account_);
    if (!groups_) {
        q_.bind(2, rules.on(config::alert_kind::removed_early) ? 1 : 0);
        q_.bind(3, static_cast<std::int64_t>(now));
    }
    if (groups_ && rules.on(config::alert_kind::quota_forecast) && rules.forecast_days > 0) {
        samples_.emplace(db, std::string("SELECT purchase_id, time, quota_left FROM quota_samples WHERE account = ?1 "
                                         "AND time >= ?2 AND quota_left IS NOT NULL ") +
                                 (keys ? "AND purchase_id = ?3 ORDER BY time" : "ORDER BY purchase_id, time"));
        samples_->bind(1, account_);
        samples_->bind(2, static_cast<std::int64_t>(now - rules.forecast_window.count()));
        if (!keys) samples_left_ = samples_->executeStep();
    }
}

bool item_reader::next(item_facts& item, std::vector<quota_point>& series) {
    if (!step()) return false;
    item.key = q_.getColumn(0).getString();
    item.name = q_.getColumn(1).isNull() ? std::string() : q_.getColumn(1).getString();
    if (!q_.getColumn(6).isNull()) {  // a resource: "<resource_type> <resource_spec_code>"
        if (!item.name.empty()) item.name += ' ';
        item.name += q_.getColumn(6).getText();
    }
    item.expire_time = opt_int(q_.getColumn(2));
    item.quota_left = opt_int(q_.getColumn(3));
    item.quota_used = opt_int(q_.getColumn(4));
    item.resource_status = opt_int(q_.getColumn(5));
    item.removed_at = opt_int(q_.getColumn(7));
    series.clear();
    if (!samples_) return true;
    if (keys_) {  // this item's samples only
        samples_->reset();
        samples_->bind(3, item.key);
        samples_left_ = samples_->executeStep();
    }
    // Items and samples are both in key order and merged, so neither is held whole in memory.
    while (samples_left_ && std::string_view(samples_->getColumn(0).getText()) < std::string_view(item.key))
        samples_left_ = samples_->executeStep();
    while (samples_left_ && std::string_view(samples_->getColumn(0).getText()) == std::string_view(item.key)) {
        series.push_back({samples_->getColumn(1).getInt64(), samples_->getColumn(2).getInt64()});
        samples_left_ = samples_->executeStep();
    }
    return true;
}

bool item_reader::step() {
    if (!keys_) return q_.executeStep();
    while (next_key_ < keys_->size()) {
        q_.reset();
        q_.bind(4, (*keys_)[next_key_++]);
        if (q_.executeStep()) return true;
    }
    return false;
}

}  // namespace subsync::alerting::detail
