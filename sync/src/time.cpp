#include <subsync/sync/time.hpp>

#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>

namespace subsync::sync {
namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

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

// Whether every byte of `w` is at most 9 (every byte was a digit once '0' was taken away).
constexpr bool all_digits(std::uint64_t w) noexcept {
    // A byte of 10..127 carries into its top bit when 0x76 is added; one of 128 or more has it set.
    // A carry out of a byte comes only from one of 0x8A or more, which fails already.
    return (((w + 0x7676767676767676ULL) | w) & 0x8080808080808080ULL) == 0;
}

// `YYYY-MM-DDTHH:MM:SSZ`, the form the APIs send nearly always, read as three words (the
// separators checked by a mask, the fourteen digits at once); false for anything else, which
// the general reading below then takes.
bool parse_common_form(std::string_view s, epoch_ms& out) noexcept {
    if (s.size() != 20) return false;
    // Bytes 0-7 `YYYY-MM-`, 8-15 `DDTHH:MM`, 16-19 `:SSZ`; each word's separator bytes masked.
    constexpr std::uint64_t sep_a = 0xFF0000FF00000000ULL, is_a = 0x2D00002D00000000ULL;  // '-' '-'
    constexpr std::uint64_t sep_b = 0x0000FF0000FF0000ULL, is_b = 0x00003A0000540000ULL;  // 'T' ':'
    constexpr std::uint64_t sep_c = 0x00000000FF0000FFULL, is_c = 0x000000005A00003AULL;  // ':' 'Z'
    constexpr std::uint64_t zeros = 0x3030303030303030ULL;
    const auto a = load_le<std::uint64_t>(s.data());
    const auto b = load_le<std::uint64_t>(s.data() + 8);
    const std::uint64_t c = load_le<std::uint32_t>(s.data() + 16);
    if ((a & sep_a) != is_a || (b & sep_b) != is_b || (c & sep_c) != is_c) return false;
    const std::uint64_t da = (a ^ zeros) & ~sep_a, db = (b ^ zeros) & ~sep_b, dc = (c ^ (zeros >> 32)) & ~sep_c;
    if (!all_digits(da) || !all_digits(db) || !all_digits(dc)) return false;
    const unsigned y = byte_at(da, 0) * 1000 + byte_at(da, 1) * 100 + byte_at(da, 2) * 10 + byte_at(da, 3);
    const unsigned mo = byte_at(da, 5) * 10 + byte_at(da, 6), dd = byte_at(db, 0) * 10 + byte_at(db, 1);
    const unsigned h = byte_at(db, 3) * 10 + byte_at(db, 4), mi = byte_at(db, 6) * 10 + byte_at(db, 7);
    const unsigned sec = byte_at(dc, 1) * 10 + byte_at(dc, 2);
    if (mo - 1 > 11 || dd == 0 || h > 23 || mi > 59 || sec > 60) return false;
    const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    constexpr unsigned month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (dd > month_days[mo - 1] + (mo == 2 && leap ? 1U : 0U)) return false;
    // Days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil, which <chrono>'s
    // sys_days{year_month_day} also computes). The year is shifted by one 400-year era so that
    // January and February of year 0 stay non-negative and every division is unsigned.
    const unsigned yy = y + 400 - (mo <= 2 ? 1U : 0U);
    const unsigned era = yy / 400, yoe = yy % 400;
    const unsigned doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + dd - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const std::int64_t days = std::int64_t{era} * 146097 + doe - 719468 - 146097;
    out = clamp_time((days * 86400 + h * 3600 + mi * 60 + sec) * 1000);
    return true;
}

// Every other form read_iso8601() takes. Kept out of line: inlined, the compiler ran its first
// checks, byte by byte, ahead of the common form's word-wide ones.
[[gnu::noinline]] bool parse_general_form(std::string_view s, epoch_ms& out) noexcept {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
        s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
        return false;
    year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return false;

    std::size_t pos = 19;
    std::int64_t millis = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        std::size_t start = pos;
        int scale = 100;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            millis += (s[pos] - '0') * scale;  // digits past milliseconds are truncated
            scale /= 10;
            ++pos;
        }
        if (pos == start) return false;
    }
    std::int64_t offset_min = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om))
            return false;
        offset_min = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
        pos += 6;
    }
    // No zone: UTC, as the official SDKs read it (core/sdktime); the APIG documents print
    // times this way ("2020-08-03T13:09:13").
    if (pos != s.size()) return false;

    auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - minutes{offset_min};
    out = clamp_time(duration_cast<milliseconds>(t.time_since_epoch()).count() + millis);
    return true;
}

}  // namespace

bool read_iso8601(std::string_view s, epoch_ms& out) noexcept {
    return parse_common_form(s, out) || parse_general_form(s, out);
}

namespace {

// Writes v (0 <= v) as exactly `width` digits, most significant first.
char* put_digits(char* p, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i) {
        p[i] = static_cast<char>('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

}  // namespace

// The calendar comes from <chrono>; only the text is done by hand. fmt::format
// with a run-time format string was 27 % of a CSV export's CPU (bench/README.md,
// finding 3). The output is what `{:04}-{:02}-{:02}T{:02}:{:02}:{:02}[.{:03}]Z`
// gave; the time is first clamped to years 1..9999 (clamp_time), so a year has four digits.
void append_iso8601(std::string& out, epoch_ms t) {
    using namespace std::chrono;
    const sys_time<milliseconds> tp{milliseconds{clamp_time(t)}};
    const auto day = floor<days>(tp);
    const year_month_day ymd{day};
    const auto ms_of_day = static_cast<unsigned>((tp - day).count());  // 0 .. 86'399'999

    char buf[40];
    char* p = buf;
    p = put_digits(p, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);  // 1..9999: clamped above
    *p++ = '-';
    p = put_digits(p, static_cast<unsigned>(ymd.month()), 2);
    *p++ = '-';
    p = put_digits(p, static_cast<unsigned>(ymd.day()), 2);
    *p++ = 'T';
    const unsigned secs = ms_of_day / 1000;
    p = put_digits(p, secs / 3600, 2);
    *p++ = ':';
    p = put_digits(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, secs % 60, 2);
    if (const unsigned ms = ms_of_day % 1000; ms != 0) {
        *p++ = '.';
        p = put_digits(p, ms, 3);
    }
    *p++ = 'Z';
    out.append(buf, static_cast<std::size_t>(p - buf));
}

std::string format_iso8601(epoch_ms t) {
    std::string s;
    append_iso8601(s, t);
    return s;
}

}  // namespace subsync::sync
