// The listing stage's key → entry table (sync/include/subsync/sync/detail/key_table.hpp),
// checked against std::map on the same operations.
#include <subsync/sync/detail/key_table.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace subsync::sync::detail {
namespace {

struct value {
    std::int64_t n = -1;
    std::string text;  // a value with a destructor: blocks must construct and destroy it
};

std::vector<std::pair<std::string, std::int64_t>> contents(const key_table<value>& t) {
    std::vector<std::pair<std::string, std::int64_t>> out;
    t.for_each([&](std::string_view k, const value& v) { out.emplace_back(std::string(k), v.n); });
    return out;
}

TEST(KeyTable, AgreesWithAMapOverManyKeysOfEverySize) {
    key_table<value> t;
    std::map<std::string, std::int64_t> ref;
    std::vector<std::string> order;  // insertion order, which iteration keeps
    std::mt19937_64 rng(7);
    for (std::int64_t i = 0; i < 30'000; ++i) {
        // UUID-like keys, repeats, the empty key, binary bytes and keys longer than an arena block.
        std::string k;
        switch (i % 7) {
            case 0: k = std::to_string(rng() % 5'000); break;
            case 1: k = std::string(1 + rng() % (i % 70 == 1 ? 40'000 : 200), static_cast<char>('a' + i % 26)); break;
            case 2: k = i % 14 == 2 ? std::string() : std::string("\0\xff", 2) + std::to_string(i); break;
            default: k = std::to_string(rng()) + "-" + std::to_string(i); break;
        }
        const auto [v, inserted] = t.try_emplace(k);
        const bool fresh = ref.emplace(k, i).second;
        ASSERT_EQ(inserted, fresh) << "key #" << i;
        if (inserted) {
            EXPECT_EQ(v->n, -1) << "a new value is default-constructed";
            v->n = i;
            v->text = k.substr(0, 10);
            order.push_back(k);
        }
    }
    ASSERT_EQ(t.size(), ref.size());
    for (const auto& [k, n] : ref) {
        const value* v = t.find(k);
        ASSERT_NE(v, nullptr) << k.size() << "-byte key";
        EXPECT_EQ(v->n, n);
        EXPECT_EQ(v->text, k.substr(0, 10));
    }
    EXPECT_EQ(t.find("no such key"), nullptr);
    const auto listed = contents(t);
    ASSERT_EQ(listed.size(), order.size());
    for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(listed[i].first, order[i]) << "in insertion order";
}

TEST(KeyTable, ValuesStayPutAsItGrows) {
    key_table<value> t;
    value* first = t.try_emplace("first").first;
    first->n = 1;
    for (int i = 0; i < 100'000; ++i) t.try_emplace("k" + std::to_string(i));
    EXPECT_EQ(t.find("first"), first);
    EXPECT_EQ(first->n, 1);
}

TEST(KeyTable, RetainIfKeepsOrderAndFindsWhatIsLeft) {
    key_table<value> t;
    t.reserve(10);
    for (int i = 0; i < 1'000; ++i) t.try_emplace(std::to_string(i)).first->n = i;
    t.retain_if([](std::string_view, value& v) {
        v.text = "kept";
        return v.n % 3 == 0;
    });
    ASSERT_EQ(t.size(), 334u);
    EXPECT_EQ(t.find("3")->n, 3);
    EXPECT_EQ(t.find("3")->text, "kept");
    EXPECT_EQ(t.find("4"), nullptr);
    const auto listed = contents(t);
    EXPECT_EQ(listed.front().first, "0");
    EXPECT_EQ(listed.back().first, "999");
    const auto [v, inserted] = t.try_emplace("4");
    EXPECT_TRUE(inserted);
    EXPECT_EQ(v->n, -1);
}

}  // namespace
}  // namespace subsync::sync::detail
