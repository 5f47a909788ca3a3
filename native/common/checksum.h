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

// A TCP or UDP checksum a host's checksum offload left partial (CHECKSUM_PARTIAL: the field holds
// the pseudo-header's sum, not complemented, for the NIC to finish; over veth or virtio nobody
// does) is completed in place: true when it was. A checksum that is right, absent or simply wrong
// is left as it is. ip points at an IPv4 header of 20 bytes; len is what the frame holds of it.
inline bool complete_partial_checksum(uint8_t* ip, size_t len) {
  uint8_t proto = ip[9];
  if (len < 20 || (proto != 6 && proto != 17) || (get16(ip + 6) & 0x3fff)) return false;
  size_t total = get16(ip + 2);
  size_t field = proto == 6 ? 16 : 6;
  if (total > len || total < 20 + field + 2) return false;
  uint8_t* l4 = ip + 20;
  size_t l4_len = total - 20;
  uint32_t pseudo = sum16(ip + 12, 8) + proto + uint32_t(l4_len);
  if (get16(l4 + field) != uint16_t(~fold(pseudo))) return false;  // not the pseudo-header's sum
  if (fold(sum16(l4, l4_len, pseudo)) == 0) return false;  // right as it is, by coincidence
  // The segment's sum with the pseudo-header's sum in the field is pseudo + data: complemented,
  // the checksum.
  uint16_t c = fold(sum16(l4, l4_len));
  put16(l4 + field, proto == 17 && c == 0 ? 0xffff : c);
  return true;
}

// True when a UDP datagram's checksum is absent (0) or right.
inline bool udp_checksum_ok(const uint8_t* ip, const uint8_t* udp, size_t udp_len) {
  return get16(udp + 6) == 0 || fold(sum16(udp, udp_len, sum16(ip + 12, 8) + 17 + uint32_t(udp_len))) == 0;
}

}  // namespace maelstrom
