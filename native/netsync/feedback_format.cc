#include "netsync/feedback_format.h"

#include <cstring>

#include "common/bytes.h"

namespace maelstrom::netsync {

void write_feedback(uint8_t* d, uint32_t seq, const FeedbackEntry* entries, size_t n) {
  std::memset(d, 0, feedback_size(n));
  put16(d, kFeedbackMagic);
  d[2] = kFeedbackVersion;
  put16(d + 4, uint16_t(n));
  put32(d + 8, seq);
  for (size_t k = 0; k < n; k++) {
    const FeedbackEntry& fe = entries[k];
    uint8_t* e = d + kFeedbackHeaderBytes + k * kFeedbackEntryBytes;
    std::memcpy(e, &fe.flow.saddr, 4);  // addresses and ports are kept in network order
    std::memcpy(e + 4, &fe.flow.daddr, 4);
    std::memcpy(e + 8, &fe.flow.sport, 2);
    std::memcpy(e + 10, &fe.flow.dport, 2);
    put32(e + 12, fe.isn_guessed ? kFeedbackIsnGuessed : 0);
    put64(e + 16, fe.safe);
    put64(e + 24, fe.sent);
    e[32] = fe.repairs_newest;
    e[33] = fe.repairs_per_packet;
  }
}

}  // namespace maelstrom::netsync
