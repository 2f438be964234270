#include <subsync/sync/time.hpp>

#include "time_common.hpp"

#include <chrono>
#include <cstdint>

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
    return (s.size() == 20 && detail::read_common_iso8601(s.data(), out)) || parse_general_form(s, out);
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
