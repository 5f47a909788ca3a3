// Packet identity by content (DESIGN decision 4).
//
// A packet is named by a 64-bit hash of its bytes with the fields that routers may change
// normalised to zero: IPv4 TOS, TTL and header checksum; IPv6 traffic class and hop limit.
// The recipe entry carries the length and the mutable values as the encoder saw them, so a
// recovered packet is restored byte-exact (IPv4 checksum recomputed). Anything that is not a
// well-formed IPv4/IPv6 header is hashed raw and has no mutable fields; that includes IPv4
// headers whose checksum is wrong, since a recomputed checksum would not restore them exactly.
#pragma once
#include <cstddef>
#include <cstdint>

namespace maelstrom::fec {

enum class PacketKind : uint8_t { Opaque, Ipv4, Ipv6 };

struct PacketId {
  uint64_t hash;  // never 0: 0 marks an empty slot in the hash indexes
  uint16_t len;
  uint8_t ttl;  // IPv4 TTL or IPv6 hop limit
  uint8_t tos;  // IPv4 TOS or IPv6 traffic class
  PacketKind kind;
};

// IPv4 needs version 4, a plausible IHL and a valid header checksum; IPv6 version 6 and 40
// bytes; the rest is opaque.
PacketKind classify(const uint8_t* pkt, size_t len);

// len must be in 1..65535.
PacketId identify(const uint8_t* pkt, size_t len);

// acc ^= normalise(pkt): the packet's bytes with its mutable fields read as zero.
void xor_normalised(uint8_t* acc, const uint8_t* pkt, size_t len);

// acc[m] ^= pkt[m] for each mutable byte m: after acc ^= pkt (or acc = pkt) this leaves acc
// holding the normalised packet's contribution.
void cancel_mutable(uint8_t* acc, const uint8_t* pkt, PacketKind kind);

// The same into several accumulators at once, reading the packet once; kind from identify().
void xor_normalised_many(uint8_t* const* accs, unsigned n, const uint8_t* pkt, size_t len, PacketKind kind);

// Turns a normalised IPv4 or IPv6 packet (by its version nibble: a normalised checksum is 0)
// back into the original: writes the mutable fields and, for IPv4, the header checksum.
void restore(uint8_t* pkt, size_t len, uint8_t ttl, uint8_t tos);

// The one's-complement sum used by the IPv4 header checksum, over an even-or-odd range.
uint16_t ipv4_checksum(const uint8_t* hdr, size_t len);

}  // namespace maelstrom::fec
