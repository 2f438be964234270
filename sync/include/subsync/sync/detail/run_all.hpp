#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <vector>

namespace subsync::sync::detail {

/// Runs make_task(0..n-1) concurrently on `ex` and waits for all of them.
/// Cancelling the caller cancels every task; the first exception is rethrown
/// once all have finished, so no task outlives the data it borrows.
template <class MakeTask>
boost::asio::awaitable<void> run_all(boost::asio::any_io_executor ex, std::size_t n, MakeTask make_task) {
    namespace asio = boost::asio;
    if (n == 0) co_return;  // an empty parallel group would never complete
    using op = decltype(asio::co_spawn(ex, make_task(std::size_t{0}), asio::deferred));
    std::vector<op> ops;
    ops.reserve(n);
    for (std::size_t i = 0; i < n; ++i) ops.push_back(asio::co_spawn(ex, make_task(i), asio::deferred));
    auto [order, exceptions] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                   .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    for (auto& e : exceptions)
        if (e) std::rethrow_exception(e);
}

}  // namespace subsync::sync::detail
