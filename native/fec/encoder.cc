#include "fec/encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/clock.h"
#include "fec/xor.h"

namespace maelstrom::fec {
namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Callers validate (src/fec/config.ts); this only keeps a bad config from being undefined
// behaviour when the C++ is used directly.
EncoderConfig sanitised(EncoderConfig c) {
  c.r = std::clamp(c.r, 1u, kMaxCount);
  if (c.interleaves.empty()) c.interleaves.push_back(1);
  if (c.interleaves.size() > kMaxLayers) c.interleaves.resize(kMaxLayers);
  for (unsigned& i : c.interleaves) i = std::clamp(i, 1u, 65535u);
  c.max_packet = std::clamp(c.max_packet, 1u, 65535u);
  if (!(c.budget_ratio >= 0)) c.budget_ratio = 0;
  if (!(c.budget_per_s >= 0)) c.budget_per_s = 0;
  return c;
}

}  // namespace

// The bucket holds what 50 ms of the floor brings, and at least enough for a few sparse writes
// at once (a 4 KB write closes up to 3 bins a layer).
constexpr double kBudgetSeconds = 0.05;
constexpr double kMinDepth = 64;

Encoder::Encoder(const EncoderConfig& config) : config_(sanitised(config)), seq_(config.first_seq) {
  per_packet_ = config_.budget_ratio * double(config_.interleaves.size()) / double(config_.r);
  depth_ = std::max(kMinDepth, config_.budget_per_s * kBudgetSeconds);
  tokens_ = depth_;
  size_t total = 0;
  for (unsigned i : config_.interleaves) total += i;
  size_t stride = round_up(config_.max_packet, kAlign);
  arena_.assign(total * stride + kAlign, 0);
  uint8_t* base = arena_.data() + (kAlign - reinterpret_cast<uintptr_t>(arena_.data()) % kAlign) % kAlign;
  recipes_.resize(total * config_.r);
  bins_.reserve(total);
  size_t n = 0;
  for (size_t l = 0; l < config_.interleaves.size(); l++) {
    layer_first_bin_.push_back(unsigned(bins_.size()));
    next_bin_.push_back(config_.first_seq % config_.interleaves[l]);
    for (unsigned b = 0; b < config_.interleaves[l]; b++, n++) {
      Bin bin{};
      bin.acc = base + n * stride;
      bin.recipe = recipes_.data() + n * config_.r;
      bin.threshold = uint16_t(b % config_.r ? b % config_.r : config_.r);
      bin.index = uint16_t(b);
      bin.layer = uint8_t(l);
      bins_.push_back(bin);
    }
  }
}

int64_t Encoder::add(const uint8_t* pkt, size_t len, uint64_t now_ns, RepairSink& sink, uint64_t* hash_cycles) {
  if (len == 0 || len > config_.max_packet) {
    stats_.oversize++;
    return -1;
  }
  const uint64_t hash_start = hash_cycles ? cycles() : 0;
  PacketId id = identify(pkt, len);
  if (hash_cycles) *hash_cycles += cycles() - hash_start;
  uint32_t seq = seq_++;
  const size_t layers = config_.interleaves.size();
  Bin* bins[kMaxLayers];
  uint8_t* xor_all[kMaxLayers];
  unsigned n_xor_all = 0;
  for (size_t l = 0; l < layers; l++) {
    // The layer's bins in turn: the same as seq mod i until the 32-bit sequence wraps, and
    // still `interleave` packets apart after it.
    unsigned index = next_bin_[l];
    next_bin_[l] = index + 1 == config_.interleaves[l] ? 0 : index + 1;
    Bin& bin = bins_[layer_first_bin_[l] + index];
    bins[l] = &bin;
    if (bin.count == 0) {
      bin.base_seq = seq;
      bin.first_ns = now_ns;
      if (config_.flush_timeout_ns)
        next_deadline_ = std::min(next_deadline_, now_ns + timeout_of(bin));
    }
    // Bytes at or past xor_len hold leftovers of the bin's previous repair, not zeros: there
    // the packet is copied rather than XORed, which spares clearing the bin after each repair.
    if (len <= bin.xor_len) {
      xor_all[n_xor_all++] = bin.acc;
    } else {
      xor_into(bin.acc, pkt, bin.xor_len);
      std::memcpy(bin.acc + bin.xor_len, pkt + bin.xor_len, len - bin.xor_len);
      cancel_mutable(bin.acc, pkt, id.kind);
      bin.xor_len = uint16_t(len);
    }
  }
  xor_normalised_many(xor_all, n_xor_all, pkt, len, id.kind);
  for (size_t l = 0; l < layers; l++) {
    Bin& bin = *bins[l];
    bin.recipe[bin.count++] = RecipeEntry{id.hash, id.len, id.ttl, id.tos};
    if (bin.count >= bin.threshold) fire(bin, false, sink);
  }
  tokens_ = std::min(depth_, tokens_ + per_packet_);
  stats_.packets++;
  stats_.bytes += len;
  return seq;
}

bool Encoder::fire(Bin& bin, bool flushed, RepairSink& sink) {
  size_t len = repair_size(bin.count, bin.xor_len);
  uint8_t* out = sink.reserve(len);
  RepairInfo info{bin.layer, uint8_t(bin.count), uint16_t(config_.interleaves[bin.layer]), bin.base_seq, flushed};
  if (out) {
    RepairHeader h{0,          config_.epoch,
                   bin.base_seq, bin.layer,
                   uint8_t(bin.count), info.interleave,
                   bin.index,  bin.xor_len};
    write_repair_header(out, h);
    uint8_t* e = out + kRepairHeaderSize;
    for (unsigned k = 0; k < bin.count; k++, e += kRecipeEntrySize) write_entry(e, bin.recipe[k]);
    seal_repair(out, bin.count);
    std::memcpy(e, bin.acc, bin.xor_len);
    sink.commit(len, info);
    stats_.repairs++;
    stats_.repair_bytes += len;
    tokens_ -= 1;
    if (flushed) stats_.repairs_flushed++;
  } else {
    stats_.repairs_dropped++;
    sink.dropped(info);
  }
  bin.count = 0;
  bin.xor_len = 0;
  bin.threshold = uint16_t(config_.r);
  return out != nullptr;
}

unsigned Encoder::poll(uint64_t now_ns, RepairSink& sink) {
  if (now_ns < next_deadline_) return 0;
  unsigned fired = 0;
  uint64_t next = UINT64_MAX;
  for (Bin& bin : bins_) {
    if (bin.count == 0) continue;
    uint64_t due = bin.first_ns + timeout_of(bin);
    if (due <= now_ns) {
      fire(bin, true, sink);
      fired++;
    } else {
      next = std::min(next, due);
    }
  }
  next_deadline_ = next;
  return fired;
}

void Encoder::refill(uint64_t now_ns) {
  if (now_ns > refilled_ns_) {
    if (refilled_ns_) tokens_ = std::min(depth_, tokens_ + config_.budget_per_s * double(now_ns - refilled_ns_) * 1e-9);
    refilled_ns_ = now_ns;
  }
}

uint64_t Encoder::budget_ready(uint64_t now_ns) {
  refill(now_ns);
  if (tokens_ >= 1) return now_ns;
  if (config_.budget_per_s <= 0) return UINT64_MAX;
  return now_ns + uint64_t(std::ceil((1 - tokens_) / config_.budget_per_s * 1e9));
}

void Encoder::adopt_budget(const Encoder& old) {
  tokens_ = std::min(old.tokens_, depth_);
  refilled_ns_ = old.refilled_ns_;
}

unsigned Encoder::flush_covering(const uint32_t* seqs, size_t n, uint64_t now_ns, RepairSink& sink, bool* deferred) {
  refill(now_ns);
  if (deferred) *deferred = false;
  unsigned fired = 0;
  // The oldest packet's bins first, so that with the budget short whole writes are answered.
  for (size_t k = 0; k < n; k++) {
    for (size_t l = 0; l < config_.interleaves.size(); l++) {
      const uint32_t interleave = config_.interleaves[l];
      // How many packets back from the newest this one is; the layer's bin for it is as many
      // bins back (mod interleave) from the one the next packet goes into.
      uint32_t back = seq_ - seqs[k];
      if (back == 0 || back > uint32_t(interleave) * config_.r) continue;  // not added yet, or long covered
      unsigned index = unsigned((next_bin_[l] + interleave - back % interleave) % interleave);
      Bin& bin = bins_[layer_first_bin_[l] + index];
      if (bin.count == 0) continue;
      // In the bin's current round only: base, base + i, ..., base + (count - 1) i.
      uint32_t offset = seqs[k] - bin.base_seq;
      if (offset % interleave != 0 || offset / interleave >= bin.count) continue;
      if (tokens_ < 1) {
        stats_.covering_deferred++;
        if (deferred) *deferred = true;
        return fired;
      }
      if (fire(bin, true, sink)) stats_.repairs_covering++;
      fired++;
    }
  }
  return fired;
}

unsigned Encoder::flush(RepairSink& sink) {
  unsigned fired = 0;
  for (Bin& bin : bins_) {
    if (bin.count == 0) continue;
    fire(bin, true, sink);
    fired++;
  }
  next_deadline_ = UINT64_MAX;
  return fired;
}

}  // namespace maelstrom::fec
