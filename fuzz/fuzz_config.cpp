// The config loader on any text: a config or an error naming the place, never a crash.

#include <subsync/config/load.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)subsync::config::parse_config(text, "fuzz.toml");
    return 0;
}
