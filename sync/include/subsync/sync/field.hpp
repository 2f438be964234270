#pragma once

#include <cstdint>
#include <utility>

namespace subsync::sync {

/// A value the API may omit, send as `null`, or send. The three stay distinct
/// from the parser to the snapshot and the JSON export: "the API said null" and
/// "the API did not say" are different facts about a purchase.
/// Whether a field was absent from the API's answer, sent as `null`, or sent with a value.
enum class field_state : std::uint8_t { absent, null, present };

template <class T>
class field {
public:
    using state = field_state;

    field() = default;
    field(T v) : state_(state::present), value_(std::move(v)) {}  // NOLINT: implicit by design

    /// A field the API sent as `null`.
    static field null() {
        field f;
        f.state_ = state::null;
        return f;
    }

    [[nodiscard]] state status() const noexcept { return state_; }
    [[nodiscard]] bool has_value() const noexcept { return state_ == state::present; }
    [[nodiscard]] bool is_null() const noexcept { return state_ == state::null; }
    [[nodiscard]] bool is_absent() const noexcept { return state_ == state::absent; }

    /// The value; only meaningful when has_value().
    [[nodiscard]] const T& operator*() const noexcept { return value_; }
    [[nodiscard]] const T* operator->() const noexcept { return &value_; }

    /// Makes the field present and returns its value to fill in place: a parser refilling a
    /// record keeps the capacity of the string or vector already there.
    T& assign_in_place() noexcept {
        state_ = state::present;
        return value_;
    }

    /// Makes the field `null` (or absent). The value reads as a fresh field's (empty, 0) but a
    /// string or vector keeps its storage for a later assign_in_place().
    void set_null() noexcept { reset(state::null); }
    void set_absent() noexcept { reset(state::absent); }

    friend bool operator==(const field& a, const field& b) {
        return a.state_ == b.state_ && (a.state_ != state::present || a.value_ == b.value_);
    }

private:
    void reset(state s) noexcept {
        state_ = s;
        if constexpr (requires { value_.clear(); }) value_.clear();
        else value_ = T{};
    }

    state state_ = state::absent;
    T value_{};
};

}  // namespace subsync::sync
