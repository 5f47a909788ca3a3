#include "fec/repair_format.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include "common/bytes.h"

namespace maelstrom::fec {
namespace {

uint32_t recipe_check(const uint8_t* buf, unsigned count) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, buf, kRecipeCheckOffset);
  XXH3_64bits_update(&state, buf + kRepairHeaderSize, size_t(count) * kRecipeEntrySize);
  return uint32_t(XXH3_64bits_digest(&state));
}

}  // namespace

const char* parse_error_name(ParseError e) {
  switch (e) {
    case ParseError::None: return "none";
    case ParseError::Truncated: return "truncated";
    case ParseError::BadMagic: return "bad_magic";
    case ParseError::BadVersion: return "bad_version";
    case ParseError::BadFlags: return "bad_flags";
    case ParseError::BadCount: return "bad_count";
    case ParseError::BadLayout: return "bad_layout";
    case ParseError::BadLength: return "bad_length";
    case ParseError::BadEntry: return "bad_entry";
    case ParseError::BadCheck: return "bad_check";
    case ParseError::Count_: break;
  }
  return "unknown";
}

ParseError parse_repair(const uint8_t* buf, size_t len, size_t max_packet, RepairView* out) {
  if (len < kRepairHeaderSize) return ParseError::Truncated;
  if (get16(buf) != kRepairMagic) return ParseError::BadMagic;
  if (buf[2] != kRepairVersion) return ParseError::BadVersion;
  RepairHeader& h = out->header;
  h.flags = buf[3];
  if (h.flags != 0) return ParseError::BadFlags;
  h.epoch = get32(buf + 4);
  h.base_seq = get32(buf + 8);
  h.layer = buf[12];
  h.count = buf[13];
  h.interleave = get16(buf + 14);
  h.bin = get16(buf + 16);
  h.xor_len = get16(buf + 18);
  if (h.count == 0) return ParseError::BadCount;
  if (h.layer >= kMaxLayers || h.interleave == 0 || h.bin >= h.interleave) return ParseError::BadLayout;
  if (h.xor_len == 0 || h.xor_len > max_packet) return ParseError::BadLength;
  size_t want = repair_size(h.count, h.xor_len);
  if (len < want) return ParseError::Truncated;
  if (len > want) return ParseError::BadLength;
  out->entries = buf + kRepairHeaderSize;
  out->payload = out->entries + size_t(h.count) * kRecipeEntrySize;
  uint16_t longest = 0;
  for (unsigned k = 0; k < h.count; k++) {
    uint16_t l = get16(out->entries + k * kRecipeEntrySize + 8);
    if (l == 0 || l > h.xor_len) return ParseError::BadEntry;
    if (l > longest) longest = l;
  }
  if (longest != h.xor_len) return ParseError::BadEntry;
  if (get32(buf + kRecipeCheckOffset) != recipe_check(buf, h.count)) return ParseError::BadCheck;
  return ParseError::None;
}

void write_repair_header(uint8_t* out, const RepairHeader& h) {
  put16(out, kRepairMagic);
  out[2] = kRepairVersion;
  out[3] = h.flags;
  put32(out + 4, h.epoch);
  put32(out + 8, h.base_seq);
  out[12] = h.layer;
  out[13] = h.count;
  put16(out + 14, h.interleave);
  put16(out + 16, h.bin);
  put16(out + 18, h.xor_len);
  put32(out + kRecipeCheckOffset, 0);
}

void seal_repair(uint8_t* out, unsigned count) { put32(out + kRecipeCheckOffset, recipe_check(out, count)); }

void write_entry(uint8_t* out, const RecipeEntry& e) {
  put64(out, e.hash);
  put16(out + 8, e.len);
  out[10] = e.ttl;
  out[11] = e.tos;
}

RecipeEntry read_entry(const uint8_t* entries, unsigned index) {
  const uint8_t* p = entries + size_t(index) * kRecipeEntrySize;
  return RecipeEntry{get64(p), get16(p + 8), p[10], p[11]};
}

}  // namespace maelstrom::fec
