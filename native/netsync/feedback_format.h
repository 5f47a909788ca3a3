// The feedback datagram (docs/protocol.md, "Feedback datagram"), version 2: from a gateway's
// LAN address to a sending host, how much of each of its TCP streams is network-safe. The
// TypeScript side reads it in src/feedback/format.ts. Big-endian:
//
//   0  u16 magic 0x4D46 ("MF")   2  u8 version (2)   3  u8 flags (0)
//   4  u16 entry count           6  u16 reserved (0)   8  u32 datagram sequence
//  12  count x 40-byte entries:
//       0 u32 sender address   4 u32 receiver address   8 u16 sender port   10 u16 receiver port
//      12 u32 entry flags (kFeedbackIsnGuessed)   16 u64 safe offset   24 u64 sent offset
//      32 u8 repairs sent for the newest bytes   33 u8 repairs per packet   34 reserved (0)
#pragma once
#include <cstddef>
#include <cstdint>

#include "netsync/tracker.h"

namespace maelstrom::netsync {

constexpr uint16_t kFeedbackMagic = 0x4D46;
constexpr uint8_t kFeedbackVersion = 2;
constexpr size_t kFeedbackHeaderBytes = 12;
constexpr size_t kFeedbackEntryBytes = 40;
constexpr size_t kFeedbackMaxEntries = 32;     // per datagram
constexpr uint32_t kFeedbackIsnGuessed = 1;    // entry flag: the gateway did not see the SYN

inline size_t feedback_size(size_t entries) { return kFeedbackHeaderBytes + entries * kFeedbackEntryBytes; }

// Writes a datagram of n entries at d: feedback_size(n) bytes.
void write_feedback(uint8_t* d, uint32_t seq, const FeedbackEntry* entries, size_t n);

}  // namespace maelstrom::netsync
