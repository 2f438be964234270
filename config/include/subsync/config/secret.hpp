#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace subsync::config {

/// What a secret is replaced with wherever it would be printed or stored.
inline constexpr std::string_view redacted_marker = "<redacted>";

/// Replaces, in `text`, every value a `secret` of this process ever held (and
/// every value passed to remember_secret()) with redacted_marker: the one
/// filter for text that comes from outside (error bodies, request ids, program
/// output) before it is logged, stored, exported or sent. Never leaves part of
/// a secret. Thread-safe.
void redact(std::string& text);

/// redact() on a copy.
[[nodiscard]] std::string redacted(std::string_view text);

/// Adds a value redact() must hide that is not held in a `secret` (a webhook
/// URL's secret path, say). Values shorter than 4 bytes are not registered:
/// they would redact ordinary words. Thread-safe.
void remember_secret(std::string_view value);

/// A credential value (token, password, secret key). It cannot be printed:
/// formatting it with fmt/spdlog yields "<redacted>", and the only way to the
/// bytes is the explicit reveal(), used where the value goes on the wire.
/// Every value is remembered for redact().
class secret {
public:
    secret() = default;
    explicit secret(std::string value) : value_(std::move(value)) { remember_secret(value_); }

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
