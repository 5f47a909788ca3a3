// Where the codec's output goes, and where WAN completions go: the classes the packet path
// (datapath.cc) hands to the encoder, the decoder and the WAN socket. Internal to native/engine.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "common/clock.h"
#include "engine/engine.h"
#include "engine/frames.h"

namespace maelstrom::engine {

// Repairs are built straight into the worker's WAN UMEM frames behind Ethernet, IPv4 and UDP
// headers. Used with the codec lock held.
class Engine::RepairOut : public fec::RepairSink {
 public:
  RepairOut(Engine& e, Worker& w) : e_(e), w_(w), wan_(*w.wan_rx[0]) {}
  uint8_t* reserve(size_t len) override {
    if (kRepairHeaders + e_.seal_before() + len + e_.seal_after() > wan_.frame_size()) return nullptr;
    frame_ = wan_.tx_buffer(&addr_);
    if (!frame_) w_.counters.tx_dropped++;
    return frame_ ? frame_ + kRepairHeaders + e_.seal_before() : nullptr;
  }
  void dropped(const fec::RepairInfo& info) override { e_.tracker_->repair_lost(info); }
  void commit(size_t len, const fec::RepairInfo& info) override {
    size_t payload = e_.seal(e_.wan_sender_, auth::Kind::Repair, frame_ + kRepairHeaders, len);
    e_.udp_headers(frame_, payload);
    uint32_t frame_len = uint32_t(kRepairHeaders + payload);
    w_.wan_tags[addr_ / wan_.frame_size()] = FrameTag{FrameKind::Repair, info.layer, info.count, info.interleave, info.base_seq};
    if (wan_.transmit(addr_, frame_len)) {
      w_.counters.repairs_sent++;
      w_.counters.repair_bytes_sent += frame_len;
    } else {
      w_.counters.tx_dropped++;
      e_.tracker_->repair_lost(info);
    }
  }

 private:
  Engine& e_;
  Worker& w_;
  xsk::Port& wan_;
  uint8_t* frame_ = nullptr;
  uint64_t addr_ = 0;
};

// WAN frames back from a worker's completion ring: a data frame or a repair is now on the wire.
// Noted here, told to the tracker at the worker's next codec section (apply_done): the ring is
// also reaped inside transmits made with the codec lock held.
class Engine::Completions : public xsk::CompletionHook {
 public:
  explicit Completions(Worker& w) : w_(w) {}
  void completed(const uint64_t* addrs, uint32_t n) override {
    uint64_t now = monotonic_ns();
    uint32_t frame_size = w_.wan_rx[0]->frame_size();
    for (uint32_t i = 0; i < n; i++) {
      FrameTag& t = w_.wan_tags[addrs[i] / frame_size];
      if (t.kind != FrameKind::None) w_.done.push_back(Done{t, now});
      t.kind = FrameKind::None;
    }
  }

 private:
  Worker& w_;
};

// Rebuilt packets go to the kernel, which routes them to their host like any other.
class Engine::RecoveredOut : public fec::RecoverySink {
 public:
  RecoveredOut(Engine& e, Worker& w) : e_(e), w_(w) {}
  void recovered(const uint8_t* pkt, size_t len) override {
    if (len < kIp || (pkt[0] >> 4) != 4) {
      w_.counters.recovered_send_errors++;
      return;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, pkt + 16, 4);
    if (sendto(e_.raw_fd_, pkt, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
      w_.counters.recovered_send_errors++;
    else
      w_.counters.recovered_forwarded++;
  }

 private:
  Engine& e_;
  Worker& w_;
};

}  // namespace maelstrom::engine
