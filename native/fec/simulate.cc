#include "fec/simulate.h"

#include <cstring>
#include <vector>

#include "fec/synthetic.h"

namespace maelstrom::fec {
namespace {

enum : uint8_t { kArrived = 0, kLost = 1, kRebuilt = 2 };

class QueueSink : public RepairSink {
 public:
  std::vector<std::vector<uint8_t>> repairs;
  size_t used = 0;
  uint8_t* reserve(size_t len) override {
    if (used == repairs.size()) repairs.emplace_back();
    repairs[used].resize(len);
    return repairs[used].data();
  }
  void commit(size_t, const RepairInfo&) override { used++; }
};

class CheckingSink : public RecoverySink {
 public:
  CheckingSink(std::vector<uint8_t>& state, SimResult& result) : state_(state), result_(result) {}
  void recovered(const uint8_t* pkt, size_t len) override {
    uint64_t seq = len >= kSyntheticMinLen ? packet_seq(pkt) : UINT64_MAX;
    if (seq >= state_.size()) {
      result_.wrong_output++;
      return;
    }
    expected_.resize(len);
    make_packet(seq, len, expected_.data());
    if (std::memcmp(expected_.data(), pkt, len) != 0) {
      result_.wrong_output++;
    } else if (state_[seq] != kLost) {
      result_.repeated_output++;
    } else {
      state_[seq] = kRebuilt;
      result_.recovered++;
    }
  }

 private:
  std::vector<uint8_t>& state_;
  SimResult& result_;
  std::vector<uint8_t> expected_;
};

}  // namespace

SimResult simulate(const SimConfig& config) {
  SimResult result;
  Encoder encoder(config.encoder);
  Decoder decoder(config.decoder);
  LossProcess channel(config.loss, config.burst_length, config.seed);
  Rng lengths(config.seed ^ 0x5851F42D4C957F2Dull);
  std::vector<uint8_t> state(config.packets, kArrived);
  std::vector<uint8_t> pkt(config.max_len);
  QueueSink repairs;
  CheckingSink out(state, result);

  auto send_repairs = [&] {
    for (size_t i = 0; i < repairs.used; i++) {
      result.repairs++;
      if (config.lose_repairs && channel.lose()) {
        result.repairs_lost++;
        continue;
      }
      decoder.on_repair(repairs.repairs[i].data(), repairs.repairs[i].size(), out);
    }
    repairs.used = 0;
  };

  unsigned span = config.max_len - config.min_len + 1;
  for (uint64_t seq = 0; seq < config.packets; seq++) {
    size_t len = config.min_len + lengths.next() % span;
    make_packet(seq, len, pkt.data());
    uint64_t now = seq * config.packet_interval_ns;
    encoder.poll(now, repairs);
    encoder.add(pkt.data(), len, now, repairs);
    result.data++;
    if (channel.lose()) {
      state[seq] = kLost;
      result.data_lost++;
    } else {
      decoder.on_data(pkt.data(), len, out);
    }
    send_repairs();
  }
  encoder.flush(repairs);
  send_repairs();
  result.unrecovered = result.data_lost - result.recovered;
  result.decoder = decoder.stats();
  return result;
}

}  // namespace maelstrom::fec
