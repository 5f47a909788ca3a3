#include "fec/bench.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "auth/envelope.h"
#include "fec/decoder.h"
#include "fec/synthetic.h"
#include "fec/xor.h"

namespace maelstrom::fec {
namespace {

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Keeps the compiler from dropping work whose result is unused.
void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

class DiscardSink : public RepairSink {
 public:
  explicit DiscardSink(size_t max) : buf_(max) {}
  uint8_t* reserve(size_t len) override { return len <= buf_.size() ? buf_.data() : nullptr; }
  void commit(size_t, const RepairInfo&) override { escape(buf_.data()); }

 private:
  std::vector<uint8_t> buf_;
};

// Seals each repair in the authentication envelope, as the engine does before sending it.
class SealSink : public RepairSink {
 public:
  explicit SealSink(size_t max) : buf_(auth::kOverhead + max) {
    uint8_t key[auth::kKeyBytes];
    auth::random_bytes(key, sizeof key);
    sender_.set_key(auth::purpose_key(key));
  }
  uint8_t* reserve(size_t len) override { return auth::kOverhead + len <= buf_.size() ? buf_.data() + auth::kHeaderBytes : nullptr; }
  void commit(size_t len, const RepairInfo&) override {
    sender_.seal(auth::Kind::Repair, buf_.data(), len);
    escape(buf_.data());
  }

 private:
  std::vector<uint8_t> buf_;
  auth::Sender sender_;
};

class StoreSink : public RepairSink {
 public:
  std::vector<std::vector<uint8_t>>* out;
  uint8_t* reserve(size_t len) override {
    out->emplace_back(len);
    return out->back().data();
  }
  void commit(size_t, const RepairInfo&) override {}
};

class CountSink : public RecoverySink {
 public:
  uint64_t n = 0;
  void recovered(const uint8_t*, size_t) override { n++; }
};

// Runs body(packets) in growing rounds until min_seconds have passed; returns bytes per second.
template <typename Body>
double rate(double min_seconds, uint64_t bytes_per_round, Body body) {
  double start = now_s(), elapsed = 0;
  uint64_t rounds = 0;
  do {
    body();
    rounds++;
    elapsed = now_s() - start;
  } while (elapsed < min_seconds);
  return double(bytes_per_round) * double(rounds) / elapsed;
}

}  // namespace

BenchResult bench_codec(const BenchConfig& config) {
  BenchResult result{};
  const size_t len = config.packet_len, n = config.pool_packets;
  std::vector<uint8_t> pool(len * n);
  for (size_t i = 0; i < n; i++) make_packet(i, len, pool.data() + i * len);
  const uint64_t round_bytes = uint64_t(len) * n;

  std::vector<uint8_t> dst(len);
  result.memcpy_GBps = rate(config.min_seconds, round_bytes, [&] {
    for (size_t i = 0; i < n; i++) {
      std::memcpy(dst.data(), pool.data() + i * len, len);
      escape(dst.data());
    }
  }) / 1e9;

  // Plain and sealed encode alternate, twice each, and each keeps its best: a figure taken while
  // the machine was busy elsewhere does not decide the ratio between them.
  Encoder encoder(config.encoder), sealed_encoder(config.encoder);
  DiscardSink discard(repair_size(kMaxCount, config.encoder.max_packet));
  SealSink seal(repair_size(kMaxCount, config.encoder.max_packet));
  uint64_t t = 0, ts = 0;
  result.encode_GBps = result.encode_sealed_GBps = 0;
  for (int round = 0; round < 2; round++) {
    result.encode_GBps = std::max(result.encode_GBps, rate(config.min_seconds, round_bytes, [&] {
      for (size_t i = 0; i < n; i++) encoder.add(pool.data() + i * len, len, t++, discard);
    }) / 1e9);
    result.encode_sealed_GBps = std::max(result.encode_sealed_GBps, rate(config.min_seconds, round_bytes, [&] {
      for (size_t i = 0; i < n; i++) sealed_encoder.add(pool.data() + i * len, len, ts++, seal);
    }) / 1e9);
  }
  result.encode_packets = encoder.stats().packets;

  // The stream a decoder sees: data and repairs in emission order, with the loss applied.
  struct Item {
    const uint8_t* p;
    uint32_t len;
    bool repair;
  };
  std::vector<std::vector<uint8_t>> repairs;
  repairs.reserve(n);
  StoreSink store;
  store.out = &repairs;
  Encoder stream_encoder(config.encoder);
  LossProcess channel(config.loss, 1, config.seed);
  std::vector<Item> items;
  uint64_t lost = 0;
  for (size_t i = 0; i < n; i++) {
    size_t before = repairs.size();
    stream_encoder.add(pool.data() + i * len, len, i, store);
    if (channel.lose()) {
      lost++;
    } else {
      items.push_back({pool.data() + i * len, uint32_t(len), false});
    }
    for (size_t k = before; k < repairs.size(); k++)
      if (!channel.lose()) items.push_back({repairs[k].data(), uint32_t(repairs[k].size()), true});
  }
  DecoderConfig dc;
  dc.max_packet = config.encoder.max_packet;
  unsigned widest = 1;
  for (unsigned i : config.encoder.interleaves) widest = i > widest ? i : widest;
  dc.window = 2 * config.encoder.r * widest;
  dc.seen = 4 * dc.window;
  CountSink recovered;
  result.decode_GBps = rate(config.min_seconds, round_bytes, [&] {
    Decoder decoder(dc);
    recovered.n = 0;
    for (const Item& it : items) {
      if (it.repair)
        decoder.on_repair(it.p, it.len, recovered);
      else
        decoder.on_data(it.p, it.len, recovered);
    }
  }) / 1e9;
  result.decode_packets = n;
  result.decode_recovered = recovered.n;
  result.decode_lost = lost;
  result.xor_impl = xor_name(xor_active());
  return result;
}

}  // namespace maelstrom::fec
