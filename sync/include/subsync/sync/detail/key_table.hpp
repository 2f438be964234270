#pragma once
// A map from item keys to a small value, for the listing stage's one entry per stored or listed
// key (100,000 and more for a big tenant). std::unordered_map<std::string, V> spent two heap
// blocks per key (the node, and the key's characters past the 15 a std::string holds inline)
// and doubled its buckets as it grew: 18.7 MB for 100k UUID keys. Here the values live in
// blocks of a fixed size that never move, the keys' characters in an arena of blocks, and the
// lookup is one array of 32-bit slots with linear probing: under 9 MB for the same keys (with
// the stage's 24-byte values), no allocation per key, and no copy of the values when it grows.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace subsync::sync::detail {

/// Keys are any bytes (an empty key too). Values are default-constructed on insertion and stay
/// at the same address until the table is cleared or `retain_if` drops them. Iteration is in
/// insertion order. Not thread-safe.
template <class Value>
class key_table {
public:
    key_table() = default;
    key_table(const key_table&) = delete;
    key_table& operator=(const key_table&) = delete;
    key_table(key_table&&) noexcept = default;
    key_table& operator=(key_table&&) noexcept = default;

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    /// Makes room for `n` keys without growing the slot array again.
    void reserve(std::size_t n) {
        if (n * 2 > slots_.size()) rehash(std::bit_ceil(std::max<std::size_t>(n * 2, 16)));
    }

    /// The value of `key`, inserted default-constructed if absent, and whether it was inserted.
    std::pair<Value*, bool> try_emplace(std::string_view key) {
        if ((size_ + 1) * 2 > slots_.size()) rehash(std::max<std::size_t>(slots_.size() * 2, 16));
        const std::uint64_t h = hash(key);
        std::size_t at = static_cast<std::size_t>(h) & (slots_.size() - 1);
        for (;; at = (at + 1) & (slots_.size() - 1)) {
            const std::uint32_t s = slots_[at];
            if (s == 0) break;
            item& it = item_at(s - 1);
            if (it.hash == static_cast<std::uint32_t>(h) && key_of(it) == key) return {&it.value, false};
        }
        item& it = append(key, h);
        slots_[at] = static_cast<std::uint32_t>(size_);  // index + 1
        return {&it.value, true};
    }

    /// The value of `key`, or nullptr.
    [[nodiscard]] Value* find(std::string_view key) noexcept {
        if (size_ == 0) return nullptr;
        const std::uint64_t h = hash(key);
        for (std::size_t at = static_cast<std::size_t>(h) & (slots_.size() - 1);; at = (at + 1) & (slots_.size() - 1)) {
            const std::uint32_t s = slots_[at];
            if (s == 0) return nullptr;
            item& it = item_at(s - 1);
            if (it.hash == static_cast<std::uint32_t>(h) && key_of(it) == key) return &it.value;
        }
    }

    /// `f(key, value)` for every entry, in insertion order.
    template <class F>
    void for_each(F&& f) {
        for (std::size_t i = 0; i < size_; ++i) {
            item& it = item_at(i);
            f(key_of(it), it.value);
        }
    }
    template <class F>
    void for_each(F&& f) const {
        for (std::size_t i = 0; i < size_; ++i) {
            const item& it = item_at(i);
            f(key_of(it), it.value);
        }
    }

    /// Keeps the entries for which `keep(key, value)` is true, in their order; the others are
    /// gone, and the values kept move (pointers to them are no longer valid).
    template <class Pred>
    void retain_if(Pred&& keep) {
        key_table kept;
        kept.reserve(size_);
        for_each([&](std::string_view k, Value& v) {
            if (keep(k, v)) *kept.try_emplace(k).first = std::move(v);
        });
        *this = std::move(kept);
    }

private:
    // 16 bytes besides the value: the key's place, its length, and the low 32 bits of its hash,
    // which pick its slot (there are never more than 2^32) and screen out most other keys.
    struct item {
        const char* key = nullptr;
        std::uint32_t key_size = 0;
        std::uint32_t hash = 0;
        Value value{};
    };
    static constexpr std::size_t items_per_block = 4096;
    static constexpr std::size_t arena_block = 64 * 1024;

    static std::uint64_t hash(std::string_view key) noexcept {
        // FNV-1a, then a finalizer (the low bits pick the slot).
        std::uint64_t h = 14695981039346656037ull;
        for (const char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        return h;
    }

    static std::string_view key_of(const item& it) noexcept { return {it.key, it.key_size}; }
    item& item_at(std::size_t i) noexcept { return blocks_[i / items_per_block][i % items_per_block]; }
    const item& item_at(std::size_t i) const noexcept { return blocks_[i / items_per_block][i % items_per_block]; }

    item& append(std::string_view key, std::uint64_t h) {
        if (size_ == blocks_.size() * items_per_block)
            blocks_.push_back(std::make_unique_for_overwrite<item[]>(items_per_block));
        item& it = item_at(size_);
        it = item{};
        it.hash = static_cast<std::uint32_t>(h);
        it.key = store(key);
        it.key_size = static_cast<std::uint32_t>(key.size());
        ++size_;
        return it;
    }

    // The key's bytes in the arena: a key never spans two blocks; one longer than a quarter of
    // a block gets a block of its own.
    const char* store(std::string_view key) {
        if (key.empty()) return "";
        if (key.size() > arena_block / 4) {
            auto& own = arena_.emplace_back(std::make_unique_for_overwrite<char[]>(key.size()));
            std::memcpy(own.get(), key.data(), key.size());
            return own.get();
        }
        if (key.size() > block_left_) {
            block_ = arena_.emplace_back(std::make_unique_for_overwrite<char[]>(arena_block)).get();
            block_left_ = arena_block;
        }
        char* at = block_;
        std::memcpy(at, key.data(), key.size());
        block_ += key.size();
        block_left_ -= key.size();
        return at;
    }

    void rehash(std::size_t slot_count) {
        std::vector<std::uint32_t> slots(slot_count, 0);
        for (std::size_t i = 0; i < size_; ++i) {
            std::size_t at = static_cast<std::size_t>(item_at(i).hash) & (slot_count - 1);
            while (slots[at] != 0) at = (at + 1) & (slot_count - 1);
            slots[at] = static_cast<std::uint32_t>(i + 1);
        }
        slots_ = std::move(slots);
    }

    std::vector<std::unique_ptr<item[]>> blocks_;
    std::vector<std::uint32_t> slots_;  ///< item index + 1; 0 = empty
    std::vector<std::unique_ptr<char[]>> arena_;
    char* block_ = nullptr;        ///< where the next short key goes, in a block of arena_
    std::size_t block_left_ = 0;   ///< bytes left there
    std::size_t size_ = 0;
};

}  // namespace subsync::sync::detail
