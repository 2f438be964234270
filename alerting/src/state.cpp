// The alert state machine and its transactional outbox (docs/alerts.md "Firing, repeating,
// resolving"); the rules it evaluates are in alert_rules.cpp.

#include "bind.hpp"
#include "horizon.hpp"
#include "text.hpp"

#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/snapshot.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <optional>
#include <tuple>
#include <vector>

namespace subsync::alerting {
namespace {

using config::alert_kind;
using detail::bind_name;
using detail::add_changed_items;
using detail::bind_static;
using detail::due_items;
using detail::horizon;
using detail::item_reader;
using detail::json_str;
using detail::last_evaluation;
using detail::lower_horizon;
using detail::opt_int;
using detail::record_horizon;
using sync::sha256_hex;

/// Rank of an alert within its family (expiry: expiring, expired; quota: forecast, low,
/// exhausted); a newly active alert of higher rank supersedes a lower one silently.
struct family_rank {
    int family = 0;  ///< 0 = none
    int rank = 0;
};

family_rank rank_of(alert_kind k, std::string_view threshold) {
    switch (k) {
        case alert_kind::expiring: {
            int days = 0;
            for (char c : threshold) {
                if (c < '0' || c > '9') break;
                days = days * 10 + (c - '0');
            }
            return {1, 10000 - days};  // tighter threshold, higher rank
        }
        case alert_kind::expired: return {1, 20000};
        case alert_kind::quota_forecast: return {2, 1};
        case alert_kind::quota_low: return {2, 2};
        case alert_kind::quota_exhausted: return {2, 3};
        default: return {0, 0};
    }
}



}  // namespace

// ---- state machine ------------------------------------------------------------------------

namespace {

/// What identifies an alert and counts its notifications: shared by the stored form and the
/// form with texts.
struct alert_core {
    std::string item_key;
    alert_kind kind = alert_kind::expiring;
    std::string threshold;
    config::severity severity = config::severity::warning;
    epoch_ms since = 0;
    std::optional<epoch_ms> last_notified;
    std::int64_t notifications = 0;
    std::int64_t episode = 1;
    std::optional<std::int64_t> measure;
};

/// An alert as stored, without its texts: a sync may hold one per item, so the texts stay in
/// the database and are compared by hash.
struct stored_alert : alert_core {
    bool firing = false;
    std::uint64_t text_hash = 0;  ///< of summary and detail
    bool seen = false;            ///< reconciled in this pass
};

/// An alert with its texts, as notify() and write() need it.
struct alert_with_texts : alert_core {
    alert_state state = alert_state::firing;
    std::string summary, detail;
};

std::uint64_t text_hash(std::string_view summary, std::string_view detail) {
    std::uint64_t h = 14695981039346656037ull;  // FNV-1a
    auto mix = [&](std::string_view s) {
        for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        h = (h ^ 0x1f) * 1099511628211ull;
    };
    mix(summary);
    mix(detail);
    return h;
}

bool silenced(const config::alerts_config& cfg, std::string_view account, std::string_view source,
              std::string_view item, alert_kind kind, epoch_ms now) {
    return std::any_of(cfg.silences.begin(), cfg.silences.end(), [&](const config::alert_silence& s) {
        return s.until > now && s.scopes(account, source) && (s.item.empty() || s.item == item) &&
               (!s.kind || *s.kind == kind);
    });
}

/// What a resolved alert's reason is decided from: the item's current values.
struct measures {
    std::optional<std::int64_t> expire, quota_left, status;

    [[nodiscard]] std::optional<std::int64_t> of(alert_kind k) const {
        switch (k) {
            case alert_kind::expiring:
            case alert_kind::expired: return expire;
            case alert_kind::resource_status: return status;
            default: return quota_left;
        }
    }
};

constexpr std::string_view select_stored =
    "SELECT item_key, kind, threshold, state, severity, since, last_notified, notifications, episode, measure, "
    "summary, detail FROM alerts";

/// One row of select_stored, whose kind is `kind`.
stored_alert read_stored(SQLite::Statement& q, alert_kind kind) {
    stored_alert s;
    s.item_key = q.getColumn(0).getString();
    s.kind = kind;
    s.threshold = q.getColumn(2).getString();
    s.firing = alert_state_named(q.getColumn(3).getText()) == alert_state::firing;
    s.severity = config::severity_named(q.getColumn(4).getText()).value_or(config::severity::critical);
    s.since = q.getColumn(5).getInt64();
    s.last_notified = opt_int(q.getColumn(6));
    s.notifications = q.getColumn(7).getInt64();
    s.episode = q.getColumn(8).getInt64();
    s.measure = opt_int(q.getColumn(9));
    s.text_hash = text_hash(q.getColumn(10).getText(), q.getColumn(11).getText());
    return s;
}

// Kinds in name order, as the table's key has them: an item's alerts resolve in that order.
void sort_by_key(std::vector<stored_alert>& stored) {
    std::sort(stored.begin(), stored.end(), [](const stored_alert& a, const stored_alert& b) {
        return std::tuple(std::string_view(a.item_key), config::to_string(a.kind), std::string_view(a.threshold)) <
               std::tuple(std::string_view(b.item_key), config::to_string(b.kind), std::string_view(b.threshold));
    });
}

/// The `alerts` rows of one scope (account, source): what is stored, and the new state.
class alert_table {
public:
    alert_table(SQLite::Database& db, std::string_view account, std::string_view source, epoch_ms now)
        : db_(db), account_(account), source_(source), now_(now) {}

    /// The stored alerts of this scope that `in_scope(item, kind)` accepts, sorted by
    /// (item_key, kind, threshold). `kind` is none for a kind this binary does not know: the
    /// firing ones accepted are resolved (retire_unknown).
    template <class InScope>
    std::vector<stored_alert> load(InScope in_scope) {
        std::vector<stored_alert> stored;
        SQLite::Statement q(db_, std::string(select_stored) + " WHERE account = ? AND source = ?");
        q.bind(1, account_);
        q.bind(2, source_);
        while (q.executeStep()) {
            const auto kind = config::alert_kind_named(q.getColumn(1).getText());
            if (!in_scope(q.getColumn(0).getString(), kind)) continue;
            if (kind) stored.push_back(read_stored(q, *kind));
            else note_unknown(q);
        }
        retire_unknown();
        sort_by_key(stored);
        return stored;
    }

    /// The stored alerts of these items (each looked up by its key), and the source's own.
    std::vector<stored_alert> load_items(const std::vector<std::string>& keys) {
        std::vector<stored_alert> stored;
        SQLite::Statement q(db_, std::string(select_stored) + " WHERE account = ? AND source = ? AND item_key = ?");
        q.bind(1, account_);
        q.bind(2, source_);
        auto read = [&](const std::string& key) {
            q.bind(3, key);
            while (q.executeStep()) {
                if (const auto kind = config::alert_kind_named(q.getColumn(1).getText()))
                    stored.push_back(read_stored(q, *kind));
                else
                    note_unknown(q);
            }
            q.reset();
        };
        read("");
        for (const auto& key : keys) read(key);
        retire_unknown();
        sort_by_key(stored);
        return stored;
    }

    /// The summary and detail the stored alert was last written with.
    std::pair<std::string, std::string> texts(const alert_core& a) {
        if (!texts_)
            texts_.emplace(db_, "SELECT summary, detail FROM alerts WHERE account = ? AND source = ? AND item_key = ? "
                                "AND kind = ? AND threshold = ?");
        SQLite::Statement& q = *texts_;
        q.reset();
        bind_key(q, a);
        std::pair<std::string, std::string> out;
        if (q.executeStep()) out = {q.getColumn(0).getString(), q.getColumn(1).getString()};
        q.reset();
        return out;
    }

    /// Writes an alert's state (inserted or replaced): kept, and written with the next
    /// `batch` - 1 writes in one statement, or by flush(). A key is written at most once per
    /// reconcile, and texts() reads only keys this reconcile has not written, so what waits is
    /// never read back before flush().
    void write(alert_with_texts s, std::optional<epoch_ms> resolved_at, std::string_view reason) {
        waiting_.push_back({std::move(s), resolved_at, std::string(reason)});
        if (waiting_.size() == batch) write_waiting();
        if (!counted_) sync::bump_data_version(db_, sync::versioned_table::alerts);  // once per reconcile
        counted_ = true;
    }

    /// Writes what write() keeps waiting; the reconcile's last step, inside its transaction.
    void flush() { write_waiting(); }

    alert_table(const alert_table&) = delete;
    alert_table& operator=(const alert_table&) = delete;
    ~alert_table() {
        if (waiting_.empty() || std::uncaught_exceptions() > unwinding_) return;
        // Committing now would lose these rows; ending the process leaves the transaction
        // uncommitted, and the next run evaluates them again (as outbox::~outbox does).
        std::fprintf(stderr, "subsyncd: bug: %zu alert rows were never written; aborting before the transaction "
                     "commits\n", waiting_.size());
        std::abort();
    }

private:
    // A first sync writes an alert row per alert (63,000 for 100k purchases): 32 rows per
    // statement instead of one cost less in statement overhead (bench/README.md, issue 16).
    static constexpr std::size_t batch = 32;
    static constexpr int columns = 17;

    // A select_stored row of a kind this binary does not know (written by a newer subsyncd
    // before a downgrade): no rule here holds it true, so a firing one is noted for
    // retire_unknown().
    void note_unknown(SQLite::Statement& q) {
        if (alert_state_named(q.getColumn(3).getText()) == alert_state::firing)
            unknown_.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString()});
    }

    // Resolves the firing alerts of unknown kinds as rule_off, without a notification: nothing
    // here can word one. Run after a load's query is done (no writes while it steps).
    void retire_unknown() {
        if (unknown_.empty()) return;
        SQLite::Statement q(db_, "UPDATE alerts SET state = 'resolved', resolved_at = ?6, reason = 'rule_off', "
                                 "updated_at = ?6 WHERE account = ?1 AND source = ?2 AND item_key = ?3 AND kind = ?4 "
                                 "AND threshold = ?5");
        for (const auto& u : unknown_) {
            q.bind(1, account_);
            q.bind(2, source_);
            q.bind(3, u.item_key);
            q.bind(4, u.kind);
            q.bind(5, u.threshold);
            q.bind(6, static_cast<std::int64_t>(now_));
            q.exec();
            q.reset();
        }
        unknown_.clear();
        if (!counted_) sync::bump_data_version(db_, sync::versioned_table::alerts);
        counted_ = true;
    }

    struct unknown_alert {
        std::string item_key, kind, threshold;
    };

    struct waiting_row {
        alert_with_texts s;
        std::optional<epoch_ms> resolved_at;
        std::string reason;
    };

    void write_waiting() {
        if (waiting_.empty()) return;
        const bool full = waiting_.size() == batch;
        std::optional<SQLite::Statement>& slot = full ? upsert_many_ : upsert_;
        if (!slot) {
            std::string sql = "INSERT OR REPLACE INTO alerts (account, source, item_key, kind, threshold, state, "
                              "severity, since, resolved_at, reason, last_notified, notifications, episode, summary, "
                              "detail, measure, updated_at) VALUES ";
            const std::string row = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
            for (std::size_t i = 0; i < (full ? batch : 1); ++i) sql += (i == 0 ? "" : ",") + row;
            slot.emplace(db_, sql);
        }
        SQLite::Statement& up = *slot;
        auto bind_row = [&](const waiting_row& w, int base) {
            const alert_with_texts& a = w.s;
            bind_static(up, base + 1, account_);
            bind_static(up, base + 2, source_);
            bind_static(up, base + 3, a.item_key);
            bind_name(up, base + 4, config::to_string(a.kind));
            bind_static(up, base + 5, a.threshold);
            bind_name(up, base + 6, to_string(a.state));
            bind_name(up, base + 7, config::to_string(a.severity));
            up.bind(base + 8, static_cast<std::int64_t>(a.since));
            if (w.resolved_at) up.bind(base + 9, static_cast<std::int64_t>(*w.resolved_at));
            else up.bind(base + 9);
            if (w.reason.empty()) up.bind(base + 10);
            else bind_static(up, base + 10, w.reason);
            if (a.last_notified) up.bind(base + 11, static_cast<std::int64_t>(*a.last_notified));
            else up.bind(base + 11);
            up.bind(base + 12, a.notifications);
            up.bind(base + 13, a.episode);
            bind_static(up, base + 14, a.summary);
            if (a.detail.empty()) bind_name(up, base + 15, "{}");
            else bind_static(up, base + 15, a.detail);
            if (a.measure) up.bind(base + 16, *a.measure);
            else up.bind(base + 16);
            up.bind(base + 17, static_cast<std::int64_t>(now_));
        };
        if (full) {
            up.reset();
            for (std::size_t i = 0; i < waiting_.size(); ++i) bind_row(waiting_[i], static_cast<int>(i) * columns);
            up.exec();
            up.reset();
        } else {
            for (const auto& w : waiting_) {
                up.reset();
                bind_row(w, 0);
                up.exec();
            }
            up.reset();
        }
        waiting_.clear();
    }

    // Binds an alert's primary key (account, source, item_key, kind, threshold) to parameters 1..5.
    void bind_key(SQLite::Statement& q, const alert_core& a) {
        bind_static(q, 1, account_);
        bind_static(q, 2, source_);
        bind_static(q, 3, a.item_key);
        bind_name(q, 4, config::to_string(a.kind));
        bind_static(q, 5, a.threshold);
    }

    SQLite::Database& db_;
    std::string account_;
    std::string source_;
    epoch_ms now_;
    // Prepared once per reconciliation: a first sync may write an alert per item.
    std::optional<SQLite::Statement> upsert_, upsert_many_, texts_;
    std::vector<waiting_row> waiting_;
    std::vector<unknown_alert> unknown_;
    int unwinding_ = std::uncaught_exceptions();
    bool counted_ = false;  // this reconcile's writes are counted in data_versions
};

/// Builds an alert's notification (docs/alerts.md "Notification format") and queues it in the
/// outbox for every sink whose filter takes it.
class notifier {
public:
    notifier(SQLite::Database& db, const config::alerts_config& cfg, std::string_view account,
             std::string_view source, epoch_ms now, std::optional<std::int64_t> run_id, std::string_view exclude_sink)
        : account_(account), source_(source), now_(now), run_id_(run_id), sinks_(effective_sinks(cfg)),
          exclude_sink_(exclude_sink), outbox_(db) {
        row_.created_at = now;
        row_.run_id = run_id;
        row_.account = account;
        row_.source = source;
    }

    /// Queues `s`'s notification; a firing one counts as notified (number, last_notified).
    void notify(alert_with_texts& s, std::optional<epoch_ms> resolved_at, std::string_view reason) {
        const alert_kind kind = s.kind;
        const bool firing = s.state == alert_state::firing;
        const std::int64_t number = firing ? s.notifications + 1 : s.notifications;
        // The episode's start goes in with its number: a resolved episode pruned from `alerts`
        // starts over at episode 1 when it fires again, and its key must still be new.
        const std::string key =
            sha256_hex(fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", account_, source_, s.item_key,
                                   config::to_string(s.kind), s.threshold, s.since, s.episode, to_string(s.state),
                                   number))
                .substr(0, 32);
        sink_names_.clear();
        for (const auto& sink : sinks_)
            if (sink.name != exclude_sink_ && accepts(sink.filter, kind, s.severity, account_))
                sink_names_.push_back(sink.name);
        // One row reused for every notification of the scope: its strings keep their buffers.
        queued_notification& n = row_;
        n.idempotency_key = key;
        n.item_key = s.item_key;
        n.kind = kind;
        n.threshold = s.threshold;
        n.state = s.state;
        n.severity = s.severity;
        n.since = s.since;
        n.resolved_at = resolved_at;
        n.reason = reason;
        n.summary = s.summary;
        n.detail = s.detail;
        n.number = number;
        outbox_.enqueue_deferred(n, sink_names_);
        if (firing) {
            s.notifications = number;
            s.last_notified = now_;
        }
        queued_.add(kind, firing);
    }

    /// Writes the deliveries of what notify() queued (outbox::enqueue_deferred).
    void flush() { outbox_.flush_deliveries(); }

    [[nodiscard]] const sync::queued_alerts& queued() const { return queued_; }

private:
    std::string account_;
    std::string source_;
    epoch_ms now_;
    std::optional<std::int64_t> run_id_;
    std::vector<config::sink_config> sinks_;
    std::string_view exclude_sink_;
    outbox outbox_;
    queued_notification row_;
    std::vector<std::string> sink_names_;
    sync::queued_alerts queued_;
};

/// Turns the difference between the stored alerts of one scope (account, source) and what the
/// rules hold true into alert rows and queued notifications, one item at a time, so memory stays
/// bounded by the stored alerts' keys whatever the number of items. Which alert fires, repeats
/// or resolves (and why) is decided here; alert_table stores it and notifier tells the sinks.
class reconciler {
public:
    reconciler(SQLite::Database& db, const config::alerts_config& cfg, const config::alert_rules& rules,
               std::string_view account, std::string_view source, epoch_ms now, std::optional<std::int64_t> run_id,
               std::string_view exclude_sink = {})
        : cfg_(cfg), rules_(rules), account_(account), source_(source), now_(now), table_(db, account, source, now),
          notifier_(db, cfg, account, source, now, run_id, exclude_sink) {}

    /// Loads the stored alerts of this scope that `in_scope(item, kind)` accepts.
    template <class InScope>
    void load(InScope in_scope) {
        stored_ = table_.load(in_scope);
    }

    /// Loads the stored alerts of these items and of the source itself.
    void load_items(const std::vector<std::string>& keys) { stored_ = table_.load_items(keys); }

    /// Reconciles one present item (or "" for the source itself) with the alerts the rules
    /// hold true for it; `m` is what it measures now.
    void item(std::string_view key, std::vector<active_alert>& active, const measures& m) {
        auto [first, last] = std::equal_range(stored_.begin(), stored_.end(), key, by_item{});
        std::vector<family_rank> rising;  // alerts of this item that start firing now
        for (auto& a : active) {
            const config::severity severity = rules_.severity_of(a.kind);
            auto it = std::find_if(first, last, [&](const stored_alert& s) {
                return s.kind == a.kind && s.threshold == a.threshold;
            });
            const bool quiet = silenced(cfg_, account_, source_, key, a.kind, now_);
            alert_with_texts s;
            s.item_key = std::string(key);
            s.kind = a.kind;
            s.threshold = a.threshold;
            s.state = alert_state::firing;
            s.severity = severity;
            s.summary = std::move(a.summary);
            s.detail = std::move(a.values);
            s.measure = a.measure;
            if (it == last || !it->firing) {
                s.since = now_;
                s.episode = it == last ? 1 : it->episode + 1;
                if (it != last) it->seen = true;
                if (!quiet) notifier_.notify(s, std::nullopt, "");
                table_.write(std::move(s), std::nullopt, "");
                rising.push_back(rank_of(a.kind, a.threshold));
                continue;
            }
            // Still firing: written only when something changed, so an unchanged re-sync writes nothing.
            it->seen = true;
            static_cast<alert_core&>(s) = *it;
            s.severity = severity;
            s.measure = a.measure;
            bool changed =
                it->severity != severity || it->text_hash != text_hash(s.summary, s.detail) || it->measure != s.measure;
            const bool due = !s.last_notified || now_ - *s.last_notified >= cfg_.repeat_interval.count();
            if (!quiet && due) {
                notifier_.notify(s, std::nullopt, "");
                changed = true;
            }
            if (changed) table_.write(std::move(s), std::nullopt, "");
        }
        // What of this item fired before and is no longer held true: resolve it, saying why.
        for (auto it = first; it != last; ++it) {
            if (it->seen) continue;
            it->seen = true;
            if (it->firing) resolve(*it, &rising, &m);
        }
    }

    /// Resolves what is still firing for items that were not reconciled: they are gone. Then
    /// writes the deliveries of everything this reconcile queued.
    void finish() {
        for (auto& s : stored_)
            if (!s.seen && s.firing) resolve(s, nullptr, nullptr);
        table_.flush();
        notifier_.flush();
    }

    [[nodiscard]] const sync::queued_alerts& queued() const { return notifier_.queued(); }

private:

    struct by_item {
        bool operator()(const stored_alert& s, std::string_view k) const { return s.item_key < k; }
        bool operator()(std::string_view k, const stored_alert& s) const { return k < s.item_key; }
    };

    /// `rising`/`m` are null when the item is no longer listed.
    void resolve(const stored_alert& st, const std::vector<family_rank>* rising, const measures* m) {
        const alert_kind kind = st.kind;
        std::string reason;
        bool announce = st.last_notified.has_value();  // never notified (silenced): nothing to take back
        const family_rank mine = rank_of(kind, st.threshold);
        const bool superseded = mine.family != 0 && rising != nullptr &&
                                std::any_of(rising->begin(), rising->end(), [&](const family_rank& r) {
                                    return r.family == mine.family && r.rank > mine.rank;
                                });
        if (!rules_.on(kind)) {
            reason = "rule_off";
        } else if (superseded) {
            reason = "superseded";
            announce = false;  // the tighter alert's own notification says it all
        } else if (m == nullptr) {
            reason = st.item_key.empty() ? "cleared" : kind == alert_kind::removed_early ? "expired" : "removed";
        } else {
            const std::optional<std::int64_t> now_measure = m->of(kind);
            switch (kind) {
                case alert_kind::expiring:
                case alert_kind::expired:
                    reason = !now_measure                                   ? "expiry_cleared"
                             : st.measure && *now_measure > *st.measure ? "renewed"
                                                                            : "threshold_changed";
                    break;
                case alert_kind::quota_low:
                case alert_kind::quota_exhausted:
                case alert_kind::quota_forecast:
                    reason = now_measure && st.measure && *now_measure > *st.measure ? "topped_up" : "cleared";
                    break;
                case alert_kind::resource_status: reason = "running"; break;
                case alert_kind::delivery_failed: reason = "redelivered"; break;
                case alert_kind::removed_early: reason = "relisted"; break;
                default: reason = "recovered"; break;
            }
        }
        // The texts of the last firing state go with the resolved notification.
        alert_with_texts s;
        std::tie(s.summary, s.detail) = table_.texts(st);
        static_cast<alert_core&>(s) = st;
        s.state = alert_state::resolved;
        if (announce) notifier_.notify(s, now_, reason);
        table_.write(std::move(s), now_, reason);
    }

    const config::alerts_config& cfg_;
    const config::alert_rules& rules_;
    std::string account_;
    std::string source_;
    epoch_ms now_;
    alert_table table_;
    notifier notifier_;
    std::vector<stored_alert> stored_;  ///< sorted by (item_key, kind, threshold)
};

source_health read_health(SQLite::Database& db, std::string_view account, std::string_view source) {
    source_health h;
    SQLite::Statement q(db,
                        "SELECT status, finished_at, error, error_kind FROM sync_runs WHERE account = ? AND source = ? "
                        "ORDER BY id DESC");
    q.bind(1, std::string(account));
    q.bind(2, std::string(source));
    bool latest = true;
    while (q.executeStep()) {
        const std::string status = q.getColumn(0).getString();
        if (sync::run_status_named(status) == sync::run_status::ok) {
            h.last_ok = q.getColumn(1).getInt64();
            break;
        }
        if (latest) {
            h.last_error = q.getColumn(2).getString();
            h.auth_rejected = !q.getColumn(3).isNull() && q.getColumn(3).getString() == sync::to_string(sync::error_kind::auth);
        }
        latest = false;
        ++h.consecutive_failures;
    }
    SQLite::Statement first(db, "SELECT min(started_at) FROM sync_runs WHERE account = ? AND source = ?");
    first.bind(1, std::string(account));
    first.bind(2, std::string(source));
    if (first.executeStep()) h.first_run = opt_int(first.getColumn(0));
    return h;
}

/// Reconciles the items `items` reads with what the rules hold true for them now. Returns the
/// first instant a forecast among them could change.
epoch_ms reconcile_items(reconciler& r, item_reader& items, const config::alert_rules& rules,
                         std::string_view source, epoch_ms now) {
    epoch_ms horizon = std::numeric_limits<epoch_ms>::max();
    item_facts item;
    std::vector<quota_point> series;
    while (items.next(item, series)) {
        auto active = evaluate_item(item, series, now, rules, source);
        r.item(item.key, active, measures{item.expire_time, item.quota_left, item.resource_status});
        horizon = std::min(horizon, next_forecast_change(item, series, now, rules));
    }
    return horizon;
}

}  // namespace

sync::queued_alerts update_source(SQLite::Database& db, const config::alerts_config& cfg, std::string_view account,
                  std::string_view source, epoch_ms now, std::optional<std::int64_t> run_id,
                  sync::snapshot_delta delta) {
    const config::alert_rules& rules = cfg.rules_for(account, source);
    const std::string fingerprint = rules_fingerprint(cfg, account, source);
    // Every item, or (same rules, before the horizon) the ones the run changed and the ones time
    // made due since the previous run. The source's own rules read the run just recorded.
    std::optional<std::vector<std::string>> only;
    if (delta != sync::snapshot_delta::wide && run_id)
        if (const auto last = last_evaluation(db, account, source, fingerprint, now, *run_id)) {
            only = due_items(db, cfg, rules, account, source, *last, now);
            if (delta == sync::snapshot_delta::items && !add_changed_items(db, *run_id, *only)) only.reset();
        }

    reconciler r(db, cfg, rules, account, source, now, run_id);
    if (only) r.load_items(*only);
    else r.load([](const std::string&, std::optional<alert_kind> kind) { return kind != alert_kind::delivery_failed; });
    item_reader items(db, rules, account, source, now, only ? &*only : nullptr);
    horizon h{now, reconcile_items(r, items, rules, source, now)};
    auto health = evaluate_health(read_health(db, account, source), now, rules);
    r.item("", health, measures{});
    r.finish();
    if (only) {
        lower_horizon(db, account, source, h.valid_until);  // a changed item's forecast may move sooner
        return r.queued();
    }
    // Texts count calendar days; a silence's end lets what it held back notify.
    h.valid_until = std::min(h.valid_until, next_utc_midnight(now));
    for (const auto& s : cfg.silences)
        if (s.until > now && s.scopes(account, source))
            h.valid_until = std::min(h.valid_until, s.until);
    record_horizon(db, account, source, fingerprint, h);
    return r.queued();
}

int update_delivery_failed(SQLite::Database& db, const config::alerts_config& cfg, std::string_view sink,
                           std::int64_t dead, std::string_view last_error, epoch_ms now) {
    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    const config::alert_rules& rules = cfg.rules;
    std::vector<active_alert> active;
    if (dead > 0 && rules.on(alert_kind::delivery_failed))
        active.push_back({alert_kind::delivery_failed, std::string(sink), "",
                          fmt::format("sink \"{}\" gave up on {} notification{}; last error: {} (see `subsyncd alerts "
                                      "--deliveries`, retry with `subsyncd alerts --redeliver`)",
                                      sink, dead, dead == 1 ? "" : "s", last_error),
                          fmt::format(R"({{"sink":{},"dead_lettered":{},"last_error":{}}})", json_str(sink), dead,
                                      json_str(last_error)),
                          dead});
    reconciler r(db, cfg, rules, "", alerts_source, now, std::nullopt, sink);
    const std::string name(sink);
    r.load([&](const std::string& item, std::optional<alert_kind> kind) {
        return kind == alert_kind::delivery_failed && item == name;
    });
    r.item(sink, active, measures{});
    r.finish();
    tx.commit();
    return r.queued().total();
}

std::vector<alert_row> read_alerts(SQLite::Database& db, bool all) {
    std::vector<alert_row> out;
    SQLite::Statement q(db, std::string("SELECT account, source, item_key, kind, threshold, state, severity, since, "
                                        "resolved_at, reason, last_notified, notifications, summary, detail, updated_at "
                                        "FROM alerts") +
                                (all ? "" : " WHERE state = 'firing'"));
    while (q.executeStep()) {
        alert_row r;
        r.account = q.getColumn(0).getString();
        r.source = q.getColumn(1).getString();
        r.item_key = q.getColumn(2).getString();
        r.kind = q.getColumn(3).getString();
        r.threshold = q.getColumn(4).getString();
        // The schema's CHECK constraints hold both to the names parsed here.
        r.state = alert_state_named(q.getColumn(5).getText()).value_or(alert_state::firing);
        r.severity = config::severity_named(q.getColumn(6).getText()).value_or(config::severity::critical);
        r.since = q.getColumn(7).getInt64();
        r.resolved_at = opt_int(q.getColumn(8));
        r.reason = q.getColumn(9).isNull() ? std::string() : q.getColumn(9).getString();
        r.last_notified = opt_int(q.getColumn(10));
        r.notifications = q.getColumn(11).getInt64();
        r.summary = q.getColumn(12).getString();
        r.detail = q.getColumn(13).getString();
        r.updated_at = q.getColumn(14).getInt64();
        out.push_back(std::move(r));
    }
    // Firing first, the most severe first (severity's enum order), then by key.
    auto urgency = [](const alert_row& r) {
        return std::pair(r.state == alert_state::firing, static_cast<int>(r.severity));
    };
    std::sort(out.begin(), out.end(), [&](const alert_row& a, const alert_row& b) {
        if (urgency(a) != urgency(b)) return urgency(a) > urgency(b);
        return std::tie(a.account, a.source, a.item_key, a.kind, a.threshold) <
               std::tie(b.account, b.source, b.item_key, b.kind, b.threshold);
    });
    return out;
}

sync::queued_alerts rules_hook::on_run(SQLite::Database& db, std::string_view account, sync::source_kind source, epoch_ms now,
                       std::int64_t run_id, sync::snapshot_delta delta) {
    return update_source(db, cfg_, account, sync::to_string(source), now, run_id, delta);
}

std::int64_t rules_hook::on_prune(SQLite::Database& db, epoch_ms cutoff, bool snapshot_pruned) {
    // Samples and removed items the rules read are gone: the next run evaluates every item.
    if (snapshot_pruned) db.exec("DELETE FROM alert_horizons");
    // Resolved episodes and finished notifications; what is firing or still owed to a sink is
    // kept whatever its age.
    SQLite::Statement resolved(db, "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?");
    resolved.bind(1, static_cast<std::int64_t>(cutoff));
    const std::int64_t alerts = resolved.exec();
    if (alerts > 0) sync::bump_data_version(db, sync::versioned_table::alerts);
    return alerts + outbox(db).prune(cutoff);
}

}  // namespace subsync::alerting
