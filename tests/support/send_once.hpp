#pragma once
// One request on an http_connection, run to its end on `io`: for tests that talk to the
// emulator below the sync engine.

#include <subsync/sync/http_client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

namespace subsync::test {

inline sync::result<sync::http_response> send_once(boost::asio::io_context& io, sync::http_connection& conn,
                                                   const sync::http_request& req) {
    std::optional<sync::result<sync::http_response>> out;
    boost::asio::co_spawn(io, conn.send(req), [&](std::exception_ptr e, sync::result<sync::http_response> r) {
        if (e) std::rethrow_exception(e);
        out = std::move(r);
    });
    io.restart();
    io.run();
    if (!out) throw std::logic_error("send_once: the request did not finish");
    return std::move(*out);
}

}  // namespace subsync::test
