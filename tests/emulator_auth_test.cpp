// The emulator's authentication over real loopback: IAM password tokens, X-Auth-Token expiry,
// AK/SK signatures with the lockout, and the gateway's rate limit. Requests here are signed by a
// few lines written out from shared/refs/huawei-cloud.md, not by the client's signer, so the two
// sides of a signature never share the code that builds it.

#include "emulator/testing/client.hpp"
#include "subsync/emulator/server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <memory>
#include <regex>
#include <string>
#include <thread>

namespace {

namespace emu = subsync::emulator;
using emu::testing::client;
using emu::testing::header_list;
using emu::testing::http::verb;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr std::string_view purchases_path = "/v1.0/apigw/purchases/groups";
constexpr std::string_view orders_path = "/v1/subscriptions/orders";
constexpr std::string_view tokens_path = "/v3/auth/tokens";

std::unique_ptr<emu::server> start(emu::options opts) {
    auto server = std::make_unique<emu::server>(std::move(opts), emu::dataset::seeds());
    server->start();
    return server;
}

struct parsed {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
};

std::unique_ptr<parsed> parse(const std::string& body) {
    auto out = std::make_unique<parsed>();
    const auto error = out->parser.parse(body).get(out->root);
    EXPECT_EQ(error, simdjson::SUCCESS) << body;
    return out;
}

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

// --- IAM ---------------------------------------------------------------------------------------

emu::options with_users(std::chrono::seconds ttl = 86400s) {
    emu::options opts;
    opts.users = {{"alice", "pa:ss w\"rd", "acme"}, {"bob", "secret", "other-corp"}};
    opts.token_ttl = ttl;
    return opts;
}

std::string password_body(std::string_view user, std::string_view password, std::string_view domain,
                          std::string_view scope = R"({"project":{"name":"cn-north-4"}})") {
    const auto quoted = [](std::string_view s) {
        std::string out = "\"";
        for (const char c : s) {
            if (c == '"' || c == '\\') {
                out += '\\';
            }
            out += c;
        }
        return out + "\"";
    };
    return R"({"auth":{"identity":{"methods":["password"],"password":{"user":{"name":)" + quoted(user) +
           R"(,"password":)" + quoted(password) + R"(,"domain":{"name":)" + quoted(domain) + R"(}}}},"scope":)" +
           std::string(scope) + "}}";
}

header_list json_content() { return {{"Content-Type", "application/json;charset=utf8"}}; }

// Seconds since the epoch of an IAM timestamp, after checking its exact shape.
std::int64_t iam_seconds(const std::string& text) {
    EXPECT_TRUE(std::regex_match(text, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"))) << text;
    std::tm tm{};
    if (::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
        ADD_FAILURE() << text;
        return 0;
    }
    return static_cast<std::int64_t>(::timegm(&tm));
}

std::string issue(client& c, std::string_view query = "?nocatalog=true") {
    const auto res = c.send(verb::post, std::string(tokens_path) + std::string(query), json_content(),
                            password_body("alice", "pa:ss w\"rd", "acme"));
    EXPECT_EQ(res.result_int(), 201U) << res.body();
    return std::string(res["X-Subject-Token"]);
}

TEST(EmulatorIam, IssuesProjectScopedTokenInHeader) {
    const auto server = start(with_users(3600s));
    client c(*server);
    const auto res = c.send(verb::post, std::string(tokens_path) + "?nocatalog=true", json_content(),
                            password_body("alice", "pa:ss w\"rd", "acme"));
    ASSERT_EQ(res.result_int(), 201U) << res.body();
    const std::string token(res["X-Subject-Token"]);
    EXPECT_THAT(token, StartsWith("MII"));
    EXPECT_EQ(token.size(), 3003U);
    EXPECT_TRUE(std::regex_match(token, std::regex("MII[A-Za-z0-9+/]+")));

    const auto doc = parse(res.body());
    const auto t = doc->root["token"];
    EXPECT_EQ(iam_seconds(str(t["expires_at"])) - iam_seconds(str(t["issued_at"])), 3600);
    EXPECT_NEAR(static_cast<double>(iam_seconds(str(t["issued_at"]))),
                static_cast<double>(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now())), 60.0);
    EXPECT_EQ(str(t["methods"].at(0)), "password");
    EXPECT_EQ(str(t["project"]["name"]), "cn-north-4");
    EXPECT_TRUE(std::regex_match(str(t["project"]["id"]), std::regex("[0-9a-f]{32}")));
    EXPECT_EQ(str(t["project"]["domain"]["name"]), "acme");
    EXPECT_EQ(str(t["user"]["name"]), "alice");
    EXPECT_EQ(t["catalog"].error(), simdjson::NO_SUCH_FIELD);

    EXPECT_NE(issue(c), token);  // every request gets a fresh token
    EXPECT_EQ(server->get_stats().token_requests, 2U);
}

TEST(EmulatorIam, ScopesByProjectIdOrDomainAndKeepsCatalogUnlessAsked) {
    const auto server = start(with_users());
    client c(*server);
    const auto by_id = c.send(verb::post, tokens_path, json_content(),
                              password_body("bob", "secret", "other-corp", R"({"project":{"id":"0123abcd"}})"));
    ASSERT_EQ(by_id.result_int(), 201U) << by_id.body();
    const auto id_doc = parse(by_id.body());
    EXPECT_EQ(str(id_doc->root["token"]["project"]["id"]), "0123abcd");
    EXPECT_TRUE(id_doc->root["token"]["catalog"].is_array());  // no ?nocatalog=true

    const auto domain = c.send(verb::post, tokens_path, json_content(),
                               password_body("bob", "secret", "other-corp", R"({"domain":{"name":"other-corp"}})"));
    ASSERT_EQ(domain.result_int(), 201U) << domain.body();
    const auto domain_doc = parse(domain.body());
    EXPECT_EQ(str(domain_doc->root["token"]["domain"]["name"]), "other-corp");
    EXPECT_EQ(domain_doc->root["token"]["project"].error(), simdjson::NO_SUCH_FIELD);
}

TEST(EmulatorIam, RejectsWithIamNestedErrors) {
    const auto server = start(with_users());
    client c(*server);
    const std::string wrong = R"({"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}})";
    const struct {
        const char* name;
        verb method;
        std::string body;
        unsigned status;
        std::string expected;  // whole body, or a part of the message
    } cases[] = {
        {"wrong password", verb::post, password_body("alice", "pa:ss", "acme"), 401, wrong},
        {"unknown user", verb::post, password_body("mallory", "pa:ss w\"rd", "acme"), 401, wrong},
        {"user of another domain", verb::post, password_body("alice", "pa:ss w\"rd", "other-corp"), 401, wrong},
        {"domain scope of another account", verb::post,
         password_body("alice", "pa:ss w\"rd", "acme", R"({"domain":{"name":"other-corp"}})"), 401,
         "requires authentication"},
        {"not JSON", verb::post, "{\"auth\":", 400, "not valid JSON"},
        {"token method", verb::post, R"({"auth":{"identity":{"methods":["token"]}}})", 400, "auth.identity.methods"},
        {"no password", verb::post, R"({"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"alice","domain":{"name":"acme"}}}},"scope":{"project":{"name":"x"}}}})",
         400, "auth.identity.password.user.password: expected a non-empty string"},
        {"no scope", verb::post, password_body("alice", "pa:ss w\"rd", "acme", "{}"), 400, "auth.scope"},
        {"GET", verb::get, "", 405, "not allowed"},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        const auto res = c.send(k.method, tokens_path, json_content(), k.body);
        EXPECT_EQ(res.result_int(), k.status);
        EXPECT_EQ(res.find("X-Subject-Token"), res.end());
        if (k.expected.starts_with("{")) {
            EXPECT_EQ(res.body(), k.expected);
        } else {
            const auto doc = parse(res.body());
            EXPECT_EQ(int64_t(doc->root["error"]["code"]), static_cast<std::int64_t>(k.status));
            EXPECT_THAT(str(doc->root["error"]["message"]), HasSubstr(k.expected));
        }
    }
    EXPECT_EQ(server->get_stats().token_requests, std::size(cases));
}

TEST(EmulatorIam, IssuedTokensWorkOnBothApisUntilExpired) {
    const auto server = start(with_users());
    client c(*server);
    const std::string token = issue(c);
    EXPECT_EQ(c.get(purchases_path, {{"X-Auth-Token", token}}).result_int(), 200U);
    EXPECT_EQ(c.get(orders_path, {{"X-Auth-Token", token}, {"X-Language", "en-us"}}).result_int(), 200U);

    server->expire_all_tokens();
    for (const auto& [target, language] : {std::pair{purchases_path, ""}, std::pair{orders_path, "en-us"}}) {
        SCOPED_TRACE(target);
        header_list headers{{"X-Auth-Token", token}};
        if (*language != '\0') {
            headers.emplace_back("X-Language", language);
        }
        const auto res = c.get(target, headers);
        EXPECT_EQ(res.result_int(), 401U);
        const auto doc = parse(res.body());
        EXPECT_EQ(str(doc->root["error_code"]), "APIG.0301");
        EXPECT_EQ(str(doc->root["error_msg"]), "The token expires.");
        EXPECT_EQ(str(doc->root["request_id"]), std::string(res["X-Request-Id"]));
    }
    // Re-authenticating gives a working token; the fixed token never expires.
    EXPECT_EQ(c.get(purchases_path, {{"X-Auth-Token", issue(c)}}).result_int(), 200U);
    EXPECT_EQ(c.get(purchases_path, {{"X-Auth-Token", "emulator-token"}}).result_int(), 200U);
    EXPECT_EQ(c.get(purchases_path, {{"X-Auth-Token", token}}).result_int(), 401U);
}

TEST(EmulatorIam, ZeroTtlTokensAreBornExpired) {
    const auto server = start(with_users(0s));
    client c(*server);
    const auto res = c.get(purchases_path, {{"X-Auth-Token", issue(c)}});
    EXPECT_EQ(res.result_int(), 401U);
    EXPECT_EQ(str(parse(res.body())->root["error_msg"]), "The token expires.");
}

// --- AK/SK -------------------------------------------------------------------------------------

std::string to_hex(const unsigned char* bytes, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[bytes[i] >> 4U];
        out += digits[bytes[i] & 15U];
    }
    return out;
}

std::string sha256_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned n = 0;
    EVP_Digest(data.data(), data.size(), md.data(), &n, EVP_sha256(), nullptr);
    return to_hex(md.data(), n);
}

std::string hmac_hex(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned n = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), md.data(), &n);
    return to_hex(md.data(), n);
}

std::string sdk_date(std::chrono::system_clock::time_point t) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    std::array<char, 20> text{};
    std::strftime(text.data(), text.size(), "%Y%m%dT%H%M%SZ", &tm);
    return text.data();
}

// What to sign. Only paths of unreserved characters and '/', and a query already in canonical
// form (sorted, encoded), so the canonical request can be written out directly.
struct signing {
    std::string path = std::string(purchases_path);
    std::string query{};  ///< canonical; sent as is unless `sent_query` is set
    std::optional<std::string> sent_query{};
    header_list headers{};  ///< lower-case names, all signed, sorted by name among host/x-sdk-date
    std::chrono::system_clock::time_point at = std::chrono::system_clock::now();
    bool sign_host = true;
};

struct signed_get {
    std::string target;
    header_list headers;  ///< to send: `headers`, X-Sdk-Date, Authorization
};

signed_get sign(const signing& s, std::string_view ak, std::string_view sk, std::string_view host) {
    const std::string date = sdk_date(s.at);
    header_list canonical = s.headers;
    if (s.sign_host) {
        canonical.emplace_back("host", host);
    }
    canonical.emplace_back("x-sdk-date", date);
    std::sort(canonical.begin(), canonical.end());
    std::string block, names;
    for (const auto& [name, value] : canonical) {
        block += name + ":" + value + "\n";
        names += (names.empty() ? "" : ";") + name;
    }
    const bool unsigned_payload =
        std::find(canonical.begin(), canonical.end(), std::pair<std::string, std::string>{
                                                          "x-sdk-content-sha256", "UNSIGNED-PAYLOAD"}) != canonical.end();
    const std::string canonical_request = "GET\n" + s.path + "/\n" + s.query + "\n" + block + "\n" + names + "\n" +
                                          (unsigned_payload ? "UNSIGNED-PAYLOAD" : sha256_hex(""));
    const std::string to_sign = "SDK-HMAC-SHA256\n" + date + "\n" + sha256_hex(canonical_request);
    signed_get out;
    const std::string query = s.sent_query.value_or(s.query);
    out.target = s.path + (query.empty() ? "" : "?" + query);
    out.headers = s.headers;
    out.headers.emplace_back("X-Sdk-Date", date);
    out.headers.emplace_back("Authorization", "SDK-HMAC-SHA256 Access=" + std::string(ak) + ", SignedHeaders=" +
                                                  names + ", Signature=" + hmac_hex(sk, to_sign));
    return out;
}

emu::options with_keys(std::chrono::milliseconds lockout = 5min) {
    emu::options opts;
    opts.keys = {{"AK1", "SK1-secret", std::nullopt}, {"AK2", "SK2-secret", std::nullopt},
                 {"TEMPAK", "TEMPSK", "temporary-security-token"}};
    opts.lockout = lockout;
    return opts;
}

unsigned send_signed(client& c, const signing& s, std::string_view ak, std::string_view sk) {
    const auto req = sign(s, ak, sk, c.host());
    return c.get(req.target, req.headers).result_int();
}

TEST(EmulatorAkSk, AcceptsValidSignatures) {
    const auto server = start(with_keys());
    client c(*server);
    signing page;
    page.query = "page_no=1&page_size=2";
    auto req = sign(page, "AK1", "SK1-secret", c.host());
    const auto res = c.get(req.target, req.headers);
    ASSERT_EQ(res.result_int(), 200U) << res.body();
    EXPECT_EQ(int64_t(parse(res.body())->root["size"]), 2);

    const struct {
        const char* name;
        signing s;
        std::string ak, sk;
    } cases[] = {
        {"query sent unsorted", {.query = "page_no=1&page_size=2", .sent_query = "page_size=2&page_no=1"}, "AK1",
         "SK1-secret"},
        {"orders with X-Language", {.path = std::string(orders_path), .headers = {{"x-language", "en-us"}}}, "AK2",
         "SK2-secret"},
        {"date 14 minutes behind", {.at = std::chrono::system_clock::now() - 14min}, "AK1", "SK1-secret"},
        {"date 14 minutes ahead", {.at = std::chrono::system_clock::now() + 14min}, "AK1", "SK1-secret"},
        {"temporary key with its token", {.headers = {{"x-security-token", "temporary-security-token"}}}, "TEMPAK",
         "TEMPSK"},
        {"unsigned payload", {.headers = {{"x-sdk-content-sha256", "UNSIGNED-PAYLOAD"}}}, "AK1", "SK1-secret"},
        {"extra signed header", {.headers = {{"x-project-id", "15645222e8744afa985c93dab6341da6"}}}, "AK1",
         "SK1-secret"},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        EXPECT_EQ(send_signed(c, k.s, k.ak, k.sk), 200U);
    }
    EXPECT_EQ(server->get_stats().signature_failures, 0U);
}

TEST(EmulatorAkSk, RejectsBadSignaturesWithApig0301) {
    const auto server = start(with_keys(0ms));  // no lockout here: the cases share an AK
    client c(*server);
    const auto now = std::chrono::system_clock::now();
    const auto drop = [](header_list h, std::string_view name) {
        std::erase_if(h, [&](const auto& p) { return p.first == name; });
        return h;
    };
    const auto with = [](header_list h, std::string name, std::string value) {
        h.emplace_back(std::move(name), std::move(value));
        return h;
    };
    const signing plain;
    const auto good = sign(plain, "AK1", "SK1-secret", c.host());
    const auto with_project = sign({.headers = {{"x-project-id", "p1"}}}, "AK1", "SK1-secret", c.host());
    const auto tampered = sign({.query = "page_no=1", .sent_query = "page_no=2"}, "AK1", "SK1-secret", c.host());
    const auto temporary = sign(plain, "TEMPAK", "TEMPSK", c.host());
    const struct {
        const char* name;
        signed_get request;
        std::string problem;
    } cases[] = {
        {"wrong secret key", sign(plain, "AK1", "wrong", c.host()), "verify aksk signature fail"},
        {"unknown access key", sign(plain, "NOPE", "SK1-secret", c.host()), "access key not found"},
        {"date 20 minutes behind", sign({.at = now - 20min}, "AK1", "SK1-secret", c.host()), "15 minutes"},
        {"date 20 minutes ahead", sign({.at = now + 20min}, "AK1", "SK1-secret", c.host()), "15 minutes"},
        {"host not signed", sign({.sign_host = false}, "AK1", "SK1-secret", c.host()),
         "SignedHeaders must include host and x-sdk-date"},
        {"query changed after signing", tampered, "verify aksk signature fail"},
        {"no X-Sdk-Date", {good.target, drop(good.headers, "X-Sdk-Date")}, "X-Sdk-Date is missing"},
        {"signed header not sent", {with_project.target, drop(with_project.headers, "x-project-id")},
         "signed header x-project-id is not in the request"},
        {"malformed Authorization", {good.target, with(drop(good.headers, "Authorization"), "Authorization",
                                                       "SDK-HMAC-SHA256 Access=AK1")},
         "Authorization is not"},
        {"security token with a permanent key",
         sign({.headers = {{"x-security-token", "t"}}}, "AK1", "SK1-secret", c.host()),
         "X-Security-Token sent with a permanent access key"},
        {"temporary key without its token", temporary, "X-Security-Token is missing or wrong"},
        {"temporary key with another token",
         sign({.headers = {{"x-security-token", "other"}}}, "TEMPAK", "TEMPSK", c.host()),
         "X-Security-Token is missing or wrong"},
        {"temporary key, token not signed",
         {temporary.target, with(temporary.headers, "X-Security-Token", "temporary-security-token")},
         "X-Security-Token must be signed"},
    };
    std::uint64_t failures = 0;
    for (const auto& k : cases) {
        SCOPED_TRACE(k.name);
        const auto res = c.get(k.request.target, k.request.headers);
        EXPECT_EQ(res.result_int(), 401U);
        const auto doc = parse(res.body());
        EXPECT_EQ(str(doc->root["error_code"]), "APIG.0301");
        EXPECT_THAT(str(doc->root["error_msg"]), StartsWith("Incorrect IAM authentication information: "));
        EXPECT_THAT(str(doc->root["error_msg"]), HasSubstr(k.problem));
        EXPECT_EQ(server->get_stats().signature_failures, ++failures);
    }
    EXPECT_EQ(c.get(good.target, good.headers).result_int(), 200U);  // the lockout of 0 ms is over
}

TEST(EmulatorAkSk, LocksAnAkAfterMoreThanFiveConsecutiveFailures) {
    const auto server = start(with_keys());
    client c(*server);
    const signing s;
    for (int i = 1; i <= 5; ++i) {
        EXPECT_EQ(send_signed(c, s, "AK1", "wrong"), 401U);
        EXPECT_EQ(server->consecutive_signature_failures("AK1"), static_cast<unsigned>(i));
    }
    EXPECT_EQ(send_signed(c, s, "AK1", "SK1-secret"), 200U);  // five are allowed; a success resets the run
    EXPECT_EQ(server->consecutive_signature_failures("AK1"), 0U);

    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(send_signed(c, s, "AK1", "wrong"), 401U);
    }
    EXPECT_EQ(server->consecutive_signature_failures("AK1"), 6U);
    const auto req = sign(s, "AK1", "SK1-secret", c.host());
    const auto locked = c.get(req.target, req.headers);
    EXPECT_EQ(locked.result_int(), 401U);
    EXPECT_EQ(str(parse(locked.body())->root["error_code"]), "APIG.0301");
    EXPECT_THAT(str(parse(locked.body())->root["error_msg"]), HasSubstr("locked"));
    EXPECT_EQ(server->get_stats().signature_failures, 11U);  // refusals by the lock are not failures
    EXPECT_EQ(server->consecutive_signature_failures("AK1"), 6U);
    EXPECT_EQ(send_signed(c, s, "AK2", "SK2-secret"), 200U);  // the lock is per AK
    EXPECT_EQ(server->consecutive_signature_failures("AK2"), 0U);
}

TEST(EmulatorAkSk, LockoutEndsAfterItsDuration) {
    const auto server = start(with_keys(0ms));
    client c(*server);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(send_signed(c, {}, "AK1", "wrong"), 401U);
    }
    EXPECT_EQ(server->consecutive_signature_failures("AK1"), 0U);  // locked for 0 ms: already over
    EXPECT_EQ(send_signed(c, {}, "AK1", "SK1-secret"), 200U);
}

// --- Rate limit --------------------------------------------------------------------------------

TEST(EmulatorRateLimit, AnswersApig0308AboveMaxRps) {
    emu::options opts = with_users();
    opts.max_rps = 0.01;  // a bucket of one request, refilled every 100 s
    const auto server = start(opts);
    client c(*server);
    EXPECT_EQ(c.get(purchases_path, {{"X-Auth-Token", "emulator-token"}}).result_int(), 200U);
    for (const auto target : {purchases_path, orders_path}) {
        SCOPED_TRACE(target);
        const auto res = c.get(target, {{"X-Auth-Token", "emulator-token"}, {"X-Language", "en-us"}});
        EXPECT_EQ(res.result_int(), 429U);
        EXPECT_EQ(str(parse(res.body())->root["error_code"]), "APIG.0308");
        EXPECT_EQ(res.find("Retry-After"), res.end());  // Huawei documents none
    }
    EXPECT_EQ(server->get_stats().rate_limited, 2U);
    issue(c);  // IAM is another service: not limited
    issue(c);
    EXPECT_EQ(server->get_stats().rate_limited, 2U);
}

TEST(EmulatorRateLimit, PacedClientStaysUnderTheLimit) {
    emu::options opts;
    opts.max_rps = 100;
    const auto server = start(opts);
    client c(*server);
    // 130 requests, more than the bucket holds, at 80/s: a client-side limiter below max_rps.
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < 130; ++i) {
        std::this_thread::sleep_until(begin + i * 12500us);
        ASSERT_EQ(c.get(purchases_path, {{"X-Auth-Token", "emulator-token"}}).result_int(), 200U) << "request " << i;
    }
    EXPECT_EQ(server->get_stats().rate_limited, 0U);
}

}  // namespace
