// The repair packet, the UDP payload sent from gateway to peer gateway (docs/protocol.md).
// All fields big-endian.
//
//   0  u16 magic 0x4D4C ("ML")     2  u8 version (1)     3  u8 flags (0 in version 1)
//   4  u32 config epoch
//   8  u32 base sequence: encoder sequence number of the first covered packet
//  12  u8  layer                  13  u8 count (recipe entries, 1..255)
//  14  u16 interleave             16  u16 bin (< interleave)
//  18  u16 XOR length (= longest covered packet)
//  20  u32 recipe check: low 32 bits of XXH3-64 over bytes 0..19 and the recipe entries
//  24  count x recipe entry: u64 hash, u16 length, u8 ttl/hop limit, u8 tos/traffic class
//  24 + 12 count: XOR payload, XOR length bytes
// The payload needs no check of its own: a rebuilt packet must hash to its recipe entry. The
// recipe check covers what that hash cannot: the mutable fields it leaves out.
// Covered packet k (0-based) has sequence number base + k * interleave.
#pragma once
#include <cstddef>
#include <cstdint>

namespace maelstrom::fec {

constexpr uint16_t kRepairMagic = 0x4D4C;
constexpr uint8_t kRepairVersion = 1;
constexpr size_t kRepairHeaderSize = 24;
constexpr size_t kRecipeEntrySize = 12;
constexpr size_t kRecipeCheckOffset = 20;
constexpr unsigned kMaxLayers = 16;
constexpr unsigned kMaxCount = 255;

struct RepairHeader {
  uint8_t flags;
  uint32_t epoch;
  uint32_t base_seq;
  uint8_t layer;
  uint8_t count;
  uint16_t interleave;
  uint16_t bin;
  uint16_t xor_len;
};

struct RecipeEntry {
  uint64_t hash;
  uint16_t len;
  uint8_t ttl;
  uint8_t tos;
};

enum class ParseError : uint8_t {
  None = 0,
  Truncated,   // shorter than its header, or than count and XOR length say
  BadMagic,
  BadVersion,
  BadFlags,
  BadCount,    // zero entries
  BadLayout,   // layer, interleave or bin out of range
  BadLength,   // XOR length zero or over the maximum packet size, or trailing bytes
  BadEntry,    // an entry's length is zero or over the XOR length, or none reaches it
  BadCheck,    // recipe check does not match header and entries
  Count_
};

const char* parse_error_name(ParseError e);

struct RepairView {
  RepairHeader header;
  const uint8_t* entries;  // header.count entries of kRecipeEntrySize bytes
  const uint8_t* payload;  // header.xor_len bytes
};

inline size_t repair_size(unsigned count, size_t xor_len) {
  return kRepairHeaderSize + count * kRecipeEntrySize + xor_len;
}

// Checks every length and count against len before trusting it.
ParseError parse_repair(const uint8_t* buf, size_t len, size_t max_packet, RepairView* out);

void write_repair_header(uint8_t* out, const RepairHeader& h);
void write_entry(uint8_t* out, const RecipeEntry& e);
// Fills in the recipe check once header and entries are written.
void seal_repair(uint8_t* out, unsigned count);
RecipeEntry read_entry(const uint8_t* entries, unsigned index);

}  // namespace maelstrom::fec
