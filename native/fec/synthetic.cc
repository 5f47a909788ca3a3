#include "fec/synthetic.h"

#include <cstring>

#include "fec/packet_id.h"

namespace maelstrom::fec {

void make_packet(uint64_t seq, size_t len, uint8_t* out) {
  static const uint8_t kHeader[28] = {
      0x45, 0x00, 0, 0, 0, 0, 0x40, 0x00, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1,  // IPv4, DF
      0x1d, 0xb0, 0x1d, 0xb1, 0, 0, 0, 0};                                         // UDP
  std::memcpy(out, kHeader, sizeof kHeader);
  out[2] = uint8_t(len >> 8);
  out[3] = uint8_t(len);
  out[4] = uint8_t(seq >> 8);
  out[5] = uint8_t(seq);
  uint16_t udp_len = uint16_t(len - 20);
  out[24] = uint8_t(udp_len >> 8);
  out[25] = uint8_t(udp_len);
  uint16_t c = ipv4_checksum(out, 20);
  out[10] = uint8_t(c >> 8);
  out[11] = uint8_t(c);
  std::memcpy(out + 28, &seq, 8);
  Rng rng(seq * 0x2545F4914F6CDD1Dull + 1);
  size_t i = 36;
  for (; i + 8 <= len; i += 8) {
    uint64_t v = rng.next();
    std::memcpy(out + i, &v, 8);
  }
  if (i < len) {
    uint64_t v = rng.next();
    std::memcpy(out + i, &v, len - i);
  }
}

uint64_t packet_seq(const uint8_t* pkt) {
  uint64_t seq;
  std::memcpy(&seq, pkt + 28, 8);
  return seq;
}

LossProcess::LossProcess(double p, double burst_length, uint64_t seed)
    : rng_(seed), p_(p), bursty_(burst_length > 1 && p > 0 && p < 1) {
  if (bursty_) {
    leave_bad_ = 1.0 / burst_length;
    enter_bad_ = p * leave_bad_ / (1 - p);
  }
}

bool LossProcess::lose() {
  if (!bursty_) return p_ > 0 && rng_.uniform() < p_;
  bad_ = bad_ ? rng_.uniform() >= leave_bad_ : rng_.uniform() < enter_bad_;
  return bad_;
}

}  // namespace maelstrom::fec
