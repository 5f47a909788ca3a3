// libFuzzer target: the authenticated path a repair takes at the gateway, the envelope first.
// Byte 0 picks a mode:
//   even: the rest as a datagram off the wire. Opening must never read outside it (ASan) and
//         must never say Ok: nothing here holds the key's tag.
//   odd:  the rest as an inner datagram, sealed with the key, then one bit flipped at the spot
//         bytes 1-2 name (or none). A flipped envelope must never open; an untouched one must
//         open exactly once, give back the inner bytes, and go on to the repair parser and
//         decoder as the engine hands them (which must not crash on it either).
#include <cstdlib>
#include <cstring>
#include <vector>

#include "auth/envelope.h"
#include "fec/decoder.h"

using namespace maelstrom;

namespace {

class Discard : public fec::RecoverySink {
 public:
  void recovered(const uint8_t*, size_t len) override {
    if (len == 0 || len > 1500) abort();
  }
};

const auth::Key& key() {
  static const auth::Key k = [] {
    uint8_t bytes[auth::kKeyBytes];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = uint8_t(i * 7 + 1);
    return auth::purpose_key(bytes);
  }();
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fec::Decoder decoder(fec::DecoderConfig{1500, 256, 64, 1024});
  static Discard sink;
  static auth::Sender sender(1, 1);
  static auth::Receiver receiver(0);
  static bool keyed = [] {
    sender.set_key(key());
    receiver.set_keys({key()});
    return true;
  }();
  (void)keyed;
  if (size < 3) return 0;
  auth::Opened o;
  if (!(data[0] & 1)) {
    if (receiver.open(data + 1, size - 1, &o) == auth::Verdict::Ok) abort();
    return 0;
  }
  size_t inner = size - 3;
  std::vector<uint8_t> d(auth::kOverhead + inner);
  std::memcpy(d.data() + auth::kHeaderBytes, data + 3, inner);
  size_t len = sender.seal(auth::Kind::Repair, d.data(), inner);
  size_t flip = (size_t(data[1]) << 8 | data[2]) % (len * 8 + 1);
  if (flip < len * 8) d[flip / 8] ^= uint8_t(1 << (flip % 8));
  auth::Verdict v = receiver.open(d.data(), len, &o);
  if (flip < len * 8) {
    if (v == auth::Verdict::Ok) abort();
    return 0;
  }
  if (v != auth::Verdict::Ok || o.len != inner || std::memcmp(o.inner, data + 3, inner) != 0) abort();
  if (receiver.open(d.data(), len, &o) != auth::Verdict::Replayed) abort();
  decoder.on_repair(o.inner, o.len, sink);
  return 0;
}
