#include <subsync/alerting/grouping.hpp>

#include <subsync/sync/columns.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/time.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace subsync::alerting {
namespace {

std::string_view label_value(const pending_delivery& d, config::group_label l) noexcept {
    switch (l) {
        case config::group_label::account: return d.account;
        case config::group_label::source: return d.source;
        case config::group_label::kind: return d.kind;
        case config::group_label::severity: return config::to_string(d.severity);
        case config::group_label::item: return d.item_key;
    }
    return {};
}

std::string_view label_value(const notification& n, config::group_label l) noexcept {
    switch (l) {
        case config::group_label::account: return n.account;
        case config::group_label::source: return n.source;
        case config::group_label::kind: return n.kind;
        case config::group_label::severity: return config::to_string(n.severity);
        case config::group_label::item: return n.id;
    }
    return {};
}

void append_encoded(std::string& out, std::string_view v) {
    for (const char c : v) {
        if (c == '%' || c == ',' || c == '=') out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
        else out += c;
    }
}

}  // namespace

void append_group_key(std::string& key, const pending_delivery& d, std::span<const config::group_label> by) {
    const std::size_t start = key.size();
    for (const auto l : by) {
        if (key.size() > start) key += ',';
        key += config::to_string(l);
        key += '=';
        if (l != config::group_label::item) {
            append_encoded(key, label_value(d, l));
            continue;
        }
        // The alert itself, as docs/alerts.md identifies it: an item's two alerts, or every
        // account's source-level alerts (whose item is ""), are not one group. Only the item
        // may hold a "/": the other four are names and thresholds without one.
        for (const std::string_view part : {std::string_view(d.account), std::string_view(d.source)}) {
            append_encoded(key, part);
            key += '/';
        }
        append_encoded(key, d.item_key);
        for (const std::string_view part : {std::string_view(d.kind), std::string_view(d.threshold)}) {
            key += '/';
            append_encoded(key, part);
        }
    }
}

std::string group_key(const pending_delivery& d, std::span<const config::group_label> by) {
    std::string key;
    append_group_key(key, d, by);
    return key;
}

bool more_urgent(config::severity severity_a, alert_state state_a, std::int64_t seq_a, config::severity severity_b,
                 alert_state state_b, std::int64_t seq_b) noexcept {
    if (severity_a != severity_b) return severity_a > severity_b;  // the enum is in order of urgency
    if (state_a != state_b) return state_a == alert_state::firing;
    return seq_a < seq_b;
}

notification_planner::notification_planner(const config::grouping& g) : g_(g) {}

void notification_planner::add(const pending_delivery& r) {
    if (r.batch) {
        auto& p = assigned_[*r.batch];
        if (p.seqs.empty()) {
            p.batch = *r.batch;
            p.key = group_key(r, g_.by);
            p.assigned = true;
            p.attempts = r.attempts;
            p.retrying = r.attempts > 0;
            p.due = r.next_attempt_at;
        }
        p.seqs.push_back(r.seq);
        return;
    }
    key_.clear();
    append_group_key(key_, r, g_.by);
    auto it = fresh_.find(key_);
    if (it == fresh_.end()) {
        it = fresh_.try_emplace(key_).first;
        it->second.first_seq = r.seq;
        it->second.oldest = r.created_at;
    }
    it->second.oldest = std::min(it->second.oldest, r.created_at);
    it->second.members.push_back({r.seq, r.severity, r.state});
}

std::vector<planned_notification> notification_planner::finish(
    const std::function<std::optional<epoch_ms>(const std::string&)>& last_delivered) {
    std::vector<std::pair<std::int64_t, planned_notification>> ordered;  // (first seq of its group, plan)
    for (auto& [batch, p] : assigned_) ordered.emplace_back(batch, std::move(p));
    const std::size_t chunk = static_cast<std::size_t>(std::max(1, g_.max_alerts));
    for (auto& [key, grp] : fresh_) {
        auto& m = grp.members;
        std::stable_sort(m.begin(), m.end(), [](const member& a, const member& b) {
            return more_urgent(a.severity, a.state, a.seq, b.severity, b.state, b.seq);
        });
        const auto last = last_delivered(key);
        const epoch_ms due = last ? std::max<epoch_ms>(*last + g_.interval.count(), grp.oldest)
                                  : grp.oldest + g_.wait.count();
        for (std::size_t at = 0; at < m.size(); at += chunk) {
            planned_notification p;
            p.key = key;
            p.due = due;
            const std::size_t end = std::min(m.size(), at + chunk);
            p.seqs.reserve(end - at);
            for (std::size_t i = at; i < end; ++i) p.seqs.push_back(m[i].seq);
            p.batch = *std::min_element(p.seqs.begin(), p.seqs.end());
            ordered.emplace_back(grp.first_seq, std::move(p));
        }
        m = {};
    }
    assigned_.clear();
    fresh_.clear();
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<planned_notification> out;
    out.reserve(ordered.size());
    for (auto& [first, p] : ordered) out.push_back(std::move(p));
    return out;
}

std::vector<planned_notification> plan_notifications(
    std::span<const pending_delivery> rows, const config::grouping& g,
    const std::function<std::optional<epoch_ms>(const std::string&)>& last_delivered) {
    notification_planner planner(g);
    for (const auto& r : rows) planner.add(r);
    return planner.finish(last_delivered);
}

std::string group_idempotency_key(std::span<const notification> members) {
    std::vector<const notification*> by_seq;
    by_seq.reserve(members.size());
    for (const auto& m : members) by_seq.push_back(&m);
    std::sort(by_seq.begin(), by_seq.end(), [](const auto* a, const auto* b) { return a->seq < b->seq; });
    std::string keys;
    for (const auto* m : by_seq) {
        keys += m->idempotency_key;
        keys += '\n';
    }
    return "group:" + sync::sha256_hex(keys).substr(0, 32);
}

boost::system::result<group_notification, std::string> make_group_notification(
    const planned_notification& p, std::string_view sink, std::span<const config::group_label> by,
    std::vector<notification> members, bool with_payload) {
    if (members.empty()) return fmt::format("group {} of sink {}: no pending member", p.batch, sink);
    group_notification g;
    g.batch = p.batch;
    g.key = p.key;
    g.idempotency_key = group_idempotency_key(members);
    g.alerts = std::move(members);
    std::stable_sort(g.alerts.begin(), g.alerts.end(), [](const notification& a, const notification& b) {
        if (a.state == alert_state::firing && b.state == alert_state::firing && a.severity == b.severity &&
            (a.number == 1) != (b.number == 1))
            return a.number == 1;  // new before repeated
        return more_urgent(a.severity, a.state, a.seq, b.severity, b.state, b.seq);
    });
    for (const auto l : by) g.labels.emplace_back(config::to_string(l), label_value(g.alerts.front(), l));
    for (const auto& a : g.alerts) {
        if (a.state == alert_state::resolved) ++g.resolved;
        else if (a.number > 1) ++g.repeated;
        else ++g.fresh;
    }
    if (!with_payload) return g;

    std::string& out = g.payload;
    std::size_t size = 256;
    for (const auto& a : g.alerts) size += a.payload.size() + 1;
    out.reserve(size);
    out += "{\"group\":{\"key\":";
    sync::append_json_string(out, g.key);
    out += ",\"labels\":{";
    for (std::size_t i = 0; i < g.labels.size(); ++i) {
        if (i) out += ',';
        sync::append_json_string(out, g.labels[i].first);
        out += ':';
        sync::append_json_string(out, g.labels[i].second);
    }
    out += "},\"sink\":";
    sync::append_json_string(out, sink);
    out += ",\"idempotency_key\":";
    sync::append_json_string(out, g.idempotency_key);
    out += fmt::format(R"(,"severity":"{}","alerts":{},"new":{},"repeated":{},"resolved":{}}},"alerts":[)",
                       config::to_string(g.alerts.front().severity), g.alerts.size(), g.fresh, g.repeated, g.resolved);
    for (std::size_t i = 0; i < g.alerts.size(); ++i) {
        if (i) out += ',';
        out += g.alerts[i].payload;
    }
    out += "]}";
    return g;
}

}  // namespace subsync::alerting
