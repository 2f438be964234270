#include <subsync/daemon/json.hpp>
#include <subsync/sync/columns.hpp>

namespace subsync::daemon {

// One JSON escaper for the whole program: exports, the change feed, logs and /healthz agree.
void append_json_string(std::string& out, std::string_view s) { sync::append_json_string(out, s); }

std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

}  // namespace subsync::daemon
