// dataset::generated(): deterministic, awkward data. Each awkward kind is chosen by index
// (i % k), so a small dataset already holds all of them whatever the seed; the seed drives ids,
// times and ordinary numbers. No Beast here.

#include "json_writer.hpp"
#include "subsync/emulator/server.hpp"

#include <array>
#include <cstdio>
#include <limits>
#include <optional>
#include <string_view>

namespace subsync::emulator {

namespace {

using detail::append_field;
using detail::append_key;
using detail::append_string;
using detail::close_with;

// splitmix64's finaliser: a bijection on 64-bit values, so distinct inputs give distinct ids.
constexpr std::uint64_t mix(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31U);
}

enum class domain : std::uint64_t { purchase = 1, group, app_key, resource, project, value };

class generator {
public:
    generator(std::uint64_t seed, std::chrono::sys_seconds base) : seed_(seed), base_(base) {}

    /// The "now" the generated times spread around, in seconds since the epoch.
    std::int64_t base_seconds() const { return base_.time_since_epoch().count(); }

    /// A random-looking number for (domain, index, salt); same inputs, same number.
    std::uint64_t number(domain d, std::uint64_t index, std::uint64_t salt = 0) const {
        return mix(mix(mix(seed_ ^ static_cast<std::uint64_t>(d)) + index) ^ salt);
    }

    /// An integer in [lo, hi].
    std::int64_t between(domain d, std::uint64_t index, std::uint64_t salt, std::int64_t lo, std::int64_t hi) const {
        const auto span = static_cast<std::uint64_t>(hi - lo) + 1U;
        return lo + static_cast<std::int64_t>(number(d, index, salt) % span);
    }

    /// 8-4-4-4-12 hex, version nibble 4. The last 16 hex digits are a bijection of index, so ids
    /// of one domain never collide.
    std::string uuid(domain d, std::uint64_t index) const {
        const std::string high = hex(number(d, index, 0x55));
        const std::string low = hex(mix(index + mix(seed_ ^ (static_cast<std::uint64_t>(d) << 32U))));
        return high.substr(0, 8) + "-" + high.substr(8, 4) + "-4" + high.substr(13, 3) + "-" + low.substr(0, 4) +
               "-" + low.substr(4, 12);
    }

    std::string project_id(std::uint64_t index) const {
        return hex(number(domain::project, index, 1)) + hex(number(domain::project, index, 2));
    }

    static std::string hex(std::uint64_t v) {
        std::array<char, 17> buffer{};
        std::snprintf(buffer.data(), buffer.size(), "%016llx", static_cast<unsigned long long>(v));
        return std::string(buffer.data(), 16);
    }

private:
    std::uint64_t seed_;
    std::chrono::sys_seconds base_;
};

constexpr std::int64_t day = 86'400;
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();  // 9223372036854775807
constexpr std::int64_t above_double = (std::int64_t{1} << 53) + 1;           // 9007199254740993

std::string iso8601(std::int64_t epoch_seconds) {
    using namespace std::chrono;
    const sys_seconds t{seconds{epoch_seconds}};
    const auto midnight = floor<days>(t);
    const year_month_day date{midnight};
    const hh_mm_ss time{t - midnight};
    std::array<char, 32> buffer{};
    std::snprintf(buffer.data(), buffer.size(), "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(date.year()),
                  static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                  static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()));
    return std::string(buffer.data());
}


// CSV/spreadsheet formula prefixes (= + - @), CJK, emoji, quotes, commas, CR/LF, tabs,
// leading/trailing blanks; the group number keeps names unique.
std::string group_name(std::uint64_t g) {
    const std::string n = std::to_string(g);
    switch (g % 10) {
    case 0: return "api_group_" + n;
    case 1: return "=HYPERLINK(\"https://example.com/\",\"group " + n + "\")";
    case 2: return "+SUM(1,2) group " + n;
    case 3: return "-1+2 group " + n;
    case 4: return "@SUM(A1) group " + n;
    case 5: return "中文分组_" + n + "（测试）";
    case 6: return "emoji 🚀🔥 group " + n;
    case 7: return "say \"hi\", then a comma, group " + n;
    case 8: return "multi\r\nline\ngroup " + n;
    default: return " padded,\ttab group " + n + " ";
    }
}

std::optional<std::string> group_remark(std::uint64_t g) {
    if (g % 7 == 3) {
        return std::nullopt;
    }
    const std::string n = std::to_string(g);
    switch (g % 6) {
    case 0: return "API group " + n;
    case 1: return "=cmd|' /C calc'!A0 " + n;
    case 2: return "备注：第" + n + "组 — emoji 😀👍🏽";
    case 3: return "line one\r\nline two, \"quoted\" " + n;
    case 4: return "@backslash \\ and controls \x01" "\x1f" " " + n;
    default: return "";
    }
}

void append_group_domains(std::string& out, std::uint64_t g) {
    append_key(out, "group_domains");
    switch (g % 4) {
    case 1:
        out += "[";
        append_string(out, "api" + std::to_string(g) + ".example.com");
        out += ",";
        append_string(out, "分组.example.cn");
        out += "],";
        return;
    case 2: out += "[],"; return;
    default: out += "null,"; return;
    }
}

std::string make_purchase(const generator& gen, std::uint64_t i, std::uint64_t g, std::string& group_id_out,
                          std::string& group_name_out, std::string& id_out) {
    id_out = gen.uuid(domain::purchase, i);
    group_id_out = gen.uuid(domain::group, g);
    group_name_out = group_name(g);

    std::int64_t quota_left = gen.between(domain::value, i, 1, 0, 1'000'000'000);
    switch (i % 10) {
    case 0: quota_left = int64_max; break;
    case 1: quota_left = above_double; break;
    case 2: quota_left = 0; break;
    case 3: quota_left = 2'000'000'000; break;
    default: break;
    }
    std::int64_t quota_used = gen.between(domain::value, i, 2, 0, 10'000'000);
    if (i % 7 == 5) {
        quota_used = above_double;
    } else if (i % 7 == 0) {
        quota_used = 0;
    }

    // expire_time from a year before the base to two years after; some exactly at the base or
    // at base + 30 days (typical alert thresholds), some at midnight.
    std::int64_t offset = gen.between(domain::value, i, 3, -365 * day, 730 * day);
    if (i % 20 == 7) {
        offset = 0;
    } else if (i % 20 == 8) {
        offset = 30 * day;
    } else if (i % 6 == 2) {
        offset -= ((offset % day) + day) % day;
    }
    const std::int64_t expire = gen.base_seconds() + offset;
    static constexpr std::array<std::int64_t, 3> terms{365 * day, 30 * day, 730 * day};
    const std::int64_t start = expire - terms[i % 3];
    const std::int64_t ordered = start - gen.between(domain::value, i, 4, 0, 3 * day);

    std::string out = "{";
    append_field(out, "id", id_out);
    append_field(out, "group_id", group_id_out);
    append_field(out, "group_name", group_name_out);
    append_field(out, "group_remark", group_remark(g));
    append_group_domains(out, g);
    append_field(out, "quota_used", quota_used);
    append_field(out, "quota_left", quota_left);
    append_field(out, "order_time", iso8601(ordered));
    append_field(out, "start_time", iso8601(start));
    append_field(out, "expire_time", iso8601(expire));
    append_field(out, "app_key", gen.uuid(domain::app_key, i));
    append_field(out, "app_secret", std::string("******"));
    close_with(out, '}');
    return out;
}

void append_tags(std::string& out, const generator& gen, std::uint64_t j) {
    append_key(out, "tag_list");
    out += "[";
    const auto tag = [&out](std::string_view key, const std::string& value) {
        out += "{";
        append_field(out, "key", std::string(key));
        append_field(out, "value", value);
        close_with(out, '}');
        out += ",";
    };
    switch (j % 5) {
    case 0: break;
    case 1: tag("dept", "dev"); break;
    case 2:
        tag("env", "prod");
        tag("cost-center", "CC_" + std::to_string(gen.between(domain::value, j, 10, 1000, 9999)));
        break;
    case 3:
        tag("owner", "team_a-b");
        tag("k2", "v" + generator::hex(gen.number(domain::value, j, 11)) + "-" +
                      generator::hex(gen.number(domain::value, j, 12)).substr(0, 18));  // 36 characters
        tag("dept", "ops");
        break;
    default: tag("dept", "sec-" + std::to_string(gen.between(domain::value, j, 13, 10, 99))); break;
    }
    close_with(out, ']');
    out += ",";
}

std::string make_resource(const generator& gen, std::uint64_t j) {
    static constexpr std::array<std::string_view, 4> types{
        "hws.resource.type.secmaster.typical", "hws.resource.type.secmaster.ecs",
        "hws.resource.type.secmaster.log", "hws.resource.type.secmaster.soar"};
    static constexpr std::array<std::string_view, 5> specs{"csb.professional", "csb.standard", "csb.basic",
                                                           "csb.ecs.quota", "csb.log.collect"};
    // The doc says the value is case-insensitive, so some come in other cases.
    struct charging {
        std::string_view mode;
        bool prepaid;
    };
    static constexpr std::array<charging, 10> modes{{{"PREPAID", true},
                                                     {"PREPAID", true},
                                                     {"PREPAID", true},
                                                     {"PREPAID", true},
                                                     {"POSTPAID", false},
                                                     {"POSTPAID", false},
                                                     {"prepaid", true},
                                                     {"PostPaid", false},
                                                     {"PREPAID", true},
                                                     {"Prepaid", true}}};
    const auto [mode, prepaid] = modes[j % modes.size()];
    const bool has_order = prepaid && j % 10 != 8;  // a PREPAID resource without order_id too
    const bool has_expire = j % 4 != 3;             // either mode may lack expire_time

    const std::int64_t base_ms = gen.base_seconds() * 1000;
    const std::int64_t created = base_ms - gen.between(domain::value, j, 20, 0, 730 * day * 1000);
    const std::int64_t expires = base_ms + gen.between(domain::value, j, 21, -365 * day * 1000, 730 * day * 1000);

    std::string out = "{";
    append_field(out, "resource_id", gen.uuid(domain::resource, j));
    append_field(out, "resource_type", std::string(types[j % types.size()]));
    append_field(out, "resource_spec_code", std::string(specs[j % specs.size()]));
    append_field(out, "resource_size", j % 6 == 5 ? std::int64_t{2'147'483'647} : gen.between(domain::value, j, 22, 1, 100));
    append_field(out, "resource_status", std::int64_t{0});
    append_key(out, "to_period");
    out += j % 2 == 1 ? "true," : "false,";
    if (has_order) {
        // Shaped like the seed's "CS2510212051NLDL4": CS, ten digits, five capitals.
        std::string letters = generator::hex(gen.number(domain::value, j, 24)).substr(0, 5);
        for (char& c : letters) {
            c = static_cast<char>('A' + (c % 26));
        }
        append_field(out, "order_id",
                     "CS" + std::to_string(gen.between(domain::value, j, 23, 2'401'010'000, 2'512'312'359)) + letters);
    }
    append_field(out, "charging_mode", std::string(mode));
    append_field(out, "create_time", created);
    if (has_expire) {
        append_field(out, "expire_time", expires);
    }
    append_tags(out, gen, j);
    close_with(out, '}');
    return out;
}

std::string make_orders(const generator& gen, std::size_t resources) {
    // The null region is second, so it is present as soon as there are two resources.
    static constexpr std::array<const char*, 5> regions{"cn-north-4", nullptr, "ap-southeast-1", "cn-east-3",
                                                        "la-south-2"};
    const std::size_t groups = resources < regions.size() ? resources : regions.size();
    std::string out = R"({"resources":[)";
    for (std::size_t k = 0; k < groups; ++k) {
        out += "{";
        append_field(out, "region_id",
                     regions[k] == nullptr ? std::optional<std::string>{} : std::optional<std::string>{regions[k]});
        append_field(out, "project_id", gen.project_id(k));
        append_key(out, "resources");
        out += "[";
        for (std::size_t j = k; j < resources; j += groups) {
            out += make_resource(gen, j);
            out += ",";
        }
        close_with(out, ']');
        out += "},";
    }
    close_with(out, ']');
    out += "}";
    return out;
}

}  // namespace

dataset dataset::generated(std::size_t purchases, std::size_t resources, std::uint64_t seed,
                           std::chrono::sys_seconds base) {
    const generator gen(seed, base);
    dataset out;
    out.purchases.reserve(purchases);
    std::vector<std::uint64_t> group_of;
    group_of.reserve(purchases);
    std::uint64_t groups = 0;
    for (std::uint64_t i = 0; i < purchases; ++i) {
        // Every fifth purchase buys the group of the purchase two before it again.
        const std::uint64_t g = (i % 5 == 4) ? group_of[i - 2] : groups++;
        group_of.push_back(g);
        purchase p;
        p.json = make_purchase(gen, i, g, p.group_id, p.group_name, p.id);
        out.purchases.push_back(std::move(p));
    }
    out.orders_json = make_orders(gen, resources);
    return out;
}

}  // namespace subsync::emulator
