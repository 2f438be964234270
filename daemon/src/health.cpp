#include <subsync/config/load.hpp>
#include <subsync/daemon/health.hpp>
#include <subsync/daemon/json.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

namespace subsync::daemon {

health_result evaluate_health(const std::vector<source_status>& sources, std::int64_t now,
                              std::chrono::milliseconds max_age) {
    std::vector<std::string> reasons;
    std::string list;
    for (const auto& s : sources) {
        const std::string where = fmt::format("account={} source={}", s.account, s.source);
        if (!s.last_status) {
            reasons.push_back(fmt::format("{}: no sync has finished yet", where));
        } else if (*s.last_status != sync::run_status::ok) {
            reasons.push_back(fmt::format("{}: last sync {} at {}{}{}", where, sync::to_string(*s.last_status),
                                          sync::format_iso8601(s.last_finished), s.last_error.empty() ? "" : ": ",
                                          s.last_error));
        } else if (!s.last_success || now - *s.last_success > max_age.count()) {
            reasons.push_back(fmt::format("{}: last success at {} is older than {}", where,
                                          s.last_success ? sync::format_iso8601(*s.last_success) : "never",
                                          config::format_duration(max_age)));
        }
        if (!list.empty()) list += ',';
        list += fmt::format(
            "{{\"account\":{},\"source\":{},\"last_status\":{},\"last_success\":{},\"age_seconds\":{}}}",
            json_string(s.account), json_string(s.source), s.last_status ? json_string(sync::to_string(*s.last_status)) : "null",
            s.last_success ? json_string(sync::format_iso8601(*s.last_success)) : "null",
            s.last_success ? fmt::format("{}", (now - *s.last_success) / 1000) : "null");
    }
    if (sources.empty()) reasons.emplace_back("no source is configured");

    health_result r;
    r.healthy = reasons.empty();
    r.json = fmt::format("{{\"status\":\"{}\",\"max_age_seconds\":{},\"reasons\":[", r.healthy ? "ok" : "unhealthy",
                         max_age.count() / 1000);
    for (std::size_t i = 0; i < reasons.size(); ++i) {
        if (i != 0) r.json += ',';
        append_json_string(r.json, reasons[i]);
    }
    r.json += "],\"sources\":[" + list + "]}";
    return r;
}

}  // namespace subsync::daemon
