#include <subsync/daemon/metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace subsync::daemon {
namespace {

std::string_view type_name(metric_type t) {
    switch (t) {
        case metric_type::counter: return "counter";
        case metric_type::gauge: return "gauge";
        case metric_type::histogram: return "histogram";
    }
    return "untyped";
}

// HELP text escapes only backslash and newline (quotes stay as they are).
std::string escape_help(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

}  // namespace

std::string format_metric_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

metric_family::metric_family(std::string name, std::string help, metric_type type, std::vector<std::string> label_names,
                             std::vector<double> buckets)
    : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)),
      buckets_(std::move(buckets)) {
    if (!std::is_sorted(buckets_.begin(), buckets_.end()))
        throw std::logic_error(fmt::format("{}: histogram buckets must ascend", name_));
}

metric_family::series& metric_family::at(const label_values& labels) {
    if (labels.size() != label_names_.size())
        throw std::logic_error(
            fmt::format("{}: {} label values for {} labels", name_, labels.size(), label_names_.size()));
    auto [it, inserted] = series_.try_emplace(labels);
    if (inserted && type_ == metric_type::histogram) it->second.bucket_counts.assign(buckets_.size(), 0);
    return it->second;
}

void metric_family::inc(const label_values& labels, double by) { at(labels).value += by; }

void metric_family::set(const label_values& labels, double value) { at(labels).value = value; }

void metric_family::observe(const label_values& labels, double value) {
    series& s = at(labels);
    const auto bucket = std::lower_bound(buckets_.begin(), buckets_.end(), value);  // first bound >= value
    if (bucket != buckets_.end()) ++s.bucket_counts[static_cast<std::size_t>(bucket - buckets_.begin())];
    s.sum += value;
    ++s.count;
}

double metric_family::value(const label_values& labels) const {
    const auto it = series_.find(labels);
    if (it == series_.end()) return 0;
    return type_ == metric_type::histogram ? static_cast<double>(it->second.count) : it->second.value;
}

void metric_family::append_labels(std::string& out, const label_values& values, std::string_view le) const {
    if (values.empty() && le.empty()) return;
    out += '{';
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i != 0) out += ',';
        out += fmt::format("{}=\"{}\"", label_names_[i], escape_label_value(values[i]));
    }
    if (!le.empty()) out += fmt::format("{}le=\"{}\"", values.empty() ? "" : ",", le);
    out += '}';
}

void metric_family::render(std::string& out) const {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, escape_help(help_), name_, type_name(type_));
    for (const auto& [labels, s] : series_) {
        if (type_ != metric_type::histogram) {
            out += name_;
            append_labels(out, labels);
            out += fmt::format(" {}\n", format_metric_value(s.value));
            continue;
        }
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            cumulative += s.bucket_counts[i];
            out += name_ + "_bucket";
            append_labels(out, labels, format_metric_value(buckets_[i]));
            out += fmt::format(" {}\n", cumulative);
        }
        out += name_ + "_bucket";
        append_labels(out, labels, "+Inf");
        out += fmt::format(" {}\n", s.count);
        out += name_ + "_sum";
        append_labels(out, labels);
        out += fmt::format(" {}\n", format_metric_value(s.sum));
        out += name_ + "_count";
        append_labels(out, labels);
        out += fmt::format(" {}\n", s.count);
    }
}

metric_family& metrics_registry::add(std::string name, std::string help, metric_type type,
                                     std::vector<std::string> label_names, std::vector<double> buckets) {
    return families_.emplace_back(std::move(name), std::move(help), type, std::move(label_names), std::move(buckets));
}

std::string metrics_registry::render() const {
    std::string out;
    for (const auto& f : families_) f.render(out);
    return out;
}

}  // namespace subsync::daemon
