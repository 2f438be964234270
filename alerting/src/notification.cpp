#include <subsync/alerting/notification.hpp>

#include <subsync/sync/columns.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>
#include <simdjson.h>

namespace subsync::alerting {
namespace {

std::string_view str_or_empty(simdjson::dom::element e) {
    std::string_view v;
    if (e.get(v) != simdjson::SUCCESS) return {};
    return v;
}

}  // namespace

void render_payload(notification& n) {
    std::string& p = n.payload;
    p.clear();
    p.reserve(256 + n.summary.size() + n.values.size());
    auto field = [&p](std::string_view name) {
        p += p.empty() ? "{\"" : ",\"";
        p += name;
        p += "\":";
    };
    auto string = [&](std::string_view name, std::string_view v) {
        field(name);
        sync::append_json_string(p, v);
    };
    auto time = [&](std::string_view name, std::optional<epoch_ms> t) {
        field(name);
        if (!t) {
            p += "null";
            return;
        }
        p += '"';
        sync::append_iso8601(p, *t);
        p += '"';
    };
    string("idempotency_key", n.idempotency_key);
    string("kind", n.kind);
    string("severity", config::to_string(n.severity));
    string("state", to_string(n.state));
    string("account", n.account);
    string("source", n.source);
    string("id", n.id);
    string("threshold", n.threshold);
    time("since", n.since);
    time("resolved_at", n.resolved_at);
    if (n.reason.empty()) {
        field("reason");
        p += "null";
    } else {
        string("reason", n.reason);
    }
    string("summary", n.summary);
    field("values");
    p += n.values;
    field("notification");
    p += std::to_string(n.number);
    time("created_at", n.created_at);
    p += '}';
}

boost::system::result<notification, std::string> parse_notification(std::int64_t seq, std::string_view payload) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(payload);
    simdjson::dom::element root;
    if (auto e = parser.parse(padded).get(root); e)
        return fmt::format("outbox seq={}: payload: {}", seq, simdjson::error_message(e));
    simdjson::dom::object obj;
    if (root.get(obj)) return fmt::format("outbox seq={}: payload is not a JSON object", seq);
    notification n;
    n.seq = seq;
    n.payload = std::string(payload);
    struct text_field {
        const char* name;
        std::string* out;
        bool required;
    };
    std::string severity, state;
    for (const auto& f : {text_field{"idempotency_key", &n.idempotency_key, true}, {"kind", &n.kind, true},
                          {"severity", &severity, true}, {"state", &state, true}, {"account", &n.account, false},
                          {"source", &n.source, false}, {"id", &n.id, false}, {"threshold", &n.threshold, false},
                          {"summary", &n.summary, false}, {"reason", &n.reason, false}}) {
        simdjson::dom::element e;
        if (obj[f.name].get(e) || !(e.is_string() || e.is_null())) {
            if (f.required) return fmt::format("outbox seq={}: payload field={}: expected a string", seq, f.name);
            continue;
        }
        *f.out = std::string(str_or_empty(e));
    }
    const auto sev = config::severity_named(severity);
    if (!sev) return fmt::format("outbox seq={}: payload field=severity: unknown severity \"{}\"", seq, severity);
    n.severity = *sev;
    const auto st = alert_state_named(state);
    if (!st) return fmt::format("outbox seq={}: payload field=state: expected \"firing\" or \"resolved\"", seq);
    n.state = *st;
    auto time_field = [&](const char* name) -> std::optional<std::int64_t> {
        std::string_view t;
        if (obj[name].get(t)) return std::nullopt;
        return sync::parse_iso8601(t);
    };
    n.since = time_field("since").value_or(0);
    n.created_at = time_field("created_at").value_or(n.since);
    n.resolved_at = time_field("resolved_at");
    if (std::int64_t num = 0; !obj["notification"].get(num)) n.number = num;
    if (simdjson::dom::object values; !obj["values"].get(values)) n.values = simdjson::minify(values);
    return n;
}

std::vector<std::pair<std::string, std::string>> flatten_values(std::string_view values) {
    std::vector<std::pair<std::string, std::string>> out;
    simdjson::dom::parser parser;
    simdjson::padded_string padded(values);
    simdjson::dom::object obj;
    if (parser.parse(padded).get(obj)) return out;
    for (auto [key, value] : obj) {
        if (value.is_string()) out.emplace_back(std::string(key), std::string(str_or_empty(value)));
        else out.emplace_back(std::string(key), simdjson::minify(value));
    }
    return out;
}

}  // namespace subsync::alerting
