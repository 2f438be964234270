// The process-wide list of secret values that redact() hides. Secrets are few
// (one to four per account) and long, so a linear scan per text is cheap.

#include <subsync/config/secret.hpp>

#include <cctype>
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

// An AK/SK signature (`Signature=<64 hex>` in an Authorization header a server echoed) is
// not a held value but can be replayed for 15 minutes: hidden by its shape.
void redact_signatures(std::string& text) {
    static constexpr std::string_view key = "Signature=";
    for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
        const std::size_t begin = at + key.size();
        std::size_t end = begin;
        while (end < text.size() && std::isxdigit(static_cast<unsigned char>(text[end])) != 0) ++end;
        if (end - begin >= 32) text.replace(begin, end - begin, redacted_marker);
    }
}

}  // namespace

void remember_secret(std::string_view value) {
    if (value.size() < 4) return;
    auto& r = the_registry();
    const std::lock_guard lock(r.mutex);
    r.values.emplace(value);
}

void redact(std::string& text) {
    {
        auto& r = the_registry();
        const std::lock_guard lock(r.mutex);
        for (const auto& v : r.values) {
            for (std::size_t at = text.find(v); at != std::string::npos; at = text.find(v, at + redacted_marker.size()))
                text.replace(at, v.size(), redacted_marker);
        }
    }
    redact_signatures(text);
}

std::string redacted(std::string_view text) {
    std::string out(text);
    redact(out);
    return out;
}

}  // namespace subsync::config
