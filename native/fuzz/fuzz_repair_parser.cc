// libFuzzer target: arbitrary bytes as a repair packet. The parser must never read outside the
// buffer (ASan), must accept only what re-serialises to the same bytes, and the decoder must
// never output a packet that does not hash to its recipe entry.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fec/decoder.h"
#include "fec/repair_format.h"

using namespace maelstrom::fec;

namespace {

class VerifyingSink : public RecoverySink {
 public:
  void recovered(const uint8_t* pkt, size_t len) override {
    if (len == 0 || len > 1500) abort();
    (void)identify(pkt, len);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static DecoderConfig config{1500, 256, 64, 1024};
  static Decoder decoder(config);
  static VerifyingSink sink;

  RepairView v;
  if (parse_repair(data, size, 1500, &v) == ParseError::None) {
    const RepairHeader& h = v.header;
    if (repair_size(h.count, h.xor_len) != size) abort();
    if (v.payload + h.xor_len != data + size) abort();
    uint8_t again[kRepairHeaderSize];
    write_repair_header(again, h);
    if (std::memcmp(again, data, kRecipeCheckOffset) != 0) abort();
    for (unsigned k = 0; k < h.count; k++) {
      RecipeEntry e = read_entry(v.entries, k);
      if (e.len == 0 || e.len > h.xor_len) abort();
      uint8_t out[kRecipeEntrySize];
      write_entry(out, e);
      if (std::memcmp(out, v.entries + k * kRecipeEntrySize, kRecipeEntrySize) != 0) abort();
    }
  }
  decoder.on_repair(data, size, sink);
  if (size > 0) decoder.on_data(data, size, sink);
  return 0;
}
