// Codec throughput on one core: encode (hash + c XORs + repair serialisation), the same with
// every repair sealed in the authentication envelope, decode at a given loss rate, and memcpy
// of the same packet stream as the yardstick, in one run.
#pragma once
#include <cstdint>

#include "fec/encoder.h"

namespace maelstrom::fec {

struct BenchConfig {
  EncoderConfig encoder;
  unsigned packet_len = 1500;
  unsigned pool_packets = 65536;  // distinct packets cycled through: ~98 MB at 1500 bytes
  double loss = 0.01;
  double min_seconds = 0.5;  // per figure
  uint64_t seed = 1;
};

struct BenchResult {
  double encode_GBps;
  double encode_sealed_GBps;  // repairs sealed (GMAC) as the engine sends them
  double decode_GBps;
  double memcpy_GBps;
  uint64_t encode_packets;
  uint64_t decode_packets;
  uint64_t decode_recovered;
  uint64_t decode_lost;
  const char* xor_impl;
};

BenchResult bench_codec(const BenchConfig& config);

}  // namespace maelstrom::fec
