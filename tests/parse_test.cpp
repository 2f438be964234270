#include <subsync/sync/parse.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/time.hpp>

#include "groups_ondemand.hpp"

#include <fmt/format.h>

#include <gtest/gtest.h>

#include <limits>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace subsync::sync {
namespace {

// The example response of seeds/001 (first purchase), verbatim.
const std::string seed_page = R"({
	"total": 3,
	"size": 1,
	"purchases": [{
		"id": "615af8d9-f31d-4cdf-8807-b191dc969a07",
		"group_id": "f0585333-5722-4878-b7fa-31ae00b6ae3a",
		"group_name": "api_group_003",
		"group_remark": "API group 003",
		"group_domains": null,
		"quota_used": 0,
		"quota_left": 2000000000,
		"order_time": "2017-12-29T06:22:46Z",
		"start_time": "2018-01-01T00:00:00Z",
		"expire_time": "2019-01-01T00:00:00Z",
		"app_key": "0e242685-661d-4254-a8bb-be9a92b04785",
		"app_secret": "******"
	}]
})";

// The example response of seeds/003, verbatim.
const std::string seed_orders = R"({
"resources" : [ {
"region_id" : "demo-region",
"project_id" : "15645222e8744afa985c93dab6341da6",
"resources" : [ {
"resource_id" : "c9528aa2-d593-11f0-a34e-fa163e798915",
"resource_type" : "xxx.resource.type.secmaster.typical",
"resource_spec_code" : "csb.professional",
"resource_size" : 2,
"resource_status" : 0,
"to_period" : false,
"order_id" : "CS2510212051NLDL4",
"charging_mode" : "PREPAID",
"create_time" : 1765349400000,
"expire_time" : 1796885400000,
"tag_list" : [ {
"key" : "dept",
"value" : "dev"
} ]
} ]
} ]
})";

TEST(Parse, SeedPurchaseEveryField) {
    body_parser p;
    auto page = p.groups(seed_page);
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(page->total, 3);
    EXPECT_EQ(page->size, 1);
    ASSERT_EQ(page->purchases.size(), 1u);
    const auto& g = page->purchases[0];
    EXPECT_EQ(g.id, "615af8d9-f31d-4cdf-8807-b191dc969a07");
    EXPECT_EQ(*g.group_id, "f0585333-5722-4878-b7fa-31ae00b6ae3a");
    EXPECT_EQ(*g.group_name, "api_group_003");
    EXPECT_EQ(*g.group_remark, "API group 003");
    EXPECT_TRUE(g.group_domains.is_null());
    EXPECT_EQ(*g.quota_used, 0);
    EXPECT_EQ(*g.quota_left, 2000000000);
    EXPECT_EQ(*g.order_time, 1514528566000);
    EXPECT_EQ(*g.start_time, 1514764800000);
    EXPECT_EQ(*g.expire_time, 1546300800000);
    EXPECT_EQ(*g.app_key, "0e242685-661d-4254-a8bb-be9a92b04785");
    EXPECT_EQ(*g.app_secret, "******");
}

TEST(Parse, SeedOrdersEveryField) {
    body_parser p;
    auto rs = p.orders(seed_orders);
    ASSERT_TRUE(rs) << rs.error().message;
    ASSERT_EQ(rs->items.size(), 1u);
    const auto& r = rs->items[0];
    EXPECT_EQ(*r.region_id, "demo-region");
    EXPECT_EQ(*r.project_id, "15645222e8744afa985c93dab6341da6");
    EXPECT_EQ(r.resource_id, "c9528aa2-d593-11f0-a34e-fa163e798915");
    EXPECT_EQ(*r.resource_type, "xxx.resource.type.secmaster.typical");
    EXPECT_EQ(*r.resource_spec_code, "csb.professional");
    EXPECT_EQ(*r.resource_size, 2);
    EXPECT_EQ(*r.resource_status, 0);
    EXPECT_FALSE(*r.to_period);
    EXPECT_EQ(*r.order_id, "CS2510212051NLDL4");
    EXPECT_EQ(*r.charging_mode, "PREPAID");
    EXPECT_EQ(*r.create_time, 1765349400000);
    EXPECT_EQ(*r.expire_time, 1796885400000);
    ASSERT_EQ(r.tag_list->size(), 1u);
    EXPECT_EQ((*r.tag_list)[0], (tag{"dept", "dev"}));
    EXPECT_EQ(item_key(r), "demo-region/15645222e8744afa985c93dab6341da6/c9528aa2-d593-11f0-a34e-fa163e798915");
}

TEST(Parse, NullAbsentAndValueStayDistinct) {
    body_parser p;
    auto page = p.groups(R"({"total":1,"purchases":[{"id":"a","group_remark":null,"quota_left":0}]})");
    ASSERT_TRUE(page) << page.error().message;
    const auto& g = page->purchases[0];
    EXPECT_TRUE(g.group_remark.is_null());
    EXPECT_TRUE(g.group_name.is_absent());
    EXPECT_TRUE(g.quota_left.has_value());
    EXPECT_EQ(*g.quota_left, 0);
    EXPECT_EQ(page->size, 1) << "size defaults to the entries on the page";

    auto orders = p.orders(R"({"resources":[{"region_id":null,"project_id":"p","resources":[{"resource_id":"r"}]}]})");
    ASSERT_TRUE(orders) << orders.error().message;
    EXPECT_TRUE(orders->items[0].region_id.is_null());
    EXPECT_TRUE(orders->items[0].expire_time.is_absent());
    EXPECT_EQ(item_key(orders->items[0]), "/p/r");
}

// A page read into the page of the previous call holds only what it says: nothing of the
// earlier page's records survives, whatever fields either had (fetch.cpp keeps one page).
TEST(Parse, APageReadIntoAnEarlierOneHoldsOnlyItself) {
    body_parser p;
    groups_page kept;
    ASSERT_TRUE(p.groups(seed_page, kept));
    ASSERT_TRUE(p.groups(R"({"total":5,"purchases":[{"id":"b","group_name":null,"group_domains":["d"]},{"id":"c"}],"x":1})", kept));
    const auto fresh = p.groups(R"({"total":5,"purchases":[{"id":"b","group_name":null,"group_domains":["d"]},{"id":"c"}],"x":1})");
    ASSERT_TRUE(fresh);
    EXPECT_EQ(kept.purchases, fresh->purchases);
    EXPECT_EQ(kept.total, 5);
    EXPECT_EQ(kept.size, 2);
    EXPECT_EQ(kept.served, 2);
    EXPECT_TRUE(kept.purchases[1].group_name.is_absent());
    EXPECT_TRUE(kept.purchases[1].group_id->empty()) << "an absent field reads as a fresh one";

    // A page with an unreadable item (read by the DOM parser) and a clean one after it.
    ASSERT_TRUE(p.groups(R"({"total":2,"purchases":[{"id":"a","quota_left":"7"},{"id":"b"}]})", kept));
    EXPECT_EQ(kept.unreadable.size(), 1u);
    ASSERT_TRUE(p.groups(seed_page, kept));
    EXPECT_TRUE(kept.unreadable.empty());
    EXPECT_EQ(kept.purchases, p.groups(seed_page)->purchases);
}

// Every character of a JSON string written as \uXXXX (UTF-16 pairs above U+FFFF): the same value.
std::string escape_all(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        const std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        char32_t cp = n == 1 ? c : c & (0xFFU >> (n + 1));
        for (std::size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(text[i + k]) & 0x3FU);
        if (cp > 0xFFFF) {
            cp -= 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(cp));
        }
        i += n;
    }
    return out;
}

// A string is read from the page as it lies when it holds no escape, and unescaped otherwise
// (groups_ondemand.cpp): the two readings agree on every string field, on times and on domains,
// with spaces around the values or not.
TEST(Parse, StringsReadTheSameWithOrWithoutEscapes) {
    const std::vector<std::pair<std::string, std::string>> fields{
        {"id", "a-1"}, {"group_id", "g \"q\" 1"}, {"group_name", "分组 😀 back\\slash"}, {"group_remark", ""},
        {"order_time", "2026-02-28T23:59:59Z"}, {"start_time", "2024-02-29T00:00:00+08:00"},
        {"expire_time", "2027-01-01T00:00:00.5Z"}, {"app_key", "k"}, {"app_secret", "******"}};
    const std::vector<std::string> domains{"a.example.com", "分组.example.cn", ""};
    const auto page = [&](bool escaped, std::string_view space) {
        auto quoted = [&](std::string_view v) {
            std::string plain;
            for (char c : v) plain += c == '"' || c == '\\' ? std::string{'\\', c} : std::string{c};
            return fmt::format("{}\"{}\"{}", space, escaped ? escape_all(v) : plain, space);
        };
        std::string body = fmt::format("{{\"total\":1,\"purchases\":[{{");
        for (const auto& [key, value] : fields) body += fmt::format("\"{}\":{},", key, quoted(value));
        body += "\"group_domains\":[";
        for (std::size_t i = 0; i < domains.size(); ++i) body += (i ? "," : "") + quoted(domains[i]);
        return body + "]}]}";
    };
    body_parser p;
    for (std::string_view space : {"", " ", "\n\t "}) {
        const auto plain = p.groups(page(false, space));
        const auto escaped = p.groups(page(true, space));
        ASSERT_TRUE(plain) << plain.error().message;
        ASSERT_TRUE(escaped) << escaped.error().message;
        ASSERT_EQ(plain->purchases.size(), 1u);
        EXPECT_TRUE(plain->unreadable.empty());
        EXPECT_EQ(plain->purchases, escaped->purchases);
        const auto& g = plain->purchases[0];
        EXPECT_EQ(g.id, "a-1");
        EXPECT_EQ(*g.group_id, "g \"q\" 1");
        EXPECT_EQ(*g.group_name, "分组 😀 back\\slash");
        EXPECT_EQ(*g.group_remark, "");
        EXPECT_EQ(*g.order_time, *parse_iso8601("2026-02-28T23:59:59Z"));
        EXPECT_EQ(*g.start_time, *parse_iso8601("2024-02-28T16:00:00Z"));
        EXPECT_EQ(*g.expire_time, *parse_iso8601("2027-01-01T00:00:00Z") + 500);
        EXPECT_EQ(*g.group_domains, domains);
    }
}

// The On-Demand pass reads a clean page itself, the DOM only ever reading what it refuses: a
// page it gave up on for no reason would cost a second parse, and nothing else would show it.
TEST(Parse, TheFastPassReadsEveryCleanFieldItself) {
    const std::vector<std::string> pages{
        seed_page,
        R"({"total":2,"purchases":[{"id":"a","order_time":"","start_time":"","expire_time":"","group_domains":[]},)"
        R"({"id":"b","group_name":"","group_remark":null,"order_time":null,"quota_left":null,"group_domains":null}]})",
        R"({"total":1, "purchases": [ {"id": "a\u0062", "group_name": "x\"y", "order_time": 1700000000000,)"
        R"( "group_domains": [ "d" , "e\u00e9" ] } ] })",
    };
    for (const auto& body : pages) {
        SCOPED_TRACE(body);
        simdjson::ondemand::parser ondemand;
        std::string scratch;
        groups_page fast;
        ASSERT_TRUE(detail::read_groups_ondemand(ondemand, body, scratch, fast));
        simdjson::dom::parser dom;
        const auto slow = detail::read_groups_dom(dom, body);
        ASSERT_TRUE(slow) << slow.error().message;
        EXPECT_EQ(fast.purchases, slow->purchases);
    }
}

// The On-Demand pass reads integers and the common time form itself, a word at a time; on any
// value it either agrees with the DOM or gives the page up to it (and then the DOM decides).
TEST(Parse, TheFastPassReadsIntegersAndTimesAsTheDomDoes) {
    const std::vector<std::string> integers{
        "0", "-0", "7", "-7", "12345678", "123456789", "1234567890123456", "12345678901234567",
        "123456789012345678", "1234567890123456789", "9223372036854775807", "-9223372036854775808", "10 ",
        "10\n", "10\t\r ", "null", "-1234567890123456789"};
    const std::vector<std::string> not_integers{
        "9223372036854775808", "-9223372036854775809", "12345678901234567890", "01", "-01", "-", "1.0", "1e3",
        "1E3", "\"10\"", "true", "[1]", "2.", "-x", "18446744073709551615", "5:1"};
    const std::vector<std::string> times{
        "2024-02-29T00:00:00Z", "2000-02-29T23:59:60Z", "1899-12-31T23:59:59Z", "1900-01-01T00:00:00Z",
        "2156-12-31T23:59:59Z", "2157-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
        "2026-04-30T00:00:00", "2026-04-30T00:00:00z", "2026-04-30 00:00:00Z", "2026-04-30T00:00:00.5Z",
        "2026-04-30T00:00:0\\u0030Z"};
    // Times as epoch milliseconds (read through the same integer reading), clamped as the DOM does.
    const std::vector<std::string> epoch_times{"0", "1700000000000", "-9223372036854775808", "9223372036854775807"};
    const std::vector<std::string> not_times{
        "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-04-00T00:00:00Z", "2026-04-30T24:00:00Z", "2026-04-30T00:60:00Z", "2026-04-30T00:00:61Z",
        "2026-04-30T00:00:00ZZ", "2026-04-30T00:00:00Q", "2026-04-30T00:00:00Z\":1,\"x"};
    const auto quota_page = [](const std::string& q) {
        return R"({"total":1,"purchases":[{"id":"a","quota_left":)" + q + "}]}";
    };
    const auto time_page = [](const std::string& t) {
        return R"({"total":1,"purchases":[{"id":"a","order_time":")" + t + R"(","expire_time": ")" + t + R"(" }]})";
    };
    const auto check = [](const std::string& body, bool readable) {
        SCOPED_TRACE(body);
        simdjson::ondemand::parser ondemand;
        std::string scratch;
        groups_page fast;
        const bool fast_read = detail::read_groups_ondemand(ondemand, body, scratch, fast);
        simdjson::dom::parser dom;
        const auto slow = detail::read_groups_dom(dom, body);
        ASSERT_EQ(fast_read, readable);
        if (!readable) {  // the DOM refuses the page (not JSON) or lists the item as unreadable
            if (slow) {
                EXPECT_FALSE(slow->unreadable.empty());
            }
            return;
        }
        ASSERT_TRUE(slow) << slow.error().message;
        EXPECT_TRUE(slow->unreadable.empty());
        EXPECT_EQ(fast.purchases, slow->purchases);
    };
    // Every length the word-wide reading splits differently, with and without a space after it.
    std::string digits;
    for (char d = '1'; digits.size() < 19; d = d == '9' ? '0' : static_cast<char>(d + 1)) {
        digits += d;
        check(quota_page(digits), true);
        check(quota_page(digits + " "), true);
        check(quota_page("-" + digits), true);
    }
    for (const auto& ms : epoch_times) check(R"({"total":1,"purchases":[{"id":"a","order_time":)" + ms + "}]}", true);
    for (const auto& q : integers) check(quota_page(q), true);
    for (const auto& q : not_integers) check(quota_page(q), false);
    for (const auto& t : times) check(time_page(t), true);
    for (const auto& t : not_times) check(time_page(t), false);
}

// A key written with an escape is the key it unescapes to, as any JSON reader sees it.
TEST(Parse, EscapedKeysAreTheirUnescapedNames) {
    body_parser p;
    auto page = p.groups(R"({"tot\u0061l":1,"purchases":[{"\u0069d":"a","quota_\u006ceft":3}]})");
    ASSERT_TRUE(page) << page.error().message;
    ASSERT_EQ(page->purchases.size(), 1u);
    EXPECT_EQ(page->purchases[0].id, "a");
    EXPECT_EQ(*page->purchases[0].quota_left, 3);
}

TEST(Parse, LargeIntegersAreExact) {
    body_parser p;
    auto page = p.groups(
        R"({"total":2,"purchases":[{"id":"a","quota_left":9223372036854775807},{"id":"b","quota_left":9007199254740993}]})");
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(*page->purchases[0].quota_left, 9223372036854775807);
    EXPECT_EQ(*page->purchases[1].quota_left, 9007199254740993);
}

TEST(Parse, RealAppSecretIsNeverKept) {
    body_parser p;
    auto page = p.groups(R"({"total":1,"purchases":[{"id":"a","app_secret":"s3cr3t-value"}]})");
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(*page->purchases[0].app_secret, "******");
}

TEST(Parse, ErrorsNameTheField) {
    struct bad_case {
        const char* name;
        bool orders;
        std::string body;
        std::string message;
    };
    const bad_case cases[] = {
        {"not json", false, "<html>busy</html>", "body is not valid JSON"},
        {"truncated", false, R"({"total":3,"purchases":[{"id":"a")", "body is not valid JSON"},
        {"array body", false, "[]", "body: expected object, got array"},
        // The On-Demand pass reads what it skips too: invalid JSON anywhere is refused, as the DOM does.
        {"bad literal in an unknown member", false, R"({"total":0,"purchases":[],"x":tru})", "body is not valid JSON"},
        {"bad literal in an unknown item member", false, R"({"total":1,"purchases":[{"id":"a","x":[nul]}]})",
         "body is not valid JSON"},
        {"trailing content", false, R"({"total":0,"purchases":[]} {})", "body is not valid JSON"},
        // A string value followed by a colon: left for On-Demand to skip, it read as a key (found by fuzz_groups).
        {"a value followed by a colon", false,
         R"({"total":0,"":0,"purchases":[{"id":"d":""],"":3},{"id":"6","":"","":[],"":7,"":"","":""}]})",
         "body is not valid JSON"},
        {"a kept value followed by a colon", false, R"({"total":1,"purchases":[{"id":"a","group_name":"b":"c"]}]})",
         "body is not valid JSON"},
        {"unclosed object", false, R"({"total":0,"purchases":[])", "body is not valid JSON"},
        {"no total", false, R"({"purchases":[]})", "total: missing"},
        {"negative total", false, R"({"total":-1,"purchases":[]})", "total: expected a non-negative integer"},
        {"purchases not array", false, R"({"total":1,"purchases":{}})", "purchases: expected array, got object"},
        {"purchases null with a total", false, R"({"total":3,"purchases":null})", "purchases: null while total is 3"},
        {"purchases missing with a total", false, R"({"total":3})", "purchases: missing while total is 3"},
        {"error body with 200", false, R"({"error_code":"APIG.0201","error_msg":"Backend unavailable"})",
         "HTTP 200 with an error body instead of a listing: APIG.0201: Backend unavailable"},
        {"total twice", false, R"({"total":1,"total":0,"purchases":[]})", "total: key appears twice"},
        {"purchases twice", false, R"({"total":0,"purchases":[],"purchases":[{"id":"a"}]})", "purchases: key appears twice"},
        {"orders without resources", true, R"({})", "resources: missing"},
        {"resources null", true, R"({"resources":null})", "resources: expected array, got null"},
        {"entry resources null", true, R"({"resources":[{"region_id":"r","project_id":"p","resources":null}]})",
         "resources[0].resources: expected array, got null"},
        {"entry resources missing", true, R"({"resources":[{"region_id":"r","project_id":"p"}]})",
         "resources[0].resources: missing"},
        {"orders error body with 200", true, R"({"error_code":"SecMaster.1","error_msg":"busy"})",
         "HTTP 200 with an error body instead of a listing: SecMaster.1: busy"},
        {"resources twice", true, R"({"resources":[],"resources":[{"resources":[{"resource_id":"a"}]}]})",
         "resources: key appears twice"},
        {"region twice", true, R"({"resources":[{"region_id":"a","region_id":"b","resources":[]}]})",
         "resources[0].region_id: key appears twice"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        body_parser p;
        std::string message;
        if (c.orders) {
            auto r = p.orders(c.body);
            ASSERT_FALSE(r);
            message = r.error().message;
            EXPECT_EQ(r.error().kind, error_kind::parse);
        } else {
            auto r = p.groups(c.body);
            ASSERT_FALSE(r);
            message = r.error().message;
            EXPECT_EQ(r.error().kind, error_kind::parse);
        }
        EXPECT_NE(message.find(c.message), std::string::npos) << "message: " << message;
    }
}

// One unreadable item never blinds the rest of its page (issue 14 §2).
TEST(Parse, UnreadableItemsAreListedAndTheRestKept) {
    struct item_case {
        const char* name;
        bool orders;
        std::string body;
        std::string id, field, message;
    };
    const item_case cases[] = {
        {"quota as string", false, R"({"total":2,"purchases":[{"id":"a"},{"id":"b","quota_left":"7"}]})", "b",
         "quota_left", "purchases[1].quota_left: expected integer, got string"},
        {"quota as float", false, R"({"total":2,"purchases":[{"id":"a","quota_used":1.5},{"id":"c"}]})", "a",
         "quota_used", "purchases[0].quota_used: expected integer, got number"},
        {"quota above int64", false,
         R"({"total":2,"purchases":[{"id":"a","quota_left":18446744073709551615},{"id":"c"}]})", "a", "quota_left",
         "purchases[0].quota_left: integer out of range"},
        {"bad time", false, R"({"total":2,"purchases":[{"id":"a","expire_time":"tomorrow"},{"id":"c"}]})", "a",
         "expire_time", "purchases[0].expire_time: not an ISO-8601 time: \"tomorrow\""},
        {"missing id", false, R"({"total":2,"purchases":[{"group_id":"g"},{"id":"c"}]})", "", "id",
         "purchases[0].id: missing"},
        {"id not string", false, R"({"total":2,"purchases":[{"id":5},{"id":"c"}]})", "", "id",
         "purchases[0].id: expected string, got integer"},
        {"domains of numbers", false, R"({"total":2,"purchases":[{"id":"a","group_domains":[1]},{"id":"c"}]})", "a",
         "group_domains", "purchases[0].group_domains: [0]: expected string, got integer"},
        {"field twice", false, R"({"total":2,"purchases":[{"id":"a","quota_left":1,"quota_left":2},{"id":"c"}]})", "a",
         "quota_left", "purchases[0].quota_left: key appears twice"},
        {"not an object", false, R"({"total":2,"purchases":[7,{"id":"c"}]})", "", "",
         "purchases[0]: expected object, got integer"},
        {"resource time as bool", true,
         R"({"resources":[{"project_id":"p","resources":[{"resource_id":"a"},{"resource_id":"b","create_time":true}]}]})",
         "b", "create_time", "resources[0].resources[1].create_time: expected time (ISO-8601 string or epoch ms), got boolean"},
        {"resource without id", true, R"({"resources":[{"resources":[{},{"resource_id":"a"}]}]})", "", "resource_id",
         "resources[0].resources[0].resource_id: missing"},
        {"tag not object", true,
         R"({"resources":[{"resources":[{"resource_id":"b","tag_list":["x"]},{"resource_id":"a"}]}]})", "b",
         "tag_list", "resources[0].resources[0].tag_list: [0]: expected object, got string"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        body_parser p;
        std::vector<unreadable_item> bad;
        std::size_t good = 0;
        if (c.orders) {
            auto r = p.orders(c.body);
            ASSERT_TRUE(r) << r.error().message;
            bad = r->unreadable;
            good = r->items.size();
        } else {
            auto r = p.groups(c.body);
            ASSERT_TRUE(r) << r.error().message;
            bad = r->unreadable;
            good = r->purchases.size();
            EXPECT_EQ(r->served, 2);
        }
        EXPECT_EQ(good, 1u) << "the readable item is kept";
        ASSERT_EQ(bad.size(), 1u);
        EXPECT_EQ(bad[0].id, c.id);
        EXPECT_EQ(bad[0].field, c.field);
        EXPECT_NE(bad[0].message.find(c.message), std::string::npos) << "message: " << bad[0].message;
    }
}

// Times as the real APIs send them (issue 14 §1): zone-less and spaced times are UTC,
// "" is unset, epoch values outside years 1..9999 are clamped, by the one rule of time.hpp.
TEST(Parse, TimesAsTheRealApisSendThem) {
    body_parser p;
    auto page = p.groups(R"({"total":4,"purchases":[)"
                         R"({"id":"a","order_time":"2020-08-03T13:09:13","start_time":"2020-08-03 13:09:13","expire_time":""},)"
                         R"({"id":"b","expire_time":9223372036854775807},)"
                         R"({"id":"c","expire_time":-9223372036854775808},)"
                         R"({"id":"d","expire_time":"0000-01-01T00:00:00Z"}]})");
    ASSERT_TRUE(page) << page.error().message;
    ASSERT_TRUE(page->unreadable.empty()) << page->unreadable[0].message;
    const auto& a = page->purchases[0];
    EXPECT_EQ(*a.order_time, 1596460153000);
    EXPECT_EQ(*a.start_time, 1596460153000);
    EXPECT_TRUE(a.expire_time.is_null()) << "an empty time is unset";
    EXPECT_EQ(*page->purchases[1].expire_time, max_time);
    EXPECT_EQ(*page->purchases[2].expire_time, min_time);
    EXPECT_EQ(*page->purchases[3].expire_time, min_time);
    EXPECT_EQ(format_iso8601(*page->purchases[1].expire_time), "9999-12-31T23:59:59.999Z");
    EXPECT_EQ(format_iso8601(std::numeric_limits<epoch_ms>::min()), "0001-01-01T00:00:00Z");

    auto orders = p.orders(R"({"resources":[{"project_id":"p","resources":[{"resource_id":"r","create_time":"2020-08-03 13:09:13","expire_time":""}]}]})");
    ASSERT_TRUE(orders) << orders.error().message;
    ASSERT_EQ(orders->items.size(), 1u);
    EXPECT_EQ(*orders->items[0].create_time, 1596460153000);
    EXPECT_TRUE(orders->items[0].expire_time.is_null());
}

// Resource keys never collide (issue 14 §3).
TEST(Parse, ResourceKeysAreUnambiguous) {
    auto key = [](field<std::string> region, field<std::string> project) {
        subscription_resource r;
        r.region_id = std::move(region);
        r.project_id = std::move(project);
        r.resource_id = "x";
        return item_key(r);
    };
    EXPECT_NE(key(std::string("a/b"), std::string("c")), key(std::string("a"), std::string("b/c")));
    EXPECT_NE(key(field<std::string>::null(), std::string("p")), key(std::string(""), std::string("p")));
    EXPECT_NE(key(std::string("a%2Fb"), std::string("c")), key(std::string("a/b"), std::string("c")));
    EXPECT_EQ(key(std::string("cn-north-4"), std::string("0b1c")), "cn-north-4/0b1c/x");
    EXPECT_EQ(key(field<std::string>::null(), std::string("p")), "/p/x");
}

TEST(Parse, DescribesEveryErrorBodyShape) {
    struct body_case {
        const char* name;
        std::string body;
        std::string expected;
    };
    const body_case cases[] = {
        {"apig", R"({"error_code":"APIG.0308","error_msg":"throttled","request_id":"r"})", "APIG.0308: throttled"},
        {"camel", R"({"errorCode":"X.1","errorMsg":"bad"})", "X.1: bad"},
        {"code/message", R"({"code":"E2","message":"m"})", "E2: m"},
        {"iam nested", R"({"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}})",
         "401: The request you have made requires authentication."},
        {"html", "<html>\n502 Bad Gateway</html>", "body: \"<html> 502 Bad Gateway</html>\""},
        {"nested pair", R"({"result":{"error":{"error_code":"SecMaster.7","error_msg":"deep"}}})", "SecMaster.7: deep"},
        {"details", R"({"error_code":"APIG.0201","error_msg":"bad","details":[{"error_code":"D1","error_msg":"one"},"two"]})",
         "APIG.0201: bad; D1: one; two"},
        {"encoded authorization message",
         R"({"error_code":"IAM.0003","error_msg":"denied","encoded_authorization_message":"abcd"})",
         "IAM.0003: denied (encoded_authorization_message: 4 characters; decode it with IAM to see which policy refused)"},
        {"empty", "", "(empty body)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(describe_error_body(c.body), c.expected);
    }
    EXPECT_EQ(read_error_body(R"({"error_code":"APIG.0308","error_msg":"t","request_id":"req-9"})").request_id, "req-9");
}

}  // namespace
}  // namespace subsync::sync
