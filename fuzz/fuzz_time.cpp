// ISO-8601 times as the APIs send them. A parsed time is within the kept range, and formatting it
// and parsing the text again gives the same instant. A 20-byte text, which the common form's
// word-wide reading takes first, reads as the general reading of it with `.000` before its last
// byte does (but for a digit there, which would make a fraction of it).

#include <subsync/sync/time.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace subsync::sync;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto t = parse_iso8601(text);
    if (size == 20 && (text[19] < '0' || text[19] > '9')) {
        std::string general(text);
        general.insert(19, ".000");
        if (parse_iso8601(general) != t) std::abort();
    }
    if (!t) return 0;
    if (*t < min_time || *t > max_time) std::abort();
    const auto again = parse_iso8601(format_iso8601(*t));
    if (!again || *again != *t) std::abort();
    return 0;
}
