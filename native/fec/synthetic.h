// Deterministic synthetic traffic and loss for the Monte Carlo model, the benchmark and the
// fuzzer: IPv4/UDP packets whose bytes follow from their sequence number, and loss processes.
#pragma once
#include <cstddef>
#include <cstdint>

namespace maelstrom::fec {

constexpr size_t kSyntheticMinLen = 36;  // IPv4 + UDP headers + the 8-byte sequence number

// Writes packet `seq` of `len` bytes (kSyntheticMinLen..65535) into out.
void make_packet(uint64_t seq, size_t len, uint8_t* out);

// The sequence number a synthetic packet carries at offset 28.
uint64_t packet_seq(const uint8_t* pkt);

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_;
};

// Loss with average rate p. burst_length <= 1: independent (iid). Otherwise a Gilbert-Elliott
// chain whose bad state loses every packet and lasts burst_length packets on average, entered
// so that the long-run loss rate is p.
class LossProcess {
 public:
  LossProcess(double p, double burst_length, uint64_t seed);
  bool lose();

 private:
  Rng rng_;
  double p_;
  bool bursty_;
  bool bad_ = false;
  double enter_bad_ = 0, leave_bad_ = 0;
};

}  // namespace maelstrom::fec
