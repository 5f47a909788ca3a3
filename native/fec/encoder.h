// Layered-interleaving encoder (Balakrishnan et al., NSDI 2008).
//
// c layers, one per interleave i in I. Layer i has i bins; the packet with sequence number x
// goes into bin (x mod i) of every layer (counted from the start, so that a bin's packets stay
// i apart when the 32-bit sequence number wraps). A bin XORs its packets (normalised, zero-padded) and
// fires a repair when it holds r of them. Staggered start: the first time bin b fires, it does
// so at (b mod r) packets (r when that is 0), so a layer's repairs spread evenly over time
// instead of all i bins firing together. Flush timeout: a bin of a layer with interleave i
// whose first packet is older than i x the timeout fires with what it has, which bounds how long
// a packet waits for its repairs; the bins of every layer fill before that at any rate above
// r / timeout packets per second, so the overhead stays c / r down to that rate. Whoever needs a
// packet's repairs sooner (network-sync, with the LAN gone quiet) fires the bins holding it with
// flush_covering(), within a budget: a token bucket that every data packet fills by
// budget_ratio x c / r, the clock by budget_per_s a second, and every repair sent empties by one.
// Bins fired by filling and by the flush timeout always go (they keep the overhead at c / r and
// bound a packet's wait); flush_covering() fires a bin only while a token is left, so it adds
// repairs only as far as the others leave room under budget_ratio x c / r per data packet plus
// budget_per_s a second (and the bucket's depth) (docs/decisions.md 96).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fec/packet_id.h"
#include "fec/repair_format.h"

namespace maelstrom::fec {

struct EncoderConfig {
  unsigned r = 8;
  std::vector<unsigned> interleaves{1, 10, 100};  // c = interleaves.size()
  uint64_t flush_timeout_ns = 10'000'000;         // x the layer's interleave; 0: bins wait for r packets
  unsigned max_packet = 1500;
  uint32_t epoch = 0;
  uint32_t first_seq = 0;
  double budget_ratio = 1.1;  // flush_covering()'s budget: repairs per data packet, in units of c / r
  double budget_per_s = 2000;  // and repairs a second on top (the floor that answers sparse writes)
};

// Which data packets a repair covers: base_seq + k * interleave for k < count.
struct RepairInfo {
  uint8_t layer;
  uint8_t count;
  uint16_t interleave;
  uint32_t base_seq;
  bool flushed;  // fired by the flush timeout or a flush, not by filling
};

// Where fired repairs go. The engine hands out UMEM frame space; tests hand out vectors.
class RepairSink {
 public:
  virtual ~RepairSink() = default;
  // Room for a repair of `len` bytes, or nullptr to drop it (counted by the encoder).
  virtual uint8_t* reserve(size_t len) = 0;
  virtual void commit(size_t len, const RepairInfo& info) = 0;
  // reserve() gave no room: this repair is not sent.
  virtual void dropped(const RepairInfo& info) {}
};

struct EncoderStats {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t oversize = 0;  // rejected: empty or longer than max_packet, not covered by any repair
  uint64_t repairs = 0;
  uint64_t repair_bytes = 0;
  uint64_t repairs_flushed = 0;  // fired by the flush timeout, flush() or flush_covering()
  uint64_t repairs_covering = 0;  // of those, by flush_covering()
  uint64_t covering_deferred = 0;  // flush_covering() calls that stopped with no budget left
  uint64_t repairs_dropped = 0;  // sink had no room

  EncoderStats& operator+=(const EncoderStats& o) {
    packets += o.packets;
    bytes += o.bytes;
    oversize += o.oversize;
    repairs += o.repairs;
    repair_bytes += o.repair_bytes;
    repairs_flushed += o.repairs_flushed;
    repairs_covering += o.repairs_covering;
    covering_deferred += o.covering_deferred;
    repairs_dropped += o.repairs_dropped;
    return *this;
  }
};

class Encoder {
 public:
  // The config must be valid (the TypeScript side validates; see src/fec/config.ts).
  explicit Encoder(const EncoderConfig& config);
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // Adds one packet at time now_ns; fires the bins it fills. Returns the packet's sequence
  // number, or -1 when the packet is empty or longer than max_packet (it is not covered).
  // With hash_cycles, the ticks (maelstrom::cycles()) spent identifying it are added there.
  int64_t add(const uint8_t* pkt, size_t len, uint64_t now_ns, RepairSink& sink, uint64_t* hash_cycles = nullptr);

  // Fires bins whose first packet is at least flush_timeout x interleave old. Cheap when none
  // is due.
  unsigned poll(uint64_t now_ns, RepairSink& sink);

  // Fires the bins, of every layer, that hold any of the packets seqs[0..n) (the bins of packets
  // someone waits on), the oldest packet's first, while the budget lasts; *deferred says whether
  // it ran out with bins still to fire (they fire later: by filling, at their timeout, or in a
  // call once budget_ready() has passed). Sequence numbers of packets already covered, or not
  // yet added, are skipped.
  unsigned flush_covering(const uint32_t* seqs, size_t n, uint64_t now_ns, RepairSink& sink, bool* deferred = nullptr);

  // When the budget's clock alone gives flush_covering() its next repair (UINT64_MAX: never,
  // with budget_per_s = 0; packets added give it sooner).
  uint64_t budget_ready(uint64_t now_ns);

  // Takes over another encoder's budget (the code changes; what was spent stays spent).
  void adopt_budget(const Encoder& old);

  // Fires every non-empty bin (before an epoch change or shutdown).
  unsigned flush(RepairSink& sink);

  // Earliest time poll() has work, UINT64_MAX when no bin holds a packet.
  uint64_t next_deadline() const { return next_deadline_; }
  uint32_t next_seq() const { return seq_; }
  const EncoderConfig& config() const { return config_; }
  const EncoderStats& stats() const { return stats_; }

 private:
  struct Bin {
    uint8_t* acc;  // max_packet bytes in arena_
    RecipeEntry* recipe;
    uint32_t base_seq;
    uint64_t first_ns;
    uint16_t count;
    uint16_t xor_len;
    uint16_t threshold;
    uint16_t index;
    uint8_t layer;
  };

  bool fire(Bin& bin, bool flushed, RepairSink& sink);  // false: the sink had no room
  void refill(uint64_t now_ns);
  uint64_t timeout_of(const Bin& bin) const { return config_.flush_timeout_ns * config_.interleaves[bin.layer]; }

  EncoderConfig config_;
  std::vector<Bin> bins_;
  std::vector<unsigned> layer_first_bin_;
  std::vector<unsigned> next_bin_;  // per layer: the bin the next packet goes into
  std::vector<uint8_t> arena_;  // the bins' accumulators, cache-line aligned inside
  std::vector<RecipeEntry> recipes_;
  uint32_t seq_;
  uint64_t next_deadline_ = UINT64_MAX;
  // The budget in repairs, at most depth_; below zero when filling and timeouts spent beyond
  // it, which is paid back before flush_covering() fires again. per_packet_ = budget_ratio x c / r.
  double tokens_;
  double per_packet_;
  double depth_;
  uint64_t refilled_ns_ = 0;
  EncoderStats stats_;
};

}  // namespace maelstrom::fec
