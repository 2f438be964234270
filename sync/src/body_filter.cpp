#include "body_filter.hpp"

#include "fields.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <span>
#include <utility>

namespace subsync::sync::detail {

struct shape_member {
    std::string_view key;
    const shape_node* shape;  ///< nullptr: the value is kept whole
};

// An object node lists its members; an array node names its elements' shape.
struct shape_node {
    std::span<const shape_member> members;
    const shape_node* element = nullptr;
};

namespace {

template <std::size_t N>
constexpr std::array<shape_member, N> keep_whole(const std::array<std::string_view, N>& keys) {
    std::array<shape_member, N> out{};
    for (std::size_t i = 0; i < N; ++i) out[i] = {keys[i], nullptr};
    return out;
}

template <std::size_t N, std::size_t M>
constexpr std::array<shape_member, N + M> join(const std::array<shape_member, N>& a,
                                               const std::array<shape_member, M>& b) {
    std::array<shape_member, N + M> out{};
    std::copy(a.begin(), a.end(), out.begin());
    std::copy(b.begin(), b.end(), out.begin() + N);
    return out;
}

constexpr auto error_members = keep_whole(error_keys);

// GET /v1.0/apigw/purchases/groups
constexpr auto purchase_members = keep_whole(purchase_keys);
constexpr shape_node purchase_node{purchase_members};
constexpr shape_node purchases_node{{}, &purchase_node};
constexpr std::array<shape_member, 3> page_members{
    {{"total", nullptr}, {"size", nullptr}, {"purchases", &purchases_node}}};
constexpr auto groups_members = join(page_members, error_members);
constexpr shape_node groups_root{groups_members};

// GET /v1/subscriptions/orders
constexpr auto resource_members = keep_whole(resource_keys);
constexpr shape_node resource_node{resource_members};
constexpr shape_node resources_node{{}, &resource_node};
constexpr std::array<shape_member, 3> entry_members{
    {{"region_id", nullptr}, {"project_id", nullptr}, {"resources", &resources_node}}};
constexpr shape_node entry_node{entry_members};
constexpr shape_node entries_node{{}, &entry_node};
constexpr std::array<shape_member, 1> orders_only{{{"resources", &entries_node}}};
constexpr auto orders_members = join(orders_only, error_members);
constexpr shape_node orders_root{orders_members};

// A key longer than this is none of ours, even spelt with \uXXXX escapes (6 bytes a letter).
constexpr std::size_t key_max = 128;
// simdjson's default depth limit: deeper documents are refused by the parser anyway.
constexpr std::size_t depth_max = 1024;

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

const char* skip_spaces(const char* p, const char* end) noexcept {
    while (p != end && is_space(*p)) ++p;
    return p;
}

// A scalar (number, true, false, null, or junk for the parser to refuse) runs up to one of these.
const char* scalar_end(const char* p, const char* end) noexcept {
    while (p != end && !is_space(*p) && *p != ',' && *p != ']' && *p != '}') ++p;
    return p;
}

// The high bit of each byte of w that is zero, and no other bit: exact per byte, as no carry
// crosses a byte ((b & 0x7f) + 0x7f < 0x100), so the lowest set bit is the first zero byte.
constexpr std::uint64_t zero_bytes(std::uint64_t w) noexcept {
    constexpr std::uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
    return ~(((w & low7) + low7) | w | low7);
}

// The next '"' or '\\' in [p, end), or end. String content is most of a body, so it is
// scanned a 64-bit word at a time (plain arithmetic, no intrinsics) on little-endian machines,
// where the first byte in memory is the word's lowest.
const char* find_quote_or_backslash(const char* p, const char* end) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        constexpr std::uint64_t ones = 0x0101010101010101ULL;
        constexpr std::uint64_t quotes = ones * static_cast<unsigned char>('"');
        constexpr std::uint64_t backslashes = ones * static_cast<unsigned char>('\\');
        while (end - p >= 8) {
            std::uint64_t w;
            std::memcpy(&w, p, sizeof w);
            const std::uint64_t hits = zero_bytes(w ^ quotes) | zero_bytes(w ^ backslashes);
            if (hits != 0) return p + std::countr_zero(hits) / 8;
            p += 8;
        }
    }
    while (p != end && *p != '"' && *p != '\\') ++p;
    return p;
}

const shape_node* root_of(body_shape shape) noexcept {
    switch (shape) {
        case body_shape::purchases_page: return &groups_root;
        case body_shape::orders_document: return &orders_root;
        case body_shape::any: break;
    }
    return nullptr;
}

}  // namespace

// What feed() writes to `out`. Most of a page is kept as it came, so input bytes are not
// appended one token at a time: each run of them that follows on from the last is gathered
// (a whole kept item is one run) and appended at once.
class json_filter::output {
public:
    output(std::string& out, std::string_view bytes) : out_(out), first_(bytes.data()) {}
    output(const output&) = delete;
    output& operator=(const output&) = delete;

    // The input bytes [from, to), as they are.
    void copy(const char* from, const char* to) {
        if (from != end_) {
            flush();
            begin_ = from;
        }
        end_ = to;
    }
    void copy(const char* at) { copy(at, at + 1); }

    // Bytes of the filter's own: a comma, a key gathered across feeds.
    void put(std::string_view bytes) {
        flush();
        out_.append(bytes);
    }

    // `bytes`, which the input often holds just before p (a comma and a key's quote): copied
    // from there when it does, so that the run goes on.
    void put_before(const char* p, std::string_view bytes) {
        const auto n = static_cast<std::ptrdiff_t>(bytes.size());
        if (p - first_ >= n && std::equal(bytes.begin(), bytes.end(), p - n)) return copy(p - n, p);
        put(bytes);
    }

    // To be called before feed() returns.
    void flush() {
        if (begin_ != end_) out_.append(begin_, static_cast<std::size_t>(end_ - begin_));
        begin_ = end_ = nullptr;
    }

private:
    std::string& out_;
    const char* first_;              // the first input byte of this feed
    const char* begin_ = nullptr;    // the run not yet appended
    const char* end_ = nullptr;
};

json_filter::json_filter(body_shape shape) : value_shape_(root_of(shape)) { key_.reserve(key_max); }

void json_filter::feed(std::string_view bytes, std::string& out_string) {
    output out(out_string, bytes);
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    // Strings and scalars are taken in runs, and with them the colon or comma and the token
    // that follow at once; otherwise, whitespace is skipped in runs and the next structural
    // byte goes through take_token().
    while (p != end) {
        switch (state_) {
            case state::raw:
                out.copy(p, end);
                p = end;
                break;
            case state::string:
                p = in_key_ && key_mode_ == key_mode::buffer ? take_buffered_key(p, end, out)
                                                             : take_string(p, end, out);
                break;
            case state::scalar: p = take_scalar(p, end, out); break;
            default:
                p = skip_spaces(p, end);
                if (p != end) p = take_token(p, end, out);
                break;
        }
    }
    out.flush();
}

// A value string, or a key written as it comes (key_mode::stream) or dropped (key_mode::skip).
const char* json_filter::take_string(const char* p, const char* end, output& out) {
    const bool keep = in_key_ ? key_mode_ == key_mode::stream : !skip_value_;
    if (escape_) {  // the backslash ended the previous bytes: this one is escaped, whatever it is
        escape_ = false;
        if (keep) out.copy(p);
        ++p;
    }
    while (p != end) {
        const char* const q = find_quote_or_backslash(p, end);
        if (q == end) {
            if (keep) out.copy(p, end);
            return end;
        }
        if (*q == '"') {
            if (in_key_) {
                if (keep) out.copy(p, q);
                end_key(q, out);
                return take_colon(q + 1, end, out);
            }
            if (keep) out.copy(p, q + 1);
            end_value();
            return take_comma(q + 1, end, out);
        }
        // A backslash: it and the byte it escapes are content, whatever that byte is.
        if (q + 1 == end) {
            if (keep) out.copy(p, end);
            escape_ = true;
            return end;
        }
        if (keep) out.copy(p, q + 2);
        p = q + 2;
    }
    return p;
}

// A key of an object whose members the shape lists: the key decides whether the member is
// kept, so nothing of it is written before its closing quote.
const char* json_filter::take_buffered_key(const char* p, const char* end, output& out) {
    if (key_.empty() && !escape_) {
        // The usual case, a plain key whole in these bytes: looked up where it lies.
        const char* const q = find_quote_or_backslash(p, end);
        if (q != end && *q == '"') {
            const std::string_view key(p, static_cast<std::size_t>(q - p));
            if (keep_member(key, key.size() >= key_max, false)) {
                out.put_before(p, needs_comma() ? std::string_view(",\"") : std::string_view("\""));
                out.copy(p, q + 1);
            }
            return take_colon(q + 1, end, out);
        }
    }
    // Split across feeds or written with escapes: gathered in key_ (up to key_max bytes).
    while (p != end) {
        if (escape_) {
            escape_ = false;
            buffer_key({p, 1});
            ++p;
            continue;
        }
        const char* const q = find_quote_or_backslash(p, end);
        buffer_key({p, static_cast<std::size_t>(q - p)});
        if (q == end) return end;
        if (*q == '"') {
            // A key of key_max bytes is too long too (the closing quote found no room).
            key_long_ = key_long_ || key_.size() >= key_max;
            end_key(q, out);
            return take_colon(q + 1, end, out);
        }
        escape_ = true;
        key_escaped_ = true;
        buffer_key({q, 1});
        p = q + 1;
    }
    return p;
}

// After a key (state::colon). In a compact document the colon and the value follow the key at
// once: taken here, which spares a round through feed() and take_token() for each.
const char* json_filter::take_colon(const char* p, const char* end, output& out) {
    if (p == end || *p != ':') return p;
    if (!skip_value_) out.copy(p);
    state_ = state::value;
    ++p;
    if (p == end || is_space(*p)) return p;
    start_value(p, out);
    return p + 1;
}

const char* json_filter::take_scalar(const char* p, const char* end, output& out) {
    const char* const q = scalar_end(p, end);
    if (!skip_value_) out.copy(p, q);
    if (q == end) return q;
    end_value();  // the delimiter belongs to the container
    return take_comma(q, end, out);
}

// After a value. In a compact document a comma and the next key or element follow the value
// at once: taken here, as take_colon() does.
const char* json_filter::take_comma(const char* p, const char* end, output& out) {
    if (state_ != state::comma || p == end || *p != ',') return p;
    after_comma();
    ++p;
    if (p == end || is_space(*p)) return p;
    return take_token(p, end, out);  // a key or a value: nothing taken after it here
}

// A byte between tokens (not whitespace), with what follows it at once when that is cheap.
const char* json_filter::take_token(const char* at, const char* end, output& out) {
    const char c = *at;
    switch (state_) {
        case state::first_value:
            if (c == ']') return take_close(at, end, out);
            [[fallthrough]];
        case state::value: start_value(at, out); break;
        case state::first_key:
            if (c == '}') return take_close(at, end, out);
            [[fallthrough]];
        case state::key:
            if (c == '"') start_key(at, out);
            else go_raw(at, out);
            break;
        case state::colon:
            if (c == ':') return take_colon(at, end, out);
            go_raw(at, out);
            break;
        case state::comma:
            if (c == (stack_.back().object ? '}' : ']')) return take_close(at, end, out);
            if (c == ',') return take_comma(at, end, out);
            go_raw(at, out);
            break;
        case state::done: go_raw(at, out); break;
        default: break;
    }
    return at + 1;
}

// A closing bracket, then the comma that often follows.
const char* json_filter::take_close(const char* at, const char* end, output& out) {
    close(at, out);
    return take_comma(at + 1, end, out);
}

void json_filter::after_comma() {
    const frame& top = stack_.back();
    if (top.object) {
        state_ = state::key;
    } else {
        value_shape_ = top.shape != nullptr ? top.shape->element : nullptr;
        skip_value_ = top.skip;
        state_ = state::value;
    }
}

void json_filter::start_value(const char* at, output& out) {
    const char c = *at;
    // A value starts with one of these; anything else (an HTML error page) is kept verbatim.
    const bool scalar = c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n';
    if (!scalar && c != '"' && c != '{' && c != '[') return go_raw(at, out);
    if (!skip_value_) {
        // In an array the comma goes before the element; in an object before the key.
        if (!stack_.empty() && !stack_.back().object && needs_comma()) out.put_before(at, ",");
        out.copy(at);
        ++tokens_;
    }
    if (c == '"') {
        state_ = state::string;
        in_key_ = false;
        return;
    }
    if (c != '{' && c != '[') {
        state_ = state::scalar;
        return;
    }
    if (stack_.size() == depth_max) {
        state_ = state::raw;  // c is already out when kept; the parser refuses the depth
        if (skip_value_) out.copy(at);
        return;
    }
    const bool object = c == '{';
    const shape_node* shape = nullptr;
    if (!skip_value_ && value_shape_ != nullptr) {
        // A member of another type than its shape expects is kept whole: the parser says what is wrong.
        if (object && !value_shape_->members.empty()) shape = value_shape_;
        if (!object && value_shape_->element != nullptr) shape = value_shape_;
    }
    stack_.push_back({shape, object, skip_value_, false});
    if (object) {
        state_ = state::first_key;
    } else {
        value_shape_ = shape != nullptr ? shape->element : nullptr;
        state_ = state::first_value;
    }
}

void json_filter::start_key(const char* at, output& out) {
    const frame& top = stack_.back();
    state_ = state::string;
    in_key_ = true;
    escape_ = false;
    key_escaped_ = false;
    key_long_ = false;
    key_.clear();
    if (top.skip) {
        key_mode_ = key_mode::skip;
    } else if (top.shape == nullptr) {
        // Kept whole: the key goes out as it comes, however long.
        key_mode_ = key_mode::stream;
        if (needs_comma()) out.put_before(at, ",");
        out.copy(at);
        ++tokens_;
    } else {
        key_mode_ = key_mode::buffer;
    }
}

// At the closing quote of a key.
void json_filter::end_key(const char* at, output& out) {
    state_ = state::colon;
    if (key_mode_ == key_mode::skip) {
        skip_value_ = true;
        value_shape_ = nullptr;
        return;
    }
    if (key_mode_ == key_mode::stream) {
        out.copy(at);
        skip_value_ = false;
        value_shape_ = nullptr;
        return;
    }
    if (!keep_member(key_, key_long_, key_escaped_)) return;
    out.put(needs_comma() ? std::string_view(",\"") : std::string_view("\""));
    out.put(key_);
    out.put("\"");
}

void json_filter::buffer_key(std::string_view bytes) {
    const std::size_t room = key_max - key_.size();
    key_.append(bytes.substr(0, room));
    key_long_ = key_long_ || bytes.size() > room;
}

// Whether the member of a buffered key is kept; sets up for its value either way.
bool json_filter::keep_member(std::string_view key, bool too_long, bool escaped) {
    state_ = state::colon;
    value_shape_ = nullptr;
    bool keep = false;
    if (too_long) {
        keep = false;
    } else if (escaped) {
        keep = true;  // may spell a known key: kept whole
    } else {
        const auto& members = stack_.back().shape->members;
        const auto it = std::find_if(members.begin(), members.end(), [&](const shape_member& m) {
            // The first byte tells most keys of one length apart without a call to memcmp.
            return m.key.size() == key.size() && m.key.front() == key.front() && m.key == key;
        });
        keep = it != members.end();
        if (keep) value_shape_ = it->shape;
    }
    skip_value_ = !keep;
    if (keep) ++tokens_;
    return keep;
}

// For a member or element about to be written: whether one was written before it.
bool json_filter::needs_comma() { return std::exchange(stack_.back().emitted, true); }

void json_filter::close(const char* at, output& out) {
    const frame top = stack_.back();
    if (top.object != (*at == '}')) return go_raw(at, out);
    if (!top.skip) out.copy(at);
    stack_.pop_back();
    skip_value_ = top.skip;
    end_value();
}

void json_filter::end_value() {
    if (stack_.empty()) {
        state_ = state::done;
        return;
    }
    skip_value_ = stack_.back().skip;
    state_ = state::comma;
}

void json_filter::go_raw(const char* at, output& out) {
    state_ = state::raw;
    out.copy(at);
}

}  // namespace subsync::sync::detail
