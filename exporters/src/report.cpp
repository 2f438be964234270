#include <subsync/exporters/report.hpp>
#include <subsync/alerting/alerts.hpp>
#include <subsync/sync/time.hpp>

#include "detail/html.hpp"

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace subsync::exporters {
namespace {

using detail::append_html;
using detail::date_of;
using sync::epoch_ms;

constexpr epoch_ms day_ms = 86'400'000;

// Inline only: the page must render and print the same with no network.
constexpr std::string_view style = R"css(
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --band:#f6f8fa; --crit:#cf222e; --warn:#bf8700; --ok:#1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--fg);
       margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
.muted, .note { color: var(--muted); } .note { font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, td.time { white-space: nowrap; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 11.5px; word-break: break-all; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; }
.counts div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; }
.counts b { display: block; font-size: 18px; }
.sev, .status { font-weight: 600; } .critical, .failed { color: var(--crit); } .warning, .incomplete { color: var(--warn); }
.info, .ok { color: var(--ok); } a { color: inherit; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); } svg .tick { fill: var(--muted); font-size: 10px; }
svg .axis { stroke: var(--muted); stroke-width: 1; } svg .grid { stroke: var(--line); stroke-width: 1; }
svg .now { stroke: var(--muted); stroke-dasharray: 2 3; } svg .lane { fill: var(--band); }
svg .lane-label { font-weight: 600; } svg .mark { stroke: #fff; stroke-width: 1; }
svg .m-critical { fill: var(--crit); } svg .m-warning { fill: var(--warn); } svg .m-ok { fill: var(--ok); }
svg .q-left, svg .q-used, svg .q-forecast { fill: none; stroke-width: 1.6; }
svg .q-left { stroke: #0969da; } svg circle.q-left { fill: #0969da; } svg .q-used { stroke: #bc4c00; }
svg circle.q-used { fill: #bc4c00; } svg .q-forecast { stroke: var(--crit); stroke-dasharray: 5 3; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(370px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
figcaption { font-size: 12px; } figcaption b { word-break: break-all; }
.key i { display: inline-block; width: 14px; height: 3px; margin: 0 4px 3px 10px; vertical-align: middle; }
.key .k-left { background: #0969da; } .key .k-used { background: #bc4c00; }
.key .k-forecast { background: repeating-linear-gradient(90deg, var(--crit) 0 5px, transparent 5px 8px); }
@media print {
  @page { size: A4; margin: 12mm; }
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  h2 { break-after: avoid; } tr, figure, svg { break-inside: avoid; }
  thead { display: table-header-group; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
)css";

// Buffers the page and hands it to the sink in chunks: memory stays at one chunk.
class page {
public:
    explicit page(const byte_sink& sink) : sink_(sink) {}
    page& operator<<(std::string_view raw) {
        buf_ += raw;
        if (buf_.size() >= (64u << 10)) flush();
        return *this;
    }
    /// Escaped text.
    page& text(std::string_view s) {
        append_html(buf_, s);
        return *this;
    }
    void flush() {
        sink_(buf_);
        buf_.clear();
    }

private:
    const byte_sink& sink_;
    std::string buf_;
};

std::string when(epoch_ms t) { return sync::format_iso8601(t); }

std::string nullable(const SQLite::Column& c) { return c.isNull() ? std::string() : c.getString(); }

// Every current item with an expire_time in [now, end]; the caller appends ORDER BY / LIMIT.
constexpr std::string_view expiring_sql =
    "SELECT account, 'purchased_groups' AS source, item_key, coalesce(group_name, id) AS name, expire_time "
    "FROM purchased_groups WHERE removed_at IS NULL AND expire_time BETWEEN :now AND :end "
    "UNION ALL "
    "SELECT account, 'subscription_resources', item_key, "
    "coalesce(nullif(trim(coalesce(resource_type, '') || ' ' || coalesce(resource_spec_code, '')), ''), resource_id), "
    "expire_time FROM subscription_resources WHERE removed_at IS NULL AND expire_time BETWEEN :now AND :end";

struct expiring_item {
    std::string account, source, key, name;
    epoch_ms expire = 0;
};

const char* urgency(epoch_ms expire, epoch_ms now) {
    const epoch_ms left = expire - now;
    return left <= 7 * day_ms ? "critical" : left <= 30 * day_ms ? "warning" : "ok";
}

void header(page& p, SQLite::Database& db, epoch_ms now, std::int64_t expiring, std::int64_t firing,
            const report_options& opts) {
    p << "<header><h1>subsync report</h1><p class=\"muted\">Generated for data as of <time>" << when(now)
      << "</time> (the newest sync).";
    std::vector<std::string> accounts;
    std::int64_t account_count = 0;
    {
        SQLite::Statement q(db, "SELECT account FROM (SELECT account FROM sync_runs UNION SELECT account FROM "
                                "purchased_groups UNION SELECT account FROM subscription_resources) ORDER BY 1");
        while (q.executeStep())
            if (++account_count <= 50) accounts.push_back(q.getColumn(0).getString());
    }
    p << " Accounts (" << std::to_string(account_count) << "): ";
    for (std::size_t i = 0; i < accounts.size(); ++i) {
        p << (i ? ", " : "") << "<b>";
        p.text(accounts[i]) << "</b>";
    }
    if (account_count > 50) p << fmt::format(", and {} more", account_count - 50);
    p << ".</p>";
    const auto count = [&](const char* sql) { return db.execAndGet(sql).getInt64(); };
    p << "<div class=\"counts\">"
      << fmt::format("<div><b>{}</b>purchased API groups</div>",
                     count("SELECT count(*) FROM purchased_groups WHERE removed_at IS NULL"))
      << fmt::format("<div><b>{}</b>subscription resources</div>",
                     count("SELECT count(*) FROM subscription_resources WHERE removed_at IS NULL"))
      << fmt::format("<div><b>{}</b>expiring within {} days</div>", expiring, opts.horizon_days)
      << fmt::format("<div><b>{}</b>alerts firing</div>", firing) << "</div>";

    p << "<h2>Last sync per source</h2><table><thead><tr><th>account</th><th>source</th><th>status</th>"
         "<th>finished</th><th>items</th><th>error</th></tr></thead><tbody>";
    SQLite::Statement q(db, "SELECT r.account, r.source, r.status, r.finished_at, r.items, r.error FROM sync_runs r "
                            "JOIN (SELECT max(id) AS id FROM sync_runs GROUP BY account, source) m ON r.id = m.id "
                            "ORDER BY r.account, r.source LIMIT 200");
    bool any = false;
    while (q.executeStep()) {
        any = true;
        p << "<tr><td>";
        p.text(q.getColumn(0).getString()) << "</td><td>";
        p.text(q.getColumn(1).getString()) << "</td><td class=\"status ";
        p.text(q.getColumn(2).getString()) << "\">";
        p.text(q.getColumn(2).getString()) << "</td><td>" << when(q.getColumn(3).getInt64()) << "</td><td class=\"num\">"
                                           << std::to_string(q.getColumn(4).getInt64()) << "</td><td>";
        p.text(nullable(q.getColumn(5))) << "</td></tr>";
    }
    if (!any) p << "<tr><td colspan=\"6\" class=\"muted\">No sync on record yet.</td></tr>";
    p << "</tbody></table></header>";
}

// The timeline: one row per item, grouped in lanes by (account, source), on a date axis.
void timeline(page& p, const std::vector<expiring_item>& items, epoch_ms now, const report_options& opts) {
    constexpr double width = 1000, label_w = 180, axis_l = label_w + 10, axis_r = width - 40, top = 34, row_h = 16,
                     lane_h = 20;
    const epoch_ms end = now + opts.horizon_days * day_ms;
    const auto x = [&](epoch_ms t) {
        return axis_l + static_cast<double>(t - now) / static_cast<double>(end - now) * (axis_r - axis_l);
    };
    std::vector<const expiring_item*> sorted;
    for (const auto& i : items) sorted.push_back(&i);
    std::sort(sorted.begin(), sorted.end(), [](const expiring_item* a, const expiring_item* b) {
        return std::tie(a->account, a->source, a->expire, a->key) < std::tie(b->account, b->source, b->expire, b->key);
    });
    std::size_t lanes = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i)
        if (i == 0 || sorted[i]->account != sorted[i - 1]->account || sorted[i]->source != sorted[i - 1]->source) ++lanes;
    const double h = top + static_cast<double>(lanes) * lane_h + static_cast<double>(sorted.size()) * row_h + 8;
    p << fmt::format(R"(<svg class="timeline" viewBox="0 0 {0} {1:.0f}" width="{0}" height="{1:.0f}" role="img">)",
                     width, h);
    p << "<title>Items expiring in the next " << std::to_string(opts.horizon_days) << " days</title>";
    const int step = opts.horizon_days >= 60 ? 15 : opts.horizon_days >= 20 ? 5 : 1;
    for (int d = 0; d <= opts.horizon_days; d += step) {
        const double gx = x(now + d * day_ms);
        p << fmt::format(R"(<line class="grid" x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2:.0f}"/>)", gx, top - 6, h - 4)
          << fmt::format(R"(<text class="tick" x="{:.1f}" y="12" text-anchor="middle">{}</text>)", gx,
                         date_of(now + d * day_ms))
          << fmt::format(R"(<text class="tick" x="{:.1f}" y="24" text-anchor="middle">{}</text>)", gx,
                         d == 0 ? std::string("today") : fmt::format("+{} d", d));
    }
    double y = top;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        const auto& it = *sorted[i];
        if (i == 0 || it.account != sorted[i - 1]->account || it.source != sorted[i - 1]->source) {
            p << fmt::format(R"(<rect class="lane" x="0" y="{:.0f}" width="{}" height="{}"/>)", y, width, lane_h - 2)
              << fmt::format(R"(<text class="lane-label" x="4" y="{:.0f}">)", y + 13);
            p.text(detail::truncate_utf8(it.account, 40)) << " · ";
            p.text(it.source) << "</text>";
            y += lane_h;
        }
        const double mx = x(it.expire), my = y + row_h / 2;
        p << fmt::format(R"(<circle class="mark m-{}" cx="{:.1f}" cy="{:.1f}" r="4"><title>)", urgency(it.expire, now),
                         mx, my);
        p.text(it.name) << " (";
        p.text(it.key) << ") expires " << when(it.expire) << "</title></circle>";
        // Labels right of the mark, or left of it near the right edge.
        const bool left = mx > axis_r - 260;
        p << fmt::format(R"(<text x="{:.1f}" y="{:.1f}"{}>)", left ? mx - 8 : mx + 8, my + 4,
                         left ? R"( text-anchor="end")" : "");
        p.text(detail::truncate_utf8(it.name, 40)) << " · " << date_of(it.expire) << "</text>";
        p << fmt::format(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end">)", label_w, my + 4);
        p.text(detail::truncate_utf8(it.key, 28)) << "</text>";
        y += row_h;
    }
    p << "</svg>";
}

void expiring_timeline(page& p, SQLite::Database& db, epoch_ms now, std::int64_t total, const report_options& opts) {
    const epoch_ms end = now + opts.horizon_days * day_ms;
    p << fmt::format("<section id=\"expiring\"><h2>Expiring in the next {} days ({})</h2>", opts.horizon_days, total);
    if (total == 0) {
        p << "<p class=\"muted\">Nothing expires before " << date_of(end) << ".</p></section>";
        return;
    }
    std::vector<expiring_item> soonest;
    SQLite::Statement q(db, fmt::format("{} ORDER BY expire_time, account, source, item_key LIMIT :limit", expiring_sql));
    q.bind(":now", static_cast<std::int64_t>(now));
    q.bind(":end", static_cast<std::int64_t>(end));
    q.bind(":limit", static_cast<std::int64_t>(opts.max_timeline_marks));
    while (q.executeStep())
        soonest.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString(),
                           nullable(q.getColumn(3)), q.getColumn(4).getInt64()});
    timeline(p, soonest, now, opts);
    p << "<p class=\"note\">"
      << (static_cast<std::size_t>(total) > soonest.size()
              ? fmt::format("The timeline shows the {} soonest of {} items; ", soonest.size(), total)
              : std::string())
      << "<a href=\"#expiring-all\">the table at the end</a> lists every one.</p></section>";
}

// Last on the page: it is the only part that grows with the data.
void expiring_table(page& p, SQLite::Database& db, epoch_ms now, std::int64_t total, const report_options& opts) {
    if (total == 0) return;
    const epoch_ms end = now + opts.horizon_days * day_ms;
    p << fmt::format("<section id=\"expiring-all\"><h2>All {} items expiring in the next {} days</h2>", total,
                     opts.horizon_days)
      << "<table><thead><tr><th>expires (UTC)</th><th>in</th><th>account</th><th>source</th><th>name</th><th>id</th>"
         "</tr></thead><tbody>";
    SQLite::Statement q(db, fmt::format("{} ORDER BY expire_time, account, source, item_key", expiring_sql));
    q.bind(":now", static_cast<std::int64_t>(now));
    q.bind(":end", static_cast<std::int64_t>(end));
    while (q.executeStep()) {
        const epoch_ms t = q.getColumn(4).getInt64();
        p << "<tr><td class=\"time\">" << when(t) << "</td><td class=\"num sev " << urgency(t, now) << "\">"
          << fmt::format("{} d", (t - now) / day_ms) << "</td><td>";
        p.text(q.getColumn(0).getString()) << "</td><td>";
        p.text(q.getColumn(1).getString()) << "</td><td>";
        p.text(nullable(q.getColumn(3))) << "</td><td class=\"id\">";
        p.text(q.getColumn(2).getString()) << "</td></tr>";
    }
    p << "</tbody></table></section>";
}

void alerts_section(page& p, SQLite::Database& db, std::int64_t firing, const report_options& opts) {
    p << fmt::format("<section id=\"alerts\"><h2>Alerts firing ({})</h2>", firing);
    if (firing == 0) {
        p << "<p class=\"muted\">No alert is firing.</p></section>";
        return;
    }
    if (static_cast<std::size_t>(firing) > opts.max_alerts)
        p << fmt::format("<p class=\"note\">The {} most severe are listed; alerts.csv holds all {}.</p>",
                         opts.max_alerts, firing);
    p << "<table><thead><tr><th>severity</th><th>kind</th><th>account</th><th>source</th><th>item</th>"
         "<th>summary</th><th>since (UTC)</th></tr></thead><tbody>";
    SQLite::Statement q(db, "SELECT severity, kind, account, source, item_key, summary, since FROM alerts "
                            "WHERE state = 'firing' ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' "
                            "THEN 1 ELSE 2 END, account, source, item_key, kind, threshold LIMIT :limit");
    q.bind(":limit", static_cast<std::int64_t>(opts.max_alerts));
    while (q.executeStep()) {
        p << "<tr><td class=\"sev ";
        p.text(q.getColumn(0).getString()) << "\">";
        p.text(q.getColumn(0).getString()) << "</td>";
        for (int c = 1; c <= 5; ++c) {
            p << (c == 4 ? "<td class=\"id\">" : "<td>");
            p.text(q.getColumn(c).getString()) << "</td>";
        }
        p << "<td class=\"time\">" << when(q.getColumn(6).getInt64()) << "</td></tr>";
    }
    p << "</tbody></table></section>";
}

// Where the forecast's fit starts: the fit used the last `samples` points up to now.
epoch_ms fit_start(const std::vector<alerting::quota_point>& series, epoch_ms now,
                   const std::optional<alerting::forecast>& fit) {
    std::size_t end = series.size();
    while (end > 0 && series[end - 1].time > now) --end;
    if (!fit || fit->samples == 0 || fit->samples > end) return now;
    return series[end - fit->samples].time;
}

void quota_section(page& p, SQLite::Database& db, epoch_ms now, const report_options& opts) {
    const auto with_samples = db.execAndGet("SELECT count(*) FROM purchased_groups g WHERE removed_at IS NULL AND "
                                            "EXISTS (SELECT 1 FROM quota_samples s WHERE s.account = g.account AND "
                                            "s.purchase_id = g.id)")
                                  .getInt64();
    p << "<section id=\"quota\"><h2>Quota over time</h2>";
    if (with_samples == 0) {
        p << "<p class=\"muted\">No quota samples yet.</p></section>";
        return;
    }
    const auto shown = std::min<std::int64_t>(with_samples, static_cast<std::int64_t>(opts.max_charts));
    p << fmt::format("<p class=\"note\">{} of {} purchases with quota samples: those with a history (two samples or "
                     "more) first, then by highest share of quota used. "
                     "<span class=\"key\"><i class=\"k-left\"></i>left<i class=\"k-used\"></i>used"
                     "<i class=\"k-forecast\"></i>forecast of left (least squares over the last {} days)</span></p>",
                     shown, with_samples, opts.forecast.forecast_window.count() / day_ms);
    p << "<div class=\"charts\">";
    SQLite::Statement top(
        db, "SELECT account, id, group_name, quota_used, quota_left FROM purchased_groups g WHERE removed_at IS NULL "
            "AND EXISTS (SELECT 1 FROM quota_samples s WHERE s.account = g.account AND s.purchase_id = g.id) "
            // A series before a single point: a chart with a history says more than a dot.
            "ORDER BY EXISTS (SELECT 1 FROM quota_samples s WHERE s.account = g.account AND s.purchase_id = g.id "
            "LIMIT 1 OFFSET 1) DESC, CASE WHEN coalesce(quota_used, 0) + coalesce(quota_left, 0) > 0 THEN "
            "CAST(coalesce(quota_used, 0) AS REAL) / (coalesce(quota_used, 0) + coalesce(quota_left, 0)) ELSE 0 END "
            "DESC, quota_left, account, id LIMIT :limit");
    top.bind(":limit", static_cast<std::int64_t>(opts.max_charts));
    SQLite::Statement samples(db, "SELECT time, quota_used, quota_left FROM quota_samples WHERE account = ? AND "
                                  "purchase_id = ? ORDER BY time DESC LIMIT ?");
    std::vector<detail::quota_sample> series;
    std::vector<alerting::quota_point> points;
    while (top.executeStep()) {
        const std::string account = top.getColumn(0).getString(), id = top.getColumn(1).getString();
        samples.reset();
        samples.bind(1, account);
        samples.bind(2, id);
        samples.bind(3, static_cast<std::int64_t>(opts.max_chart_samples));
        series.clear();
        points.clear();
        const auto opt = [](const SQLite::Column& c) {
            return c.isNull() ? std::nullopt : std::optional<std::int64_t>(c.getInt64());
        };
        while (samples.executeStep())
            series.push_back({samples.getColumn(0).getInt64(), opt(samples.getColumn(1)), opt(samples.getColumn(2))});
        std::reverse(series.begin(), series.end());
        for (const auto& s : series)
            if (s.left) points.push_back({s.time, *s.left});
        const auto fit = alerting::fit_forecast(points, now, opts.forecast);
        p << "<figure>" << detail::quota_chart_svg(series, fit, now, fit_start(points, now, fit))
          << "<figcaption><b>";
        p.text(top.getColumn(2).isNull() ? id : top.getColumn(2).getString()) << "</b> <span class=\"muted\">";
        p.text(account) << " · ";
        p.text(id) << "</span><br>";
        const auto used = opt(top.getColumn(3)), left = opt(top.getColumn(4));
        p << fmt::format("used {} · left {}", used ? detail::short_number(static_cast<double>(*used)) : "–",
                         left ? detail::short_number(static_cast<double>(*left)) : "–");
        if (fit)
            p << fmt::format(" · <b>exhausted ≈ {}</b> (burns {}/day, R² {:.2f}, {} samples)", date_of(fit->exhaustion),
                             detail::short_number(fit->burn_per_day), fit->r2, fit->samples);
        else
            p << " · <span class=\"muted\">no forecast (too few samples, not falling, or too noisy)</span>";
        p << "</figcaption></figure>";
    }
    p << "</div></section>";
}

}  // namespace

std::int64_t write_report(SQLite::Database& db, epoch_ms now, const byte_sink& sink, const report_options& opts) {
    page p(sink);
    const epoch_ms end = now + opts.horizon_days * day_ms;
    SQLite::Statement count(db, fmt::format("SELECT count(*) FROM ({})", expiring_sql));
    count.bind(":now", static_cast<std::int64_t>(now));
    count.bind(":end", static_cast<std::int64_t>(end));
    count.executeStep();
    const std::int64_t expiring = count.getColumn(0).getInt64();
    const std::int64_t firing = db.execAndGet("SELECT count(*) FROM alerts WHERE state = 'firing'").getInt64();

    p << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>subsync report " << when(now) << "</title><style>" << style << "</style></head><body>\n";
    // Pictures first, then the capped alert list, then the one part that grows with the data.
    header(p, db, now, expiring, firing, opts);
    expiring_timeline(p, db, now, expiring, opts);
    quota_section(p, db, now, opts);
    alerts_section(p, db, firing, opts);
    expiring_table(p, db, now, expiring, opts);
    p << "<footer><p class=\"note\">Written by subsyncd. Times are UTC. The CSV and JSON files next to this page "
         "hold every row.</p></footer>\n</body></html>\n";
    p.flush();
    return expiring;
}

}  // namespace subsync::exporters
