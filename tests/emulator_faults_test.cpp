// The emulator's switchable faults over real loopback: counted failures with Retry-After, resets
// mid-body, stalls, malformed 200s, a dataset that changes between pages, and the per-page
// counters tests use to assert how often a client tried.

#include "emulator/testing/client.hpp"
#include "subsync/emulator/server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

namespace emu = subsync::emulator;
namespace asio = boost::asio;
namespace beast = boost::beast;
using emu::testing::client;
using emu::testing::header_list;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr std::string_view purchases_path = "/v1.0/apigw/purchases/groups";
constexpr std::string_view orders_path = "/v1/subscriptions/orders";

header_list token() { return {{"X-Auth-Token", "emulator-token"}}; }
header_list orders_headers() { return {{"X-Auth-Token", "emulator-token"}, {"X-Language", "en-us"}}; }

std::string page(int page_no, int page_size = 20) {
    return std::string(purchases_path) + "?page_size=" + std::to_string(page_size) +
           "&page_no=" + std::to_string(page_no);
}

std::unique_ptr<emu::server> start(emu::dataset data = emu::dataset::generated(45, 3, 3), bool tls = true) {
    emu::options opts;
    opts.tls = tls;
    auto server = std::make_unique<emu::server>(std::move(opts), std::move(data));
    server->start();
    return server;
}

struct parsed {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    simdjson::error_code error = simdjson::SUCCESS;
};

std::unique_ptr<parsed> parse(const std::string& body) {
    auto out = std::make_unique<parsed>();
    out->error = out->parser.parse(body).get(out->root);
    return out;
}

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

TEST(EmulatorFaults, FailsAPageNTimesThenServesIt) {
    const auto server = start();
    client c(*server);
    server->fail_page_times(2, 503, 2);
    EXPECT_EQ(c.get(page(1), token()).result_int(), 200U);
    for (int i = 0; i < 2; ++i) {
        const auto res = c.get(page(2), token());
        EXPECT_EQ(res.result_int(), 503U);
        EXPECT_THAT(str(parse(res.body())->root["error_code"]), StartsWith("APIG."));
        EXPECT_EQ(res.find("Retry-After"), res.end());
    }
    EXPECT_EQ(c.get(page(2), token()).result_int(), 200U);
    EXPECT_EQ(c.get(page(2), token()).result_int(), 200U);
    EXPECT_EQ(server->page_requests(1), 1U);
    EXPECT_EQ(server->page_requests(2), 4U);
    EXPECT_EQ(server->page_requests(3), 0U);
    EXPECT_EQ(c.get(purchases_path, token()).result_int(), 200U);  // no page_no is page 1
    EXPECT_EQ(server->page_requests(1), 2U);
    server->reset_stats();
    EXPECT_EQ(server->page_requests(2), 0U);
}

TEST(EmulatorFaults, ThrottlesWithApig0308AndTheGivenRetryAfter) {
    const auto server = start();
    client c(*server);
    const struct {
        const char* name;
        std::string retry_after;
    } cases[] = {
        {"delta seconds", "7"},
        {"HTTP-date", "Wed, 21 Oct 2015 07:28:00 GMT"},
        {"none", ""},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        server->fail_page_times(1, 429, 1, k.retry_after);
        const auto res = c.get(page(1), token());
        EXPECT_EQ(res.result_int(), 429U);
        EXPECT_EQ(str(parse(res.body())->root["error_code"]), "APIG.0308");
        if (k.retry_after.empty()) {
            EXPECT_EQ(res.find("Retry-After"), res.end());
        } else {
            EXPECT_EQ(res["Retry-After"], k.retry_after);
        }
        EXPECT_EQ(c.get(page(1), token()).result_int(), 200U);
    }
}

TEST(EmulatorFaults, FaultsOnlyReplaceWhatWouldHaveBeen200) {
    const auto server = start();
    client c(*server);
    server->fail_page_times(1, 500, 1);
    EXPECT_EQ(c.get(page(1), {{"X-Auth-Token", "wrong"}}).result_int(), 401U);  // the fault is not used up
    EXPECT_EQ(c.get(std::string(purchases_path) + "?page_no=1&page_size=0", token()).result_int(), 400U);
    EXPECT_EQ(c.get(page(1), token()).result_int(), 500U);
    EXPECT_EQ(c.get(page(1), token()).result_int(), 200U);
    EXPECT_EQ(server->page_requests(1), 4U);  // any outcome
}

// Reads what the emulator sends on a fresh plain connection until it goes away.
std::string raw_exchange(const emu::server& server, std::string_view target, boost::system::error_code& end) {
    asio::io_context ioc;
    asio::ip::tcp::socket socket(ioc);
    socket.connect({asio::ip::make_address("127.0.0.1"), server.port()});
    const std::string request = "GET " + std::string(target) +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: emulator-token\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string received;
    std::array<char, 4096> chunk{};
    for (;;) {
        const std::size_t n = socket.read_some(asio::buffer(chunk), end);
        received.append(chunk.data(), n);
        if (end) {
            return received;
        }
    }
}

TEST(EmulatorFaults, ResetsMidBodyAfterHeadersWithFullContentLength) {
    const auto server = start(emu::dataset::generated(45, 3, 3), false);
    server->reset_page(1, 1);
    boost::system::error_code end;
    const std::string received = raw_exchange(*server, page(1), end);
    EXPECT_EQ(end, asio::error::connection_reset);
    ASSERT_THAT(received, StartsWith("HTTP/1.1 200 OK\r\n"));
    const auto header_end = received.find("\r\n\r\n");
    ASSERT_NE(header_end, std::string::npos);
    const auto length_at = received.find("Content-Length: ");
    ASSERT_LT(length_at, header_end);
    const std::size_t content_length = std::stoul(received.substr(length_at + 16));
    const std::size_t body = received.size() - header_end - 4;
    EXPECT_GT(body, 0U);
    EXPECT_EQ(body, content_length / 2);

    // Used up: the next attempt, on a new connection, gets the whole page.
    client c(*server);
    EXPECT_EQ(c.get(page(1), token()).result_int(), 200U);
    EXPECT_EQ(server->page_requests(1), 2U);
}

TEST(EmulatorFaults, ResetMidBodyFailsATlsClient) {
    const auto server = start();
    server->reset_page(2, 2);
    server->reset_orders(1);
    for (int i = 0; i < 2; ++i) {
        client c(*server);
        EXPECT_THROW(c.get(page(2), token()), boost::system::system_error);
    }
    client c(*server);
    EXPECT_THROW(c.get(orders_path, orders_headers()), boost::system::system_error);
    client again(*server);
    EXPECT_EQ(again.get(page(2), token()).result_int(), 200U);
    EXPECT_EQ(again.get(orders_path, orders_headers()).result_int(), 200U);
    EXPECT_EQ(server->page_requests(2), 3U);
    EXPECT_EQ(server->get_stats().orders_requests, 2U);
}

TEST(EmulatorFaults, StallsUntilTheClientGivesUpAndDoesNotDelayStop) {
    auto server = start();
    server->stall_page(3);
    server->stall_orders();
    client stalled(*server, 200ms);
    try {
        (void)stalled.get(page(3), token());
        ADD_FAILURE() << "a stalled page was answered";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), beast::error::timeout);
    }
    client orders(*server, 200ms);
    EXPECT_THROW(orders.get(orders_path, orders_headers()), boost::system::system_error);
    EXPECT_EQ(server->page_requests(3), 1U);  // read, counted, never answered

    client other(*server);  // the rest keeps working meanwhile
    EXPECT_EQ(other.get(page(2), token()).result_int(), 200U);
    server->clear_faults();
    EXPECT_EQ(other.get(page(3), token()).result_int(), 200U);

    client held(*server, 10s);
    server->stall_page(1);
    std::thread request([&] { EXPECT_THROW(held.get(page(1), token()), boost::system::system_error); });
    while (server->page_requests(1) == 0) {
        std::this_thread::yield();
    }
    const auto before = std::chrono::steady_clock::now();
    server->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 4s);
    request.join();
}

TEST(EmulatorFaults, DripsTheRealBodyAfterTheHeadersUntilCleared) {
    const auto data = emu::dataset::generated(45, 3, 3);
    auto server = start(data, false);
    client c(*server);
    const std::string normal = c.get(page(1), token()).body();
    const std::size_t per_tick = normal.size() / 10 + 1;
    const auto ticks = static_cast<long>((normal.size() + per_tick - 1) / per_tick);
    EXPECT_THROW(server->drip_page(1, 0, 10ms), std::invalid_argument);
    server->drip_page(1, per_tick, 100ms);

    // Raw bytes, to see when the headers come: at once, with the Content-Length of the whole body.
    asio::io_context ioc;
    asio::ip::tcp::socket socket(ioc);
    socket.connect({asio::ip::make_address("127.0.0.1"), server->port()});
    const auto t0 = std::chrono::steady_clock::now();
    const std::string request = "GET " + page(1) +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: emulator-token\r\n"
                                "Connection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string received;
    std::optional<std::size_t> body_with_headers;  // body bytes already there when the headers were complete
    std::array<char, 4096> chunk{};
    boost::system::error_code end;
    while (!end) {
        const std::size_t n = socket.read_some(asio::buffer(chunk), end);
        received.append(chunk.data(), n);
        const auto header_end = received.find("\r\n\r\n");
        if (header_end != std::string::npos && !body_with_headers) {
            body_with_headers = received.size() - header_end - 4;
        }
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(end, asio::error::eof);
    ASSERT_THAT(received, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(received, HasSubstr("Content-Length: " + std::to_string(normal.size()) + "\r\n"));
    const auto header_end = received.find("\r\n\r\n");
    ASSERT_NE(header_end, std::string::npos);
    EXPECT_EQ(received.substr(header_end + 4), normal) << "the real body, whole";
    ASSERT_TRUE(body_with_headers.has_value());
    EXPECT_LT(*body_with_headers, normal.size()) << "the headers came before the body was complete";
    EXPECT_GE(took, ticks * 100ms) << ticks << " ticks of 100 ms";

    // A client whose deadline is shorter than the drip gives up, though bytes keep coming.
    client impatient(*server, 300ms);
    try {
        (void)impatient.get(page(1), token());
        ADD_FAILURE() << "a 1 s drip fitted in a 300 ms deadline";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), beast::error::timeout);
    }

    server->drip_orders(data.orders_json.size() / 4 + 1, 20ms);
    const auto orders_t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(c.get(orders_path, orders_headers()).body(), data.orders_json);
    EXPECT_GE(std::chrono::steady_clock::now() - orders_t0, 4 * 20ms);
    EXPECT_EQ(c.get(page(2), token()).result_int(), 200U);  // other pages are not affected

    server->clear_faults();
    EXPECT_EQ(c.get(page(1), token()).body(), normal);
    EXPECT_EQ(server->page_requests(1), 4U);

    // A drip does not delay stop().
    server->drip_page(3, 1, 1s);
    client held(*server, 10s);
    std::thread dripping([&] { EXPECT_THROW(held.get(page(3), token()), boost::system::system_error); });
    while (server->page_requests(3) == 0) {
        std::this_thread::yield();
    }
    const auto before = std::chrono::steady_clock::now();
    server->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 4s);
    dripping.join();
}

TEST(EmulatorFaults, MalformsA200UntilCleared) {
    const auto data = emu::dataset::generated(45, 3, 3);
    const auto server = start(data);
    client c(*server);
    const std::string normal = c.get(page(1), token()).body();

    server->malform_page(1, emu::malformation::truncated_json);
    for (int i = 0; i < 2; ++i) {
        const auto res = c.get(page(1), token());
        EXPECT_EQ(res.result_int(), 200U);
        EXPECT_EQ(res.body(), normal.substr(0, normal.size() / 2));
        EXPECT_NE(parse(res.body())->error, simdjson::SUCCESS);
    }

    server->malform_page(1, emu::malformation::not_json);
    const auto html = c.get(page(1), token());
    EXPECT_EQ(html.result_int(), 200U);
    EXPECT_EQ(html[beast::http::field::content_type], "text/html");
    EXPECT_THAT(html.body(), StartsWith("<!DOCTYPE html>"));

    server->malform_page(1, emu::malformation::wrong_type);
    const auto typed = parse(c.get(page(1), token()).body());
    ASSERT_EQ(typed->error, simdjson::SUCCESS);
    std::size_t strings = 0;
    for (const auto p : simdjson::dom::array(typed->root["purchases"])) {
        EXPECT_TRUE(p["quota_left"].is_string()) << simdjson::to_string(p);
        EXPECT_TRUE(p["quota_used"].is_int64());
        ++strings;
    }
    EXPECT_EQ(strings, 20U);
    const auto original = parse(normal);
    EXPECT_EQ(str(typed->root["purchases"].at(0)["quota_left"]),
              std::to_string(int64_t(original->root["purchases"].at(0)["quota_left"])));  // same digits, quoted

    server->malform_orders(emu::malformation::wrong_type);
    const auto orders = parse(c.get(orders_path, orders_headers()).body());
    ASSERT_EQ(orders->error, simdjson::SUCCESS);
    for (const auto group : simdjson::dom::array(orders->root["resources"])) {
        for (const auto r : simdjson::dom::array(group["resources"])) {
            EXPECT_TRUE(r["create_time"].is_string());
            EXPECT_FALSE(r["resource_size"].is_string());
        }
    }

    server->clear_faults();
    EXPECT_EQ(c.get(page(1), token()).body(), normal);
    EXPECT_EQ(c.get(orders_path, orders_headers()).body(), data.orders_json);
}

TEST(EmulatorFaults, FailsOrdersNTimesWithRetryAfter) {
    const auto server = start();
    client c(*server);
    server->fail_orders_times(429, 2, "3");
    for (int i = 0; i < 2; ++i) {
        const auto res = c.get(orders_path, orders_headers());
        EXPECT_EQ(res.result_int(), 429U);
        EXPECT_THAT(str(parse(res.body())->root["error_code"]), StartsWith("SecMaster."));
        EXPECT_EQ(res["Retry-After"], "3");
    }
    EXPECT_EQ(c.get(orders_path, orders_headers()).result_int(), 200U);
    EXPECT_EQ(server->get_stats().orders_requests, 3U);
}

TEST(EmulatorFaults, ChangesTheDatasetBetweenPages) {
    const auto before = emu::dataset::generated(45, 3, 3);
    const auto after = emu::dataset::generated(30, 1, 4);
    const auto server = start(before);
    client c(*server);
    server->change_dataset_after_page(1, after);
    const auto total = [&](int page_no) { return int64_t(parse(c.get(page(page_no), token()).body())->root["total"]); };
    EXPECT_EQ(total(1), 45);
    EXPECT_EQ(total(1), 45);  // still before: only a later page triggers the change
    const auto second = parse(c.get(page(2), token()).body());
    EXPECT_EQ(int64_t(second->root["total"]), 30);
    EXPECT_EQ(str(second->root["purchases"].at(0)["id"]), after.purchases[20].id);
    EXPECT_EQ(total(1), 30);  // a listing that starts over sees the new data throughout
    EXPECT_EQ(server->current_dataset().to_json(), after.to_json());

    server->set_dataset(before);
    server->change_dataset_after_page(1, after);
    server->clear_faults();  // cancels the pending change
    EXPECT_EQ(total(2), 45);
}

}  // namespace
