#include <subsync/logging/log.hpp>
#include <subsync/sync/detail/run_all.hpp>
#include <subsync/sync/fetch.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/snapshot.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <optional>

namespace subsync::sync {

namespace asio = boost::asio;

namespace {

// An item the parser could not read: its last good row is kept (and the listing is incomplete).
void log_unreadable(std::string_view account, std::string_view source, int page, const unreadable_item& bad) {
    logging::warn("unreadable item",
                  {{"account", account},
                   {"source", source},
                   {"page", page},
                   {"item", bad.id},
                   {"field", bad.field},
                   {"error", bad.message}},
                  "its last good row is kept");
}

// Bump when the same page bytes would give other rows: a filter, parser, column or content-hash change
// (a schema change already changes snapshot_store::schema_version, which is hashed too).
constexpr std::string_view page_digest_version = "subsync page digest 1";

// What the body a digest is of went through before it was hashed.
enum class body_form { kept, unfiltered };

// SHA-256 of what decides a page's rows: the code's version, the request and the body.
page_digest digest_of(body_form form, std::string_view target, std::string_view body) {
    const auto head = fmt::format(" schema {}{}\n", snapshot_store::schema_version,
                                  form == body_form::unfiltered ? " unfiltered" : "");
    return sha256({page_digest_version, head, target, "\n", body});
}

// A page whose body is no longer is kept as it came until its digest says whether it is as
// before: an unchanged page is then never filtered. A longer one is filtered as it arrives.
constexpr std::size_t unfiltered_max = std::size_t{1} << 20;

// Sends one request with retries; a non-2xx answer that is not retried is an error.
asio::awaitable<result<http_response>> get_ok(const fetch_context& ctx, http_connection& conn,
                                              const config::endpoint& ep, http_request req, std::string_view where) {
    co_return co_await send_with_retries(ctx.request, conn, ep, req, where);
}

// Pages 2..N of one purchased-groups listing, drained by a fixed set of
// workers from a shared cursor. Each page is staged as it arrives, at its
// place in the listing, and freed: the listing never depends on arrival
// order, and never sits in memory whole (bench/README.md finding 4).
//
// While every page comes back with the digest it had in the last complete listing, nothing is
// parsed, staged or read from the snapshot: the listing is that one again. The first page that
// differs ends that, and the pages passed over so far are fetched again to be staged
// (docs/decisions.md "An unchanged listing is recognised by its pages").
class group_pager {
public:
    /// `fetched_before`: pages an earlier pass of the same listing fetched, which the progress
    /// counts on from.
    group_pager(const fetch_context& ctx, listing_stage& stage, int fetched_before = 0)
        : ctx_(ctx), ep_(ctx.account->apig_endpoint), stage_(stage), fetched_before_(fetched_before),
          readers_(*ctx.readers) {}

    /// The pages fetched so far, by this pass and the ones before it.
    [[nodiscard]] int fetched() const noexcept { return fetched_before_ + fetched_; }

    // Fills page_, unless the page is as the last listing had it while every page so far was.
    // Nothing is awaited between the parse and the caller's place(), so all workers share the
    // pager's one page, and it keeps its storage from page to page; the parser and the filter's
    // scratch are in use only within this call, so every listing of the run shares them
    // (fetch_context::readers).
    asio::awaitable<result<page_reading>> fetch(http_connection& conn, int page_no) {
        const auto where = fmt::format("page={}", page_no);
        http_request req;
        req.target = fmt::format("{}/v1.0/apigw/purchases/groups?page_size={}&page_no={}", ep_.base_path,
                                 ctx_.page_size, page_no);
        req.shape = body_shape::purchases_page;
        req.unfiltered_up_to = unfiltered_max;
        auto res = co_await get_ok(ctx_, conn, ep_, req, where);
        if (!res) co_return res.error();
        // The body goes back to the connection for the next page, whatever happens here; its
        // share of the budget first, which the connection takes again for the idle buffer.
        struct give_back {
            http_connection& conn;
            http_response& res;
            ~give_back() {
                res.lease.release();
                conn.reuse(std::move(res.body));
            }
        } const recycle{conn, *res};
        const page_digest* before = stage_.previous_digest(page_no);
        page_digest unfiltered{};
        bool same = false;
        if (res->unfiltered) {
            // As it came: when that is as before, so is what the filter would keep.
            unfiltered = digest_of(body_form::unfiltered, req.target, res->body);
            const page_digest* unfiltered_before = stage_.previous_unfiltered_digest(page_no);
            same = before != nullptr && unfiltered_before != nullptr && *unfiltered_before == unfiltered;
            if (same && page_no != 1 && skipping_) {
                stage_.set_digest(page_no, *before, unfiltered);
                co_return page_reading::as_before_unfiltered;
            }
            const auto from = fmt::format("{}:{}", ep_.host, ep_.port);
            if (auto kept = filter_body(*res, req.shape, readers_.filtered, from); !kept)
                co_return located(kept.error(), where);
        }
        page_bytes_ = res->body.size();
        const page_digest digest = same ? *before : digest_of(body_form::kept, req.target, res->body);
        stage_.set_digest(page_no, digest, unfiltered);
        same = same || (before != nullptr && *before == digest);
        if (page_no == 1) first_as_before_ = same;
        else if (same && skipping_) co_return page_reading::as_before;
        if (auto read = readers_.parser.groups(res->body, page_); !read) {
            auto e = located(read.error(), where);
            if (!res->request_id.empty()) e.message += fmt::format(" request_id={}", res->request_id);
            co_return e;
        }
        co_return page_reading::parsed;
    }

    asio::awaitable<void> worker(http_connection& conn) {
        while (!stopped() && !ended_early_) {
            int page_no = 0;
            if (!refetch_.empty()) {
                page_no = refetch_.back();
                refetch_.pop_back();
            } else if (next_ <= page_count_) {
                page_no = next_++;
            } else {
                co_return;
            }
            auto fetched = co_await fetch(conn, page_no);
            if (!fetched) {
                if (!failure_) failure_ = fetched.error();
                co_return;
            }
            if (stopped()) co_return;  // another page failed meanwhile: the listing is lost anyway
            if (*fetched != page_reading::parsed) {
                passed_over_.push_back(page_no);
                page_done();
                count_fetch(*fetched);
                continue;
            }
            try {
                if (skipping_) stop_skipping();
                place_fetched(page_no);
                count_fetch(page_reading::parsed);
            } catch (...) {
                // The store failed (temporary storage full): the other workers stop too, and
                // run() rethrows once they have.
                store_error_ = std::current_exception();
                co_return;
            }
        }
    }

    asio::awaitable<void> fetch_first(http_connection& conn, std::optional<result<void>>& out) {
        auto read = co_await fetch(conn, 1);
        if (read) out.emplace();
        else out.emplace(read.error());
    }

    /// Reads the snapshot's keys a few thousand at a time, letting the connections' handshakes
    /// and page 1 go on between reads: all on this one thread, so a load in one go (about
    /// 100 ms for 100k items) held the requests back until it was done.
    asio::awaitable<void> load_stage() {
        constexpr std::size_t rows_per_turn = 4096;
        while (!stage_.load_some(rows_per_turn)) co_await asio::post(ctx_.request.net->ex, asio::use_awaitable);
    }

    asio::awaitable<result<void>> run() {
        // Page 1 tells how many pages there are; meanwhile the connections the previous
        // listing needed are opened, so the other pages start without a handshake each.
        std::vector<std::unique_ptr<http_connection>> conns;
        conns.push_back(ctx_.request.net->connect(ep_));
        const int expected_workers = std::min(ctx_.concurrency, ctx_.expected_pages - 1);
        while (static_cast<int>(conns.size()) < expected_workers)
            conns.push_back(ctx_.request.net->connect(ep_));
        // The stage reads the snapshot's keys while page 1 is on the wire, unless the listing
        // may turn out to be the last one again: then it reads them only once a page differs.
        const bool may_be_as_before = stage_.previous_digest_pages() > 0;
        std::optional<result<void>> first;
        co_await detail::run_all(ctx_.request.net->ex, conns.size() + (may_be_as_before ? 0 : 1), [&](std::size_t i) {
            if (i == conns.size()) return load_stage();
            return i == 0 ? fetch_first(*conns[0], first) : conns[i]->warm_up();
        });
        if (!*first) co_return first->error();

        total_ = page_.total;
        page_count_ = count_pages(page_);
        // Page 1 is always parsed (it says how many pages there are), but staged only once a
        // page differs; a page kept aside must be one the next fetch may not overwrite.
        skipping_ = first_as_before_ && stage_.complete() && page_.unreadable.empty() &&
                    page_count_ == stage_.previous_digest_pages() && page_bytes_ <= keep_bytes;
        if (skipping_) {
            first_page_ = std::move(page_);
            page_ = groups_page{};
            page_done();
        } else {
            place_fetched(1);
        }
        count_fetch(page_reading::parsed);  // page 1 is always parsed

        const auto workers = static_cast<std::size_t>(std::min(ctx_.concurrency, page_count_ - 1));
        if (conns.size() > std::max<std::size_t>(1, workers))  // a listing that shrank: the spares close here
            conns.resize(std::max<std::size_t>(1, workers));
        while (conns.size() < workers)
            conns.push_back(ctx_.request.net->connect(ep_));
        // A page that differs late leaves pages to fetch again after the other workers ended.
        do {
            co_await detail::run_all(ctx_.request.net->ex, workers, [&](std::size_t i) { return worker(*conns[i]); });
        } while (!refetch_.empty() && !stopped() && !ended_early_);
        if (store_error_) std::rethrow_exception(store_error_);
        if (failure_) co_return *failure_;
        if (skipping_) {
            stage_.mark_unchanged();
            co_return result<void>{};
        }
        if (stage_.distinct_items() != total_)
            incomplete(fmt::format("listed {} distinct items but total is {}", stage_.distinct_items(), total_), true);
        co_return result<void>{};
    }

    /// True when fetching the listing again may make it add up (the data moved while
    /// paging); false when the server itself is at fault (an unreadable item, a
    /// `total` no pages back up), which a second pass would only repeat.
    [[nodiscard]] bool worth_another_pass() const noexcept { return worth_another_pass_; }

private:
    bool stopped() const noexcept { return failure_ || store_error_; }

    // The first reason is the one reported; a listing is worth a second pass only
    // when every reason is one the data moving would explain.
    void incomplete(std::string reason, bool data_moved) {
        if (stage_.complete()) worth_another_pass_ = data_moved;
        else worth_another_pass_ = worth_another_pass_ && data_moved;
        stage_.mark_incomplete(fmt::format("account={} source=purchased_groups {}", ctx_.account->name, reason));
    }

    // Pages from page 1's answer. A gateway may serve fewer items per page than
    // `page_size` asks (a lower maximum): then pages are as long as page 1 was.
    // At most sync.max_pages, whatever `total` claims.
    int count_pages(const groups_page& first) {
        std::int64_t per_page = ctx_.page_size;
        const std::int64_t served = first.served > 0 ? first.served : first.size;
        if (served > 0 && served < per_page && total_ > served) {
            per_page = served;
            logging::info("short pages",
                          {{"account", ctx_.account->name},
                           {"source", "purchased_groups"},
                           {"page_size", ctx_.page_size},
                           {"served", served}},
                          "the gateway's maximum is lower, numbering pages by what it serves");
        }
        const std::int64_t pages = std::max<std::int64_t>(1, total_ / per_page + (total_ % per_page != 0 ? 1 : 0));
        if (pages > ctx_.max_pages) {
            incomplete(fmt::format("total {} needs {} pages of {}, more than sync.max_pages = {}: fetched the first {}",
                                   total_, pages, per_page, ctx_.max_pages, ctx_.max_pages),
                       false);
            return ctx_.max_pages;
        }
        return static_cast<int>(pages);
    }

    // A page that differs: page 1 and the pages passed over as before are staged after all,
    // the passed-over ones fetched again (nothing of them was kept).
    void stop_skipping() {
        skipping_ = false;
        done_ -= static_cast<int>(passed_over_.size()) + 1;  // counted again as they are staged
        fetches_due_ += static_cast<int>(passed_over_.size());
        refetch_.insert(refetch_.end(), passed_over_.rbegin(), passed_over_.rend());
        passed_over_.clear();
        if (!refetch_logged_ && !refetch_.empty()) {
            refetch_logged_ = true;
            logging::info("listing changed",
                          {{"account", ctx_.account->name}, {"source", "purchased_groups"}, {"refetch_pages", refetch_.size()}},
                          "fetching again the pages that were as before until then");
        }
        place(1, first_page_);
        first_page_ = groups_page{};
    }

    void page_done() { stage_.pages = ++done_; }

    // The progress counts fetches, not staged pages: pages fetched again after a page differed,
    // and an earlier pass's, add to its total, so it never steps back.
    void count_fetch(page_reading how) {
        ++fetched_;
        if (ctx_.on_page) ctx_.on_page(fetched(), fetched_before_ + page_count_ + fetches_due_, how);
    }

    void place(int page_no, const groups_page& page) {
        if (page.total != total_)
            incomplete(fmt::format("total changed from {} to {} while paging (page={})", total_, page.total, page_no),
                       true);
        for (const auto& bad : page.unreadable) {
            log_unreadable(ctx_.account->name, "purchased_groups", page_no, bad);
            incomplete(fmt::format("page={} {}", page_no, describe(bad)), false);
        }
        // An empty page before the last one: `total` promised more than the pages hold.
        // Stop here rather than asking for every page it claims.
        if (page.served == 0 && page_no < page_count_ && !ended_early_) {
            ended_early_ = true;
            incomplete(fmt::format("page={} came back empty but total {} promised {} pages: stopped there", page_no,
                                   total_, page_count_),
                       false);
        }
        stage_.add(listing_stage::position(page_no, 0), page.purchases);
        page_done();
    }

    // The page just fetched into page_. A page larger than asked for, or with large values, is
    // not kept for the next one: the body budget bounds what is read, not what a kept page
    // would go on holding.
    void place_fetched(int page_no) {
        place(page_no, page_);
        if (page_.purchases.size() > static_cast<std::size_t>(ctx_.page_size) || page_bytes_ > keep_bytes)
            page_ = groups_page{};
    }

    static constexpr std::size_t keep_bytes = std::size_t{2} << 20;

    const fetch_context& ctx_;
    const config::endpoint& ep_;
    listing_stage& stage_;
    std::int64_t total_ = 0;
    int page_count_ = 1;
    int next_ = 2;
    int done_ = 0;            // pages staged or passed over as before: stage_.pages
    const int fetched_before_;  // pages an earlier pass fetched (the progress goes on from them)
    int fetched_ = 0;         // pages this pass fetched
    int fetches_due_ = 0;     // pages to fetch a second time (passed over before a page differed)
    bool ended_early_ = false;
    bool worth_another_pass_ = true;
    std::optional<error> failure_;
    std::exception_ptr store_error_;
    // One page for all workers (see fetch()), and the run's parser and filter scratch: a parser
    // per connection held eight copies of a page's parse buffers, and one per listing one for
    // each source in flight (docs/decisions.md "Memory").
    page_readers& readers_;  // the run's (fetch_context::readers)
    groups_page page_;  // the page being read and placed, refilled by each (see fetch())
    std::size_t page_bytes_ = 0;  // the body page_ was read from
    bool first_as_before_ = false;  // page 1 has the digest it had in the last complete listing
    bool skipping_ = false;         // every page so far is as before: none is parsed or staged
    bool refetch_logged_ = false;
    groups_page first_page_;        // page 1, kept aside while skipping_
    std::vector<int> passed_over_;  // pages 2..N found as before while skipping_
    std::vector<int> refetch_;      // those pages, to fetch again once a page differed
};

}  // namespace

std::string_view to_string(page_reading r) noexcept {
    switch (r) {
        case page_reading::parsed: return "parsed";
        case page_reading::as_before: return "as_before";
        case page_reading::as_before_unfiltered: return "as_before_unfiltered";
    }
    return "parsed";
}

asio::awaitable<result<void>> fetch_purchased_groups(const fetch_context& ctx, listing_stage& stage) {
    group_pager pager(ctx, stage);
    auto first = co_await pager.run();
    if (!first || stage.complete() || !pager.worth_another_pass()) co_return first;
    // The tenant's data may have moved while we paged (a purchase added or expired):
    // one fresh pass usually settles it. A second inconsistent pass is reported.
    logging::warn("inconsistent listing",
                  {{"account", ctx.account->name}, {"source", "purchased_groups"}, {"reason", stage.incomplete_reason()}},
                  "fetching again from page 1");
    stage.reset();
    auto second = co_await group_pager(ctx, stage, pager.fetched()).run();
    if (second && !stage.complete())
        stage.add_to_reason(" (also after fetching again from page 1)");
    co_return second;
}

asio::awaitable<result<listing<subscription_resource>>> fetch_subscriptions(const fetch_context& ctx) {
    const auto& ep = ctx.account->secmaster_endpoint;
    auto conn = ctx.request.net->connect(ep);
    http_request req;
    req.target = ep.base_path + "/v1/subscriptions/orders";
    req.headers.push_back({"X-Language", ctx.account->language});
    req.shape = body_shape::orders_document;
    auto res = co_await get_ok(ctx, *conn, ep, std::move(req), "page=1");
    if (!res) co_return res.error();
    auto parsed = body_parser{}.orders(res->body);
    res->body = std::string();  // the document is records now: its bytes go back to the budget
    res->lease.release();
    if (!parsed) {
        auto e = located(parsed.error(), "page=1");
        if (!res->request_id.empty()) e.message += fmt::format(" request_id={}", res->request_id);
        co_return e;
    }
    if (ctx.on_page) ctx.on_page(1, 1, page_reading::parsed);

    listing<subscription_resource> out;
    out.pages = 1;
    out.items = std::move(parsed->items);
    out.total = static_cast<std::int64_t>(out.items.size());
    for (const auto& bad : parsed->unreadable) {
        log_unreadable(ctx.account->name, "subscription_resources", 1, bad);
        const auto text = fmt::format("account={} source=subscription_resources page=1 {}", ctx.account->name, describe(bad));
        if (out.complete) out.incomplete_reason = text;
        out.complete = false;
    }
    co_return out;
}

}  // namespace subsync::sync
