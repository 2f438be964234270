// The process-wide list of secret values that redact() hides. Secrets are few
// (one to four per account) and long, so a linear scan per text is cheap.

#include <subsync/config/secret.hpp>

#include <algorithm>
#include <mutex>
#include <set>

namespace subsync::config {
namespace {

struct registry {
    std::mutex mutex;
    // Longest first: a secret that contains another is replaced whole.
    struct longer_first {
        bool operator()(const std::string& a, const std::string& b) const {
            return a.size() != b.size() ? a.size() > b.size() : a < b;
        }
    };
    std::set<std::string, longer_first> values;
};

registry& the_registry() {
    static registry r;
    return r;
}

}  // namespace

void remember_secret(std::string_view value) {
    if (value.size() < 4) return;
    auto& r = the_registry();
    const std::lock_guard lock(r.mutex);
    r.values.emplace(value);
}

void redact(std::string& text) {
    auto& r = the_registry();
    const std::lock_guard lock(r.mutex);
    for (const auto& v : r.values) {
        for (std::size_t at = text.find(v); at != std::string::npos; at = text.find(v, at + redacted_marker.size()))
            text.replace(at, v.size(), redacted_marker);
    }
}

std::string redacted(std::string_view text) {
    std::string out(text);
    redact(out);
    return out;
}

}  // namespace subsync::config
