#include <subsync/config/secret.hpp>
#include <subsync/exporters/alert_dispatch.hpp>

#include <subsync/sync/alerts.hpp>
#include <subsync/sync/retry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace subsync::exporters {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

struct alert_dispatcher::sink_slot {
    config::sink_config cfg;
    std::unique_ptr<alert_sink> sink;
};

namespace {

struct head_row {
    std::int64_t seq = 0;
    std::int64_t attempts = 0;
    std::int64_t next_attempt_at = 0;
    std::string payload;
};

/// The next `limit` pending deliveries of `sink`, in seq order.
std::vector<head_row> read_batch(SQLite::Database& db, const std::string& sink, int limit) {
    SQLite::Statement q(db,
                        "SELECT d.seq, d.attempts, d.next_attempt_at, o.payload FROM alert_deliveries d "
                        "JOIN alert_outbox o ON o.seq = d.seq WHERE d.sink = ? AND d.status = 'pending' "
                        "ORDER BY d.seq LIMIT ?");
    q.bind(1, sink);
    q.bind(2, limit);
    std::vector<head_row> out;
    while (q.executeStep())
        out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
                       q.getColumn(3).getString()});
    return out;
}

std::optional<head_row> read_head(SQLite::Database& db, const std::string& sink) {
    auto rows = read_batch(db, sink, 1);
    if (rows.empty()) return std::nullopt;
    return std::move(rows.front());
}

std::int64_t count_pending(SQLite::Database& db, const std::string& sink) {
    SQLite::Statement q(db, "SELECT count(*) FROM alert_deliveries WHERE sink = ? AND status = 'pending'");
    q.bind(1, sink);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

}  // namespace

alert_dispatcher::alert_dispatcher(const config::alerts_config& cfg, sink_context ctx, SQLite::Database& db,
                                   dispatch_clock clock)
    : cfg_(cfg), ctx_(std::move(ctx)), db_(db), clock_(std::move(clock)) {
    ctx_.repeat_interval = cfg_.repeat_interval;
    for (auto& sc : sync::alerts::effective_sinks(cfg_)) {
        auto slot = std::make_unique<sink_slot>();
        slot->sink = make_sink(sc, ctx_);
        slot->cfg = std::move(sc);
        sinks_.push_back(std::move(slot));
    }
}

alert_dispatcher::~alert_dispatcher() = default;

double alert_dispatcher::draw() {
    if (clock_.unit_random) return clock_.unit_random();
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

std::int64_t alert_dispatcher::dead_count(const std::string& sink) const {
    SQLite::Statement q(db_, "SELECT count(*) FROM alert_deliveries WHERE sink = ? AND status = 'dead'");
    q.bind(1, sink);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

std::pair<std::int64_t, std::optional<std::int64_t>> alert_dispatcher::pending() const {
    std::int64_t total = 0;
    std::optional<std::int64_t> next;
    for (const auto& s : sinks_) {
        total += count_pending(db_, s->cfg.name);
        if (auto h = read_head(db_, s->cfg.name))
            next = next ? std::min(*next, h->next_attempt_at) : h->next_attempt_at;
    }
    return {total, next};
}

asio::awaitable<sink_dispatch> alert_dispatcher::drain(sink_slot& s, steady::time_point deadline) {
    sink_dispatch d;
    d.sink = s.cfg.name;
    const std::string& name = s.cfg.name;
    const std::int64_t dead_before = dead_count(name);
    std::string last_dead_error;
    const sync::retry_policy policy{cfg_.max_attempts, cfg_.retry_base, cfg_.retry_max};

    // Deliveries go out in batches, and the outcomes of a batch are recorded in one
    // transaction: one fsync per batch rather than per notification. A crash mid-batch
    // sends those notifications again (at-least-once; receivers drop them by idempotency
    // key). No transaction is open while a sink is awaited: the connection is shared with
    // the sync, which must be free to begin its own.
    struct result {
        const head_row* row;
        std::string outcome;  // delivered | failed | dead
        std::string error;
        std::int64_t at, latency_ms, attempts, next_attempt_at;
    };
    bool blocked = false;
    while (!blocked) {
        const std::vector<head_row> batch = read_batch(db_, name, static_cast<int>(s.sink->batch_size()));
        if (batch.empty()) break;
        std::vector<result> done;
        for (const head_row& row : batch) {
            if (row.next_attempt_at > clock_.now() || steady::now() >= deadline) {
                d.next_due = row.next_attempt_at;
                blocked = true;
                break;
            }
            delivery_outcome out;
            const auto t0 = steady::now();
            auto parsed = parse_notification(row.seq, row.payload);
            const bool poison = !parsed;  // a payload that cannot be read never will be: no retry
            if (poison) out = {false, parsed.error()};
            else out = co_await s.sink->deliver(*parsed, deadline);
            const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
            const std::int64_t at = clock_.now();
            result r{&row, "delivered", config::redacted(out.error), at, static_cast<std::int64_t>(latency), row.attempts + 1, 0};
            if (!out.delivered && (poison || r.attempts >= cfg_.max_attempts)) {
                r.outcome = "dead";
            } else if (!out.delivered) {
                r.outcome = "failed";
                r.next_attempt_at =
                    at + sync::backoff_delay(policy, static_cast<int>(r.attempts), draw()).count();
            }
            done.push_back(std::move(r));
            if (done.back().outcome == "failed") {
                blocked = true;  // head of line: the rest of this sink waits for this one
                d.next_due = done.back().next_attempt_at;
                break;
            }
        }
        if (done.empty()) break;
        // Durable first (jsonl: fsync), then marked: what is marked delivered was delivered.
        if (const delivery_outcome flushed = s.sink->flush(); !flushed.delivered) {
            for (result& r : done) {
                if (r.outcome != "delivered") continue;
                r.outcome = "failed";
                r.error = config::redacted(flushed.error);
                r.next_attempt_at = r.at + sync::backoff_delay(policy, static_cast<int>(r.attempts), draw()).count();
                if (!blocked) d.next_due = r.next_attempt_at;
                blocked = true;
            }
        }

        SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement delivered(db_,
                                    "UPDATE alert_deliveries SET status = 'delivered', attempts = ?, delivered_at = ?, "
                                    "last_error = NULL WHERE sink = ? AND seq = ?");
        SQLite::Statement dead(db_,
                               "UPDATE alert_deliveries SET status = 'dead', attempts = ?, last_error = ? "
                               "WHERE sink = ? AND seq = ?");
        SQLite::Statement failed(db_,
                                 "UPDATE alert_deliveries SET attempts = ?, next_attempt_at = ?, last_error = ? "
                                 "WHERE sink = ? AND seq = ?");
        SQLite::Statement attempt(db_,
                                  "INSERT INTO alert_attempts (sink, seq, time, outcome, latency_ms, error) "
                                  "VALUES (?, ?, ?, ?, ?, ?)");
        for (const result& r : done) {
            const std::int64_t seq = r.row->seq;
            if (r.outcome == "delivered") {
                delivered.bind(1, r.attempts);
                delivered.bind(2, r.at);
                delivered.bind(3, name);
                delivered.bind(4, seq);
                delivered.exec();
                delivered.reset();
                ++d.delivered;
            } else if (r.outcome == "dead") {
                dead.bind(1, r.attempts);
                dead.bind(2, r.error);
                dead.bind(3, name);
                dead.bind(4, seq);
                dead.exec();
                dead.reset();
                ++d.dead;
                last_dead_error = r.error;
            } else {
                failed.bind(1, r.attempts);
                failed.bind(2, r.next_attempt_at);
                failed.bind(3, r.error);
                failed.bind(4, name);
                failed.bind(5, seq);
                failed.exec();
                failed.reset();
                ++d.failed;
            }
            attempt.bind(1, name);
            attempt.bind(2, seq);
            attempt.bind(3, r.at);
            attempt.bind(4, r.outcome);
            attempt.bind(5, r.latency_ms);
            if (r.outcome == "delivered") attempt.bind(6);
            else attempt.bind(6, r.error);
            attempt.exec();
            attempt.reset();
        }
        tx.commit();
        for (const result& r : done) {
            if (r.outcome == "delivered")
                spdlog::debug("alert delivered sink={} seq={} attempt={} ms={}", name, r.row->seq, r.attempts,
                              r.latency_ms);
            else if (r.outcome == "dead")
                spdlog::error("alert dead-lettered sink={} seq={} attempts={} error=\"{}\"", name, r.row->seq,
                              r.attempts, r.error);
            else
                spdlog::warn("alert delivery failed sink={} seq={} attempt={} ms={} error=\"{}\"", name, r.row->seq,
                             r.attempts, r.latency_ms, r.error);
            if (on_attempt) on_attempt(name, r.outcome);
        }
    }
    const std::int64_t dead_after = dead_count(name);
    if (dead_after != dead_before)
        queued_ += sync::alerts::update_delivery_failed(db_, cfg_, name, dead_after, last_dead_error, clock_.now());
    d.pending = count_pending(db_, name);
    co_return d;
}

asio::awaitable<dispatch_report> alert_dispatcher::run(steady::time_point deadline) {
    dispatch_report report;
    auto ex = co_await asio::this_coro::executor;
    for (const auto& s : sinks_) report.sinks.push_back({s->cfg.name, 0, 0, 0, 0, std::nullopt});
    // More than one pass only when a pass dead-lettered something: delivery_failed notifications
    // were queued for the other sinks, which may have finished already.
    for (int pass = 0; pass < 3 && !sinks_.empty(); ++pass) {
        queued_ = 0;
        using op_type = decltype(asio::co_spawn(ex, drain(*sinks_.front(), deadline), asio::deferred));
        std::vector<op_type> ops;
        for (auto& s : sinks_) ops.push_back(asio::co_spawn(ex, drain(*s, deadline), asio::deferred));
        auto [order, errors, results] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
        for (auto& e : errors)
            if (e) std::rethrow_exception(e);
        for (std::size_t i = 0; i < results.size(); ++i) {
            auto& r = report.sinks[i];
            r.delivered += results[i].delivered;
            r.failed += results[i].failed;
            r.dead += results[i].dead;
            r.pending = results[i].pending;
            r.next_due = results[i].next_due;
        }
        if (queued_ == 0 || steady::now() >= deadline) break;
    }
    const std::int64_t now = clock_.now();
    for (const auto& r : report.sinks) {
        report.delivered += r.delivered;
        report.failed += r.failed;
        report.dead += r.dead;
        report.pending += r.pending;
        if (r.next_due) {
            report.next_due = report.next_due ? std::min(*report.next_due, *r.next_due) : *r.next_due;
            if (*r.next_due <= now) report.cut_short = true;
        }
    }
    co_return report;
}

sink_context make_sink_context(asio::any_io_executor ex, const config::config& cfg, config::environment env) {
    sink_context ctx;
    ctx.ex = std::move(ex);
    ctx.env = std::move(env);
    ctx.secret_env_names = config::secret_env_names(cfg);
    ctx.proxy = sync::proxy_settings::resolve(cfg.sync.proxy, cfg.sync.no_proxy);
    ctx.repeat_interval = cfg.alerts.repeat_interval;
    for (const auto& s : cfg.alerts.sinks)
        // A URL from url_env/_file/_credential is read later: it may well be https.
        if ((s.type == config::sink_type::webhook || s.type == config::sink_type::alertmanager) &&
            (s.url.tls() || !s.url_secret.empty())) {
            ctx.tls = sync::make_tls_context(cfg.tls);
            break;
        }
    return ctx;
}

dispatch_report deliver_for(const config::config& cfg, SQLite::Database& db, config::environment env,
                            std::function<std::int64_t()> now, std::chrono::milliseconds budget) {
    asio::io_context io;
    alert_dispatcher d(cfg.alerts, make_sink_context(io.get_executor(), cfg, std::move(env)), db, {now, {}});
    const auto deadline = steady::now() + budget;
    auto loop = [&]() -> asio::awaitable<dispatch_report> {
        asio::steady_timer timer(io);
        for (;;) {
            auto r = co_await d.run(deadline);
            if (r.pending == 0 || !r.next_due) co_return r;
            const auto wait = std::chrono::milliseconds(std::max<std::int64_t>(0, *r.next_due - now()));
            if (steady::now() + wait >= deadline) co_return r;
            timer.expires_after(wait);
            co_await timer.async_wait(asio::use_awaitable);
        }
    };
    auto f = asio::co_spawn(io, loop(), asio::use_future);
    io.run();
    return f.get();
}

std::int64_t requeue_dead(SQLite::Database& db, const std::string& sink, std::int64_t now) {
    SQLite::Statement u(db,
                        "UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ? "
                        "WHERE status = 'dead' AND (? = '' OR sink = ?)");
    u.bind(1, now);
    u.bind(2, sink);
    u.bind(3, sink);
    return u.exec();
}

}  // namespace subsync::exporters
