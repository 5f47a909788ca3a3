#include "fec/packet_id.h"

#include <cstring>

#include "fec/xor.h"

#include <xxh_x86dispatch.h>
#include <xxhash.h>

namespace maelstrom::fec {
namespace {

constexpr size_t kIpv4Tos = 1, kIpv4Ttl = 8, kIpv4Csum = 10;
constexpr size_t kIpv6Hop = 7;
constexpr size_t kIpv6Header = 40;

}  // namespace

namespace {

// The header's shape alone, as for a normalised packet whose checksum field is zero.
PacketKind shape(const uint8_t* pkt, size_t len) {
  if (len >= 20 && (pkt[0] >> 4) == 4) {
    size_t ihl = size_t(pkt[0] & 0x0f) * 4;
    if (ihl >= 20 && ihl <= len) return PacketKind::Ipv4;
  } else if (len >= kIpv6Header && (pkt[0] >> 4) == 6) {
    return PacketKind::Ipv6;
  }
  return PacketKind::Opaque;
}

}  // namespace

PacketKind classify(const uint8_t* pkt, size_t len) {
  PacketKind kind = shape(pkt, len);
  if (kind == PacketKind::Ipv4 && ipv4_checksum(pkt, size_t(pkt[0] & 0x0f) * 4) != 0) return PacketKind::Opaque;
  return kind;
}

PacketId identify(const uint8_t* pkt, size_t len) {
  PacketId id{0, uint16_t(len), 0, 0, classify(pkt, len)};
  uint8_t head[kIpv6Header];
  size_t head_len = 0;
  switch (id.kind) {
    case PacketKind::Ipv4:
      head_len = 20;
      std::memcpy(head, pkt, head_len);
      id.tos = head[kIpv4Tos];
      id.ttl = head[kIpv4Ttl];
      head[kIpv4Tos] = head[kIpv4Ttl] = head[kIpv4Csum] = head[kIpv4Csum + 1] = 0;
      break;
    case PacketKind::Ipv6:
      head_len = kIpv6Header;
      std::memcpy(head, pkt, head_len);
      id.tos = uint8_t((head[0] & 0x0f) << 4 | head[1] >> 4);
      id.ttl = head[kIpv6Hop];
      head[0] &= 0xf0;
      head[1] &= 0x0f;
      head[kIpv6Hop] = 0;
      break;
    case PacketKind::Opaque:
      break;
  }
  // The normalised head seeds the hash of the rest; the length is part of the head's hash.
  uint64_t seed = XXH3_64bits_withSeed(head, head_len, len);
  // The long part goes through libxxhash's run-time dispatch (AVX2 where the CPU has it).
  uint64_t h = XXH3_64bits_withSeed_dispatch(pkt + head_len, len - head_len, seed);
  id.hash = h ? h : 1;
  return id;
}

// XOR-ing a mutable byte in again takes its contribution back out, which is XOR-ing a zero.
void cancel_mutable(uint8_t* acc, const uint8_t* pkt, PacketKind kind) {
  switch (kind) {
    case PacketKind::Ipv4:
      acc[kIpv4Tos] ^= pkt[kIpv4Tos];
      acc[kIpv4Ttl] ^= pkt[kIpv4Ttl];
      acc[kIpv4Csum] ^= pkt[kIpv4Csum];
      acc[kIpv4Csum + 1] ^= pkt[kIpv4Csum + 1];
      break;
    case PacketKind::Ipv6:
      acc[0] ^= pkt[0] & 0x0f;
      acc[1] ^= pkt[1] & 0xf0;
      acc[kIpv6Hop] ^= pkt[kIpv6Hop];
      break;
    case PacketKind::Opaque:
      break;
  }
}

void xor_normalised(uint8_t* acc, const uint8_t* pkt, size_t len) {
  xor_into(acc, pkt, len);
  cancel_mutable(acc, pkt, classify(pkt, len));
}

void xor_normalised_many(uint8_t* const* accs, unsigned n, const uint8_t* pkt, size_t len, PacketKind kind) {
  xor_into_many(accs, n, pkt, len);
  for (unsigned k = 0; k < n; k++) cancel_mutable(accs[k], pkt, kind);
}

uint16_t ipv4_checksum(const uint8_t* hdr, size_t len) {
  uint32_t sum = 0;
  size_t i = 0;
  for (; i + 1 < len; i += 2) sum += uint32_t(hdr[i]) << 8 | hdr[i + 1];
  if (i < len) sum += uint32_t(hdr[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

void restore(uint8_t* pkt, size_t len, uint8_t ttl, uint8_t tos) {
  switch (shape(pkt, len)) {
    case PacketKind::Ipv4: {
      pkt[kIpv4Tos] = tos;
      pkt[kIpv4Ttl] = ttl;
      pkt[kIpv4Csum] = pkt[kIpv4Csum + 1] = 0;
      size_t ihl = size_t(pkt[0] & 0x0f) * 4;
      uint16_t c = ipv4_checksum(pkt, ihl);
      pkt[kIpv4Csum] = uint8_t(c >> 8);
      pkt[kIpv4Csum + 1] = uint8_t(c);
      break;
    }
    case PacketKind::Ipv6:
      pkt[0] = uint8_t((pkt[0] & 0xf0) | (tos >> 4));
      pkt[1] = uint8_t((pkt[1] & 0x0f) | (tos << 4));
      pkt[kIpv6Hop] = ttl;
      break;
    case PacketKind::Opaque:
      break;
  }
}

}  // namespace maelstrom::fec
