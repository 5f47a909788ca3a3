// A UDP traffic generator for the engine benchmark: raw Ethernet frames at the highest rate an
// AF_PACKET socket reaches (sendmmsg batches, qdisc bypassed), each with a distinct payload.
#pragma once
#include <cstdint>
#include <string>

namespace maelstrom::lab {

struct BlastConfig {
  std::string ifname;
  uint8_t dst_mac[6] = {};
  uint8_t src_mac[6] = {};
  uint32_t src_ip = 0, dst_ip = 0;  // network order
  uint16_t dst_port = 9;
  uint32_t ip_len = 1500;           // IP packet length (frame = 14 more)
  double seconds = 2;
};

struct BlastResult {
  uint64_t sent = 0;
  uint64_t errors = 0;
  double seconds = 0;
};

// Blocks for config.seconds. Returns -errno in *err when the socket cannot be opened.
BlastResult blast(const BlastConfig& config, int* err);

}  // namespace maelstrom::lab
