// UDP traffic generators for the engine benchmark, each frame with a distinct payload:
// - blast(): raw Ethernet frames at the highest rate one AF_PACKET socket reaches (sendmmsg
//   batches, qdisc bypassed);
// - xdp_blast(): bpf/lab_gen.bpf.c's program run with BPF_F_TEST_XDP_LIVE_FRAMES by a thread on
//   each of `cpus`, each transmitting frames from a kernel page pool with XDP_TX: no skb, no
//   socket, one syscall per run of frames (runs grow to about 50 ms).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace maelstrom::lab {

struct BlastConfig {
  std::string ifname;
  uint8_t dst_mac[6] = {};
  uint8_t src_mac[6] = {};
  uint32_t src_ip = 0, dst_ip = 0;  // network order
  uint16_t dst_port = 9;
  uint32_t ip_len = 1500;           // IP packet length (frame = 14 more)
  double seconds = 2;
  // xdp_blast() only
  std::string xdp_object;           // out/bpf/lab_gen.bpf.o
  std::vector<int> cpus = {0};      // a thread pinned to each; veth hands a frame sent on CPU k to
                                    // its peer's RX queue k mod (queue count)
};

struct BlastResult {
  uint64_t sent = 0;
  uint64_t errors = 0;
  double seconds = 0;
};

// Both block for config.seconds. blast() returns -errno in *err when the socket cannot be
// opened; xdp_blast() when the program cannot be loaded or run (*what says which step).
BlastResult blast(const BlastConfig& config, int* err);
BlastResult xdp_blast(const BlastConfig& config, int* err, std::string* what);

}  // namespace maelstrom::lab
