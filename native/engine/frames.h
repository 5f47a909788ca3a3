// Frame layout constants of the engine's packet path (internal to native/engine).
//
// The IPv4 header is 20 bytes wherever the engine parses or builds one: the XDP program hands
// the engine only IPv4 packets without options (IHL 5: packets with options and fragments pass
// to the kernel, bpf/gateway.bpf.c), and the engine builds its own repairs with IHL 5. The
// network-sync tracker and the codec read the IHL themselves.
#pragma once
#include <cstddef>
#include <cstdint>

namespace maelstrom::engine {

constexpr size_t kEth = 14, kIp = 20, kUdp = 8;
constexpr size_t kRepairHeaders = kEth + kIp + kUdp;  // before a repair's (or report's) payload
constexpr uint32_t kBatch = 64;                       // frames taken from a ring at once

}  // namespace maelstrom::engine
