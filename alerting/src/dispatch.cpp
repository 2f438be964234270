#include <subsync/config/secret.hpp>
#include <subsync/alerting/dispatch.hpp>

#include <subsync/alerting/alerts.hpp>
#include <subsync/alerting/events.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/sync/retry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace subsync::alerting {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

struct alert_dispatcher::sink_slot {
    config::sink_config cfg;
    std::unique_ptr<alert_sink> sink;
};

alert_dispatcher::alert_dispatcher(const config::alerts_config& cfg, sink_context ctx, SQLite::Database& db,
                                   dispatch_clock clock)
    : cfg_(cfg), ctx_(std::move(ctx)), db_(db), outbox_(db), clock_(std::move(clock)) {
    ctx_.repeat_interval = cfg_.repeat_interval;
    for (auto& sc : effective_sinks(cfg_)) {
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

std::vector<planned_notification> alert_dispatcher::plan(const sink_slot& s) const {
    notification_planner planner(s.cfg.group);
    outbox_.for_each_pending(s.cfg.name, plan_window, [&](const pending_delivery& r) { planner.add(r); });
    return planner.finish([&](const std::string& key) { return outbox_.last_delivered(s.cfg.name, key); });
}

// Once a pass's first group notification is delivered, every other that may go now is written
// down in one transaction (outbox::assign): one commit for the pass instead of one per group took
// a quarter off a first sync's delivery (issue 16). Not before: a sink whose head keeps failing
// would group and release its whole backlog on every retry. Returns the indexes of the plans
// grouped here, from `from` on; send() releases those it does not attempt.
std::vector<std::size_t> alert_dispatcher::assign_due(const sink_slot& s, std::vector<planned_notification>& plans,
                                                      std::size_t from) {
    const epoch_ms now = clock_.now();
    std::vector<outbox::group_assignment> groups;
    std::vector<std::size_t> grouped;
    for (std::size_t i = from; i < plans.size(); ++i) {
        planned_notification& p = plans[i];
        if (p.due > now) {
            if (p.retrying) break;  // head of line: nothing after it goes first
            continue;
        }
        if (p.assigned) continue;
        groups.push_back({p.batch, p.key, p.seqs});
        grouped.push_back(i);
    }
    outbox_.assign(s.cfg.name, groups);
    for (const std::size_t i : grouped) plans[i].assigned = true;
    return grouped;
}

std::pair<std::int64_t, std::optional<std::int64_t>> alert_dispatcher::pending() const {
    std::int64_t total = 0;
    std::optional<std::int64_t> next;
    for (const auto& s : sinks_) {
        total += outbox_.count(s->cfg.name, delivery_status::pending);
        for (const auto& p : plan(*s)) {
            next = next ? std::min(*next, p.due) : p.due;
            if (p.retrying) break;  // head of line: nothing after it goes first
        }
    }
    return {total, next};
}

asio::awaitable<batch_outcome> alert_dispatcher::attempt(sink_slot& s, const planned_notification& p,
                                                         steady::time_point deadline) {
    const std::string& name = s.cfg.name;
    const sync::retry_policy policy{cfg_.max_attempts, cfg_.retry_base, cfg_.retry_max};
    if (!p.assigned) outbox_.assign(name, p.batch, p.key, p.seqs);
    const bool payload = s.sink->needs_payload();
    auto members = outbox_.members(name, p.batch, payload);
    const auto t0 = steady::now();
    auto group = members ? make_group_notification(p, name, s.cfg.group.by, std::move(*members), payload)
                         : boost::system::result<group_notification, std::string>(members.error());
    delivery_outcome out;
    const bool poison = !group;  // a payload that cannot be read never will be: no retry
    if (poison) out = {false, group.error()};
    else out = co_await s.sink->deliver(*group, deadline);
    // Durable first (jsonl: fsync), then marked: what is marked delivered was delivered.
    if (out.delivered) out = s.sink->flush();
    batch_outcome o;
    o.batch = p.batch;
    o.attempts = p.attempts + 1;
    o.at = clock_.now();
    o.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
    o.error = config::redacted(out.error);
    if (out.delivered) o.outcome = attempt_outcome::delivered;
    else if (poison || o.attempts >= cfg_.max_attempts) o.outcome = attempt_outcome::dead;
    else {
        o.outcome = attempt_outcome::failed;
        o.next_attempt_at = o.at + sync::backoff_delay(policy, static_cast<int>(o.attempts), draw()).count();
    }
    outbox_.record(name, std::span(&o, 1));
    observer().on(delivery_attempt{name, p.key, p.batch, p.seqs.size(), o.outcome, o.attempts, o.latency_ms, o.error});
    co_return o;
}

namespace {

void due_at(sink_dispatch& d, epoch_ms t) {
    d.next_due = d.next_due ? std::min(*d.next_due, t) : t;
}

}  // namespace

// One pass over a sink's plan: group notifications go out one at a time in the order of their
// groups' first alerts; a failed one blocks the sink until its retry time (head of line), while
// a group that waits for its group_wait / group_interval lets the ones after it go. No
// transaction is open while a sink is awaited: the connection is shared with the sync.
asio::awaitable<alert_dispatcher::pass_result> alert_dispatcher::send(sink_slot& s,
                                                                     std::vector<planned_notification> plans,
                                                                     steady::time_point deadline, sink_dispatch& d) {
    pass_result r;
    // The plans written down ahead of their turn, and which ones the pass went on to try: the
    // others are ungrouped again when it ends, however it ends, to be grouped afresh with what
    // arrives meanwhile (as if never written down; only a crash leaves them grouped).
    bool grouped_ahead = false;
    std::vector<std::size_t> ahead;
    std::vector<char> tried(plans.size(), 0);
    auto release_untried = [&] {
        std::vector<std::int64_t> batches;
        for (const std::size_t i : ahead)
            if (tried[i] == 0) batches.push_back(plans[i].batch);
        outbox_.release(s.cfg.name, batches);
    };
    try {
        for (std::size_t i = 0; i < plans.size() && !r.blocked; ++i) {
            const planned_notification& p = plans[i];
            const bool due = p.due <= clock_.now();
            if (!due || steady::now() >= deadline) {
                due_at(d, p.due);
                r.blocked = due || p.retrying;  // the deadline, or a retry not yet due: nothing after it goes first
                continue;
            }
            tried[i] = 1;
            const batch_outcome o = co_await attempt(s, p, deadline);
            r.sent = true;
            if (o.outcome == attempt_outcome::delivered) {
                ++d.delivered;
                if (!grouped_ahead) {
                    grouped_ahead = true;
                    ahead = assign_due(s, plans, i + 1);
                }
            } else if (o.outcome == attempt_outcome::dead) {
                ++d.dead;
                r.last_dead_error = o.error;
            } else {
                ++d.failed;
                due_at(d, o.next_attempt_at);
                r.blocked = true;
            }
        }
    } catch (...) {
        try {
            release_untried();
        } catch (...) {  // they stay grouped, and are sent as grouped: at least once either way
        }
        throw;
    }
    release_untried();
    co_return r;
}

asio::awaitable<sink_dispatch> alert_dispatcher::drain(sink_slot& s, steady::time_point deadline) {
    sink_dispatch d;
    d.sink = s.cfg.name;
    const std::string& name = s.cfg.name;
    const std::int64_t dead_before = outbox_.count(name, delivery_status::dead);
    std::string last_dead_error;
    // Planned again after each pass: what went out is gone, and grouping timers may have come due.
    for (pass_result r{true, false, {}}; r.sent && !r.blocked;) {
        r = co_await send(s, plan(s), deadline, d);
        if (!r.last_dead_error.empty()) last_dead_error = r.last_dead_error;
    }
    const std::int64_t dead_after = outbox_.count(name, delivery_status::dead);
    if (dead_after != dead_before)
        queued_ += update_delivery_failed(db_, cfg_, name, dead_after, last_dead_error, clock_.now());
    d.pending = outbox_.count(name, delivery_status::pending);
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

namespace {

// Adds a pass's attempts to `total`; what is left (pending, next_due, cut_short) is the pass's.
void add_attempts(dispatch_report& total, const dispatch_report& pass) {
    total.delivered += pass.delivered;
    total.failed += pass.failed;
    total.dead += pass.dead;
    total.pending = pass.pending;
    total.next_due = pass.next_due;
    total.cut_short = pass.cut_short;
    for (const auto& s : pass.sinks) {
        auto it = std::find_if(total.sinks.begin(), total.sinks.end(), [&](const auto& t) { return t.sink == s.sink; });
        if (it == total.sinks.end()) {
            total.sinks.push_back(s);
            continue;
        }
        it->delivered += s.delivered;
        it->failed += s.failed;
        it->dead += s.dead;
        it->pending = s.pending;
        it->next_due = s.next_due;
    }
}

}  // namespace

dispatch_report deliver_for(const config::config& cfg, SQLite::Database& db, config::environment env,
                            std::function<std::int64_t()> now, std::chrono::milliseconds budget,
                            alerting_observer* observer) {
    asio::io_context io;
    auto ctx = make_sink_context(io.get_executor(), cfg, std::move(env));
    ctx.observer = observer;
    alert_dispatcher d(cfg.alerts, ctx, db, {now, {}});
    const auto deadline = steady::now() + budget;
    auto loop = [&]() -> asio::awaitable<dispatch_report> {
        asio::steady_timer timer(io);
        dispatch_report total;
        for (;;) {
            auto r = co_await d.run(deadline);
            add_attempts(total, r);
            if (r.pending == 0 || !r.next_due) co_return total;
            const auto wait = std::chrono::milliseconds(std::max<std::int64_t>(0, *r.next_due - now()));
            if (steady::now() + wait >= deadline) co_return total;
            timer.expires_after(wait);
            co_await timer.async_wait(asio::use_awaitable);
        }
    };
    auto f = asio::co_spawn(io, loop(), asio::use_future);
    io.run();
    return f.get();
}


}  // namespace subsync::alerting
