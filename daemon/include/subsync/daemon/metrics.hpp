#pragma once
// A minimal metrics registry that renders the Prometheus text exposition format (0.0.4):
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
// One thread updates and renders it (the daemon's event loop), so there is no locking.

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::daemon {

enum class metric_type { counter, gauge, histogram };

/// Label values, in the order of the family's label names.
using label_values = std::vector<std::string>;

/// One metric family: a name, its HELP and TYPE, and a series per label value combination.
class metric_family {
public:
    /// `buckets`: upper bounds of a histogram's buckets, ascending (+Inf is implicit).
    metric_family(std::string name, std::string help, metric_type type, std::vector<std::string> label_names,
                  std::vector<double> buckets = {});

    /// Adds `by` (>= 0) to a counter or gauge.
    void inc(const label_values& labels, double by = 1);
    /// Sets a gauge.
    void set(const label_values& labels, double value);
    /// Records one observation in a histogram.
    void observe(const label_values& labels, double value);
    /// Drops every series (for gauges recomputed from scratch).
    void clear() { series_.clear(); }

    /// A counter's or gauge's value; a histogram's count. 0 for a series never touched.
    [[nodiscard]] double value(const label_values& labels) const;
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    /// Appends `# HELP`, `# TYPE` and every sample line (series sorted by label values).
    void render(std::string& out) const;

private:
    struct series {
        double value = 0;
        std::vector<std::uint64_t> bucket_counts;  ///< per bucket, not cumulative
        double sum = 0;
        std::uint64_t count = 0;
    };
    series& at(const label_values& labels);
    void append_labels(std::string& out, const label_values& values, std::string_view le = {}) const;

    std::string name_;
    std::string help_;
    metric_type type_;
    std::vector<std::string> label_names_;
    std::vector<double> buckets_;
    std::map<label_values, series> series_;
};

/// Families in registration order; references returned by add() stay valid.
class metrics_registry {
public:
    metric_family& add(std::string name, std::string help, metric_type type, std::vector<std::string> label_names = {},
                       std::vector<double> buckets = {});
    /// The whole exposition, ending in a newline.
    [[nodiscard]] std::string render() const;

private:
    std::deque<metric_family> families_;
};

/// A sample value as Prometheus writes it: shortest round-trip decimal, "+Inf", "-Inf", "NaN".
[[nodiscard]] std::string format_metric_value(double v);

/// A label value escaped for the exposition format: `\` → `\\`, `"` → `\"`, newline → `\n`.
[[nodiscard]] std::string escape_label_value(std::string_view v);

}  // namespace subsync::daemon
