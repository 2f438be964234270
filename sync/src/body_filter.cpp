#include "body_filter.hpp"

#include "fields.hpp"

#include <algorithm>
#include <span>

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

const shape_node* root_of(body_shape shape) noexcept {
    switch (shape) {
        case body_shape::purchases_page: return &groups_root;
        case body_shape::orders_document: return &orders_root;
        case body_shape::any: break;
    }
    return nullptr;
}

}  // namespace

json_filter::json_filter(body_shape shape) : value_shape_(root_of(shape)) { key_.reserve(key_max); }

void json_filter::feed(std::string_view bytes, std::string& out) {
    std::size_t i = 0;
    while (i < bytes.size()) {
        if (state_ == state::raw) {
            out.append(bytes.substr(i));
            return;
        }
        if (state_ == state::string && !escape_) {
            // The bulk of a body is string content: take it in runs up to the next quote or backslash.
            std::size_t j = i;
            while (j < bytes.size() && bytes[j] != '"' && bytes[j] != '\\') ++j;
            const auto run = bytes.substr(i, j - i);
            if (in_key_) {
                if (key_mode_ == key_mode::stream) out.append(run);
                else if (key_mode_ == key_mode::buffer) {
                    const std::size_t room = key_max - key_.size();
                    key_.append(run.substr(0, room));
                    key_long_ = key_long_ || run.size() > room;
                }
            } else if (!skip_value_) {
                out.append(run);
            }
            i = j;
            if (i == bytes.size()) break;
        }
        on_byte(bytes[i], out);
        ++i;
    }
}

void json_filter::on_byte(char c, std::string& out) {
    switch (state_) {
        case state::string: {
            const bool keep = in_key_ ? key_mode_ == key_mode::stream : !skip_value_;
            if (in_key_ && key_mode_ == key_mode::buffer) {
                if (key_.size() < key_max) key_.push_back(c);
                else key_long_ = true;
            }
            if (escape_) {
                escape_ = false;
                if (keep) out.push_back(c);
                return;
            }
            if (c == '\\') {
                escape_ = true;
                key_escaped_ = key_escaped_ || in_key_;
                if (keep) out.push_back(c);
                return;
            }
            if (c != '"') {
                if (keep) out.push_back(c);
                return;
            }
            if (in_key_) {
                if (key_mode_ == key_mode::buffer) key_.pop_back();  // the closing quote
                end_key(out);
                return;
            }
            if (keep) out.push_back(c);
            end_value();
            return;
        }
        case state::scalar:
            if (!is_space(c) && c != ',' && c != ']' && c != '}') {
                if (!skip_value_) out.push_back(c);
                return;
            }
            end_value();
            on_byte(c, out);  // the delimiter belongs to the container
            return;
        case state::done:
            if (!is_space(c)) go_raw(c, out);
            return;
        case state::raw: out.push_back(c); return;
        default: break;
    }
    if (is_space(c)) return;
    switch (state_) {
        case state::first_value:
            if (c == ']') return close(c, out);
            [[fallthrough]];
        case state::value: return start_value(c, out);
        case state::first_key:
            if (c == '}') return close(c, out);
            [[fallthrough]];
        case state::key:
            if (c != '"') return go_raw(c, out);
            return start_key(out);
        case state::colon:
            if (c != ':') return go_raw(c, out);
            if (!skip_value_) out.push_back(':');
            state_ = state::value;
            return;
        case state::comma: {
            const frame& top = stack_.back();
            if (c == (top.object ? '}' : ']')) return close(c, out);
            if (c != ',') return go_raw(c, out);
            if (top.object) {
                state_ = state::key;
            } else {
                value_shape_ = top.shape != nullptr ? top.shape->element : nullptr;
                skip_value_ = top.skip;
                state_ = state::value;
            }
            return;
        }
        default: return;
    }
}

void json_filter::start_value(char c, std::string& out) {
    // A value starts with one of these; anything else (an HTML error page) is kept verbatim.
    const bool scalar = c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n';
    if (!scalar && c != '"' && c != '{' && c != '[') return go_raw(c, out);
    if (!skip_value_) {
        // In an array the comma goes before the element; in an object before the key.
        if (!stack_.empty() && !stack_.back().object) {
            if (stack_.back().emitted) out.push_back(',');
            stack_.back().emitted = true;
        }
        out.push_back(c);
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
        if (skip_value_) out.push_back(c);
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

void json_filter::start_key(std::string& out) {
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
        if (top.emitted) out.push_back(',');
        stack_.back().emitted = true;
        out.push_back('"');
        ++tokens_;
    } else {
        key_mode_ = key_mode::buffer;
    }
}

void json_filter::end_key(std::string& out) {
    state_ = state::colon;
    frame& top = stack_.back();
    if (key_mode_ == key_mode::skip) {
        skip_value_ = true;
        value_shape_ = nullptr;
        return;
    }
    if (key_mode_ == key_mode::stream) {
        out.push_back('"');
        skip_value_ = false;
        value_shape_ = nullptr;
        return;
    }
    bool keep = false;
    value_shape_ = nullptr;
    if (key_long_) {
        keep = false;
    } else if (key_escaped_) {
        keep = true;  // may spell a known key: kept whole
    } else {
        const auto& members = top.shape->members;
        const auto it = std::find_if(members.begin(), members.end(),
                                     [&](const shape_member& m) { return m.key == std::string_view(key_); });
        keep = it != members.end();
        if (keep) value_shape_ = it->shape;
    }
    skip_value_ = !keep;
    if (!keep) return;
    if (top.emitted) out.push_back(',');
    top.emitted = true;
    out.push_back('"');
    out.append(key_);
    out.push_back('"');
    ++tokens_;
}

void json_filter::close(char c, std::string& out) {
    const frame top = stack_.back();
    if (top.object != (c == '}')) return go_raw(c, out);
    if (!top.skip) out.push_back(c);
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

void json_filter::go_raw(char c, std::string& out) {
    state_ = state::raw;
    out.push_back(c);
}

}  // namespace subsync::sync::detail
