#include "fec/decoder.h"

#include <algorithm>
#include <cstring>
#include <random>

namespace maelstrom::fec {
namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

uint64_t random_salt() {
  std::random_device rd;
  return uint64_t(rd()) << 32 | rd();
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

// Serial-number comparison: is a after b, within half the sequence space.
bool seq_after(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }

// Out-of-window repairs in a row, each near the one before, that mean the sender's sequence
// numbers jumped (a restarted encoder) rather than that they are late.
constexpr unsigned kResyncAfter = 32;

// Callers validate (src/fec/config.ts); this only keeps a bad config from being undefined
// behaviour when the C++ is used directly.
DecoderConfig sanitised(DecoderConfig c) {
  c.max_packet = std::clamp(c.max_packet, 1u, 65535u);
  c.window = std::max(c.window, 1u);
  c.pending = std::max(c.pending, 1u);
  c.seen = std::max(c.seen, c.window);
  return c;
}

}  // namespace

Decoder::Decoder(const DecoderConfig& raw)
    : config_(sanitised(raw)),
      stride_(round_up(config_.max_packet, kAlign)),
      window_index_(config_.window, random_salt()),
      seen_index_(config_.seen, random_salt()) {
  size_t slots = size_t(config_.window) + config_.pending + 1;
  arena_.assign(slots * stride_ + kAlign, 0);
  uint8_t* base = arena_.data() + (kAlign - reinterpret_cast<uintptr_t>(arena_.data()) % kAlign) % kAlign;
  window_ = base;
  slot_hash_.assign(config_.window, 0);
  slot_len_.assign(config_.window, 0);
  seen_ring_.assign(config_.seen, 0);
  pending_.resize(config_.pending);
  for (uint32_t i = 0; i < config_.pending; i++) {
    pending_[i].payload = base + (size_t(config_.window) + i) * stride_;
    pending_[i].live = false;
    pending_[i].generation = 0;
    pending_free_.push_back(config_.pending - 1 - i);
  }
  work_ = base + (size_t(config_.window) + config_.pending) * stride_;
}

uint32_t Decoder::insert_packet(const uint8_t* pkt, size_t len, uint64_t hash) {
  uint32_t pos = uint32_t(seen_next_++ % config_.seen);
  if (uint64_t old = seen_ring_[pos]; old && seen_index_.find(old) == pos) seen_index_.erase(old);
  seen_ring_[pos] = hash;
  seen_index_.put(hash, pos);

  uint32_t slot = uint32_t(window_next_++ % config_.window);
  if (uint64_t old = slot_hash_[slot]; old && window_index_.find(old) == slot) window_index_.erase(old);
  std::memcpy(window_ + size_t(slot) * stride_, pkt, len);
  slot_hash_[slot] = hash;
  slot_len_[slot] = uint16_t(len);
  window_index_.put(hash, slot);
  return slot;
}

DataResult Decoder::on_data(const uint8_t* pkt, size_t len, RecoverySink& sink, uint64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  if (len == 0 || len > config_.max_packet) {
    stats_.invalid++;
    return DataResult::Invalid;
  }
  PacketId id = identify(pkt, len);
  if (seen_index_.find(id.hash) != HashIndex::kAbsent) {
    stats_.duplicates++;
    return DataResult::Duplicate;
  }
  insert_packet(pkt, len, id.hash);
  stats_.data++;
  stats_.data_bytes += len;
  if (!lost_.empty() && lost_.erase(id.hash)) stats_.late_arrivals++;
  if (!loss_waiting_.empty()) loss_waiting_.erase(id.hash);
  if (!waiting_.empty()) {
    available_.push_back(id.hash);
    cascade(sink);
  }
  return DataResult::New;
}

RepairResult Decoder::on_repair(const uint8_t* buf, size_t len, RecoverySink& sink, uint64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  stats_.repairs++;
  RepairView v;
  if (ParseError err = parse_repair(buf, len, config_.max_packet, &v); err != ParseError::None) {
    stats_.malformed[size_t(err)]++;
    return RepairResult::Malformed;
  }
  const RepairHeader& h = v.header;
  uint32_t newest = h.base_seq + uint32_t(h.count - 1) * h.interleave;
  if (!epoch_known_) {
    epoch_known_ = true;
    epoch_ = prev_epoch_ = h.epoch;
  } else if (seq_after(h.epoch, epoch_)) {
    // A new configuration. The previous epoch stays valid: its last repairs may arrive after
    // the first new ones. A runtime retune continues the sequence; a restarted sender does not.
    prev_epoch_ = epoch_;
    epoch_ = h.epoch;
    stats_.epoch_changes++;
    if (seq_known_ && uint32_t(newest - highest_seq_ + config_.window) >= 2 * config_.window) resync(newest);
  } else if (h.epoch != epoch_ && h.epoch != prev_epoch_) {
    stats_.stale_epoch++;
    // Many in a row of one older epoch: the sender restarted (its epochs begin again) after
    // runtime retunes had moved ours on. Follow it.
    stale_run_ = stale_run_ && h.epoch == stale_epoch_ ? stale_run_ + 1 : 1;
    stale_epoch_ = h.epoch;
    if (stale_run_ < kResyncAfter) return RepairResult::StaleEpoch;
    stale_run_ = 0;
    prev_epoch_ = epoch_ = h.epoch;
    stats_.epoch_changes++;
    resync(newest);
    return RepairResult::StaleEpoch;
  }
  stale_run_ = 0;

  if (!seq_known_ || seq_after(newest, highest_seq_)) {
    seq_known_ = true;
    highest_seq_ = newest;
    expire(highest_seq_);
  }
  if (highest_seq_ - h.base_seq >= config_.window) {
    stats_.out_of_window++;
    // Many in a row that agree with each other: the sender's sequence restarted; follow it.
    if (resync_run_ && uint32_t(newest - resync_seq_ + config_.window) < 2 * config_.window) {
      if (++resync_run_ >= kResyncAfter) resync(newest);
    } else {
      resync_run_ = 1;
    }
    resync_seq_ = newest;
    return RepairResult::OutOfWindow;
  }
  resync_run_ = 0;

  present_.clear();
  missing_.clear();
  missing_seq_.clear();
  for (unsigned k = 0; k < h.count; k++) {
    RecipeEntry e = read_entry(v.entries, k);
    if (uint32_t slot = window_index_.find(e.hash); slot != HashIndex::kAbsent) {
      if (slot_len_[slot] != e.len) {  // a recipe that contradicts what we hold: trust neither
        stats_.malformed[size_t(ParseError::BadEntry)]++;
        return RepairResult::Malformed;
      }
      present_.push_back(slot);
    } else if (seen_index_.find(e.hash) != HashIndex::kAbsent) {
      stats_.out_of_window++;  // seen, but its bytes already left the window
      return RepairResult::OutOfWindow;
    } else {
      missing_.push_back(e);
      missing_seq_.push_back(h.base_seq + k * h.interleave);
      note_lost(e, h.base_seq + k * h.interleave);
    }
  }
  if (h.layer == 0) sample_loss(h);
  if (missing_.empty()) {
    stats_.useless++;
    return RepairResult::Useless;
  }

  std::memcpy(work_, v.payload, h.xor_len);
  for (uint32_t slot : present_) xor_normalised(work_, window_packet(slot), slot_len_[slot]);

  if (missing_.size() == 1 && !config_.grace_ns) {
    rebuild(work_, h.xor_len, missing_[0], sink);
    cascade(sink);
    return RepairResult::Applied;
  }
  uint32_t slot = store_pending(newest, h.xor_len);
  if (missing_.size() == 1) hold(slot);
  return RepairResult::Pending;
}

void Decoder::hold(uint32_t slot) {
  stats_.held++;
  held_.push_back(Held{slot, pending_[slot].generation, now_ns_ + config_.grace_ns});
}

void Decoder::poll(uint64_t now_ns, RecoverySink& sink) {
  now_ns_ = std::max(now_ns_, now_ns);
  while (!loss_wait_.empty() && loss_wait_.front().ready_ns <= now_ns) {
    LossWait l = loss_wait_.front();
    loss_wait_.pop_front();
    auto it = loss_waiting_.find(l.hash);
    if (it == loss_waiting_.end()) continue;  // it came within the grace: late, not lost
    if (--it->second == 0) loss_waiting_.erase(it);
    count_missing(l.seq, l.consecutive);
  }
  while (!held_.empty() && held_.front().ready_ns <= now_ns) {
    Held h = held_.front();
    held_.pop_front();
    Pending& p = pending_[h.slot];
    if (!p.live || p.generation != h.generation) {
      stats_.held_arrived++;  // peeled (its packet came) or expired meanwhile
      continue;
    }
    if (p.missing.size() == 1) {
      RecipeEntry last = p.missing[0];
      rebuild(p.payload, p.xor_len, last, sink);
    }
    free_pending(h.slot);
    cascade(sink);
  }
}

// Keeps the XOR of the present packets (in work_) with the recipe entries of missing_ for
// peeling; evicts the oldest waiting repair when the table is full.
uint32_t Decoder::store_pending(uint32_t newest, uint16_t xor_len) {
  if (pending_free_.empty()) {
    while (!pending_order_.empty()) {
      auto [slot, gen] = pending_order_.front();
      pending_order_.pop_front();
      if (pending_[slot].live && pending_[slot].generation == gen) {
        free_pending(slot);
        stats_.pending_evicted++;
        break;
      }
    }
  }
  uint32_t slot = pending_free_.back();
  pending_free_.pop_back();
  Pending& p = pending_[slot];
  std::memcpy(p.payload, work_, xor_len);
  p.xor_len = xor_len;
  p.missing = missing_;
  p.newest_seq = newest;
  p.live = true;
  pending_live_++;
  for (const RecipeEntry& e : missing_) waiting_.emplace(e.hash, slot);
  pending_order_.emplace_back(slot, p.generation);
  if (pending_order_.size() > 4 * size_t(config_.pending)) {
    auto dead = [this](const std::pair<uint32_t, uint32_t>& o) {
      return !pending_[o.first].live || pending_[o.first].generation != o.second;
    };
    pending_order_.erase(std::remove_if(pending_order_.begin(), pending_order_.end(), dead), pending_order_.end());
  }
  return slot;
}

// The lowest layer's repairs come first, after their own few packets: what they find missing
// was lost on the WAN, or is late, which a grace tells apart. With interleave 1 they cover
// consecutive packets, so runs of missing ones are the WAN's loss bursts.
void Decoder::sample_loss(const RepairHeader& h) {
  stats_.loss_sampled += h.count;
  bool consecutive = h.interleave == 1;
  for (size_t k = 0; k < missing_seq_.size(); k++) {
    if (!config_.grace_ns) {
      count_missing(missing_seq_[k], consecutive);
      continue;
    }
    loss_wait_.push_back(LossWait{missing_[k].hash, missing_seq_[k], consecutive, now_ns_ + config_.grace_ns});
    loss_waiting_[missing_[k].hash]++;
  }
}

void Decoder::count_missing(uint32_t seq, bool consecutive) {
  stats_.loss_missing++;
  if (!missing_known_ || !consecutive || seq != last_missing_ + 1) stats_.loss_bursts++;
  missing_known_ = true;
  last_missing_ = seq;
}

bool Decoder::rebuild(uint8_t* work, uint16_t xor_len, const RecipeEntry& e, RecoverySink& sink) {
  if (seen_index_.find(e.hash) != HashIndex::kAbsent) return false;  // rebuilt by another repair
  if (!all_zero(work + e.len, xor_len - e.len)) {
    stats_.verify_failed++;
    return false;
  }
  // Restored as IP first; if that does not hash right, the packet was opaque (for instance
  // IPv4 with a wrong header checksum) and the XOR already holds it exactly.
  uint8_t head[kRestoredBytes];
  size_t head_len = std::min(size_t(e.len), kRestoredBytes);
  std::memcpy(head, work, head_len);
  restore(work, e.len, e.ttl, e.tos);
  PacketId id = identify(work, e.len);
  if (id.hash != e.hash || id.ttl != e.ttl || id.tos != e.tos) {
    std::memcpy(work, head, head_len);
    id = identify(work, e.len);
    if (id.hash != e.hash || id.kind != PacketKind::Opaque) {
      stats_.verify_failed++;
      return false;
    }
  }
  uint32_t slot = insert_packet(work, e.len, e.hash);
  lost_.erase(e.hash);
  stats_.recovered++;
  stats_.recovered_bytes += e.len;
  sink.recovered(window_packet(slot), e.len);
  available_.push_back(e.hash);
  return true;
}

void Decoder::cascade(RecoverySink& sink) {
  std::vector<uint32_t> slots;
  while (!available_.empty()) {
    uint64_t hash = available_.back();
    available_.pop_back();
    auto range = waiting_.equal_range(hash);
    if (range.first == range.second) continue;
    slots.clear();
    for (auto it = range.first; it != range.second; ++it) slots.push_back(it->second);
    waiting_.erase(range.first, range.second);
    for (uint32_t s : slots) {
      Pending& p = pending_[s];
      if (!p.live) continue;
      // Looked up each time: a rebuild in this loop may have reused the slot.
      uint32_t have = window_index_.find(hash);
      if (have == HashIndex::kAbsent) break;  // window smaller than the cascade: give up on it
      for (size_t k = 0; k < p.missing.size();) {
        if (p.missing[k].hash != hash) {
          k++;
          continue;
        }
        xor_normalised(p.payload, window_packet(have), slot_len_[have]);
        p.missing[k] = p.missing.back();
        p.missing.pop_back();
      }
      if (p.missing.size() == 1 && config_.grace_ns) {
        hold(s);  // the last one may be late too
      } else if (p.missing.size() == 1) {
        RecipeEntry last = p.missing[0];
        rebuild(p.payload, p.xor_len, last, sink);
        free_pending(s);
      } else if (p.missing.empty()) {
        free_pending(s);
      }
    }
  }
}

void Decoder::unwait(uint64_t hash, uint32_t slot) {
  auto range = waiting_.equal_range(hash);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == slot) {
      waiting_.erase(it);
      return;
    }
  }
}

void Decoder::free_pending(uint32_t slot) {
  Pending& p = pending_[slot];
  for (const RecipeEntry& e : p.missing) unwait(e.hash, slot);
  p.missing.clear();
  p.live = false;
  p.generation++;
  pending_live_--;
  pending_free_.push_back(slot);
}

void Decoder::expire(uint32_t highest) {
  while (!pending_order_.empty()) {
    auto [slot, gen] = pending_order_.front();
    Pending& p = pending_[slot];
    if (p.live && p.generation == gen) {
      if (highest - p.newest_seq < config_.window) break;
      free_pending(slot);
      stats_.pending_expired++;
    }
    pending_order_.pop_front();
  }
  while (!lost_order_.empty() && highest - lost_order_.front().first >= config_.window) give_up_oldest_lost();
}

void Decoder::give_up_oldest_lost() {
  auto [seq, hash] = lost_order_.front();
  lost_order_.pop_front();
  auto it = lost_.find(hash);
  if (it != lost_.end() && it->second == seq) {  // neither arrived nor rebuilt since
    lost_.erase(it);
    stats_.unrecoverable++;
  }
}

void Decoder::note_lost(const RecipeEntry& e, uint32_t seq) {
  if (!lost_.emplace(e.hash, seq).second) return;
  lost_order_.emplace_back(seq, e.hash);
  if (lost_order_.size() > config_.seen) give_up_oldest_lost();
}

void Decoder::resync(uint32_t newest) {
  for (uint32_t s = 0; s < config_.pending; s++)
    if (pending_[s].live) free_pending(s);
  pending_order_.clear();
  held_.clear();
  loss_wait_.clear();
  loss_waiting_.clear();
  lost_.clear();
  lost_order_.clear();
  highest_seq_ = newest;
  seq_known_ = true;
  resync_run_ = 0;
  stats_.resyncs++;
}

}  // namespace maelstrom::fec
