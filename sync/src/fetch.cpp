#include <subsync/sync/detail/run_all.hpp>
#include <subsync/sync/fetch.hpp>
#include <subsync/sync/parse.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <span>
#include <unordered_set>

namespace subsync::sync {

namespace asio = boost::asio;

namespace {

// Sends one request with retries; a non-2xx answer that is not retried is an error.
asio::awaitable<result<http_response>> get_ok(const fetch_context& ctx, http_connection& conn,
                                              const config::endpoint& ep, http_request req, std::string_view where) {
    co_return co_await send_with_retries(ctx.request, conn, ep, req, where);
}

// Pages 2..N of one purchased-groups listing, drained by a fixed set of
// workers from a shared cursor. Results land at their page index, so the
// assembled listing never depends on arrival order.
class group_pager {
public:
    group_pager(const fetch_context& ctx, int page_count)
        : ctx_(ctx), ep_(ctx.account->apig_endpoint), pages_(static_cast<std::size_t>(page_count)) {}

    asio::awaitable<result<groups_page>> fetch(http_connection& conn, body_parser& parser, int page_no) {
        const auto where = fmt::format("page={}", page_no);
        http_request req;
        req.target = fmt::format("{}/v1.0/apigw/purchases/groups?page_size={}&page_no={}", ep_.base_path,
                                 ctx_.page_size, page_no);
        auto res = co_await get_ok(ctx_, conn, ep_, std::move(req), where);
        if (!res) co_return res.error();
        auto page = parser.groups(res->body);
        if (!page) {
            auto e = located(page.error(), where);
            if (!res->request_id.empty()) e.message += fmt::format(" request_id={}", res->request_id);
            co_return e;
        }
        co_return page;
    }

    asio::awaitable<void> worker(http_connection& conn) {
        body_parser parser;
        while (!failure_ && next_ <= static_cast<int>(pages_.size())) {
            const int page_no = next_++;
            auto page = co_await fetch(conn, parser, page_no);
            if (!page) {
                if (!failure_) failure_ = page.error();
                co_return;
            }
            place(static_cast<std::size_t>(page_no - 1), std::move(*page));
            if (ctx_.on_page) ctx_.on_page(++done_, static_cast<int>(pages_.size()));
        }
    }

    asio::awaitable<result<listing<purchased_group>>> run() {
        auto first_conn = ctx_.request.net->connect(ep_);
        body_parser parser;
        auto first = co_await fetch(*first_conn, parser, 1);
        if (!first) co_return first.error();

        const std::int64_t total = first->total;
        const std::int64_t per_page = ctx_.page_size;
        const auto page_count = static_cast<int>(std::max<std::int64_t>(1, (total + per_page - 1) / per_page));
        pages_.resize(static_cast<std::size_t>(page_count));
        placed_.assign(static_cast<std::size_t>(page_count), false);
        if (total <= max_slot_items) slots_.resize(static_cast<std::size_t>(total));
        place(0, std::move(*first));
        done_ = 1;
        if (ctx_.on_page) ctx_.on_page(done_, page_count);

        const auto workers = static_cast<std::size_t>(std::min(ctx_.concurrency, page_count - 1));
        std::vector<std::unique_ptr<http_connection>> conns;
        conns.push_back(std::move(first_conn));
        while (conns.size() < workers)
            conns.push_back(ctx_.request.net->connect(ep_));
        co_await detail::run_all(ctx_.request.net->ex, workers, [&](std::size_t i) { return worker(*conns[i]); });
        if (failure_) co_return *failure_;
        co_return assemble(total);
    }

private:
    // Peak memory (bench/README.md finding 4): a page whose items fill exactly its
    // share of the listing is moved into `slots_` on arrival and its own vector
    // freed, so the listing is never held twice. Any other page (its total moved,
    // too many or too few items) is kept whole, and assemble builds the listing
    // from both as before.
    void place(std::size_t index, groups_page page) {
        const auto per_page = static_cast<std::size_t>(ctx_.page_size);
        const std::size_t first = index * per_page;
        const auto total = static_cast<std::size_t>(slots_.size());
        if (!slots_.empty() && page.total == static_cast<std::int64_t>(total) && first < total &&
            page.purchases.size() == std::min(per_page, total - first)) {
            std::move(page.purchases.begin(), page.purchases.end(), slots_.begin() + static_cast<std::ptrdiff_t>(first));
            page.purchases = std::vector<purchased_group>();  // frees the buffer (`= {}` would keep it)
            placed_[index] = true;
        }
        pages_[index] = std::move(page);
    }

    // The items of page `index`: its share of `slots` if it was placed, else its own vector.
    std::span<purchased_group> page_items(std::size_t index, std::vector<purchased_group>& slots) {
        if (!placed_[index]) return pages_[index]->purchases;
        const auto per_page = static_cast<std::size_t>(ctx_.page_size);
        const std::size_t first = index * per_page;
        return std::span<purchased_group>(slots).subspan(first, std::min(per_page, slots.size() - first));
    }

    listing<purchased_group> assemble(std::int64_t total) {
        listing<purchased_group> out;
        out.pages = static_cast<int>(pages_.size());
        out.total = total;
        std::unordered_set<std::string> seen;
        // Every page placed: the slots are the listing, compacted in place where
        // an id repeats. Otherwise a new vector, as before.
        const bool in_place = std::all_of(placed_.begin(), placed_.end(), [](bool b) { return b; });
        std::size_t count = 0;
        for (std::size_t i = 0; i < pages_.size(); ++i) count += page_items(i, slots_).size();
        if (in_place) out.items = std::move(slots_);  // the buffer moves, so spans into it stay valid
        else out.items.reserve(count);
        seen.reserve(count);
        auto flag = [&out](std::string reason) {
            if (out.complete) out.incomplete_reason = std::move(reason);
            out.complete = false;
        };
        std::size_t kept = 0;
        for (std::size_t i = 0; i < pages_.size(); ++i) {
            if (pages_[i]->total != total)
                flag(fmt::format("total changed from {} to {} while paging (page={})", total, pages_[i]->total, i + 1));
            const auto items = page_items(i, in_place ? out.items : slots_);
            for (auto& g : items) {
                if (!seen.insert(g.id).second) {
                    flag(fmt::format("id {} listed twice (page={})", g.id, i + 1));
                    continue;
                }
                if (!in_place) out.items.push_back(std::move(g));
                else if (&out.items[kept] != &g) out.items[kept] = std::move(g);
                ++kept;
            }
        }
        if (in_place) out.items.erase(out.items.begin() + static_cast<std::ptrdiff_t>(kept), out.items.end());
        if (static_cast<std::int64_t>(out.items.size()) != total)
            flag(fmt::format("listed {} distinct items but total is {}", out.items.size(), total));
        return out;
    }

    const fetch_context& ctx_;
    const config::endpoint& ep_;
    // Beyond this many items (344 MB of slots) a listing is assembled from its pages:
    // a bogus `total` must not allocate before any item arrived.
    static constexpr std::int64_t max_slot_items = 1'000'000;

    std::vector<std::optional<groups_page>> pages_;
    std::vector<bool> placed_;
    std::vector<purchased_group> slots_;
    int next_ = 2;
    int done_ = 0;
    std::optional<error> failure_;
};

}  // namespace

asio::awaitable<result<listing<purchased_group>>> fetch_purchased_groups(const fetch_context& ctx) {
    auto first = co_await group_pager(ctx, 1).run();
    if (!first || first->complete) co_return first;
    // The tenant's data may have moved while we paged (a purchase added or expired):
    // one fresh pass usually settles it. A second inconsistent pass is reported.
    spdlog::warn("inconsistent listing account={} source=purchased_groups reason=\"{}\": fetching again from page 1",
                 ctx.account->name, first->incomplete_reason);
    auto second = co_await group_pager(ctx, 1).run();
    if (second && !second->complete) second->incomplete_reason += " (also after fetching again from page 1)";
    co_return second;
}

asio::awaitable<result<listing<subscription_resource>>> fetch_subscriptions(const fetch_context& ctx) {
    const auto& ep = ctx.account->secmaster_endpoint;
    auto conn = ctx.request.net->connect(ep);
    http_request req;
    req.target = ep.base_path + "/v1/subscriptions/orders";
    req.headers.push_back({"X-Language", ctx.account->language});
    auto res = co_await get_ok(ctx, *conn, ep, std::move(req), "page=1");
    if (!res) co_return res.error();
    auto parsed = body_parser{}.orders(res->body);
    if (!parsed) co_return located(parsed.error(), "page=1");
    if (ctx.on_page) ctx.on_page(1, 1);

    listing<subscription_resource> out;
    out.pages = 1;
    std::unordered_set<std::string> seen;
    for (auto& r : *parsed) {
        if (!seen.insert(item_key(r)).second) {
            if (out.complete) out.incomplete_reason = fmt::format("resource {} listed twice", item_key(r));
            out.complete = false;
            continue;
        }
        out.items.push_back(std::move(r));
    }
    out.total = static_cast<std::int64_t>(out.items.size());
    co_return out;
}

}  // namespace subsync::sync
