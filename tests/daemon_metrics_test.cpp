// /metrics and /healthz: the exposition is read back by a strict parser of the Prometheus text
// format (0.0.4), so a malformed line, a broken histogram or a bad escape fails here before a
// scraper ever sees it.

#include "support/daemon_process.hpp"

#include <subsync/daemon/health.hpp>
#include <subsync/daemon/metrics.hpp>
#include <subsync/emulator/server.hpp>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <map>
#include <set>
#include <stdexcept>

namespace subsync {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// A strict parser of https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct family {
    std::string type = "untyped";
    std::string help;
    std::vector<sample> samples;
};

struct exposition {
    std::map<std::string, family> families;

    /// The value of the sample `name{labels}`; throws when there is none.
    double at(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
        for (const auto& [_, f] : families)
            for (const auto& s : f.samples)
                if (s.name == name && s.labels == labels) return s.value;
        throw std::out_of_range("no sample " + name);
    }
};

[[noreturn]] void bad(std::size_t line, const std::string& why) {
    throw std::runtime_error("line " + std::to_string(line) + ": " + why);
}

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

std::string read_name(std::string_view s, std::size_t& i, bool label, std::size_t line) {
    const std::size_t b = i;
    if (i >= s.size() || !name_start(s[i]) || (label && s[i] == ':')) bad(line, "expected a name");
    while (i < s.size() && name_char(s[i]) && !(label && s[i] == ':')) ++i;
    return std::string(s.substr(b, i - b));
}

double parse_value(std::string_view v, std::size_t line) {
    if (v == "+Inf") return INFINITY;
    if (v == "-Inf") return -INFINITY;
    if (v == "NaN") return NAN;
    if (v.empty()) bad(line, "missing value");
    std::size_t used = 0;
    const double d = std::stod(std::string(v), &used);
    if (used != v.size()) bad(line, "bad value \"" + std::string(v) + "\"");
    return d;
}

/// The family a sample name belongs to, given the declared TYPEs (histogram suffixes).
std::string family_of(const std::string& name, const std::map<std::string, family>& fams) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string sfx(suffix);
        if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
            const std::string base = name.substr(0, name.size() - sfx.size());
            if (auto it = fams.find(base); it != fams.end() && it->second.type == "histogram") return base;
        }
    }
    return name;
}

exposition parse_exposition(std::string_view text) {
    if (text.empty() || text.back() != '\n') throw std::runtime_error("the exposition must end with a newline");
    exposition out;
    std::set<std::string> finished;  // families whose group has ended
    std::string current;
    std::set<std::string> seen_series;
    std::size_t line_no = 0;
    std::size_t begin = 0;
    auto enter = [&](const std::string& fam, std::size_t line) {
        if (fam == current) return;
        if (finished.count(fam) != 0) bad(line, fam + ": lines of one metric must form one group");
        if (!current.empty()) finished.insert(current);
        current = fam;
    };
    while (begin < text.size()) {
        const std::size_t end = text.find('\n', begin);
        const std::string_view line = text.substr(begin, end - begin);
        begin = end + 1;
        ++line_no;
        if (line.empty()) continue;
        if (line[0] == '#') {
            if (line.substr(0, 7) != "# HELP " && line.substr(0, 7) != "# TYPE ") continue;  // a comment
            const bool help = line[2] == 'H';
            std::size_t i = 7;
            const std::string name = read_name(line, i, false, line_no);
            if (i >= line.size() || line[i] != ' ') bad(line_no, "expected a space after the name");
            const std::string_view rest = line.substr(i + 1);
            enter(name, line_no);
            family& f = out.families[name];
            if (help) {
                if (!f.help.empty()) bad(line_no, name + ": second HELP");
                for (std::size_t k = 0; k < rest.size(); ++k) {
                    if (rest[k] != '\\') continue;
                    if (k + 1 >= rest.size() || (rest[k + 1] != '\\' && rest[k + 1] != 'n'))
                        bad(line_no, "bad escape in HELP");
                    ++k;  // the escaped character
                }
                f.help = std::string(rest.empty() ? " " : rest);
            } else {
                static const std::set<std::string_view> types{"counter", "gauge", "histogram", "summary", "untyped"};
                if (types.count(rest) == 0) bad(line_no, "unknown TYPE " + std::string(rest));
                if (!f.samples.empty()) bad(line_no, name + ": TYPE after samples");
                if (f.type != "untyped") bad(line_no, name + ": second TYPE");
                f.type = std::string(rest);
            }
            continue;
        }
        std::size_t i = 0;
        sample s;
        s.name = read_name(line, i, false, line_no);
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                const std::string label = read_name(line, i, true, line_no);
                if (label.rfind("__", 0) == 0) bad(line_no, "reserved label name " + label);
                if (line.substr(i, 2) != "=\"") bad(line_no, "expected =\" after " + label);
                i += 2;
                std::string value;
                for (;;) {
                    if (i >= line.size()) bad(line_no, "unterminated label value");
                    const char c = line[i++];
                    if (c == '"') break;
                    if (c != '\\') {
                        value += c;
                        continue;
                    }
                    if (i >= line.size()) bad(line_no, "dangling backslash");
                    const char e = line[i++];
                    if (e == '\\') value += '\\';
                    else if (e == '"') value += '"';
                    else if (e == 'n') value += '\n';
                    else bad(line_no, std::string("bad escape \\") + e);
                }
                if (!s.labels.emplace(label, value).second) bad(line_no, "duplicate label " + label);
                if (i < line.size() && line[i] == ',') {
                    ++i;
                    if (i < line.size() && line[i] == '}') bad(line_no, "trailing comma");
                }
            }
            if (i >= line.size()) bad(line_no, "unterminated label set");
            ++i;
        }
        if (i >= line.size() || line[i] != ' ') bad(line_no, "expected a space before the value");
        const std::string_view rest = line.substr(i + 1);
        const std::size_t sp = rest.find(' ');
        s.value = parse_value(rest.substr(0, sp), line_no);
        if (sp != std::string_view::npos) {
            const std::string_view ts = rest.substr(sp + 1);
            if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string_view::npos)
                bad(line_no, "bad timestamp");
        }
        const std::string fam = family_of(s.name, out.families);
        enter(fam, line_no);
        family& f = out.families[fam];
        if (f.type == "counter" && !(s.value >= 0)) bad(line_no, "negative counter");
        std::string key = s.name;
        for (const auto& [k, v] : s.labels) key += "|" + k + "=" + v;
        if (!seen_series.insert(key).second) bad(line_no, "duplicate sample " + key);
        f.samples.push_back(std::move(s));
    }

    // Histograms: cumulative buckets with ascending le, a +Inf bucket equal to _count, and a _sum.
    for (const auto& [name, f] : out.families) {
        if (f.type != "histogram") continue;
        std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
        std::map<std::map<std::string, std::string>, double> counts, sums;
        for (const auto& s : f.samples) {
            auto labels = s.labels;
            if (s.name == name + "_bucket") {
                auto le = labels.find("le");
                if (le == labels.end()) throw std::runtime_error(name + ": bucket without le");
                const double bound = parse_value(le->second, 0);
                labels.erase(le);
                buckets[labels].emplace_back(bound, s.value);
            } else if (s.name == name + "_count") {
                counts[labels] = s.value;
            } else if (s.name == name + "_sum") {
                sums[labels] = s.value;
            } else {
                throw std::runtime_error(name + ": unexpected sample " + s.name);
            }
        }
        for (const auto& [labels, b] : buckets) {
            for (std::size_t k = 1; k < b.size(); ++k) {
                if (!(b[k].first > b[k - 1].first)) throw std::runtime_error(name + ": le not ascending");
                if (b[k].second < b[k - 1].second) throw std::runtime_error(name + ": buckets not cumulative");
            }
            if (b.empty() || !std::isinf(b.back().first)) throw std::runtime_error(name + ": no +Inf bucket");
            if (counts.count(labels) == 0 || counts[labels] != b.back().second)
                throw std::runtime_error(name + ": _count differs from the +Inf bucket");
            if (sums.count(labels) == 0) throw std::runtime_error(name + ": no _sum");
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------

TEST(PrometheusParser, RejectsWhatTheFormatForbids) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"NoNewline", "a 1"},
        {"BadEscape", "a{l=\"x\\t\"} 1\n"},
        {"TrailingComma", "a{l=\"x\",} 1\n"},
        {"Duplicate", "a 1\na 2\n"},
        {"Interleaved", "a 1\nb 1\na{x=\"1\"} 1\n"},
        {"TypeAfterSample", "a 1\n# TYPE a gauge\n"},
        {"NegativeCounter", "# TYPE a counter\na -1\n"},
        {"NoInfBucket", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"},
        {"NotCumulative",
         "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count "
         "2\n"},
        {"BadValue", "a 1x\n"},
    };
    for (const auto& [name, text] : cases) {
        SCOPED_TRACE(name);
        EXPECT_THROW((void)parse_exposition(text), std::exception);
    }
}

TEST(MetricsRegistry, RendersTheTextFormat) {
    daemon::metrics_registry reg;
    auto& c = reg.add("t_requests_total", "Requests.\nSecond line with a \\ backslash.", daemon::metric_type::counter,
                      {"path"});
    const std::string awkward = "a\"quoted\" \\back\\ \nnew line";
    c.inc({awkward}, 2);
    c.inc({"/"});
    auto& h = reg.add("t_latency_seconds", "Latency.", daemon::metric_type::histogram, {"path"}, {0.1, 1, 10});
    for (double v : {0.05, 0.1, 0.5, 20.0}) h.observe({"/"}, v);
    reg.add("t_up", "Up.", daemon::metric_type::gauge).set({}, 1);
    reg.add("t_empty", "No series yet.", daemon::metric_type::gauge, {"kind"});

    const std::string text = reg.render();
    exposition e;
    ASSERT_NO_THROW(e = parse_exposition(text)) << text;
    EXPECT_EQ(e.at("t_requests_total", {{"path", awkward}}), 2) << "label values round-trip through escaping";
    EXPECT_EQ(e.at("t_requests_total", {{"path", "/"}}), 1);
    EXPECT_EQ(e.families.at("t_requests_total").help, "Requests.\\nSecond line with a \\\\ backslash.");
    EXPECT_EQ(e.at("t_latency_seconds_bucket", {{"path", "/"}, {"le", "0.1"}}), 2) << "le is inclusive";
    EXPECT_EQ(e.at("t_latency_seconds_bucket", {{"path", "/"}, {"le", "1"}}), 3);
    EXPECT_EQ(e.at("t_latency_seconds_bucket", {{"path", "/"}, {"le", "+Inf"}}), 4);
    EXPECT_DOUBLE_EQ(e.at("t_latency_seconds_sum", {{"path", "/"}}), 20.65);
    EXPECT_EQ(e.at("t_up"), 1);
    EXPECT_EQ(e.families.at("t_empty").type, "gauge");
    EXPECT_EQ(daemon::format_metric_value(INFINITY), "+Inf");
    EXPECT_EQ(daemon::format_metric_value(NAN), "NaN");
    EXPECT_EQ(daemon::format_metric_value(1e21), "1e+21");
}

TEST(Health, HealthyOnlyWhenEveryLastSyncSucceededRecently) {
    const std::int64_t now = 1'750'000'000'000;
    const auto max_age = std::chrono::minutes(30);
    using s = daemon::source_status;
    struct health_case {
        std::string name;
        std::vector<s> sources;
        bool healthy;
        std::string reason;
    };
    const std::vector<health_case> cases = {
        {"AllOk", {{"p", "purchased_groups", sync::run_status::ok, now - 1000, now - 1000, ""}}, true, ""},
        {"NeverSynced", {{"p", "purchased_groups", std::nullopt, 0, std::nullopt, ""}}, false, "no sync has finished yet"},
        {"LastFailed",
         {{"p", "purchased_groups", sync::run_status::ok, now, now, ""},
          {"p", "subscription_resources", sync::run_status::failed, now, now - 5000, "page=1: HTTP 503"}},
         false,
         "account=p source=subscription_resources: last sync failed at"},
        {"Stale", {{"p", "purchased_groups", sync::run_status::ok, now - 3'600'000, now - 3'600'000, ""}}, false, "is older than 30m"},
        {"Incomplete", {{"p", "purchased_groups", sync::run_status::incomplete, now, now - 1000, ""}}, false, "last sync incomplete"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto h = daemon::evaluate_health(c.sources, now, max_age);
        EXPECT_EQ(h.healthy, c.healthy) << h.json;
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        ASSERT_FALSE(parser.parse(h.json).get(doc)) << h.json;
        EXPECT_EQ(std::string_view(doc["status"]), c.healthy ? "ok" : "unhealthy");
        if (!c.reason.empty()) {
            EXPECT_NE(std::string(std::string_view(doc["reasons"].at(0))).find(c.reason), std::string::npos) << h.json;
        }
    }
}

constexpr const char* token = "tok-metrics-0b7e";

TEST(DaemonMetrics, EndpointParsesAndCountersMove) {
    test::temp_dir dir;
    emulator::options opts;
    opts.token = token;
    emulator::server emu(opts, emulator::dataset::generated(300, 10, 7));
    emu.start();
    test::write_file(dir / "ca.pem", emu.cert_pem());
    auto c = test::cloud_config(emu.base_url(), (dir / "ca.pem").string());
    c.metrics_listen = "127.0.0.1:0";
    c.interval = "10m";
    const auto cfg = test::write_daemon_config(dir.path(), c);
    test::notify_socket systemd(dir / "notify");
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir.path());
    auto ready = systemd.wait_for("READY=1");
    ASSERT_TRUE(ready) << systemd.transcript() << d.err();
    const auto at = ready->find("metrics 127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << *ready;
    const auto port = static_cast<std::uint16_t>(std::stoi(ready->substr(at + 18)));
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();

    const std::map<std::string, std::string> groups{{"account", "prod"}, {"source", "purchased_groups"}};
    const std::map<std::string, std::string> orders{{"account", "prod"}, {"source", "subscription_resources"}};
    auto scrape = [&] {
        auto r = test::http_get(port, "/metrics");
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << r.content_type;
        return parse_exposition(r.body);
    };
    exposition m1;
    ASSERT_NO_THROW(m1 = scrape());
    EXPECT_EQ(m1.at("subsync_build_info", {{"version", "0.1.0"}}), 1);
    EXPECT_EQ(m1.at("subsync_sync_runs_total", {{"account", "prod"}, {"source", "purchased_groups"}, {"status", "ok"}}),
              1);
    EXPECT_EQ(m1.at("subsync_pages_fetched_total", groups), 3);
    EXPECT_EQ(m1.at("subsync_items_fetched_total", orders), 10);
    EXPECT_EQ(m1.at("subsync_items", {{"account", "prod"}, {"table", "purchased_groups"}}), 300);
    EXPECT_EQ(m1.at("subsync_sync_duration_seconds_count", groups), 1);
    EXPECT_GT(m1.at("subsync_last_success_timestamp_seconds", orders), 1.6e9);
    EXPECT_EQ(m1.at("subsync_sync_in_progress"), 0);
    EXPECT_EQ(m1.families.at("subsync_sync_duration_seconds").type, "histogram");
    auto h = test::http_get(port, "/healthz");
    EXPECT_EQ(h.status, 200) << h.body;
    EXPECT_EQ(h.content_type, "application/json");

    // The orders listing fails (503, retried until max_attempts): counters and health follow.
    emu.fail_orders(503);
    d.signal(SIGUSR1);
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 2 failed")) << systemd.transcript() << d.err();
    exposition m2;
    ASSERT_NO_THROW(m2 = scrape());
    EXPECT_EQ(m2.at("subsync_sync_runs_total", {{"account", "prod"}, {"source", "purchased_groups"}, {"status", "ok"}}),
              2);
    EXPECT_EQ(m2.at("subsync_sync_runs_total",
                    {{"account", "prod"}, {"source", "subscription_resources"}, {"status", "failed"}}),
              1);
    EXPECT_EQ(m2.at("subsync_pages_fetched_total", groups), 6);
    EXPECT_EQ(m2.at("subsync_retries_total", orders), 4) << "max_attempts = 5: four retries";
    EXPECT_EQ(m2.at("subsync_errors_total",
                    {{"account", "prod"}, {"source", "subscription_resources"}, {"class", "http_status"}}),
              1);
    EXPECT_EQ(m2.at("subsync_sync_duration_seconds_count", orders), 2);
    h = test::http_get(port, "/healthz");
    EXPECT_EQ(h.status, 503) << h.body;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(h.body).get(doc)) << h.body;
    EXPECT_EQ(std::string_view(doc["status"]), "unhealthy");
    EXPECT_NE(
        std::string(std::string_view(doc["reasons"].at(0))).find("source=subscription_resources: last sync failed"),
        std::string::npos)
        << h.body;

    // Recovered: healthy again.
    emu.clear_faults();
    d.signal(SIGUSR1);
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 3 ok")) << systemd.transcript() << d.err();
    EXPECT_EQ(test::http_get(port, "/healthz").status, 200);
    EXPECT_EQ(test::http_get(port, "/nope").status, 404);

    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(10s), 0) << d.err();
}

/// Wall-clock seconds now.
double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// Entries of /proc/PID/fd.
std::size_t open_fds_of(pid_t pid) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid))) ++n;
    return n;
}

/// VmRSS of /proc/PID/status, in bytes.
double rss_of(pid_t pid) {
    std::istringstream in(test::read_file(fmt::format("/proc/{}/status", pid)));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024;
    return -1;
}

const std::vector<std::string> error_classes{"network", "timeout", "tls",        "http_status",
                                             "auth",    "parse",   "incomplete", "cancelled"};
const std::vector<std::string> alert_kinds{"expiring",       "expired",        "quota_low",    "quota_exhausted",
                                           "quota_forecast", "resource_status", "source_failing", "source_stale",
                                           "auth_failing",   "delivery_failed", "removed_early"};

// Issue 17: the process_* metrics every client library exports, and every series with a known
// label set present at 0 from the first scrape, before anything failed.
TEST(DaemonMetrics, ProcessMetricsAndEverySeriesFromStart) {
    test::temp_dir dir;
    emulator::options opts;
    opts.token = token;
    emulator::server emu(opts, emulator::dataset::generated(50, 4, 3));
    emu.start();
    test::write_file(dir / "ca.pem", emu.cert_pem());
    auto c = test::cloud_config(emu.base_url(), (dir / "ca.pem").string());
    c.metrics_listen = "127.0.0.1:0";
    const auto cfg = test::write_daemon_config(dir.path(), c);
    test::notify_socket systemd(dir / "notify");
    const double spawned = unix_now();
    test::daemon_process d({"run", "--config", cfg.string()},
                           {{"SUBSYNC_TEST_TOKEN", token}, {"NOTIFY_SOCKET", systemd.path().string()}}, dir.path());
    auto ready = systemd.wait_for("READY=1");
    ASSERT_TRUE(ready) << systemd.transcript() << d.err();
    const auto port = static_cast<std::uint16_t>(std::stoi(ready->substr(ready->find("metrics 127.0.0.1:") + 18)));
    ASSERT_TRUE(systemd.wait_for("STATUS=sync 1 ok")) << systemd.transcript() << d.err();

    auto r = test::http_get(port, "/metrics");
    ASSERT_EQ(r.status, 200);
    exposition m;
    ASSERT_NO_THROW(m = parse_exposition(r.body)) << r.body;

    EXPECT_EQ(m.families.at("process_cpu_seconds_total").type, "counter");
    for (const char* g : {"process_start_time_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                          "process_open_fds", "process_max_fds"})
        EXPECT_EQ(m.families.at(g).type, "gauge") << g;
    // Clock ticks are 1/100 s: the start time is within a tick of when the test spawned it.
    EXPECT_GE(m.at("process_start_time_seconds"), spawned - 1.0);
    EXPECT_LE(m.at("process_start_time_seconds"), unix_now());
    EXPECT_GE(m.at("process_cpu_seconds_total"), 0);
    EXPECT_LT(m.at("process_cpu_seconds_total"), unix_now() - spawned + 1) << "one thread of CPU at most, roughly";
    const double rss = rss_of(d.pid());
    EXPECT_GT(m.at("process_resident_memory_bytes"), rss / 2) << "VmRSS " << rss;
    EXPECT_LT(m.at("process_resident_memory_bytes"), rss * 2) << "VmRSS " << rss;
    EXPECT_GT(m.at("process_virtual_memory_bytes"), m.at("process_resident_memory_bytes"));
    const auto fds = static_cast<double>(open_fds_of(d.pid()));
    EXPECT_NEAR(m.at("process_open_fds"), fds, 2) << "the scrape's own socket comes and goes";
    EXPECT_GT(m.at("process_max_fds"), m.at("process_open_fds"));

    for (const char* source : {"purchased_groups", "subscription_resources"}) {
        SCOPED_TRACE(source);
        EXPECT_EQ(m.at("subsync_sync_runs_total", {{"account", "prod"}, {"source", source}, {"status", "ok"}}), 1);
        for (const char* status : {"failed", "incomplete"})
            EXPECT_EQ(m.at("subsync_sync_runs_total", {{"account", "prod"}, {"source", source}, {"status", status}}), 0)
                << status;
        for (const auto& cls : error_classes)
            EXPECT_EQ(m.at("subsync_errors_total", {{"account", "prod"}, {"source", source}, {"class", cls}}), 0) << cls;
        EXPECT_EQ(m.at("subsync_retries_total", {{"account", "prod"}, {"source", source}}), 0);
    }
    // Alerts firing: every kind has a series, those with nothing firing at 0.
    for (const auto& kind : alert_kinds) EXPECT_NO_THROW((void)m.at("subsync_alerts_firing", {{"kind", kind}})) << kind;
    EXPECT_EQ(m.families.at("subsync_alerts_firing").samples.size(), alert_kinds.size());

    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(10s), 0) << d.err();
}

// Issue 17: timer mode. `sync --once --metrics-textfile` writes the subsync_* metrics for
// node_exporter's textfile collector: whole (renamed into place), without process_* (they would
// clash with node_exporter's own), and with the failed run counted.
TEST(DaemonMetrics, SyncOnceWritesATextfileAtomically) {
    test::temp_dir dir;
    emulator::options opts;
    opts.token = token;
    emulator::server emu(opts, emulator::dataset::generated(120, 5, 9));
    emu.start();
    test::write_file(dir / "ca.pem", emu.cert_pem());
    const auto cfg = test::write_daemon_config(dir.path(), test::cloud_config(emu.base_url(), (dir / "ca.pem").string()));
    std::filesystem::create_directories(dir / "textfile");
    const auto prom = dir / "textfile" / "subsync.prom";

    const double before = unix_now();
    auto ok = test::run_subsyncd({"sync", "--once", "--config", cfg.string(), "--metrics-textfile", prom.string()},
                                 {{"SUBSYNC_TEST_TOKEN", token}});
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    exposition m;
    ASSERT_NO_THROW(m = parse_exposition(test::read_file(prom))) << test::read_file(prom);
    const std::map<std::string, std::string> groups{{"account", "prod"}, {"source", "purchased_groups"}};
    EXPECT_EQ(m.at("subsync_sync_runs_total", {{"account", "prod"}, {"source", "purchased_groups"}, {"status", "ok"}}),
              1);
    EXPECT_EQ(m.at("subsync_sync_runs_total",
                   {{"account", "prod"}, {"source", "purchased_groups"}, {"status", "failed"}}),
              0);
    EXPECT_EQ(m.at("subsync_items", {{"account", "prod"}, {"table", "purchased_groups"}}), 120);
    EXPECT_EQ(m.at("subsync_items_fetched_total", groups), 120);
    EXPECT_GE(m.at("subsync_last_success_timestamp_seconds", groups), std::floor(before));
    EXPECT_LE(m.at("subsync_last_success_timestamp_seconds", groups), unix_now());
    for (const auto& [name, _] : m.families) EXPECT_NE(name.rfind("process_", 0), 0u) << name;
    // Issue 16: the alerts the sync queued, counted from its typed events. A first sync notifies
    // each alert once, so by kind they are what the database says is firing.
    double queued = 0;
    for (const auto& kind : alert_kinds) {
        SCOPED_TRACE(kind);
        const double firing = m.at("subsync_alerts_queued_total", {{"kind", kind}, {"state", "firing"}});
        EXPECT_EQ(firing, m.at("subsync_alerts_firing", {{"kind", kind}}));
        EXPECT_EQ(m.at("subsync_alerts_queued_total", {{"kind", kind}, {"state", "resolved"}}), 0);
        queued += firing;
    }
    EXPECT_GT(queued, 0) << "the dataset has expiring purchases";
    EXPECT_EQ(::access(prom.c_str(), R_OK), 0);
    EXPECT_EQ(std::filesystem::status(prom).permissions() & std::filesystem::perms::others_read,
              std::filesystem::perms::others_read)
        << "node_exporter runs as another user";

    // The second run replaces the file by rename: a reader holding the old one still reads it whole.
    std::ifstream held(prom);
    struct stat first{};
    ASSERT_EQ(::stat(prom.c_str(), &first), 0);
    auto failed = test::run_subsyncd({"sync", "--once", "--config", cfg.string(), "--metrics-textfile", prom.string()},
                                     {{"SUBSYNC_TEST_TOKEN", "tok-wrong-e2e0"}});
    ASSERT_EQ(failed.exit_code, 1) << failed.err;
    struct stat second{};
    ASSERT_EQ(::stat(prom.c_str(), &second), 0);
    EXPECT_NE(first.st_ino, second.st_ino) << "rewritten in place instead of renamed";
    const std::string old_text((std::istreambuf_iterator<char>(held)), std::istreambuf_iterator<char>());
    EXPECT_NO_THROW(parse_exposition(old_text));
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir / "textfile")) names.push_back(e.path().filename());
    EXPECT_EQ(names, std::vector<std::string>{"subsync.prom"}) << "a temporary file was left behind";

    ASSERT_NO_THROW(m = parse_exposition(test::read_file(prom)));
    EXPECT_EQ(m.at("subsync_sync_runs_total",
                   {{"account", "prod"}, {"source", "purchased_groups"}, {"status", "failed"}}),
              1);
    EXPECT_EQ(m.at("subsync_errors_total", {{"account", "prod"}, {"source", "purchased_groups"}, {"class", "auth"}}), 1);
    EXPECT_EQ(m.at("subsync_errors_total", {{"account", "prod"}, {"source", "purchased_groups"}, {"class", "network"}}),
              0);
    // The last success is still the first run's, read from the database.
    EXPECT_LE(m.at("subsync_last_success_timestamp_seconds", groups), static_cast<double>(first.st_mtime) + 1);

    auto dry = test::run_subsyncd(
        {"sync", "--once", "--dry-run", "--config", cfg.string(), "--metrics-textfile", prom.string()},
        {{"SUBSYNC_TEST_TOKEN", token}});
    EXPECT_EQ(dry.exit_code, 2) << "a dry run has no metrics to publish: " << dry.err;
}

}  // namespace
}  // namespace subsync
