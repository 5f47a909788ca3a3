#include "engine/report_format.h"

#include <cstring>

#include "common/bytes.h"

namespace maelstrom::engine {

void write_report(uint8_t* p, const ReceiverReport& r) {
  std::memset(p, 0, kReportBytes);
  put16(p, kReportMagic);
  p[2] = kReportVersion;
  put32(p + 4, r.epoch);
  put32(p + 8, r.window);
  put64(p + 16, r.sampled);
  put64(p + 24, r.missing);
  put64(p + 32, r.bursts);
  put64(p + 40, r.recovered);
  put64(p + 48, r.unrecoverable);
  put32(p + 56, r.send_key);
  put32(p + 60, r.accepts[0]);
  put32(p + 64, r.accepts[1]);
}

bool read_report(const uint8_t* p, size_t len, ReceiverReport* r) {
  if (len != kReportBytes || get16(p) != kReportMagic || p[2] != kReportVersion || p[3] != 0) return false;
  r->epoch = get32(p + 4);
  r->window = get32(p + 8);
  r->sampled = get64(p + 16);
  r->missing = get64(p + 24);
  r->bursts = get64(p + 32);
  r->recovered = get64(p + 40);
  r->unrecoverable = get64(p + 48);
  r->send_key = get32(p + 56);
  r->accepts[0] = get32(p + 60);
  r->accepts[1] = get32(p + 64);
  return true;
}

bool is_report(const uint8_t* p, size_t len) { return len >= 2 && get16(p) == kReportMagic; }

}  // namespace maelstrom::engine
