// The lab's WAN delay line (the kernel has no netem): an L2 bridge between two interfaces that
// holds every frame for a one-way delay before sending it on, in both directions. It runs in
// the WAN namespace on AF_PACKET sockets, on a thread of its own, with nanosecond timers.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

namespace maelstrom::lab {

struct DelayLineConfig {
  int ifindex_a = 0;
  int ifindex_b = 0;
  uint64_t delay_ns = 0;
  size_t max_queue_bytes = 256u << 20;  // per direction; frames beyond it are dropped and counted
};

struct DirectionStats {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t queue_drops = 0;   // queue full
  uint64_t send_errors = 0;
  uint64_t late_sum_ns = 0;   // how long after its deadline each frame went out
  uint64_t late_max_ns = 0;
  uint64_t late_over_100us = 0;  // frames that left more than 0.1 ms after their deadline
  uint64_t socket_drops = 0;     // dropped by the kernel before the delay line read them
};

class DelayLine {
 public:
  DelayLine() = default;
  ~DelayLine() { stop(); }
  DelayLine(const DelayLine&) = delete;
  DelayLine& operator=(const DelayLine&) = delete;

  // 0, or -errno from opening the sockets; the thread runs until stop().
  int start(const DelayLineConfig& config);
  void stop();
  void set_delay_ns(uint64_t ns) { delay_ns_.store(ns); }
  uint64_t delay_ns() const { return delay_ns_.load(); }
  // a_to_b, b_to_a: a consistent copy.
  void stats(DirectionStats* a_to_b, DirectionStats* b_to_a);

 private:
  struct Frame {
    uint64_t deadline;
    std::vector<uint8_t> bytes;
  };
  struct Direction {
    int in = -1, out = -1;
    std::deque<Frame> queue;
    size_t queued_bytes = 0;
    DirectionStats stats;
  };

  void run();
  void receive(Direction& d, uint64_t now);
  void send_due(Direction& d, uint64_t now);

  DelayLineConfig config_;
  std::atomic<uint64_t> delay_ns_{0};
  std::atomic<bool> running_{false};
  std::thread thread_;
  int fd_a_ = -1, fd_b_ = -1;
  Direction ab_, ba_;
  std::vector<std::vector<uint8_t>> spare_;  // recycled frame buffers
  std::atomic_flag stats_lock_ = ATOMIC_FLAG_INIT;
};

}  // namespace maelstrom::lab
