// libFuzzer target: a real stream (synthetic packets through the real encoder) delivered in an
// order, with losses, duplicates and corrupted repairs that the fuzz input chooses. Oracle:
// every packet the decoder outputs is byte-identical to an original that was not delivered,
// and none is output twice.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fec/decoder.h"
#include "fec/encoder.h"
#include "fec/packet_id.h"
#include "fec/synthetic.h"

using namespace maelstrom::fec;

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    n--;
    return *p++;
  }
};

class Collect : public RepairSink {
 public:
  std::vector<std::vector<uint8_t>> repairs;
  uint8_t* reserve(size_t len) override {
    repairs.emplace_back(len);
    return repairs.back().data();
  }
  void commit(size_t, const RepairInfo&) override {}
};

class Oracle : public RecoverySink {
 public:
  std::vector<std::vector<uint8_t>>* originals;
  std::vector<uint8_t>* state;  // 0 not delivered, 1 delivered, 2 output by the decoder
  void recovered(const uint8_t* pkt, size_t len) override {
    if (len < kSyntheticMinLen) abort();
    uint64_t seq = packet_seq(pkt);
    if (seq >= originals->size()) abort();
    const std::vector<uint8_t>& want = (*originals)[seq];
    if (want.size() != len || std::memcmp(want.data(), pkt, len) != 0) abort();
    if ((*state)[seq] != 0) abort();
    (*state)[seq] = 2;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  EncoderConfig ec;
  ec.r = 2 + in.byte() % 7;
  ec.interleaves = {1, unsigned(2 + in.byte() % 4), unsigned(7 + in.byte() % 6)};
  ec.flush_timeout_ns = 0;
  ec.max_packet = 512;
  Encoder encoder(ec);

  const size_t packets = 32 + in.byte() % 96;
  std::vector<std::vector<uint8_t>> originals(packets);
  Collect stream;
  struct Item {
    bool repair;
    size_t index;
  };
  std::vector<Item> order;
  for (size_t s = 0; s < packets; s++) {
    size_t len = kSyntheticMinLen + (in.byte() * 7u) % (512 - kSyntheticMinLen);
    originals[s].resize(len);
    make_packet(s, len, originals[s].data());
    size_t before = stream.repairs.size();
    encoder.add(originals[s].data(), len, 0, stream);
    order.push_back({false, s});
    for (size_t k = before; k < stream.repairs.size(); k++) order.push_back({true, k});
  }
  size_t before = stream.repairs.size();
  encoder.flush(stream);
  for (size_t k = before; k < stream.repairs.size(); k++) order.push_back({true, k});

  DecoderConfig dc{512, 256, 16, 1024};
  Decoder decoder(dc);
  std::vector<uint8_t> state(packets, 0);
  Oracle oracle;
  oracle.originals = &originals;
  oracle.state = &state;
  for (const Item& it : order) {
    uint8_t op = in.byte();
    if (!it.repair) {
      if (op % 4 == 0) continue;  // lost
      if (state[it.index] == 2) continue;  // already rebuilt: a late copy is a duplicate, not new
      state[it.index] = 1;
      std::vector<uint8_t> copy = originals[it.index];
      copy[8] = uint8_t(copy[8] - op % 3);  // routers on the way lower the TTL...
      copy[10] = copy[11] = 0;               // ...and update the header checksum
      uint16_t csum = ipv4_checksum(copy.data(), 20);
      copy[10] = uint8_t(csum >> 8);
      copy[11] = uint8_t(csum);
      decoder.on_data(copy.data(), copy.size(), oracle);
      if (op % 11 == 0) decoder.on_data(copy.data(), copy.size(), oracle);
    } else {
      std::vector<uint8_t> r = stream.repairs[it.index];
      if (op % 5 == 0) continue;  // lost
      if (op % 7 == 0) r[in.byte() % r.size()] ^= uint8_t(1 + in.byte() % 255);  // corrupted
      if (op % 13 == 0) r.resize(in.byte() % r.size());                          // truncated
      decoder.on_repair(r.data(), r.size(), oracle);
    }
  }
  return 0;
}
