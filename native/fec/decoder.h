// Layered-interleaving decoder: a bounded window of the data packets received, repairs that
// name a single missing packet rebuild it at once, repairs missing two or more wait in a
// bounded table and are peeled as their missing packets arrive or are rebuilt (cascading
// recovery across layers). Every rebuilt packet is checked against its recipe hash before it
// is output, so a forged or corrupted repair can cost a packet but never emit a wrong one.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "fec/hash_index.h"
#include "fec/packet_id.h"
#include "fec/repair_format.h"

namespace maelstrom::fec {

struct DecoderConfig {
  unsigned max_packet = 1500;
  unsigned window = 1600;   // K: data packets kept, and the span of sequence numbers accepted
  unsigned pending = 1024;  // repairs waiting for a second missing packet
  unsigned seen = 6400;     // hashes remembered to drop duplicates; at least window
  // A repair that finds one packet missing waits this long before rebuilding it (0: rebuilds at
  // once), for the packet may be on its way by another path: a gateway whose WAN has several
  // RX queues handles data and repairs on different threads, and a repair can overtake the
  // packets it covers. The packet arriving in time makes the repair useless; poll() rebuilds
  // the rest.
  uint64_t grace_ns = 0;
};

class RecoverySink {
 public:
  virtual ~RecoverySink() = default;
  virtual void recovered(const uint8_t* pkt, size_t len) = 0;
};

enum class DataResult { New, Duplicate, Invalid };

enum class RepairResult {
  Malformed,    // failed parsing (see DecoderStats::malformed)
  StaleEpoch,   // older than the previous configuration epoch
  OutOfWindow,  // covers packets older than the window
  Useless,      // nothing it covers is missing
  Pending,      // two or more missing: kept for peeling
  Applied,      // one missing: rebuilt (or the rebuilt packet failed verification)
};

struct DecoderStats {
  uint64_t data = 0;
  uint64_t data_bytes = 0;
  uint64_t duplicates = 0;
  uint64_t invalid = 0;  // empty or longer than max_packet: passed on, not protected
  uint64_t repairs = 0;
  uint64_t malformed[size_t(ParseError::Count_)] = {};
  uint64_t stale_epoch = 0;
  uint64_t out_of_window = 0;
  uint64_t useless = 0;
  uint64_t recovered = 0;
  uint64_t recovered_bytes = 0;
  uint64_t verify_failed = 0;     // rebuilt bytes did not match the recipe: dropped
  uint64_t pending_evicted = 0;   // table full: oldest waiting repair dropped
  uint64_t pending_expired = 0;   // waiting repair left the window
  uint64_t late_arrivals = 0;     // a packet named missing arrived after all
  uint64_t unrecoverable = 0;     // named missing, left the window neither arrived nor rebuilt
  uint64_t resyncs = 0;           // sender's sequence numbers jumped (restart): state dropped
  uint64_t epoch_changes = 0;     // repairs of a newer configuration epoch began
  uint64_t held = 0;              // repairs held for the grace (one packet missing)
  uint64_t held_arrived = 0;      // of those, the packet arrived meanwhile: no rebuild needed
  // The WAN's loss as the lowest layer's repairs show it: packets they cover, how many of those
  // had not arrived (with a grace: had not arrived by its end), and how many runs of
  // consecutive missing packets (bursts) that made.
  uint64_t loss_sampled = 0;
  uint64_t loss_missing = 0;
  uint64_t loss_bursts = 0;

  uint64_t malformed_total() const {
    uint64_t n = 0;
    for (uint64_t m : malformed) n += m;
    return n;
  }
};

class Decoder {
 public:
  explicit Decoder(const DecoderConfig& config);  // out-of-range values are clamped
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // A data packet as received (any TTL), at now_ns (only used with a grace). Rebuilt packets it
  // completes go to sink.
  DataResult on_data(const uint8_t* pkt, size_t len, RecoverySink& sink, uint64_t now_ns = 0);

  // A repair packet's UDP payload, received at now_ns (only used with a grace).
  RepairResult on_repair(const uint8_t* buf, size_t len, RecoverySink& sink, uint64_t now_ns = 0);

  // Rebuilds what repairs held for the grace found still missing at now_ns, and counts as lost
  // the packets the loss sample has waited a grace for in vain.
  void poll(uint64_t now_ns, RecoverySink& sink);
  // When poll() next has something to do, UINT64_MAX when nothing waits.
  uint64_t next_deadline() const {
    return std::min(held_.empty() ? UINT64_MAX : held_.front().ready_ns,
                    loss_wait_.empty() ? UINT64_MAX : loss_wait_.front().ready_ns);
  }
  size_t held() const { return held_.size(); }

  const DecoderStats& stats() const { return stats_; }
  size_t pending() const { return pending_live_; }
  size_t window_fill() const { return window_index_.size(); }
  uint32_t epoch() const { return epoch_; }
  uint32_t window_capacity() const { return config_.window; }

 private:
  struct Pending {
    uint8_t* payload;
    std::vector<RecipeEntry> missing;
    uint32_t newest_seq;
    uint32_t generation;
    uint16_t xor_len;
    bool live;
  };

  uint32_t insert_packet(const uint8_t* pkt, size_t len, uint64_t hash);
  const uint8_t* window_packet(uint32_t slot) const { return window_ + size_t(slot) * stride_; }
  bool rebuild(uint8_t* work, uint16_t xor_len, const RecipeEntry& e, RecoverySink& sink);
  void cascade(RecoverySink& sink);
  void free_pending(uint32_t slot);
  void unwait(uint64_t hash, uint32_t slot);
  void expire(uint32_t highest);
  void note_lost(const RecipeEntry& e, uint32_t seq);
  void give_up_oldest_lost();
  void resync(uint32_t newest);
  void sample_loss(const RepairHeader& h);

  static constexpr size_t kRestoredBytes = 12;  // restore() writes within the first 12 bytes
  DecoderConfig config_;
  size_t stride_;
  std::vector<uint8_t> arena_;  // window slots, then pending payloads, then one work buffer
  uint8_t* window_;
  uint8_t* work_;
  std::vector<uint64_t> slot_hash_;
  std::vector<uint16_t> slot_len_;
  uint64_t window_next_ = 0;
  HashIndex window_index_;

  std::vector<uint64_t> seen_ring_;
  uint64_t seen_next_ = 0;
  HashIndex seen_index_;

  std::vector<Pending> pending_;
  std::vector<uint32_t> pending_free_;
  std::deque<std::pair<uint32_t, uint32_t>> pending_order_;  // (slot, generation), oldest first
  std::unordered_multimap<uint64_t, uint32_t> waiting_;      // missing hash -> pending slot
  size_t pending_live_ = 0;

  std::unordered_map<uint64_t, uint32_t> lost_;               // hash named missing -> its seq
  std::deque<std::pair<uint32_t, uint64_t>> lost_order_;      // (seq, hash), oldest first

  struct Held {
    uint32_t slot, generation;
    uint64_t ready_ns;
  };
  std::deque<Held> held_;  // repairs with one missing packet, waiting out the grace, oldest first
  uint32_t store_pending(uint32_t newest, uint16_t xor_len);
  void hold(uint32_t slot);
  uint64_t now_ns_ = 0;  // the latest time a caller gave

  std::vector<uint64_t> available_;  // hashes that became available, to peel against
  std::vector<uint32_t> present_;
  std::vector<RecipeEntry> missing_;
  std::vector<uint32_t> missing_seq_;  // their sequence numbers

  bool epoch_known_ = false;
  uint32_t epoch_ = 0;
  uint32_t prev_epoch_ = 0;
  unsigned stale_run_ = 0;     // repairs in a row of one stale epoch
  uint32_t stale_epoch_ = 0;
  bool missing_known_ = false;
  uint32_t last_missing_ = 0;  // sequence number of the last missing packet sampled
  // With a grace, a packet the loss sample finds missing counts as lost only if it has not come
  // by the end of the grace: late is not lost (several WAN queues reorder).
  struct LossWait {
    uint64_t hash;
    uint32_t seq;
    bool consecutive;  // its repair covered consecutive packets (interleave 1)
    uint64_t ready_ns;
  };
  std::deque<LossWait> loss_wait_;
  std::unordered_map<uint64_t, uint32_t> loss_waiting_;  // hash -> entries of loss_wait_ still waiting
  void count_missing(uint32_t seq, bool consecutive);
  unsigned resync_run_ = 0;  // out-of-window repairs in a row that agree with each other
  uint32_t resync_seq_ = 0;
  bool seq_known_ = false;
  uint32_t highest_seq_ = 0;
  DecoderStats stats_;
};

}  // namespace maelstrom::fec
