// ISO-8601 times as the APIs send them. A parsed time is within the kept range, and formatting it
// and parsing the text again gives the same instant.

#include <subsync/sync/time.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace subsync::sync;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto t = parse_iso8601(text);
    if (!t) return 0;
    if (*t < min_time || *t > max_time) std::abort();
    const auto again = parse_iso8601(format_iso8601(*t));
    if (!again || *again != *t) std::abort();
    return 0;
}
