#pragma once
// report.html: one self-contained page (inline CSS and SVG, no scripts, nothing
// fetched from elsewhere) for people: what expires soon, what is firing, and
// how each purchase's quota is going. docs/exports.md shows it.

#include <subsync/config/config.hpp>
#include <subsync/exporters/table_export.hpp>
#include <subsync/sync/records.hpp>

#include <SQLiteCpp/Database.h>

#include <cstddef>
#include <cstdint>

namespace subsync::exporters {

/// How much the report shows. Every cap is printed on the page where it applies,
/// so a reader knows when there is more (in the CSV/JSON files next to it).
struct report_options {
    int horizon_days = 90;                ///< the expiry timeline and table look this far ahead
    std::size_t max_timeline_marks = 60;  ///< soonest items drawn on the timeline; the table lists all
    std::size_t max_alerts = 100;         ///< firing alerts listed, most severe first
    std::size_t max_charts = 24;          ///< quota charts, purchases with the highest used share first
    std::size_t max_chart_samples = 400;  ///< the most recent samples per chart
    /// forecast_window, forecast_min_samples and forecast_min_r2 shape the forecast line.
    config::alert_rules forecast;
};

/// Streams the report of the snapshot as of `now` (the data's time, not the
/// clock's) to `sink`, reading every section in the caller's transaction if it
/// has one. Memory is bounded by the caps, not by table sizes; the expiring table
/// (every item expiring within the horizon) is streamed row by row.
/// Returns the number of items expiring within the horizon.
std::int64_t write_report(SQLite::Database& db, sync::epoch_ms now, const byte_sink& sink,
                          const report_options& opts = {});

}  // namespace subsync::exporters
