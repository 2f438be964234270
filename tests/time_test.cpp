// The ISO-8601 reading and writing (sync/src/time.cpp): the common form's fast reading against
// the general one and <chrono>, and the hand-written formatter against fmt.

#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace subsync::sync {
namespace {

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

}  // namespace
}  // namespace subsync::sync
