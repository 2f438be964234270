#include <subsync/sync/error.hpp>
#include <subsync/sync/records.hpp>

#include <stdexcept>

namespace subsync::sync {

std::string_view to_string(source_kind k) noexcept {
    switch (k) {
        case source_kind::purchased_groups: return "purchased_groups";
        case source_kind::subscriptions: return "subscription_resources";
    }
    return "unknown";
}

std::string item_key(const purchased_group& g) { return g.id; }

namespace {

// A key component that can never be mistaken for another: `%` and `/` are
// percent-encoded, a null (or absent) value is empty and an empty string is
// `%00`, which no encoded text can produce. Real region and project ids contain
// neither character, so their keys read as plain `region/project/resource`.
void append_component(std::string& key, const field<std::string>& v) {
    if (!v.has_value()) return;
    if (v->empty()) {
        key += "%00";
        return;
    }
    for (char c : *v) {
        if (c == '%') key += "%25";
        else if (c == '/') key += "%2F";
        else key += c;
    }
}

}  // namespace

std::string item_key(const subscription_resource& r) {
    std::string key;
    key.reserve(r.resource_id.size() + 48);
    append_component(key, r.region_id);
    key += '/';
    append_component(key, r.project_id);
    key += '/';
    key += r.resource_id;  // the last component: any `/` in it is unambiguous
    return key;
}

std::string_view to_string(error_kind k) noexcept {
    switch (k) {
        case error_kind::network: return "network";
        case error_kind::timeout: return "timeout";
        case error_kind::tls: return "tls";
        case error_kind::http_status: return "http_status";
        case error_kind::auth: return "auth";
        case error_kind::parse: return "parse";
        case error_kind::incomplete: return "incomplete";
        case error_kind::cancelled: return "cancelled";
    }
    return "unknown";
}

void throw_exception_from_error(const error& e, const boost::source_location&) {
    throw std::runtime_error(e.message);
}

}  // namespace subsync::sync
