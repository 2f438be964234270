#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace subsync::config {

/// A credential value (token, password, secret key). It cannot be printed:
/// formatting it with fmt/spdlog yields "<redacted>", and the only way to the
/// bytes is the explicit reveal(), used where the value goes on the wire.
class secret {
public:
    secret() = default;
    explicit secret(std::string value) : value_(std::move(value)) {}

    /// The raw value, for the request header or signature that needs it.
    [[nodiscard]] const std::string& reveal() const noexcept { return value_; }
    [[nodiscard]] bool empty() const noexcept { return value_.empty(); }

    friend bool operator==(const secret&, const secret&) = default;

private:
    std::string value_;
};

}  // namespace subsync::config

template <>
struct fmt::formatter<subsync::config::secret> : fmt::formatter<std::string_view> {
    template <typename FormatContext>
    auto format(const subsync::config::secret&, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format("<redacted>", ctx);
    }
};
