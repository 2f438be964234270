#include <subsync/sync/time.hpp>

#include <chrono>

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

// `YYYY-MM-DDTHH:MM:SSZ`, the form the APIs send nearly always, read in one pass over its
// digits; nullopt for anything else, which the general reading below then takes.
std::optional<epoch_ms> parse_common_form(std::string_view s) noexcept {
    if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
        return std::nullopt;
    constexpr std::size_t at[14] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    unsigned d[14];
    unsigned bad = 0;
    for (std::size_t i = 0; i < 14; ++i) {
        d[i] = static_cast<unsigned>(static_cast<unsigned char>(s[at[i]])) - unsigned{'0'};
        bad |= d[i] > 9 ? 1U : 0U;
    }
    if (bad != 0) return std::nullopt;
    const auto y = static_cast<int>(d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]);
    const unsigned mo = d[4] * 10 + d[5], dd = d[6] * 10 + d[7];
    const unsigned h = d[8] * 10 + d[9], mi = d[10] * 10 + d[11], sec = d[12] * 10 + d[13];
    if (mo - 1 > 11 || dd == 0 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    constexpr unsigned month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (dd > month_days[mo - 1] + (mo == 2 && leap ? 1U : 0U)) return std::nullopt;
    // Days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil, which <chrono>'s
    // sys_days{year_month_day} also computes); years 0..9999 only here, so no negative eras.
    const int yy = y - (mo <= 2 ? 1 : 0);
    const int era = (yy >= 0 ? yy : yy - 399) / 400;
    const auto yoe = static_cast<unsigned>(yy - era * 400);
    const unsigned doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + dd - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const std::int64_t days = std::int64_t{era} * 146097 + static_cast<std::int64_t>(doe) - 719468;
    return clamp_time((days * 86400 + h * 3600 + mi * 60 + sec) * 1000);
}

}  // namespace

std::optional<epoch_ms> parse_iso8601(std::string_view s) noexcept {
    using namespace std::chrono;
    if (auto t = parse_common_form(s)) return t;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
        s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
        return std::nullopt;
    year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;

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
        if (pos == start) return std::nullopt;
    }
    std::int64_t offset_min = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om))
            return std::nullopt;
        offset_min = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
        pos += 6;
    }
    // No zone: UTC, as the official SDKs read it (core/sdktime); the APIG documents print
    // times this way ("2020-08-03T13:09:13").
    if (pos != s.size()) return std::nullopt;

    auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - minutes{offset_min};
    return clamp_time(duration_cast<milliseconds>(t.time_since_epoch()).count() + millis);
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
