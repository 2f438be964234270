#pragma once
// The reading of the time form the APIs send nearly always, `YYYY-MM-DDTHH:MM:SSZ`, inline: the
// purchases parser (groups_ondemand.cpp) reads three per item straight from the page, and a call
// into time.cpp cost more than the reading. read_iso8601() (time.cpp) tries it first too.

#include <subsync/sync/time.hpp>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

namespace subsync::sync::detail {

// The bytes at `p` as a little-endian word, whatever the machine's byte order.
template <class Word>
Word load_le(const char* p) noexcept {
    Word w = 0;
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(&w, p, sizeof w);
    } else {
        for (std::size_t i = 0; i < sizeof w; ++i) w |= static_cast<Word>(static_cast<unsigned char>(p[i])) << (8 * i);
    }
    return w;
}

// Byte i of a little-endian word.
constexpr unsigned byte_at(std::uint64_t w, unsigned i) noexcept {
    return static_cast<unsigned>(w >> (8 * i)) & 0xFFU;
}

// The top bit of every byte of `w` that is over 9 (each byte was a digit once '0' was taken away
// when all are 0..9), and maybe of others then: zero exactly when every byte is at most 9.
constexpr std::uint64_t over_nine(std::uint64_t w) noexcept {
    // A byte of 10..127 carries into its top bit when 0x76 is added; one of 128 or more has it set.
    // A carry out of a byte comes only from one of 0x8A or more, which is caught already.
    return ((w + 0x7676767676767676ULL) | w) & 0x8080808080808080ULL;
}

// Each byte i of a word of digit values (0..9) made d[i] * 10 + d[i + 1]: a two-digit number
// starts at every byte, read where one is. No byte carries into the next (at most 99).
constexpr std::uint64_t digit_pairs(std::uint64_t d) noexcept {
    return d * 10 + (d >> 8);
}

// Days from 1970-01-01 to a civil date of year 0..9999 (H. Hinnant's days_from_civil, which
// <chrono>'s sys_days{year_month_day} also computes). The year is shifted by one 400-year era so
// that January and February of year 0 stay non-negative and every division is unsigned.
constexpr std::int64_t days_from_civil(unsigned y, unsigned mo, unsigned dd) noexcept {
    const unsigned yy = y + 400 - (mo <= 2 ? 1U : 0U);
    const unsigned era = yy / 400, yoe = yy % 400;
    const unsigned doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + dd - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return std::int64_t{era} * 146097 + doe - 719468 - 146097;
}

inline constexpr std::uint8_t month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
inline constexpr std::uint16_t days_before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

// January 1st of each year from 1900 to 2156, as days from 1970-01-01, built when compiling: the
// years 1900 to 2155 are read from it (a year's length is the difference to the next one's).
inline constexpr unsigned first_table_year = 1900;
inline constexpr auto year_table = [] {
    std::array<std::int32_t, 257> days{};
    for (unsigned i = 0; i < days.size(); ++i)
        days[i] = static_cast<std::int32_t>(days_from_civil(first_table_year + i, 1, 1));
    return days;
}();
static_assert(year_table[70] == 0 && year_table[71] == 365 && year_table[101] - year_table[100] == 366 &&
              year_table[1] - year_table[0] == 365, "1970 is day 0; 2000 is a leap year, 1900 is not");

/// The 20 bytes at `p` read as `YYYY-MM-DDTHH:MM:SSZ` into `out` (clamp_time()d), as three words:
/// the separators checked by a mask, the fourteen digits at once. False, `out` untouched, for any
/// other 20 bytes; what read_iso8601() then makes of them is its general reading's to say.
[[nodiscard]] inline bool read_common_iso8601(const char* p, epoch_ms& out) noexcept {
    // Bytes 0-7 `YYYY-MM-`, 8-15 `DDTHH:MM`, 16-19 `:SSZ`; each word's separator bytes masked.
    constexpr std::uint64_t sep_a = 0xFF0000FF00000000ULL, is_a = 0x2D00002D00000000ULL;  // '-' '-'
    constexpr std::uint64_t sep_b = 0x0000FF0000FF0000ULL, is_b = 0x00003A0000540000ULL;  // 'T' ':'
    constexpr std::uint64_t sep_c = 0x00000000FF0000FFULL, is_c = 0x000000005A00003AULL;  // ':' 'Z'
    constexpr std::uint64_t zeros = 0x3030303030303030ULL;
    const auto a = load_le<std::uint64_t>(p);
    const auto b = load_le<std::uint64_t>(p + 8);
    const std::uint64_t c = load_le<std::uint32_t>(p + 16);
    if ((a & sep_a) != is_a || (b & sep_b) != is_b || (c & sep_c) != is_c) return false;
    const std::uint64_t da = (a ^ zeros) & ~sep_a, db = (b ^ zeros) & ~sep_b, dc = (c ^ (zeros >> 32)) & ~sep_c;
    if ((over_nine(da) | over_nine(db) | over_nine(dc)) != 0) return false;
    const std::uint64_t pa = digit_pairs(da), pb = digit_pairs(db), pc = digit_pairs(dc);
    const unsigned y = byte_at(pa, 0) * 100 + byte_at(pa, 2), mo = byte_at(pa, 5);
    const unsigned dd = byte_at(pb, 0), h = byte_at(pb, 3), mi = byte_at(pb, 6), sec = byte_at(pc, 1);
    if (mo - 1 > 11 || dd - 1 > 30 || h > 23 || mi > 59 || sec > 60) return false;
    const std::int64_t second_of_day = h * 3600 + mi * 60 + sec;
    if (y - first_table_year < year_table.size() - 1) {
        // 1900 to 2155, the years around now: two loads and a few adds, where the calendar's
        // arithmetic (below) was a long chain of multiplications per time.
        const std::int32_t jan1 = year_table[y - first_table_year];
        const bool leap = year_table[y - first_table_year + 1] - jan1 == 366;
        if (dd > month_days[mo - 1] + (mo == 2 && leap ? 1U : 0U)) return false;
        const std::int64_t days = jan1 + std::int64_t{days_before_month[mo - 1]} + (mo > 2 && leap ? 1 : 0) + dd - 1;
        out = (days * 86400 + second_of_day) * 1000;  // within the kept range: no clamp
        return true;
    }
    const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    if (dd > month_days[mo - 1] + (mo == 2 && leap ? 1U : 0U)) return false;
    out = clamp_time((days_from_civil(y, mo, dd) * 86400 + second_of_day) * 1000);
    return true;
}

}  // namespace subsync::sync::detail
