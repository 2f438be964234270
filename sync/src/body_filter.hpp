#pragma once
// The streaming filter response bodies go through as their bytes arrive: it keeps what the
// parsers read and drops the members they would ignore, so that an answer padded with tens of
// megabytes of an unknown field costs nothing to hold (bench/README.md, "memory bound").

#include <subsync/sync/http_client.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::sync::detail {

/// The members a filter keeps, by place in the document. nullptr: keep the value whole.
struct shape_node;

/// Streams one JSON document through: appends to `out` the document without the members of
/// objects the shape does not list (and without whitespace between tokens). Members of a known
/// key are kept whole, whatever they hold, so the parsers still see wrong types, nulls and
/// duplicate keys. Skipped members are checked for structure only (brackets, strings), not for
/// valid numbers or UTF-8: nothing of them is kept. A key written with escapes is kept (it may
/// spell a known key). On a structural error, the rest is kept verbatim for the parser to
/// reject; the same after the document's end.
class json_filter {
public:
    explicit json_filter(body_shape shape);

    /// Filters the next bytes of the body.
    void feed(std::string_view bytes, std::string& out);

    /// Tokens kept so far (values and keys): what the parser's tape and the records will cost.
    [[nodiscard]] std::size_t kept_tokens() const noexcept { return tokens_; }

private:
    enum class state : std::uint8_t { value, first_value, first_key, key, colon, comma, string, scalar, done, raw };
    enum class key_mode : std::uint8_t { skip, stream, buffer };
    struct frame {
        const shape_node* shape;  // nullptr: kept whole (or skipped)
        bool object;
        bool skip;
        bool emitted;  // a member or element was written: the next one needs a comma
    };

    class output;

    // Each takes what it can of [p, end) in the current state and returns where it stopped.
    const char* take_string(const char* p, const char* end, output& out);
    const char* take_buffered_key(const char* p, const char* end, output& out);
    const char* take_scalar(const char* p, const char* end, output& out);
    const char* take_colon(const char* p, const char* end, output& out);
    const char* take_comma(const char* p, const char* end, output& out);
    const char* take_close(const char* p, const char* end, output& out);
    const char* take_token(const char* p, const char* end, output& out);

    // These take the byte at `at`, or a token that starts or ends there.
    void start_value(const char* at, output& out);
    void start_key(const char* at, output& out);
    void end_key(const char* at, output& out);
    void close(const char* at, output& out);
    void go_raw(const char* at, output& out);

    void buffer_key(std::string_view bytes);
    bool keep_member(std::string_view key, bool too_long, bool escaped);
    bool needs_comma();
    void after_comma();
    void end_value();

    std::vector<frame> stack_;
    state state_ = state::value;
    const shape_node* value_shape_;  // for the value about to start
    bool skip_value_ = false;        // the value about to start (or under way) is dropped
    bool in_key_ = false;            // the string under way is a key
    bool escape_ = false;            // the previous string byte was a backslash
    key_mode key_mode_ = key_mode::skip;
    bool key_escaped_ = false;
    bool key_long_ = false;
    std::string key_;  // the key under way (key_mode::buffer), up to 128 bytes
    std::size_t tokens_ = 0;
};

}  // namespace subsync::sync::detail
