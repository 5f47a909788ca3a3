// One AF_XDP socket with a UMEM of its own, on one queue of one interface: the fill ring kept
// full, frames received and transmitted in batches, need_wakeup honoured, completions reclaimed.
// Zero-copy is tried first, copy mode after; zero_copy() says which was granted.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include <xdp/xsk.h>
}

namespace maelstrom::xsk {

struct PortConfig {
  std::string ifname;
  uint32_t queue = 0;
  // UMEM frames; the fill and completion rings take half, RX and TX a quarter each. Deep rings
  // ride out the engine thread being descheduled for a few milliseconds at line rate.
  uint32_t frames = 16384;
  uint32_t frame_size = 2048;  // bytes per frame: 2048 for MTUs to 2034, else 4096
  bool force_copy = false;
};

struct RxFrame {
  uint64_t addr;
  uint8_t* data;
  uint32_t len;
};

// Told which transmitted frames came back on the completion ring, before they are reused.
class CompletionHook {
 public:
  virtual ~CompletionHook() = default;
  virtual void completed(const uint64_t* addrs, uint32_t n) = 0;
};

class Port {
 public:
  Port() = default;
  ~Port() { close(); }
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  // 0 or -errno. The socket is not in any XSKMAP yet: see fd().
  int open(const PortConfig& config);
  void close();

  int fd() const { return xsk_ ? xsk_socket__fd(xsk_) : -1; }
  bool zero_copy() const { return zero_copy_; }
  uint32_t frame_size() const { return config_.frame_size; }

  // Up to max received frames; each must be given back with recycle() once the caller is done
  // with its bytes (the engine copies what it forwards into the other interface's UMEM).
  uint32_t receive(RxFrame* out, uint32_t max);
  void recycle(uint64_t addr) { free_.push_back(addr); }

  // A free frame to build an outgoing packet in, or nullptr when none is free (the caller counts).
  uint8_t* tx_buffer(uint64_t* addr);
  // Queues a frame of this UMEM for transmission; false (and the frame freed) when the TX ring
  // is full. flush_tx() hands the batch to the kernel.
  bool transmit(uint64_t addr, uint32_t len);
  void flush_tx();

  // Reclaims transmitted frames; returns how many completed.
  uint32_t complete();
  void set_completion_hook(CompletionHook* hook) { hook_ = hook; }
  // Frames handed to the TX ring whose completion has not come back yet.
  uint32_t tx_outstanding() const { return tx_outstanding_; }
  // Keeps the fill ring stocked from free frames.
  void refill();

  // The kernel's XDP_STATISTICS for this socket: frames dropped for want of ring space.
  struct KernelStats {
    uint64_t rx_dropped = 0, rx_ring_full = 0, fill_ring_empty = 0, tx_invalid = 0;
  };
  KernelStats kernel_stats() const;

 private:
  PortConfig config_;
  void* area_ = nullptr;
  size_t area_size_ = 0;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fill_{};
  xsk_ring_cons comp_{};
  xsk_ring_cons rx_{};
  xsk_ring_prod tx_{};
  std::vector<uint64_t> free_;
  uint32_t tx_pending_ = 0;
  uint32_t tx_outstanding_ = 0;
  CompletionHook* hook_ = nullptr;
  bool zero_copy_ = false;
};

}  // namespace maelstrom::xsk
