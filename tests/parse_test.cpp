#include <subsync/sync/parse.hpp>
#include <subsync/sync/columns.hpp>
#include <subsync/sync/time.hpp>

#include "groups_ondemand.hpp"

#include <fmt/format.h>

#include <gtest/gtest.h>

#include <limits>

#include <chrono>
#include <cstdint>
#include <random>
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

// The common form `YYYY-MM-DDTHH:MM:SSZ` has its own fast reading (time.cpp); the same instant with
// `.000` goes the general way, so the two must agree on every date, valid or not, and on the
// reference <chrono> gives.
TEST(Time, CommonFormAgreesWithTheGeneralReading) {
    std::mt19937 rng(19);
    std::uniform_int_distribution<int> year(0, 9999), month(0, 13), day(0, 32), hour(0, 25), minute(0, 61);
    for (int i = 0; i < 200000; ++i) {
        const int y = i < 100 ? 1999 + i % 3 : year(rng), mo = month(rng), d = day(rng), h = hour(rng),
                  mi = minute(rng), sec = minute(rng);
        const auto common = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", y, mo, d, h, mi, sec);
        const auto general = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z", y, mo, d, h, mi, sec);
        SCOPED_TRACE(common);
        ASSERT_EQ(parse_iso8601(common), parse_iso8601(general));
        using namespace std::chrono;
        const year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(mo)},
                                 std::chrono::day{static_cast<unsigned>(d)}};
        if (ymd.ok() && h < 24 && mi < 60 && sec <= 60) {
            const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec};
            ASSERT_EQ(parse_iso8601(common), clamp_time(duration_cast<milliseconds>(t.time_since_epoch()).count()));
        } else {
            ASSERT_EQ(parse_iso8601(common), std::nullopt);
        }
    }
}

// The common form's reading checks its separators and digits a word at a time: any byte in any
// position reads as the general reading of the same text with `.000` before its last byte does
// (but a digit for the `Z`, which would be a fraction's there).
TEST(Time, CommonFormRefusesEveryByteOutOfPlace) {
    const std::string base = "2024-02-29T23:59:58Z";
    for (std::size_t at = 0; at < base.size(); ++at) {
        for (int byte = 0; byte < 256; ++byte) {
            std::string common = base;
            common[at] = static_cast<char>(byte);
            std::string general = common;
            general.insert(19, ".000");
            SCOPED_TRACE(fmt::format("byte {} at {}", byte, at));
            if (at == 19 && byte >= '0' && byte <= '9') {
                ASSERT_EQ(parse_iso8601(common), std::nullopt);  // in `general`, a fifth fraction digit
                continue;
            }
            ASSERT_EQ(parse_iso8601(common), parse_iso8601(general));
        }
    }
}

TEST(Time, ParsesAndFormatsIso8601) {
    struct time_case {
        const char* text;
        std::optional<epoch_ms> expected;
    };
    const time_case cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2017-12-29T06:22:46Z", 1514528566000},
        {"2020-01-04T09:05:22.701000Z", 1578128722701},
        {"2020-01-04T17:05:22+08:00", 1578128722000},
        {"2024-02-29T00:00:00Z", 1709164800000},
        {"2023-02-29T00:00:00Z", std::nullopt},
        {"2017-12-29T06:22:46", 1514528566000},
        {"2017-12-29 06:22:46", 1514528566000},
        {"2017-12-29 06:22:46.5", 1514528566500},
        {"2017-12-29T06:22", std::nullopt},
        {"2017-12-29", std::nullopt},
        {"2017-12-29T06:22:46Zjunk", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        EXPECT_EQ(parse_iso8601(c.text), c.expected);
    }
    EXPECT_EQ(format_iso8601(1514528566000), "2017-12-29T06:22:46Z");
    EXPECT_EQ(format_iso8601(1578128722701), "2020-01-04T09:05:22.701Z");
    EXPECT_EQ(format_iso8601(-1000), "1969-12-31T23:59:59Z");
}

namespace {

// What format_iso8601 was before it was written by hand: the reference for
// every case below.
std::string fmt_iso8601(epoch_ms t) {
    using namespace std::chrono;
    sys_time<milliseconds> tp{milliseconds{t}};
    auto day = floor<days>(tp);
    year_month_day ymd{day};
    hh_mm_ss<milliseconds> tod{tp - day};
    auto ms = tod.subseconds().count();
    if (ms == 0)
        return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                           static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                           tod.hours().count(), tod.minutes().count(), tod.seconds().count());
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), tod.hours().count(),
                       tod.minutes().count(), tod.seconds().count(), ms);
}

}  // namespace

TEST(Time, AppendIso8601MatchesTheFmtReference) {
    constexpr epoch_ms day = 86'400'000;
    // -62167219200000 is 0000-01-01, 253402300799999 is 9999-12-31T23:59:59.999.
    const epoch_ms edges[] = {0, 1, -1, 999, -999, 1000, -1000, day - 1, day, -day, -day - 1, 951782400000,
                              951868799999, 1709164800000, 1735689599999, 1735689600000, -62167219200000,
                              -62167219200001, -62198755200000, -62135596800000, 253402300799999, 253402300800000,
                              -30610224000000, 4102444800000, 32503680000000, 1000000000000000, -1000000000000000};
    std::string out = "prefix:";
    for (const epoch_ms t : edges) {
        SCOPED_TRACE(t);
        EXPECT_EQ(format_iso8601(t), fmt_iso8601(clamp_time(t)));
        out.resize(7);
        append_iso8601(out, t);
        EXPECT_EQ(out, "prefix:" + fmt_iso8601(clamp_time(t)));
    }
    std::mt19937_64 rng(20261125);
    // Years 0001..9999, and all of year -2000..12000 less often; a third with whole seconds.
    std::uniform_int_distribution<epoch_ms> common(-62135596800000, 253402300799999);
    std::uniform_int_distribution<epoch_ms> wide(-125281065600000, 316537977600000);
    for (int i = 0; i < 200'000; ++i) {
        epoch_ms t = i % 4 == 0 ? wide(rng) : common(rng);
        if (i % 3 == 0) t -= t % 1000;
        const auto got = format_iso8601(t);
        const auto want = fmt_iso8601(clamp_time(t));
        if (got != want) {
            ADD_FAILURE() << "t=" << t << " got " << got << " want " << want;
            break;
        }
    }
}

namespace {

// What append_json_string was before it appended runs: the reference.
std::string json_reference(std::string_view s) {
    auto utf8_length = [&](std::size_t i) -> std::size_t {
        const auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
        const std::uint8_t c = b(i);
        std::size_t n = 0;
        std::uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (i + n > s.size()) return 0;
        if (b(i + 1) < lo || b(i + 1) > hi) return 0;
        for (std::size_t k = 2; k < n; ++k)
            if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
        return n;
    };
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size();) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u >= 0x80) {
            const std::size_t n = utf8_length(i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (u) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (u < 0x20 || u == 0x7F) {
                    out += "\\u00";
                    out += hex[u >> 4];
                    out += hex[u & 0xf];
                } else {
                    out += static_cast<char>(u);
                }
        }
        ++i;
    }
    out += '"';
    return out;
}

}  // namespace

TEST(Json, StringsAreEscaped) {
    struct json_case {
        const char* name;
        std::string input;
        std::string expected;
    };
    const json_case cases[] = {
        {"empty", "", R"("")"},
        {"plain", "abc", R"("abc")"},
        {"quote and backslash", R"(a"b\c)", R"("a\"b\\c")"},
        {"escapes only", "\"\\\n\r\t\b\f", R"("\"\\\n\r\t\b\f")"},
        {"controls and DEL", std::string("\x01x\x1f\x7f", 4), R"("\u0001x\u001f\u007f")"},
        {"nul", std::string("a\0b", 3), R"("a\u0000b")"},
        {"utf-8 kept", "分组 🚀 é", "\"分组 🚀 é\""},
        {"lone continuation", "a\x80z", "\"a\xEF\xBF\xBDz\""},
        {"overlong", "\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"surrogate", "\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"truncated at end", "ok\xE2\x82", "\"ok\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"above U+10FFFF", "\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
        {"max code point", "\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""},
        {"escape after utf-8", "é\"", "\"é\\\"\""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        std::string out = "x";
        append_json_string(out, c.input);
        EXPECT_EQ(out, "x" + c.expected);
        EXPECT_EQ(json_reference(c.input), c.expected);
    }
}

TEST(Json, StringsMatchTheReferenceOnRandomBytes) {
    std::mt19937_64 rng(9);
    // Biased towards bytes that matter: escapes, controls, UTF-8 lead and continuation bytes.
    const std::string interesting =
        std::string("\"\\\n\r\t\b\f\x01\x1f\x7f\x80\xBF\xC2\xDF\xE0\xED\xEF\xF0\xF4\xF5\xA0\x9F\x90\x8F", 24) +
        std::string(1, '\0');
    std::uniform_int_distribution<int> len(0, 40), byte(0, 255), pick(0, 3);
    std::uniform_int_distribution<std::size_t> which(0, interesting.size() - 1);
    for (int i = 0; i < 100'000; ++i) {
        std::string s(static_cast<std::size_t>(len(rng)), ' ');
        for (char& ch : s) {
            const int p = pick(rng);
            if (p == 0) ch = interesting[which(rng)];
            else if (p == 1) ch = static_cast<char>(byte(rng));
            else ch = static_cast<char>('a' + byte(rng) % 26);
        }
        std::string out;
        append_json_string(out, s);
        if (out != json_reference(s)) {
            ADD_FAILURE() << "case " << i << " differs";
            break;
        }
    }
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
