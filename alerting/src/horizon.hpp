#pragma once
// What an unchanged snapshot's run re-reads (docs/alerts.md "When rules run"): the horizon a
// full evaluation records in `alert_horizons`, the items that time makes due before it, and the
// reader of items for both kinds of run.

#include <subsync/alerting/alerts.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::alerting::detail {

/// A row of `alert_horizons` (docs/alerts.md "When rules run"): when the rules last read every
/// item of (account, source), and until when their answers hold but for expiries and repeats.
struct horizon {
    epoch_ms evaluated_at = 0;
    epoch_ms valid_until = 0;
};

/// When the rules last ran for (account, source): at the finish of its previous run, whose
/// transaction ran them too. Only if the horizon recorded at or before that used these rules and
/// `now` is before it (and not before that run: a clock set back re-reads everything).
std::optional<epoch_ms> last_evaluation(SQLite::Database& db, std::string_view account, std::string_view source,
                                        const std::string& fingerprint, epoch_ms now, std::int64_t run_id);

/// Records what a run that read every item found.
void record_horizon(SQLite::Database& db, std::string_view account, std::string_view source,
                    const std::string& fingerprint, const horizon& h);

/// The items whose answers may have changed since `last` though the snapshot did not: an
/// expiry or a threshold before it reached in (last, now], or a firing alert due to repeat.
/// Sorted, each once.
std::vector<std::string> due_items(SQLite::Database& db, const config::alerts_config& cfg,
                                   const config::alert_rules& rules, std::string_view account,
                                   std::string_view source, epoch_ms last, epoch_ms now);

/// Lowers the recorded horizon of (account, source) to `until` if that is sooner.
void lower_horizon(SQLite::Database& db, std::string_view account, std::string_view source, epoch_ms until);

/// Merges the items run `run_id` added, changed or removed into the sorted `keys`. False, and
/// `keys` as it was, when they are over 1,024 and a quarter of the listing: reading every item
/// in one pass is then cheaper than looking each up.
bool add_changed_items(SQLite::Database& db, std::int64_t run_id, std::vector<std::string>& keys);

/// The items the rules read, with their quota series: every one in key order, or the ones of a
/// sorted list of keys, each looked up (a key no longer in scope is skipped).
class item_reader {
public:
    /// `keys` (borrowed) null: every item.
    item_reader(SQLite::Database& db, const config::alert_rules& rules, std::string_view account,
                std::string_view source, epoch_ms now, const std::vector<std::string>* keys);

    /// The next item and its series; false after the last.
    bool next(item_facts& item, std::vector<quota_point>& series);

private:
    bool step();

    bool groups_;
    const std::vector<std::string>* keys_;
    std::size_t next_key_ = 0;
    std::string account_;
    SQLite::Statement q_;
    std::optional<SQLite::Statement> samples_;
    bool samples_left_ = false;
};

}  // namespace subsync::alerting::detail
