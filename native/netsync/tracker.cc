#include "netsync/tracker.h"

#include <algorithm>

#include "common/bytes.h"

namespace maelstrom::netsync {
namespace {

constexpr uint32_t kNone = UINT32_MAX;
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;


struct Segment {
  FlowKey key;
  uint32_t seq, ack;
  uint8_t flags;
  uint32_t payload;
};

// An unfragmented IPv4 TCP segment, or false.
bool parse(const uint8_t* ip, size_t len, Segment* s) {
  if (len < 40 || (ip[0] >> 4) != 4 || ip[9] != 6) return false;
  size_t ihl = size_t(ip[0] & 0x0f) * 4;
  size_t total = get16(ip + 2);
  if (ihl < 20 || total > len || total < ihl + 20) return false;
  if (get16(ip + 6) & 0x3fff) return false;  // a fragment
  const uint8_t* tcp = ip + ihl;
  size_t doff = size_t(tcp[12] >> 4) * 4;
  if (doff < 20 || ihl + doff > total) return false;
  std::memcpy(&s->key.saddr, ip + 12, 4);
  std::memcpy(&s->key.daddr, ip + 16, 4);
  std::memcpy(&s->key.sport, tcp, 2);
  std::memcpy(&s->key.dport, tcp + 2, 2);
  s->seq = get32(tcp + 4);
  s->ack = get32(tcp + 8);
  s->flags = tcp[13];
  s->payload = uint32_t(total - ihl - doff);
  return true;
}

}  // namespace

unsigned latency_bucket(uint64_t us) {
  if (us < 2) return 0;
  unsigned e = 63u - unsigned(__builtin_clzll(us));
  unsigned sub = e >= 2 ? unsigned(us >> (e - 2)) - 4 : unsigned(us - (1ull << e)) * 2;
  return std::min(TrackerStats::kLatencyBuckets - 1, 4 * e + sub);
}

uint64_t latency_bucket_top(unsigned b) {
  if (b < 4) return 1;
  if (b < 8) return b < 6 ? 2 : 3;
  unsigned e = b / 4, sub = b % 4;
  return ((5ull + sub) << (e - 2)) - 1;
}

namespace {

uint32_t round_pow2(uint32_t n) {
  uint32_t p = 1024;
  while (p < n && p < (1u << 24)) p <<= 1;
  return p;
}

}  // namespace

Tracker::Tracker(const TrackerConfig& config) : config_(config) {
  config_.layers = std::max(1u, config_.layers);
  config_.max_flows = std::max(1u, config_.max_flows);
  uint32_t size = round_pow2(config_.ring);
  mask_ = size - 1;
  ring_.assign(size, Record{0, kNone, 0, 0, false, false, false, 0, 0});
  flows_.resize(config_.max_flows);
  for (uint32_t i = config_.max_flows; i-- > 0;) free_slots_.push_back(i);
  index_.reserve(config_.max_flows);
}

Event Tracker::flow_event(EventKind kind, const Flow& f, uint64_t now_ns) const {
  Event e{};
  e.t_ns = now_ns;
  e.kind = kind;
  e.flow = f.key;
  e.a = f.safe;
  e.b = f.high;
  e.flags = f.isn_guessed ? 1 : 0;
  return e;
}

const Tracker::Record* Tracker::record_of(const Pending& p, uint32_t slot) const {
  const Record& r = ring_[p.seq & mask_];
  return r.seq == p.seq && r.flow == slot && r.gen == flows_[slot].gen && r.start == p.start ? &r : nullptr;
}

void Tracker::lru_unlink(uint32_t slot) {
  Flow& f = flows_[slot];
  if (f.lru_prev != kNone) flows_[f.lru_prev].lru_next = f.lru_next;
  else if (lru_head_ == slot) lru_head_ = f.lru_next;
  if (f.lru_next != kNone) flows_[f.lru_next].lru_prev = f.lru_prev;
  else if (lru_tail_ == slot) lru_tail_ = f.lru_prev;
  f.lru_prev = f.lru_next = kNone;
}

void Tracker::touch(uint32_t slot) {
  if (lru_head_ == slot) return;
  lru_unlink(slot);
  Flow& f = flows_[slot];
  f.lru_next = lru_head_;
  if (lru_head_ != kNone) flows_[lru_head_].lru_prev = slot;
  lru_head_ = slot;
  if (lru_tail_ == kNone) lru_tail_ = slot;
}

uint32_t Tracker::open_flow(const FlowKey& key, uint64_t now_ns) {
  if (free_slots_.empty()) {
    stats_.evicted_pressure++;
    close_flow(lru_tail_, CloseReason::Pressure, now_ns);
  }
  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  Flow& f = flows_[slot];
  uint32_t gen = f.gen;
  std::deque<Pending> keep = std::move(f.pending);  // reuse its storage
  f = Flow{};
  f.pending = std::move(keep);
  f.pending.clear();
  f.gen = gen;
  f.key = key;
  f.used = true;
  f.last_seen_ns = now_ns;
  index_.emplace(key, slot);
  touch(slot);
  stats_.flows++;
  stats_.flows_opened++;
  return slot;
}

void Tracker::close_flow(uint32_t slot, CloseReason reason, uint64_t now_ns) {
  Flow& f = flows_[slot];
  if (!f.used) return;
  Event e = flow_event(EventKind::FlowClose, f, now_ns);
  e.reason = uint8_t(reason);
  emit(e);
  switch (reason) {
    case CloseReason::Fin: stats_.evicted_fin++; break;
    case CloseReason::Rst: stats_.evicted_rst++; break;
    case CloseReason::Idle: stats_.evicted_idle++; break;
    default: break;
  }
  index_.erase(f.key);
  if (reason == CloseReason::Fin || reason == CloseReason::Rst) {
    if (closed_order_.size() >= kClosedMemory) {
      closed_.erase(closed_order_.front());
      closed_order_.pop_front();
    }
    if (closed_.insert_or_assign(f.key, now_ns).second) closed_order_.push_back(f.key);
  }
  lru_unlink(slot);
  f.used = f.dirty = f.fin = false;
  f.gen++;
  f.pending.clear();
  free_slots_.push_back(slot);
  stats_.flows--;
}

// The stream offset of the byte with sequence number seq: the 32-bit distance from the highest
// offset sent, so offsets keep counting across the wrap and retransmissions land below.
uint64_t Tracker::unwrap(const Flow& f, uint32_t seq) const {
  uint32_t rel = seq - f.isn - 1;
  int64_t off = int64_t(f.high) + int32_t(rel - uint32_t(f.high));
  return off < 0 ? UINT64_MAX : uint64_t(off);
}

void Tracker::sent(const uint8_t* ip, size_t len, uint32_t seq, uint64_t now_ns) {
  Record& r = ring_[seq & mask_];
  if (r.flow != kNone && !r.done) stats_.records_abandoned++;
  r = Record{seq, kNone, 0, 0, false, false, false, 0, 0};
  last_ = LastSent{};
  Segment s;
  if (!parse(ip, len, &s)) return;
  auto it = index_.find(s.key);
  uint32_t slot = it == index_.end() ? kNone : it->second;
  if (s.flags & kRst) {
    if (slot != kNone) close_flow(slot, CloseReason::Rst, now_ns);
    return;
  }
  bool opened = false;
  if (s.flags & kSyn) {
    if (slot != kNone && (flows_[slot].isn != s.seq || flows_[slot].isn_guessed)) {
      close_flow(slot, CloseReason::Reopened, now_ns);
      slot = kNone;
    }
    if (slot == kNone) {
      slot = open_flow(s.key, now_ns);
      flows_[slot].isn = s.seq;
      opened = true;
    }
  } else if (slot == kNone) {
    if (!s.payload) return;  // a bare ACK or FIN of a flow we do not know
    if (auto c = closed_.find(s.key); c != closed_.end() && now_ns - c->second < kClosedMemoryNs) {
      stats_.after_close++;  // a late retransmission of a flow just closed
      return;
    }
    slot = open_flow(s.key, now_ns);
    flows_[slot].isn = s.seq - 1;  // the first byte seen counts as offset 0
    flows_[slot].isn_guessed = true;
    stats_.flows_isn_guessed++;
    opened = true;
  }
  Flow& f = flows_[slot];
  if (opened) {
    Event e = flow_event(EventKind::FlowOpen, f, now_ns);
    e.a = f.isn;
    emit(e);
  }
  f.last_seen_ns = now_ns;
  touch(slot);
  if (s.payload) {
    uint32_t first = (s.flags & kSyn) ? s.seq + 1 : s.seq;
    uint64_t start = unwrap(f, first);
    if (start != UINT64_MAX) {
      uint64_t end = start + s.payload;
      stats_.segments++;
      if (start < f.high) stats_.retransmissions++;
      last_ = LastSent{seq, slot, f.high, f.newest_seq, f.newest_repairs, true};
      f.high = std::max(f.high, end);
      f.newest_seq = seq;
      f.newest_repairs = 0;
      if (end > f.safe) {
        r = Record{seq, slot, f.gen, 0, false, false, false, start, end, uint8_t(config_.layers), now_ns};
        f.pending.push_back(Pending{seq, start, end});
        if (f.pending.size() > ring_.size()) f.pending.pop_front();
        unsafe_.push_back(seq);
        if (unsafe_.size() > ring_.size()) unsafe_.pop_front();
      }
    }
  }
  if ((s.flags & kFin) && !f.fin) {
    f.fin = true;
    finished_.push_back(slot);
  }
}

void Tracker::waiting(uint32_t newest_seq, uint32_t span, uint64_t now_ns, std::vector<uint32_t>* out) {
  auto still_waits = [&](uint32_t seq) {
    const Record& r = ring_[seq & mask_];
    return r.seq == seq && r.flow != kNone && !r.done && !r.dead && r.repairs < r.need;
  };
  while (!unsafe_.empty() && !still_waits(unsafe_.front())) unsafe_.pop_front();
  for (auto it = unsafe_.rbegin(); it != unsafe_.rend(); ++it) {
    uint32_t seq = *it;
    if (newest_seq - seq >= span) break;
    if (!still_waits(seq)) continue;
    const Record& r = ring_[seq & mask_];
    const Flow& f = flows_[r.flow];
    if (f.gen != r.gen || f.isn_guessed) continue;
    if (auto q = quiet_.find(f.key.saddr); q != quiet_.end()) {
      if (now_ns < q->second) continue;
      quiet_.erase(q);
    }
    out->push_back(seq);
  }
}

void Tracker::uncovered(uint32_t seq) {
  Record& r = ring_[seq & mask_];
  if (r.seq != seq) return;
  r.flow = kNone;
  if (!last_.valid || last_.seq != seq) return;
  Flow& f = flows_[last_.slot];
  if (!f.pending.empty() && f.pending.back().seq == seq) f.pending.pop_back();
  f.high = last_.high;
  f.newest_seq = last_.newest_seq;
  f.newest_repairs = last_.newest_repairs;
  last_.valid = false;
}

void Tracker::repair_lost(const fec::RepairInfo& info) {
  for (unsigned k = 0; k < info.count; k++) {
    uint32_t s = info.base_seq + k * info.interleave;
    Record& r = ring_[s & mask_];
    if (r.seq == s && r.flow != kNone) r.dead = true;
  }
}

void Tracker::received(const uint8_t* ip, size_t len, uint64_t now_ns) {
  Segment s;
  if (!parse(ip, len, &s) || !(s.flags & (kAck | kRst))) return;
  FlowKey reverse{s.key.daddr, s.key.saddr, s.key.dport, s.key.sport};
  auto it = index_.find(reverse);
  if (it == index_.end()) return;
  uint32_t slot = it->second;
  if (s.flags & kRst) {
    close_flow(slot, CloseReason::Rst, now_ns);
    return;
  }
  Flow& f = flows_[slot];
  uint64_t acked = unwrap(f, s.ack);
  if (acked == UINT64_MAX) return;
  acked = std::min(acked, f.high);  // a FIN takes a sequence number too
  // The receiver has these bytes, but a record still waiting for its repairs keeps its place:
  // the ACK only passes records that can no longer complete (a repair lost, the ring overrun)
  // and bytes no record covers (a frame the engine could not send or protect).
  uint64_t before = f.safe;
  while (f.safe < acked) {
    if (f.pending.empty()) {
      f.safe = acked;
      break;
    }
    const Pending& p = f.pending.front();
    if (p.end <= f.safe) {
      f.pending.pop_front();
      continue;
    }
    if (p.start > f.safe) {
      f.safe = std::min(acked, p.start);
      continue;
    }
    const Record* r = record_of(p, slot);
    if (p.end > acked || !(!r || r->dead || r->done)) break;
    f.safe = p.end;
    f.pending.pop_front();
  }
  if (f.safe > before) {
    stats_.safe_by_ack++;
    emit(flow_event(EventKind::SafeByAck, f, now_ns));
    advance(slot);
    mark_dirty(slot);
  }
}

void Tracker::data_completed(uint32_t seq, uint64_t now_ns) {
  Record& r = ring_[seq & mask_];
  if (r.seq != seq) {
    stats_.stale_completions++;
    return;
  }
  if (r.flow == kNone) return;
  r.data_done = true;
  if (trace_) {
    Event e{};
    e.t_ns = now_ns;
    e.kind = EventKind::DataDone;
    e.flow = flows_[r.flow].key;
    e.seq = seq;
    e.a = r.start;
    e.b = r.end;
    emit(e);
  }
  check_done(r, now_ns);
}

void Tracker::repair_completed(const fec::RepairInfo& info, uint64_t now_ns) {
  if (trace_) {
    Event e{};
    e.t_ns = now_ns;
    e.kind = EventKind::RepairDone;
    e.seq = info.base_seq;
    e.layer = info.layer;
    e.count = info.count;
    e.interleave = info.interleave;
    emit(e);
  }
  for (unsigned k = 0; k < info.count; k++) {
    uint32_t s = info.base_seq + k * info.interleave;
    Record& r = ring_[s & mask_];
    if (r.seq != s || r.flow == kNone) continue;
    r.repairs++;
    Flow& f = flows_[r.flow];
    if (f.gen == r.gen && f.newest_seq == s) f.newest_repairs = r.repairs;
    check_done(r, now_ns);
  }
}

void Tracker::check_done(Record& r, uint64_t now_ns) {
  if (r.done || !r.data_done || r.repairs < r.need) return;
  r.done = true;
  stats_.records_completed++;
  uint64_t us = now_ns > r.sent_ns ? (now_ns - r.sent_ns) / 1000 : 0;
  stats_.safe_latency[latency_bucket(us)]++;
  stats_.safe_latency_max_us = std::max(stats_.safe_latency_max_us, us);
  Flow& f = flows_[r.flow];
  if (f.gen != r.gen || !f.used) return;
  // A record that starts at or below the safe offset moves it at once, wherever it waits in
  // the send order: a retransmission completing the bytes an earlier record could not.
  uint64_t before = f.safe;
  if (r.start <= f.safe && r.end > f.safe) f.safe = r.end;
  if (advance(r.flow) || f.safe > before) mark_dirty(r.flow);
}

// Moves the safe offset over completed records in the order they were sent.
bool Tracker::advance(uint32_t slot) {
  Flow& f = flows_[slot];
  uint64_t before = f.safe;
  while (!f.pending.empty()) {
    const Pending& p = f.pending.front();
    const Record* r = record_of(p, slot);
    if (p.end <= f.safe) {
      f.pending.pop_front();
    } else if (p.start <= f.safe && r && r->done) {
      f.safe = p.end;
      f.pending.pop_front();
    } else {
      break;
    }
  }
  return f.safe > before;
}

void Tracker::mark_dirty(uint32_t slot) {
  Flow& f = flows_[slot];
  if (f.dirty) return;
  f.dirty = true;
  dirty_.push_back(slot);
  next_deadline_ = std::min(next_deadline_, f.last_feedback_ns + config_.feedback_interval_ns);
}

size_t Tracker::poll(uint64_t now_ns, std::vector<FeedbackEntry>* out) {
  size_t n = 0;
  uint64_t next = UINT64_MAX;
  size_t keep = 0;
  for (uint32_t slot : dirty_) {
    Flow& f = flows_[slot];
    if (!f.dirty) continue;
    uint64_t due = f.last_feedback_ns + config_.feedback_interval_ns;
    if (f.last_feedback_ns && due > now_ns) {
      next = std::min(next, due);
      dirty_[keep++] = slot;
      continue;
    }
    f.dirty = false;
    f.last_feedback_ns = now_ns;
    FeedbackEntry fe{f.key, f.isn_guessed, f.safe, f.high, f.newest_repairs, uint8_t(config_.layers)};
    out->push_back(fe);
    n++;
    stats_.feedback_entries++;
    Event e = flow_event(EventKind::Feedback, f, now_ns);
    e.repairs = f.newest_repairs;
    e.count = uint8_t(config_.layers);
    emit(e);
  }
  dirty_.resize(keep);
  next_deadline_ = next;
  keep = 0;
  for (uint32_t slot : finished_) {
    Flow& f = flows_[slot];
    if (!f.used || !f.fin) continue;
    if (f.safe >= f.high && !f.dirty) {
      close_flow(slot, CloseReason::Fin, now_ns);
      continue;
    }
    finished_[keep++] = slot;
  }
  finished_.resize(keep);
  while (lru_tail_ != kNone && now_ns > flows_[lru_tail_].last_seen_ns &&
         now_ns - flows_[lru_tail_].last_seen_ns > config_.idle_timeout_ns)
    close_flow(lru_tail_, CloseReason::Idle, now_ns);
  return n;
}

}  // namespace maelstrom::netsync
