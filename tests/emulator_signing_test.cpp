// The emulator's AK/SK canonicaliser (tests/emulator/src/aksk.cpp) against the official vectors,
// on its own: it must reach each vector's canonical request, string to sign and Authorization
// without any of the client's signer, and the gateway must accept each vector's request as signed.
// signer_test checks the client against the same file; the two never share code.

#include "aksk.hpp"
#include "gateway.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace subsync::emulator::detail {
namespace {

struct vector_case {
    std::string name, method, host, target, body, ak, sk, date;
    std::vector<std::pair<std::string, std::string>> headers;  // as sent, Host included when signed
    bool add_host = true, skip_content_type = false;
    std::optional<std::string> canonical_request, string_to_sign;
    std::string authorization;
};

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<vector_case> load(const char* array) {
    static simdjson::dom::parser parser;
    const simdjson::dom::element doc = parser.load(SIGNING_VECTORS);
    std::vector<vector_case> out;
    for (const simdjson::dom::element v : doc[array].get_array()) {
        vector_case c;
        c.name = std::string(v["name"].get_string().value());
        c.method = std::string(v["method"].get_string().value());
        const std::string url(v["url"].get_string().value());
        const auto authority = url.find("://") + 3;
        const auto path = url.find('/', authority);
        c.host = url.substr(authority, path - authority);
        c.target = url.substr(path);
        c.body = std::string(v["body"].get_string().value());
        c.ak = std::string(v["ak"].get_string().value());
        c.sk = std::string(v["sk"].get_string().value());
        simdjson::dom::object opts;
        if (v["options"].get_object().get(opts) == simdjson::SUCCESS ||
            v["opts"].get_object().get(opts) == simdjson::SUCCESS) {
            bool flag = false;
            if (opts["add_host"].get_bool().get(flag) == simdjson::SUCCESS) c.add_host = flag;
            if (opts["skip_content_type"].get_bool().get(flag) == simdjson::SUCCESS) c.skip_content_type = flag;
        }
        if (c.add_host) c.headers.emplace_back("Host", c.host);
        for (const auto field : v["headers"].get_object()) {
            c.headers.emplace_back(std::string(field.key), std::string(field.value.get_string().value()));
            if (lower(std::string(field.key)) == "x-sdk-date") c.date = std::string(field.value.get_string().value());
        }
        std::string_view text;
        if (v["canonical_request"].get_string().get(text) == simdjson::SUCCESS) c.canonical_request = std::string(text);
        if (v["string_to_sign"].get_string().get(text) == simdjson::SUCCESS) c.string_to_sign = std::string(text);
        c.authorization = std::string(
            (v["authorization"].error() == simdjson::SUCCESS ? v["authorization"] : v["expect"]).get_string().value());
        out.push_back(std::move(c));
    }
    return out;
}

// The headers a signer signs, from the published rules: never names with '_', Content-Type unless the
// SDK skips it.
std::vector<std::pair<std::string, std::string>> signed_headers(const vector_case& c) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, value] : c.headers) {
        if (name.find('_') != std::string::npos) continue;
        if (c.skip_content_type && lower(name) == "content-type") continue;
        out.emplace_back(name, value);
    }
    return out;
}

std::string authorization_for(const vector_case& c, const std::string& canonical) {
    std::string names = canonical.substr(0, canonical.rfind('\n'));
    names = names.substr(names.rfind('\n') + 1);
    return "SDK-HMAC-SHA256 Access=" + c.ak + ", SignedHeaders=" + names +
           ", Signature=" + aksk::hmac_sha256_hex(c.sk, aksk::string_to_sign(c.date, canonical));
}

aksk::signing_parts parts_of(const vector_case& c) {
    aksk::signing_parts parts;
    parts.method = c.method;
    parts.target = c.target;
    parts.body = c.body;
    parts.signed_headers = signed_headers(c);
    for (const auto& [name, value] : parts.signed_headers) {
        parts.unsigned_payload |= lower(name) == "x-sdk-content-sha256" && value == "UNSIGNED-PAYLOAD";
    }
    return parts;
}

TEST(EmulatorSigning, CanonicalRequestAndStringToSignMatchTheVectors) {
    const auto cases = load("vectors");
    ASSERT_FALSE(cases.empty());
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto canonical = aksk::canonical_request(parts_of(c));
        ASSERT_TRUE(canonical.has_value());
        ASSERT_TRUE(c.canonical_request.has_value());
        EXPECT_EQ(*canonical, *c.canonical_request);
        EXPECT_EQ(aksk::string_to_sign(c.date, *canonical), c.string_to_sign.value_or(""));
        EXPECT_EQ(authorization_for(c, *canonical), c.authorization);
    }
}

TEST(EmulatorSigning, AuthorizationMatchesTheOfficialSdkVectors) {
    const auto cases = load("official_vectors");
    ASSERT_FALSE(cases.empty());
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto canonical = aksk::canonical_request(parts_of(c));
        ASSERT_TRUE(canonical.has_value());
        EXPECT_EQ(authorization_for(c, *canonical), c.authorization);
    }
}

// The gateway, given each vector's request as a client sent it (with the vector's Authorization),
// accepts it at the vector's own time. Only vectors that sign `host` (the gateway requires it).
TEST(EmulatorSigning, GatewayAcceptsEveryVectorThatSignsTheHost) {
    auto cases = load("vectors");
    const auto official = load("official_vectors");
    cases.insert(cases.end(), official.begin(), official.end());
    for (const auto& c : cases) {
        if (!c.add_host) continue;
        SCOPED_TRACE(c.name);
        options opts;
        access_key key{c.ak, c.sk, std::nullopt};
        for (const auto& [name, value] : c.headers) {
            if (lower(name) == "x-security-token") key.security_token = value;
        }
        opts.keys = {key};
        gateway gw(opts);
        incoming in;
        in.method = c.method;
        in.target = c.target;
        in.body = c.body;
        for (const auto& [name, value] : c.headers) in.headers.emplace_back(name, value);
        in.headers.emplace_back("Authorization", c.authorization);
        std::tm tm{};
        ASSERT_NE(strptime(c.date.c_str(), "%Y%m%dT%H%M%SZ", &tm), nullptr);
        const auto wall = std::chrono::system_clock::from_time_t(timegm(&tm));
        const auto result = gw.authenticate(in, wall, std::chrono::steady_clock::now());
        EXPECT_EQ(result.outcome, auth_outcome::accepted) << result.message;
        // One byte of the body or the query changed: refused.
        incoming tampered = in;
        const std::string other_target = c.target + (c.target.find('?') == std::string::npos ? "?x=1" : "&x=1");
        tampered.target = other_target;
        EXPECT_EQ(gw.authenticate(tampered, wall, std::chrono::steady_clock::now()).outcome, auth_outcome::rejected);
    }
}

TEST(EmulatorSigning, EncodingFollowsThePublishedRules) {
    struct row {
        const char* name;
        const char* path;
        const char* query;
        const char* uri;
        const char* canonical_query;
    };
    const row rows[] = {
        {"root", "", "", "/", ""},
        {"trailing slash kept single", "/a/b/", "", "/a/b/", ""},
        {"segments re-encoded upper case", "/a%2fb/c d", "", "/a%2Fb/c%20d/", ""},
        {"unreserved kept", "/A-Z_a.z~0", "k~=v-._", "/A-Z_a.z~0/", "k~=v-._"},
        {"plus is a plus, not a space", "/", "q=a+b", "/", "q=a%2Bb"},
        {"space is %20", "/", "q=a%20b", "/", "q=a%20b"},
        {"sorted by key then value, k= for empty", "/", "b=2&a=&b=1&c", "/", "a=&b=1&b=2&c="},
        {"utf-8 bytes", "/", "n=%E5%88%86", "/", "n=%E5%88%86"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        EXPECT_EQ(aksk::canonical_uri(r.path).value_or("<bad>"), r.uri);
        EXPECT_EQ(aksk::canonical_query(r.query).value_or("<bad>"), r.canonical_query);
    }
    EXPECT_FALSE(aksk::canonical_uri("/a%2").has_value());
    EXPECT_FALSE(aksk::canonical_query("a=%zz").has_value());
    EXPECT_EQ(aksk::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace subsync::emulator::detail
