#include "schema.hpp"

#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace subsync::sync::detail {
namespace {

// Ordered, append-only: migration N takes user_version N-1 to N. A released
// migration is never edited; a schema change is a new entry.
// docs/schema.md describes the resulting tables.
constexpr std::array<std::string_view, 10> migrations{
    R"sql(
CREATE TABLE sync_runs (
  id          INTEGER PRIMARY KEY,
  account     TEXT    NOT NULL,
  source      TEXT    NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  status      TEXT    NOT NULL CHECK (status IN ('ok', 'failed', 'incomplete')),
  pages       INTEGER NOT NULL DEFAULT 0,
  items       INTEGER NOT NULL DEFAULT 0,
  added       INTEGER NOT NULL DEFAULT 0,
  changed     INTEGER NOT NULL DEFAULT 0,
  removed     INTEGER NOT NULL DEFAULT 0,
  error       TEXT
);
CREATE INDEX sync_runs_by_source ON sync_runs (account, source, id);

CREATE TABLE purchased_groups (
  account       TEXT    NOT NULL,
  item_key      TEXT    NOT NULL,
  id            TEXT    NOT NULL,
  group_id      TEXT,
  group_name    TEXT,
  group_remark  TEXT,
  order_time    INTEGER,
  start_time    INTEGER,
  expire_time   INTEGER,
  group_domains TEXT,
  quota_left    INTEGER,
  quota_used    INTEGER,
  app_key       TEXT,
  app_secret    TEXT,
  absent_mask   INTEGER NOT NULL DEFAULT 0,
  content_hash  INTEGER NOT NULL,
  first_seen    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  removed_at    INTEGER,
  PRIMARY KEY (account, item_key)
) WITHOUT ROWID;

CREATE TABLE subscription_resources (
  account            TEXT    NOT NULL,
  item_key           TEXT    NOT NULL,
  region_id          TEXT,
  project_id         TEXT,
  resource_id        TEXT    NOT NULL,
  resource_size      INTEGER,
  resource_type      TEXT,
  resource_spec_code TEXT,
  create_time        INTEGER,
  expire_time        INTEGER,
  resource_status    INTEGER,
  order_id           TEXT,
  charging_mode      TEXT,
  to_period          INTEGER,
  tag_list           TEXT,
  absent_mask        INTEGER NOT NULL DEFAULT 0,
  content_hash       INTEGER NOT NULL,
  first_seen         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  removed_at         INTEGER,
  PRIMARY KEY (account, item_key)
) WITHOUT ROWID;

CREATE TABLE changes (
  seq       INTEGER PRIMARY KEY,
  run_id    INTEGER NOT NULL REFERENCES sync_runs (id),
  time      INTEGER NOT NULL,
  account   TEXT    NOT NULL,
  source    TEXT    NOT NULL,
  item_key  TEXT    NOT NULL,
  kind      TEXT    NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
  field     TEXT,
  old_value TEXT,
  new_value TEXT
);
CREATE INDEX changes_by_item ON changes (account, source, item_key, seq);
CREATE INDEX changes_by_run ON changes (run_id);
)sql",
    // 2: the series that quota forecasts read.
    R"sql(
CREATE TABLE quota_samples (
  account     TEXT    NOT NULL,
  purchase_id TEXT    NOT NULL,
  time        INTEGER NOT NULL,
  run_id      INTEGER NOT NULL REFERENCES sync_runs (id),
  quota_used  INTEGER,
  quota_left  INTEGER,
  PRIMARY KEY (account, purchase_id, time)
) WITHOUT ROWID;
CREATE INDEX changes_by_time ON changes (time);
CREATE INDEX sync_runs_by_time ON sync_runs (finished_at);
)sql",
    // 3: alerts — state, the transactional outbox, and delivery per sink (docs/alerts.md).
    R"sql(
ALTER TABLE sync_runs ADD COLUMN error_kind TEXT;

CREATE TABLE alerts (
  account        TEXT    NOT NULL,
  source         TEXT    NOT NULL,
  item_key       TEXT    NOT NULL,
  kind           TEXT    NOT NULL,
  threshold      TEXT    NOT NULL,
  state          TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
  severity       TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  since          INTEGER NOT NULL,
  resolved_at    INTEGER,
  reason         TEXT,
  last_notified  INTEGER,
  notifications  INTEGER NOT NULL DEFAULT 0,
  episode        INTEGER NOT NULL DEFAULT 1,
  summary        TEXT    NOT NULL,
  detail         TEXT    NOT NULL,
  measure        INTEGER,
  updated_at     INTEGER NOT NULL,
  PRIMARY KEY (account, source, item_key, kind, threshold)
) WITHOUT ROWID;
CREATE INDEX alerts_by_state ON alerts (state, kind);

CREATE TABLE alert_outbox (
  seq             INTEGER PRIMARY KEY,
  idempotency_key TEXT    NOT NULL UNIQUE,
  created_at      INTEGER NOT NULL,
  run_id          INTEGER REFERENCES sync_runs (id) ON DELETE SET NULL,
  account         TEXT    NOT NULL,
  source          TEXT    NOT NULL,
  item_key        TEXT    NOT NULL,
  kind            TEXT    NOT NULL,
  threshold       TEXT    NOT NULL,
  state           TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
  severity        TEXT    NOT NULL,
  payload         TEXT    NOT NULL
);
CREATE INDEX alert_outbox_by_time ON alert_outbox (created_at);

CREATE TABLE alert_deliveries (
  sink            TEXT    NOT NULL,
  seq             INTEGER NOT NULL REFERENCES alert_outbox (seq) ON DELETE CASCADE,
  status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  delivered_at    INTEGER,
  last_error      TEXT,
  PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
CREATE INDEX alert_deliveries_by_status ON alert_deliveries (status, sink, seq);

CREATE TABLE alert_attempts (
  id         INTEGER PRIMARY KEY,
  sink       TEXT    NOT NULL,
  seq        INTEGER NOT NULL,
  time       INTEGER NOT NULL,
  outcome    TEXT    NOT NULL CHECK (outcome IN ('delivered', 'failed', 'dead')),
  latency_ms INTEGER NOT NULL,
  error      TEXT
);
CREATE INDEX alert_attempts_by_delivery ON alert_attempts (sink, seq);
CREATE INDEX alert_attempts_by_time ON alert_attempts (time);
)sql",
    // 4: grouped notifications — a delivery belongs to the group notification (batch = its first
    // seq) it went out in; alert_attempts.seq is that batch (docs/alert-delivery.md).
    R"sql(
ALTER TABLE alert_deliveries ADD COLUMN batch INTEGER;
ALTER TABLE alert_deliveries ADD COLUMN group_key TEXT;
CREATE INDEX alert_deliveries_by_batch ON alert_deliveries (sink, batch) WHERE batch IS NOT NULL;
CREATE INDEX alert_deliveries_by_group ON alert_deliveries (sink, group_key) WHERE group_key IS NOT NULL;
UPDATE alert_deliveries SET batch = seq WHERE status <> 'pending';
)sql",
    // 5: a group notification's delivery state lives in one alert_batches row, not in every
    // member's alert_deliveries row: recording an attempt at a group of 500 writes 2 rows, not
    // 501, and alert_deliveries keeps only (sink, seq, batch). Pending = not yet in a batch, or in
    // a pending batch; alert_delivery_status shows each member as before (docs/schema.md). And
    // alert_outbox keeps a notification's fields instead of its rendered payload (a third of
    // the size).
    R"sql(
CREATE TABLE alert_batches (
  sink            TEXT    NOT NULL,
  batch           INTEGER NOT NULL,
  group_key       TEXT,
  status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  delivered_at    INTEGER,
  last_error      TEXT,
  PRIMARY KEY (sink, batch)
) WITHOUT ROWID;
INSERT INTO alert_batches (sink, batch, group_key, status, attempts, next_attempt_at, delivered_at, last_error)
  SELECT sink, batch, max(group_key), min(status), max(attempts), max(next_attempt_at), max(delivered_at),
         max(last_error)
  FROM alert_deliveries WHERE batch IS NOT NULL GROUP BY sink, batch;
CREATE INDEX alert_batches_by_status ON alert_batches (status, sink);
CREATE INDEX alert_batches_by_group ON alert_batches (sink, group_key) WHERE status = 'delivered';

CREATE TABLE alert_deliveries_v5 (
  sink  TEXT    NOT NULL,
  seq   INTEGER NOT NULL REFERENCES alert_outbox (seq) ON DELETE CASCADE,
  batch INTEGER,
  PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
INSERT INTO alert_deliveries_v5 (sink, seq, batch) SELECT sink, seq, batch FROM alert_deliveries;
DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_v5 RENAME TO alert_deliveries;
CREATE INDEX alert_deliveries_ungrouped ON alert_deliveries (sink, seq) WHERE batch IS NULL;
CREATE INDEX alert_deliveries_by_batch ON alert_deliveries (sink, batch, seq) WHERE batch IS NOT NULL;

-- A notification's fields, from which its payload is rendered at delivery; payload itself is
-- '' from now on (a row queued by an older version keeps its payload and is sent as it is).
ALTER TABLE alert_outbox ADD COLUMN since INTEGER;
ALTER TABLE alert_outbox ADD COLUMN resolved_at INTEGER;
ALTER TABLE alert_outbox ADD COLUMN reason TEXT;
ALTER TABLE alert_outbox ADD COLUMN summary TEXT;
ALTER TABLE alert_outbox ADD COLUMN detail TEXT;
ALTER TABLE alert_outbox ADD COLUMN notification INTEGER;

CREATE VIEW alert_delivery_status AS
  SELECT d.sink, d.seq, d.batch, b.group_key,
         coalesce(b.status, 'pending') AS status, coalesce(b.attempts, 0) AS attempts,
         coalesce(b.next_attempt_at, o.created_at) AS next_attempt_at, b.delivered_at, b.last_error
  FROM alert_deliveries d JOIN alert_outbox o ON o.seq = d.seq
  LEFT JOIN alert_batches b ON b.sink = d.sink AND b.batch = d.batch;
)sql",
    // 6: when the item rules of a source last read every item, and until when an unchanged
    // snapshot need only re-read the items an expiry or a repeat makes due (docs/alerts.md
    // "When rules run").
    R"sql(
CREATE TABLE alert_horizons (
  account      TEXT    NOT NULL,
  source       TEXT    NOT NULL,
  rules        TEXT    NOT NULL,
  evaluated_at INTEGER NOT NULL,
  valid_until  INTEGER NOT NULL,
  PRIMARY KEY (account, source)
) WITHOUT ROWID;
)sql",
    // 7: a first sync that raises 63,000 alerts wrote two index entries per alert in random
    // order that no hot query needs: alert_outbox's UNIQUE idempotency_key (the key is unique
    // by construction: docs/alerts.md) and alerts_by_state (the few queries by state scan the
    // table, as the item counts do). alert_outbox is rebuilt without the constraint, so the view
    // over it goes and comes back; migrate() has foreign keys off meanwhile, or dropping the
    // table would cascade into alert_deliveries.
    R"sql(
DROP INDEX alerts_by_state;
DROP VIEW alert_delivery_status;
CREATE TABLE alert_outbox_v7 (
  seq             INTEGER PRIMARY KEY,
  idempotency_key TEXT    NOT NULL,
  created_at      INTEGER NOT NULL,
  run_id          INTEGER REFERENCES sync_runs (id) ON DELETE SET NULL,
  account         TEXT    NOT NULL,
  source          TEXT    NOT NULL,
  item_key        TEXT    NOT NULL,
  kind            TEXT    NOT NULL,
  threshold       TEXT    NOT NULL,
  state           TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
  severity        TEXT    NOT NULL,
  payload         TEXT    NOT NULL,
  since           INTEGER,
  resolved_at     INTEGER,
  reason          TEXT,
  summary         TEXT,
  detail          TEXT,
  notification    INTEGER
);
INSERT INTO alert_outbox_v7 (seq, idempotency_key, created_at, run_id, account, source, item_key, kind, threshold,
                             state, severity, payload, since, resolved_at, reason, summary, detail, notification)
  SELECT seq, idempotency_key, created_at, run_id, account, source, item_key, kind, threshold, state, severity,
         payload, since, resolved_at, reason, summary, detail, notification FROM alert_outbox;
DROP TABLE alert_outbox;
ALTER TABLE alert_outbox_v7 RENAME TO alert_outbox;
CREATE INDEX alert_outbox_by_time ON alert_outbox (created_at);

CREATE VIEW alert_delivery_status AS
  SELECT d.sink, d.seq, d.batch, b.group_key,
         coalesce(b.status, 'pending') AS status, coalesce(b.attempts, 0) AS attempts,
         coalesce(b.next_attempt_at, o.created_at) AS next_attempt_at, b.delivered_at, b.last_error
  FROM alert_deliveries d JOIN alert_outbox o ON o.seq = d.seq
  LEFT JOIN alert_batches b ON b.sink = d.sink AND b.batch = d.batch;
)sql",
    // 8: the page digests of each (account, source)'s last complete listing, so that a listing
    // fetched again with every page as it was is recognised without parsing or diffing it
    // (docs/decisions.md "An unchanged listing is recognised by its pages"); a write counter for
    // the tables an unchanged re-sync's export marks scanned; expiry indexes for the alert rules.
    R"sql(
CREATE TABLE listing_digests (
  account       TEXT    NOT NULL,
  source        TEXT    NOT NULL,
  digests       BLOB    NOT NULL,
  items         INTEGER NOT NULL,
  oldest_sample INTEGER,
  PRIMARY KEY (account, source)
) WITHOUT ROWID;
CREATE TABLE data_versions (
  name    TEXT    PRIMARY KEY,
  version INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO data_versions (name, version) VALUES ('alerts', 0), ('quota_samples', 0);
CREATE INDEX purchased_groups_by_expiry ON purchased_groups (account, expire_time);
CREATE INDEX subscription_resources_by_expiry ON subscription_resources (account, expire_time);
)sql",
    // 9: each purchase's latest quota sample, kept beside the series so that a listing reads one
    // row per purchase, not every sample it ever had (docs/decisions.md "The latest quota sample").
    R"sql(
CREATE TABLE quota_latest (
  account     TEXT    NOT NULL,
  purchase_id TEXT    NOT NULL,
  time        INTEGER NOT NULL,
  quota_used  INTEGER,
  quota_left  INTEGER,
  PRIMARY KEY (account, purchase_id)
) WITHOUT ROWID;
INSERT INTO quota_latest (account, purchase_id, time, quota_used, quota_left)
  SELECT account, purchase_id, max(time), quota_used, quota_left FROM quota_samples GROUP BY account, purchase_id;
)sql",
    // 10: the digest of each page's body as it came, which recognises an unchanged page without
    // filtering it (docs/decisions.md "An unchanged listing is recognised by its pages"); write
    // counters for the item tables' deletions by retention, which the export's marks read
    // instead of counting the rows.
    R"sql(
ALTER TABLE listing_digests ADD COLUMN unfiltered_digests BLOB;
INSERT INTO data_versions (name, version) VALUES ('purchased_groups', 0), ('subscription_resources', 0);
)sql",
};

// Rows that name a parent row that does not exist (PRAGMA foreign_key_check).
std::int64_t orphan_rows(SQLite::Database& db) {
    return db.execAndGet("SELECT count(*) FROM pragma_foreign_key_check").getInt64();
}

/// Foreign keys off for as long as it lives (SQLite's procedure for changing a table's
/// definition: with them on, dropping a parent table deletes its children's rows).
class foreign_keys_off {
public:
    explicit foreign_keys_off(SQLite::Database& db)
        : db_(db), was_on_(db.execAndGet("PRAGMA foreign_keys").getInt() != 0) {
        if (was_on_) db_.exec("PRAGMA foreign_keys = OFF");
    }
    ~foreign_keys_off() {
        if (was_on_) db_.exec("PRAGMA foreign_keys = ON");
    }
    foreign_keys_off(const foreign_keys_off&) = delete;
    foreign_keys_off& operator=(const foreign_keys_off&) = delete;

private:
    SQLite::Database& db_;
    bool was_on_;
};

}  // namespace

void migrate(SQLite::Database& db, int target_version) {
    const int current = db.execAndGet("PRAGMA user_version").getInt();
    if (current > static_cast<int>(migrations.size()) || current > target_version)
        throw std::runtime_error(fmt::format(
            "{}: schema version {} is newer than this subsyncd understands ({}); use a newer subsyncd or restore a "
            "backup",
            db.getFilename(), current, target_version));
    if (current >= target_version) return;
    const foreign_keys_off unchecked(db);
    for (int v = current; v < target_version; ++v) {
        SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
        const std::int64_t orphans = orphan_rows(db);
        db.exec(std::string(migrations[static_cast<std::size_t>(v)]));
        if (orphan_rows(db) > orphans)
            throw std::runtime_error(fmt::format("{}: migrating to schema version {} left rows without their parent "
                                                 "row (PRAGMA foreign_key_check); the file is unchanged",
                                                 db.getFilename(), v + 1));
        db.exec(fmt::format("PRAGMA user_version = {}", v + 1));
        tx.commit();
    }
}

}  // namespace subsync::sync::detail
