// The streaming body filter (sync/src/body_filter.hpp) and the body budget (http_client.hpp):
// what a listing answer keeps as its bytes arrive, and how much memory all answers may hold.

#include "body_filter.hpp"

#include <subsync/sync/http_client.hpp>
#include <subsync/sync/parse.hpp>

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace subsync::sync {
namespace {

std::string filter_whole(body_shape shape, std::string_view body) {
    detail::json_filter f(shape);
    std::string out;
    f.feed(body, out);
    return out;
}

std::string filter_bytewise(body_shape shape, std::string_view body) {
    detail::json_filter f(shape);
    std::string out;
    for (char c : body) f.feed(std::string_view(&c, 1), out);
    return out;
}

struct filter_case {
    const char* name;
    body_shape shape;
    std::string input;
    std::string expected;
};

TEST(BodyFilter, KeepsWhatTheParsersReadAndDropsTheRest) {
    const filter_case cases[] = {
        {"unknown top-level member dropped", body_shape::purchases_page,
         R"({"x_padding":"xxxxxxxx","total":1,"size":1,"purchases":[{"id":"a"}]})",
         R"({"total":1,"size":1,"purchases":[{"id":"a"}]})"},
        {"unknown members inside items dropped, nested values too", body_shape::purchases_page,
         R"({"total":1,"purchases":[{"junk":{"a":[1,{"b":"}]"}]},"id":"a","more":[[]],"quota_left":5}]})",
         R"({"total":1,"purchases":[{"id":"a","quota_left":5}]})"},
        {"whitespace between tokens dropped, strings untouched", body_shape::purchases_page,
         "{ \"total\" : 1 ,\n\t\"purchases\" : [ { \"id\" : \"a b\" } ] }",
         R"({"total":1,"purchases":[{"id":"a b"}]})"},
        {"known members kept whole whatever they hold", body_shape::purchases_page,
         R"({"total":"1","purchases":[{"group_domains":[{"odd":1}],"tag":2,"quota_left":"12"}]})",
         R"({"total":"1","purchases":[{"group_domains":[{"odd":1}],"quota_left":"12"}]})"},
        {"a key sent twice stays twice", body_shape::orders_document,
         R"({"resources":[],"resources":[{"region_id":null,"resources":[{"resource_id":"r","x":1}]}]})",
         R"({"resources":[],"resources":[{"region_id":null,"resources":[{"resource_id":"r"}]}]})"},
        {"error documents keep their members", body_shape::purchases_page,
         R"({"error_code":"APIG.0201","error_msg":"bad","request_id":"r","trace":"t"})",
         R"({"error_code":"APIG.0201","error_msg":"bad","request_id":"r"})"},
        {"an escaped key may spell a known one: kept", body_shape::purchases_page,
         R"({"t\u006ftal":1,"x":2})", R"({"t\u006ftal":1})"},
        {"escaped quotes inside a skipped string", body_shape::purchases_page,
         R"({"x":"a\"b\\","total":0})", R"({"total":0})"},
        {"a list of another type is kept whole", body_shape::purchases_page,
         R"({"total":1,"purchases":{"x":1}})", R"({"total":1,"purchases":{"x":1}})"},
        {"any shape keeps every member", body_shape::any, R"({"a": [1, {"b": null}], "c": "d"})",
         R"({"a":[1,{"b":null}],"c":"d"})"},
        {"not JSON: kept verbatim for the parser to refuse", body_shape::purchases_page,
         "<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"},
        {"a structural error keeps the rest verbatim", body_shape::purchases_page,
         R"({"x":1]"total":1})", R"({]"total":1})"},
        {"bytes after the document kept for the parser to refuse", body_shape::purchases_page,
         R"({"total":0} {"total":1})", R"({"total":0}{"total":1})"},
        {"a truncated body stays truncated", body_shape::purchases_page, R"({"total":3,"purchases":[{"id":"a)",
         R"({"total":3,"purchases":[{"id":"a)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(filter_whole(c.shape, c.input), c.expected);
        EXPECT_EQ(filter_bytewise(c.shape, c.input), c.expected);
    }
}

TEST(BodyFilter, AFilteredPageParsesAsTheOriginal) {
    const std::string page =
        R"({"x_padding":")" + std::string(100000, 'x') +
        R"(","total":2,"size":2,"purchases":[{"id":"a","group_id":"g","group_name":"n","quota_left":3,"extra":{"k":[1,2]}},)"
        R"({"id":"b","group_id":"g","group_name":"m","quota_left":"12"}]})";
    std::string kept = filter_whole(body_shape::purchases_page, page);
    EXPECT_LT(kept.size(), 300u);
    body_parser parser;
    auto original = parser.groups(page);
    auto filtered = parser.groups(kept);
    ASSERT_TRUE(original) << original.error().message;
    ASSERT_TRUE(filtered) << filtered.error().message;
    EXPECT_EQ(filtered->total, original->total);
    EXPECT_EQ(filtered->served, original->served);
    ASSERT_EQ(filtered->purchases.size(), 1u);
    EXPECT_EQ(filtered->purchases[0].id, original->purchases[0].id);
    ASSERT_EQ(filtered->unreadable.size(), 1u);
    EXPECT_EQ(filtered->unreadable[0].message, original->unreadable[0].message);
}

TEST(BodyFilter, CountsTheTokensItKeeps) {
    detail::json_filter f(body_shape::purchases_page);
    std::string out;
    f.feed(R"({"junk":[1,2,3,4,5],"total":1,"purchases":[{"id":"a"}]})", out);
    // {  "total" 1  "purchases" [  {  "id" "a"
    EXPECT_EQ(f.kept_tokens(), 8u);
}

// The filter takes strings, scalars and the punctuation around them in runs: wherever the
// bytes are cut (inside a key, an escape, whitespace, between a key and its colon), the output
// and the tokens counted are those of the whole body.
TEST(BodyFilter, GivesTheSameOutputHoweverTheBodyIsSplit) {
    const std::string key_max_long(128, 'k');
    const std::vector<std::pair<body_shape, std::string>> bodies = {
        {body_shape::purchases_page,
         R"({"total":2,"x":{"a":[1,"}\"]"]},"size":2, "purchases" : [ {"id":"a\"b","t\u0069":[1,2],)"
         R"("group_domains":["d",{"k":null}],"quota_left":-1.5e3,"junk":"\\"},)"
         "\n\t{\"" + key_max_long + R"(":1,"id":"c","quota_used":true} ]} )"},
        {body_shape::orders_document,
         R"({"resources":[{"region_id":"r","y":[[]],"resources":[{"resource_id":"i","tag_list":[]}]}],)"
         R"("error_msg":"e"} trailing)"},
        {body_shape::any, R"([1, {"a" : "b\"", "c":[true,false,null]}, "d"])"},
    };
    for (const auto& [shape, body] : bodies) {
        SCOPED_TRACE(body);
        detail::json_filter whole(shape);
        std::string expected;
        whole.feed(body, expected);
        EXPECT_EQ(filter_bytewise(shape, body), expected);
        for (std::size_t cut = 0; cut <= body.size(); ++cut) {
            detail::json_filter split(shape);
            std::string out;
            split.feed(std::string_view(body).substr(0, cut), out);
            split.feed(std::string_view(body).substr(cut), out);
            ASSERT_EQ(out, expected) << "cut at " << cut;
            ASSERT_EQ(split.kept_tokens(), whole.kept_tokens()) << "cut at " << cut;
        }
    }
}

TEST(BodyBudget, LeasesShareOneBudgetAndGiveItBack) {
    const auto before = body_budget();
    const auto in_use = body_budget_in_use();
    set_body_budget(in_use + 1000);
    {
        body_lease a, b;
        EXPECT_TRUE(a.grow(600));
        EXPECT_FALSE(b.grow(600)) << "only 400 bytes left";
        EXPECT_EQ(b.held(), 0u);
        EXPECT_TRUE(b.grow(400));
        a.release();
        EXPECT_TRUE(b.grow(600));
        body_lease moved = std::move(b);
        EXPECT_EQ(moved.held(), 1000u);
        EXPECT_EQ(body_budget_in_use(), in_use + 1000);
    }
    EXPECT_EQ(body_budget_in_use(), in_use);
    set_body_budget(before);
}

}  // namespace
}  // namespace subsync::sync

namespace subsync::sync {
namespace {

std::string raw_response(std::string_view status_line, std::string_view body, std::string_view extra = "") {
    return std::string(status_line) + "\r\nContent-Type: application/json\r\n" + std::string(extra) +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

// Found by fuzz_http_response (input "\xf9": shape any, no bytes): Beast asserted in put_eof().
TEST(ResponseReader, NoBytesAtAllIsAnErrorNotACrash) {
    auto r = read_response("", body_shape::any);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("read response"), std::string::npos) << r.error().message;
    auto partial = read_response("HTTP/1.1 200 OK\r\nContent-Le", body_shape::any);
    EXPECT_FALSE(partial);
    EXPECT_EQ(body_budget_in_use(), 0u);
}

TEST(ResponseReader, FiltersListingsSkipsInterimAnswersAndCapsErrorBodies) {
    const std::string page = R"({"x_padding":")" + std::string(200000, 'x') + R"(","total":0,"purchases":[]})";
    auto r = read_response("HTTP/1.1 100 Continue\r\n\r\n" + raw_response("HTTP/1.1 200 OK", page, "X-Request-Id: q-7\r\n"),
                           body_shape::purchases_page);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200u);
    EXPECT_EQ(r->request_id, "q-7");
    EXPECT_EQ(r->body, R"({"total":0,"purchases":[]})");
    EXPECT_GT(r->lease.held(), 0u);

    const std::string long_error = R"({"error_code":"APIG.0201","error_msg":")" + std::string(200000, 'e') + "\"}";
    auto e = read_response(raw_response("HTTP/1.1 400 Bad Request", long_error), body_shape::purchases_page);
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_EQ(e->body.size(), error_body_kept);

    auto over = read_response(raw_response("HTTP/1.1 200 OK", page), body_shape::purchases_page, 1000);
    ASSERT_FALSE(over);
    EXPECT_NE(over.error().message.find("exceeds the 0 MiB body limit"), std::string::npos) << over.error().message;
}

TEST(ResponseReader, AnAnswerOverTheBudgetFailsNamingIt) {
    const auto before = body_budget();
    set_body_budget(body_budget_in_use() + 100000);
    std::string items;
    for (int i = 0; i < 2000; ++i) items += std::string(i ? "," : "") + R"({"id":"item-)" + std::to_string(i) + "\"}";
    const std::string page = R"({"total":2000,"purchases":[)" + items + "]}";
    auto r = read_response(raw_response("HTTP/1.1 200 OK", page), body_shape::purchases_page);
    set_body_budget(before);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("needs more memory than the 0 MiB all answers in flight may hold "
                                     "(sync.body_budget_mib)"),
              std::string::npos)
        << r.error().message;
}

// A page's body may be kept as it came and filtered after (fetch.cpp recognises an unchanged page
// by its digest before filtering it): the result is the filter's as the bytes arrived.
TEST(ResponseReader, ABodyKeptAsItCameFiltersAfterToWhatStreamingKept) {
    const std::string page = R"({"total":2, "x_volatile":"r-1","purchases":[{"id":"a","note":"x"} , {"id":"b"}]})";
    const auto raw = raw_response("HTTP/1.1 200 OK", page);
    auto streamed = read_response(raw, body_shape::purchases_page);
    ASSERT_TRUE(streamed) << streamed.error().message;
    EXPECT_FALSE(streamed->unfiltered);

    auto late = read_response(raw, body_shape::purchases_page, 1 << 20, page.size());
    ASSERT_TRUE(late) << late.error().message;
    EXPECT_TRUE(late->unfiltered);
    EXPECT_EQ(late->body, page);
    EXPECT_GE(late->lease.held(), page.size()) << "charged as it came";
    body_scratch scratch{"left from an earlier page", {}};
    ASSERT_TRUE(filter_body(*late, body_shape::purchases_page, scratch, "here"));
    EXPECT_EQ(scratch.bytes, page) << "the scratch holds the body as it came";
    EXPECT_EQ(scratch.lease.held(), scratch.bytes.capacity()) << "charged to the budget while it waits";
    EXPECT_FALSE(late->unfiltered);
    EXPECT_EQ(late->body, streamed->body);
    EXPECT_EQ(late->body, R"({"total":2,"purchases":[{"id":"a"},{"id":"b"}]})");
    detail::json_filter counted(body_shape::purchases_page);
    std::string out;
    counted.feed(page, out);
    EXPECT_EQ(late->lease.held(), late->body.capacity() + counted.kept_tokens() * body_token_cost)
        << "what the filtered body costs";
    ASSERT_TRUE(filter_body(*late, body_shape::purchases_page, scratch, "here")) << "filtered once, then nothing to do";
    EXPECT_EQ(late->body, streamed->body);

    // One byte longer than allowed: filtered from where the limit passed, the same again.
    auto longer = read_response(raw, body_shape::purchases_page, 1 << 20, page.size() - 1);
    ASSERT_TRUE(longer) << longer.error().message;
    EXPECT_FALSE(longer->unfiltered);
    EXPECT_EQ(longer->body, streamed->body);

    // Error answers are capped as before, never kept as they came.
    auto e = read_response(raw_response("HTTP/1.1 500 Oops", page), body_shape::purchases_page, 1 << 20, 1 << 20);
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_FALSE(e->unfiltered);
    EXPECT_EQ(e->body, page);
}

// A body the budget has no room for as it came is filtered as it arrives instead: a page padded
// with an unknown member costs what its listing fields cost, as it did before bodies were kept.
TEST(ResponseReader, ABodyTooLargeForTheBudgetAsItCameIsFilteredAsItArrives) {
    const std::string page = R"({"x_padding":")" + std::string(300000, 'x') + R"(","total":1,"purchases":[{"id":"a"}]})";
    const auto raw = raw_response("HTTP/1.1 200 OK", page);
    const auto before = body_budget();
    set_body_budget(body_budget_in_use() + 100000);
    auto late = read_response(raw, body_shape::purchases_page, 1 << 20, 1 << 20);
    set_body_budget(before);
    ASSERT_TRUE(late) << late.error().message;
    EXPECT_FALSE(late->unfiltered);
    EXPECT_EQ(late->body, R"({"total":1,"purchases":[{"id":"a"}]})");
    EXPECT_LT(late->lease.held(), 100000u);
}

TEST(ResponseReader, FilteringABodyKeptAsItCameFailsOverTheBudgetNamingIt) {
    std::string items;
    for (int i = 0; i < 2000; ++i) items += std::string(i ? "," : "") + R"({"id":"item-)" + std::to_string(i) + "\"}";
    const std::string page = R"({"total":2000,"purchases":[)" + items + "]}";
    auto late = read_response(raw_response("HTTP/1.1 200 OK", page), body_shape::purchases_page, 1 << 20, 1 << 20);
    ASSERT_TRUE(late) << late.error().message;
    ASSERT_TRUE(late->unfiltered);
    const auto before = body_budget();
    set_body_budget(body_budget_in_use() + 100000);  // the body as it came fits, its tokens do not
    body_scratch scratch;
    auto kept = filter_body(*late, body_shape::purchases_page, scratch, "127.0.0.1:1");
    set_body_budget(before);
    ASSERT_FALSE(kept);
    EXPECT_NE(kept.error().message.find("response from 127.0.0.1:1 needs more memory than the 0 MiB"), std::string::npos)
        << kept.error().message;
    EXPECT_EQ(late->lease.held(), 0u);
}

}  // namespace
}  // namespace subsync::sync
