#include <subsync/logging/log.hpp>
#include <subsync/sync/detail/run_all.hpp>
#include <subsync/sync/engine.hpp>
#include <subsync/sync/events.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <SQLiteCpp/Exception.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <random>

namespace subsync::sync {

namespace asio = boost::asio;

bool sync_report::all_ok() const {
    return std::all_of(runs.begin(), runs.end(), [](const run_record& r) { return r.status == run_status::ok; });
}

namespace {

struct job {
    const config::account_config* account;
    source_kind source;
};

}  // namespace

class sync_engine::impl {
public:
    impl(asio::any_io_executor ex, const config::config& cfg, snapshot_store& store, const config::environment& env,
         clock_fn now)
        : cfg_(cfg), store_(store), env_(env), now_(std::move(now)),
          limits_(cfg.sync.rate_limit, cfg.sync.rate_burst), rng_(std::random_device{}()) {
        net_.ex = std::move(ex);
        net_.proxy = proxy_settings::resolve(cfg.sync.proxy, cfg.sync.no_proxy);
        net_.timeout = cfg.sync.timeout;
        net_.body_limit = cfg.sync.body_limit;
        set_body_budget(cfg.sync.body_budget);
    }

    asio::awaitable<sync_report> run(sync_options opts) {
        opts_ = opts;
        report_ = {};
        if (!net_.tls && std::any_of(cfg_.accounts.begin(), cfg_.accounts.end(), [](const auto& a) {
                return a.apig_endpoint.tls() || a.secmaster_endpoint.tls() ||
                       (a.auth.type == config::auth_type::password && a.auth.iam_endpoint.tls());
            }))
            net_.tls = make_tls_context(cfg_.tls);
        for (auto& [name, auth] : auth_) auth->new_round();
        std::vector<job> jobs;
        for (const auto& a : cfg_.accounts) {
            jobs.push_back({&a, source_kind::purchased_groups});
            jobs.push_back({&a, source_kind::subscriptions});
        }
        report_.runs.resize(jobs.size());
        // At most sync.source_concurrency sources in flight, so memory and connections do not grow
        // with the number of accounts; each worker takes the next job when its own is done.
        std::size_t next = 0;
        const auto workers = std::min(jobs.size(), static_cast<std::size_t>(cfg_.sync.source_concurrency));
        // One parser and filter scratch for every listing of the run, freed with it: between
        // runs the daemon holds none (fetch_context::readers).
        readers_.emplace();
        co_await detail::run_all(net_.ex, workers, [&](std::size_t) { return drain(jobs, next); });
        readers_.reset();
        if (cfg_.storage.history_days > 0 && !opts_.dry_run) {
            const auto p = store_.prune(now_() - std::int64_t{cfg_.storage.history_days} * 86'400'000);
            if (p.changes + p.runs + p.samples + p.removed_items + p.alerts > 0)
                logging::info("history pruned", {{"older_than_days", cfg_.storage.history_days},
                                                 {"changes", p.changes},
                                                 {"runs", p.runs},
                                                 {"samples", p.samples},
                                                 {"removed_items", p.removed_items},
                                                 {"alert_rows", p.alerts}});
        }
        co_return std::move(report_);
    }

private:
    asio::awaitable<void> drain(const std::vector<job>& jobs, std::size_t& next) {
        while (next < jobs.size()) {
            const std::size_t i = next++;
            co_await run_job(jobs[i], report_.runs[i]);
        }
    }

    retry_policy retries() const { return {cfg_.sync.max_attempts, cfg_.sync.backoff_base, cfg_.sync.backoff_max}; }

    asio::awaitable<void> run_job(job j, run_record& out) {
        const epoch_ms started = now_();
        const auto t0 = std::chrono::steady_clock::now();
        const auto& account = *j.account;
        const auto source = to_string(j.source);

        request_stats stats;
        // Whatever the outcome, the run record says how hard the source was to get, and the
        // observer hears of it once.
        auto finished = [&](std::optional<error_kind> kind) {
            out.retries = stats.retries;
            out.throttled = stats.throttled;
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
            if (out.queued.total() > 0 && !opts_.dry_run) observer().on(alerts_queued{out});
            observer().on(source_finished{out, kind, ms});
        };
        auto fail = [&](const error& e) {
            const auto text = fmt::format("account={} source={} {}", account.name, source, e.message);
            out = store_.record_failure(account.name, j.source, text, started, now_(), opts_.dry_run,
                                        to_string(e.kind));
            finished(e.kind);
        };

        auto auth = authenticator_for(account);
        if (!auth) {
            fail(auth.error());
            co_return;
        }
        fetch_context ctx;
        ctx.request.stats = &stats;
        ctx.request.observer = &observer();
        ctx.request.net = &net_;
        ctx.request.account = account.name;
        ctx.request.source = std::string(source);
        ctx.request.auth = *auth;
        ctx.request.retry = retries();
        ctx.request.limits = &limits_;
        ctx.request.deadline = t0 + cfg_.sync.source_timeout;
        ctx.request.random = [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); };
        ctx.account = &account;
        ctx.page_size = cfg_.sync.page_size;
        ctx.concurrency = cfg_.sync.concurrency;
        ctx.max_pages = cfg_.sync.max_pages;
        ctx.readers = &readers_.value();  // set for the whole of run(), which runs every job
        ctx.on_page = [&](int done, int total, page_reading how) {
            observer().on(page_fetched{account.name, source, done, total, how});
        };

        // The store failing (disk full, temporary storage full, database locked) ends the whole
        // sync: say where and what to check. The snapshot itself is as before.
        auto store_failed = [&](std::string_view what) {
            return std::runtime_error(fmt::format(
                "account={} source={}: cannot write the snapshot {}: {} (the previous snapshot is intact; check "
                "free disk space there and in the temporary directory (SQLITE_TMPDIR, TMPDIR or /var/tmp), file "
                "size limits, and whether another process holds the database)",
                account.name, source, cfg_.storage.database.string(), what));
        };
        auto apply = [&](auto&& write) {
            try {
                out = write();
            } catch (const std::exception& e) {
                throw store_failed(e.what());  // the transaction rolled back
            }
            finished(std::nullopt);
        };
        if (j.source == source_kind::subscriptions) {
            auto fetched = co_await fetch_subscriptions(ctx);
            if (!fetched) co_return fail(fetched.error());
            apply([&] { return store_.apply(account.name, *fetched, started, now_(), opts_.dry_run); });
            co_return;
        }

        // Purchased groups are staged page by page as they arrive (snapshot.hpp, listing_stage).
        std::optional<listing_stage> stage;
        result<void> fetched;
        try {
            stage.emplace(store_, account.name, j.source);
            ctx.expected_pages = stage->previous_pages();
            fetched = co_await fetch_purchased_groups(ctx, *stage);
        } catch (const SQLite::Exception& e) {
            throw store_failed(fmt::format("staging the listing: {}", e.what()));
        }
        if (!fetched) co_return fail(fetched.error());
        apply([&] { return store_.apply(*stage, started, now_(), opts_.dry_run); });
    }

    result<std::shared_ptr<authenticator>> authenticator_for(const config::account_config& account) {
        if (auto it = auth_.find(account.name); it != auth_.end()) return it->second;
        const auto index = static_cast<std::size_t>(&account - cfg_.accounts.data());
        auto a = make_authenticator(account, index, env_, net_, retries(), now_);
        if (!a) return a.error();
        auth_.emplace(account.name, *a);
        return a;
    }

    sync_observer& observer() { return opts_.observer != nullptr ? *opts_.observer : log_; }

    const config::config& cfg_;
    snapshot_store& store_;
    log_observer log_;
    const config::environment& env_;
    clock_fn now_;
    sync_options opts_;
    transport net_;
    rate_limits limits_;
    std::mt19937_64 rng_;
    std::map<std::string, std::shared_ptr<authenticator>> auth_;
    sync_report report_;
    std::optional<page_readers> readers_;  // during run()
};

sync_engine::sync_engine(asio::any_io_executor ex, const config::config& cfg, snapshot_store& store,
                         const config::environment& env, clock_fn now)
    : impl_(std::make_unique<impl>(std::move(ex), cfg, store, env, std::move(now))) {}

sync_engine::~sync_engine() = default;

asio::awaitable<sync_report> sync_engine::run(sync_options opts) { return impl_->run(opts); }

sync_report sync_once(const config::config& cfg, snapshot_store& store, const config::environment& env,
                      const clock_fn& now, sync_options opts) {
    asio::io_context io;
    sync_engine engine(io.get_executor(), cfg, store, env, now);
    std::exception_ptr failure;
    std::optional<sync_report> report;
    asio::co_spawn(io, engine.run(opts), [&](std::exception_ptr e, sync_report r) {
        failure = e;
        report = std::move(r);
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
    if (!report) throw std::logic_error("sync ended with work still suspended");
    return std::move(*report);
}

}  // namespace subsync::sync
