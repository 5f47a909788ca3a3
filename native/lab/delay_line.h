// The lab's WAN delay line (the kernel has no netem): an L2 bridge between two interfaces that
// holds every frame for a one-way delay before sending it on, in both directions. It runs in
// the WAN namespace on AF_PACKET sockets, on a thread of its own, with nanosecond timers.
// With a rate it is also the link's bottleneck: a frame waits in a queue of a set depth (bytes)
// until the link has serialised the frames before it, then for the delay; a frame that finds
// the queue full is dropped (tail drop), as a router's egress queue would.
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
  uint64_t rate_bps = 0;                // the link's rate, bits per second of Ethernet frame; 0: no limit
  size_t queue_bytes = 0;               // with a rate: the bottleneck queue's depth (frames waiting to be serialised)
  int realtime_priority = 0;            // > 0: the thread runs SCHED_FIFO at this priority (root)
};

// Lateness histogram: bucket 0 holds frames under 1 us late; above it, four buckets per power
// of two (about 19% wide), so a percentile is known within a bucket's width.
constexpr int kLateBuckets = 128;
int late_bucket(uint64_t late_ns);
uint64_t late_bucket_floor_ns(int bucket);

struct DirectionStats {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t queue_drops = 0;   // queue full
  uint64_t send_errors = 0;
  uint64_t late_sum_ns = 0;   // how long after its deadline each frame went out
  uint64_t late_max_ns = 0;
  uint64_t late_over_100us = 0;  // frames that left more than 0.1 ms after their deadline
  uint64_t socket_drops = 0;     // dropped by the kernel before the delay line read them
  uint64_t tail_drops = 0;       // the bottleneck queue (with a rate) was full
  uint64_t queue_max_bytes = 0;  // the bottleneck queue at its deepest
  uint64_t late_hist[kLateBuckets] = {};
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
  void set_rate(uint64_t bps, size_t queue_bytes) {
    rate_bps_.store(bps);
    queue_bytes_.store(queue_bytes);
  }
  uint64_t rate_bps() const { return rate_bps_.load(); }
  size_t queue_bytes() const { return queue_bytes_.load(); }
  // The scheduling policy the thread got (SCHED_OTHER or SCHED_FIFO), and the error asking
  // for real time gave, if any.
  int policy() const { return policy_.load(); }
  int realtime_error() const { return realtime_error_.load(); }
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
    uint64_t busy_until = 0;  // with a rate: when the link has serialised every frame taken so far
    DirectionStats stats;
  };

  void run();
  void receive(Direction& d, uint64_t now);
  void send_due(Direction& d, uint64_t now);

  DelayLineConfig config_;
  std::atomic<uint64_t> delay_ns_{0};
  std::atomic<uint64_t> rate_bps_{0};
  std::atomic<size_t> queue_bytes_{0};
  std::atomic<int> policy_{0};
  std::atomic<int> realtime_error_{0};
  std::atomic<bool> running_{false};
  std::thread thread_;
  int fd_a_ = -1, fd_b_ = -1;
  Direction ab_, ba_;
  std::vector<std::vector<uint8_t>> spare_;  // recycled frame buffers
  std::atomic_flag stats_lock_ = ATOMIC_FLAG_INIT;
};

}  // namespace maelstrom::lab
