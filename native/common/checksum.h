// The Internet checksum (RFC 1071) of the headers the engine builds: IPv4 and UDP.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/bytes.h"

namespace maelstrom {

// One's complement sum of n bytes in 16-bit words, added to `sum`, not folded.
inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += get16(p + i);
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}

inline uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// UDP checksum over the IPv4 pseudo-header; ip points at an IPv4 header (the addresses at 12).
inline uint16_t udp_checksum(const uint8_t* ip, const uint8_t* udp, size_t udp_len) {
  uint32_t sum = sum16(ip + 12, 8);
  sum += 17 + uint32_t(udp_len);
  uint16_t c = fold(sum16(udp, udp_len, sum));
  return c ? c : 0xffff;
}

// True when a UDP datagram's checksum is absent (0) or right.
inline bool udp_checksum_ok(const uint8_t* ip, const uint8_t* udp, size_t udp_len) {
  return get16(udp + 6) == 0 || fold(sum16(udp, udp_len, sum16(ip + 12, 8) + 17 + uint32_t(udp_len))) == 0;
}

}  // namespace maelstrom
