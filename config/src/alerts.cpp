// [alerts]: rule thresholds (global, per source, per account), severities, silences and sinks.

#include "detail/reader.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

namespace subsync::config::detail {
namespace {

constexpr std::array<std::string_view, 2> source_names{"purchased_groups", "subscription_resources"};

const std::vector<std::string_view>& rule_keys() {
    static const std::vector<std::string_view> keys{
        "expiring_days",        "quota_low_absolute", "quota_low_percent", "forecast_days",   "forecast_window",
        "forecast_min_samples", "forecast_min_r2",    "failing_after",     "stale_after",     "severity",
        "disabled_kinds",       "enabled_kinds"};
    return keys;
}

std::string kind_list() {
    std::string s;
    for (auto n : alert_kind_names) s += fmt::format("{}\"{}\"", s.empty() ? "" : ", ", n);
    return s;
}


/// An array of strings at `k`, each checked by `accept` (which reports and returns false).
template <class Accept>
std::optional<std::vector<std::string>> strings(const table_reader& r, std::string_view k, Accept accept) {
    const toml::node* n = r.node(k);
    if (n == nullptr) return std::nullopt;
    const toml::array* a = n->as_array();
    if (a == nullptr) {
        r.wrong_type(k, *n, "array of strings");
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (const toml::node& e : *a) {
        if (!e.is_string()) {
            r.report().error(line_of(e.source()), r.key(k),
                             fmt::format("expected array of strings, found {}", type_name(e.type())));
            return std::nullopt;
        }
        std::string s = e.as_string()->get();
        if (!accept(s)) return std::nullopt;
        out.push_back(std::move(s));
    }
    return out;
}

std::optional<std::vector<alert_kind>> kinds(const table_reader& r, std::string_view k) {
    std::vector<alert_kind> out;
    auto names = strings(r, k, [&](const std::string& s) {
        if (alert_kind_named(s)) return true;
        r.invalid(k, fmt::format("unknown alert kind \"{}\"; expected one of {}", s, kind_list()));
        return false;
    });
    if (!names) return std::nullopt;
    for (const auto& s : *names) out.push_back(*alert_kind_named(s));
    return out;
}

void read_number(const table_reader& r, std::string_view k, double lo, double hi, double& out) {
    const toml::node* n = r.node(k);
    if (n == nullptr) return;
    double v = 0;
    if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
    else if (n->is_floating_point()) v = n->as_floating_point()->get();
    else return r.wrong_type(k, *n, "number");
    if (!(v >= lo && v <= hi)) return r.invalid(k, fmt::format("must be between {} and {}, got {}", lo, hi, v));
    out = v;
}

void read_int64(const table_reader& r, std::string_view k, std::int64_t lo, std::int64_t hi, std::int64_t& out) {
    const toml::node* n = r.node(k);
    if (n == nullptr) return;
    if (!n->is_integer()) return r.wrong_type(k, *n, "integer");
    const std::int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) return r.invalid(k, fmt::format("must be between {} and {}, got {}", lo, hi, v));
    out = v;
}

/// Applies the rule keys present in `r` over `out` (keys absent keep what `out` had).
void apply_rule_keys(const table_reader& r, alert_rules& out) {
    if (const toml::node* n = r.node("expiring_days")) {
        const toml::array* a = n->as_array();
        if (a == nullptr) {
            r.wrong_type("expiring_days", *n, "array of integers (days), e.g. [30, 7, 1]");
        } else {
            std::vector<int> days;
            bool ok = true;
            for (const toml::node& e : *a) {
                if (!e.is_integer() || e.as_integer()->get() < 1 || e.as_integer()->get() > 3650) {
                    r.invalid("expiring_days", "each threshold must be a whole number of days between 1 and 3650");
                    ok = false;
                    break;
                }
                days.push_back(static_cast<int>(e.as_integer()->get()));
            }
            std::sort(days.begin(), days.end(), std::greater<>());
            if (ok && std::adjacent_find(days.begin(), days.end()) != days.end()) {
                r.invalid("expiring_days", "thresholds must be distinct");
                ok = false;
            }
            if (ok) out.expiring_days = std::move(days);
        }
    }
    read_int64(r, "quota_low_absolute", 0, std::numeric_limits<std::int64_t>::max(), out.quota_low_absolute);
    read_number(r, "quota_low_percent", 0, 100, out.quota_low_percent);
    r.integer("forecast_days", 0, 3650, out.forecast_days);
    r.duration("forecast_window", std::chrono::minutes(1), std::chrono::hours(24 * 366), out.forecast_window);
    r.integer("forecast_min_samples", 2, 100000, out.forecast_min_samples);
    read_number(r, "forecast_min_r2", 0, 1, out.forecast_min_r2);
    r.integer("failing_after", 0, 1000, out.failing_after);
    r.duration("stale_after", milliseconds(0), std::nullopt, out.stale_after);
    if (const toml::table* sev = r.table("severity")) {
        std::vector<std::string_view> names(alert_kind_names.begin(), alert_kind_names.end());
        const table_reader s(*sev, r.key("severity"), names, r.report());
        for (std::size_t i = 0; i < alert_kind_count; ++i) {
            auto value = s.string(alert_kind_names[i]);
            if (!value) continue;
            if (auto parsed = severity_named(*value)) out.severities[i] = *parsed;
            else
                s.invalid(alert_kind_names[i],
                          fmt::format("unknown severity \"{}\"; expected \"info\", \"warning\" or \"critical\"", *value));
        }
    }
    // Each list is whole where it is set (an account's list replaces the global one);
    // kinds that are off by default (removed_early) are turned on by enabled_kinds.
    if (auto on = kinds(r, "enabled_kinds")) {
        out.enabled = alert_rules{}.enabled;
        for (alert_kind k : *on) out.enabled[static_cast<std::size_t>(k)] = true;
    }
    if (auto off = kinds(r, "disabled_kinds")) {
        if (!r.node("enabled_kinds")) out.enabled = alert_rules{}.enabled;
        for (alert_kind k : *off) out.enabled[static_cast<std::size_t>(k)] = false;
    }
}

/// Milliseconds since the epoch of a TOML date-time with offset, or of a date (midnight UTC).
std::optional<std::int64_t> epoch_of(const toml::node& n) {
    using namespace std::chrono;
    auto days_of = [](const toml::date& d) {
        return sys_days(year(d.year) / month(d.month) / day(d.day)).time_since_epoch();
    };
    if (const auto* d = n.as_date()) return duration_cast<milliseconds>(days_of(d->get())).count();
    const auto* dt = n.as_date_time();
    if (dt == nullptr || !dt->get().offset) return std::nullopt;
    const toml::date_time& v = dt->get();
    const auto t = days_of(v.date) + hours(v.time.hour) + minutes(v.time.minute) + seconds(v.time.second) +
                   duration_cast<milliseconds>(nanoseconds(v.time.nanosecond)) - minutes(v.offset->minutes);
    return duration_cast<milliseconds>(t).count();
}

void read_silences(const table_reader& alerts, const std::set<std::string, std::less<>>& accounts,
                   std::vector<alert_silence>& out) {
    const toml::node* n = alerts.node("silence");
    if (n == nullptr) return;
    const toml::array* a = n->as_array();
    if (a == nullptr) return alerts.wrong_type("silence", *n, "array of tables ([[alerts.silence]])");
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::table* t = a->get(i)->as_table();
        const std::string path = fmt::format("alerts.silence[{}]", i);
        if (t == nullptr) {
            alerts.report().error(line_of(a->get(i)->source()), path, "expected table");
            continue;
        }
        const table_reader r(*t, path, {"account", "source", "item", "kind", "until", "comment"}, alerts.report());
        alert_silence s;
        if (auto v = r.string("account")) {
            if (!accounts.contains(*v)) r.invalid("account", fmt::format("no [[account]] is named \"{}\"", *v));
            s.account = std::move(*v);
        }
        if (auto v = r.string("source")) {
            if (std::find(source_names.begin(), source_names.end(), *v) == source_names.end() && *v != "alerts")
                r.invalid("source", fmt::format("unknown source \"{}\"; expected \"purchased_groups\", "
                                                "\"subscription_resources\" or \"alerts\"",
                                                *v));
            s.source = std::move(*v);
        }
        if (auto v = r.string("item")) s.item = std::move(*v);
        if (auto v = r.string("kind")) {
            s.kind = alert_kind_named(*v);
            if (!s.kind) r.invalid("kind", fmt::format("unknown alert kind \"{}\"; expected one of {}", *v, kind_list()));
        }
        if (auto v = r.string("comment")) s.comment = std::move(*v);
        const toml::node* until = r.node("until");
        if (until == nullptr) {
            r.missing("until");
        } else if (auto ms = epoch_of(*until)) {
            s.until = *ms;
        } else {
            r.invalid("until", "expected a date (2026-12-31) or a date-time with offset (2026-12-31T18:00:00Z)");
        }
        if (s.account.empty() && s.source.empty() && s.item.empty() && !s.kind)
            alerts.report().warning(r.line(), path, "matches every alert; give account, source, item or kind");
        out.push_back(std::move(s));
    }
}

/// `url`, or `url_env` / `url_file` / `url_credential` when the URL itself is a secret.
void read_sink_url(const table_reader& r, sink_config& s) {
    read_secret_ref(r, "url", false, s.url_secret);
    const toml::node* n = r.node("url");
    if (n == nullptr) {
        if (s.url_secret.empty())
            r.report().error(r.line(), r.key("url"),
                             "required key is missing; give url, or url_env, url_file or url_credential");
        return;
    }
    if (!s.url_secret.empty())
        return r.invalid("url", "conflicts with url_env/url_file/url_credential; give exactly one of them");
    std::optional<std::string> text = r.string("url", true);
    if (!text) return;
    auto ep = parse_sink_url(*text);
    if (!ep) return r.invalid("url", ep.error());
    s.url = std::move(*ep);
    if (!s.url.tls())
        r.report().warning(line_of(n->source()), r.key("url"), "plain http:// — notifications are not encrypted");
}

bool valid_env_name(std::string_view name) {
    const auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
    return !name.empty() && letter(name.front()) &&
           std::all_of(name.begin(), name.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

/// exec: `pass_env = ["NAME", …]` and `[alerts.sink.env] NAME = "value"`.
void read_exec_environment(const table_reader& r, sink_config& s) {
    if (auto names = strings(r, "pass_env", [&](const std::string& name) {
            if (valid_env_name(name)) return true;
            r.invalid("pass_env", fmt::format("\"{}\" is not a variable name (letters, digits, _)", name));
            return false;
        }))
        s.pass_env = std::move(*names);
    const toml::table* t = r.table("env");
    if (t == nullptr) return;
    for (auto&& [k, v] : *t) {
        const std::string key = r.key(fmt::format("env.{}", k.str()));
        const auto* str = v.as_string();
        if (str == nullptr) {
            r.report().error(line_of(v.source()), key, fmt::format("expected string, got {}", type_name(v.type())));
            continue;
        }
        if (!valid_env_name(k.str())) {
            r.report().error(line_of(v.source()), key, "not a variable name (letters, digits, _)");
            continue;
        }
        if (str->get().find('\0') != std::string::npos) {
            r.report().error(line_of(v.source()), key, "must not contain NUL");
            continue;
        }
        s.env.emplace_back(std::string(k.str()), str->get());
    }
}

/// Where an exec sink's pass_env was written: its index in the parsed sinks, line and key.
struct pass_env_at {
    std::size_t index;
    line_t line;
    std::string key;
};

/// A hook never sees a variable a secret is read from, even when pass_env names it.
void refuse_secret_pass_env(const table_reader& alerts, const std::vector<account_config>& accounts,
                            const std::vector<sink_config>& sinks,
                            const std::vector<pass_env_at>& pass_env_lines) {
    std::map<std::string, std::string, std::less<>> secret_vars;  // name -> the key that reads it
    const auto add = [&](const secret_ref& ref, std::string key) {
        if (!ref.env.empty()) secret_vars.try_emplace(ref.env, std::move(key));
    };
    for (std::size_t i = 0; i < accounts.size(); ++i) {
        const auto& a = accounts[i].auth;
        add(a.token, fmt::format("account[{}].auth.token_env", i));
        add(a.password, fmt::format("account[{}].auth.password_env", i));
        add(a.ak, fmt::format("account[{}].auth.ak_env", i));
        add(a.sk, fmt::format("account[{}].auth.sk_env", i));
        add(a.security_token, fmt::format("account[{}].auth.security_token_env", i));
    }
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        add(sinks[i].hmac_secret, fmt::format("alerts.sink[{}].hmac_secret_env", i));
        add(sinks[i].url_secret, fmt::format("alerts.sink[{}].url_env", i));
    }
    for (const auto& at : pass_env_lines)
        for (const auto& name : sinks[at.index].pass_env)
            if (auto it = secret_vars.find(name); it != secret_vars.end())
                alerts.report().error(at.line, at.key,
                                      fmt::format("{} holds a secret ({}); a hook never gets it", name, it->second));
}

/// group_by, group_wait, group_interval, max_alerts_per_notification of one sink.
void read_grouping(const table_reader& r, sink_config& s) {
    if (s.type == sink_type::alertmanager) {
        s.group.by.clear();
        s.group.wait = s.group.interval = milliseconds(0);
    }
    if (auto labels = strings(r, "group_by", [&](const std::string& name) {
            if (std::find(group_label_names.begin(), group_label_names.end(), name) != group_label_names.end())
                return true;
            r.invalid("group_by", fmt::format("unknown label \"{}\"; expected some of \"account\", \"source\", "
                                              "\"kind\", \"severity\", \"item\"",
                                              name));
            return false;
        })) {
        s.group.by.clear();
        for (const auto& name : *labels) {
            const auto at = std::find(group_label_names.begin(), group_label_names.end(), name);
            const auto label = static_cast<group_label>(at - group_label_names.begin());
            if (std::find(s.group.by.begin(), s.group.by.end(), label) == s.group.by.end()) s.group.by.push_back(label);
        }
    }
    r.duration("group_wait", milliseconds(0), std::chrono::hours(24), s.group.wait);
    r.duration("group_interval", milliseconds(0), std::chrono::hours(24 * 7), s.group.interval);
    r.integer("max_alerts_per_notification", 1, 100'000, s.group.max_alerts);
}

void read_sinks(const table_reader& alerts, const std::vector<account_config>& account_list,
                const std::set<std::string, std::less<>>& accounts, std::vector<sink_config>& out) {
    std::vector<pass_env_at> pass_env_lines;
    const toml::node* n = alerts.node("sink");
    if (n == nullptr) return;
    const toml::array* a = n->as_array();
    if (a == nullptr) return alerts.wrong_type("sink", *n, "array of tables ([[alerts.sink]])");
    struct only_for {
        std::string_view key;
        std::vector<sink_type> types;
    };
    static const std::vector<only_for> specific{
        {"path", {sink_type::jsonl}},
        {"url", {sink_type::webhook, sink_type::alertmanager}},
        {"url_env", {sink_type::webhook, sink_type::alertmanager}},
        {"url_file", {sink_type::webhook, sink_type::alertmanager}},
        {"url_credential", {sink_type::webhook, sink_type::alertmanager}},
        {"headers", {sink_type::webhook, sink_type::alertmanager}},
        {"hmac_secret_env", {sink_type::webhook}},
        {"hmac_secret_file", {sink_type::webhook}},
        {"hmac_secret_credential", {sink_type::webhook}},
        {"signature_header", {sink_type::webhook}},
        {"argv", {sink_type::exec}},
        {"pass_env", {sink_type::exec}},
        // Alertmanager groups the alerts it receives itself (its route's group_by).
        {"group_by", {sink_type::log, sink_type::jsonl, sink_type::webhook, sink_type::exec}},
        {"group_wait", {sink_type::log, sink_type::jsonl, sink_type::webhook, sink_type::exec}},
        {"group_interval", {sink_type::log, sink_type::jsonl, sink_type::webhook, sink_type::exec}},
        {"env", {sink_type::exec}},
    };
    std::map<std::string, line_t, std::less<>> names;
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::table* t = a->get(i)->as_table();
        const std::string path = fmt::format("alerts.sink[{}]", i);
        if (t == nullptr) {
            alerts.report().error(line_of(a->get(i)->source()), path, "expected table");
            continue;
        }
        std::vector<std::string_view> known{"name",     "type",       "kinds",          "min_severity",
                                            "accounts", "timeout",    "group_by",       "group_wait",
                                            "group_interval", "max_alerts_per_notification"};
        for (const auto& s : specific) known.push_back(s.key);
        const table_reader r(*t, path, known, alerts.report());
        sink_config s;
        auto type = r.string("type", true);
        if (!type) continue;
        if (*type == "log") s.type = sink_type::log;
        else if (*type == "jsonl") s.type = sink_type::jsonl;
        else if (*type == "webhook") s.type = sink_type::webhook;
        else if (*type == "alertmanager") s.type = sink_type::alertmanager;
        else if (*type == "exec") s.type = sink_type::exec;
        else {
            r.invalid("type", fmt::format("unknown sink type \"{}\"; expected \"log\", \"jsonl\", \"webhook\", "
                                          "\"alertmanager\" or \"exec\"",
                                          *type));
            continue;
        }
        for (const auto& sp : specific)
            if (r.node(sp.key) != nullptr && std::find(sp.types.begin(), sp.types.end(), s.type) == sp.types.end())
                r.invalid(sp.key, fmt::format("not used by a sink of type \"{}\"", *type));

        s.name = r.string("name").value_or(std::string(to_string(s.type)));
        if (s.name.empty()) r.invalid("name", "must not be empty");
        const line_t line = r.node("name") ? line_of(r.node("name")->source()) : r.line();
        if (auto [it, inserted] = names.try_emplace(s.name, line); !inserted)
            r.report().error(line, r.key("name"),
                             fmt::format("duplicate sink name \"{}\" (also line {}); give each sink its own name",
                                         s.name, it->second));
        if (auto k = kinds(r, "kinds")) s.filter.kinds = std::move(*k);
        if (auto v = r.string("min_severity")) {
            if (auto sev = severity_named(*v)) s.filter.min_severity = *sev;
            else
                r.invalid("min_severity",
                          fmt::format("unknown severity \"{}\"; expected \"info\", \"warning\" or \"critical\"", *v));
        }
        if (auto acc = strings(r, "accounts", [&](const std::string& name) {
                if (accounts.contains(name)) return true;
                r.invalid("accounts", fmt::format("no [[account]] is named \"{}\"", name));
                return false;
            }))
            s.filter.accounts = std::move(*acc);
        r.duration("timeout", milliseconds(100), std::chrono::minutes(10), s.timeout);
        read_grouping(r, s);

        switch (s.type) {
            case sink_type::log: break;
            case sink_type::jsonl:
                if (r.node("path") == nullptr) r.missing("path");
                r.path("path", false, s.path);
                break;
            case sink_type::webhook:
            case sink_type::alertmanager:
                read_sink_url(r, s);
                if (const toml::table* h = r.table("headers")) {
                    for (auto&& [k, v] : *h) {
                        const auto* str = v.as_string();
                        if (str == nullptr) {
                            r.report().error(line_of(v.source()), r.key(fmt::format("headers.{}", k.str())),
                                             fmt::format("expected string, got {}", type_name(v.type())));
                            continue;
                        }
                        const auto bad = [](char c) { return c == '\r' || c == '\n' || c == '\0'; };
                        if (k.str().empty() || std::any_of(k.str().begin(), k.str().end(), bad) ||
                            std::any_of(str->get().begin(), str->get().end(), bad))
                            r.report().error(line_of(v.source()), r.key(fmt::format("headers.{}", k.str())),
                                             "header names and values must not contain CR, LF or NUL");
                        s.headers.emplace_back(std::string(k.str()), str->get());
                    }
                }
                if (s.type == sink_type::webhook) {
                    read_secret_ref(r, "hmac_secret", false, s.hmac_secret);
                    if (auto h = r.string("signature_header")) s.signature_header = std::move(*h);
                }
                break;
            case sink_type::exec:
                if (auto argv = strings(r, "argv", [](const std::string&) { return true; })) {
                    if (argv->empty() || argv->front().empty()) r.invalid("argv", "must name a program to run");
                    s.argv = std::move(*argv);
                } else if (r.node("argv") == nullptr) {
                    r.missing("argv");
                }
                read_exec_environment(r, s);
                if (const toml::node* pe = r.node("pass_env"))
                    pass_env_lines.push_back({out.size(), line_of(pe->source()), r.key("pass_env")});
                break;
        }
        out.push_back(std::move(s));
    }
    refuse_secret_pass_env(alerts, account_list, out, pass_env_lines);
}

}  // namespace

void read_alerts(const table_reader& root, const std::vector<account_config>& account_list, alerts_config& out) {
    const toml::table* t = root.table("alerts");
    if (t == nullptr) return;
    std::vector<std::string_view> known{"repeat_interval", "max_attempts", "retry_base", "retry_max",
                                        "flush_timeout",   "source",       "account",    "silence",
                                        "sink"};
    known.insert(known.end(), rule_keys().begin(), rule_keys().end());
    const table_reader r(*t, "alerts", known, root.report());
    std::set<std::string, std::less<>> accounts;
    for (const auto& a : account_list) accounts.insert(a.name);

    r.duration("repeat_interval", std::chrono::minutes(1), std::nullopt, out.repeat_interval);
    r.integer("max_attempts", 1, 1000, out.max_attempts);
    r.duration("retry_base", milliseconds(10), std::chrono::hours(1), out.retry_base);
    r.duration("retry_max", milliseconds(10), std::chrono::hours(24), out.retry_max);
    r.duration("flush_timeout", milliseconds(0), std::chrono::hours(1), out.flush_timeout);
    apply_rule_keys(r, out.rules);

    // Per source, then per account (over the source's rules where both exist): account beats source.
    std::map<std::string, const toml::table*, std::less<>> source_tables;
    if (const toml::table* sources = r.table("source")) {
        const table_reader sr(*sources, "alerts.source", {source_names.begin(), source_names.end()}, r.report());
        for (auto name : source_names) {
            const toml::table* st = sr.table(name);
            if (st == nullptr) continue;
            const table_reader one(*st, sr.key(name), rule_keys(), r.report());
            alert_rules rules = out.rules;
            apply_rule_keys(one, rules);
            out.scoped.push_back({"", std::string(name), std::move(rules)});
            source_tables.emplace(name, st);
        }
    }
    if (const toml::table* per_account = r.table("account")) {
        for (auto&& [name, node] : *per_account) {
            const std::string path = fmt::format("alerts.account.{}", name.str());
            const toml::table* at = node.as_table();
            if (at == nullptr) {
                r.report().error(line_of(node.source()), path, fmt::format("expected table, got {}", type_name(node.type())));
                continue;
            }
            if (!accounts.contains(name.str())) {
                r.report().error(line_of(node.source()), path, fmt::format("no [[account]] is named \"{}\"", name.str()));
                continue;
            }
            const table_reader ar(*at, path, rule_keys(), r.report());
            alert_rules rules = out.rules;
            apply_rule_keys(ar, rules);
            out.scoped.push_back({std::string(name.str()), "", rules});
            for (const auto& [source, st] : source_tables) {
                validation quiet(std::string(), {});  // both tables were checked above; apply values only
                alert_rules both = out.rules;
                apply_rule_keys(table_reader(*st, "", rule_keys(), quiet), both);
                apply_rule_keys(table_reader(*at, "", rule_keys(), quiet), both);
                out.scoped.push_back({std::string(name.str()), source, std::move(both)});
            }
        }
    }
    read_silences(r, accounts, out.silences);
    read_sinks(r, account_list, accounts, out.sinks);
}

}  // namespace subsync::config::detail
