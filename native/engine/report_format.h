// The receiver report (docs/protocol.md, "Receiver report"), version 2: what a gateway's
// decoder sees of its peer's direction of the WAN, for the peer's --auto, and which keys it
// seals and accepts with, for a rotation. UDP to the peer's repair port, every 100 ms; all
// counters cumulative, so a lost report loses nothing. Big-endian:
//
//   0  u16 magic 0x4D52 ("MR")   2  u8 version (2)   3  u8 flags (0)
//   4  u32 newest epoch of the peer's repairs decoded   8  u32 decoder window (packets)
//  12  u32 reserved (0)
//  16  u64 sampled   24  u64 missing   32  u64 bursts   40  u64 recovered   48  u64 unrecoverable
//  56  u32 key sealed with   60  u32 key accepted   64  u32 other key accepted (0: none)
#pragma once
#include <cstddef>
#include <cstdint>

namespace maelstrom::engine {

constexpr uint16_t kReportMagic = 0x4D52;
constexpr uint8_t kReportVersion = 2;
constexpr size_t kReportBytes = 68;
constexpr uint64_t kReportIntervalNs = 100'000'000;

struct ReceiverReport {
  uint32_t epoch = 0;   // the newest epoch of the peer's repairs decoded
  uint32_t window = 0;  // packets the decoder keeps
  uint64_t sampled = 0, missing = 0, bursts = 0;  // the lowest layer's loss sample
  uint64_t recovered = 0, unrecoverable = 0;
  uint32_t send_key = 0;        // 0 without a key
  uint32_t accepts[2] = {};
};

// Writes kReportBytes at p.
void write_report(uint8_t* p, const ReceiverReport& r);
// False for a datagram of another length, version or flags.
bool read_report(const uint8_t* p, size_t len, ReceiverReport* r);
// A bare datagram (from a gateway without a key) that says it is a report.
bool is_report(const uint8_t* p, size_t len);

}  // namespace maelstrom::engine
