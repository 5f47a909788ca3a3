// Monte Carlo run of the real encoder and decoder over a lossy channel, the measured half of
// the redundancy model (src/model/). Data and repair packets share one loss process in the
// order the encoder emits them; the result counts, from ground truth, lost data packets that
// were never rebuilt.
#pragma once
#include <cstdint>

#include "fec/decoder.h"
#include "fec/encoder.h"

namespace maelstrom::fec {

struct SimConfig {
  EncoderConfig encoder;
  DecoderConfig decoder;
  uint64_t packets = 1'000'000;
  unsigned min_len = 64;
  unsigned max_len = 1500;
  double loss = 0.01;
  double burst_length = 1;  // <= 1: iid
  bool lose_repairs = true;
  uint64_t seed = 1;
  uint64_t packet_interval_ns = 1000;
};

struct SimResult {
  uint64_t data = 0;
  uint64_t data_lost = 0;
  uint64_t recovered = 0;     // lost data packets rebuilt, each counted once
  uint64_t unrecovered = 0;   // data_lost - recovered
  uint64_t repairs = 0;
  uint64_t repairs_lost = 0;
  uint64_t wrong_output = 0;  // rebuilt bytes differing from the original: must stay 0
  uint64_t repeated_output = 0;  // outputs of packets that arrived or were already rebuilt: must stay 0
  DecoderStats decoder;
};

SimResult simulate(const SimConfig& config);

}  // namespace maelstrom::fec
