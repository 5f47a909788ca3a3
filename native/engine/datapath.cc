// The packet path, one worker thread per queue pair: run() takes batches off the LAN and WAN
// rings; lan_batch() forwards to the WAN and feeds the encoder; wan_batch() forwards to the LAN
// and feeds the decoder; housekeeping() does what is due once per turn (flush timeouts,
// completions, feedback). The IPv4 header is 20 bytes here (engine/frames.h).
#include <poll.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "common/checksum.h"
#include "common/clock.h"
#include "engine/engine.h"
#include "engine/frames.h"
#include "engine/sinks.h"

namespace maelstrom::engine {

void Engine::run(Worker& w) {
  // Deadlines here are tens of microseconds apart (flush timeouts, feedback pacing, completions
  // to collect): the default 50 us timer slack would be most of them.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  std::vector<pollfd> fds;
  for (auto* ports : {&w.lan_rx, &w.wan_rx})
    for (xsk::Port* p : *ports) fds.push_back(pollfd{p->fd(), POLLIN, 0});
  xsk::RxFrame batch[kBatch];
  uint64_t last_publish = 0;
  w.start_cycles = cycles();
  w.start_ns = monotonic_ns();
  for (;;) {
    bool stopping = !running_.load(std::memory_order_relaxed);
    uint64_t now = monotonic_ns();
    uint32_t work = 0;
    // The sampled profile: stages of this turn's LAN->WAN work are timed (lap()); the WAN side
    // and housekeeping are not a stage of it and are left out.
    w.sampling = (++w.turn & (kProfileEvery - 1)) == 0;
    skip(w);
    for (xsk::Port* p : w.lan_rx) {
      uint32_t n = p->receive(batch, kBatch);
      lap(w, kStageRings);
      if (n) lan_batch(w, *p, batch, n, now);
      if (w.sampling) w.counters.stage_packets += n;
      work += n;
    }
    for (xsk::Port* p : w.wan_rx) {
      uint32_t n = p->receive(batch, kBatch);
      if (n) wan_batch(w, *p, batch, n, now);
      work += n;
    }
    skip(w);
    for (auto* ports : {&w.lan_rx, &w.wan_rx}) {
      for (xsk::Port* p : *ports) {
        p->complete();
        p->refill();
      }
    }
    lap(w, kStageRings);
    uint64_t deadline;
    bool publish = stopping || now - last_publish > 10'000'000;
    {
      std::lock_guard<std::mutex> lock(codec_mutex_);
      deadline = housekeeping(w, monotonic_ns());
      if (publish && w.index == 0) publish_codec();
    }
    skip(w);
    w.lan_rx[0]->flush_tx();
    w.wan_rx[0]->flush_tx();
    lap(w, kStageTx);
    if (publish) {
      timespec cpu;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
      w.counters.cpu_ns = uint64_t(cpu.tv_sec) * 1'000'000'000 + uint64_t(cpu.tv_nsec);
      const uint64_t ticks = cycles() - w.start_cycles;
      const double ns_per_tick = ticks ? double(monotonic_ns() - w.start_ns) / double(ticks) : 0;
      for (unsigned s = 0; s < kStageCount_; s++) {
        // The encoder's ticks include its hash, counted apart.
        uint64_t c = s == kStageXor ? w.stage_cycles[s] - std::min(w.stage_cycles[s], w.stage_cycles[kStageHash]) : w.stage_cycles[s];
        w.counters.stage_ns[s] = uint64_t(double(c) * ns_per_tick);
      }
      std::lock_guard<std::mutex> lock(snapshot_mutex_);
      snapshot_.workers[w.index].counters = w.counters;
      last_publish = now;
    }
    if (stopping) break;
    if (!work) {
      // Sleep until a frame arrives, the next flush or feedback deadline, or 1 ms (to notice
      // stop()); completions do not wake poll(), so look again soon while frames are in flight.
      uint64_t cap = w.wan_rx[0]->tx_outstanding() ? 50'000 : 1'000'000;
      uint64_t wait_ns = deadline > now ? std::min<uint64_t>(deadline - now, cap) : 0;
      timespec ts{0, long(wait_ns)};
      ppoll(fds.data(), fds.size(), &ts, nullptr);
    }
  }
}

namespace {
constexpr uint64_t kNoFrame = ~uint64_t(0);
}

// LAN -> WAN. The frames are copied into WAN TX frames first, outside the lock, then each takes
// its sequence number, its tracker record (before it is queued: its completion may come back at
// once), its place on the TX ring and its turn in the encoder, in that order, under the lock.
void Engine::lan_batch(Worker& w, xsk::Port& lan, const xsk::RxFrame* batch, uint32_t n, uint64_t now) {
  xsk::Port& wan = *w.wan_rx[0];
  w.staged.assign(n, kNoFrame);
  for (uint32_t i = 0; i < n; i++) {
    const xsk::RxFrame& f = batch[i];
    if (f.len <= kEth + kIp) continue;
    // Before anything reads the packet: both gateways must agree on its bytes (its identity in
    // the repairs), and the far host drops a partial checksum.
    if (complete_partial_checksum(f.data + kEth, f.len - kEth)) w.counters.lan_checksum_completed++;
    if (config_.mss_clamp) clamp_mss(w, f.data + kEth, f.len - kEth);
    uint64_t addr;
    uint8_t* buf = f.len <= wan.frame_size() ? wan.tx_buffer(&addr) : nullptr;
    if (buf) {
      std::memcpy(buf, f.data, f.len);
      w.staged[i] = addr;
    }
  }
  lap(w, kStageCopy);
  {
    std::lock_guard<std::mutex> lock(codec_mutex_);
    lap(w, kStageLock);
    RepairOut out(*this, w);
    uint64_t* hash_cycles = w.sampling ? &w.stage_cycles[kStageHash] : nullptr;
    for (uint32_t i = 0; i < n; i++) {
      const xsk::RxFrame& f = batch[i];
      if (f.len <= kEth + kIp) continue;
      const uint8_t* ip = f.data + kEth;
      uint32_t ip_len = f.len - kEth;
      uint32_t seq = encoder_->next_seq();
      tracker_->sent(ip, ip_len, seq, now);
      lap(w, kStageTracker);
      if (w.staged[i] == kNoFrame) {
        w.counters.tx_dropped++;
        tracker_->uncovered(seq);
        continue;
      }
      w.wan_tags[w.staged[i] / wan.frame_size()] = FrameTag{FrameKind::Data, 0, 0, 0, seq};
      const bool queued = wan.transmit(w.staged[i], f.len);
      lap(w, kStageTx);
      if (!queued) {
        w.counters.tx_dropped++;
        tracker_->uncovered(seq);
        continue;
      }
      w.counters.lan_to_wan_packets++;
      w.counters.lan_to_wan_bytes += f.len;
      last_lan_ns_ = now;
      const bool covered = encoder_->add(ip, ip_len, now, out, hash_cycles) >= 0;
      lap(w, kStageXor);
      if (!covered) {
        w.counters.unprotected++;
        tracker_->uncovered(seq);
      }
    }
    apply_done(w);
    lap(w, kStageTracker);
  }
  for (uint32_t i = 0; i < n; i++) lan.recycle(batch[i].addr);
  lap(w, kStageRings);
}

// WAN -> LAN. Repairs, reports and the decoder's view of each data frame under the lock; the
// data frames it did not already rebuild are copied to the LAN after it.
void Engine::wan_batch(Worker& w, xsk::Port& wan, const xsk::RxFrame* batch, uint32_t n, uint64_t now) {
  w.verdicts.assign(n, 0);
  {
    std::lock_guard<std::mutex> lock(codec_mutex_);
    RecoveredOut out(*this, w);
    for (uint32_t i = 0; i < n; i++) {
      const xsk::RxFrame& f = batch[i];
      const uint8_t* ip = f.data + kEth;
      if (f.len >= kRepairHeaders && ip[9] == 17 && get16(ip + kIp + 2) == config_.repair_port) {
        const uint8_t* udp = ip + kIp;
        size_t udp_len = get16(udp + 4);
        if (udp_len < kUdp || kRepairHeaders - kUdp + udp_len > f.len || !udp_checksum_ok(ip, udp, udp_len)) {
          w.counters.bad_repair_frames++;
        } else {
          on_peer_datagram(w, udp + kUdp, udp_len - kUdp, out, now);
        }
      } else if (f.len > kEth + kIp) {
        tracker_->received(ip, f.len - kEth, now);
        if (decoder_->on_data(ip, f.len - kEth, out, now) == fec::DataResult::Duplicate)
          w.counters.duplicates_dropped++;
        else
          w.verdicts[i] = 1;
      }
    }
  }
  xsk::Port& lan = *w.lan_rx[0];
  for (uint32_t i = 0; i < n; i++) {
    const xsk::RxFrame& f = batch[i];
    if (w.verdicts[i] && forward(w, lan, f.data, f.len)) {
      w.counters.wan_to_lan_packets++;
      w.counters.wan_to_lan_bytes += f.len;
    }
    wan.recycle(f.addr);
  }
}

// Nothing in a datagram is used before it is opened: with a key, its envelope must verify
// and be fresh (auth::Receiver), and its kind says what is inside; without one, a sealed
// datagram cannot be checked and is dropped, and the rest goes by its magic.
void Engine::on_peer_datagram(Worker& w, const uint8_t* p, size_t len, fec::RecoverySink& out, uint64_t now) {
  bool report;
  if (master_) {
    auth::Opened o;
    if (wan_receiver_->open(p, len, &o) != auth::Verdict::Ok) return;
    after_verified(o.key_id, now);
    report = o.kind == auth::Kind::Report;
    if (o.kind == auth::Kind::Feedback) return;  // not for a gateway: counted as received, ignored
    p = o.inner;
    len = o.len;
  } else {
    if (len >= 2 && get16(p) == auth::kMagic) {
      w.counters.auth_unverifiable++;
      return;
    }
    report = is_report(p, len);
  }
  if (report) {
    on_report(w, p, len, now);
  } else {
    w.counters.repairs_received++;
    decoder_->on_repair(p, len, out, now);
  }
}

void Engine::apply_done(Worker& w) {
  for (const Done& d : w.done) {
    const FrameTag& t = d.tag;
    if (t.kind == FrameKind::Data)
      tracker_->data_completed(t.seq, d.ns);
    else
      tracker_->repair_completed(fec::RepairInfo{t.layer, t.count, t.interleave, t.seq, false}, d.ns);
  }
  w.done.clear();
}

// With the codec lock held, once per turn of a worker: completions to the tracker, bins whose
// flush timeout passed, feedback that is due; worker 0 also applies retunes, sends receiver
// reports and publishes the shared figures. Returns when the code next has something to do.
uint64_t Engine::housekeeping(Worker& w, uint64_t now) {
  apply_done(w);
  if (w.index == 0) {
    if (bool t = trace_requested_.load(std::memory_order_relaxed); t != trace_) tracker_->set_trace(trace_ = t);
    if (retune_pending_.load(std::memory_order_acquire)) apply_retune(w);
    if (master_) retire_keys(now);
    if (now >= next_report_ns_) {
      send_report(w);
      next_report_ns_ = now + kReportIntervalNs;
    }
  }
  RepairOut out(*this, w);
  encoder_->poll(now, out);
  uint64_t idle_deadline = idle_flush(out, now);
  RecoveredOut rebuilt(*this, w);
  decoder_->poll(now, rebuilt);
  send_feedback(w, now);
  return std::min({encoder_->next_deadline(), tracker_->next_deadline(), decoder_->next_deadline(), idle_deadline});
}

// Bins fill by count, or at their flush timeout (interleave x --flush-timeout): at low rates a
// packet can wait long for its deeper layers' repairs. When a network-sync flow waits on packets
// and the LAN has gone quiet (no frame for flush_idle_ns), nothing will fill their bins soon:
// those bins fire now, as far as the encoder's budget goes; what it cuts short is tried again
// when the budget has a repair again (or new frames come). Returns when to look again
// (UINT64_MAX: not before new frames).
uint64_t Engine::idle_flush(RepairOut& out, uint64_t now) {
  const uint32_t next = encoder_->next_seq();
  if (!config_.flush_idle_ns || config_.lan_addr == 0) return UINT64_MAX;
  if (next == idle_flushed_seq_ && idle_retry_ns_ == UINT64_MAX) return UINT64_MAX;
  if (now < last_lan_ns_ + config_.flush_idle_ns) return last_lan_ns_ + config_.flush_idle_ns;
  if (next == idle_flushed_seq_ && now < idle_retry_ns_) return idle_retry_ns_;
  idle_flushed_seq_ = next;
  idle_retry_ns_ = UINT64_MAX;
  uint32_t widest = 1;
  for (unsigned i : encoder_->config().interleaves) widest = std::max(widest, i);
  waiting_.clear();
  tracker_->waiting(next - 1, widest * encoder_->config().r, now, &waiting_);
  if (waiting_.empty()) return UINT64_MAX;
  bool deferred = false;
  encoder_->flush_covering(waiting_.data(), waiting_.size(), now, out, &deferred);
  if (deferred) idle_retry_ns_ = encoder_->budget_ready(now);
  return idle_retry_ns_;
}

bool Engine::forward(Worker& w, xsk::Port& to, const uint8_t* frame, uint32_t len) {
  uint64_t addr;
  uint8_t* buf = len <= to.frame_size() ? to.tx_buffer(&addr) : nullptr;
  if (!buf || (std::memcpy(buf, frame, len), !to.transmit(addr, len))) {
    w.counters.tx_dropped++;
    return false;
  }
  return true;
}

void Engine::clamp_mss(Worker& w, uint8_t* ip, uint32_t len) {
  if (len < kIp + 20 || ip[9] != 6) return;
  uint8_t* tcp = ip + kIp;
  if (!(tcp[13] & 0x02)) return;  // SYN
  size_t hdr = size_t(tcp[12] >> 4) * 4;
  if (hdr < 20 || kIp + hdr > len) return;
  for (size_t i = 20; i < hdr;) {
    uint8_t kind = tcp[i];
    if (kind == 0) break;
    if (kind == 1) {
      i++;
      continue;
    }
    if (i + 1 >= hdr || tcp[i + 1] < 2 || i + tcp[i + 1] > hdr) break;
    if (kind == 2 && tcp[i + 1] == 4) {
      uint16_t mss = get16(tcp + i + 2);
      if (mss > config_.mss_clamp) {
        // RFC 1624: HC' = ~(~HC + ~m + m')
        uint32_t sum = uint16_t(~get16(tcp + 16)) + uint16_t(~mss) + config_.mss_clamp;
        put16(tcp + i + 2, config_.mss_clamp);
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        put16(tcp + 16, uint16_t(~sum));
        w.counters.mss_clamped++;
      }
      return;
    }
    i += tcp[i + 1];
  }
}

}  // namespace maelstrom::engine
