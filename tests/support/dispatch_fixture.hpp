#pragma once
// The alert tests' shared fixture: notifications queued through the outbox as the state machine
// queues them, a real SQLite file, a fake clock, sinks of each type, and a dispatcher run on a
// private io_context. Used by alert_dispatch_test.cpp (the dispatcher) and alert_sinks_test.cpp
// (each sink type).

#include <subsync/emulator/webhook_receiver.hpp>
#include <subsync/alerting/dispatch.hpp>
#include <subsync/alerting/outbox.hpp>
#include <subsync/config/load.hpp>
#include <subsync/sync/signer.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include "support/test_support.hpp"

#include <SQLiteCpp/Statement.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace subsync::dispatch_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using emulator::webhook_receiver;

inline constexpr std::int64_t t0 = 1'800'000'000'000;  // 2027-01-15T08:00:00Z

struct outbox_entry {
    std::string kind = "expiring";
    std::string state = "firing";
    std::string severity = "warning";
    std::string account = "prod";
    std::string id;  ///< empty: "sub-<seq>", so every notification is its own item
    std::int64_t created_at = t0;
    std::optional<std::int64_t> resolved_at;
};

inline outbox_entry item(std::string id) {
    outbox_entry e;
    e.id = std::move(id);
    return e;
}

inline outbox_entry resolved_at(std::int64_t t) {
    outbox_entry e;
    e.state = "resolved";
    e.created_at = t;
    e.resolved_at = t;
    return e;
}

inline std::string id_of(std::int64_t seq, const outbox_entry& e) {
    return e.id.empty() ? fmt::format("sub-{:04}", seq) : e.id;
}

inline std::string payload_of(std::int64_t seq, const outbox_entry& e) {
    return fmt::format(
        R"({{"idempotency_key":"key-{seq}","kind":"{kind}","severity":"{severity}","state":"{state}","account":"{account}",)"
        R"("source":"purchased_groups","id":"{id}","threshold":"7d","since":"{since}","resolved_at":{resolved},)"
        R"("reason":{reason},"summary":"purchased group \"payments\" expires in 6 days","values":{{"expire_time":)"
        R"("2027-01-21T08:00:00Z","days_left":6.0}},"notification":1,"created_at":"{created}"}})",
        fmt::arg("seq", seq), fmt::arg("kind", e.kind), fmt::arg("severity", e.severity), fmt::arg("account", e.account), fmt::arg("state", e.state), fmt::arg("id", id_of(seq, e)),
        fmt::arg("since", sync::format_iso8601(t0 - 3'600'000)),
        fmt::arg("resolved", e.resolved_at ? "\"" + sync::format_iso8601(*e.resolved_at) + "\"" : "null"),
        fmt::arg("reason", e.resolved_at ? "\"renewed\"" : "null"), fmt::arg("created", sync::format_iso8601(e.created_at)));
}

/// Queues a notification for `sinks` as the outbox writer does; returns its seq.
inline std::int64_t enqueue(SQLite::Database& db, const std::vector<std::string>& sinks, const outbox_entry& e = {}) {
    const std::int64_t seq = db.execAndGet("SELECT coalesce(max(seq), 0) + 1 FROM alert_outbox").getInt64();
    // The fields payload_of() shows: what a sink receives is rendered from them.
    alerting::queued_notification n{"key-" + std::to_string(seq), e.created_at, std::nullopt, e.account,
                                    "purchased_groups", id_of(seq, e), *config::alert_kind_named(e.kind), "7d",
                                    e.state == "firing" ? alerting::alert_state::firing : alerting::alert_state::resolved,
                                    *config::severity_named(e.severity), t0 - 3'600'000, e.resolved_at,
                                    e.resolved_at ? "renewed" : "", R"(purchased group "payments" expires in 6 days)",
                                    R"({"expire_time":"2027-01-21T08:00:00Z","days_left":6.0})", 1};
    EXPECT_EQ(alerting::outbox(db).enqueue(n, sinks), seq);
    return seq;
}

/// The idempotency key docs/alert-delivery.md gives a group notification of the alerts queued
/// under `keys` (in queue order): "group:" and 32 hex digits of SHA-256 of each key and a newline.
inline std::string group_key_of(std::initializer_list<std::string_view> keys) {
    std::string all;
    for (auto k : keys) all.append(k).append("\n");
    return "group:" + sync::sha256_hex(all).substr(0, 32);
}

/// The alerts array of a group notification's payload, as one JSON text per alert.
inline std::vector<std::string> alerts_of(std::string_view body) {
    simdjson::dom::parser p;
    simdjson::dom::element doc = p.parse(body);
    std::vector<std::string> out;
    for (auto a : doc["alerts"].get_array()) out.push_back(simdjson::minify(a));
    return out;
}

/// The one alert of a notification of a group of one.
inline std::string only_alert(std::string_view body) {
    auto v = alerts_of(body);
    EXPECT_EQ(v.size(), 1u) << body;
    return v.empty() ? std::string() : v.front();
}

/// A sink that sends every alert on its own, at once.
inline config::sink_config one_by_one(config::sink_config s) {
    s.group.by = {config::group_label::item};
    s.group.interval = 0ms;
    return s;
}

struct delivery_state {
    std::string status;
    std::int64_t attempts = 0;
    std::int64_t next_attempt_at = 0;
    std::string last_error;
};

inline delivery_state delivery(SQLite::Database& db, const std::string& sink, std::int64_t seq) {
    SQLite::Statement q(db,
                        "SELECT status, attempts, next_attempt_at, coalesce(last_error, '') FROM alert_delivery_status "
                        "WHERE sink = ? AND seq = ?");
    q.bind(1, sink);
    q.bind(2, seq);
    if (!q.executeStep()) return {};
    return {q.getColumn(0).getString(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
            q.getColumn(3).getString()};
}

inline std::vector<std::string> attempt_outcomes(SQLite::Database& db, const std::string& sink) {
    SQLite::Statement q(db, "SELECT seq || ':' || outcome FROM alert_attempts WHERE sink = ? ORDER BY id");
    q.bind(1, sink);
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
}

inline config::sink_config jsonl_sink(const std::filesystem::path& path, std::string name = "file") {
    config::sink_config s;
    s.name = std::move(name);
    s.type = config::sink_type::jsonl;
    s.path = path;
    return one_by_one(std::move(s));
}

inline config::sink_config http_sink(const webhook_receiver& r, config::sink_type type, std::string name = "hook") {
    config::sink_config s;
    s.name = std::move(name);
    s.type = type;
    s.url = *config::parse_endpoint(type == config::sink_type::webhook ? r.base_url() + "/hook" : r.base_url());
    s.timeout = 2s;
    return type == config::sink_type::alertmanager ? s : one_by_one(std::move(s));
}

/// A webhook sink with the default grouping (by account and kind) and no group_interval.
inline config::sink_config grouped_webhook(const webhook_receiver& r) {
    auto s = http_sink(r, config::sink_type::webhook);
    s.group = {};
    s.group.interval = std::chrono::milliseconds(0);
    return s;
}

inline config::sink_config exec_sink(std::vector<std::string> argv, std::chrono::milliseconds timeout = 5s) {
    config::sink_config s;
    s.name = "hook";
    s.type = config::sink_type::exec;
    s.argv = std::move(argv);
    s.timeout = timeout;
    return one_by_one(std::move(s));
}

/// Owns a database, a CA file, a fake clock, and runs dispatches on a private io_context.
class Dispatch : public ::testing::Test {
protected:
    test::temp_dir dir;
    sync::snapshot_store store{dir / "snapshot.db"};
    SQLite::Database& db = store.database();
    std::int64_t now = t0;
    config::alerts_config cfg = base_config();
    std::map<std::string, std::string> env_vars;
    std::vector<std::string> secret_env_names;

    static config::alerts_config base_config() {
        config::alerts_config c;
        c.max_attempts = 3;
        c.retry_base = 10s;
        c.retry_max = 60s;
        c.repeat_interval = 24h;
        return c;
    }

    alerting::sink_context context(const webhook_receiver* r) {
        alerting::sink_context ctx;
        if (r) {
            test::write_file(dir / "ca.pem", r->cert_pem());
            config::tls_config tls;
            tls.ca_file = dir / "ca.pem";
            ctx.tls = sync::make_tls_context(tls);
        }
        ctx.env.lookup = [this](const std::string& name) -> std::optional<std::string> {
            auto it = env_vars.find(name);
            if (it == env_vars.end()) return std::nullopt;
            return it->second;
        };
        ctx.env.credentials_dir = [] { return std::optional<std::filesystem::path>{}; };
        ctx.secret_env_names = secret_env_names;
        return ctx;
    }

    alerting::dispatch_report dispatch(const webhook_receiver* r = nullptr,
                                        std::chrono::milliseconds budget = 10s) {
        asio::io_context io;
        auto ctx = context(r);
        ctx.ex = io.get_executor();
        alerting::alert_dispatcher d(cfg, ctx, db, {[this] { return now; }, [] { return 0.5; }});
        auto f = asio::co_spawn(io, d.run(std::chrono::steady_clock::now() + budget), asio::use_future);
        io.run();
        return f.get();
    }

    /// `passes` delivery passes, each a minute after the one before (past any backoff): with
    /// max_attempts = 3 and a receiver that keeps failing, three make the head a dead letter.
    void dispatch_passes(const webhook_receiver& r, int passes) {
        for (int i = 0; i < passes; ++i) {
            dispatch(&r);
            now += 60'000;
        }
    }
};

}  // namespace subsync::dispatch_test
