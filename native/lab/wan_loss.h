// The lab's WAN loss: loads bpf/wan_emu.bpf.o with libbpf and attaches it to interfaces of the
// caller's network namespace (native XDP, generic on request). Detaches on close.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

struct bpf_object;

namespace maelstrom::lab {

struct WanLossSettings {
  bool killed = false;
  double loss = 0;          // average loss probability
  double burst_length = 1;  // mean burst in packets; <= 1: iid
  uint32_t drop_next = 0;   // an exact burst: the next n frames...
  uint16_t spare_port = 0;  // ...except UDP to this port (host order; 0: none)
};

class WanLoss {
 public:
  WanLoss() = default;
  ~WanLoss() { close(); }
  WanLoss(const WanLoss&) = delete;
  WanLoss& operator=(const WanLoss&) = delete;

  // 0 or -errno.
  int open(const std::string& object_path);
  int attach(int ifindex, bool generic);
  int set(const WanLossSettings& s);
  // passed, dropped summed over CPUs.
  int counters(uint64_t* passed, uint64_t* dropped);
  void close();

 private:
  bpf_object* obj_ = nullptr;
  int prog_fd_ = -1, config_fd_ = -1, stats_fd_ = -1;
  std::vector<std::pair<int, uint32_t>> attached_;  // ifindex, flags
};

}  // namespace maelstrom::lab
