// The emulator over real loopback sockets, seen by a small synchronous Beast client that
// verifies the emulator's certificate like subsyncd does.

#include "subsync/emulator/server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace emu = subsync::emulator;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::string_view purchases_path = "/v1.0/apigw/purchases/groups";
constexpr std::string_view orders_path = "/v1/subscriptions/orders";

using header_list = std::vector<std::pair<std::string, std::string>>;

header_list token_only() { return {{"X-Auth-Token", "emulator-token"}}; }
header_list orders_headers() { return {{"X-Auth-Token", "emulator-token"}, {"X-Language", "en-us"}}; }

struct reply {
    unsigned status = 0;
    std::string body;
    std::string request_id;
    std::string content_type;
};

// One keep-alive connection. TLS when `ca_pem` is set: peer verified against it, host name
// checked (IP SAN for 127.0.0.1, DNS SAN plus SNI for a name).
class client {
public:
    client(std::uint16_t port, const std::optional<std::string>& ca_pem, const std::string& host = "127.0.0.1")
        : tls_context_(ssl::context::tls_client) {
        const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
        if (!ca_pem) {
            plain_.emplace(ioc_);
            plain_->connect(endpoint);
            return;
        }
        tls_context_.add_certificate_authority(asio::buffer(*ca_pem));
        tls_context_.set_verify_mode(ssl::verify_peer);
        tls_.emplace(ioc_, tls_context_);
        tls_->set_verify_callback(ssl::host_name_verification(host));
        if (host != "127.0.0.1") {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
            if (SSL_set_tlsext_host_name(tls_->native_handle(), host.c_str()) != 1) {
#pragma GCC diagnostic pop
                throw std::runtime_error("SNI " + host);
            }
        }
        beast::get_lowest_layer(*tls_).connect(endpoint);
        tls_->handshake(ssl::stream_base::client);
    }

    reply get(std::string_view target, const header_list& headers, http::verb verb = http::verb::get) {
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "127.0.0.1");
        for (const auto& [name, value] : headers) {
            req.set(name, value);
        }
        req.prepare_payload();
        http::response<http::string_body> res;
        if (tls_) {
            http::write(*tls_, req);
            http::read(*tls_, buffer_, res);
        } else {
            http::write(*plain_, req);
            http::read(*plain_, buffer_, res);
        }
        return {res.result_int(), res.body(), std::string(res["X-Request-Id"]),
                std::string(res[http::field::content_type])};
    }

private:
    asio::io_context ioc_;
    ssl::context tls_context_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
    std::optional<beast::tcp_stream> plain_;
    beast::flat_buffer buffer_;
};

std::unique_ptr<client> connect(const emu::server& server) {
    const bool tls = server.base_url().starts_with("https://");
    return std::make_unique<client>(server.port(),
                                    tls ? std::optional<std::string>(server.cert_pem()) : std::nullopt);
}

std::unique_ptr<emu::server> start(emu::options opts = {}, emu::dataset data = emu::dataset::seeds()) {
    auto server = std::make_unique<emu::server>(std::move(opts), std::move(data));
    server->start();
    return server;
}

std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4U]);
            out.push_back(hex[u & 0x0FU]);
        }
    }
    return out;
}

std::string page_target(int page_size, int page_no) {
    return std::string(purchases_path) + "?page_size=" + std::to_string(page_size) +
           "&page_no=" + std::to_string(page_no);
}

// A parsed body; the parser must outlive the element, so both travel together.
struct parsed {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
};

std::unique_ptr<parsed> parse(const std::string& body) {
    auto out = std::make_unique<parsed>();
    const auto error = out->parser.parse(body).get(out->root);
    EXPECT_EQ(error, simdjson::SUCCESS) << simdjson::error_message(error) << " in " << body;
    return out;
}

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

std::string expected_page(const std::vector<emu::purchase>& all, std::size_t total) {
    std::string out = "{\"total\":" + std::to_string(total) + ",\"size\":" + std::to_string(all.size()) +
                      ",\"purchases\":[";
    for (std::size_t i = 0; i < all.size(); ++i) {
        out += (i == 0 ? "" : ",") + all[i].json;
    }
    return out + "]}";
}

TEST(Emulator, ServesSeedPurchasesExactly) {
    const auto server = start();
    auto c = connect(*server);
    const reply r = c->get(purchases_path, token_only());
    ASSERT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(r.content_type, "application/json;charset=UTF-8");
    EXPECT_EQ(r.request_id.size(), 32U);
    EXPECT_EQ(r.body, expected_page(emu::dataset::seeds().purchases, 3));

    const auto doc = parse(r.body);
    EXPECT_EQ(int64_t(doc->root["total"]), 3);
    EXPECT_EQ(int64_t(doc->root["size"]), 3);
    const auto first = doc->root["purchases"].at(0);
    EXPECT_EQ(str(first["id"]), "615af8d9-f31d-4cdf-8807-b191dc969a07");
    EXPECT_EQ(str(first["group_name"]), "api_group_003");
    EXPECT_TRUE(first["group_domains"].is_null());
    EXPECT_EQ(int64_t(first["quota_left"]), 2000000000);
    EXPECT_EQ(str(first["order_time"]), "2017-12-29T06:22:46Z");
    EXPECT_EQ(str(first["app_secret"]), "******");
    EXPECT_EQ(str(doc->root["purchases"].at(2)["order_time"]), "2017-12-29T06:16:03Z");
}

TEST(Emulator, ServesSeedOrdersWithNullRegionAddition) {
    const auto server = start();
    auto c = connect(*server);
    const reply r = c->get(orders_path, orders_headers());
    ASSERT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(r.body, emu::dataset::seeds().orders_json);
    EXPECT_EQ(r.content_type, "application/json;charset=UTF-8");

    const auto doc = parse(r.body);
    const auto seed = doc->root["resources"].at(0);
    EXPECT_EQ(str(seed["region_id"]), "demo-region");
    EXPECT_EQ(str(seed["project_id"]), "15645222e8744afa985c93dab6341da6");
    const auto resource = seed["resources"].at(0);
    EXPECT_EQ(str(resource["order_id"]), "CS2510212051NLDL4");
    EXPECT_EQ(int64_t(resource["create_time"]), 1765349400000);
    EXPECT_EQ(int64_t(resource["expire_time"]), 1796885400000);
    EXPECT_EQ(str(resource["tag_list"].at(0)["value"]), "dev");

    const auto added = doc->root["resources"].at(1);
    EXPECT_TRUE(added["region_id"].is_null());
    const auto postpaid = added["resources"].at(0);
    EXPECT_EQ(str(postpaid["charging_mode"]), "POSTPAID");
    EXPECT_EQ(postpaid["expire_time"].error(), simdjson::NO_SUCH_FIELD);
    EXPECT_EQ(postpaid["order_id"].error(), simdjson::NO_SUCH_FIELD);
    EXPECT_EQ(simdjson::dom::array(postpaid["tag_list"]).size(), 0U);
}

TEST(Emulator, PagesCountTotalAndSize) {
    const auto data = emu::dataset::generated(45, 3, 11);
    const auto server = start({}, data);
    auto c = connect(*server);
    struct paging_case {
        const char* name;
        std::string target;
        std::size_t first, size;
    };
    const paging_case cases[] = {
        {"defaults are page 1 of 20", std::string(purchases_path), 0, 20},
        {"first page", page_target(20, 1), 0, 20},
        {"last partial page", page_target(20, 3), 40, 5},
        {"past the end", page_target(20, 4), 45, 0},
        {"far past the end", std::string(purchases_path) + "?page_no=9223372036854775807&page_size=500", 45, 0},
        {"maximum page size", page_target(500, 1), 0, 45},
        {"page size 1", page_target(1, 7), 6, 1},
        {"empty values are absent", std::string(purchases_path) + "?page_size=&page_no=", 0, 20},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        const reply r = c->get(k.target, token_only());
        ASSERT_EQ(r.status, 200U) << r.body;
        const std::vector<emu::purchase> page(data.purchases.begin() + static_cast<std::ptrdiff_t>(k.first),
                                              data.purchases.begin() + static_cast<std::ptrdiff_t>(k.first + k.size));
        EXPECT_EQ(r.body, expected_page(page, 45));
    }
}

TEST(Emulator, FiltersMatchExactDecodedValues) {
    const auto data = emu::dataset::generated(30, 0, 5);
    const auto server = start({}, data);
    auto c = connect(*server);

    std::map<std::string, std::vector<std::string>> ids_by_name;  // awkward names, some shared
    for (const auto& p : data.purchases) {
        ids_by_name[p.group_name].push_back(p.id);
    }
    for (const auto& [name, ids] : ids_by_name) {
        SCOPED_TRACE(name);
        const reply r = c->get(std::string(purchases_path) + "?group_name=" + percent_encode(name), token_only());
        ASSERT_EQ(r.status, 200U) << r.body;
        const auto doc = parse(r.body);
        EXPECT_EQ(uint64_t(doc->root["total"]), ids.size());
        std::vector<std::string> got;
        for (const auto p : simdjson::dom::array(doc->root["purchases"])) {
            got.push_back(str(p["id"]));
            EXPECT_EQ(str(p["group_name"]), name);
        }
        EXPECT_EQ(got, ids);
    }

    const auto& sample = data.purchases[4];  // purchase 4 repeats the group of purchase 2
    const reply by_group = c->get(std::string(purchases_path) + "?group_id=" + sample.group_id, token_only());
    EXPECT_EQ(by_group.body, expected_page({data.purchases[2], data.purchases[4]}, 2));
    const reply by_id = c->get(std::string(purchases_path) + "?id=" + sample.id, token_only());
    EXPECT_EQ(by_id.body, expected_page({sample}, 1));
    const reply none = c->get(std::string(purchases_path) + "?id=" + sample.id + "&group_id=" +
                                 data.purchases[0].group_id, token_only());
    EXPECT_EQ(none.body, R"({"total":0,"size":0,"purchases":[]})");
    // '+' is a space in a query: an unencoded "+SUM" does not match "+SUM(1,2) group 2".
    const reply raw_plus = c->get(std::string(purchases_path) + "?group_name=+SUM(1,2)%20group%202", token_only());
    EXPECT_EQ(raw_plus.body, R"({"total":0,"size":0,"purchases":[]})");
}

TEST(Emulator, RejectsBadParametersWithApig0201) {
    const auto server = start();
    auto c = connect(*server);
    const std::string base = std::string(purchases_path) + "?";
    for (const std::string query : {"page_size=0", "page_size=501", "page_size=x", "page_size=1.5", "page_size=-1",
                                    "page_size=%2B5", "page_no=0", "page_no=-3", "page_no=abc",
                                    "page_no=99999999999999999999", "group_name=%ZZ", "page_size=%4"}) {
        SCOPED_TRACE(query);
        const reply r = c->get(base + query, token_only());
        EXPECT_EQ(r.status, 400U);
        const auto doc = parse(r.body);
        EXPECT_EQ(str(doc->root["error_code"]), "APIG.0201");
        EXPECT_THAT(str(doc->root["error_msg"]), HasSubstr("Invalid parameter value"));
        EXPECT_EQ(str(doc->root["request_id"]), r.request_id);
    }
}

TEST(Emulator, RejectsMissingOrWrongToken) {
    const auto server = start();
    auto c = connect(*server);
    for (const auto& headers : {header_list{}, header_list{{"X-Auth-Token", "nope"}}, header_list{{"X-Auth-Token", ""}}}) {
        const reply purchases = c->get(purchases_path, headers);
        EXPECT_EQ(purchases.status, 401U);
        EXPECT_EQ(purchases.body, R"({"error_code":"APIG.0301","error_msg":"Incorrect token or token resolution failed","request_id":")" +
                                      purchases.request_id + R"("})");
        auto with_language = headers;
        with_language.emplace_back("X-Language", "zh-cn");
        const reply orders = c->get(orders_path, with_language);
        EXPECT_EQ(orders.status, 401U);
        EXPECT_EQ(str(parse(orders.body)->root["error_code"]), "SecMaster.20010001");
    }
    emu::options custom;
    custom.token = "other";
    const auto other = start(custom);
    auto c2 = connect(*other);
    EXPECT_EQ(c2->get(purchases_path, token_only()).status, 401U);
    EXPECT_EQ(c2->get(purchases_path, {{"X-Auth-Token", "other"}}).status, 200U);
}

TEST(Emulator, OrdersNeedXLanguage) {
    const auto server = start();
    auto c = connect(*server);
    const struct {
        const char* name;
        header_list headers;
        unsigned status;
    } cases[] = {
        {"missing", token_only(), 400},
        {"unknown", {{"X-Auth-Token", "emulator-token"}, {"X-Language", "fr-fr"}}, 400},
        {"zh-cn", {{"X-Auth-Token", "emulator-token"}, {"X-Language", "zh-cn"}}, 200},
        {"en-us", orders_headers(), 200},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        const reply r = c->get(orders_path, k.headers);
        EXPECT_EQ(r.status, k.status) << r.body;
        if (k.status == 400) {
            EXPECT_THAT(str(parse(r.body)->root["error_code"]), StartsWith("SecMaster."));
            EXPECT_THAT(str(parse(r.body)->root["error_msg"]), HasSubstr("X-Language"));
        }
    }
}

TEST(Emulator, UnknownPathIs404AndOtherMethods405) {
    const auto server = start();
    auto c = connect(*server);
    const reply missing = c->get("/v1.0/apigw/purchases", token_only());
    EXPECT_EQ(missing.status, 404U);
    EXPECT_EQ(str(parse(missing.body)->root["error_code"]), "APIG.0101");
    const reply post = c->get(purchases_path, token_only(), http::verb::post);
    EXPECT_EQ(post.status, 405U);
    EXPECT_EQ(post.content_type, "application/json;charset=UTF-8");
    EXPECT_EQ(c->get(purchases_path, token_only()).status, 200U);  // still usable after errors
}

TEST(Emulator, KeepsConnectionsAlive) {
    const auto server = start();
    auto c = connect(*server);
    const reply first = c->get(purchases_path, token_only());
    const reply second = c->get(orders_path, orders_headers());
    EXPECT_EQ(first.status, 200U);
    EXPECT_EQ(second.status, 200U);
    EXPECT_NE(first.request_id, second.request_id);
    const emu::stats s = server->get_stats();
    EXPECT_EQ(s.connections, 1U);
    EXPECT_EQ(s.requests, 2U);
    EXPECT_EQ(s.purchases_requests, 1U);
    EXPECT_EQ(s.orders_requests, 1U);
    EXPECT_EQ(s.max_in_flight, 1U);
    server->reset_stats();
    EXPECT_EQ(server->get_stats().requests, 0U);
}

TEST(Emulator, InjectsFaultsUntilCleared) {
    const auto server = start({}, emu::dataset::generated(45, 2, 3));
    server->fail_page(2, 503);
    server->fail_orders(500);
    auto c = connect(*server);
    EXPECT_EQ(c->get(page_target(20, 1), token_only()).status, 200U);
    const reply failed = c->get(page_target(20, 2), token_only());
    EXPECT_EQ(failed.status, 503U);
    EXPECT_THAT(str(parse(failed.body)->root["error_code"]), StartsWith("APIG."));
    const reply orders = c->get(orders_path, orders_headers());
    EXPECT_EQ(orders.status, 500U);
    EXPECT_THAT(str(parse(orders.body)->root["error_code"]), StartsWith("SecMaster."));
    server->fail_page(3, 429);
    EXPECT_EQ(str(parse(c->get(page_target(20, 3), token_only()).body)->root["error_code"]), "APIG.0308");

    server->clear_faults();
    EXPECT_EQ(c->get(page_target(20, 2), token_only()).status, 200U);
    EXPECT_EQ(c->get(orders_path, orders_headers()).status, 200U);
}

TEST(Emulator, SwapsDatasetForNextRequest) {
    const auto server = start();
    auto c = connect(*server);
    EXPECT_EQ(int64_t(parse(c->get(purchases_path, token_only()).body)->root["total"]), 3);
    server->set_dataset(emu::dataset::generated(7, 1, 1));
    EXPECT_EQ(int64_t(parse(c->get(purchases_path, token_only()).body)->root["total"]), 7);
    EXPECT_EQ(server->current_dataset().purchases.size(), 7U);
}

TEST(Emulator, GeneratedIsDeterministic) {
    const auto a = emu::dataset::generated(50, 20, 42);
    const auto b = emu::dataset::generated(50, 20, 42);
    const auto other = emu::dataset::generated(50, 20, 43);
    EXPECT_EQ(a.to_json(), b.to_json());
    ASSERT_EQ(other.purchases.size(), 50U);
    EXPECT_NE(a.to_json(), other.to_json());
    EXPECT_NE(a.purchases[0].id, other.purchases[0].id);
    EXPECT_NE(a.orders_json, other.orders_json);
    EXPECT_EQ(a.resource_count(), 20U);
    EXPECT_EQ(a.resource_group_count(), 5U);
}

TEST(Emulator, GeneratedJsonIsValidAndAwkward) {
    const auto data = emu::dataset::generated(20, 10, 7);  // the documented minimum for full coverage
    std::set<std::string> ids;
    std::set<char> leading;
    bool cjk = false, emoji = false, quote = false, comma = false, crlf = false, control = false;
    bool null_remark = false, null_domains = false, array_domains = false, max_quota = false, above_double = false;
    simdjson::dom::parser parser;
    for (const auto& p : data.purchases) {
        SCOPED_TRACE(p.json);
        simdjson::dom::element e;
        ASSERT_EQ(parser.parse(p.json).get(e), simdjson::SUCCESS);
        EXPECT_EQ(str(e["id"]), p.id);
        EXPECT_EQ(str(e["group_id"]), p.group_id);
        EXPECT_EQ(str(e["group_name"]), p.group_name);
        ids.insert(p.id);
        for (const char* key : {"order_time", "start_time", "expire_time"}) {
            const std::string t = str(e[key]);
            ASSERT_EQ(t.size(), 20U) << key;
            EXPECT_TRUE(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' && t[19] == 'Z');
            EXPECT_GE(t.substr(0, 4), "2022");
            EXPECT_LE(t.substr(0, 4), "2027");
        }
        const std::string name = p.group_name;
        leading.insert(name.front());
        cjk |= name.find("中文") != std::string::npos;
        emoji |= name.find("🚀") != std::string::npos;
        quote |= name.find('"') != std::string::npos;
        comma |= name.find(',') != std::string::npos;
        crlf |= name.find("\r\n") != std::string::npos;
        null_remark |= e["group_remark"].is_null();
        if (e["group_remark"].is_string()) {
            control |= str(e["group_remark"]).find('\x1f') != std::string::npos;
        }
        null_domains |= e["group_domains"].is_null();
        array_domains |= e["group_domains"].is_array();
        max_quota |= int64_t(e["quota_left"]) == INT64_MAX;
        above_double |= int64_t(e["quota_left"]) == (int64_t{1} << 53) + 1;
        EXPECT_GE(int64_t(e["quota_used"]), 0);
    }
    EXPECT_EQ(ids.size(), data.purchases.size());
    for (const char c : {'=', '+', '-', '@', ' '}) {
        EXPECT_EQ(leading.count(c), 1U) << "no group_name starting with '" << c << "'";
    }
    EXPECT_TRUE(cjk && emoji && quote && comma && crlf && control);
    EXPECT_TRUE(null_remark && null_domains && array_domains && max_quota && above_double);

    const auto doc = parse(data.orders_json);
    bool null_region = false, no_expire = false, no_order = false, empty_tags = false, tags = false;
    std::set<std::string> resource_ids;
    for (const auto group : simdjson::dom::array(doc->root["resources"])) {
        null_region |= group["region_id"].is_null();
        EXPECT_EQ(str(group["project_id"]).size(), 32U);
        for (const auto r : simdjson::dom::array(group["resources"])) {
            resource_ids.insert(str(r["resource_id"]));
            no_expire |= r["expire_time"].error() == simdjson::NO_SUCH_FIELD;
            no_order |= r["order_id"].error() == simdjson::NO_SUCH_FIELD;
            const auto tag_count = simdjson::dom::array(r["tag_list"]).size();
            empty_tags |= tag_count == 0;
            tags |= tag_count > 1;
            EXPECT_EQ(int64_t(r["resource_status"]), 0);
        }
    }
    EXPECT_EQ(resource_ids.size(), 10U);
    EXPECT_TRUE(null_region && no_expire && no_order && empty_tags && tags);
}

TEST(Emulator, LatencyOverlapsConcurrentRequests) {
    emu::options opts;
    opts.latency = std::chrono::milliseconds(100);
    const auto server = start(opts);
    std::vector<std::unique_ptr<client>> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(connect(*server));  // connected and handshaken before the race starts
    }
    std::latch ready(4);
    std::vector<unsigned> statuses(4);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        threads.emplace_back([&, i] {
            ready.arrive_and_wait();
            statuses[i] = clients[i]->get(purchases_path, token_only()).status;
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(statuses, std::vector<unsigned>(4, 200U));
    EXPECT_GE(server->get_stats().max_in_flight, 2U);
    EXPECT_EQ(server->get_stats().connections, 4U);
}

TEST(Emulator, ServesPlainHttp) {
    emu::options opts;
    opts.tls = false;
    const auto server = start(opts);
    EXPECT_EQ(server->base_url(), "http://127.0.0.1:" + std::to_string(server->port()));
    EXPECT_TRUE(server->cert_pem().empty());
    auto c = connect(*server);
    EXPECT_EQ(c->get(purchases_path, token_only()).body, expected_page(emu::dataset::seeds().purchases, 3));
}

TEST(Emulator, CertificateNamesLocalhostAndIsVerified) {
    const auto server = start();
    EXPECT_EQ(server->base_url(), "https://127.0.0.1:" + std::to_string(server->port()));
    EXPECT_THAT(server->cert_pem(), StartsWith("-----BEGIN CERTIFICATE-----"));
    client by_name(server->port(), server->cert_pem(), "localhost");
    EXPECT_EQ(by_name.get(purchases_path, token_only()).status, 200U);

    const auto stranger = start();  // its own fresh certificate, which `server` does not hold
    EXPECT_THROW(client(server->port(), stranger->cert_pem()), boost::system::system_error);
    EXPECT_THROW(client(server->port(), server->cert_pem(), "example.com"), boost::system::system_error);
}

TEST(Emulator, StopsWithIdleConnectionsOpen) {
    auto server = start();
    auto c = connect(*server);
    EXPECT_EQ(c->get(purchases_path, token_only()).status, 200U);
    const auto before = std::chrono::steady_clock::now();
    server->stop();  // must not wait for the 30 s idle timeout
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(4));
    server->stop();  // idempotent
    EXPECT_THROW(c->get(purchases_path, token_only()), boost::system::system_error);
}

TEST(Emulator, StopCancelsHandshakesAndDelayedResponses) {
    emu::options opts;
    opts.latency = std::chrono::seconds(30);
    auto server = start(opts);
    asio::io_context ioc;
    asio::ip::tcp::socket silent(ioc);  // connected, never says hello
    silent.connect({asio::ip::make_address("127.0.0.1"), server->port()});
    auto waiting = connect(*server);
    std::thread request([&] {
        EXPECT_THROW(waiting->get(purchases_path, token_only()), boost::system::system_error);
    });
    while (server->get_stats().requests == 0) {  // the request is read, its response delayed
        std::this_thread::yield();
    }
    const auto before = std::chrono::steady_clock::now();
    server->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(4));
    request.join();
    EXPECT_EQ(server->get_stats().connections, 2U);
}

TEST(Emulator, ClosesIdleConnections) {
    emu::options opts;
    opts.tls = false;
    opts.idle_timeout = std::chrono::milliseconds(200);
    const auto server = start(opts);
    asio::io_context ioc;
    asio::ip::tcp::socket idle(ioc);
    idle.connect({asio::ip::make_address("127.0.0.1"), server->port()});
    std::array<char, 1> byte{};
    boost::system::error_code ec;
    idle.read_some(asio::buffer(byte), ec);  // returns when the emulator gives up on us
    EXPECT_EQ(ec, asio::error::eof);
}

TEST(Emulator, AnswersOversizedBodiesWith413) {
    emu::options opts;
    opts.tls = false;
    opts.body_limit = 16;
    const auto server = start(opts);
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.connect({asio::ip::make_address("127.0.0.1"), server->port()});
    http::request<http::string_body> req{http::verb::post, purchases_path, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = std::string(64, 'x');
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    EXPECT_EQ(res.result_int(), 413U);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_EQ(str(parse(res.body())->root["error_code"]), "APIG.0201");
}

class temp_dir {
public:
    temp_dir() : path_(std::filesystem::temp_directory_path() / ("emulator_test_" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        const auto file = path_ / name;
        std::ofstream(file, std::ios::binary) << text;
        return file;
    }

private:
    std::filesystem::path path_;
};

TEST(Emulator, DatasetFileRoundTrips) {
    const temp_dir dir;
    const auto data = emu::dataset::generated(25, 8, 9);
    // Pretty-printed input: whitespace goes, number spellings stay.
    const auto file = dir.write("data.json", "{\n  \"orders\": {\"resources\": [ ]},\n  \"purchases\": [\n" +
                                                 data.purchases[0].json + ",\n  {\"id\": \"x\", \"group_id\": "
                                                 "\"g\", \"group_name\": \"n\", \"quota_left\": 1.50}\n]}\n");
    const auto loaded = emu::dataset::from_file(file);
    ASSERT_EQ(loaded.purchases.size(), 2U);
    EXPECT_EQ(loaded.purchases[0].json, data.purchases[0].json);
    EXPECT_EQ(loaded.purchases[0].group_name, data.purchases[0].group_name);
    EXPECT_EQ(loaded.purchases[1].json, R"({"id":"x","group_id":"g","group_name":"n","quota_left":1.50})");
    EXPECT_EQ(loaded.orders_json, R"({"resources":[]})");

    const auto again = emu::dataset::from_file(dir.write("full.json", data.to_json()));
    EXPECT_EQ(again.to_json(), data.to_json());
}

TEST(Emulator, DatasetFileErrorsNameFileAndProblem) {
    const temp_dir dir;
    const struct {
        const char* name;
        std::string text;
        std::string problem;
    } cases[] = {
        {"syntax", "{\"purchases\": [", "invalid JSON"},
        {"not an object", "[]", "expected an object"},
        {"no purchases", R"({"orders":{}})", "\"purchases\": expected an array"},
        {"no orders", R"({"purchases":[]})", "\"orders\": expected an object"},
        {"purchase without id", R"({"purchases":[{"group_id":"g","group_name":"n"}],"orders":{}})",
         "purchases[0].id: expected a string"},
        {"duplicate id",
         R"({"purchases":[{"id":"a","group_id":"g","group_name":"n"},{"id":"a","group_id":"g","group_name":"n"}],"orders":{}})",
         "purchases[1].id: duplicate \"a\""},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        const auto file = dir.write("bad.json", k.text);
        try {
            (void)emu::dataset::from_file(file);
            ADD_FAILURE() << "no exception";
        } catch (const std::runtime_error& e) {
            EXPECT_THAT(e.what(), StartsWith(file.string() + ": "));
            EXPECT_THAT(e.what(), HasSubstr(k.problem));
        }
    }
    try {
        (void)emu::dataset::from_file(dir.path() / "missing.json");
        ADD_FAILURE() << "no exception for a missing file";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("missing.json: cannot read"));
    }
}

}  // namespace
