// Open-addressing map from a packet hash (never 0) to a 32-bit slot number, with linear probing
// and backward-shift deletion, so it never fills with tombstones. Capacity is fixed at
// construction: at least twice the entries it will hold.
#pragma once
#include <cstdint>
#include <vector>

namespace maelstrom::fec {

class HashIndex {
 public:
  static constexpr uint32_t kAbsent = UINT32_MAX;

  explicit HashIndex(size_t max_entries, uint64_t salt) : salt_(salt | 1) {
    size_t cap = 16;
    while (cap < max_entries * 2) cap <<= 1;
    keys_.assign(cap, 0);
    values_.assign(cap, kAbsent);
    mask_ = cap - 1;
  }

  uint32_t find(uint64_t key) const {
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == 0) return kAbsent;
    }
  }

  // Inserts or overwrites.
  void put(uint64_t key, uint32_t value) {
    size_t i = home(key);
    while (keys_[i] != 0 && keys_[i] != key) i = (i + 1) & mask_;
    if (keys_[i] == 0) size_++;
    keys_[i] = key;
    values_[i] = value;
  }

  void erase(uint64_t key) {
    size_t i = home(key);
    while (keys_[i] != key) {
      if (keys_[i] == 0) return;
      i = (i + 1) & mask_;
    }
    size_--;
    // Shift later members of the probe run back into the hole.
    for (size_t j = (i + 1) & mask_; keys_[j] != 0; j = (j + 1) & mask_) {
      size_t h = home(keys_[j]);
      bool movable = (i <= j) ? (h <= i || h > j) : (h <= i && h > j);
      if (movable) {
        keys_[i] = keys_[j];
        values_[i] = values_[j];
        i = j;
      }
    }
    keys_[i] = 0;
    values_[i] = kAbsent;
  }

  size_t size() const { return size_; }

 private:
  // Keys are hashes of packets that peers choose; a per-instance salt keeps probe runs short
  // even for keys picked to collide in their low bits.
  size_t home(uint64_t key) const { return size_t(((key ^ salt_) * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }

  std::vector<uint64_t> keys_;
  std::vector<uint32_t> values_;
  size_t mask_;
  size_t size_ = 0;
  uint64_t salt_;
};

}  // namespace maelstrom::fec
